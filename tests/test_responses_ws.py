"""The Responses API over WebSocket (`GET /v1/responses`, api-surface §7.8) against the upstream fakes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import openai
import pytest
from fakes import MATRIX_CLIENT_KEY, compat_config, matrix_config

from proxyd.keys import PIPELINE
from proxyd.ws.conversation import PREVIOUS_NOT_FOUND, Conversation, TurnError

TERMINAL = {"response.completed", "response.incomplete", "response.failed", "error"}
AUTH = {"Authorization": f"Bearer {MATRIX_CLIENT_KEY}"}


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def create(model: str = "codex-model", text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"type": "response.create", "model": model, "input": [user(text)], **extra}


async def turn(ws: aiohttp.ClientWebSocketResponse, within: float = 5.0) -> list[dict[str, Any]]:
    """Frames up to and including the turn's terminal frame."""
    frames: list[dict[str, Any]] = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), within)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        frame = json.loads(msg.data)
        frames.append(frame)
        if frame["type"] in TERMINAL:
            return frames


def text_of(frames: list[dict[str, Any]]) -> str:
    return "".join(f["delta"] for f in frames if f["type"] == "response.output_text.delta")


@pytest.fixture
async def matrix(proxyd_factory, fake_openai, fake_claude, fake_gemini, fake_codex):  # type: ignore[no-untyped-def]
    return await proxyd_factory(matrix_config(fake_openai, fake_claude, fake_gemini, fake_codex))


@pytest.fixture
async def session() -> Any:
    async with aiohttp.ClientSession() as s:
        yield s


def ws_url(server: Any) -> str:
    return server.url + "/v1/responses"


# --------------------------------------------------------------------------- one turn, every upstream


async def test_codex_turn_is_relayed_event_by_event(matrix, session, fake_codex) -> None:  # type: ignore[no-untyped-def]
    async with session.ws_connect(ws_url(matrix), headers=AUTH) as ws:
        await ws.send_json(create(instructions="be brief"))
        frames = await turn(ws)
    types = [f["type"] for f in frames]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert "response.output_text.delta" in types
    assert [f["sequence_number"] for f in frames] == list(range(len(frames)))  # the upstream's own numbering
    assert text_of(frames) == "Hello from fake"
    assert frames[-1]["response"]["model"] == "codex-model"  # renamed back to the client's id
    body = fake_codex.last.json
    assert body["model"] == "gpt-5-codex" and body["stream"] is True and body["instructions"] == "be brief"
    assert body["input"] == [user("hi")]
    assert "type" not in body


@pytest.mark.parametrize("model", ["claude-model", "gemini-model", "compat-model"])
async def test_translated_upstreams_speak_responses_events(matrix, session, model) -> None:  # type: ignore[no-untyped-def]
    async with session.ws_connect(ws_url(matrix), headers=AUTH) as ws:
        await ws.send_json(create(model))
        frames = await turn(ws)
        # the socket stays usable for a second turn
        await ws.send_json({"type": "response.append", "input": [user("again")]})
        second = await turn(ws)
    assert frames[0]["type"] == "response.created"
    assert frames[-1]["type"] == "response.completed"
    assert text_of(frames) == "Hello from fake"
    output = frames[-1]["response"]["output"]
    assert output and output[0]["type"] == "message"
    assert second[-1]["type"] == "response.completed"


async def test_openai_sdk_websocket_client(matrix, fake_codex) -> None:  # type: ignore[no-untyped-def]
    client = openai.AsyncOpenAI(base_url=matrix.v1, api_key=MATRIX_CLIENT_KEY, max_retries=0)
    async with client.responses.connect() as connection:
        await connection.response.create(model="codex-model", input=[user("hi")])  # type: ignore[list-item]
        deltas: list[str] = []
        async for event in connection:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            if event.type == "response.completed":
                completed = event.response
                break
    assert "".join(deltas) == "Hello from fake"
    assert completed.output_text == "Hello from fake"
    assert fake_codex.last.json["model"] == "gpt-5-codex"


# --------------------------------------------------------------------------- several turns per socket


async def test_append_merges_previous_input_and_output(matrix, session, fake_codex) -> None:  # type: ignore[no-untyped-def]
    async with session.ws_connect(ws_url(matrix), headers=AUTH) as ws:
        await ws.send_json(create(text="first", instructions="sys"))
        first = await turn(ws)
        await ws.send_json({"type": "response.append", "input": [user("second")]})
        second = await turn(ws)
    assert second[-1]["type"] == "response.completed"
    assistant = first[-1]["response"]["output"]
    body = fake_codex.requests[1].json
    assert body["input"] == [user("first"), *assistant, user("second")]
    assert body["model"] == "gpt-5-codex" and body["instructions"] == "sys"  # inherited


async def test_previous_response_id_continues_the_transcript(matrix, session, fake_codex) -> None:  # type: ignore[no-untyped-def]
    async with session.ws_connect(ws_url(matrix), headers=AUTH) as ws:
        await ws.send_json(create(text="first"))
        first = await turn(ws)
        rid = first[-1]["response"]["id"]
        await ws.send_json({"type": "response.create", "previous_response_id": rid, "input": [user("next")]})
        await turn(ws)
        await ws.send_json({"type": "response.create", "previous_response_id": "resp_other", "input": []})
        refused = await turn(ws)
        # a create without previous_response_id is a full request of its own
        await ws.send_json({"type": "response.create", "input": [user("fresh")]})
        await turn(ws)
    second = fake_codex.requests[1].json
    assert second["input"] == [user("first"), *first[-1]["response"]["output"], user("next")]
    assert "previous_response_id" not in second
    assert refused == [{"type": "error", "status": 409, "error": {
        "message": PREVIOUS_NOT_FOUND, "type": "invalid_request_error", "code": "previous_response_not_found",
        "param": "previous_response_id"}}]
    assert len(fake_codex.requests) == 3
    assert fake_codex.requests[2].json["input"] == [user("fresh")]
    assert fake_codex.requests[2].json["model"] == "gpt-5-codex"


@pytest.mark.parametrize("model", ["codex-model", "claude-model"])
async def test_tool_call_round_trip(matrix, session, fake_codex, fake_claude, model) -> None:  # type: ignore[no-untyped-def]
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    call = {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_w1"}
    if model == "codex-model":
        fake_codex.enqueue_reply(tool_calls=[call])
    else:
        fake_claude.enqueue_reply(tool_calls=[{**call, "id": "toolu_w1"}])
    async with session.ws_connect(ws_url(matrix), headers=AUTH) as ws:
        await ws.send_json(create(model, "weather?", tools=[tool]))
        first = await turn(ws)
        calls = [i for i in first[-1]["response"]["output"] if i["type"] == "function_call"]
        assert len(calls) == 1 and calls[0]["name"] == "get_weather"
        assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
        assert any(f["type"] == "response.function_call_arguments.delta" for f in first)
        result = {"type": "function_call_output", "call_id": calls[0]["call_id"], "output": "sunny"}
        await ws.send_json({"type": "response.create", "previous_response_id": first[-1]["response"]["id"],
                            "input": [result], "tools": [tool]})
        second = await turn(ws)
    assert text_of(second) == "Hello from fake"
    if model == "codex-model":
        body = fake_codex.requests[1].json
        assert body["input"] == [user("weather?"), *first[-1]["response"]["output"], result]
    else:
        messages = fake_claude.requests[1].json["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant", "user"]
        tool_use = next(b for b in messages[1]["content"] if b["type"] == "tool_use")
        tool_result = next(b for b in messages[2]["content"] if b["type"] == "tool_result")
        assert tool_use["id"] == tool_result["tool_use_id"] and tool_use["input"] == {"city": "Paris"}


async def test_generate_false_prewarms_locally(matrix, session, fake_codex) -> None:  # type: ignore[no-untyped-def]
    async with session.ws_connect(ws_url(matrix), headers=AUTH) as ws:
        await ws.send_json(create(text="warm", generate=False, instructions="sys"))
        warm = await turn(ws)
        assert fake_codex.requests == []
        rid = warm[-1]["response"]["id"]
        await ws.send_json({"type": "response.create", "previous_response_id": rid, "input": [user("real")]})
        real = await turn(ws)
    assert [f["type"] for f in warm] == ["response.created", "response.completed"]
    assert rid.startswith("resp_") and warm[0]["response"]["id"] == rid
    assert warm[-1]["response"]["output"] == [] and warm[-1]["response"]["usage"]["total_tokens"] == 0
    assert warm[0]["response"]["model"] == "codex-model"
    assert real[-1]["type"] == "response.completed"
    body = fake_codex.last.json
    assert body["input"] == [user("warm"), user("real")] and body["instructions"] == "sys"
    assert "generate" not in body


# --------------------------------------------------------------------------- errors keep the socket open


async def test_invalid_frames_get_error_frames_and_the_socket_survives(matrix, session, fake_codex) -> None:  # type: ignore[no-untyped-def]
    bad: list[Any] = [
        {"type": "response.bogus"},
        {"type": "response.append", "input": [user("before create")]},
        {"type": "response.create", "input": []},
        {"type": "response.create", "model": "codex-model", "input": "not-an-array"},
        {"type": "response.create", "model": "codex-model", "previous_response_id": "resp_unknown", "input": []},
    ]
    async with session.ws_connect(ws_url(matrix), headers=AUTH) as ws:
        errors = []
        for message in bad:
            await ws.send_json(message)
            errors.extend(await turn(ws))
        await ws.send_str("{not json")
        errors.extend(await turn(ws))
        await ws.send_bytes(json.dumps({"no": "type"}).encode())
        errors.extend(await turn(ws))
        await ws.send_json(create(text="finally fine"))
        fine = await turn(ws)
    def err(message: str, status: int = 400) -> dict[str, Any]:
        return {"type": "error", "status": status, "error": {"message": message, "type": "invalid_request_error"}}
    assert errors[:4] == [
        err("unsupported websocket request type: response.bogus"),
        err("websocket request received before response.create"),
        err("missing model in response.create request"),
        err("websocket request requires array field: input"),
    ]
    assert errors[4]["status"] == 409 and errors[4]["error"]["code"] == "previous_response_not_found"
    assert errors[5]["status"] == 400 and "not valid JSON" in errors[5]["error"]["message"]
    assert errors[6] == err("unsupported websocket request type: ")
    assert fine[-1]["type"] == "response.completed"
    assert len(fake_codex.requests) == 1 and fake_codex.last.json["input"] == [user("finally fine")]


async def dropped(ws: aiohttp.ClientWebSocketResponse, within: float = 5.0) -> bool:
    """The server ended the connection without a closing handshake (what the reference does after a failed
    upstream turn)."""
    msg = await asyncio.wait_for(ws.receive(), within)
    return msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


async def test_upstream_error_before_the_first_event(matrix, session, fake_codex) -> None:  # type: ignore[no-untyped-def]
    fake_codex.enqueue_error(400, {"error": {"message": "bad input", "type": "invalid_request_error",
                                             "code": None}})
    async with session.ws_connect(ws_url(matrix), headers=AUTH) as ws:
        await ws.send_json(create())
        failed = await turn(ws)
        assert await dropped(ws)
    assert failed == [{"type": "error", "status": 400,
                       "error": {"message": "bad input", "type": "invalid_request_error", "code": None}}]
    async with session.ws_connect(ws_url(matrix), headers=AUTH) as ws:  # the client reconnects
        await ws.send_json(create())
        assert (await turn(ws))[-1]["type"] == "response.completed"


async def test_cooldown_error_frame_carries_headers(matrix, session, fake_codex) -> None:  # type: ignore[no-untyped-def]
    fake_codex.enqueue_usage_limit(resets_in_seconds=120)
    async with session.ws_connect(ws_url(matrix), headers=AUTH) as ws:
        await ws.send_json(create())
        first = await turn(ws)
        assert await dropped(ws)  # an upstream failure ends the connection
    async with session.ws_connect(ws_url(matrix), headers=AUTH) as ws:
        await ws.send_json(create())
        cooling = await turn(ws)
        await ws.send_json(create())
        again = await turn(ws)  # a cooldown answered by proxyd itself keeps the socket
    assert first[0]["status"] == 429
    assert cooling[0]["status"] == 429 and cooling[0]["error"]["code"] == "model_cooldown"
    assert cooling[0]["headers"]["Retry-After"].isdigit()
    assert again[0]["error"]["code"] == "model_cooldown"


async def test_unknown_model_error_frame(matrix, session) -> None:  # type: ignore[no-untyped-def]
    async with session.ws_connect(ws_url(matrix), headers=AUTH) as ws:
        await ws.send_json(create("no-such-model"))
        frames = await turn(ws)
        await ws.send_json(create())
        after = await turn(ws)  # no upstream was involved: the socket stays open
    assert frames[0]["status"] == 404 and frames[0]["error"]["code"] == "model_not_found"
    assert "no-such-model" in frames[0]["error"]["message"]
    assert after[-1]["type"] == "response.completed"


async def test_stream_without_completed_ends_with_408(matrix, session, fake_codex) -> None:  # type: ignore[no-untyped-def]
    fake_codex.omit_completed = True
    async with session.ws_connect(ws_url(matrix), headers=AUTH) as ws:
        await ws.send_json(create())
        frames = await turn(ws)
        assert await dropped(ws)
    assert frames[-1] == {"type": "error", "status": 408, "error": {
        "message": "stream closed before response.completed", "type": "invalid_request_error"}}
    assert text_of(frames) == "Hello from fake"


async def test_upstream_cut_mid_stream(matrix, session, fake_codex) -> None:  # type: ignore[no-untyped-def]
    fake_codex.enqueue_stream_failure(after_events=4)
    async with session.ws_connect(ws_url(matrix), headers=AUTH) as ws:
        await ws.send_json(create())
        frames = await turn(ws)
        assert await dropped(ws)
    assert frames[0]["type"] == "response.created"
    # as the HTTP stream says it (the Codex executor's error for a stream that never completed)
    assert frames[-1] == {"type": "error", "status": 408, "error": {
        "message": "stream error: stream disconnected before completion: stream closed before response.completed",
        "type": "invalid_request_error"}}


async def test_translated_upstream_cut_mid_stream_is_unexpected_eof(matrix, session, fake_claude) -> None:  # type: ignore[no-untyped-def]
    fake_claude.enqueue_stream_failure(after_events=4)
    async with session.ws_connect(ws_url(matrix), headers=AUTH) as ws:
        await ws.send_json(create("claude-model"))
        frames = await turn(ws)
        assert await dropped(ws)
    assert frames[0]["type"] == "response.created" and text_of(frames)
    # Go's error for a body that broke off, as the HTTP stream path reports it
    assert frames[-1] == {"type": "error", "status": 500, "error": {
        "message": "unexpected EOF", "type": "server_error", "code": "internal_server_error"}}


async def test_upstream_failed_event_is_relayed(matrix, session, fake_codex) -> None:  # type: ignore[no-untyped-def]
    fake_codex.enqueue_stream_error_event(after_events=3)
    async with session.ws_connect(ws_url(matrix), headers=AUTH) as ws:
        await ws.send_json(create())
        frames = await turn(ws)
        assert await dropped(ws)
    assert frames[-1]["type"] == "response.failed"
    assert len(frames) == 4


# --------------------------------------------------------------------------- handshake and auth


async def test_auth_required_before_upgrade(matrix, session) -> None:  # type: ignore[no-untyped-def]
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    async with session.get(ws_url(matrix), headers=upgrade) as missing:
        assert missing.status == 401
        assert (await missing.json())["error"]["message"] == "Missing API key"
    async with session.get(ws_url(matrix), headers={**upgrade, "Authorization": "Bearer wrong"}) as bad:
        assert bad.status == 401
        body = await bad.json()
        assert body["error"]["message"] == "Invalid API key" and body["error"]["code"] == "invalid_api_key"
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await session.ws_connect(ws_url(matrix))
    assert info.value.status == 401
    async with session.ws_connect(ws_url(matrix) + f"?key={MATRIX_CLIENT_KEY}") as ws:
        await ws.send_json(create())
        assert (await turn(ws))[-1]["type"] == "response.completed"


async def test_open_access_when_api_keys_empty(proxyd_factory, fake_openai, session) -> None:  # type: ignore[no-untyped-def]
    server = await proxyd_factory(compat_config(fake_openai.base_url, api_keys=()))
    async with session.ws_connect(ws_url(server)) as ws:
        await ws.send_json(create("my-model"))
        frames = await turn(ws)
    assert frames[-1]["type"] == "response.completed"
    assert fake_openai.last.json["model"] == "gpt-4o"


async def test_plain_get_without_upgrade_is_400(matrix, session) -> None:  # type: ignore[no-untyped-def]
    async with session.get(ws_url(matrix), headers=AUTH) as resp:
        assert resp.status == 400
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert resp.headers["Sec-Websocket-Version"] == "13"
        assert await resp.text() == "Bad Request\n"


async def test_turn_state_header_is_echoed(matrix, session) -> None:  # type: ignore[no-untyped-def]
    async with session.ws_connect(ws_url(matrix), headers={**AUTH, "x-codex-turn-state": "state-abc"}) as ws:
        assert ws._response.headers["x-codex-turn-state"] == "state-abc"
    async with session.ws_connect(ws_url(matrix), headers=AUTH) as ws:
        assert "x-codex-turn-state" not in ws._response.headers


async def test_upgrade_answer_carries_only_handshake_headers(matrix, session) -> None:  # type: ignore[no-untyped-def]
    async with session.ws_connect(ws_url(matrix), headers={**AUTH, "Origin": "http://example.test"}) as ws:
        headers = ws._response.headers
    assert headers["Connection"] == "Upgrade" and headers["Upgrade"] == "websocket"
    assert not [name for name in headers if name.lower().startswith("access-control-")]


async def test_codex_backend_path_is_the_same_service(matrix, session, fake_codex) -> None:  # type: ignore[no-untyped-def]
    async with session.ws_connect(matrix.url + "/backend-api/codex/responses", headers=AUTH) as ws:
        await ws.send_json(create())
        frames = await turn(ws)
    assert frames[-1]["type"] == "response.completed"


async def test_turns_reach_providers_as_event_stream_requests(matrix, session, fake_claude) -> None:  # type: ignore[no-untyped-def]
    async with session.ws_connect(ws_url(matrix), headers=AUTH) as ws:
        await ws.send_json(create("claude-model"))
        assert (await turn(ws))[-1]["type"] == "response.completed"
    headers = fake_claude.last.headers
    assert headers["Accept"] == "text/event-stream"  # a Claude API key forwards the client's Accept
    assert "Sec-WebSocket-Key" not in headers and headers.get("Upgrade") is None


async def test_protocol_pings_are_answered(matrix, session) -> None:  # type: ignore[no-untyped-def]
    async with session.ws_connect(ws_url(matrix), headers=AUTH, autoping=False) as ws:
        await ws.ping(b"are-you-there")
        msg = await asyncio.wait_for(ws.receive(), 5)
    assert msg.type is aiohttp.WSMsgType.PONG and msg.data == b"are-you-there"


# --------------------------------------------------------------------------- closing


async def test_client_closing_mid_response_cancels_the_upstream(matrix, session, fake_codex) -> None:  # type: ignore[no-untyped-def]
    fake_codex.chunk_count = 200
    fake_codex.chunk_delay = 0.05
    ws = await session.ws_connect(ws_url(matrix), headers=AUTH)
    await ws.send_json(create())
    first = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
    assert first["type"] == "response.created"
    await ws.close()
    await asyncio.wait_for(fake_codex.client_disconnected.wait(), 5)
    assert fake_codex.completed_streams == 0


async def test_client_vanishing_mid_response_cancels_the_upstream(matrix, fake_codex) -> None:  # type: ignore[no-untyped-def]
    fake_codex.chunk_count = 200
    fake_codex.chunk_delay = 0.05
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(ws_url(matrix), headers=AUTH)
    await ws.send_json(create())
    await asyncio.wait_for(ws.receive(), 5)
    await session.close()  # the TCP connection goes without a close frame
    await asyncio.wait_for(fake_codex.client_disconnected.wait(), 5)


async def test_server_shutdown_closes_sockets_cleanly(matrix, session, fake_codex) -> None:  # type: ignore[no-untyped-def]
    fake_codex.chunk_count = 200
    fake_codex.chunk_delay = 0.05
    idle = await session.ws_connect(ws_url(matrix), headers=AUTH)
    busy = await session.ws_connect(ws_url(matrix), headers=AUTH)
    await busy.send_json(create())
    await asyncio.wait_for(busy.receive(), 5)
    idle_close = asyncio.ensure_future(idle.receive())
    busy_frames: list[aiohttp.WSMessage] = []

    async def drain() -> None:
        while True:
            msg = await busy.receive()
            busy_frames.append(msg)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return

    draining = asyncio.ensure_future(drain())
    await asyncio.wait_for(matrix.server.close(), 10)
    msg = await asyncio.wait_for(idle_close, 5)
    await asyncio.wait_for(draining, 5)
    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == aiohttp.WSCloseCode.GOING_AWAY
    assert busy_frames[-1].type is aiohttp.WSMsgType.CLOSE
    assert busy_frames[-1].data == aiohttp.WSCloseCode.GOING_AWAY
    await asyncio.wait_for(fake_codex.client_disconnected.wait(), 5)


async def test_each_turn_is_recorded_for_observers(matrix, session) -> None:  # type: ignore[no-untyped-def]
    records: list[Any] = []
    matrix.app[PIPELINE].observers.append(records.append)
    async with session.ws_connect(ws_url(matrix), headers=AUTH) as ws:
        await ws.send_json(create())
        await turn(ws)
        await ws.send_json({"type": "response.append", "input": [user("more")]})
        await turn(ws)
    assert len(records) == 2
    assert all(r.model == "codex-model" and r.status == 200 and r.stream for r in records)
    assert records[0].request_id != records[1].request_id
    assert records[0].input_tokens > 0


# --------------------------------------------------------------------------- conversation unit rules


def test_conversation_rules() -> None:
    conv = Conversation()
    first = conv.next_turn({"type": "response.create", "model": "m", "instructions": "sys"})
    assert first.body == {"model": "m", "instructions": "sys", "input": [], "stream": True}
    conv.remember(first.body, {"id": "r1", "output": [{"type": "message", "role": "assistant", "content": []}]})
    follow = conv.next_turn({"type": "response.append", "input": [user("x")], "stream": False})
    assert follow.body["stream"] is True and follow.body["model"] == "m" and follow.body["instructions"] == "sys"
    assert follow.body["input"] == [{"type": "message", "role": "assistant", "content": []}, user("x")]
    with pytest.raises(TurnError) as info:
        conv.next_turn({"type": "response.append"})
    assert info.value.message == "websocket request requires array field: input"
    override = conv.next_turn({"type": "response.create", "model": "other", "previous_response_id": "r1",
                               "input": []})
    assert override.body["model"] == "other" and "previous_response_id" not in override.body


async def test_slow_reader_holds_the_upstream_back(matrix, fake_codex) -> None:  # type: ignore[no-untyped-def]
    """Back-pressure: while the client reads nothing, proxyd stops reading the upstream (no unbounded buffer)."""
    fake_codex.reply_text = "x" * (12 * 1024 * 1024)
    fake_codex.chunk_count = 48
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(ws_url(matrix), headers=AUTH, max_msg_size=0)
        await ws.send_json(create())
        await fake_codex.wait_for_requests(1)
        await asyncio.sleep(1.0)  # ample time to stream 36 MB over loopback if nothing held it back
        assert fake_codex.completed_streams == 0
        frames = await turn(ws, within=20)
        await ws.close()
    assert frames[-1]["type"] == "response.completed"
    assert len(text_of(frames)) == 12 * 1024 * 1024
    for _ in range(100):
        if fake_codex.completed_streams == 1:
            break
        await asyncio.sleep(0.02)
    assert fake_codex.completed_streams == 1
