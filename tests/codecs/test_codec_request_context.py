"""RequestContext: upstream request shapes that depend on the client protocol (the reference translates per pair)."""

from __future__ import annotations

from typing import Any

from proxyd.protocols.base import WireProtocol
from proxyd.protocols.codec import NO_REQUEST_CONTEXT, RequestContext
from proxyd.protocols.registry import codec_for


def _encode(
    client: WireProtocol, upstream: WireProtocol, body: dict[str, Any], *, with_context: bool
) -> dict[str, Any]:
    client_codec, upstream_codec = codec_for(client), codec_for(upstream)
    assert client_codec is not None and upstream_codec is not None
    request = client_codec.decode_request(body, model="m", stream=False)
    context = RequestContext(client=client, client_body=body) if with_context else NO_REQUEST_CONTEXT
    return upstream_codec.encode_request(request, model="up", context=context)


GEMINI_BODY = {
    "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
    "tools": [{"functionDeclarations": [
        {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
        {"name": "get_time"},
    ]}],
}


def test_gemini_to_claude_tool_schemas_are_strict_only_with_context() -> None:
    tools = _encode(WireProtocol.GEMINI, WireProtocol.CLAUDE, GEMINI_BODY, with_context=True)["tools"]
    assert tools[0]["input_schema"]["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert tools[0]["input_schema"]["additionalProperties"] is False
    assert tools[1]["input_schema"] == {"type": "object", "properties": {}}
    plain = _encode(WireProtocol.GEMINI, WireProtocol.CLAUDE, GEMINI_BODY, with_context=False)["tools"]
    assert "$schema" not in plain[0]["input_schema"]


def test_responses_to_claude_single_text_user_message_is_a_string() -> None:
    body = {"input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]}
    messages = _encode(WireProtocol.OPENAI_RESPONSES, WireProtocol.CLAUDE, body, with_context=True)["messages"]
    assert messages[0]["content"] == "hi"
    plain = _encode(WireProtocol.OPENAI_RESPONSES, WireProtocol.CLAUDE, body, with_context=False)["messages"]
    assert plain[0]["content"] == [{"type": "text", "text": "hi"}]


CLAUDE_BODY = {
    "max_tokens": 10,
    "system": "be terse",
    "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "text", "text": "checking"},
                                          {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}]},
    ],
    "stop_sequences": ["END"],
    "metadata": {"user_id": "u-1"},
}


def test_claude_to_chat_pair_shapes() -> None:
    body = _encode(WireProtocol.CLAUDE, WireProtocol.OPENAI_CHAT, CLAUDE_BODY, with_context=True)
    system, user, assistant, tool = body["messages"]
    assert system["content"] == [{"type": "text", "text": "be terse"}]
    assert user["content"] == "weather?"
    assert assistant["content"] == [{"type": "text", "text": "checking"}]
    assert tool["name"] == "get_weather"
    assert body["stop"] == ["END"]
    assert "user" not in body


def test_claude_to_chat_without_context_is_unchanged() -> None:
    body = _encode(WireProtocol.CLAUDE, WireProtocol.OPENAI_CHAT, CLAUDE_BODY, with_context=False)
    assert body["messages"][0]["content"] == "be terse"
    assert body["messages"][2]["content"] == "checking"
    assert "name" not in body["messages"][3]
    assert body["stop"] == "END"
    assert body["user"] == "u-1"


def test_responses_to_chat_keeps_content_arrays_and_drops_tools_only_content() -> None:
    body = {"input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "ok"},
    ]}
    messages = _encode(WireProtocol.OPENAI_RESPONSES, WireProtocol.OPENAI_CHAT, body, with_context=True)["messages"]
    assert messages[0]["content"] == [{"type": "text", "text": "hi"}]
    assert "content" not in messages[1]
    string_input = {"input": "hi"}
    messages = _encode(WireProtocol.OPENAI_RESPONSES, WireProtocol.OPENAI_CHAT, string_input,
                       with_context=True)["messages"]
    assert messages[0]["content"] == "hi"
    plain = _encode(WireProtocol.OPENAI_RESPONSES, WireProtocol.OPENAI_CHAT, body, with_context=False)["messages"]
    assert plain[0]["content"] == "hi" and plain[1]["content"] is None


def test_codex_tool_choice_defaults_to_auto_for_claude_and_gemini_clients_only() -> None:
    claude = {**CLAUDE_BODY, "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]}
    assert _encode(WireProtocol.CLAUDE, WireProtocol.OPENAI_RESPONSES, claude, with_context=True)[
        "tool_choice"] == "auto"
    assert _encode(WireProtocol.GEMINI, WireProtocol.OPENAI_RESPONSES, GEMINI_BODY, with_context=True)[
        "tool_choice"] == "auto"
    chat = {"messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "get_weather"}}]}
    assert "tool_choice" not in _encode(WireProtocol.OPENAI_CHAT, WireProtocol.OPENAI_RESPONSES, chat,
                                        with_context=True)
    assert "tool_choice" not in _encode(WireProtocol.CLAUDE, WireProtocol.OPENAI_RESPONSES, claude,
                                        with_context=False)
    # an explicit choice still wins, and no tools means no choice
    forced = {**claude, "tool_choice": {"type": "any"}}
    assert _encode(WireProtocol.CLAUDE, WireProtocol.OPENAI_RESPONSES, forced, with_context=True)[
        "tool_choice"] == "required"
    assert "tool_choice" not in _encode(WireProtocol.CLAUDE, WireProtocol.OPENAI_RESPONSES, CLAUDE_BODY,
                                        with_context=True)


def test_codex_tools_leave_out_a_missing_description() -> None:
    chat = {"messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "a"}},
                      {"type": "function", "function": {"name": "b", "description": "B"}}]}
    tools = _encode(WireProtocol.OPENAI_CHAT, WireProtocol.OPENAI_RESPONSES, chat, with_context=True)["tools"]
    assert "description" not in tools[0]
    assert tools[1]["description"] == "B"


def test_gemini_to_codex_closed_schemas_and_one_message_per_part() -> None:
    body = {**GEMINI_BODY, "contents": [
        {"role": "user", "parts": [{"text": "look"}, {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]},
        {"role": "model", "parts": [{"text": "a"}, {"text": "b"}]},
    ]}
    out = _encode(WireProtocol.GEMINI, WireProtocol.OPENAI_RESPONSES, body, with_context=True)
    assert [(m["role"], [c["type"] for c in m["content"]]) for m in out["input"]] == [
        ("user", ["input_text"]), ("user", ["input_image"]), ("assistant", ["output_text"]),
        ("assistant", ["output_text"])]
    weather, clock = out["tools"]
    assert weather["parameters"]["additionalProperties"] is False
    assert "parameters" not in clock  # declared without a schema
    assert clock["strict"] is False
    plain = _encode(WireProtocol.GEMINI, WireProtocol.OPENAI_RESPONSES, body, with_context=False)
    assert len(plain["input"]) == 2
    assert plain["tools"][1]["parameters"] == {"type": "object", "properties": {}}


GEMINI_HISTORY = {
    "systemInstruction": {"parts": [{"text": "be terse"}]},
    "contents": [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [{"text": "thinking", "thought": True},
                                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "18C"}}}]},
        {"role": "model", "parts": [{"functionCall": {"id": "own-id", "name": "get_time", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"id": "own-id", "name": "get_time",
                                                         "response": {"content": "noon"}}}]},
        {"role": "user", "parts": [{"text": "And Rome?"}]},
    ],
    "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "object"}}]}],
}


def test_gemini_to_chat_pair_shapes() -> None:
    body = _encode(WireProtocol.GEMINI, WireProtocol.OPENAI_CHAT, GEMINI_HISTORY, with_context=True)
    system, user, call, tool, call2, tool2, rome = body["messages"]
    assert user == {"role": "user", "content": "Weather in Paris?"}
    assert system["content"] == [{"type": "text", "text": "be terse"}]
    assert call["content"] == "" and call2["content"] == ""
    minted = call["tool_calls"][0]["id"]
    assert minted.startswith("call_") and len(minted) == 29 and minted[5:].isalnum()
    # The result as the functionResponse's JSON (its `content` field alone when it has one), paired by id.
    assert tool == {"role": "tool", "tool_call_id": minted, "content": '{"result":"18C"}'}
    assert call2["tool_calls"][0]["id"] == "own-id"
    assert tool2 == {"role": "tool", "tool_call_id": "own-id", "content": "noon"}
    assert rome == {"role": "user", "content": "And Rome?"}  # no empty user message after the tool results
    assert body["tools"][0]["function"]["description"] == ""
    again = _encode(WireProtocol.GEMINI, WireProtocol.OPENAI_CHAT, GEMINI_HISTORY, with_context=True)
    assert again["messages"][2]["tool_calls"][0]["id"] == minted  # deterministic: prompt caches hold


def test_gemini_to_chat_without_context_is_unchanged() -> None:
    body = _encode(WireProtocol.GEMINI, WireProtocol.OPENAI_CHAT, GEMINI_HISTORY, with_context=False)
    call, tool = body["messages"][2:4]
    assert call["content"] is None and call["tool_calls"][0]["id"] == "call_gemini_0000000000000001"
    assert tool["content"] == "18C"
    assert "description" not in body["tools"][0]["function"]
