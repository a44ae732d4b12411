"""The skip list (``skiplist.toml``): global comparison rules and per-scenario entries.

Entry categories:
- ``out-of-scope``: not run (plugins, realtime, xAI, media, websocket transport, management not built…);
- ``divergence``: a DECISIONS item; run, with ``expect`` (pointer → our documented value) and ``ignore``
  (pointer globs) applied to the golden, so the test asserts proxyd's behaviour instead of the reference's;
- ``not-yet``: a feature proxyd lacks today (or a proxyd bug, reason starting ``bug:``); run, failure expected,
  a pass is reported so the entry can be removed.
Rules (``[[rule]]``) have the same ``expect``/``ignore`` fields and apply to every scenario matching ``match``.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .compare import pointer_regex

DEFAULT_PATH = Path(__file__).with_name("skiplist.toml")
CATEGORIES = ("out-of-scope", "divergence", "not-yet")


@dataclass(slots=True)
class Entry:
    """One skip-list entry or global rule."""

    match: list[str]
    category: str
    reason: str
    decision: int | str | None = None
    expect: dict[str, Any] = field(default_factory=dict)
    ignore: list[str] = field(default_factory=list)
    rewrite: list[tuple[str, str, str]] = field(default_factory=list)

    def matches(self, scenario_id: str) -> bool:
        return any(fnmatch.fnmatchcase(scenario_id, pattern) for pattern in self.match)

    def ignore_patterns(self) -> list[re.Pattern[str]]:
        return [pointer_regex(p) for p in self.ignore]


def _entry(raw: dict[str, Any], *, where: str) -> Entry:
    match = raw.get("match")
    patterns = [match] if isinstance(match, str) else list(match or [])
    category = raw.get("category", "")
    if not patterns or category not in (*CATEGORIES, "rule", "harness"):
        raise ValueError(f"{where}: needs match and a category in {CATEGORIES}")
    if category == "divergence" and not isinstance(raw.get("decision"), int | str):
        raise ValueError(f"{where}: a divergence names its DECISIONS item (decision = N) or doc")
    return Entry(
        match=patterns,
        category=category,
        reason=str(raw.get("reason", "")),
        decision=raw.get("decision"),
        expect=dict(raw.get("expect", {})),
        ignore=list(raw.get("ignore", [])),
        rewrite=[(r["at"], r["from"], r["to"]) for r in raw.get("rewrite", [])],
    )


@dataclass(slots=True)
class SkipList:
    """Rules applied to all matching scenarios, and the first matching entry per scenario."""

    rules: list[Entry]
    entries: list[Entry]

    @classmethod
    def load(cls, path: Path = DEFAULT_PATH) -> SkipList:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        rules = [_entry(r, where=f"rule {i}") for i, r in enumerate(data.get("rule", []))]
        entries = [_entry(e, where=f"entry {i}") for i, e in enumerate(data.get("entry", []))]
        return cls(rules, entries)

    def entry_for(self, scenario_id: str) -> Entry | None:
        return next((e for e in self.entries if e.matches(scenario_id)), None)

    def rules_for(self, scenario_id: str) -> list[Entry]:
        return [r for r in self.rules if r.matches(scenario_id)]

    def adjustments(
        self, scenario_id: str, *, strict: bool = False
    ) -> tuple[dict[str, Any], list[str], list[tuple[str, str, str]]]:
        """The merged ``expect``, ``ignore`` and ``rewrite`` for one scenario (none when ``strict``)."""
        expect: dict[str, Any] = {}
        ignore: list[str] = []
        rewrite: list[tuple[str, str, str]] = []
        if strict:
            return expect, ignore, rewrite
        chosen: Iterable[Entry] = self.rules_for(scenario_id)
        entry = self.entry_for(scenario_id)
        if entry is not None and entry.category == "divergence":
            chosen = [*chosen, entry]
        for item in chosen:
            expect |= item.expect
            ignore.extend(item.ignore)
            rewrite.extend(item.rewrite)
        return expect, ignore, rewrite
