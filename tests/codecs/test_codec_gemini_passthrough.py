"""The Gemini → Gemini passthrough normaliser (translation.md §3.8; conformance gemini.gemini.*, rich.gemini.gemini)."""

from __future__ import annotations

import copy

from proxyd.protocols.gemini import DEFAULT_SAFETY_SETTINGS, SENTINEL_SIGNATURE
from proxyd.protocols.gemini_passthrough import normalise_passthrough

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def test_declarations_renamed_and_parameters_become_json_schema() -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": SCHEMA},
                                                {"name": "get_time"}]}, {"googleSearch": {}}]}
    original = copy.deepcopy(body)
    out = normalise_passthrough(body)
    assert out["tools"] == [{"function_declarations": [{"name": "get_weather", "parametersJsonSchema": SCHEMA},
                                                       {"name": "get_time"}]}, {"googleSearch": {}}]
    assert out["safetySettings"] == [dict(s) for s in DEFAULT_SAFETY_SETTINGS]
    assert body == original  # the client's body is never modified


def test_model_turns_get_the_sentinel_and_roles_are_filled() -> None:
    body = {"contents": [
        {"parts": [{"text": "weather?"}]},
        {"parts": [{"text": "calling", "thoughtSignature": "real"}, {"functionCall": {"name": "get_weather"}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "", "response": {"result": "sunny"}}}]},
        {"role": "user", "parts": [{"text": "thanks", "thoughtSignature": "kept"}]},
    ]}
    out = normalise_passthrough(body)
    assert [c["role"] for c in out["contents"]] == ["user", "model", "user", "user"]
    assert out["contents"][1]["parts"] == [
        {"text": "calling", "thoughtSignature": SENTINEL_SIGNATURE},
        {"functionCall": {"name": "get_weather"}, "thoughtSignature": SENTINEL_SIGNATURE}]
    assert out["contents"][2]["parts"][0]["functionResponse"]["name"] == "get_weather"  # back-filled
    assert out["contents"][3]["parts"][0]["thoughtSignature"] == "kept"  # only model turns


def test_response_schema_renamed_and_own_safety_settings_kept() -> None:
    own = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]
    body = {"contents": [], "generationConfig": {"responseSchema": SCHEMA, "temperature": 0},
            "safetySettings": own}
    out = normalise_passthrough(body)
    assert out["generationConfig"] == {"responseJsonSchema": SCHEMA, "temperature": 0}
    assert out["safetySettings"] is own


def test_body_without_contents_only_gets_safety_settings() -> None:
    body = {"tools": [{"functionDeclarations": [{"name": "x", "parameters": SCHEMA}]}]}
    out = normalise_passthrough(body)
    assert out["tools"] is body["tools"] and "safetySettings" in out
