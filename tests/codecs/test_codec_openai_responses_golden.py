"""Golden cases for the Responses codec: every tests/golden/openai_responses/*.json, each direction.

A case is `{"name", "direction", "note", "input", "expected"}`; canonical objects are written as
`{"_type": "<class>", …}` with default fields left out; generated ids/timestamps are placeholders (see
`differences`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_codec_openai_responses_support import (
    differences,
    from_canonical,
    sse_events,
    sse_json,
    to_canonical,
)

from proxyd.protocols.base import WireProtocol
from proxyd.protocols.codec import NO_CONTEXT, AnswerContext, CodecError
from proxyd.protocols.openai_responses import OpenAIResponsesCodec

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "openai_responses"
CASES = sorted(GOLDEN.glob("*.json"))
codec = OpenAIResponsesCodec()


def context_of(given: dict[str, Any]) -> AnswerContext:
    """An optional `"context": {"source": <protocol>, "client_body": {...}}` of an encode case."""
    raw = given.get("context")
    if not raw:
        return NO_CONTEXT
    source = WireProtocol(raw["source"]) if raw.get("source") else None
    return AnswerContext(source=source, client_body=raw.get("client_body"))


def run(case: dict[str, Any]) -> Any:
    """The codec's output for a golden case's input, as JSON."""
    direction, given = case["direction"], case["input"]
    if direction == "decode_request":
        try:
            request = codec.decode_request(given["body"], model=given.get("model", "alias"),
                                           stream=given.get("stream", False))
        except CodecError as exc:
            return {"error": {"field": exc.field}}
        return from_canonical(request)
    if direction == "encode_request":
        return codec.encode_request(to_canonical(given["request"]), model=given["model"])
    if direction == "decode_response":
        return from_canonical(codec.decode_response(given["body"]))
    if direction == "encode_response":
        return codec.encode_response(to_canonical(given["response"]), model=given["model"],
                                     context=context_of(given))
    if direction == "stream_decode":
        decoder = codec.stream_decoder()
        events = [e for sse in sse_events(given["events"]) for e in decoder.decode(sse)]
        return from_canonical(events + decoder.close())
    if direction == "stream_encode":
        encoder = codec.stream_encoder(model=given["model"], context=context_of(given))
        raw = b"".join(encoder.encode(to_canonical(e)) for e in given["events"]) + encoder.close()
        assert raw.startswith(b"\nevent: "), "a Responses stream opens with a blank line (api-surface §7.6.2)"
        assert raw.endswith(b"\n\n")
        events = sse_json(raw)
        numbers = [e["data"]["sequence_number"] for e in events]
        if events and events[-1]["event"] == "error":
            # the reference numbers an error frame with the count of the events before it
            assert numbers[-1] == len(events) - 1
            numbers = numbers[:-1]
        assert numbers == list(range(1, len(numbers) + 1))
        return events
    raise AssertionError(f"unknown direction {direction}")


def test_golden_files_exist() -> None:
    directions = {json.loads(p.read_text())["direction"] for p in CASES}
    assert directions == {"decode_request", "encode_request", "decode_response", "encode_response",
                          "stream_decode", "stream_encode"}


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path) -> None:
    case = json.loads(path.read_text())
    assert case["name"] == path.stem
    problems = differences(case["expected"], run(case))
    assert not problems, "\n".join(problems)
