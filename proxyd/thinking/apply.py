"""The decision flow of translation.md §6.2 and the provider appliers of §6.5.

Everything here is pure: the input body is never changed; the result is a new dict that shares every
sub-object it did not have to change (only the objects on the path to a written field are copied)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from proxyd.thinking.config import (
    ThinkingConfig,
    budget_to_level,
    config_from_body,
    level_to_budget,
    normalize_format,
)
from proxyd.thinking.suffix import split_model_suffix
from proxyd.thinking.validate import ThinkingSupport, validate_config

Body = dict[str, Any]
Applier = Callable[[Mapping[str, Any], ThinkingConfig, ThinkingSupport | None, Mapping[str, Any] | None], Body]

#: Upstream formats whose bodies take a thinking budget (levels are turned into budgets for unknown models).
BUDGET_FORMATS = frozenset({"gemini", "gemini-cli"})


def _child(parent: Body, key: str) -> Body:
    """Replace `parent[key]` by a copy of it (a new object when absent or not an object) and return the copy."""
    value = parent.get(key)
    child = dict(value) if isinstance(value, Mapping) else {}
    parent[key] = child
    return child


def _existing_child(parent: Body, key: str) -> Body | None:
    """Like `_child`, but None (and nothing written) when `parent[key]` is not an object."""
    return _child(parent, key) if isinstance(parent.get(key), Mapping) else None


def _int_field(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


# --- gemini / gemini-cli -------------------------------------------------------------------------------------


def _gemini_thinking_config(out: Body, *, cli: bool) -> Body:
    root = _child(out, "request") if cli else out
    return _child(_child(root, "generationConfig"), "thinkingConfig")


def _user_include_thoughts(thinking: Mapping[str, Any]) -> bool | None:
    for key in ("includeThoughts", "include_thoughts"):
        value = thinking.get(key)
        if isinstance(value, bool):
            return value
    return None


def _apply_gemini_like(
    body: Mapping[str, Any], config: ThinkingConfig, support: ThinkingSupport | None, *, cli: bool
) -> Body:
    out = dict(body)
    thinking = _gemini_thinking_config(out, cli=cli)
    user_include = _user_include_thoughts(thinking)
    for key in ("thinking_budget", "thinking_level", "include_thoughts"):
        thinking.pop(key, None)
    if config.mode == "none":
        level_format = bool(support.levels) if support is not None else config.level is not None
    else:
        level_format = config.mode == "level"
    if level_format:
        thinking.pop("thinkingBudget", None)
        if config.mode == "none":
            if config.level is not None:
                thinking["thinkingLevel"] = config.level
            thinking["includeThoughts"] = False
        else:
            thinking["thinkingLevel"] = config.level
            if user_include is not None:
                thinking["includeThoughts"] = user_include
        return out
    thinking.pop("thinkingLevel", None)
    budget = -1 if config.mode == "auto" else (config.budget or 0)
    thinking["thinkingBudget"] = budget
    if config.mode == "none":
        thinking["includeThoughts"] = False
    elif user_include is not None:
        thinking["includeThoughts"] = user_include
    return out


def _apply_gemini(body: Mapping[str, Any], config: ThinkingConfig, support: ThinkingSupport | None,
                  model_info: Mapping[str, Any] | None) -> Body:
    return _apply_gemini_like(body, config, support, cli=False)


def _apply_gemini_cli(body: Mapping[str, Any], config: ThinkingConfig, support: ThinkingSupport | None,
                      model_info: Mapping[str, Any] | None) -> Body:
    return _apply_gemini_like(body, config, support, cli=True)


# --- claude --------------------------------------------------------------------------------------------------


def _clear_claude_effort(out: Body) -> None:
    """Remove `output_config.effort`, and `output_config` itself when that leaves it empty."""
    output_config = out.get("output_config")
    if not isinstance(output_config, Mapping):
        return
    rest = {key: value for key, value in output_config.items() if key != "effort"}
    if rest:
        out["output_config"] = rest
    else:
        del out["output_config"]


def _fit_claude_budget(out: Body, thinking: Body, budget: int, support: ThinkingSupport | None,
                       model_info: Mapping[str, Any] | None) -> None:
    """Default `max_tokens` to the model's maximum and keep the budget below it (Anthropic requires it)."""
    max_tokens = _int_field(out.get("max_tokens"))
    if max_tokens is None or max_tokens <= 0:
        default = _int_field(model_info.get("max_completion_tokens")) if model_info is not None else None
        if default is None or default <= 0:
            return
        out["max_tokens"] = max_tokens = default
    if budget < max_tokens:
        return
    lowered = max_tokens - 1
    minimum = support.min if support is not None else 0
    if lowered < max(minimum, 1):
        return
    thinking["budget_tokens"] = lowered


def _apply_claude(body: Mapping[str, Any], config: ThinkingConfig, support: ThinkingSupport | None,
                  model_info: Mapping[str, Any] | None) -> Body:
    out = dict(body)
    thinking = _child(out, "thinking")
    thinking.pop("budget_tokens", None)
    adaptive = support is None or bool(support.levels)
    if config.mode == "level" and not adaptive:
        budget = level_to_budget(config.level or "")
        if budget is not None and budget > 0:
            config = ThinkingConfig(mode="budget", budget=budget, from_level=True)
    if config.mode == "none":
        thinking["type"] = "disabled"
        _clear_claude_effort(out)
    elif config.mode == "level":
        thinking["type"] = "adaptive"
        _child(out, "output_config")["effort"] = config.level
    elif config.mode == "auto":
        thinking["type"] = "adaptive" if support is not None and support.levels else "enabled"
        _clear_claude_effort(out)
    else:
        budget = config.budget or 0
        thinking["type"] = "enabled"
        thinking["budget_tokens"] = budget
        _clear_claude_effort(out)
        _fit_claude_budget(out, thinking, budget, support, model_info)
    return out


# --- openai / codex ------------------------------------------------------------------------------------------


def _effort(config: ThinkingConfig, support: ThinkingSupport | None) -> str:
    """The `reasoning_effort` value for a config; `support` None means an unvalidated (user-defined) model."""
    if config.mode == "level":
        return config.level or "medium"
    if config.mode == "auto":
        return "auto"
    if config.mode == "none":
        if support is None or support.zero_allowed or "none" in support.levels:
            return "none"
        if config.level is not None:
            return config.level
        return support.levels[0] if support.levels else "none"
    level = budget_to_level(config.budget or 0) or "medium"
    return support.nearest_level(level) if support is not None else level


def _apply_openai(body: Mapping[str, Any], config: ThinkingConfig, support: ThinkingSupport | None,
                  model_info: Mapping[str, Any] | None) -> Body:
    out = dict(body)
    out["reasoning_effort"] = _effort(config, support)
    return out


def _apply_codex(body: Mapping[str, Any], config: ThinkingConfig, support: ThinkingSupport | None,
                 model_info: Mapping[str, Any] | None) -> Body:
    out = dict(body)
    _child(out, "reasoning")["effort"] = _effort(config, support)
    return out


APPLIERS: Mapping[str, Applier] = {
    "gemini": _apply_gemini,
    "gemini-cli": _apply_gemini_cli,
    "claude": _apply_claude,
    "openai": _apply_openai,
    "codex": _apply_codex,
}


def _upstream_key(upstream_format: str) -> str:
    fmt = normalize_format(upstream_format)
    return "codex" if fmt == "openai-response" else fmt


# --- stripping (known models without thinking) ---------------------------------------------------------------


def strip_thinking(body: Mapping[str, Any], upstream_format: str) -> Body:
    """A copy of `body` without the thinking fields of `upstream_format` (§6.2 step 4)."""
    fmt = _upstream_key(upstream_format)
    out = dict(body)
    if fmt == "claude":
        out.pop("thinking", None)
        _clear_claude_effort(out)
    elif fmt in ("gemini", "gemini-cli", "antigravity"):
        root = out if fmt == "gemini" else _existing_child(out, "request")
        generation = _existing_child(root, "generationConfig") if root is not None else None
        if generation is not None:
            generation.pop("thinkingConfig", None)
    elif fmt == "openai":
        out.pop("reasoning_effort", None)
    elif fmt == "codex":
        reasoning = _existing_child(out, "reasoning")
        if reasoning is not None:
            reasoning.pop("effort", None)
            if not reasoning:
                del out["reasoning"]
    return out


# --- the entry point -----------------------------------------------------------------------------------------


def apply_thinking(
    body: Mapping[str, Any],
    *,
    upstream_format: str,
    model: str,
    model_info: Mapping[str, Any] | None,
    suffix: ThinkingConfig | None,
    client_format: str,
    user_defined: bool = False,
) -> Body:
    """Write the requested thinking setting into an upstream-format body (translation.md §6.2); a new dict.

    `model` is the upstream model (a suffix on it is ignored; pass the parsed one as `suffix`), `model_info`
    its catalogue entry (None = unknown), `client_format` the client's protocol (decides "same family").
    Unknown and user-defined models get the setting unvalidated; known models without thinking lose their
    thinking fields; other models are validated (ThinkingError for the HTTP 400 cases) and then written."""
    upstream = _upstream_key(upstream_format)
    applier = APPLIERS.get(upstream)
    if applier is None:
        return dict(body)
    base_model = split_model_suffix(model)[0]
    client = normalize_format(client_format) or upstream

    if model_info is None or user_defined:
        config = suffix if suffix is not None else config_from_body(body, upstream)
        if config is None:
            return dict(body)
        if config.mode == "level" and upstream in BUDGET_FORMATS:
            budget = level_to_budget(config.level or "")
            if budget is not None:
                config = ThinkingConfig(mode="budget", budget=budget, from_level=True)
        return applier(body, config, None, model_info)

    support = ThinkingSupport.from_model_info(model_info)
    if support is None:
        return strip_thinking(body, upstream)

    config = suffix if suffix is not None else config_from_body(body, upstream)
    if config is None:
        return dict(body)
    validated = validate_config(
        config, support, client_format=client, upstream_format=upstream, from_suffix=suffix is not None,
        model=base_model,
    )
    return applier(body, validated, support, model_info)
