"""Model-name grammar: the thinking suffix `name(value)` and the `auto` model (api-surface.md §4.1)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from proxyd.thinking.config import STANDARD_LEVELS, ThinkingConfig

_DIGITS = re.compile(r"[0-9]+")
AUTO_MODEL = "auto"


def split_model_suffix(model: str) -> tuple[str, str | None]:
    """`gemini-2.5-pro(8192)` → (`gemini-2.5-pro`, `8192`); a name not ending in `)` or without `(` → (model, None).

    The suffix is inside the last `(`; `x()` gives an empty suffix."""
    if not model.endswith(")"):
        return model, None
    start = model.rfind("(")
    if start < 0:
        return model, None
    return model[:start], model[start + 1 : -1]


def parse_suffix(value: str) -> ThinkingConfig | None:
    """A suffix value → its config (§6.1): `none`; `auto` / `-1`; a level name; a non-negative integer; else None."""
    text = value.strip().lower()
    if text == "none":
        return ThinkingConfig.none()
    if text in ("auto", "-1"):
        return ThinkingConfig.auto()
    if text in STANDARD_LEVELS:
        return ThinkingConfig(mode="level", level=text)
    if _DIGITS.fullmatch(text):
        return ThinkingConfig.of_budget(int(text))
    return None


def resolve_auto_model(model: str, models: Iterable[tuple[str, int]]) -> str:
    """`auto` / `auto(x)` → the id with the largest `created` (first on ties), suffix kept; else `model` unchanged.

    `models` yields (id, created) pairs; with none, `auto` stays as it is."""
    base, suffix = split_model_suffix(model)
    if base != AUTO_MODEL:
        return model
    newest: tuple[str, int] | None = None
    for model_id, created in models:
        if newest is None or created > newest[1]:
            newest = (model_id, created)
    if newest is None:
        return model
    return newest[0] if suffix is None else f"{newest[0]}({suffix})"
