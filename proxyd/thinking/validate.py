"""Model thinking capabilities and the validation / normalisation rules of translation.md §6.4."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from proxyd.thinking.config import (
    BUDGET_OUT_OF_RANGE,
    INVALID_BUDGET,
    LEVEL_NOT_SUPPORTED,
    STANDARD_LEVELS,
    UNKNOWN_LEVEL,
    ThinkingConfig,
    ThinkingError,
    budget_to_level,
    level_to_budget,
    normalize_format,
)

Capability = Literal["budget", "level", "hybrid"]

GEMINI_FAMILY = frozenset({"gemini", "gemini-cli", "antigravity"})
OPENAI_FAMILY = frozenset({"openai", "openai-response", "codex"})

#: Every level name the level→budget table knows, for the UNKNOWN_LEVEL message.
LEVELS_WITH_SPECIALS: tuple[str, ...] = ("none", "auto", *STANDARD_LEVELS)


def same_family(client_format: str, upstream_format: str) -> bool:
    """Equal formats, or both Gemini-like (gemini, gemini-cli, antigravity), or both OpenAI-like."""
    a, b = normalize_format(client_format), normalize_format(upstream_format)
    return a == b or (a in GEMINI_FAMILY and b in GEMINI_FAMILY) or (a in OPENAI_FAMILY and b in OPENAI_FAMILY)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@attrs.frozen
class ThinkingSupport:
    """What a model accepts: a budget range [min, max], whether 0 / −1 are allowed, and its effort levels."""

    min: int = 0
    max: int = 0
    zero_allowed: bool = False
    dynamic_allowed: bool = False
    levels: tuple[str, ...] = ()

    @classmethod
    def from_model_info(cls, model_info: Mapping[str, Any] | None) -> ThinkingSupport | None:
        """The `thinking` entry of a catalogue model; None when the model cannot think (absent or empty)."""
        thinking = model_info.get("thinking") if model_info is not None else None
        if not isinstance(thinking, Mapping) or not thinking:
            return None
        raw_levels = thinking.get("levels")
        levels = tuple(
            str(level).strip().lower() for level in raw_levels or () if isinstance(level, str) and level.strip()
        ) if isinstance(raw_levels, list | tuple) else ()
        return cls(
            min=_int(thinking.get("min")),
            max=_int(thinking.get("max")),
            zero_allowed=thinking.get("zero_allowed") is True,
            dynamic_allowed=thinking.get("dynamic_allowed") is True,
            levels=levels,
        )

    @property
    def has_range(self) -> bool:
        return self.min != 0 or self.max != 0

    @property
    def capability(self) -> Capability:
        """`level` (levels only), `hybrid` (levels and a range) or `budget` (anything else)."""
        if self.levels:
            return "hybrid" if self.has_range else "level"
        return "budget"

    def supports_level(self, level: str) -> bool:
        return level.lower() in self.levels

    def nearest_level(self, level: str) -> str:
        """The supported level closest to `level` in the standard order (ties → the lower one).

        A supported level, or one outside the standard order, is returned unchanged."""
        level = level.lower()
        if not self.levels or level in self.levels or level not in STANDARD_LEVELS:
            return level
        wanted = STANDARD_LEVELS.index(level)
        candidates = [STANDARD_LEVELS.index(s) for s in self.levels if s in STANDARD_LEVELS]
        if not candidates:
            return level
        best = min(candidates, key=lambda idx: (abs(idx - wanted), idx))
        return STANDARD_LEVELS[best]

    def clamp_budget(self, budget: int) -> int:
        """A budget forced into the model's range; −1 passes, 0 becomes `min` unless zero is allowed."""
        if budget == -1:
            return budget
        if budget == 0:
            return 0 if self.zero_allowed else self.min
        if not self.has_range:
            return budget
        return max(self.min, min(self.max, budget))


def _levels_text(levels: tuple[str, ...]) -> str:
    return ", ".join(levels)


def _normalise_special(config: ThinkingConfig) -> ThinkingConfig:
    """Level none/auto and budget 0/−1 become their modes."""
    if config.mode == "level" and config.level in ("none", "auto"):
        return ThinkingConfig.of_level(config.level)
    if config.mode == "budget" and config.budget in (0, -1):
        return ThinkingConfig.of_budget(config.budget)
    return config


def validate_config(
    config: ThinkingConfig,
    support: ThinkingSupport,
    *,
    client_format: str,
    upstream_format: str,
    from_suffix: bool,
    model: str | None = None,
) -> ThinkingConfig:
    """Normalise `config` for a model with `support` (§6.4); raise ThinkingError for the 400 cases.

    Levels are converted to budgets on budget-only models and budgets to (clamped) levels on level-only models.
    An unsupported level is clamped to the nearest one across families and rejected within a family. A body
    budget outside the range is rejected within a family (unless it came from a level), clamped otherwise."""
    upstream = normalize_format(upstream_format)
    family = same_family(client_format or upstream, upstream)
    capability = support.capability

    if capability == "budget" and config.mode == "level" and config.level not in ("auto", "none"):
        level = config.level or ""
        budget = level_to_budget(level)
        if budget is None:
            raise ThinkingError(
                UNKNOWN_LEVEL,
                f'unknown level "{level}", valid levels: {_levels_text(LEVELS_WITH_SPECIALS)}',
                model=model,
            )
        config = ThinkingConfig(mode="budget", budget=budget, from_level=True)
    elif capability == "level" and config.mode == "budget":
        budget = config.budget if config.budget is not None else 0
        derived = budget_to_level(budget)
        if derived is None:
            raise ThinkingError(INVALID_BUDGET, f"budget {budget} cannot be converted to a level", model=model)
        config = ThinkingConfig.of_level(support.nearest_level(derived))

    config = _normalise_special(config)

    if config.mode == "level" and support.levels:
        level = config.level or ""
        if not support.supports_level(level) and not family:
            level = support.nearest_level(level)
        if not support.supports_level(level):
            raise ThinkingError(
                LEVEL_NOT_SUPPORTED,
                f'level "{level}" not supported, valid levels: {_levels_text(support.levels)}',
                model=model,
            )
        config = ThinkingConfig(mode="level", level=level)

    strict = not from_suffix and family and not config.from_level
    if strict and config.mode == "budget" and support.has_range:
        budget = config.budget if config.budget is not None else 0
        if budget < support.min or budget > support.max:
            raise ThinkingError(
                BUDGET_OUT_OF_RANGE, f"budget {budget} out of range [{support.min},{support.max}]", model=model
            )

    if config.mode == "auto" and not support.dynamic_allowed:
        config = _auto_without_dynamic(support)

    if config.mode == "none":
        if upstream == "claude":
            return ThinkingConfig.none()
        budget = support.clamp_budget(0)
        level = support.levels[0] if budget > 0 and support.levels else None
        return ThinkingConfig(mode="none", budget=budget, level=level)
    if config.mode in ("budget", "auto"):
        budget = config.budget if config.budget is not None else -1
        return attrs.evolve(config, budget=support.clamp_budget(budget), level=None)
    return config



def _auto_without_dynamic(support: ThinkingSupport) -> ThinkingConfig:
    """`auto` for a model without dynamic thinking: medium on level-only models, mid-range budget otherwise."""
    if support.levels and not support.has_range:
        return ThinkingConfig(mode="level", level=support.nearest_level("medium"))
    middle = (support.min + support.max) // 2
    if middle <= 0:
        return ThinkingConfig.none() if support.zero_allowed else ThinkingConfig(mode="budget", budget=support.min)
    return ThinkingConfig(mode="budget", budget=middle)
