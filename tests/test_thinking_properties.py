"""Property tests: apply_thinking never mutates its input, and what it writes always fits the model."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from proxyd.models.catalog import section
from proxyd.thinking import (
    STANDARD_LEVELS,
    ThinkingConfig,
    ThinkingError,
    ThinkingSupport,
    apply_thinking,
    config_from_body,
    parse_suffix,
)

# (upstream format, catalogue section) pairs an executor would use.
TARGETS = [("gemini", "gemini"), ("gemini-cli", "gemini-cli"), ("claude", "claude"), ("codex", "codex-pro"),
           ("openai", "codex-pro")]
MODELS = [(fmt, entry) for fmt, name in TARGETS for entry in section(name)]
CLIENTS = ["openai", "openai-response", "claude", "gemini", "gemini-cli", "codex", ""]
LEVEL_WORDS = [*STANDARD_LEVELS, "none", "auto", "bogus", "HIGH"]

json_scalars = st.none() | st.booleans() | st.integers(-3, 200000) | st.sampled_from(LEVEL_WORDS)
budgets = st.integers(-3, 200000)


def _thinking_fields() -> st.SearchStrategy[dict[str, Any]]:
    gemini_tc = st.fixed_dictionaries({}, optional={
        "thinkingBudget": budgets, "thinking_budget": budgets, "thinkingLevel": st.sampled_from(LEVEL_WORDS),
        "thinking_level": st.sampled_from(LEVEL_WORDS), "includeThoughts": st.booleans(),
        "include_thoughts": json_scalars})
    generation = st.fixed_dictionaries({}, optional={"thinkingConfig": gemini_tc | json_scalars,
                                                     "temperature": st.floats(0, 2)})
    claude_thinking = st.fixed_dictionaries({}, optional={
        "type": st.sampled_from(["enabled", "disabled", "adaptive", "auto", "weird"]), "budget_tokens": budgets})
    return st.fixed_dictionaries({}, optional={
        "generationConfig": generation,
        "request": st.fixed_dictionaries({}, optional={"generationConfig": generation, "contents": st.just([])}),
        "thinking": claude_thinking | json_scalars,
        "output_config": st.fixed_dictionaries({}, optional={"effort": st.sampled_from(LEVEL_WORDS),
                                                             "format": st.just({"type": "json"})}),
        "reasoning_effort": st.sampled_from(LEVEL_WORDS) | json_scalars,
        "reasoning": st.fixed_dictionaries({}, optional={"effort": st.sampled_from(LEVEL_WORDS),
                                                         "summary": st.just("auto")}) | json_scalars,
        "max_tokens": st.integers(-1, 200000) | st.none(),
        "messages": st.just([{"role": "user", "content": "hi"}]),
    })


bodies = _thinking_fields()
suffix_values = st.sampled_from([*LEVEL_WORDS, "0", "007", "-1", "8192", "100000", "", "x"]) | budgets.map(str)
model_infos = st.sampled_from(MODELS).map(lambda pair: pair[1]) | st.none() | st.just({"id": "plain"})


@settings(max_examples=400, deadline=None)
@given(body=bodies, upstream=st.sampled_from(["gemini", "gemini-cli", "claude", "openai", "codex", "kimi"]),
       model_info=model_infos, suffix=st.none() | suffix_values, client=st.sampled_from(CLIENTS),
       user_defined=st.booleans())
def test_never_mutates_input(body: dict, upstream: str, model_info: Mapping[str, Any] | None, suffix: str | None,
                             client: str, user_defined: bool) -> None:
    before = copy.deepcopy(body)
    try:
        result = apply_thinking(
            body, upstream_format=upstream, model=str((model_info or {}).get("id", "m")), model_info=model_info,
            suffix=parse_suffix(suffix) if suffix is not None else None, client_format=client,
            user_defined=user_defined,
        )
    except ThinkingError:
        result = None
    assert body == before
    assert result is not body


def _assert_fits(config: ThinkingConfig, support: ThinkingSupport, upstream: str) -> None:
    if config.mode == "level":
        assert config.level in support.levels
    elif config.mode == "budget":
        assert config.budget is not None
        if support.has_range:
            assert support.min <= config.budget <= support.max
    elif config.mode == "auto":
        assert support.dynamic_allowed
    else:  # none: what was written must still be acceptable to the model
        assert upstream in ("claude", "openai", "codex") or support.zero_allowed or support.levels


@settings(max_examples=400, deadline=None)
@given(target=st.sampled_from(MODELS), body=bodies, suffix=st.none() | suffix_values,
       client=st.sampled_from(CLIENTS))
def test_result_fits_the_model(target: tuple[str, Mapping[str, Any]], body: dict, suffix: str | None,
                               client: str) -> None:
    upstream, model_info = target
    support = ThinkingSupport.from_model_info(model_info)
    try:
        result = apply_thinking(
            body, upstream_format=upstream, model=model_info["id"], model_info=model_info,
            suffix=parse_suffix(suffix) if suffix is not None else None, client_format=client,
        )
    except ThinkingError:
        return  # an invalid request: answered with 400, nothing written
    written = config_from_body(result, upstream)
    if support is None:
        assert written is None
        return
    if written is None:
        return
    _assert_fits(written, support, upstream)
    if upstream == "claude" and written.mode == "budget":
        assert written.budget is not None
        max_tokens = result.get("max_tokens")
        if isinstance(max_tokens, int) and max_tokens > support.min:
            assert written.budget < max_tokens


@settings(max_examples=200, deadline=None)
@given(target=st.sampled_from(MODELS), suffix=suffix_values, client=st.sampled_from(CLIENTS))
def test_suffix_budgets_never_fail(target: tuple[str, Mapping[str, Any]], suffix: str, client: str) -> None:
    """Suffix budgets are clamped, never rejected (levels may still be rejected within a family)."""
    upstream, model_info = target
    config = parse_suffix(suffix)
    if config is None or config.mode == "level":
        return
    apply_thinking({}, upstream_format=upstream, model=model_info["id"], model_info=model_info, suffix=config,
                   client_format=client)
