"""Helpers for the Responses codec tests: canonical ⇄ JSON, placeholder matching, Responses SSE parsing.

(No tests here; the name keeps the module among the Responses codec's own files.)
"""

from __future__ import annotations

import enum
import json
from typing import Any

import attrs

from proxyd.protocols import canonical
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.canonical import FinishReason
from proxyd.protocols.sse import SSEEvent, SSEParser

_ENUMS: dict[str, type[enum.Enum]] = {
    "finish_reason": FinishReason,
    "reason": FinishReason,
    "signature_source": WireProtocol,
    "builtin_protocol": WireProtocol,
    "source": WireProtocol,
}


def to_canonical(value: Any, *, field: str = "", attrs_level: bool = False) -> Any:
    """JSON → canonical objects. `{"_type": "TextPart", …}` builds that class; a list that is an attrs field
    becomes a tuple; plain dicts (schemas, metadata) are kept as they are."""
    if isinstance(value, dict):
        if "_type" in value:
            cls = getattr(canonical, value["_type"])
            return cls(**{k: to_canonical(v, field=k, attrs_level=True) for k, v in value.items() if k != "_type"})
        return dict(value)
    if isinstance(value, list):
        items = [to_canonical(v) for v in value]
        return tuple(items) if attrs_level else items
    if attrs_level and field in _ENUMS and isinstance(value, str):
        return _ENUMS[field](value)
    return value


def from_canonical(value: Any) -> Any:
    """Canonical objects → JSON, leaving out fields equal to their defaults (the inverse of to_canonical)."""
    if attrs.has(type(value)):
        out: dict[str, Any] = {"_type": type(value).__name__}
        for field in attrs.fields(type(value)):
            current = getattr(value, field.name)
            default = field.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = default.factory()  # type: ignore[call-arg]
            if current != default:
                out[field.name] = from_canonical(current)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [from_canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: from_canonical(v) for k, v in value.items()}
    return value


def differences(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Where `actual` differs from `expected`. Placeholders: `"<any>"` anything, `"<str>"` a non-empty string,
    `"<int>"` a positive int, `"<prefix…>"` (ending in `…`) a longer string with that prefix."""
    if isinstance(expected, str) and len(expected) > 2 and expected[0] == "<" and expected[-1] == ">":
        token = expected[1:-1]
        ok = {
            "any": True,
            "str": isinstance(actual, str) and bool(actual),
            "int": isinstance(actual, int) and not isinstance(actual, bool) and actual > 0,
        }.get(token)
        if ok is None and token.endswith("…"):
            prefix = token[:-1]
            ok = isinstance(actual, str) and actual.startswith(prefix) and len(actual) > len(prefix)
        if ok is not None:
            return [] if ok else [f"{path}: {actual!r} does not match {expected}"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        found = [f"{path}: unexpected key {k!r} = {actual[k]!r}" for k in actual if k not in expected]
        found += [f"{path}: missing key {k!r}" for k in expected if k not in actual]
        for k in expected:
            if k in actual:
                found += differences(expected[k], actual[k], f"{path}.{k}")
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected a list, got {actual!r}"]
        found = [] if len(expected) == len(actual) else [f"{path}: {len(actual)} items, expected {len(expected)}"]
        for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
            found += differences(e, a, f"{path}[{i}]")
        return found
    numbers = (isinstance(expected, int | float) and isinstance(actual, int | float)
               and not isinstance(expected, bool) and not isinstance(actual, bool))
    if expected != actual or (type(expected) is not type(actual) and not numbers):
        return [f"{path}: {actual!r} != {expected!r}"]
    return []


def parse_sse(raw: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    return parser.feed(raw) + parser.close()


def sse_json(raw: bytes) -> list[dict[str, Any]]:
    """Each event as `{"event": name, "data": parsed JSON}`; also checks `event:` equals the data's `type`."""
    out = []
    for ev in parse_sse(raw):
        data = json.loads(ev.data)
        assert ev.event == data["type"], (ev.event, data)
        out.append({"event": ev.event, "data": data})
    return out


def sse_events(items: list[dict[str, Any]]) -> list[SSEEvent]:
    """Golden stream input (`{"event": name, "data": object-or-text}`) → SSEEvents for a decoder."""
    events = []
    for item in items:
        data = item["data"]
        raw = data if isinstance(data, str) else json.dumps(data)
        events.append(SSEEvent(data=raw.encode(), event=item.get("event")))
    return events
