"""Tests for the fake Anthropic upstream, driven by the official anthropic SDK and raw aiohttp."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import anthropic
import httpx2
import pytest
from fakes import FakeClaudeUpstream, anthropic_error, estimate_input_tokens
from fakes.sse import iter_sse, parse_sse

MODEL = "claude-sonnet-4-5-20250929"
MESSAGES = [{"role": "user", "content": "hi"}]
HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "sk-ant-raw"}


@pytest.fixture
async def client(fake_claude: FakeClaudeUpstream) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """SDK client pointed at the fake, without retries."""
    c = anthropic.AsyncAnthropic(base_url=fake_claude.base_url, api_key="sk-ant-test-123456", max_retries=0)
    yield c
    await c.close()


def _body(**extra: object) -> dict[str, object]:
    return {"model": MODEL, "max_tokens": 64, "messages": MESSAGES, **extra}


async def test_base_url_has_no_v1(fake_claude: FakeClaudeUpstream) -> None:
    assert fake_claude.base_url == f"http://127.0.0.1:{fake_claude.port}"


async def test_non_stream_message(fake_claude: FakeClaudeUpstream, client: anthropic.AsyncAnthropic) -> None:
    fake_claude.reply_text = "Hello from fake"
    fake_claude.cache_creation_input_tokens = 5
    fake_claude.cache_read_input_tokens = 7
    msg = await client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert msg.id.startswith("msg_")
    assert msg.type == "message"
    assert msg.role == "assistant"
    assert msg.model == MODEL
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "Hello from fake"  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn"
    assert msg.stop_sequence is None
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (12, 8)
    assert msg.usage.cache_creation_input_tokens == 5
    assert msg.usage.cache_read_input_tokens == 7

    rec = fake_claude.last
    assert (rec.method, rec.path) == ("POST", "/v1/messages")
    # This SDK generation sends API keys as Bearer; both that and x-api-key are accepted.
    assert rec.api_key == "sk-ant-test-123456"
    assert rec.auth_scheme in {"bearer", "x-api-key"}
    assert rec.anthropic_version
    assert rec.json["messages"] == MESSAGES
    assert not rec.stream


async def test_stream_via_sdk(fake_claude: FakeClaudeUpstream, client: anthropic.AsyncAnthropic) -> None:
    fake_claude.reply_text = "The quick brown fox"
    fake_claude.chunk_count = 4
    stream = await client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    events = [e async for e in stream]
    types = [e.type for e in events]
    assert types == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 4,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]  # the SDK swallows `ping`
    start = events[0]
    assert start.type == "message_start"
    assert start.message.id.startswith("msg_")
    assert start.message.model == MODEL
    assert start.message.usage.input_tokens == 12
    texts = [e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"]
    assert "".join(texts) == "The quick brown fox"
    delta = events[-2]
    assert delta.type == "message_delta"
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == 8
    assert fake_claude.last.stream
    assert fake_claude.completed_streams == 1


async def test_stream_helper_thinking_and_tools(
    fake_claude: FakeClaudeUpstream, client: anthropic.AsyncAnthropic
) -> None:
    fake_claude.reply_thinking = ("Let me think about the weather.", "sig-abc123")
    fake_claude.reply_text = "Checking."
    fake_claude.reply_tool_calls = [
        {"name": "get_weather", "input": {"city": "Paris", "unit": "c"}, "id": "toolu_fixed"},
        {"name": "get_time", "input": '{"tz":"CET"}'},
    ]
    async with client.messages.stream(model=MODEL, max_tokens=1024, messages=MESSAGES) as stream:
        thinking_text = ""
        async for event in stream:
            if event.type == "thinking":
                thinking_text += event.thinking
        final = await stream.get_final_message()
    assert thinking_text == "Let me think about the weather."
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use", "tool_use"]
    thinking, text, tool1, tool2 = final.content
    assert thinking.type == "thinking"
    assert thinking.thinking == "Let me think about the weather."
    assert thinking.signature == "sig-abc123"
    assert text.type == "text"
    assert text.text == "Checking."
    assert tool1.type == "tool_use"
    assert (tool1.id, tool1.name, tool1.input) == ("toolu_fixed", "get_weather", {"city": "Paris", "unit": "c"})
    assert tool2.type == "tool_use"
    assert tool2.id.startswith("toolu_")
    assert (tool2.name, tool2.input) == ("get_time", {"tz": "CET"})
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 8


async def test_non_stream_thinking_and_tools(fake_claude: FakeClaudeUpstream, client: anthropic.AsyncAnthropic) -> None:
    fake_claude.reply_thinking = "pondering"
    fake_claude.reply_text = ""
    fake_claude.reply_tool_calls = [{"name": "ls", "input": {"path": "/"}}]
    msg = await client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert [b.type for b in msg.content] == ["thinking", "tool_use"]
    assert msg.content[0].signature  # type: ignore[union-attr]  # a generated signature
    assert msg.stop_reason == "tool_use"


async def test_raw_wire_format(fake_claude: FakeClaudeUpstream) -> None:
    fake_claude.reply_text = "abcdef"
    fake_claude.chunk_count = 2
    fake_claude.reply_tool_calls = [{"name": "f", "input": {"a": 1}, "id": "toolu_1"}]
    fake_claude.tool_args_pieces = 2
    async with aiohttp.ClientSession() as s:
        url = f"{fake_claude.base_url}/v1/messages?beta=true"
        headers = {**HEADERS, "anthropic-beta": "oauth-2025-04-20,interleaved-thinking-2025-05-14"}
        async with s.post(url, json=_body(stream=True), headers=headers) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/event-stream")
            assert r.headers["Cache-Control"] == "no-cache"
            assert r.headers["request-id"].startswith("req_")
            raw = await r.read()
    frames = [f for f in raw.split(b"\n\n") if f]
    assert raw.endswith(b"\n\n")
    for frame in frames:
        lines = frame.split(b"\n")
        assert len(lines) == 2
        assert lines[0].startswith(b"event: ")
        assert lines[1].startswith(b"data: {")
    events = parse_sse(raw)
    assert all(e.event == e.json()["type"] for e in events)
    assert [e.event for e in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    data = [e.json() for e in events]
    assert data[0]["message"]["content"] == []
    assert data[0]["message"]["stop_reason"] is None
    assert set(data[0]["message"]["usage"]) >= {
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    }
    assert data[2] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert [d["delta"]["text"] for d in data[3:5]] == ["abc", "def"]
    assert data[6]["index"] == 1
    assert data[6]["content_block"] == {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
    partial = "".join(d["delta"]["partial_json"] for d in data[7:10])
    assert json.loads(partial) == {"a": 1}
    assert data[11] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 8},
    }
    rec = fake_claude.last
    assert rec.query["beta"] == "true"
    assert rec.anthropic_beta == ["oauth-2025-04-20", "interleaved-thinking-2025-05-14"]


async def test_stream_is_incremental(fake_claude: FakeClaudeUpstream) -> None:
    fake_claude.chunk_count = 3
    fake_claude.chunk_delay = 0.15
    async with aiohttp.ClientSession() as s:
        start = time.monotonic()
        async with s.post(f"{fake_claude.base_url}/v1/messages", json=_body(stream=True), headers=HEADERS) as r:
            arrivals = [time.monotonic() - start async for _ in iter_sse(r)]
    assert arrivals[0] < 0.12
    assert arrivals[1] - arrivals[0] >= 0.1
    assert arrivals[-1] >= 0.15 * (len(arrivals) - 1) - 0.05


async def test_auth_x_api_key_or_bearer(fake_claude: FakeClaudeUpstream, client: anthropic.AsyncAnthropic) -> None:
    fake_claude.expected_keys = {"sk-good"}
    with pytest.raises(anthropic.AuthenticationError) as ei:
        await client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert ei.value.status_code == 401
    assert isinstance(ei.value.body, dict)
    assert ei.value.body["type"] == "error"
    assert ei.value.body["error"]["type"] == "authentication_error"
    assert ei.value.request_id is not None

    by_bearer = anthropic.AsyncAnthropic(base_url=fake_claude.base_url, auth_token="sk-good", max_retries=0)
    try:
        msg = await by_bearer.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
        assert msg.content[0].text == fake_claude.reply_text  # type: ignore[union-attr]
        assert fake_claude.last.auth_scheme == "bearer"
        assert fake_claude.last.headers["authorization"] == "Bearer sk-good"
    finally:
        await by_bearer.close()

    async with aiohttp.ClientSession() as s:
        url = f"{fake_claude.base_url}/v1/messages"
        good_key = {"anthropic-version": "2023-06-01", "x-api-key": "sk-good"}
        async with s.post(url, json=_body(), headers=good_key) as r:
            assert r.status == 200
        assert fake_claude.last.auth_scheme == "x-api-key"
        assert fake_claude.last.x_api_key == "sk-good"
        async with s.post(url, json=_body(), headers={**good_key, "x-api-key": "sk-bad"}) as r:
            assert r.status == 401
            assert (await r.json())["error"] == {"type": "authentication_error", "message": "invalid x-api-key"}
        no_key = {"anthropic-version": "2023-06-01"}
        async with s.post(f"{fake_claude.base_url}/v1/messages", json=_body(), headers=no_key) as r:
            assert r.status == 401
            assert (await r.json())["error"]["message"] == "x-api-key header is required"


async def test_anthropic_version_required(fake_claude: FakeClaudeUpstream) -> None:
    async with aiohttp.ClientSession() as s:
        url = f"{fake_claude.base_url}/v1/messages"
        async with s.post(url, json=_body(), headers={"x-api-key": "k"}) as r:
            assert r.status == 400
            body = await r.json()
        assert body["type"] == "error"
        assert body["error"] == {"type": "invalid_request_error", "message": "anthropic-version: header is required"}
        fake_claude.require_version = False
        async with s.post(url, json=_body(), headers={"x-api-key": "k"}) as r:
            assert r.status == 200


@pytest.mark.parametrize(
    ("status", "exc", "error_type"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
        (500, anthropic.InternalServerError, "api_error"),
    ],
)
async def test_scripted_errors_map_to_sdk_classes(
    fake_claude: FakeClaudeUpstream,
    client: anthropic.AsyncAnthropic,
    status: int,
    exc: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    fake_claude.enqueue_error(status, headers={"retry-after": "3"})
    with pytest.raises(exc) as ei:
        await client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert ei.value.status_code == status
    assert ei.value.type == error_type
    assert ei.value.response.headers["retry-after"] == "3"
    assert ei.value.response.headers["content-type"].startswith("application/json")
    msg = await client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert msg.content[0].text == fake_claude.reply_text  # type: ignore[union-attr]


async def test_error_custom_body_and_times(fake_claude: FakeClaudeUpstream) -> None:
    fake_claude.enqueue_error(529, anthropic_error("Overloaded", "overloaded_error"), times=2)
    fake_claude.enqueue_error(500, "plain text failure")
    assert fake_claude.pending_actions == 3
    c = anthropic.AsyncAnthropic(base_url=fake_claude.base_url, api_key="k", max_retries=0)
    try:
        for _ in range(2):
            with pytest.raises(anthropic.OverloadedError):
                await c.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
        with pytest.raises(anthropic.InternalServerError) as ei:
            await c.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
        assert ei.value.response.text == "plain text failure"
    finally:
        await c.close()
    assert fake_claude.pending_actions == 0


async def test_stream_failure_breaks_connection(
    fake_claude: FakeClaudeUpstream, client: anthropic.AsyncAnthropic
) -> None:
    fake_claude.enqueue_stream_failure(after_events=3)
    stream = await client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    received: list[str] = []

    async def consume() -> None:
        async for event in stream:
            received.append(event.type)

    # The anthropic SDK lets the transport error through unwrapped while iterating a stream.
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
        await consume()
    assert received == ["message_start", "content_block_start"]  # + a swallowed ping
    assert fake_claude.completed_streams == 0
    msg = await client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert msg.content[0].text == fake_claude.reply_text  # type: ignore[union-attr]


async def test_mid_stream_error_event(fake_claude: FakeClaudeUpstream, client: anthropic.AsyncAnthropic) -> None:
    fake_claude.enqueue_stream_error_event(2)
    stream = await client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    with pytest.raises(anthropic.APIStatusError) as ei:
        async for _ in stream:
            pass
    assert isinstance(ei.value.body, dict)
    assert ei.value.body["error"]["type"] == "overloaded_error"

    fake_claude.enqueue_stream_error_event(1, anthropic_error("boom", "api_error"))
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{fake_claude.base_url}/v1/messages", json=_body(stream=True), headers=HEADERS) as r:
            events = parse_sse(await r.read())
    assert [e.event for e in events] == ["message_start", "error"]
    assert events[-1].json()["error"] == {"type": "api_error", "message": "boom"}


async def test_gzip_responses(fake_claude: FakeClaudeUpstream, client: anthropic.AsyncAnthropic) -> None:
    fake_claude.gzip_responses = True
    msg = await client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert msg.content[0].text == fake_claude.reply_text  # type: ignore[union-attr]

    async with aiohttp.ClientSession(auto_decompress=False) as s:
        url = f"{fake_claude.base_url}/v1/messages"
        async with s.post(url, json=_body(), headers=HEADERS) as r:
            assert r.headers["Content-Encoding"] == "gzip"
            raw = await r.read()
        assert raw[:2] == b"\x1f\x8b"
        assert json.loads(gzip.decompress(raw))["type"] == "message"

        fake_claude.gzip_omit_header = True
        async with s.post(url, json=_body(), headers=HEADERS) as r:
            assert "Content-Encoding" not in r.headers
            raw = await r.read()
        assert json.loads(gzip.decompress(raw))["type"] == "message"

        # Streams are never compressed.
        async with s.post(url, json=_body(stream=True), headers=HEADERS) as r:
            assert "Content-Encoding" not in r.headers
            assert (await r.read()).startswith(b"event: message_start\n")


async def test_count_tokens(fake_claude: FakeClaudeUpstream, client: anthropic.AsyncAnthropic) -> None:
    messages = [
        {"role": "user", "content": "x" * 40},
        {"role": "assistant", "content": [{"type": "text", "text": "y" * 8}]},
    ]
    result = await client.messages.count_tokens(model=MODEL, messages=messages, system="z" * 4)  # type: ignore[arg-type]
    assert result.input_tokens == 13  # ceil((40 + 8 + 4) / 4)
    rec = fake_claude.last
    assert rec.path == "/v1/messages/count_tokens"
    assert result.input_tokens == estimate_input_tokens(rec.json)

    fake_claude.count_tokens_result = 999
    result = await client.messages.count_tokens(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    assert result.input_tokens == 999
    async with aiohttp.ClientSession() as s:
        url = f"{fake_claude.base_url}/v1/messages/count_tokens?beta=true"
        async with s.post(url, json={"model": MODEL, "messages": MESSAGES}, headers=HEADERS) as r:
            assert await r.json() == {"input_tokens": 999}


def test_estimate_input_tokens_counts_tools_and_blocks() -> None:
    body = {
        "system": [{"type": "text", "text": "abcd"}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "abcd"}, {"type": "image", "source": {}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "ab", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ab"}]},
        ],
        "tools": [{"name": "ab", "description": "cd", "input_schema": {}}],
    }
    # system 4 + text 4 + tool_use (2 + 2) + tool_result 2 + tool (2 + 2 + 2) = 20 chars → 5 tokens
    assert estimate_input_tokens(body) == 5
    assert estimate_input_tokens({"messages": []}) == 1


async def test_models_list(fake_claude: FakeClaudeUpstream, client: anthropic.AsyncAnthropic) -> None:
    fake_claude.models = ["claude-a", "claude-b"]
    page = await client.models.list()
    assert [m.id for m in page.data] == ["claude-a", "claude-b"]
    assert all(m.type == "model" for m in page.data)
    assert page.has_more is False
    assert (page.first_id, page.last_id) == ("claude-a", "claude-b")
    assert fake_claude.last.method == "GET"


async def test_enqueue_reply_and_overrides(fake_claude: FakeClaudeUpstream, client: anthropic.AsyncAnthropic) -> None:
    fake_claude.enqueue_reply("one-off", stop_reason="max_tokens")
    fake_claude.response_model = "claude-routed"
    msg = await client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert msg.content[0].text == "one-off"  # type: ignore[union-attr]
    assert msg.stop_reason == "max_tokens"
    assert msg.model == "claude-routed"
    msg = await client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert msg.content[0].text == fake_claude.reply_text  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn"


async def test_bad_requests(fake_claude: FakeClaudeUpstream) -> None:
    fake_claude.reject_unknown_models = True
    async with aiohttp.ClientSession() as s:
        url = f"{fake_claude.base_url}/v1/messages"
        async with s.post(url, data=b"{nope", headers=HEADERS) as r:
            assert r.status == 400
            assert (await r.json())["error"]["type"] == "invalid_request_error"
        async with s.post(url, json={"model": "claude-nope", "messages": MESSAGES}, headers=HEADERS) as r:
            assert r.status == 404
            assert (await r.json())["error"]["type"] == "not_found_error"
        async with s.post(f"{fake_claude.base_url}/v1/nothing", json={}, headers=HEADERS) as r:
            assert r.status == 404
            assert (await r.json())["type"] == "error"
    assert fake_claude.last.path == "/v1/nothing"


async def test_client_disconnect_detected(fake_claude: FakeClaudeUpstream) -> None:
    fake_claude.chunk_delay = 30
    async with aiohttp.ClientSession() as s:
        resp = await s.post(f"{fake_claude.base_url}/v1/messages", json=_body(stream=True), headers=HEADERS)
        line = await resp.content.readline()
        assert line == b"event: message_start\n"
        resp.close()
    start = time.monotonic()
    await asyncio.wait_for(fake_claude.client_disconnected.wait(), timeout=2)
    assert time.monotonic() - start < 1
    assert fake_claude.disconnects == 1
    assert fake_claude.completed_streams == 0


async def test_hang_before_headers(fake_claude: FakeClaudeUpstream, client: anthropic.AsyncAnthropic) -> None:
    fake_claude.hang_before_headers = True
    task = asyncio.create_task(client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES))
    await fake_claude.wait_for_requests(1)
    await asyncio.sleep(0.05)
    assert not task.done()
    fake_claude.release_hang()
    msg = await asyncio.wait_for(task, timeout=2)
    assert msg.content[0].text == fake_claude.reply_text  # type: ignore[union-attr]

    fake_claude.reset()
    fake_claude.hang_before_headers = True
    quick = anthropic.AsyncAnthropic(base_url=fake_claude.base_url, api_key="k", max_retries=0, timeout=0.3)
    with pytest.raises(anthropic.APITimeoutError):
        await quick.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    await quick.close()
    await asyncio.wait_for(fake_claude.client_disconnected.wait(), timeout=2)
    assert len(fake_claude.requests) == 1
