"""Tests for the fake OpenAI upstream, driven by the official openai SDK and raw aiohttp."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import openai
import pytest
from fakes import FakeOpenAIUpstream, openai_error
from fakes.sse import iter_sse, parse_sse


@pytest.fixture
async def client(fake_openai: FakeOpenAIUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    """SDK client pointed at the fake, without retries."""
    c = openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key="sk-test-1234567890", max_retries=0)
    yield c
    await c.close()


MESSAGES = [{"role": "user", "content": "hi"}]


async def _consume(stream: AsyncIterator[object]) -> list[object]:
    return [item async for item in stream]


async def test_base_url_and_port(fake_openai: FakeOpenAIUpstream) -> None:
    assert fake_openai.base_url == f"http://127.0.0.1:{fake_openai.port}/v1"


async def test_chat_non_stream(fake_openai: FakeOpenAIUpstream, client: openai.AsyncOpenAI) -> None:
    fake_openai.reply_text = "Hello from fake"
    resp = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert resp.id.startswith("chatcmpl-")
    assert resp.object == "chat.completion"
    assert resp.model == "gpt-4o-mini"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == "Hello from fake"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (12, 8, 20)

    rec = fake_openai.last
    assert rec.method == "POST"
    assert rec.path == "/v1/chat/completions"
    assert rec.headers["authorization"] == "Bearer sk-test-1234567890"
    assert rec.bearer == "sk-test-1234567890"
    assert rec.json["messages"] == MESSAGES
    assert json.loads(rec.body) == rec.json
    assert not rec.stream


async def test_chat_stream_with_usage(fake_openai: FakeOpenAIUpstream, client: openai.AsyncOpenAI) -> None:
    fake_openai.reply_text = "The quick brown fox jumps"
    fake_openai.chunk_count = 5
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    texts = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(texts) == "The quick brown fox jumps"
    assert sum(1 for t in texts if t) == 5
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 20
    assert all(c.usage is None for c in chunks[:-1])
    assert {c.id for c in chunks} == {chunks[0].id}
    assert all(c.object == "chat.completion.chunk" and c.model == "gpt-4o" for c in chunks)
    assert fake_openai.last.stream
    assert fake_openai.completed_streams == 1


async def test_stream_raw_wire_format(fake_openai: FakeOpenAIUpstream) -> None:
    fake_openai.reply_text = "abcdef"
    fake_openai.chunk_count = 2
    async with aiohttp.ClientSession() as s:
        body = {"model": "m", "messages": MESSAGES, "stream": True}
        async with s.post(f"{fake_openai.base_url}/chat/completions", json=body) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/event-stream")
            assert r.headers["Cache-Control"] == "no-cache"
            raw = await r.read()
    assert raw.endswith(b"data: [DONE]\n\n")
    parts = raw.split(b"\n\n")
    assert all(p.startswith(b"data: ") for p in parts if p)
    events = parse_sse(raw)
    assert events[-1].is_done
    payloads = [e.json() for e in events[:-1]]
    # No include_usage: no usage chunk and no usage keys.
    assert all("usage" not in p for p in payloads)
    assert [p["choices"][0]["delta"].get("content") for p in payloads] == ["", "abc", "def", None]
    assert payloads[-1]["choices"][0]["finish_reason"] == "stop"


async def test_stream_is_incremental(fake_openai: FakeOpenAIUpstream) -> None:
    fake_openai.chunk_count = 3
    fake_openai.chunk_delay = 0.2
    async with aiohttp.ClientSession() as s:
        body = {"model": "m", "messages": MESSAGES, "stream": True}
        start = time.monotonic()
        async with s.post(f"{fake_openai.base_url}/chat/completions", json=body) as r:
            arrivals = [time.monotonic() - start async for _ in iter_sse(r)]
    assert arrivals[0] < 0.15
    assert arrivals[-1] >= 0.2 * (len(arrivals) - 1) - 0.05
    assert arrivals[1] - arrivals[0] >= 0.15


async def test_legacy_completions(fake_openai: FakeOpenAIUpstream, client: openai.AsyncOpenAI) -> None:
    fake_openai.reply_text = "legacy text"
    resp = await client.completions.create(model="gpt-3.5-turbo-instruct", prompt="say")
    assert resp.object == "text_completion"
    assert resp.id.startswith("cmpl-")
    assert resp.choices[0].text == "legacy text"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.total_tokens == 20
    assert fake_openai.last.path == "/v1/completions"

    stream = await client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="say", stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "legacy text"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None


async def test_models_list(fake_openai: FakeOpenAIUpstream, client: openai.AsyncOpenAI) -> None:
    fake_openai.models = ["a-model", "b-model"]
    page = await client.models.list()
    assert [m.id for m in page.data] == ["a-model", "b-model"]
    assert fake_openai.last.method == "GET"


async def test_invalid_api_key(fake_openai: FakeOpenAIUpstream, client: openai.AsyncOpenAI) -> None:
    fake_openai.expected_keys = {"sk-good"}
    with pytest.raises(openai.AuthenticationError) as ei:
        await client.chat.completions.create(model="m", messages=MESSAGES)
    assert ei.value.status_code == 401
    assert isinstance(ei.value.body, dict)
    assert ei.value.body["code"] == "invalid_api_key"
    assert ei.value.body["type"] == "invalid_request_error"
    assert ei.value.body["message"].startswith("Incorrect API key provided: sk-")
    assert "sk-test-1234567890" not in ei.value.body["message"]

    good = openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key="sk-good", max_retries=0)
    resp = await good.chat.completions.create(model="m", messages=MESSAGES)
    await good.close()
    assert resp.choices[0].message.content == fake_openai.reply_text


async def test_scripted_errors(fake_openai: FakeOpenAIUpstream, client: openai.AsyncOpenAI) -> None:
    fake_openai.enqueue_error(
        429,
        openai_error("Rate limit reached for requests", "requests", code="rate_limit_exceeded"),
        headers={"Retry-After": "7"},
    )
    fake_openai.enqueue_error(500, "upstream exploded")
    fake_openai.enqueue_error(503, {"error": {"message": "overloaded", "type": "server_error"}})
    assert fake_openai.pending_actions == 3

    with pytest.raises(openai.RateLimitError) as e429:
        await client.chat.completions.create(model="m", messages=MESSAGES)
    assert e429.value.status_code == 429
    assert e429.value.response.headers["retry-after"] == "7"

    with pytest.raises(openai.InternalServerError) as e500:
        await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert e500.value.status_code == 500
    assert e500.value.response.text == "upstream exploded"
    assert e500.value.response.headers["content-type"].startswith("text/plain")

    with pytest.raises(openai.InternalServerError) as e503:
        await client.chat.completions.create(model="m", messages=MESSAGES)
    assert e503.value.status_code == 503

    # Queue drained: back to normal replies.
    resp = await client.chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == fake_openai.reply_text
    assert len(fake_openai.requests) == 4


async def test_error_times(fake_openai: FakeOpenAIUpstream) -> None:
    fake_openai.enqueue_error(500, "boom", times=2)
    c = openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key="k", max_retries=2)
    c = c.with_options(timeout=5)
    resp = await c.chat.completions.create(model="m", messages=MESSAGES)
    await c.close()
    assert resp.choices[0].message.content == fake_openai.reply_text
    assert len(fake_openai.requests) == 3


async def test_tool_calls_stream(fake_openai: FakeOpenAIUpstream, client: openai.AsyncOpenAI) -> None:
    fake_openai.reply_text = ""
    fake_openai.reply_tool_calls = [
        {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}, "id": "call_1"},
        {"name": "get_time", "arguments": '{"tz":"UTC"}'},
    ]
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for tc in choice.delta.tool_calls or []:
            slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            if tc.id:
                slot["id"] = tc.id
            if tc.function and tc.function.name:
                slot["name"] += tc.function.name
            if tc.function and tc.function.arguments:
                slot["arguments"] += tc.function.arguments
    assert finish == "tool_calls"
    assert calls[0]["id"] == "call_1"
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris", "unit": "c"}
    assert calls[1]["name"] == "get_time"
    assert calls[1]["id"].startswith("call_")
    assert json.loads(calls[1]["arguments"]) == {"tz": "UTC"}


async def test_tool_calls_non_stream(fake_openai: FakeOpenAIUpstream, client: openai.AsyncOpenAI) -> None:
    fake_openai.enqueue_reply("", tool_calls=[{"name": "lookup", "arguments": {"q": "x"}}])
    resp = await client.chat.completions.create(model="m", messages=MESSAGES)
    msg = resp.choices[0].message
    assert resp.choices[0].finish_reason == "tool_calls"
    assert msg.content is None
    assert msg.tool_calls is not None
    assert msg.tool_calls[0].function.name == "lookup"
    assert json.loads(msg.tool_calls[0].function.arguments) == {"q": "x"}
    # One-off: the next reply is plain text again.
    resp = await client.chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == fake_openai.reply_text


async def test_stream_failure_raises(fake_openai: FakeOpenAIUpstream, client: openai.AsyncOpenAI) -> None:
    fake_openai.reply_text = "one two three four"
    fake_openai.chunk_count = 4
    fake_openai.enqueue_stream_failure(after_chunks=2)
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    received: list[object] = []

    async def consume() -> None:
        async for chunk in stream:
            received.append(chunk)

    with pytest.raises(openai.APIConnectionError):
        await consume()
    assert len(received) == 2
    # The fake keeps serving afterwards.
    resp = await client.chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == "one two three four"


async def test_stream_error_event(fake_openai: FakeOpenAIUpstream, client: openai.AsyncOpenAI) -> None:
    fake_openai.enqueue_stream_error_event(1)
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError, match="server had an error"):
        await _consume(stream)


async def test_client_disconnect_detected(fake_openai: FakeOpenAIUpstream) -> None:
    fake_openai.chunk_count = 20
    fake_openai.reply_text = "x" * 20
    fake_openai.chunk_delay = 0.1
    async with aiohttp.ClientSession() as s:
        body = {"model": "m", "messages": MESSAGES, "stream": True}
        resp = await s.post(f"{fake_openai.base_url}/chat/completions", json=body)
        line = await resp.content.readline()
        assert line.startswith(b"data: ")
        resp.close()
    await asyncio.wait_for(fake_openai.client_disconnected.wait(), timeout=2)
    assert fake_openai.disconnects == 1
    assert fake_openai.completed_streams == 0


async def test_disconnect_detected_with_long_delay(fake_openai: FakeOpenAIUpstream) -> None:
    fake_openai.chunk_delay = 30
    async with aiohttp.ClientSession() as s:
        body = {"model": "m", "messages": MESSAGES, "stream": True}
        resp = await s.post(f"{fake_openai.base_url}/chat/completions", json=body)
        await resp.content.readline()
        resp.close()
    start = time.monotonic()
    await asyncio.wait_for(fake_openai.client_disconnected.wait(), timeout=2)
    assert time.monotonic() - start < 1


async def test_hang_before_headers_timeout(fake_openai: FakeOpenAIUpstream) -> None:
    fake_openai.hang_before_headers = True
    c = openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key="k", max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        await c.chat.completions.create(model="m", messages=MESSAGES)
    await c.close()
    await asyncio.wait_for(fake_openai.client_disconnected.wait(), timeout=2)
    assert len(fake_openai.requests) == 1


async def test_hang_release(fake_openai: FakeOpenAIUpstream, client: openai.AsyncOpenAI) -> None:
    fake_openai.hang_before_headers = True
    task = asyncio.create_task(client.chat.completions.create(model="m", messages=MESSAGES))
    await fake_openai.wait_for_requests(1)
    await asyncio.sleep(0.05)
    assert not task.done()
    fake_openai.release_hang()
    resp = await asyncio.wait_for(task, timeout=2)
    assert resp.choices[0].message.content == fake_openai.reply_text


async def test_unknown_path_and_bad_json(fake_openai: FakeOpenAIUpstream) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{fake_openai.base_url}/nope", json={}) as r:
            assert r.status == 404
            assert "Invalid URL" in (await r.json())["error"]["message"]
        async with s.post(f"{fake_openai.base_url}/chat/completions", data=b"{not json") as r:
            assert r.status == 400
            assert (await r.json())["error"]["type"] == "invalid_request_error"
    assert fake_openai.last.json is None
    assert fake_openai.last.body == b"{not json"


async def test_tmp_config(tmp_config: Callable[..., Path]) -> None:
    path = tmp_config("port: 8317\n")
    assert path.read_text() == "port: 8317\n"
    assert tmp_config("port: 1\n") == path
    assert path.read_text() == "port: 1\n"
    assert [p.name for p in path.parent.iterdir()] == [path.name]
