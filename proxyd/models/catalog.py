"""The static model catalogue (proxyd/data/catalog.json): which models each provider kind serves by default."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CATALOG_FILE = Path(__file__).resolve().parent.parent / "data" / "catalog.json"


@functools.cache
def _catalog() -> Mapping[str, tuple[Mapping[str, Any], ...]]:
    data = json.loads(CATALOG_FILE.read_text(encoding="utf-8"))
    return {key: tuple(entries) for key, entries in data.items() if not key.startswith("_")}


def section(name: str) -> tuple[Mapping[str, Any], ...]:
    """The catalogue entries of one section (`claude`, `gemini`, `vertex`, `gemini-cli`, `codex-pro`…)."""
    return _catalog().get(name, ())


def find(model_id: str) -> Mapping[str, Any] | None:
    """The first catalogue entry with this id, in any section (used for metadata of configured models)."""
    for entries in _catalog().values():
        for entry in entries:
            if entry.get("id") == model_id:
                return entry
    return None
