"""Normalisation of our observations and the structural comparison with a golden (FORMAT.md §3, §6).

Deterministic substitutions (mock/server address, work dir, Go-default user agent) are applied to our side.
Placeholders in the golden (``<uuid:N>``, ``<id:N>``, ``<now>``, ``<volatile>``…) are matched as wildcards of
their described shape; numbered ones keep a bijection, so ``<id:1>`` twice means the same value twice.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DAY = 86400
KEY_PLACEHOLDERS = frozenset(
    f"<{k}>"
    for k in (
        "latency_ms",
        "ttft_ms",
        "request_id",
        "trace_id",
        "execution_id",
        "elapsed_ms",
        "reset_seconds",
        "reset_time",
        "date",
        "Date",
        "file-auth-index",
    )
)
# Placeholder pattern pieces: kind -> regex of the original text.
_SHAPES: dict[str, str] = {
    "uuid": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "id": r"[A-Za-z0-9]{8,}",
    "fc": r"[A-Za-z0-9_\-]+",
    "call": r"[A-Za-z0-9_\-]+",
    "resp": r"[A-Za-z0-9_\-]*?",
    "ts14": r"\d{14}",
    "nanos": r"\d{19}",
    "now": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)",
    "now_ms": r"\d{13}",
    "bcrypt": r"\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}",
    "time-bucket": r"\d\d:\d\d-\d\d:\d\d",
    "cooldown": r"\d+",
    "boundary": r"[^;\s]+",
    "volatile": r".*?",
    "duration": r".+?",
    "go-default-ua": r"<go-default-ua>",
}
_PLACEHOLDER_RE = re.compile(r"<(" + "|".join(re.escape(k) for k in _SHAPES) + r")(?::(\d+))?>")


@dataclass(slots=True)
class Context:
    """What normalisation needs to know about one run."""

    mock: str
    server: str
    work: str
    now: float = field(default_factory=time.time)


def normalise(value: Any, ctx: Context) -> Any:
    """Substitute the run's addresses and scratch dir in every string of ``value``."""
    if isinstance(value, str):
        out = value.replace(f"127.0.0.1:{ctx.mock}", "<mock>").replace(f"localhost:{ctx.mock}", "<mock>")
        out = out.replace(f"127.0.0.1:{ctx.server}", "<server>").replace(f"localhost:{ctx.server}", "<server>")
        return out.replace(ctx.work, "<work>")
    if isinstance(value, list):
        return [normalise(v, ctx) for v in value]
    if isinstance(value, dict):
        return {normalise(k, ctx): normalise(v, ctx) for k, v in value.items()}
    return value


def normalise_upstream_headers(headers: dict[str, str]) -> dict[str, str]:
    """The mock's header rules: ``accept: */*`` counts as absent; a library default UA is ``<go-default-ua>``."""
    out = {k: v for k, v in headers.items() if not (k == "accept" and v == "*/*")}
    ua = out.get("user-agent")
    if ua is None or ua.startswith(("Python/", "Go-http-client")):
        out["user-agent"] = "<go-default-ua>"
    return out


class Mismatch(Exception):
    """The first difference: a JSON pointer and a description."""

    def __init__(self, pointer: str, detail: str) -> None:
        super().__init__(f"{pointer or '/'}: {detail}")
        self.pointer = pointer
        self.detail = detail


def _short(value: Any) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 160 else text[:157] + "..."


def _esc(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class Comparer:
    """Structural comparison golden ↔ ours; key order ignored, ``volatile`` pointers skipped."""

    def __init__(self, ctx: Context, volatile: Iterable[str] = (), ignored: Iterable[re.Pattern[str]] = ()) -> None:
        self.ctx = ctx
        self.volatile = set(volatile)
        self.ignored = list(ignored)
        self.bound: dict[tuple[str, str], str] = {}
        self.reverse: dict[tuple[str, str], str] = {}

    def skip(self, pointer: str) -> bool:
        return pointer in self.volatile or any(p.fullmatch(pointer) for p in self.ignored)

    def compare(self, golden: Any, ours: Any, pointer: str = "") -> None:
        """Raise :class:`Mismatch` at the first difference."""
        if self.skip(pointer):
            return
        if isinstance(golden, str) and self._placeholder_scalar(golden, ours):
            return
        if isinstance(golden, dict):
            if not isinstance(ours, dict):
                raise Mismatch(pointer, f"expected object {_short(golden)}, got {_short(ours)}")
            for key, gv in golden.items():
                sub = f"{pointer}/{_esc(key)}"
                if key not in ours:
                    if self.skip(sub):
                        continue
                    raise Mismatch(sub, f"missing (expected {_short(gv)})")
                self.compare(gv, ours[key], sub)
            for key in ours:
                sub = f"{pointer}/{_esc(key)}"
                if key not in golden and not self.skip(sub):
                    raise Mismatch(sub, f"unexpected {_short(ours[key])}")
            return
        if isinstance(golden, list):
            if not isinstance(ours, list):
                raise Mismatch(pointer, f"expected array {_short(golden)}, got {_short(ours)}")
            for i, (gv, ov) in enumerate(zip(golden, ours, strict=False)):
                self.compare(gv, ov, f"{pointer}/{i}")
            if len(golden) != len(ours):
                i = min(len(golden), len(ours))
                extra = golden[i] if len(golden) > len(ours) else ours[i]
                what = "missing" if len(golden) > len(ours) else "unexpected"
                lengths = f"length {len(ours)} != {len(golden)}"
                raise Mismatch(f"{pointer}/{i}", f"{what} element {_short(extra)} ({lengths})")
            return
        if isinstance(golden, str) and isinstance(ours, str) and "<" in golden and self._pattern_match(golden, ours):
            return
        if type(golden) is not type(ours) and not (_is_num(golden) and _is_num(ours)):
            raise Mismatch(pointer, f"expected {_short(golden)}, got {_short(ours)}")
        if golden != ours:
            raise Mismatch(pointer, f"expected {_short(golden)}, got {_short(ours)}")

    # ----------------------------------------------------------------- placeholders

    def _placeholder_scalar(self, golden: str, ours: Any) -> bool:
        """Whole-value placeholders that may stand for a non-string (``<now>`` for unix seconds…)."""
        if golden in KEY_PLACEHOLDERS or golden == "<volatile>":
            return ours is not None
        if isinstance(ours, bool) or not isinstance(ours, int | float):
            return False
        if golden == "<now>":
            return abs(ours - self.ctx.now) <= DAY
        if golden == "<now_ms>":
            return abs(ours / 1000 - self.ctx.now) <= DAY
        return False

    def _pattern_match(self, golden: str, ours: str) -> bool:
        parts: list[str] = []
        groups: list[tuple[str, str | None]] = []
        pos = 0
        for m in _PLACEHOLDER_RE.finditer(golden):
            parts.append(re.escape(golden[pos : m.start()]))
            kind, num = m.group(1), m.group(2)
            parts.append(f"({_SHAPES[kind]})")
            groups.append((kind, num))
            pos = m.end()
        if not groups:
            return False
        parts.append(re.escape(golden[pos:]))
        found = re.fullmatch("".join(parts), ours, re.S)
        if found is None:
            return False
        pending: dict[tuple[str, str], str] = {}
        for (kind, num), value in zip(groups, found.groups(), strict=True):
            if kind == "now" and not self._near_now(value):
                return False
            if num is None:
                continue
            key = (kind, num)
            bound = self.bound.get(key, pending.get(key))
            if bound is not None and bound != value:
                return False
            owner = self.reverse.get((kind, value))
            if owner is not None and owner != num:
                return False
            pending[key] = value
        for (kind, num), value in pending.items():
            self.bound[(kind, num)] = value
            self.reverse[(kind, value)] = num
        return True

    def _near_now(self, text: str) -> bool:
        try:
            stamp = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return False
        return abs(stamp - self.ctx.now) <= DAY


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def apply_overrides(doc: Any, expect: Mapping[str, Any]) -> Any:
    """Replace the values at JSON pointers (``*`` matches any key or index) in a copy of ``doc``."""
    import copy

    out = copy.deepcopy(doc)
    for pointer, value in expect.items():
        _set(out, [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]], value)
    return out


def apply_rewrites(doc: Any, rewrites: list[tuple[re.Pattern[str], str, str]], pointer: str = "") -> Any:
    """Replace string leaves equal to ``from`` by ``to`` where the pointer matches (in place)."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            sub = f"{pointer}/{_esc(key)}"
            if isinstance(value, str):
                for at, old, new in rewrites:
                    if value == old and at.fullmatch(sub):
                        doc[key] = new
            else:
                apply_rewrites(value, rewrites, sub)
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            apply_rewrites(value, rewrites, f"{pointer}/{i}")
    return doc


def _set(node: Any, tokens: list[str], value: Any, *, wild: bool = False) -> None:
    if not tokens:
        return
    head, rest = tokens[0], tokens[1:]
    wild = wild or head == "*"
    keys: list[Any]
    if isinstance(node, list):
        if head.isdigit() and not rest and not wild:
            index = int(head)
            if value == "<absent>" and index < len(node):
                del node[index]  # an element the golden has and we (by decision) do not
            elif index == len(node) and value != "<absent>":
                node.append(value)  # an element we add at the end (an extra frame, an extra attempt)
            elif index < len(node):
                node[index] = value
            return
        keys = list(range(len(node))) if head == "*" else [int(head)] if head.isdigit() else []
        keys = [k for k in keys if k < len(node)]
    elif isinstance(node, dict):
        keys = list(node) if head == "*" else [head]
    else:
        return
    for key in keys:
        if rest:
            if isinstance(node, dict) and key not in node:
                continue
            _set(node[key], rest, value, wild=wild)
        elif isinstance(node, dict) and wild and key not in node:
            continue
        elif value == "<absent>" and isinstance(node, dict):
            node.pop(key, None)
        else:
            node[key] = value


def pointer_regex(glob: str) -> re.Pattern[str]:
    """A pointer glob (``*`` = one token, ``**`` = any depth) as a regex."""
    out = []
    for token in glob.split("/")[1:]:
        if token == "**":
            out.append(r"(?:/[^/]*)*")
        elif token == "*":
            out.append(r"/[^/]*")
        else:
            out.append("/" + re.escape(token))
    return re.compile("".join(out))
