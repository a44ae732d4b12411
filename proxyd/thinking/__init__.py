"""The thinking subsystem (translation.md §6): model-name suffixes, body settings, validation, provider fields."""

from proxyd.thinking.apply import APPLIERS, apply_thinking, strip_thinking
from proxyd.thinking.config import (
    BUDGET_OUT_OF_RANGE,
    INVALID_BUDGET,
    LEVEL_BUDGETS,
    LEVEL_NOT_SUPPORTED,
    STANDARD_LEVELS,
    UNKNOWN_LEVEL,
    ThinkingConfig,
    ThinkingError,
    budget_to_level,
    config_from_body,
    level_to_budget,
    normalize_format,
)
from proxyd.thinking.suffix import parse_suffix, resolve_auto_model, split_model_suffix
from proxyd.thinking.validate import ThinkingSupport, same_family, validate_config

__all__ = [
    "APPLIERS",
    "BUDGET_OUT_OF_RANGE",
    "INVALID_BUDGET",
    "LEVEL_BUDGETS",
    "LEVEL_NOT_SUPPORTED",
    "STANDARD_LEVELS",
    "UNKNOWN_LEVEL",
    "ThinkingConfig",
    "ThinkingError",
    "ThinkingSupport",
    "apply_thinking",
    "budget_to_level",
    "config_from_body",
    "level_to_budget",
    "normalize_format",
    "parse_suffix",
    "resolve_auto_model",
    "same_family",
    "split_model_suffix",
    "strip_thinking",
    "validate_config",
]
