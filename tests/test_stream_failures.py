"""Upstream streams that fail after the first event, reported as the recorded reference does.

A broken transfer is Go's `unexpected EOF` (500) in the client's own error frame; a Responses (Codex) stream that
breaks off or ends before `response.completed` is the 408 `stream error: … stream closed before
response.completed`; a chat relay ends without `[DONE]` after the upstream's in-band error chunk; a chat stream
that ends without `[DONE]` fails a Responses client's stream (it needs a terminal event).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from fakes import MATRIX_CLIENT_KEY, compat_config, matrix_config

from proxyd.logs import LOGS
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.openai_chat import OpenAIChatCodec
from proxyd.protocols.openai_responses import STREAM_CLOSED_MESSAGE, OpenAIResponsesCodec
from proxyd.protocols.rewrite import CanonicalRewriter, SSEPassthrough
from proxyd.protocols.sse import SSEEvent, SSEParser

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture
async def matrix(proxyd_factory: Any, fake_openai: Any, fake_claude: Any, fake_gemini: Any, fake_codex: Any) -> Any:
    return await proxyd_factory(matrix_config(fake_openai, fake_claude, fake_gemini, fake_codex))


def _events(raw: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    return [*parser.feed(raw), *parser.close()]


async def _stream(server: Any, path: str, body: dict[str, Any]) -> list[SSEEvent]:
    async with aiohttp.ClientSession() as http, http.post(
            f"{server.url}{path}", json=body, headers={"Authorization": f"Bearer {MATRIX_CLIENT_KEY}"}) as resp:
        assert resp.status == 200
        return _events(await resp.read())


async def test_a_claude_cut_reaches_a_chat_client_as_unexpected_eof(matrix: Any, fake_claude: Any) -> None:
    fake_claude.enqueue_stream_failure(after_events=4)
    events = await _stream(matrix, "/v1/chat/completions",
                           {"model": "claude-model", "messages": MESSAGES, "stream": True})
    assert all(e.data != b"[DONE]" for e in events)
    assert json.loads(events[-1].data) == {"error": {"message": "unexpected EOF", "type": "server_error",
                                                     "code": "internal_server_error"}}


async def test_a_compat_cut_reaches_a_gemini_client_as_a_500(matrix: Any, fake_openai: Any) -> None:
    fake_openai.enqueue_stream_failure(2)
    events = await _stream(matrix, "/v1beta/models/compat-model:streamGenerateContent?alt=sse",
                           {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    assert json.loads(events[-1].data) == {"error": {"code": 500, "message": "unexpected EOF", "status": "INTERNAL"}}


async def test_a_codex_cut_reaches_a_chat_client_as_the_408(matrix: Any, fake_codex: Any) -> None:
    fake_codex.enqueue_stream_failure(after_events=5)
    events = await _stream(matrix, "/v1/chat/completions",
                           {"model": "codex-model", "messages": MESSAGES, "stream": True})
    assert json.loads(events[-1].data) == {"error": {"message": STREAM_CLOSED_MESSAGE, "type": "server_error",
                                                     "code": "request_timeout"}}
    assert STREAM_CLOSED_MESSAGE.startswith("stream error: stream disconnected before completion: ")


async def test_a_relayed_codex_cut_is_numbered_after_the_relayed_events(matrix: Any, fake_codex: Any) -> None:
    fake_codex.enqueue_stream_failure(after_events=3)
    events = await _stream(matrix, "/v1/responses", {"model": "codex-model", "input": "hi", "stream": True})
    relayed = [json.loads(e.data) for e in events[:-1]]
    assert [e["sequence_number"] for e in relayed] == [0, 1, 2]
    assert events[-1].event == "error"
    assert json.loads(events[-1].data) == {
        "type": "error", "sequence_number": 3,
        "error": {"type": "server_error", "code": "request_timeout", "message": STREAM_CLOSED_MESSAGE, "param": None},
    }


async def test_a_chat_relay_ends_without_done_after_an_error_chunk(fake_openai: Any, proxyd_factory: Any) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url))
    fake_openai.enqueue_stream_error_event(2)
    async with aiohttp.ClientSession() as http, http.post(
            f"{server.v1}/chat/completions", headers={"Authorization": "Bearer client-key"},
            json={"model": "my-model", "messages": MESSAGES, "stream": True}) as resp:
        events = _events(await resp.read())
    assert [e.data == b"[DONE]" for e in events] == [False, False, False]
    assert json.loads(events[-1].data)["error"]["type"] == "server_error"


def test_a_chat_relay_drops_what_follows_an_error_chunk() -> None:
    relay = SSEPassthrough(WireProtocol.OPENAI_CHAT, "m", OpenAIChatCodec())
    assert relay.event(SSEEvent(data=b'{"error":{"message":"boom","type":"server_error"}}'))
    assert relay.event(SSEEvent(data=b'{"id":"x","choices":[{"index":0,"delta":{"content":"late"}}]}')) == b""
    assert relay.done() == b""
    clean = SSEPassthrough(WireProtocol.OPENAI_CHAT, "m", OpenAIChatCodec())
    clean.event(SSEEvent(data=b'{"id":"x","choices":[{"index":0,"delta":{"content":"hi"}}]}'))
    assert clean.done() == b"data: [DONE]\n\n"


def test_a_responses_relay_knows_whether_it_was_terminated() -> None:
    relay = SSEPassthrough(WireProtocol.OPENAI_RESPONSES, "m", OpenAIResponsesCodec())
    relay.event(SSEEvent(data=b'{"type":"response.created","sequence_number":0}', event="response.created"))
    assert relay.unterminated
    relay.event(SSEEvent(data=b'{"type":"response.completed","sequence_number":1,"response":{}}'))
    assert not relay.unterminated


def _chat_chunk(delta: dict[str, Any], finish: str | None = None) -> SSEEvent:
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return SSEEvent(data=json.dumps(chunk).encode())


@pytest.mark.parametrize("done", [True, False])
def test_a_chat_stream_without_done_fails_a_responses_client(done: bool) -> None:
    rewriter = CanonicalRewriter(OpenAIChatCodec(), OpenAIResponsesCodec(), "m")
    upstream = [_chat_chunk({"role": "assistant", "content": "Hi"}), _chat_chunk({}, "stop")]
    if done:
        upstream.append(SSEEvent(data=b"[DONE]"))
    raw = b"".join(rewriter.event(e) for e in upstream) + rewriter.done()
    last = json.loads(_events(raw)[-1].data)
    if done:
        assert last["type"] == "response.completed"
        return
    count = len(_events(raw)) - 1
    assert last == {"type": "error", "sequence_number": count,
                    "error": {"type": "server_error", "code": "internal_server_error",
                              "message": "upstream stream closed before [DONE]", "param": None}}


async def test_commercial_mode_writes_no_request_logs(fake_openai: Any, proxyd_factory: Any) -> None:
    """As the reference: commercial mode leaves the request-log machinery out, forced error logs included."""
    text = compat_config(fake_openai.base_url, extra="request-log: true\ncommercial-mode: true\n")
    server = await proxyd_factory(text)
    fake_openai.enqueue_stream_error_event(1)
    async with aiohttp.ClientSession() as http, http.post(
            f"{server.v1}/chat/completions", headers={"Authorization": "Bearer client-key"},
            json={"model": "my-model", "messages": MESSAGES, "stream": True}) as resp:
        assert resp.status == 200
        await resp.read()
    service = server.app[LOGS]
    await service.requests.drain()
    assert not service.capture_requests
    assert not service.directory.exists() or [p.name for p in service.directory.glob("*.log")
                                              if p.name != "main.log"] == []
