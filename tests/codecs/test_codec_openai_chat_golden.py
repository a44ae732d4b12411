"""Golden cases for the OpenAI chat and legacy completions codecs: every tests/golden/openai_chat/*.json file.

Each file is `{"name", "direction", "input", "expected"}` (optionally `"codec": "openai-completions"`).
Canonical values are written as `{"_type": "<class>", ...}` with default fields left out (see openai_chat_support);
generated ids and timestamps are written as placeholders (`"<chatcmpl-*>"`, `"<int>"`, `"<id>"`).
Client-side cases may name the upstream protocol (`"source": "claude"`…): answers are then shaped for that pair.
In `stream_encode`, an item that is a list is one upstream event's events (the encoder is flushed after each item).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai_chat_support import build, dump, matches, sse_payloads

from proxyd.protocols.base import WireProtocol
from proxyd.protocols.codec import NO_CONTEXT, AnswerContext, CodecError
from proxyd.protocols.openai_chat import OpenAIChatCodec
from proxyd.protocols.openai_completions_codec import OpenAICompletionsCodec
from proxyd.protocols.sse import SSEEvent

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "openai_chat"
CASES = sorted(GOLDEN.glob("*.json"))


def _codec(case: dict[str, Any]) -> Any:
    return OpenAICompletionsCodec() if case.get("codec") == "openai-completions" else OpenAIChatCodec()


def _context(given: dict[str, Any]) -> AnswerContext:
    source = given.get("source")
    return AnswerContext(source=WireProtocol(source)) if source else NO_CONTEXT


def _run(case: dict[str, Any]) -> Any:
    codec = _codec(case)
    direction, given = case["direction"], case["input"]
    if direction == "decode_request":
        try:
            request = codec.decode_request(given["body"], model=given.get("model", "alias"),
                                           stream=given.get("stream", False))
        except CodecError as exc:
            return {"error_field": exc.field}
        return dump(request)
    if direction == "encode_request":
        return codec.encode_request(build(given["request"]), model=given.get("model", "upstream-model"))
    if direction == "decode_response":
        return dump(codec.decode_response(given))
    if direction == "encode_response":
        return codec.encode_response(build(given["response"]), model=given.get("model", "alias"),
                                     context=_context(given))
    if direction == "stream_decode":
        decoder = codec.stream_decoder()
        events = [e for data in given for e in decoder.decode(SSEEvent(data=data.encode()))]
        return dump(events + decoder.close())
    if direction == "stream_encode":
        encoder = codec.stream_encoder(model=given.get("model", "alias"), context=_context(given))
        raw = b""
        for item in given["events"]:
            if isinstance(item, list):
                raw += b"".join(encoder.encode(build(e)) for e in item)
            elif item.get("_call") == "error":
                raw += encoder.error(item["status"], item["message"])
            else:
                raw += encoder.encode(build(item))
            raw += encoder.flush()
        raw += encoder.close()
        return sse_payloads(raw)
    raise AssertionError(f"unknown direction {direction}")


def test_golden_files_exist() -> None:
    directions = {json.loads(p.read_text())["direction"] for p in CASES}
    assert directions >= {"decode_request", "encode_request", "decode_response", "encode_response",
                          "stream_decode", "stream_encode"}


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path) -> None:
    case = json.loads(path.read_text())
    assert case["name"] == path.stem
    actual = _run(case)
    problems = matches(case["expected"], actual)
    assert not problems, "\n".join(problems) + "\nactual: " + json.dumps(actual, indent=1, ensure_ascii=False)
