"""Golden cases for the Gemini codec: one JSON file per case under tests/golden/gemini/.

Each file: {"name", "direction", "input", "expected"}; directions:
- decode_request: input {"body", "model"?, "stream"?} → expected canonical Request (tagged JSON, see gemini_testlib);
- encode_request: input {"request": canonical, "model"?} → expected Gemini body;
- decode_response: input = Gemini body → expected canonical Response;
- encode_response: input {"response": canonical, "model", "source"?} → expected Gemini body (`source`: the upstream
  protocol of the AnswerContext, for the per-pair shapes of gemini_answers.py);
- stream_decode: input = list of {"data": str|object, "event"?} → expected canonical events (decode + close);
- stream_encode: input {"model", "source"?, "events": [canonical], "error"?: [status, message]} → expected frames
  {"data": object, "event"?} (raw bytes must also be `data: …\\n\\n` frames);
- clean_schema: input = JSON schema → expected cleaned schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gemini_testlib import from_json, match, parse_frames, to_json

from proxyd.protocols.base import WireProtocol
from proxyd.protocols.codec import AnswerContext
from proxyd.protocols.gemini import GeminiCodec
from proxyd.protocols.gemini_schema import clean_schema_for_gemini
from proxyd.protocols.sse import SSEEvent

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "gemini"
CASES = sorted(GOLDEN.glob("*.json"))


def _context(data: Any) -> AnswerContext:
    source = data.get("source") if isinstance(data, dict) else None
    return AnswerContext(source=WireProtocol(source) if source else None)


def _run(direction: str, data: Any) -> Any:
    codec = GeminiCodec()
    if direction == "decode_request":
        request = codec.decode_request(data["body"], model=data.get("model", "alias"), stream=data.get("stream", False))
        return to_json(request)
    if direction == "encode_request":
        return codec.encode_request(from_json(data["request"]), model=data.get("model", "gemini-2.5-pro"))
    if direction == "decode_response":
        return to_json(codec.decode_response(data))
    if direction == "encode_response":
        return codec.encode_response(from_json(data["response"]), model=data.get("model", "alias"),
                                     context=_context(data))
    if direction == "stream_decode":
        decoder = codec.stream_decoder()
        events = []
        for item in data:
            raw = item["data"]
            payload = raw.encode() if isinstance(raw, str) else json.dumps(raw).encode()
            events.extend(decoder.decode(SSEEvent(data=payload, event=item.get("event"))))
        events.extend(decoder.close())
        return to_json(events)
    if direction == "stream_encode":
        encoder = codec.stream_encoder(model=data.get("model", "alias"), context=_context(data))
        out = b"".join(encoder.encode(from_json(event)) for event in data["events"])
        if "error" in data:
            out += encoder.error(*data["error"])
        out += encoder.close()
        for block in out.split(b"\n\n")[:-1]:
            lines = block.split(b"\n")
            assert lines[-1].startswith(b"data: "), block
            assert all(line.startswith((b"data: ", b"event: ")) for line in lines), block
        assert out == b"" or out.endswith(b"\n\n")
        return parse_frames(out)
    if direction == "clean_schema":
        return clean_schema_for_gemini(data)
    raise AssertionError(f"unknown direction {direction}")


def test_golden_corpus_is_present() -> None:
    directions = {json.loads(p.read_text())["direction"] for p in CASES}
    assert {"decode_request", "encode_request", "decode_response", "encode_response", "stream_decode",
            "stream_encode", "clean_schema"} <= directions


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path) -> None:
    case = json.loads(path.read_text())
    assert case["name"] == path.stem
    actual = _run(case["direction"], case["input"])
    problems = match(actual, case["expected"])
    assert not problems, "\n".join(problems) + "\nactual: " + json.dumps(actual, ensure_ascii=False)
