"""Gemini upstream requests laid out per client protocol (protocols/gemini_layout), as the reference's per-pair
translators do: Claude turns merged with text first, Chat/Responses tool results kept apart, replayed thoughts,
system role, empty descriptions and when a thinking effort asks for the thoughts."""

from __future__ import annotations

from typing import Any

from proxyd.protocols.base import WireProtocol
from proxyd.protocols.codec import NO_REQUEST_CONTEXT, RequestContext
from proxyd.protocols.gemini_layout import merge_user_turns, text_first, user_contents
from proxyd.protocols.registry import codec_for
from proxyd.thinking import apply_thinking, parse_suffix


def _encode(client: WireProtocol, body: dict[str, Any], *, with_context: bool = True) -> dict[str, Any]:
    client_codec, gemini = codec_for(client), codec_for(WireProtocol.GEMINI)
    assert client_codec is not None and gemini is not None
    request = client_codec.decode_request(body, model="gemini-2.5-flash", stream=False)
    context = RequestContext(client=client, client_body=body) if with_context else NO_REQUEST_CONTEXT
    return gemini.encode_request(request, model="gemini-2.5-flash", context=context)


def _shape(contents: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """(role, [first key of each part]) per content: what the layout decides."""
    return [(c["role"], [next(k for k in p if k != "thoughtSignature") for p in c["parts"]]) for c in contents]


PNG = "iVBORw0KGgo="

CLAUDE_BODY: dict[str, Any] = {
    "max_tokens": 100,
    "system": [{"type": "text", "text": "be terse"}],
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "call the tool", "signature": "c2ln"},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [
            {"type": "text", "text": "18C"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]},
        {"role": "user", "content": "And Rome?"},
    ],
    "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}],
}


def test_claude_consecutive_user_turns_merge_with_text_first() -> None:
    body = _encode(WireProtocol.CLAUDE, CLAUDE_BODY)
    assert _shape(body["contents"]) == [
        ("user", ["text"]),
        ("model", ["functionCall"]),  # Claude thinking is not replayed to Gemini
        ("user", ["text", "functionResponse", "inlineData"]),  # the tool result's image stays after its response
    ]
    assert body["contents"][2]["parts"][0] == {"text": "And Rome?"}
    assert body["systemInstruction"] == {"role": "user", "parts": [{"text": "be terse"}]}
    assert "description" not in body["tools"][0]["functionDeclarations"][0]


def test_claude_string_system_has_no_role() -> None:
    body = _encode(WireProtocol.CLAUDE, {**CLAUDE_BODY, "system": "be terse"})
    assert body["systemInstruction"] == {"parts": [{"text": "be terse"}]}


def test_claude_thinking_keeps_include_thoughts() -> None:
    body = _encode(WireProtocol.CLAUDE, {**CLAUDE_BODY, "thinking": {"type": "enabled", "budget_tokens": 2048}})
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 2048, "includeThoughts": True}


RESPONSES_BODY: dict[str, Any] = {
    "instructions": "be terse",
    "reasoning": {"effort": "high"},
    "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Need the tool."}],
         "encrypted_content": "gAAAA"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "And Rome?"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Briefly."}]},
    ],
    "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}],
}


def test_responses_tool_results_stay_apart_from_the_next_question() -> None:
    body = _encode(WireProtocol.OPENAI_RESPONSES, RESPONSES_BODY)
    assert _shape(body["contents"]) == [
        ("user", ["text"]),
        ("model", ["text", "functionCall"]),
        ("user", ["functionResponse"]),
        ("user", ["text", "text"]),  # consecutive user messages without tool results still join
    ]
    # The reasoning summary is replayed as a thought; the foreign encrypted_content is not a Gemini signature.
    assert body["contents"][1]["parts"][0] == {"text": "Need the tool.", "thought": True}
    assert body["contents"][1]["parts"][1]["thoughtSignature"] == "skip_thought_signature_validator"
    assert body["systemInstruction"] == {"parts": [{"text": "be terse"}]}
    assert body["tools"][0]["functionDeclarations"][0]["description"] == ""


def test_responses_effort_alone_does_not_ask_for_thoughts() -> None:
    body = _encode(WireProtocol.OPENAI_RESPONSES, RESPONSES_BODY)
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 24576}
    summary = {**RESPONSES_BODY, "reasoning": {"effort": "high", "summary": "auto"}}
    body = _encode(WireProtocol.OPENAI_RESPONSES, summary)
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 24576, "includeThoughts": True}
    off = _encode(WireProtocol.OPENAI_RESPONSES, {**RESPONSES_BODY, "reasoning": {"effort": "none"}})
    assert off["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0, "includeThoughts": False}


def test_chat_effort_asks_for_thoughts_and_a_suffix_does_not() -> None:
    chat = {"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "high"}
    body = _encode(WireProtocol.OPENAI_CHAT, chat)
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 24576, "includeThoughts": True}
    plain = _encode(WireProtocol.OPENAI_CHAT, {"messages": chat["messages"]})
    suffixed = apply_thinking(plain, upstream_format="gemini", model="gemini-2.5-flash", model_info=None,
                              suffix=None, client_format="openai-chat")
    assert "generationConfig" not in suffixed
    suffix = parse_suffix("1024")
    assert suffix is not None
    suffixed = apply_thinking(plain, upstream_format="gemini", model="gemini-2.5-flash", model_info=None,
                              suffix=suffix, client_format="openai-chat")
    assert suffixed["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 1024}


def test_chat_tool_results_apart_and_system_role() -> None:
    chat = {"messages": [
        {"role": "system", "content": "be terse"},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "reasoning_content": "tool time",
         "tool_calls": [{"id": "call_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "user", "content": "And Rome?"},
    ]}
    body = _encode(WireProtocol.OPENAI_CHAT, chat)
    assert _shape(body["contents"]) == [
        ("user", ["text"]), ("model", ["text", "functionCall"]), ("user", ["functionResponse"]), ("user", ["text"])]
    assert body["contents"][1]["parts"][0] == {"text": "tool time", "thought": True}
    assert body["systemInstruction"] == {"role": "user", "parts": [{"text": "be terse"}]}


def test_without_context_function_responses_lead_one_content() -> None:
    body = _encode(WireProtocol.CLAUDE, CLAUDE_BODY, with_context=False)
    assert _shape(body["contents"])[2:] == [("user", ["functionResponse", "inlineData"]), ("user", ["text"])]
    assert body["systemInstruction"] == {"parts": [{"text": "be terse"}]}


def test_layout_helpers() -> None:
    response = {"functionResponse": {"name": "f", "response": {}}}
    image = {"inline_data": {"mime_type": "image/png", "data": PNG}}
    # Text only moves when it follows a function response; each group keeps its order.
    assert text_first([{"text": "a"}, response]) == [{"text": "a"}, response]
    assert text_first([response, image, {"text": "a"}, {"text": "b"}]) == [{"text": "a"}, {"text": "b"}, response,
                                                                             image]
    tagged = [(False, {"text": "q"}), (True, response), (True, image), (False, {"text": "r"})]
    assert user_contents(tagged, "split") == [[{"text": "q"}], [response, image], [{"text": "r"}]]
    assert user_contents(tagged, "results_first") == [[response, {"text": "q"}, image, {"text": "r"}]]
    assert user_contents(tagged, "merge") == [[{"text": "q"}, {"text": "r"}, response, image]]
    assert user_contents([], "split") == []
    merged = merge_user_turns([
        {"role": "user", "parts": [response]}, {"role": "user", "parts": [{"text": "x"}]},
        {"role": "model", "parts": [{"text": "m1"}]}, {"role": "model", "parts": [{"text": "m2"}]},
    ])
    assert merged == [{"role": "user", "parts": [{"text": "x"}, response]},
                      {"role": "model", "parts": [{"text": "m1"}]}, {"role": "model", "parts": [{"text": "m2"}]}]
