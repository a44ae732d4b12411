"""apply_thinking: the worked examples of translation.md §6.6, the §6.2 decision flow and the §6.5 appliers."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from proxyd.models.catalog import section
from proxyd.thinking import (
    BUDGET_OUT_OF_RANGE,
    LEVEL_NOT_SUPPORTED,
    ThinkingConfig,
    ThinkingError,
    apply_thinking,
    parse_suffix,
    strip_thinking,
)


def info(section_name: str, model_id: str) -> Mapping[str, Any]:
    return next(entry for entry in section(section_name) if entry["id"] == model_id)


GEMINI_25_PRO = info("gemini", "gemini-2.5-pro")
GEMINI_25_FLASH = info("gemini", "gemini-2.5-flash")
GEMINI_3_PRO = info("gemini", "gemini-3-pro-preview")
GEMINI_3_FLASH = info("gemini", "gemini-3-flash-preview")
CLI_3_PRO = info("gemini-cli", "gemini-3-pro-preview")
CLI_25_PRO = info("gemini-cli", "gemini-2.5-pro")
SONNET_45 = info("claude", "claude-sonnet-4-5-20250929")
OPUS_46 = info("claude", "claude-opus-4-6")
OPUS_41 = info("claude", "claude-opus-4-1-20250805")
HAIKU_35 = info("claude", "claude-3-5-haiku-20241022")
GPT_5 = info("codex-pro", "gpt-5")
GPT_51 = info("codex-pro", "gpt-5.1")
GPT_52 = info("codex-pro", "gpt-5.2")
GPT_51_CODEX = info("codex-pro", "gpt-5.1-codex")


def run(body: dict, upstream: str, model_info: Mapping[str, Any] | None, *, client: str,
        suffix: str | None = None, user_defined: bool = False) -> dict:
    """apply_thinking, asserting on the way that the input body is left untouched."""
    before = copy.deepcopy(body)
    model = model_info["id"] if model_info is not None else "custom-model"
    result = apply_thinking(
        body, upstream_format=upstream, model=model, model_info=model_info,
        suffix=parse_suffix(suffix) if suffix is not None else None, client_format=client,
        user_defined=user_defined,
    )
    assert body == before
    assert result is not body
    return result


def gemini_tc(body: dict) -> dict:
    return body["generationConfig"]["thinkingConfig"]


def cli_tc(body: dict) -> dict:
    return body["request"]["generationConfig"]["thinkingConfig"]


# --- §6.6 worked examples ------------------------------------------------------------------------------------


class TestWorkedExamples:
    def test_openai_client_gemini_25_pro_high_suffix(self) -> None:
        result = run({"contents": []}, "gemini", GEMINI_25_PRO, client="openai", suffix="high")
        assert gemini_tc(result) == {"thinkingBudget": 24576}
        assert result["contents"] == []

    def test_openai_none_to_gemini_3_pro(self) -> None:
        body = {"generationConfig": {"thinkingConfig": {"thinkingLevel": "none"}}}
        result = run(body, "gemini", GEMINI_3_PRO, client="openai")
        assert gemini_tc(result) == {"thinkingLevel": "low", "includeThoughts": False}

    def test_openai_none_to_gemini_3_pro_from_budget_zero(self) -> None:
        body = {"generationConfig": {"thinkingConfig": {"thinkingBudget": 0, "includeThoughts": True}}}
        result = run(body, "gemini", GEMINI_3_PRO, client="openai")
        assert gemini_tc(result) == {"thinkingLevel": "low", "includeThoughts": False}

    def test_openai_none_to_gemini_25_flash(self) -> None:
        body = {"generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}}
        result = run(body, "gemini", GEMINI_25_FLASH, client="openai")
        assert gemini_tc(result) == {"thinkingBudget": 0, "includeThoughts": False}

    def test_gemini_client_budget_out_of_range_same_family(self) -> None:
        body = {"generationConfig": {"thinkingConfig": {"thinkingBudget": 100000}}}
        with pytest.raises(ThinkingError) as err:
            run(body, "gemini", GEMINI_25_PRO, client="gemini")
        assert err.value.code == BUDGET_OUT_OF_RANGE
        assert str(err.value) == "budget 100000 out of range [128,32768]"

    def test_claude_client_budget_clamped_cross_family(self) -> None:
        body = {"generationConfig": {"thinkingConfig": {"thinkingBudget": 100000, "includeThoughts": True}}}
        result = run(body, "gemini", GEMINI_25_PRO, client="claude")
        assert gemini_tc(result) == {"thinkingBudget": 32768, "includeThoughts": True}

    def test_openai_client_xhigh_to_gpt_51_same_family(self) -> None:
        with pytest.raises(ThinkingError) as err:
            run({"reasoning": {"effort": "xhigh"}}, "codex", GPT_51, client="openai")
        assert err.value.code == LEVEL_NOT_SUPPORTED
        assert str(err.value) == 'level "xhigh" not supported, valid levels: none, low, medium, high'

    def test_claude_client_budget_to_codex(self) -> None:
        # The translator turned budget_tokens 10000 into its band, `high`.
        result = run({"reasoning": {"effort": "high", "summary": "auto"}}, "codex", GPT_51, client="claude")
        assert result["reasoning"] == {"effort": "high", "summary": "auto"}

    def test_codex_budget_suffix(self) -> None:
        result = run({"input": []}, "codex", GPT_51, client="openai", suffix="8192")
        assert result["reasoning"] == {"effort": "medium"}

    def test_claude_sonnet_auto_suffix(self) -> None:
        result = run({"max_tokens": 32000}, "claude", SONNET_45, client="openai", suffix="auto")
        assert result["thinking"] == {"type": "enabled", "budget_tokens": 31999}
        assert result["max_tokens"] == 32000

    def test_openai_high_to_opus_46(self) -> None:
        body = {"max_tokens": 32000, "thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}}
        result = run(body, "claude", OPUS_46, client="openai")
        assert result["thinking"] == {"type": "adaptive"}
        assert result["output_config"] == {"effort": "high"}


# --- §6.2 decision flow --------------------------------------------------------------------------------------


class TestFlow:
    @pytest.mark.parametrize("upstream", ["kimi", "iflow", "antigravity", "something"])
    def test_no_applier_is_passthrough(self, upstream: str) -> None:
        body = {"reasoning_effort": "high", "thinking": {"type": "enabled"}}
        result = run(body, upstream, GEMINI_25_PRO, client="openai", suffix="8192")
        assert result == body

    def test_no_config_is_passthrough(self) -> None:
        body = {"generationConfig": {"temperature": 0.5}}
        assert run(body, "gemini", GEMINI_25_PRO, client="openai") == body

    def test_suffix_beats_body(self) -> None:
        body = {"generationConfig": {"thinkingConfig": {"thinkingBudget": 100000}}}
        result = run(body, "gemini", GEMINI_25_PRO, client="gemini", suffix="1024")
        assert gemini_tc(result) == {"thinkingBudget": 1024}

    def test_invalid_suffix_value_falls_back_to_body(self) -> None:
        body = {"generationConfig": {"thinkingConfig": {"thinkingBudget": 2048}}}
        result = run(body, "gemini", GEMINI_25_PRO, client="gemini", suffix="bogus")
        assert gemini_tc(result) == {"thinkingBudget": 2048}

    def test_openai_response_upstream_is_codex(self) -> None:
        result = run({}, "openai-response", GPT_51, client="openai", suffix="high")
        assert result["reasoning"] == {"effort": "high"}

    def test_proxyd_protocol_names(self) -> None:
        with pytest.raises(ThinkingError):
            run({"reasoning": {"effort": "xhigh"}}, "openai-responses", GPT_51, client="openai-chat")
        result = run({"reasoning_effort": "max"}, "openai-chat", GPT_51, client="claude")
        assert result == {"reasoning_effort": "high"}

    def test_client_format_empty_means_upstream(self) -> None:
        body = {"generationConfig": {"thinkingConfig": {"thinkingBudget": 100000}}}
        with pytest.raises(ThinkingError):
            run(body, "gemini", GEMINI_25_PRO, client="")


class TestKnownModelWithoutThinking:
    def test_claude_fields_stripped(self) -> None:
        body = {"model": "m", "thinking": {"type": "enabled", "budget_tokens": 2048},
                "output_config": {"effort": "high"}}
        assert run(body, "claude", HAIKU_35, client="claude") == {"model": "m"}

    def test_claude_keeps_other_output_config(self) -> None:
        body = {"thinking": {"type": "adaptive"}, "output_config": {"effort": "high", "format": "x"}}
        assert run(body, "claude", HAIKU_35, client="openai") == {"output_config": {"format": "x"}}

    def test_suffix_on_model_without_thinking_is_no_error(self) -> None:
        assert run({"max_tokens": 10}, "claude", HAIKU_35, client="openai", suffix="high") == {"max_tokens": 10}

    def test_gemini_stripped(self) -> None:
        body = {"generationConfig": {"temperature": 1, "thinkingConfig": {"thinkingBudget": 1}}}
        assert run(body, "gemini", {"id": "imagen"}, client="gemini") == {"generationConfig": {"temperature": 1}}

    def test_gemini_cli_stripped(self) -> None:
        body = {"request": {"generationConfig": {"thinkingConfig": {"thinkingBudget": 1}}}, "model": "x"}
        result = run(body, "gemini-cli", {"id": "x", "thinking": None}, client="gemini")
        assert result == {"request": {"generationConfig": {}}, "model": "x"}

    def test_openai_stripped(self) -> None:
        assert run({"reasoning_effort": "high", "n": 1}, "openai", {"id": "x"}, client="openai") == {"n": 1}

    def test_codex_stripped(self) -> None:
        assert run({"reasoning": {"effort": "high"}}, "codex", {"id": "x"}, client="openai") == {}
        result = run({"reasoning": {"effort": "high", "summary": "auto"}}, "codex", {"id": "x"}, client="openai")
        assert result == {"reasoning": {"summary": "auto"}}

    def test_nothing_to_strip(self) -> None:
        assert run({"contents": []}, "gemini", {"id": "x"}, client="gemini") == {"contents": []}
        assert strip_thinking({"request": 3}, "gemini-cli") == {"request": 3}


class TestUserDefined:
    def test_unknown_model_gemini_level_becomes_budget(self) -> None:
        result = run({}, "gemini", None, client="openai", suffix="high")
        assert gemini_tc(result) == {"thinkingBudget": 24576}

    def test_unknown_model_no_validation(self) -> None:
        body = {"generationConfig": {"thinkingConfig": {"thinkingBudget": 100000}}}
        assert gemini_tc(run(body, "gemini", None, client="gemini")) == {"thinkingBudget": 100000}

    def test_user_defined_flag_skips_validation(self) -> None:
        body = {"reasoning": {"effort": "xhigh"}}
        result = run(body, "codex", GPT_51, client="openai", user_defined=True)
        assert result["reasoning"] == {"effort": "xhigh"}

    def test_claude_level_stays_level(self) -> None:
        result = run({"max_tokens": 1000}, "claude", None, client="openai", suffix="high")
        assert result["thinking"] == {"type": "adaptive"}
        assert result["output_config"] == {"effort": "high"}

    def test_claude_budget(self) -> None:
        result = run({}, "claude", None, client="openai", suffix="5000")
        assert result["thinking"] == {"type": "enabled", "budget_tokens": 5000}
        assert "max_tokens" not in result

    def test_claude_auto(self) -> None:
        body = {"output_config": {"effort": "low"}}
        assert run(body, "claude", None, client="openai", suffix="auto") == {"thinking": {"type": "enabled"}}

    def test_claude_none(self) -> None:
        result = run({"thinking": {"type": "enabled", "budget_tokens": 3}}, "claude", None, client="x",
                     suffix="none")
        assert result == {"thinking": {"type": "disabled"}}

    def test_openai_budget_becomes_level_and_auto_is_auto(self) -> None:
        assert run({}, "openai", None, client="claude", suffix="10000")["reasoning_effort"] == "high"
        assert run({}, "openai", None, client="claude", suffix="auto")["reasoning_effort"] == "auto"
        assert run({}, "openai", None, client="claude", suffix="none")["reasoning_effort"] == "none"

    def test_gemini_none_and_auto(self) -> None:
        assert gemini_tc(run({}, "gemini", None, client="openai", suffix="none")) == {
            "thinkingBudget": 0, "includeThoughts": False}
        assert gemini_tc(run({}, "gemini", None, client="openai", suffix="auto")) == {
            "thinkingBudget": -1}

    def test_unknown_level_passes_through_as_level(self) -> None:
        body = {"request": {"generationConfig": {"thinkingConfig": {"thinkingLevel": "ultra"}}}}
        assert cli_tc(run(body, "gemini-cli", None, client="gemini")) == {"thinkingLevel": "ultra"}

    def test_user_defined_claude_uses_model_max_tokens(self) -> None:
        result = run({}, "claude", {"id": "c", "max_completion_tokens": 4096}, client="openai", suffix="8192",
                     user_defined=True)
        assert result["max_tokens"] == 4096
        assert result["thinking"] == {"type": "enabled", "budget_tokens": 4095}


# --- §6.5 appliers -------------------------------------------------------------------------------------------


class TestGeminiApplier:
    def test_level_on_hybrid_removes_budget_keys(self) -> None:
        body = {"generationConfig": {"thinkingConfig": {"thinkingBudget": 5, "thinking_budget": 5,
                                                        "thinking_level": "low", "include_thoughts": False}}}
        result = run(body, "gemini", GEMINI_3_PRO, client="openai", suffix="high")
        assert gemini_tc(result) == {"thinkingLevel": "high", "includeThoughts": False}

    def test_level_keeps_include_thoughts_unset(self) -> None:
        # The amount alone (a suffix) does not ask for the thoughts; the body's includeThoughts is kept as it is
        # (the recorded build: route.thinking_suffix.gemini sends `thinkingBudget` only).
        result = run({}, "gemini", GEMINI_3_FLASH, client="openai", suffix="medium")
        assert gemini_tc(result) == {"thinkingLevel": "medium"}
        body = {"generationConfig": {"thinkingConfig": {"thinkingLevel": "low", "includeThoughts": True}}}
        result = run(body, "gemini", GEMINI_3_FLASH, client="openai", suffix="medium")
        assert gemini_tc(result) == {"thinkingLevel": "medium", "includeThoughts": True}

    def test_budget_on_hybrid_uses_budget_format(self) -> None:
        body = {"generationConfig": {"thinkingConfig": {"thinkingLevel": "low"}}}
        result = run(body, "gemini", GEMINI_3_PRO, client="openai", suffix="8192")
        assert gemini_tc(result) == {"thinkingBudget": 8192}

    def test_auto_on_hybrid_uses_budget_format(self) -> None:
        result = run({}, "gemini", GEMINI_3_PRO, client="openai", suffix="auto")
        assert gemini_tc(result) == {"thinkingBudget": -1}

    def test_budget_user_include_thoughts_kept(self) -> None:
        body = {"generationConfig": {"thinkingConfig": {"thinkingBudget": 4096, "include_thoughts": False}}}
        result = run(body, "gemini", GEMINI_25_PRO, client="gemini")
        assert gemini_tc(result) == {"thinkingBudget": 4096, "includeThoughts": False}

    def test_none_forces_include_thoughts_false(self) -> None:
        body = {"generationConfig": {"thinkingConfig": {"thinkingBudget": 0, "includeThoughts": True}}}
        result = run(body, "gemini", GEMINI_25_PRO, client="openai")
        assert gemini_tc(result) == {"thinkingBudget": 128, "includeThoughts": False}

    def test_other_generation_config_kept(self) -> None:
        body = {"generationConfig": {"temperature": 0.2, "thinkingConfig": {"thinkingBudget": 1000}}}
        result = run(body, "gemini", GEMINI_25_PRO, client="gemini")
        assert result["generationConfig"]["temperature"] == 0.2

    def test_cli_paths(self) -> None:
        body = {"project": "p", "request": {"contents": [], "generationConfig": {"thinkingConfig": {
            "thinkingLevel": "high"}}}}
        result = run(body, "gemini-cli", CLI_3_PRO, client="gemini")
        assert cli_tc(result) == {"thinkingLevel": "high"}
        assert result["project"] == "p"
        assert result["request"]["contents"] == []
        assert "generationConfig" not in result

    def test_cli_budget_on_hybrid(self) -> None:
        result = run({"request": {}}, "gemini-cli", CLI_3_PRO, client="openai", suffix="2000")
        assert cli_tc(result) == {"thinkingBudget": 2000}

    def test_cli_same_family_with_gemini_client(self) -> None:
        body = {"request": {"generationConfig": {"thinkingConfig": {"thinkingBudget": 50000}}}}
        with pytest.raises(ThinkingError, match=r"^budget 50000 out of range \[128,32768\]$"):
            run(body, "gemini-cli", CLI_25_PRO, client="gemini")

    def test_cli_none_on_hybrid(self) -> None:
        result = run({}, "gemini-cli", CLI_3_PRO, client="openai", suffix="none")
        assert cli_tc(result) == {"thinkingLevel": "low", "includeThoughts": False}


class TestClaudeApplier:
    def test_budget_sets_max_tokens_from_model(self) -> None:
        result = run({}, "claude", SONNET_45, client="openai", suffix="8192")
        assert result == {"thinking": {"type": "enabled", "budget_tokens": 8192}, "max_tokens": 64000}

    def test_budget_at_or_above_max_tokens_lowered(self) -> None:
        result = run({"max_tokens": 8192}, "claude", SONNET_45, client="openai", suffix="8192")
        assert result["thinking"]["budget_tokens"] == 8191

    def test_budget_lowering_skipped_below_min(self) -> None:
        result = run({"max_tokens": 1000}, "claude", SONNET_45, client="openai", suffix="2048")
        assert result["thinking"]["budget_tokens"] == 2048

    def test_level_on_budget_model_becomes_budget(self) -> None:
        body = {"max_tokens": 50000, "thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}}
        result = run(body, "claude", SONNET_45, client="openai")
        assert result == {"max_tokens": 50000, "thinking": {"type": "enabled", "budget_tokens": 24576}}

    def test_level_on_adaptive_model(self) -> None:
        body = {"max_tokens": 1000, "thinking": {"type": "enabled", "budget_tokens": 9000},
                "output_config": {"format": {"type": "json"}}}
        result = run(body, "claude", OPUS_46, client="openai", suffix="max")
        assert result["thinking"] == {"type": "adaptive"}
        assert result["output_config"] == {"format": {"type": "json"}, "effort": "max"}

    def test_unsupported_level_same_family(self) -> None:
        body = {"thinking": {"type": "adaptive"}, "output_config": {"effort": "xhigh"}}
        with pytest.raises(ThinkingError, match=r'^level "xhigh" not supported, valid levels: low, medium, high, max$'):
            run(body, "claude", OPUS_46, client="claude")

    def test_budget_on_adaptive_model(self) -> None:
        body = {"max_tokens": 20000, "output_config": {"effort": "low"}}
        result = run(body, "claude", OPUS_46, client="openai", suffix="16000")
        assert result == {"max_tokens": 20000, "thinking": {"type": "enabled", "budget_tokens": 16000}}

    def test_none(self) -> None:
        body = {"thinking": {"type": "enabled", "budget_tokens": 4096}, "output_config": {"effort": "low"}}
        assert run(body, "claude", OPUS_46, client="openai", suffix="none") == {"thinking": {"type": "disabled"}}
        assert run(body, "claude", OPUS_41, client="openai", suffix="0") == {"thinking": {"type": "disabled"}}

    def test_claude_client_budget_same_family_strict(self) -> None:
        body = {"max_tokens": 200000, "thinking": {"type": "enabled", "budget_tokens": 200000}}
        with pytest.raises(ThinkingError, match=r"^budget 200000 out of range \[1024,128000\]$"):
            run(body, "claude", OPUS_41, client="claude")

    def test_cross_family_clamped_then_fit(self) -> None:
        body = {"thinking": {"type": "enabled", "budget_tokens": 200000}}
        result = run(body, "claude", OPUS_41, client="openai")
        # clamped to 128000, then below the model's 32000 max completion tokens
        assert result == {"thinking": {"type": "enabled", "budget_tokens": 31999}, "max_tokens": 32000}


class TestOpenAIAndCodexAppliers:
    def test_openai_level(self) -> None:
        assert run({"reasoning_effort": "low"}, "openai", GPT_52, client="openai", suffix="xhigh") == {
            "reasoning_effort": "xhigh"}

    def test_none_listed(self) -> None:
        assert run({}, "codex", GPT_51, client="openai", suffix="none") == {"reasoning": {"effort": "none"}}
        assert run({"reasoning_effort": "none"}, "openai", GPT_52, client="openai") == {"reasoning_effort": "none"}

    def test_none_not_listed_takes_first_level(self) -> None:
        assert run({}, "codex", GPT_5, client="openai", suffix="none") == {"reasoning": {"effort": "minimal"}}
        assert run({}, "codex", GPT_51_CODEX, client="openai", suffix="0") == {"reasoning": {"effort": "low"}}

    def test_auto_on_level_only(self) -> None:
        assert run({}, "codex", GPT_51, client="openai", suffix="auto") == {"reasoning": {"effort": "medium"}}

    def test_cross_family_level_clamped(self) -> None:
        body = {"reasoning": {"effort": "max"}}
        assert run(body, "codex", GPT_52, client="claude")["reasoning"] == {"effort": "xhigh"}
        assert run(body, "codex", GPT_51, client="gemini")["reasoning"] == {"effort": "high"}

    def test_budget_suffix_bands(self) -> None:
        assert run({}, "codex", GPT_52, client="openai", suffix="30000")["reasoning"] == {"effort": "xhigh"}
        assert run({}, "codex", GPT_51, client="openai", suffix="30000")["reasoning"] == {"effort": "high"}
        assert run({}, "codex", GPT_51_CODEX, client="openai", suffix="100")["reasoning"] == {"effort": "low"}

    def test_unknown_level_same_family(self) -> None:
        with pytest.raises(ThinkingError, match=r'^level "turbo" not supported, valid levels: low, medium, high$'):
            run({"reasoning_effort": "turbo"}, "openai", GPT_51_CODEX, client="openai")


def test_explicit_config_object() -> None:
    result = apply_thinking({}, upstream_format="gemini", model="gemini-2.5-pro(99)", model_info=GEMINI_25_PRO,
                            suffix=ThinkingConfig(mode="budget", budget=4000), client_format="openai")
    assert gemini_tc(result) == {"thinkingBudget": 4000}


def test_unchanged_sub_objects_are_shared() -> None:
    contents = [{"role": "user", "parts": [{"text": "hi"}]}]
    body = {"contents": contents, "generationConfig": {"thinkingConfig": {"thinkingBudget": 1000}}}
    result = run(body, "gemini", GEMINI_25_PRO, client="gemini")
    assert result["contents"] is contents
    assert result["generationConfig"] is not body["generationConfig"]
