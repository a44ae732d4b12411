"""The official anthropic SDK judges what the Claude codec's client side produces.

Canonical event sequences → ClaudeStreamEncoder bytes → ReplayServer → `messages.create(stream=True)` (raw
events) and `messages.stream(...).get_final_message()` (accumulated message); Response → encode_response →
non-streaming `messages.create`.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from fakes.replay import ReplayServer

from proxyd.protocols.base import WireProtocol
from proxyd.protocols.canonical import (
    Finish,
    FinishReason,
    Response,
    StreamError,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    ThinkingSignature,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from proxyd.protocols.claude import PAIR_SHAPES, ClaudeCodec
from proxyd.protocols.codec import AnswerContext

CLAUDE = WireProtocol.CLAUDE
MODEL = "claude-sonnet-4-5"
ARGS = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


def encode(events: list[StreamEvent], *, model: str = MODEL, source: WireProtocol | None = None) -> bytes:
    context = AnswerContext(source=source, client_body=ARGS)
    encoder = ClaudeCodec().stream_encoder(model=model, context=context)
    return b"".join(encoder.encode(e) for e in events) + encoder.close()


def chunked(raw: bytes, size: int = 7) -> list[bytes]:
    """Split at arbitrary byte offsets, so the SDK must reassemble frames (and UTF-8 sequences)."""
    return [raw[i:i + size] for i in range(0, len(raw), size)]


async def raw_events(raw: bytes) -> list[Any]:
    async with ReplayServer(chunked(raw)) as srv:
        client = anthropic.AsyncAnthropic(base_url=srv.url, api_key="x", max_retries=0)
        stream = await client.messages.create(**ARGS, stream=True)
        return [event async for event in stream]


async def final_message(raw: bytes) -> anthropic.types.Message:
    async with ReplayServer(chunked(raw, 13)) as srv:
        client = anthropic.AsyncAnthropic(base_url=srv.url, api_key="x", max_retries=0)
        async with client.messages.stream(**ARGS) as stream:
            return await stream.get_final_message()


def check_event_order(events: list[Any]) -> None:
    """Anthropic's documented order: message_start, then non-overlapping blocks with indexes 0, 1, 2…,
    then message_delta(s) and one final message_stop."""
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop" and kinds.count("message_stop") == 1
    open_index: int | None = None
    next_index = 0
    seen_delta = False
    for event in events[1:-1]:
        if event.type == "content_block_start":
            assert open_index is None and not seen_delta
            assert event.index == next_index
            open_index, next_index = event.index, next_index + 1
        elif event.type == "content_block_delta":
            assert event.index == open_index
        elif event.type == "content_block_stop":
            assert event.index == open_index
            open_index = None
        elif event.type == "message_delta":
            assert open_index is None
            seen_delta = True
    assert open_index is None and seen_delta


async def judge(events: list[StreamEvent], source: WireProtocol | None = None) -> anthropic.types.Message:
    raw = encode(events, source=source)
    check_event_order(await raw_events(raw))
    return await final_message(raw)


def tool_uses(message: anthropic.types.Message) -> list[tuple[str, str, Any]]:
    return [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]


async def test_text_stream() -> None:
    message = await judge([StreamStart(id="chatcmpl-1", model="gpt-4o"), TextDelta("Hel"), TextDelta("lo, wörld 👋"),
                           Finish(FinishReason.STOP), UsageUpdate(Usage(input_tokens=12, output_tokens=5))])
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Hello, wörld 👋"  # type: ignore[union-attr]
    assert message.model == MODEL and message.id == "chatcmpl-1"  # the upstream id, kept as the reference
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 5)


async def test_thinking_then_text_keeps_claude_signature() -> None:
    message = await judge([StreamStart(id="msg_1"), ThinkingDelta("Let me "), ThinkingDelta("think."),
                           ThinkingSignature("EqQBCkYIBxgCKkA+sig==", CLAUDE), TextDelta("42"),
                           UsageUpdate(Usage(input_tokens=3, output_tokens=9)), Finish(FinishReason.STOP)])
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.thinking == "Let me think."
    assert thinking.signature == "EqQBCkYIBxgCKkA+sig=="
    assert text.type == "text" and text.text == "42"
    assert message.usage.output_tokens == 9


async def test_foreign_thinking_signature_not_forwarded() -> None:
    raw = encode([ThinkingDelta("gemini thought"), ThinkingSignature("gem-sig", WireProtocol.GEMINI),
                  ThinkingSignature("opaque-xyz", WireProtocol.OPENAI_RESPONSES, encrypted="opaque-xyz"),
                  TextDelta("ok"), Finish(FinishReason.STOP)])
    assert b"gem-sig" not in raw and b"opaque-xyz" not in raw
    message = await final_message(raw)
    assert message.content[0].type == "thinking" and message.content[0].signature == ""
    assert message.content[0].thinking == "gemini thought"


async def test_parallel_tool_calls_interleaved() -> None:
    message = await judge([
        StreamStart(id="msg_p"), TextDelta("Checking both."),
        ToolCallStart(0, "call_a", "Read"), ToolCallStart(1, "call_b", "Grep"),
        ToolCallDelta(1, '{"pattern":'), ToolCallDelta(0, '{"path":"a.py"'), ToolCallDelta(1, '"def "}'),
        ToolCallDelta(0, "}"), ToolCallEnd(0), ToolCallEnd(1), Finish(FinishReason.TOOL_CALLS),
        UsageUpdate(Usage(input_tokens=20, output_tokens=11, cached_tokens=8)),
    ])
    assert message.content[0].type == "text" and message.content[0].text == "Checking both."
    assert tool_uses(message) == [("call_a", "Read", {"path": "a.py"}), ("call_b", "Grep", {"pattern": "def "})]
    assert message.stop_reason == "tool_use"
    assert message.usage.input_tokens == 12 and message.usage.cache_read_input_tokens == 8
    assert message.usage.output_tokens == 11


async def test_tool_call_then_usage_after_finish() -> None:
    message = await judge([StreamStart(id="r"), ToolCallStart(0, "call 1/x", "get_weather"),
                           ToolCallDelta(0, '{"city":'), ToolCallDelta(0, '"Paris"}'), ToolCallEnd(0),
                           Finish(FinishReason.STOP), UsageUpdate(Usage(input_tokens=7, output_tokens=3))])
    assert tool_uses(message) == [("call_1_x", "get_weather", {"city": "Paris"})]
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (7, 3)


async def test_missing_start_tool_end_and_finish() -> None:
    message = await judge([ToolCallStart(0, "", "ls"), ToolCallDelta(0, '{"p":"."}'),
                           ToolCallStart(1, "", "pwd"), TextDelta("after")])
    (id0, name0, args0), (id1, name1, args1) = tool_uses(message)
    assert (name0, args0, name1, args1) == ("ls", {"p": "."}, "pwd", {})
    assert id0.startswith("toolu_") and id1.startswith("toolu_") and id0 != id1
    assert message.content[-1].type == "text" and message.content[-1].text == "after"
    assert message.stop_reason == "tool_use"


async def test_usage_before_finish_and_length() -> None:
    message = await judge([UsageUpdate(Usage(input_tokens=100, output_tokens=1, cached_tokens=60,
                                             cache_creation_tokens=30)),
                           StreamStart(id="msg_u"), TextDelta("cut"),
                           UsageUpdate(Usage(input_tokens=100, output_tokens=50, cached_tokens=60,
                                             cache_creation_tokens=30)),
                           Finish(FinishReason.LENGTH)])
    assert message.stop_reason == "max_tokens"
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (10, 60, 30)
    assert usage.output_tokens == 50


async def test_stop_sequence() -> None:
    message = await judge([TextDelta("a"), Finish(FinishReason.STOP, stop_sequence="END")])
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "END"


async def test_error_mid_stream_raises_in_sdk() -> None:
    encoder = ClaudeCodec().stream_encoder(model=MODEL)
    raw = encoder.encode(StreamStart(id="msg_e")) + encoder.encode(TextDelta("par"))
    raw += encoder.encode(StreamError(status=502, message="upstream went away"))
    raw += encoder.close()
    async with ReplayServer(raw) as srv:
        client = anthropic.AsyncAnthropic(base_url=srv.url, api_key="x", max_retries=0)
        stream = await client.messages.create(**ARGS, stream=True)
        seen: list[str] = []

        async def consume() -> None:
            async for event in stream:
                seen.append(event.type)

        with pytest.raises(anthropic.APIStatusError, match="upstream went away"):
            await consume()
    assert seen[0] == "message_start" and "message_stop" not in seen


async def test_non_stream_response() -> None:
    response = Response(id="chatcmpl-9", model="gpt-4o", finish_reason=FinishReason.STOP, content=(
        ThinkingPart(text="plan", signature="EqQB", signature_source=CLAUDE),
        TextPart(text="Running it."),
        ToolCallPart(id="call_1", name="Bash", arguments='{"command":"ls -la"}'),
        ToolCallPart(id="", name="Read", arguments=""),
    ), usage=Usage(input_tokens=40, output_tokens=12, cached_tokens=30))
    body = ClaudeCodec().encode_response(response, model=MODEL)
    async with ReplayServer(json.dumps(body).encode(), content_type="application/json") as srv:
        client = anthropic.AsyncAnthropic(base_url=srv.url, api_key="x", max_retries=0)
        message = await client.messages.create(**ARGS)
    assert message.id == "chatcmpl-9" and message.model == MODEL and message.role == "assistant"
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.content[0].signature == "EqQB"  # type: ignore[union-attr]
    (_, name0, args0), (id1, name1, args1) = tool_uses(message)
    assert (name0, args0, name1, args1) == ("Bash", {"command": "ls -la"}, "Read", {})
    assert id1.startswith("toolu_")
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (
        10, 30, 12)


@pytest.mark.parametrize("source", sorted(PAIR_SHAPES), ids=str)
async def test_translated_shapes_parse(source: WireProtocol) -> None:
    """Per-upstream answer shapes (no ping, estimated message_start usage, lean usage, thinking without a
    signature key, whole tool arguments, `<name>-<n>` ids, a trailing newline) still parse in the SDK."""
    message = await judge([
        StreamStart(id="resp_1", model="up"), ThinkingDelta("hm"), ThinkingSignature("foreign", source),
        TextDelta("Hi"), ToolCallStart(index=0, id="call_1", name="get_weather"),
        ToolCallDelta(index=0, arguments='{"city":'), ToolCallDelta(index=0, arguments='"Paris"}'),
        ToolCallStart(index=1, id="call_2", name="get_weather"), ToolCallDelta(index=1, arguments="{}"),
        ToolCallEnd(index=0), ToolCallEnd(index=1), Finish(FinishReason.TOOL_CALLS, native="tool_calls"),
        UsageUpdate(Usage(input_tokens=11, output_tokens=7, cached_tokens=5, reasoning_tokens=3))], source)
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.content[0].thinking == "hm"  # type: ignore[union-attr]
    (id0, _, args0), (id1, _, args1) = tool_uses(message)
    assert (args0, args1) == ({"city": "Paris"}, {})
    assert (id0, id1) == (("get_weather-1", "get_weather-2") if source is WireProtocol.GEMINI
                          else ("call_1", "call_2"))
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (
        6, 5, 7)

    response = Response(id="resp_1", model="up", finish_reason=FinishReason.STOP, content=(
        ThinkingPart(text="plan"), TextPart(text="ok")), usage=Usage(input_tokens=11, output_tokens=7))
    body = ClaudeCodec().encode_response(response, model=MODEL, context=AnswerContext(source=source))
    async with ReplayServer(json.dumps(body).encode(), content_type="application/json") as srv:
        client = anthropic.AsyncAnthropic(base_url=srv.url, api_key="x", max_retries=0)
        parsed = await client.messages.create(**ARGS)
    assert [b.type for b in parsed.content] == ["thinking", "text"]
    assert parsed.content[0].thinking == "plan"  # type: ignore[union-attr]
    assert (parsed.usage.input_tokens, parsed.usage.output_tokens, parsed.usage.cache_read_input_tokens) == (
        11, 7, None)


async def test_gemini_unfinished_stream_still_parses() -> None:
    """A Gemini stream cut before finishReason ends with a bare message_stop (reference shape): the SDK still
    accumulates the text; a failure after it still raises."""
    raw = encode([StreamStart(id="mockresp01"), TextDelta("Hello from "), Finish(FinishReason.STOP)],
                 source=WireProtocol.GEMINI)
    message = await final_message(raw)
    assert message.content[0].text == "Hello from "  # type: ignore[union-attr]
    encoder = ClaudeCodec().stream_encoder(model=MODEL, context=AnswerContext(source=WireProtocol.GEMINI))
    failed = encoder.encode(TextDelta("Hi")) + encoder.error(500, "unexpected EOF")
    assert failed.index(b"event: message_stop") < failed.index(b"event: error")
    async with ReplayServer(chunked(failed)) as srv:
        client = anthropic.AsyncAnthropic(base_url=srv.url, api_key="x", max_retries=0)
        stream = await client.messages.create(**ARGS, stream=True)
        with pytest.raises(anthropic.APIStatusError, match="unexpected EOF"):
            async for _ in stream:
                pass
