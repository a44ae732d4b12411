"""Focused unit tests of Claude codec rules that golden files express poorly."""

from __future__ import annotations

from typing import Any

import pytest

from proxyd.protocols.base import WireProtocol
from proxyd.protocols.canonical import (
    Finish,
    FinishReason,
    Message,
    Reasoning,
    Request,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
)
from proxyd.protocols.claude import (
    EFFORT_BUDGETS,
    ClaudeCodec,
    claude_tool_id,
    estimate_input_tokens,
    wants_stream,
)
from proxyd.protocols.codec import CodecError
from proxyd.protocols.registry import codec_for
from proxyd.protocols.sse import SSEEvent

codec = ClaudeCodec()


def test_registered_for_claude() -> None:
    found = codec_for(WireProtocol.CLAUDE)
    assert isinstance(found, ClaudeCodec) and found.protocol is WireProtocol.CLAUDE


@pytest.mark.parametrize(("body", "expected"), [
    ({}, False), ({"stream": False}, False), ({"stream": True}, True), ({"stream": None}, True),
    ({"stream": 1}, True), ({"stream": "no"}, True), ({"stream": 0}, True),
])
def test_stream_rule(body: dict[str, object], expected: bool) -> None:
    assert wants_stream(body) is expected


@pytest.mark.parametrize(("body", "field"), [
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "ftp"}}]}]},
     "messages[0].content[0].source.type"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}, "messages[0].content[0].tool_use_id"),
    ({"messages": [], "system": 3}, "system"),
    ({"messages": [], "tools": [{"input_schema": {}}]}, "tools[0].name"),
    ({"messages": [], "tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
    ({"messages": [], "thinking": {"type": "enabled", "budget_tokens": "lots"}}, "thinking.budget_tokens"),
    ({"messages": [], "temperature": True}, "temperature"),
    ({"messages": [], "stop_sequences": ["a", 1]}, "stop_sequences[1]"),
    ({"messages": [], "metadata": {"user_id": 7}}, "metadata.user_id"),
])
def test_codec_errors_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(CodecError) as info:
        codec.decode_request(body, model="m", stream=False)
    assert info.value.field == field


def test_tool_ids() -> None:
    assert claude_tool_id("call_Ab-9") == "call_Ab-9"
    assert claude_tool_id("a.b c") == "a_b_c"
    minted = claude_tool_id("")
    assert minted.startswith("toolu_") and len(minted) == len("toolu_") + 24 and minted[6:].isalnum()


@pytest.mark.parametrize(("effort", "budget"), sorted(EFFORT_BUDGETS.items()))
def test_effort_budget_table(effort: str, budget: int) -> None:
    body = codec.encode_request(Request(model="m", messages=(Message(role="user", parts=(TextPart("x"),)),),
                                        reasoning=Reasoning(effort=effort)), model="up")
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] > budget


def test_thinking_off_with_assistant_prefill() -> None:
    request = Request(model="m", reasoning=Reasoning(effort="high"), messages=(
        Message(role="user", parts=(TextPart("x"),)), Message(role="assistant", parts=(TextPart("{ "),))))
    body = codec.encode_request(request, model="up")
    assert "thinking" not in body
    assert body["messages"][-1]["content"] == [{"type": "text", "text": "{"}]


def test_decoder_close_without_events_is_empty() -> None:
    decoder = codec.stream_decoder()
    assert decoder.decode(SSEEvent(data=b"", event="ping")) == []
    assert decoder.close() == []


def test_encoder_after_close_or_error_writes_nothing() -> None:
    encoder = codec.stream_encoder(model="m")
    assert encoder.encode(TextDelta("a"))
    assert encoder.close().endswith(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
    assert encoder.encode(TextDelta("b")) == b"" and encoder.close() == b"" and encoder.error(500, "x") == b""
    other = codec.stream_encoder(model="m")
    assert other.error(500, "boom") == (b'event: error\ndata: {"type":"error","error":{"type":"api_error",'
                                        b'"message":"boom"}}\n\n')
    assert other.close() == b""


def test_late_arguments_of_a_closed_call_are_dropped_not_misplaced() -> None:
    encoder = codec.stream_encoder(model="m")
    raw = b"".join(encoder.encode(e) for e in [
        ToolCallStart(0, "a", "f"), ToolCallDelta(0, "{}"), ToolCallEnd(0), ToolCallDelta(0, "junk"),
        Finish(FinishReason.TOOL_CALLS)]) + encoder.close()
    assert b"junk" not in raw


_RICH_BODY: dict[str, Any] = {
    "model": "gpt-5.5", "stream": True, "max_tokens": 300,
    "system": [{"type": "text", "text": "You are a terse weather bot.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "What does this look like and what is the weather in Paris?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_abc123", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_abc123",
                                      "content": "18C and sunny"}]},
        {"role": "user", "content": "Thanks. And in Rome?"}],
    "tools": [
        {"name": "get_weather", "description": "Get the weather", "input_schema": {
            "type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string",
                                                                                  "enum": ["c", "f"]}},
            "required": ["city"]}},
        {"name": "get_time", "description": "Get the time", "input_schema": {"type": "object", "properties": {}}}],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "temperature": 0.2, "top_p": 0.9, "stop_sequences": ["END"], "metadata": {"user_id": "user-1"},
}


def test_estimate_input_tokens_matches_the_reference() -> None:
    """The message_start estimate of translated streams (conformance: 9 basic, 40 with a tool, 119 rich)."""
    basic = {"model": "m", "max_tokens": 4096,
             "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}
    tool = {**basic, "tools": [{"name": "get_weather", "description": "Get the weather", "input_schema": {
        "type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"]}}]}
    assert [estimate_input_tokens(b) for b in (basic, tool, _RICH_BODY)] == [9, 40, 119]
    assert estimate_input_tokens(None) == 0
    assert estimate_input_tokens({"messages": "nonsense", "tools": [1, None], "system": 5}) == 0
