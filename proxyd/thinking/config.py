"""The thinking configuration value, the level↔budget tables (translation.md §6.3) and body parsing (§6.1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

Mode = Literal["none", "auto", "level", "budget"]

#: Effort levels from lowest to highest; "nearest level" clamping measures distance in this order.
STANDARD_LEVELS: tuple[str, ...] = ("minimal", "low", "medium", "high", "xhigh", "max")

#: Level → token budget (§6.3). `none` and `auto` are the special values 0 and −1.
LEVEL_BUDGETS: Mapping[str, int] = {
    "none": 0,
    "auto": -1,
    "minimal": 512,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": 32768,
    "max": 128000,
}

# Upper bounds (inclusive) of the budget bands of §6.3; above the last one the level is xhigh.
_BUDGET_BANDS: tuple[tuple[int, str], ...] = ((512, "minimal"), (1024, "low"), (8192, "medium"), (24576, "high"))

#: proxyd's protocol names (WireProtocol values) → the format names of the reference.
FORMAT_ALIASES: Mapping[str, str] = {
    "openai-chat": "openai",
    "openai-completions": "openai",
    "openai-responses": "openai-response",
}

# Error codes carried by ThinkingError.
UNKNOWN_LEVEL = "UNKNOWN_LEVEL"
LEVEL_NOT_SUPPORTED = "LEVEL_NOT_SUPPORTED"
BUDGET_OUT_OF_RANGE = "BUDGET_OUT_OF_RANGE"
INVALID_BUDGET = "INVALID_BUDGET"


class ThinkingError(ValueError):
    """A thinking setting the target model cannot take; the pipeline answers it with HTTP 400 and `str(err)`."""

    def __init__(self, code: str, message: str, *, model: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.model = model


@attrs.frozen
class ThinkingConfig:
    """A requested thinking setting, independent of any provider's field names.

    `budget` is meaningful for `budget` (tokens), `auto` (−1) and `none` (0, or the model minimum a model that
    cannot switch thinking off is clamped to); `level` for `level` (and, for `none` on level models, the lowest
    level to send). `from_level` marks a budget that was derived from a level (never range-checked strictly)."""

    mode: Mode
    level: str | None = None
    budget: int | None = None
    from_level: bool = False

    @classmethod
    def none(cls) -> ThinkingConfig:
        return cls(mode="none", budget=0)

    @classmethod
    def auto(cls) -> ThinkingConfig:
        return cls(mode="auto", budget=-1)

    @classmethod
    def of_level(cls, level: str) -> ThinkingConfig:
        """A level config; the special names `none` and `auto` become their modes."""
        level = level.strip().lower()
        if level == "none":
            return cls.none()
        if level == "auto":
            return cls.auto()
        return cls(mode="level", level=level)

    @classmethod
    def of_budget(cls, budget: int) -> ThinkingConfig:
        """A budget config; 0 is `none` and −1 is `auto`."""
        if budget == 0:
            return cls.none()
        if budget == -1:
            return cls.auto()
        return cls(mode="budget", budget=budget)


def normalize_format(fmt: str) -> str:
    """A format name, lower-cased, with proxyd's protocol names mapped to the reference's."""
    fmt = fmt.strip().lower()
    return FORMAT_ALIASES.get(fmt, fmt)


def level_to_budget(level: str) -> int | None:
    """The token budget of a level name (case-insensitive); None for a name the table does not know."""
    return LEVEL_BUDGETS.get(level.strip().lower())


def budget_to_level(budget: int) -> str | None:
    """The level of a token budget (§6.3): −1 auto, 0 none, then the bands; None below −1."""
    if budget < -1:
        return None
    if budget == -1:
        return "auto"
    if budget == 0:
        return "none"
    for upper, level in _BUDGET_BANDS:
        if budget <= upper:
            return level
    return "xhigh"


def _int_value(value: Any) -> int | None:
    """A JSON integer (an integral float too); None for booleans, strings and fractions."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _str_value(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip().lower()
    return None


def _budget_config(value: Any) -> ThinkingConfig | None:
    budget = _int_value(value)
    if budget is None or budget < -1:
        return None
    return ThinkingConfig.of_budget(budget)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _gemini_config(generation_config: Mapping[str, Any]) -> ThinkingConfig | None:
    thinking = _mapping(generation_config.get("thinkingConfig"))
    for key in ("thinkingLevel", "thinking_level"):
        level = _str_value(thinking.get(key))
        if level is not None:
            return ThinkingConfig.of_level(level)
    for key in ("thinkingBudget", "thinking_budget"):
        if key in thinking:
            return _budget_config(thinking[key])
    return None


def _claude_config(body: Mapping[str, Any]) -> ThinkingConfig | None:
    thinking = body.get("thinking")
    if not isinstance(thinking, Mapping):
        return None
    kind = _str_value(thinking.get("type"))
    if kind == "disabled":
        return ThinkingConfig.none()
    if kind in ("adaptive", "auto"):
        effort = _str_value(_mapping(body.get("output_config")).get("effort"))
        return ThinkingConfig.of_level(effort) if effort is not None else None
    if "budget_tokens" in thinking:
        return _budget_config(thinking["budget_tokens"])
    if kind == "enabled":
        return ThinkingConfig.auto()
    return None


def _effort_config(value: Any) -> ThinkingConfig | None:
    effort = _str_value(value)
    return ThinkingConfig.of_level(effort) if effort is not None else None


def config_from_body(body: Mapping[str, Any], fmt: str) -> ThinkingConfig | None:
    """The thinking setting a request body of format `fmt` carries (§6.1), or None.

    Formats: `openai` (`reasoning_effort`), `codex` / `openai-response` (`reasoning.effort`), `claude`
    (`thinking`, `output_config.effort`), `gemini` (`generationConfig.thinkingConfig`), `gemini-cli` and
    `antigravity` (the same under `request`). Budgets below −1 and values of the wrong type are ignored."""
    fmt = normalize_format(fmt)
    if fmt == "openai":
        return _effort_config(body.get("reasoning_effort"))
    if fmt in ("codex", "openai-response"):
        return _effort_config(_mapping(body.get("reasoning")).get("effort"))
    if fmt == "claude":
        return _claude_config(body)
    if fmt == "gemini":
        return _gemini_config(_mapping(body.get("generationConfig")))
    if fmt in ("gemini-cli", "antigravity"):
        return _gemini_config(_mapping(_mapping(body.get("request")).get("generationConfig")))
    return None
