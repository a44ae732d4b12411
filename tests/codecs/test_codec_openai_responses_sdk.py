"""The official openai SDK judges what the Responses encoders produce (streams and non-stream responses)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from fakes.replay import ReplayServer
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseErrorEvent,
    ResponseFunctionToolCall,
    ResponseIncompleteEvent,
    ResponseOutputItemDoneEvent,
    ResponseReasoningItem,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseTextDeltaEvent,
)

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
from proxyd.protocols.openai_responses import OpenAIResponsesCodec

codec = OpenAIResponsesCodec()
USAGE = Usage(input_tokens=120, output_tokens=40, cached_tokens=100, reasoning_tokens=12)


def encode_stream(events: list[StreamEvent], model: str = "client-model") -> bytes:
    encoder = codec.stream_encoder(model=model)
    return b"".join(encoder.encode(e) for e in events) + encoder.close()


def chunked(raw: bytes, size: int = 37) -> list[bytes]:
    """Deliver the bytes in small pieces that cut through events, as a network would."""
    return [raw[i:i + size] for i in range(0, len(raw), size)]


async def consume(raw: bytes) -> dict[str, Any]:
    """Iterate `responses.create(stream=True)`; collect what a client sees from the typed events."""
    seen: dict[str, Any] = {"text": "", "thinking": "", "calls": [], "final": None, "error": None, "types": []}
    async with ReplayServer(chunked(raw)) as srv:
        client = openai.AsyncOpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
        stream = await client.responses.create(model="client-model", input="hi", stream=True)
        async for event in stream:
            seen["types"].append(event.type)
            if isinstance(event, ResponseTextDeltaEvent):
                seen["text"] += event.delta
            elif isinstance(event, ResponseReasoningSummaryTextDeltaEvent):
                seen["thinking"] += event.delta
            elif isinstance(event, ResponseOutputItemDoneEvent) and isinstance(event.item, ResponseFunctionToolCall):
                seen["calls"].append((event.item.call_id, event.item.name, json.loads(event.item.arguments)))
            elif isinstance(event, ResponseCompletedEvent | ResponseIncompleteEvent):
                seen["final"] = event.response
            elif isinstance(event, ResponseErrorEvent):
                seen["error"] = event
    return seen


async def consume_until_error(raw: bytes) -> tuple[dict[str, Any], openai.APIError]:
    """Like `consume`, for a stream ending in an `error` event: the SDK raises it as an APIError."""
    seen: dict[str, Any] = {"text": "", "types": []}
    async with ReplayServer(chunked(raw)) as srv:
        client = openai.AsyncOpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
        stream = await client.responses.create(model="client-model", input="hi", stream=True)
        try:
            async for event in stream:
                seen["types"].append(event.type)
                if isinstance(event, ResponseTextDeltaEvent):
                    seen["text"] += event.delta
        except openai.APIError as exc:
            return seen, exc
    raise AssertionError("the SDK did not raise the stream's error event")


async def final_response(raw: bytes) -> Any:
    """`responses.stream(...)` → `get_final_response()` (the SDK's accumulating helper)."""
    async with ReplayServer(chunked(raw, 101)) as srv:
        client = openai.AsyncOpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
        async with client.responses.stream(model="client-model", input="hi") as stream:
            return await stream.get_final_response()


def calls_of(response: Any) -> list[tuple[str, str, Any]]:
    return [(o.call_id, o.name, json.loads(o.arguments)) for o in response.output
            if isinstance(o, ResponseFunctionToolCall)]


def summary_of(response: Any) -> str:
    return "".join(s.text for o in response.output if isinstance(o, ResponseReasoningItem) for s in o.summary)


def assert_usage(usage: Any, expected: Usage | None) -> None:
    if expected is None:  # no usage from the upstream: the final response carries none (as the reference)
        assert usage is None
        return
    assert usage.input_tokens == expected.input_tokens
    assert usage.output_tokens == expected.output_tokens
    assert usage.input_tokens_details.cached_tokens == expected.cached_tokens
    assert usage.output_tokens_details.reasoning_tokens == expected.reasoning_tokens
    assert usage.total_tokens == expected.total


# --------------------------------------------------------------------------------------------- streams

SCENARIOS: dict[str, tuple[list[StreamEvent], dict[str, Any]]] = {
    "text": (
        [StreamStart(id="chatcmpl-1", model="up", created=1742450000), TextDelta("Hel"), TextDelta("lo!"),
         Finish(FinishReason.STOP), UsageUpdate(USAGE)],
        {"text": "Hello!", "thinking": "", "calls": [], "status": "completed", "usage": USAGE},
    ),
    "thinking_then_text": (
        [StreamStart(id="msg_01"), ThinkingDelta("Let me "), ThinkingDelta("think."),
         ThinkingSignature("EqQBsig", WireProtocol.CLAUDE), TextDelta("42"), Finish(FinishReason.STOP),
         UsageUpdate(USAGE)],
        {"text": "42", "thinking": "Let me think.", "calls": [], "status": "completed", "usage": USAGE},
    ),
    "parallel_tool_calls_interleaved": (
        [StreamStart(id="c2"), TextDelta("Checking."), ToolCallStart(0, "call_a", "get_weather"),
         ToolCallStart(1, "call_b", "get_time"), ToolCallDelta(0, '{"city":'), ToolCallDelta(1, '{"tz":"CET"}'),
         ToolCallDelta(0, '"Paris"}'), ToolCallEnd(1), ToolCallEnd(0), Finish(FinishReason.TOOL_CALLS),
         UsageUpdate(USAGE)],
        {"text": "Checking.", "thinking": "", "status": "completed", "usage": USAGE,
         "calls": [("call_a", "get_weather", {"city": "Paris"}), ("call_b", "get_time", {"tz": "CET"})]},
    ),
    "tool_call_then_usage": (
        [StreamStart(id="c3"), ToolCallStart(0, "toolu_01", "Bash"), ToolCallDelta(0, '{"command":"ls"}'),
         ToolCallEnd(0), Finish(FinishReason.TOOL_CALLS), UsageUpdate(USAGE)],
        {"text": "", "thinking": "", "status": "completed", "usage": USAGE,
         "calls": [("toolu_01", "Bash", {"command": "ls"})]},
    ),
    "missing_start_end_and_finish": (
        [TextDelta("Sure"), ToolCallStart(0, "call_x", "ls"), ToolCallDelta(0, '{"path":"."}')],
        {"text": "Sure", "thinking": "", "status": "completed", "usage": None,
         "calls": [("call_x", "ls", {"path": "."})]},
    ),
    "usage_before_finish": (
        [StreamStart(id="c5"), UsageUpdate(USAGE), ThinkingDelta("hm"),
         ThinkingSignature("", WireProtocol.OPENAI_RESPONSES, encrypted="gAAAA-enc"), TextDelta("ok"),
         Finish(FinishReason.STOP)],
        {"text": "ok", "thinking": "hm", "calls": [], "status": "completed", "usage": USAGE},
    ),
    "tool_call_without_arguments_or_id": (
        [StreamStart(id="c6"), ToolCallStart(0, "", "now"), ToolCallStart(1, "", "today"),
         Finish(FinishReason.TOOL_CALLS)],
        {"text": "", "thinking": "", "status": "completed", "usage": None,
         "calls": [("<minted>", "now", {}), ("<minted>", "today", {})]},
    ),
}


def _same_calls(actual: list[tuple[str, str, Any]], expected: list[tuple[str, str, Any]]) -> None:
    assert len(actual) == len(expected)
    for (a_id, a_name, a_args), (e_id, e_name, e_args) in zip(actual, expected, strict=True):
        assert (a_name, a_args) == (e_name, e_args)
        assert a_id.startswith("call_") if e_id == "<minted>" else a_id == e_id


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_sdk_iterates_stream(name: str) -> None:
    events, want = SCENARIOS[name]
    seen = await consume(encode_stream(events))
    assert seen["error"] is None
    assert seen["types"][:2] == ["response.created", "response.in_progress"]
    assert seen["text"] == want["text"]
    assert seen["thinking"] == want["thinking"]
    _same_calls(seen["calls"], want["calls"])
    final = seen["final"]
    assert final is not None and final.status == want["status"]
    assert final.model == "client-model"
    assert final.output_text == want["text"]
    _same_calls(calls_of(final), want["calls"])
    assert_usage(final.usage, want["usage"])


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_sdk_stream_helper_final_response(name: str) -> None:
    events, want = SCENARIOS[name]
    final = await final_response(encode_stream(events))
    assert final.status == want["status"]
    assert final.output_text == want["text"]
    assert summary_of(final) == want["thinking"]
    _same_calls(calls_of(final), want["calls"])
    assert_usage(final.usage, want["usage"])
    assert final.id  # the upstream id as is (resp_ only prefixes bare Gemini ids)


async def test_sdk_stream_own_encrypted_reasoning_reaches_client() -> None:
    final = await final_response(encode_stream(SCENARIOS["usage_before_finish"][0]))
    reasoning = [o for o in final.output if isinstance(o, ResponseReasoningItem)]
    assert [r.encrypted_content for r in reasoning] == ["gAAAA-enc"]


async def test_sdk_stream_foreign_signature_not_forwarded() -> None:
    final = await final_response(encode_stream(SCENARIOS["thinking_then_text"][0]))
    reasoning = [o for o in final.output if isinstance(o, ResponseReasoningItem)]
    assert len(reasoning) == 1 and reasoning[0].encrypted_content is None


async def test_sdk_stream_length_is_incomplete() -> None:
    events: list[StreamEvent] = [StreamStart(id="c7"), TextDelta("Once upon"), Finish(FinishReason.LENGTH),
                                 UsageUpdate(Usage(input_tokens=3, output_tokens=16))]
    seen = await consume(encode_stream(events))
    assert seen["types"][-1] == "response.incomplete"
    final = seen["final"]
    assert final.status == "incomplete"
    assert final.incomplete_details is not None and final.incomplete_details.reason == "max_output_tokens"
    assert final.output_text == "Once upon"
    assert final.usage.output_tokens == 16


async def test_sdk_stream_mid_stream_error_event() -> None:
    # The reference's error frame `{"type":"error","error":{"type","code","message","param"}}`: the SDK raises it.
    events: list[StreamEvent] = [StreamStart(id="c8"), TextDelta("partial"),
                                 StreamError(status=429, message="Too many requests")]
    seen, error = await consume_until_error(encode_stream(events))
    assert seen["text"] == "partial"
    assert "response.completed" not in seen["types"]
    assert error.code == "rate_limit_exceeded" and error.message == "Too many requests"
    assert error.type == "rate_limit_error"


async def test_sdk_stream_error_before_anything() -> None:
    encoder = codec.stream_encoder(model="m")
    raw = encoder.error(500, '{"error":{"message":"boom","code":"server_error"}}')
    assert raw.startswith(b"\nevent: error\n")
    assert encoder.close() == b"" and encoder.encode(TextDelta("late")) == b""
    seen, error = await consume_until_error(raw)
    assert seen["types"] == []
    assert error.code == "server_error" and error.message == "boom"


# --------------------------------------------------------------------------------------------- non-stream


async def non_stream(body: dict[str, Any]) -> Any:
    async with ReplayServer(json.dumps(body).encode(), content_type="application/json") as srv:
        client = openai.AsyncOpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
        return await client.responses.create(model="client-model", input="hi")


async def test_sdk_parses_text_response() -> None:
    response = Response(id="chatcmpl-77", model="upstream", created=1742450000,
                        content=(TextPart("Hello "), TextPart("world")), usage=USAGE)
    parsed = await non_stream(codec.encode_response(response, model="client-model"))
    assert parsed.output_text == "Hello world"
    assert parsed.status == "completed" and parsed.model == "client-model" and parsed.id == "chatcmpl-77"
    assert_usage(parsed.usage, USAGE)


async def test_sdk_parses_thinking_and_tool_calls() -> None:
    response = Response(
        id="msg_01", model="claude", created=7, finish_reason=FinishReason.TOOL_CALLS, usage=USAGE,
        content=(ThinkingPart(text="Plan it.", signature="sig", signature_source=WireProtocol.CLAUDE),
                 TextPart("Running."), ToolCallPart(id="toolu_1", name="Bash", arguments='{"command":"ls"}'),
                 ToolCallPart(id="toolu_2", name="Read", arguments='{"path":"a.txt"}')))
    parsed = await non_stream(codec.encode_response(response, model="client-model"))
    assert parsed.output_text == "Running."
    assert summary_of(parsed) == "Plan it."
    assert [o.encrypted_content for o in parsed.output if isinstance(o, ResponseReasoningItem)] == [None]
    assert calls_of(parsed) == [("toolu_1", "Bash", {"command": "ls"}), ("toolu_2", "Read", {"path": "a.txt"})]
    assert_usage(parsed.usage, USAGE)


async def test_sdk_parses_incomplete_response() -> None:
    response = Response(id="r", model="u", content=(TextPart("cut"),), finish_reason=FinishReason.LENGTH)
    parsed = await non_stream(codec.encode_response(response, model="client-model"))
    assert parsed.status == "incomplete" and parsed.incomplete_details.reason == "max_output_tokens"
    assert parsed.output_text == "cut"
