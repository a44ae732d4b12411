"""Golden cases for the Claude codec: every tests/golden/claude/*.json file, one test each.

Directions: decode_request, encode_request, decode_response, encode_response, stream_decode, stream_encode
(see test_codec_claude_support for the canonical JSON form and the placeholders ids and timestamps use).
encode_response / stream_encode inputs may name the upstream protocol (`source`) and the client's raw body
(`client_body`): the answer shape the reference produces per upstream (claude.PAIR_SHAPES). A stream_encode
case may also pin the raw bytes' ending (`expected_tail`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_codec_claude_support import Matcher, from_json, parse_frames, to_json

from proxyd.protocols import canonical as c
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.claude import ClaudeCodec
from proxyd.protocols.codec import AnswerContext, CodecError
from proxyd.protocols.sse import SSEEvent

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "claude"
CASES = sorted(GOLDEN.glob("*.json"))
DIRECTIONS = {"decode_request", "encode_request", "decode_response", "encode_response", "stream_decode",
              "stream_encode"}


def _context(data: Any) -> AnswerContext:
    source = data.get("source")
    return AnswerContext(source=WireProtocol(source) if source else None, client_body=data.get("client_body"))


def _encode_stream(data: Any) -> bytes:
    encoder = ClaudeCodec().stream_encoder(model=data.get("model", "client-model"), context=_context(data))
    raw = b"".join(encoder.encode(from_json(e)) for e in data["events"])
    end = data.get("end", "close")
    return raw + (encoder.close() if end == "close" else encoder.error(end["error"][0], end["error"][1]))


def _run(direction: str, data: Any) -> Any:
    codec = ClaudeCodec()
    if direction == "decode_request":
        try:
            request = codec.decode_request(data["body"], model=data.get("model", "claude-client"),
                                           stream=data.get("stream", False))
        except CodecError as exc:
            return {"error": exc.field}
        return to_json(request, tagged=False)
    if direction == "encode_request":
        request = from_json(data["request"], c.Request)
        return codec.encode_request(request, model=data.get("model", "claude-upstream"))
    if direction == "decode_response":
        return to_json(codec.decode_response(data), tagged=False)
    if direction == "encode_response":
        return codec.encode_response(from_json(data["response"], c.Response), model=data.get("model", "client-model"),
                                     context=_context(data))
    if direction == "stream_decode":
        decoder = codec.stream_decoder()
        events: list[c.StreamEvent] = []
        for item in data:
            raw = item["data"]
            payload = raw.encode() if isinstance(raw, str) else json.dumps(raw).encode()
            events.extend(decoder.decode(SSEEvent(data=payload, event=item.get("event"))))
        events.extend(decoder.close())
        return [to_json(e) for e in events]
    return parse_frames(_encode_stream(data))


def test_golden_files_exist_for_every_direction() -> None:
    seen = {json.loads(p.read_text())["direction"] for p in CASES}
    assert seen == DIRECTIONS


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path) -> None:
    case = json.loads(path.read_text())
    assert case["direction"] in DIRECTIONS
    assert path.stem == f"{case['direction']}__{case['name']}"
    actual = _run(case["direction"], case["input"])
    Matcher().check(case["expected"], actual)
    if "expected_tail" in case:
        assert _encode_stream(case["input"]).endswith(case["expected_tail"].encode())
