"""Tests for the fake Codex (Responses API) upstream, driven by the official openai SDK and raw aiohttp."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import httpx2
import openai
import pytest
from fakes import FakeCodexUpstream, openai_error, usage_limit_error
from fakes.sse import iter_sse, parse_sse

MODEL = "gpt-5-codex"


@pytest.fixture
async def client(fake_codex: FakeCodexUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    """SDK client pointed at the fake, without retries."""
    c = openai.AsyncOpenAI(base_url=fake_codex.base_url, api_key="sk-codex-test", max_retries=0)
    yield c
    await c.close()


def _body(**extra: object) -> dict[str, object]:
    return {"model": MODEL, "instructions": "", "input": [{"role": "user", "content": "hi"}], "stream": True, **extra}


async def _raw_events(up: FakeCodexUpstream, body: dict[str, object]) -> list[dict[str, object]]:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{up.base_url}/responses", json=body) as r:
            assert r.status == 200
            return [e.json() for e in parse_sse(await r.read())]


async def test_base_url(fake_codex: FakeCodexUpstream) -> None:
    assert fake_codex.base_url == f"http://127.0.0.1:{fake_codex.port}"


async def test_stream_typed_events(fake_codex: FakeCodexUpstream, client: openai.AsyncOpenAI) -> None:
    fake_codex.reply_text = "The quick brown fox"
    fake_codex.chunk_count = 4
    fake_codex.input_tokens, fake_codex.cached_tokens, fake_codex.output_tokens = 100, 64, 9
    stream = await client.responses.create(model=MODEL, input="hi", stream=True)
    events = [e async for e in stream]
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 4,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    created = events[0]
    assert created.type == "response.created"
    assert created.response.id.startswith("resp_")
    assert created.response.status == "in_progress"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "The quick brown fox"
    done = events[-1]
    assert done.type == "response.completed"
    final = done.response
    assert final.id == created.response.id
    assert final.object == "response"
    assert final.status == "completed"
    assert final.model == MODEL
    assert final.output_text == "The quick brown fox"
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (100, 9, 109)
    assert final.usage.input_tokens_details.cached_tokens == 64
    assert final.usage.output_tokens_details.reasoning_tokens == 0
    rec = fake_codex.last
    assert (rec.method, rec.path) == ("POST", "/responses")
    assert rec.bearer == "sk-codex-test"
    assert rec.stream
    assert fake_codex.completed_streams == 1
    assert fake_codex.non_stream_requests == 0


async def test_stream_reasoning_and_function_calls(fake_codex: FakeCodexUpstream, client: openai.AsyncOpenAI) -> None:
    fake_codex.reply_reasoning = "Thinking about files"
    fake_codex.reasoning_encrypted_content = "gAAAAB-opaque"
    fake_codex.reasoning_tokens = 5
    fake_codex.reply_text = "Listing."
    fake_codex.reply_tool_calls = [
        {"name": "shell", "arguments": {"command": ["ls", "-la"]}, "id": "call_fixed"},
        {"name": "read", "arguments": '{"path":"a.txt"}'},
    ]
    async with client.responses.stream(model=MODEL, input="list files") as stream:
        types = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert "response.reasoning_summary_text.delta" in types
    assert types.count("response.function_call_arguments.delta") == 6
    assert types.count("response.function_call_arguments.done") == 2
    assert types.count("response.output_item.added") == types.count("response.output_item.done") == 4

    assert [item.type for item in final.output] == ["reasoning", "message", "function_call", "function_call"]
    reasoning, message, call1, call2 = final.output
    assert reasoning.type == "reasoning"
    assert reasoning.id.startswith("rs_")
    assert [s.text for s in reasoning.summary] == ["Thinking about files"]
    assert reasoning.encrypted_content == "gAAAAB-opaque"
    assert message.type == "message"
    assert final.output_text == "Listing."
    assert call1.type == "function_call"
    assert (call1.call_id, call1.name) == ("call_fixed", "shell")
    assert json.loads(call1.arguments) == {"command": ["ls", "-la"]}
    assert call2.type == "function_call"
    assert call2.call_id.startswith("call_")
    assert (call2.name, call2.arguments) == ("read", '{"path":"a.txt"}')
    assert final.usage is not None
    assert final.usage.output_tokens_details.reasoning_tokens == 5


async def test_raw_wire_format_and_headers(fake_codex: FakeCodexUpstream) -> None:
    fake_codex.reply_text = "abcdef"
    fake_codex.chunk_count = 2
    fake_codex.reply_tool_calls = [{"name": "f", "arguments": {"a": 1}, "id": "call_1"}]
    fake_codex.tool_args_pieces = 2
    headers = {
        "Authorization": "Bearer tok",
        "Chatgpt-Account-Id": "acct-123",
        "Originator": "codex_cli_rs",
        "Version": "0.101.0",
        "Session_id": "sess-9",
        "Accept": "text/event-stream",
    }
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{fake_codex.base_url}/responses", json=_body(), headers=headers) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/event-stream")
            raw = await r.read()
    frames = [f for f in raw.split(b"\n\n") if f]
    assert raw.endswith(b"\n\n")
    for frame in frames:
        event_line, data_line = frame.split(b"\n")
        assert event_line.startswith(b"event: response.")
        assert data_line.startswith(b"data: {")
    events = parse_sse(raw)
    payloads = [e.json() for e in events]
    assert all(e.event == p["type"] for e, p in zip(events, payloads, strict=True))
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    assert "[DONE]" not in raw.decode()

    message_added = payloads[2]
    assert message_added["item"]["type"] == "message"
    assert message_added["item"]["status"] == "in_progress"
    text_deltas = [p["delta"] for p in payloads if p["type"] == "response.output_text.delta"]
    assert text_deltas == ["abc", "def"]
    fc_added = next(p for p in payloads if p["type"] == "response.output_item.added" and p["output_index"] == 1)
    assert fc_added["item"]["type"] == "function_call"
    assert (fc_added["item"]["call_id"], fc_added["item"]["name"], fc_added["item"]["arguments"]) == ("call_1", "f", "")
    arg_deltas = [p for p in payloads if p["type"] == "response.function_call_arguments.delta"]
    assert all(p["item_id"] == fc_added["item"]["id"] for p in arg_deltas)
    assert json.loads("".join(p["delta"] for p in arg_deltas)) == {"a": 1}
    completed = payloads[-1]
    assert completed["type"] == "response.completed"
    usage = completed["response"]["usage"]
    assert set(usage) == {"input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details",
                          "total_tokens"}
    assert [o["type"] for o in completed["response"]["output"]] == ["message", "function_call"]

    rec = fake_codex.last
    assert rec.account_id == "acct-123"
    assert rec.originator == "codex_cli_rs"
    assert rec.version == "0.101.0"
    assert rec.session_id == "sess-9"
    assert rec.bearer == "tok"


async def test_non_stream_and_require_stream(fake_codex: FakeCodexUpstream, client: openai.AsyncOpenAI) -> None:
    fake_codex.reply_tool_calls = [{"name": "f", "arguments": "{}"}]
    resp = await client.responses.create(model=MODEL, input="hi")
    assert resp.object == "response"
    assert resp.status == "completed"
    assert resp.output_text == fake_codex.reply_text
    assert [o.type for o in resp.output] == ["message", "function_call"]
    assert resp.usage is not None
    assert resp.usage.total_tokens == 20
    assert fake_codex.non_stream_requests == 1
    assert not fake_codex.last.stream

    fake_codex.require_stream = True
    with pytest.raises(openai.BadRequestError) as ei:
        await client.responses.create(model=MODEL, input="hi", stream=False)
    assert ei.value.status_code == 400
    assert ei.value.response.json() == {"detail": "Stream must be set to true"}
    assert fake_codex.non_stream_requests == 2
    assert fake_codex.last.json["stream"] is False


async def test_omit_completed(fake_codex: FakeCodexUpstream) -> None:
    fake_codex.omit_completed = True
    payloads = await _raw_events(fake_codex, _body())
    types = [p["type"] for p in payloads]
    assert "response.completed" not in types
    assert types[-1] == "response.output_item.done"


async def test_compact(fake_codex: FakeCodexUpstream, client: openai.AsyncOpenAI) -> None:
    compacted = await client.responses.compact(
        model=MODEL,
        input=[
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": [{"type": "input_text", "text": "second"}]},
        ],
    )
    assert compacted.object == "response.compaction"
    assert compacted.id.startswith("resp_")
    assert [o.type for o in compacted.output] == ["message", "message", "compaction"]
    assert compacted.output[-1].encrypted_content  # type: ignore[union-attr]
    assert compacted.usage.total_tokens == 20
    rec = fake_codex.last
    assert rec.path == "/responses/compact"
    assert rec.headers["accept"] == "application/json"

    async with aiohttp.ClientSession() as s:
        async with s.post(f"{fake_codex.base_url}/responses/compact", json=_body()) as r:
            assert r.status == 400  # a streaming compact call is refused
            assert (await r.json())["error"]["param"] == "stream"


async def test_usage_limit_429(fake_codex: FakeCodexUpstream, client: openai.AsyncOpenAI) -> None:
    fake_codex.enqueue_usage_limit(resets_in_seconds=120)
    before = int(time.time())
    with pytest.raises(openai.RateLimitError) as ei:
        await client.responses.create(model=MODEL, input="hi", stream=True)
    body = ei.value.response.json()["error"]
    assert body["type"] == "usage_limit_reached"
    assert body["resets_in_seconds"] == 120
    assert before + 120 <= body["resets_at"] <= int(time.time()) + 120

    assert usage_limit_error(5, resets_at=1_700_000_000)["error"]["resets_at"] == 1_700_000_000


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
async def test_scripted_errors(
    fake_codex: FakeCodexUpstream, client: openai.AsyncOpenAI, status: int, exc: type[openai.APIStatusError]
) -> None:
    fake_codex.enqueue_error(status, headers={"x-codex-primary-used-percent": "100"})
    with pytest.raises(exc) as ei:
        await client.responses.create(model=MODEL, input="hi", stream=True)
    assert ei.value.status_code == status
    error = ei.value.response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert ei.value.response.headers["x-codex-primary-used-percent"] == "100"
    resp = await client.responses.create(model=MODEL, input="hi")
    assert resp.output_text == fake_codex.reply_text


async def test_custom_error_body_and_times(fake_codex: FakeCodexUpstream, client: openai.AsyncOpenAI) -> None:
    fake_codex.enqueue_error(502, "bad gateway", times=2)
    fake_codex.enqueue_error(400, openai_error("Unsupported parameter: 'temperature'.", code="unsupported_parameter"))
    assert fake_codex.pending_actions == 3
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as e5:
            await client.responses.create(model=MODEL, input="hi", stream=True)
        assert e5.value.response.text == "bad gateway"
    with pytest.raises(openai.BadRequestError) as e4:
        await client.responses.create(model=MODEL, input="hi", stream=True)
    assert e4.value.code == "unsupported_parameter"
    assert fake_codex.pending_actions == 0


async def test_expected_keys(fake_codex: FakeCodexUpstream, client: openai.AsyncOpenAI) -> None:
    fake_codex.expected_keys = {"tok-good"}
    with pytest.raises(openai.AuthenticationError) as ei:
        await client.responses.create(model=MODEL, input="hi", stream=True)
    assert ei.value.code == "invalid_api_key"
    good = openai.AsyncOpenAI(base_url=fake_codex.base_url, api_key="tok-good", max_retries=0)
    try:
        resp = await good.responses.create(model=MODEL, input="hi")
    finally:
        await good.close()
    assert resp.output_text == fake_codex.reply_text
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{fake_codex.base_url}/responses", json=_body()) as r:
            assert r.status == 401
            assert "Missing bearer" in (await r.json())["error"]["message"]


async def test_stream_failure(fake_codex: FakeCodexUpstream, client: openai.AsyncOpenAI) -> None:
    fake_codex.enqueue_stream_failure(after_events=3)
    stream = await client.responses.create(model=MODEL, input="hi", stream=True)
    received: list[str] = []

    async def consume() -> None:
        async for event in stream:
            received.append(event.type)

    with pytest.raises((openai.APIConnectionError, httpx2.TransportError)):
        await consume()
    assert received == ["response.created", "response.in_progress", "response.output_item.added"]
    assert fake_codex.completed_streams == 0
    resp = await client.responses.create(model=MODEL, input="hi")
    assert resp.output_text == fake_codex.reply_text


async def test_stream_error_events(fake_codex: FakeCodexUpstream, client: openai.AsyncOpenAI) -> None:
    fake_codex.enqueue_stream_error_event(2)
    stream = await client.responses.create(model=MODEL, input="hi", stream=True)
    events = [e async for e in stream]
    assert [e.type for e in events] == ["response.created", "response.in_progress", "response.failed"]
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.response.status == "failed"
    assert failed.response.error is not None
    assert failed.response.error.code == "server_error"

    fake_codex.enqueue_stream_error_event(1, {"type": "error", "code": "context_length_exceeded", "message": "too long",
                                              "param": None})
    payloads = await _raw_events(fake_codex, _body())
    assert [p["type"] for p in payloads] == ["response.created", "error"]
    assert payloads[-1]["sequence_number"] == 1
    assert payloads[-1]["code"] == "context_length_exceeded"


async def test_enqueue_reply_and_model_override(fake_codex: FakeCodexUpstream, client: openai.AsyncOpenAI) -> None:
    fake_codex.enqueue_reply("one-off", reasoning="")
    fake_codex.response_model = "gpt-5-routed"
    resp = await client.responses.create(model=MODEL, input="hi")
    assert resp.output_text == "one-off"
    assert resp.model == "gpt-5-routed"
    assert [o.type for o in resp.output] == ["reasoning", "message"]  # empty summary, still an item
    resp = await client.responses.create(model=MODEL, input="hi")
    assert resp.output_text == fake_codex.reply_text
    assert [o.type for o in resp.output] == ["message"]


async def test_bad_requests(fake_codex: FakeCodexUpstream) -> None:
    fake_codex.reject_unknown_models = True
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{fake_codex.base_url}/responses", data=b"{nope") as r:
            assert r.status == 400
            assert (await r.json())["error"]["type"] == "invalid_request_error"
        async with s.post(f"{fake_codex.base_url}/responses", json=_body(model="gpt-unknown")) as r:
            assert r.status == 400
            assert "not supported" in (await r.json())["detail"]
        async with s.post(f"{fake_codex.base_url}/v1/responses", json=_body()) as r:
            assert r.status == 404
    assert fake_codex.last.path == "/v1/responses"


async def test_stream_is_incremental(fake_codex: FakeCodexUpstream) -> None:
    fake_codex.chunk_delay = 0.1
    async with aiohttp.ClientSession() as s:
        start = time.monotonic()
        async with s.post(f"{fake_codex.base_url}/responses", json=_body()) as r:
            arrivals = [time.monotonic() - start async for _ in iter_sse(r)]
    assert arrivals[0] < 0.08
    assert arrivals[1] - arrivals[0] >= 0.07
    assert arrivals[-1] >= 0.1 * (len(arrivals) - 1) - 0.05


async def test_client_disconnect_detected(fake_codex: FakeCodexUpstream) -> None:
    fake_codex.chunk_delay = 30
    async with aiohttp.ClientSession() as s:
        resp = await s.post(f"{fake_codex.base_url}/responses", json=_body())
        line = await resp.content.readline()
        assert line == b"event: response.created\n"
        resp.close()
    start = time.monotonic()
    await asyncio.wait_for(fake_codex.client_disconnected.wait(), timeout=2)
    assert time.monotonic() - start < 1
    assert fake_codex.disconnects == 1
    assert fake_codex.completed_streams == 0


async def test_hang_before_headers(fake_codex: FakeCodexUpstream, client: openai.AsyncOpenAI) -> None:
    fake_codex.hang_before_headers = True
    task = asyncio.create_task(client.responses.create(model=MODEL, input="hi"))
    await fake_codex.wait_for_requests(1)
    await asyncio.sleep(0.05)
    assert not task.done()
    fake_codex.release_hang()
    resp = await asyncio.wait_for(task, timeout=2)
    assert resp.output_text == fake_codex.reply_text

    fake_codex.reset()
    fake_codex.hang_before_headers = True
    quick = openai.AsyncOpenAI(base_url=fake_codex.base_url, api_key="k", max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        await quick.responses.create(model=MODEL, input="hi", stream=True)
    await quick.close()
    await asyncio.wait_for(fake_codex.client_disconnected.wait(), timeout=2)
    assert len(fake_codex.requests) == 1
