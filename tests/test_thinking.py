"""Thinking subsystem, the parts without a body to write: suffix grammar, `auto`, tables, body parsing, §6.4."""

from __future__ import annotations

import pytest

from proxyd.thinking import (
    BUDGET_OUT_OF_RANGE,
    LEVEL_NOT_SUPPORTED,
    UNKNOWN_LEVEL,
    ThinkingConfig,
    ThinkingError,
    ThinkingSupport,
    budget_to_level,
    config_from_body,
    level_to_budget,
    parse_suffix,
    resolve_auto_model,
    same_family,
    split_model_suffix,
    validate_config,
)

NONE = ThinkingConfig(mode="none", budget=0)
AUTO = ThinkingConfig(mode="auto", budget=-1)


def level(name: str) -> ThinkingConfig:
    return ThinkingConfig(mode="level", level=name)


def budget(n: int) -> ThinkingConfig:
    return ThinkingConfig(mode="budget", budget=n)


# --- suffix grammar ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gemini-2.5-pro(8192)", ("gemini-2.5-pro", "8192")),
        ("gpt-5.2(high)", ("gpt-5.2", "high")),
        ("x(none)", ("x", "none")),
        ("x()", ("x", "")),
        ("x(high", ("x(high", None)),
        ("xhigh)", ("xhigh)", None)),
        ("name(with)paren(low)", ("name(with)paren", "low")),
        ("gemini-2.5-pro", ("gemini-2.5-pro", None)),
        ("", ("", None)),
        ("teamA/claude-sonnet-4-5(auto)", ("teamA/claude-sonnet-4-5", "auto")),
    ],
)
def test_split_model_suffix(model: str, expected: tuple[str, str | None]) -> None:
    assert split_model_suffix(model) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("8192", budget(8192)),
        ("007", budget(7)),
        ("0", NONE),
        ("000", NONE),
        ("none", NONE),
        ("NONE", NONE),
        ("auto", AUTO),
        ("Auto", AUTO),
        ("-1", AUTO),
        ("high", level("high")),
        ("HIGH", level("high")),
        ("minimal", level("minimal")),
        ("xhigh", level("xhigh")),
        ("max", level("max")),
        ("bogus", None),
        ("", None),
        ("-2", None),
        ("1.5", None),
        ("+5", None),
        ("١٢", None),  # non-ASCII digits are not a budget
    ],
)
def test_parse_suffix(value: str, expected: ThinkingConfig | None) -> None:
    assert parse_suffix(value) == expected


@pytest.mark.parametrize(
    ("model", "config"),
    [
        ("gpt-5.2(high)", level("high")),
        ("x(8192)", budget(8192)),
        ("x(none)", NONE),
        ("x(auto)", AUTO),
        ("x(-1)", AUTO),
        ("x(007)", budget(7)),
        ("x(bogus)", None),
        ("x()", None),
        ("name(with)paren(low)", level("low")),
    ],
)
def test_split_then_parse(model: str, config: ThinkingConfig | None) -> None:
    _, raw = split_model_suffix(model)
    assert raw is not None
    assert parse_suffix(raw) == config


def test_unterminated_suffix_is_no_suffix() -> None:
    assert split_model_suffix("x(high")[1] is None


# --- auto model ----------------------------------------------------------------------------------------------

MODELS = [("gemini-2.5-pro", 1750118400), ("gpt-5.4", 1772582400), ("claude-opus-4-6", 1770318000)]


def test_auto_resolves_to_newest() -> None:
    assert resolve_auto_model("auto", MODELS) == "gpt-5.4"


def test_auto_keeps_suffix() -> None:
    assert resolve_auto_model("auto(high)", MODELS) == "gpt-5.4(high)"
    assert resolve_auto_model("auto(8192)", iter(MODELS)) == "gpt-5.4(8192)"


def test_auto_ties_take_the_first() -> None:
    assert resolve_auto_model("auto", [("a", 5), ("b", 5), ("c", 1)]) == "a"


def test_auto_without_models_stays() -> None:
    assert resolve_auto_model("auto", []) == "auto"
    assert resolve_auto_model("auto(high)", []) == "auto(high)"


def test_non_auto_unchanged() -> None:
    assert resolve_auto_model("gemini-2.5-pro(8192)", MODELS) == "gemini-2.5-pro(8192)"
    assert resolve_auto_model("autopilot", MODELS) == "autopilot"


# --- §6.3 tables ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "tokens"),
    [("none", 0), ("auto", -1), ("minimal", 512), ("low", 1024), ("medium", 8192), ("high", 24576),
     ("xhigh", 32768), ("max", 128000), ("HIGH", 24576), ("bogus", None)],
)
def test_level_to_budget(name: str, tokens: int | None) -> None:
    assert level_to_budget(name) == tokens


@pytest.mark.parametrize(
    ("tokens", "name"),
    [(-2, None), (-1, "auto"), (0, "none"), (1, "minimal"), (512, "minimal"), (513, "low"), (1024, "low"),
     (1025, "medium"), (8192, "medium"), (8193, "high"), (24576, "high"), (24577, "xhigh"), (128000, "xhigh"),
     (10**9, "xhigh")],
)
def test_budget_to_level(tokens: int, name: str | None) -> None:
    assert budget_to_level(tokens) == name


def test_level_budget_round_trip_for_standard_levels() -> None:
    for name in ("minimal", "low", "medium", "high", "xhigh"):
        tokens = level_to_budget(name)
        assert tokens is not None
        assert budget_to_level(tokens) == name


# --- body parsing --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fmt", "expected"),
    [
        ({"reasoning_effort": "high"}, "openai", level("high")),
        ({"reasoning_effort": "HIGH"}, "openai", level("high")),
        ({"reasoning_effort": "none"}, "openai", NONE),
        ({"reasoning_effort": "auto"}, "openai", AUTO),
        ({"reasoning_effort": "bogus"}, "openai", level("bogus")),
        ({"reasoning_effort": ""}, "openai", None),
        ({"reasoning_effort": 3}, "openai", None),
        ({}, "openai", None),
        ({"reasoning": {"effort": "medium"}}, "codex", level("medium")),
        ({"reasoning": {"effort": "none"}}, "codex", NONE),
        ({"reasoning": {"summary": "auto"}}, "codex", None),
        ({"reasoning": "high"}, "codex", None),
        ({"reasoning": {"effort": "low"}}, "openai-response", level("low")),
        ({"reasoning_effort": "high"}, "codex", None),
        ({"thinking": {"type": "disabled"}}, "claude", NONE),
        ({"thinking": {"type": "enabled", "budget_tokens": 10000}}, "claude", budget(10000)),
        ({"thinking": {"type": "enabled", "budget_tokens": 0}}, "claude", NONE),
        ({"thinking": {"type": "enabled", "budget_tokens": -1}}, "claude", AUTO),
        ({"thinking": {"type": "enabled", "budget_tokens": -5}}, "claude", None),
        ({"thinking": {"type": "enabled", "budget_tokens": True}}, "claude", None),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048.0}}, "claude", budget(2048)),
        ({"thinking": {"type": "enabled"}}, "claude", AUTO),
        ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}}, "claude", level("high")),
        ({"thinking": {"type": "auto"}, "output_config": {"effort": "max"}}, "claude", level("max")),
        ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "none"}}, "claude", NONE),
        ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "auto"}}, "claude", AUTO),
        ({"thinking": {"type": "adaptive"}}, "claude", None),
        ({"output_config": {"effort": "high"}}, "claude", None),
        ({"thinking": "yes"}, "claude", None),
        ({"generationConfig": {"thinkingConfig": {"thinkingBudget": 8192}}}, "gemini", budget(8192)),
        ({"generationConfig": {"thinkingConfig": {"thinking_budget": 8192}}}, "gemini", budget(8192)),
        ({"generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}}, "gemini", NONE),
        ({"generationConfig": {"thinkingConfig": {"thinkingBudget": -1}}}, "gemini", AUTO),
        ({"generationConfig": {"thinkingConfig": {"thinkingLevel": "HIGH"}}}, "gemini", level("high")),
        ({"generationConfig": {"thinkingConfig": {"thinking_level": "low"}}}, "gemini", level("low")),
        ({"generationConfig": {"thinkingConfig": {"thinkingLevel": "none"}}}, "gemini", NONE),
        ({"generationConfig": {"thinkingConfig": {"thinkingLevel": "auto"}}}, "gemini", AUTO),
        # the level wins over the budget
        ({"generationConfig": {"thinkingConfig": {"thinkingLevel": "low", "thinkingBudget": 9000}}}, "gemini",
         level("low")),
        ({"generationConfig": {"thinkingConfig": {"includeThoughts": True}}}, "gemini", None),
        ({"generationConfig": {}}, "gemini", None),
        ({"request": {"generationConfig": {"thinkingConfig": {"thinkingBudget": 1024}}}}, "gemini-cli",
         budget(1024)),
        ({"request": {"generationConfig": {"thinkingConfig": {"thinkingLevel": "high"}}}}, "gemini-cli",
         level("high")),
        ({"request": {"generationConfig": {"thinkingConfig": {"thinkingBudget": 77}}}}, "antigravity",
         budget(77)),
        ({"generationConfig": {"thinkingConfig": {"thinkingBudget": 1024}}}, "gemini-cli", None),
        ({"reasoning_effort": "high"}, "kimi", None),
        ({"reasoning_effort": "low"}, "openai-chat", level("low")),
        ({"reasoning": {"effort": "low"}}, "openai-responses", level("low")),
    ],
)
def test_config_from_body(body: dict, fmt: str, expected: ThinkingConfig | None) -> None:
    assert config_from_body(body, fmt) == expected


# --- §6.4 validation -----------------------------------------------------------------------------------------

GEMINI_25_PRO = ThinkingSupport(min=128, max=32768, dynamic_allowed=True)
GEMINI_25_FLASH = ThinkingSupport(max=24576, zero_allowed=True, dynamic_allowed=True)
GEMINI_3_PRO = ThinkingSupport(min=128, max=32768, dynamic_allowed=True, levels=("low", "high"))
SONNET_45 = ThinkingSupport(min=1024, max=128000, zero_allowed=True)
OPUS_41 = ThinkingSupport(min=1024, max=128000)
OPUS_46 = ThinkingSupport(min=1024, max=128000, zero_allowed=True, levels=("low", "medium", "high", "max"))
GPT_5 = ThinkingSupport(levels=("minimal", "low", "medium", "high"))
GPT_51 = ThinkingSupport(levels=("none", "low", "medium", "high"))
GPT_51_CODEX = ThinkingSupport(levels=("low", "medium", "high"))
GPT_51_CODEX_MAX = ThinkingSupport(levels=("low", "medium", "high", "xhigh"))
LEVELS_NO_MEDIUM = ThinkingSupport(levels=("low", "high"))


def check(config: ThinkingConfig, support: ThinkingSupport, *, client: str = "openai", upstream: str = "gemini",
          suffix: bool = False) -> ThinkingConfig:
    return validate_config(config, support, client_format=client, upstream_format=upstream, from_suffix=suffix)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [("gemini", "gemini", True), ("gemini", "gemini-cli", True), ("antigravity", "gemini-cli", True),
     ("openai", "codex", True), ("openai-response", "codex", True), ("openai", "openai-response", True),
     ("claude", "claude", True), ("claude", "gemini", False), ("openai", "gemini", False),
     ("openai", "claude", False), ("kimi", "kimi", True), ("kimi", "openai", False), ("CODEX", "openai", True),
     ("openai-chat", "codex", True), ("openai-responses", "codex", True), ("openai-completions", "openai", True),
     ("openai-chat", "claude", False)],
)
def test_same_family(a: str, b: str, same: bool) -> None:
    assert same_family(a, b) is same


def test_capabilities() -> None:
    assert GEMINI_25_PRO.capability == "budget"
    assert GEMINI_25_FLASH.capability == "budget"
    assert GEMINI_3_PRO.capability == "hybrid"
    assert GPT_51.capability == "level"


def test_support_from_catalogue_entry() -> None:
    entry = {"id": "m", "thinking": {"min": 128, "max": 32768, "dynamic_allowed": True, "levels": ["Low", "HIGH"]}}
    assert ThinkingSupport.from_model_info(entry) == GEMINI_3_PRO
    assert ThinkingSupport.from_model_info({"id": "m"}) is None
    assert ThinkingSupport.from_model_info({"id": "m", "thinking": None}) is None
    assert ThinkingSupport.from_model_info({"id": "m", "thinking": {}}) is None
    assert ThinkingSupport.from_model_info(None) is None


class TestBudgetOnlyTarget:
    def test_level_becomes_budget(self) -> None:
        assert check(level("high"), GEMINI_25_PRO) == ThinkingConfig(mode="budget", budget=24576, from_level=True)

    def test_level_budget_derived_is_clamped_even_same_family(self) -> None:
        # max → 128000 > 32768: a budget derived from a level is never rejected.
        result = check(level("max"), GEMINI_25_PRO, client="gemini")
        assert result.budget == 32768

    def test_unknown_level_is_an_error(self) -> None:
        with pytest.raises(ThinkingError) as err:
            check(level("bogus"), GEMINI_25_PRO)
        assert err.value.code == UNKNOWN_LEVEL
        assert "bogus" in str(err.value)

    def test_auto_level_is_kept(self) -> None:
        assert check(level("auto"), GEMINI_25_PRO) == AUTO


class TestLevelOnlyTarget:
    @pytest.mark.parametrize(
        ("tokens", "expected"),
        [(512, "low"), (1024, "low"), (8192, "medium"), (8193, "high"), (24576, "high"), (24577, "high"),
         (100000, "high")],
    )
    def test_budget_becomes_clamped_level(self, tokens: int, expected: str) -> None:
        # gpt-5.1-codex has low/medium/high: minimal → low, xhigh → high.
        assert check(budget(tokens), GPT_51_CODEX, client="claude", upstream="codex") == level(expected)

    def test_budget_to_level_within_family_is_clamped_too(self) -> None:
        assert check(budget(100000), GPT_51_CODEX, client="codex", upstream="codex") == level("high")

    def test_nearest_level_tie_goes_lower(self) -> None:
        # medium sits between low and high: the lower one wins.
        assert LEVELS_NO_MEDIUM.nearest_level("medium") == "low"
        assert check(budget(8192), LEVELS_NO_MEDIUM, client="claude", upstream="codex") == level("low")

    def test_nearest_level(self) -> None:
        assert GPT_51_CODEX_MAX.nearest_level("max") == "xhigh"
        assert GPT_51_CODEX.nearest_level("minimal") == "low"
        assert GPT_51_CODEX.nearest_level("bogus") == "bogus"
        assert GPT_51_CODEX.nearest_level("high") == "high"

    def test_budget_zero_is_none(self) -> None:
        assert check(budget(0), GPT_51, upstream="codex").mode == "none"


class TestSpecialValues:
    def test_level_none_is_none(self) -> None:
        assert check(level("none"), GEMINI_25_FLASH) == NONE

    def test_level_auto_is_auto(self) -> None:
        assert check(level("auto"), GEMINI_3_PRO) == AUTO

    def test_budget_zero_is_none(self) -> None:
        assert check(budget(0), GEMINI_25_FLASH) == NONE


class TestUnsupportedLevels:
    def test_cross_family_clamps(self) -> None:
        assert check(level("medium"), GEMINI_3_PRO, client="openai", upstream="gemini") == level("low")
        assert check(level("xhigh"), GEMINI_3_PRO, client="claude", upstream="gemini") == level("high")
        assert check(level("minimal"), OPUS_46, client="openai", upstream="claude") == level("low")

    def test_cross_family_still_unsupported_is_an_error(self) -> None:
        with pytest.raises(ThinkingError) as err:
            check(level("bogus"), GEMINI_3_PRO, client="openai", upstream="gemini")
        assert err.value.code == LEVEL_NOT_SUPPORTED
        assert str(err.value) == 'level "bogus" not supported, valid levels: low, high'

    def test_same_family_is_an_error(self) -> None:
        with pytest.raises(ThinkingError) as err:
            check(level("medium"), GEMINI_3_PRO, client="gemini-cli", upstream="gemini")
        assert err.value.code == LEVEL_NOT_SUPPORTED
        assert str(err.value) == 'level "medium" not supported, valid levels: low, high'

    def test_same_family_openai_codex(self) -> None:
        with pytest.raises(ThinkingError) as err:
            check(level("xhigh"), GPT_51, client="openai", upstream="codex")
        assert str(err.value) == 'level "xhigh" not supported, valid levels: none, low, medium, high'

    def test_suffix_does_not_make_levels_lenient(self) -> None:
        with pytest.raises(ThinkingError):
            check(level("xhigh"), GPT_51, client="openai", upstream="codex", suffix=True)


class TestBudgetRange:
    def test_body_same_family_out_of_range_is_an_error(self) -> None:
        with pytest.raises(ThinkingError) as err:
            check(budget(100000), GEMINI_25_PRO, client="gemini", upstream="gemini")
        assert err.value.code == BUDGET_OUT_OF_RANGE
        assert str(err.value) == "budget 100000 out of range [128,32768]"

    def test_below_minimum_is_an_error_too(self) -> None:
        with pytest.raises(ThinkingError, match=r"^budget 64 out of range \[128,32768\]$"):
            check(budget(64), GEMINI_25_PRO, client="gemini-cli", upstream="gemini")

    def test_claude_same_family(self) -> None:
        with pytest.raises(ThinkingError, match=r"^budget 500 out of range \[1024,128000\]$"):
            check(budget(500), SONNET_45, client="claude", upstream="claude")

    def test_in_range_passes(self) -> None:
        assert check(budget(32768), GEMINI_25_PRO, client="gemini") == budget(32768)
        assert check(budget(128), GEMINI_25_PRO, client="gemini") == budget(128)

    def test_cross_family_clamps(self) -> None:
        assert check(budget(100000), GEMINI_25_PRO, client="claude") == budget(32768)
        assert check(budget(64), GEMINI_25_PRO, client="openai") == budget(128)

    def test_suffix_clamps(self) -> None:
        assert check(budget(100000), GEMINI_25_PRO, client="gemini", suffix=True) == budget(32768)

    def test_derived_from_level_clamps(self) -> None:
        config = ThinkingConfig(mode="budget", budget=100000, from_level=True)
        assert check(config, GEMINI_25_PRO, client="gemini").budget == 32768


class TestAutoWithoutDynamic:
    def test_level_only_gets_medium(self) -> None:
        assert check(AUTO, GPT_51, upstream="codex") == level("medium")

    def test_level_only_without_medium_gets_nearest(self) -> None:
        assert check(AUTO, LEVELS_NO_MEDIUM, upstream="codex") == level("low")

    def test_budget_model_gets_middle(self) -> None:
        assert check(AUTO, SONNET_45, upstream="claude") == budget(64512)
        assert check(AUTO, OPUS_46, upstream="claude") == budget(64512)

    def test_middle_not_positive(self) -> None:
        assert check(AUTO, ThinkingSupport(zero_allowed=True), upstream="claude").mode == "none"

    def test_dynamic_keeps_auto(self) -> None:
        assert check(AUTO, GEMINI_25_PRO) == AUTO
        assert check(AUTO, GEMINI_3_PRO) == AUTO


class TestNoneMode:
    def test_claude_keeps_zero(self) -> None:
        assert check(NONE, OPUS_41, client="openai", upstream="claude") == NONE

    def test_zero_not_allowed_clamps_to_min(self) -> None:
        assert check(NONE, GEMINI_25_PRO) == ThinkingConfig(mode="none", budget=128)

    def test_zero_allowed(self) -> None:
        assert check(NONE, GEMINI_25_FLASH) == NONE

    def test_levels_take_the_first_level(self) -> None:
        assert check(NONE, GEMINI_3_PRO) == ThinkingConfig(mode="none", budget=128, level="low")

    def test_level_only_without_range(self) -> None:
        assert check(NONE, GPT_5, upstream="codex") == NONE
