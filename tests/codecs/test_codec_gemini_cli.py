"""The Gemini CLI envelope helpers, and the field names GeminiCodec reports for malformed client bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxyd.protocols.canonical import Finish, FinishReason, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
from proxyd.protocols.codec import CodecError
from proxyd.protocols.gemini import GeminiCodec
from proxyd.protocols.gemini_cli import (
    CliStreamEncoder,
    request_model,
    unwrap_event,
    unwrap_request,
    unwrap_response,
    wrap_request,
    wrap_response,
    wrap_sse,
)
from proxyd.protocols.sse import SSEEvent, SSEParser

codec = GeminiCodec()


def test_request_envelope_round_trip() -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "model": "stray"}
    envelope = wrap_request(body, model="gemini-2.5-pro", project="proj-1")
    assert envelope == {"model": "gemini-2.5-pro", "project": "proj-1",
                        "request": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}}
    assert unwrap_request(envelope) == envelope["request"] and request_model(envelope) == "gemini-2.5-pro"
    with pytest.raises(CodecError) as info:
        unwrap_request({"model": "x"})
    assert info.value.field == "request"
    with pytest.raises(CodecError):
        unwrap_request([1])
    assert request_model(None) == ""


def test_encode_request_wrapped_for_code_assist() -> None:
    request = codec.decode_request({"contents": [{"parts": [{"text": "hi"}]}]}, model="m", stream=False)
    envelope = wrap_request(codec.encode_request(request, model="gemini-2.5-flash"), model="gemini-2.5-flash",
                            project="")
    assert envelope["request"]["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert "model" not in envelope["request"]


def test_response_envelope_non_stream() -> None:
    inner = {"candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP"}],
             "responseId": "r"}
    wrapped = wrap_response(inner)
    assert wrapped == {"response": inner}
    assert unwrap_response({"response": inner, "traceId": "t"}) == inner
    assert unwrap_response(inner) is inner and unwrap_response("x") == "x"
    assert codec.decode_response(wrapped).id == "r"


def test_stream_envelope_wraps_data_frames_only() -> None:
    encoder = CliStreamEncoder(codec.stream_encoder(model="alias"))
    raw = (encoder.encode(TextDelta("a")) + encoder.encode(ToolCallStart(0, "c", "f"))
           + encoder.encode(ToolCallDelta(0, '{"x":1}')) + encoder.encode(ToolCallEnd(0))
           + encoder.encode(Finish(FinishReason.TOOL_CALLS)) + encoder.close())
    events = SSEParser().feed(raw)
    bodies = [json.loads(e.data) for e in events]
    assert all(set(b) == {"response"} for b in bodies)
    assert bodies[1]["response"]["candidates"][0]["content"]["parts"][0]["functionCall"] == {
        "name": "f", "args": {"x": 1}, "id": "c"}
    assert bodies[-1]["response"]["candidates"][0]["finishReason"] == "STOP"
    assert encoder.error(500, "late") == b""  # nothing after the end of the stream
    error = CliStreamEncoder(codec.stream_encoder(model="alias")).error(500, "boom")
    assert error.startswith(b"data: {\"error\"") and b'"response"' not in error
    assert wrap_sse(b"") == b"" and wrap_sse(b"data: not json\n\n") == b"data: not json\n\n"


def test_unwrap_event() -> None:
    event = SSEEvent(data=b'{"response":{"responseId":"r"},"traceId":"t"}')
    assert json.loads(unwrap_event(event).data) == {"responseId": "r"}
    plain = SSEEvent(data=b"[DONE]")
    assert unwrap_event(plain) is plain


@pytest.mark.parametrize(("body", "field"), [
    ([], ""),
    ({}, "contents"),
    ({"contents": []}, "contents"),
    ({"contents": [{"parts": []}]}, "contents"),
    ({"contents": ["x"]}, "contents[0]"),
    ({"contents": [{"role": 1, "parts": []}]}, "contents[0].role"),
    ({"contents": [{"parts": "x"}]}, "contents[0].parts"),
    ({"contents": [{"parts": [1]}]}, "contents[0].parts[0]"),
    ({"contents": [{"parts": [{"text": 5}]}]}, "contents[0].parts[0].text"),
    ({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png"}}]}]}, "contents[0].parts[0].inlineData"),
    ({"contents": [{"parts": [{"fileData": {"mimeType": "image/png"}}]}]}, "contents[0].parts[0].fileData"),
    ({"contents": [{"role": "model", "parts": [{"functionCall": {"args": {}}}]}]},
     "contents[0].parts[0].functionCall.name"),
    ({"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f", "args": [1]}}]}]},
     "contents[0].parts[0].functionCall.args"),
    ({"contents": [{"parts": [{"functionResponse": "x"}]}]}, "contents[0].parts[0].functionResponse"),
    ({"contents": [{"parts": [{"text": "a", "thoughtSignature": 3}]}]}, "contents[0].parts[0].thoughtSignature"),
    ({"contents": [{"parts": [{"text": "a"}]}], "systemInstruction": 3}, "systemInstruction"),
    ({"contents": [{"parts": [{"text": "a"}]}], "tools": "x"}, "tools"),
    ({"contents": [{"parts": [{"text": "a"}]}], "tools": [{"functionDeclarations": [{"description": "d"}]}]},
     "tools[0].functionDeclarations[0].name"),
    ({"contents": [{"parts": [{"text": "a"}]}], "toolConfig": {"functionCallingConfig": {"mode": 1}}},
     "toolConfig.functionCallingConfig.mode"),
    ({"contents": [{"parts": [{"text": "a"}]}], "generationConfig": {"maxOutputTokens": "10"}},
     "generationConfig.maxOutputTokens"),
    ({"contents": [{"parts": [{"text": "a"}]}], "generationConfig": {"maxOutputTokens": 1.5}},
     "generationConfig.maxOutputTokens"),
    ({"contents": [{"parts": [{"text": "a"}]}], "generationConfig": {"temperature": float("nan")}},
     "generationConfig.temperature"),
    ({"contents": [{"parts": [{"text": "a"}]}], "generationConfig": {"stopSequences": [1]}},
     "generationConfig.stopSequences"),
    ({"contents": [{"parts": [{"text": "a"}]}], "generationConfig": {"thinkingConfig": {"thinkingBudget": "x"}}},
     "generationConfig.thinkingConfig.thinkingBudget"),
])
def test_malformed_bodies_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(CodecError) as info:
        codec.decode_request(body, model="m", stream=False)
    assert info.value.field == field


def test_upstream_garbage_never_crashes() -> None:
    with pytest.raises(CodecError):
        codec.decode_response([])  # type: ignore[arg-type]
    response = codec.decode_response({"candidates": [{"content": {"parts": [{"functionCall": {"args": "x"}},
                                                                              {"inlineData": 3}]}}],
                                      "usageMetadata": {"promptTokenCount": float("inf")}})
    assert response.usage is not None and response.usage.input_tokens == 0
    decoder = codec.stream_decoder()
    assert decoder.decode(SSEEvent(data=b'{"error": {"code": 1e400}}'))[0].status == 500
