"""The Codex upstream WebSocket executor (proxyd/ws/upstream.py) against a fake Codex WebSocket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import WSMsgType, web

from proxyd.keys import PIPELINE, RUNTIME
from proxyd.ws.conversation import Conversation
from proxyd.ws.upstream import BETA_VALUE, EXTENSIONS, handshake_headers, websocket_url

CLIENT_KEY = "ws-client-key"
AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}
TERMINAL = {"response.completed", "response.incomplete", "response.failed", "error"}
MODEL = "gpt-5.5"


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def events(model: str, rid: str, text: str = "Hello from fake ws") -> list[dict[str, Any]]:
    response = {"id": rid, "object": "response", "created_at": 1, "status": "in_progress", "model": model,
                "output": []}
    item = {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "annotations": [], "text": text}]}
    return [
        {"type": "response.created", "sequence_number": 0, "response": response},
        {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_1", "output_index": 0,
         "content_index": 0, "delta": text},
        {"type": "response.done", "sequence_number": 2, "response": {
            **response, "status": "completed", "output": [item],
            "usage": {"input_tokens": 11, "output_tokens": 7, "total_tokens": 18}}},
    ]


@attrs.define
class Handshake:
    credential: str
    headers: dict[str, str]
    frames: list[dict[str, Any]] = attrs.Factory(list)


class FakeCodexWebSocket:
    """`GET /responses` upgrades; each received frame consumes one scripted reply (default: a text answer).

    Replies: ``ok``, ``error:<status>``, ``cut`` (socket dropped after two events), ``close`` (closed 1000 after
    two events), ``hold`` (two events, then waits for a `response.steer` folded into the running response, then
    finishes). `refuse` answers the handshake with that status. `POST /responses` is the HTTP SSE fallback."""

    def __init__(self) -> None:
        self.handshakes: list[Handshake] = []
        self.script: list[str] = []
        self.refuse: int | None = None
        self.http_posts: list[dict[str, Any]] = []
        self.sockets_closed = asyncio.Event()
        self.responses = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/responses", self._ws)
        app.router.add_post("/responses", self._http)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _next_id(self) -> str:
        self.responses += 1
        return f"resp_{self.responses}"

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        if self.refuse is not None:
            return web.json_response({"error": {"message": "no upgrade"}}, status=self.refuse)
        shake = Handshake(auth.removeprefix("Bearer "), dict(request.headers))
        self.handshakes.append(shake)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                shake.frames.append(frame)
                reply = self.script.pop(0) if self.script else "ok"
                model = str(frame.get("model", ""))
                if reply.startswith("error:"):
                    status = int(reply.split(":")[1])
                    await ws.send_json({"type": "error", "status": status, "error": {
                        "message": f"fake ws error {status}", "type": "invalid_request_error", "code": None},
                        "headers": {"Retry-After": "7"}})
                    continue
                answer = events(model, self._next_id())
                if reply in ("cut", "close"):
                    for out in answer[:2]:
                        await ws.send_json(out)
                    await asyncio.sleep(0.05)
                    if reply == "cut":
                        assert request.transport is not None
                        request.transport.abort()
                    else:
                        await ws.close()
                    return ws
                if reply == "hold":
                    for out in answer[:2]:
                        await ws.send_json(out)
                    steer = await ws.receive(timeout=5)
                    shake.frames.append(json.loads(steer.data))
                    await ws.send_json(answer[2])
                    continue
                for out in answer:
                    await ws.send_json(out)
        finally:
            self.sockets_closed.set()
        return ws

    async def _http(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.http_posts.append(body)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in events(body["model"], self._next_id()):
            if event["type"] == "response.done":
                event = {**event, "type": "response.completed"}
            await response.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        return response


@pytest.fixture
async def fake_ws() -> AsyncIterator[FakeCodexWebSocket]:
    fake = FakeCodexWebSocket()
    await fake.start()
    yield fake
    await fake.close()


def config(fake: FakeCodexWebSocket, *, keys: int = 1, websockets: bool = True, steering: bool = False,
           retry: int | None = None) -> str:
    entries = "".join(f"  - api-key: sk-ws-{i}\n    base-url: {fake.url}\n    websockets: {str(websockets).lower()}\n"
                      for i in range(1, keys + 1))
    text = f"api-keys:\n  - {CLIENT_KEY}\ncodex-api-key:\n{entries}"
    if steering:
        text += "codex:\n  response-steering: true\n"
    if retry is not None:
        text += f"request-retry: {retry}\n"
    return text


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def turn(ws: aiohttp.ClientWebSocketResponse, within: float = 5.0) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), within)
        assert msg.type is WSMsgType.TEXT, msg
        frames.append(json.loads(msg.data))
        if frames[-1]["type"] in TERMINAL:
            return frames


def create(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"type": "response.create", "model": MODEL, "input": [user(text)], **extra}


async def closed(ws: aiohttp.ClientWebSocketResponse, within: float = 5.0) -> bool:
    msg = await asyncio.wait_for(ws.receive(), within)
    return msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR, WSMsgType.CLOSING)


# --------------------------------------------------------------------------- helpers


def test_websocket_url_and_handshake_headers() -> None:
    from proxyd.providers.base import UpstreamRequest

    assert websocket_url("https://chatgpt.com/backend-api/codex/responses") == \
        "wss://chatgpt.com/backend-api/codex/responses"
    assert websocket_url("http://127.0.0.1:9/codex/responses") == "ws://127.0.0.1:9/codex/responses"
    request = UpstreamRequest(method="POST", url="http://x/responses", body=b"{}", headers={
        "Content-Type": "application/json", "Accept": "text/event-stream", "Connection": "Keep-Alive",
        "Session-Id": "s1", "Authorization": "Bearer k", "Originator": "codex-tui", "User-Agent": "ua"})
    headers = handshake_headers(request, {"x-codex-turn-state": "ts", "OpenAI-Beta": "other=1"}, "s1")
    assert {k.lower(): v for k, v in headers.items()} == {
        "authorization": "Bearer k", "originator": "codex-tui", "user-agent": "ua", "x-codex-turn-state": "ts",
        "openai-beta": BETA_VALUE, "session_id": "s1", "conversation_id": "s1"}
    kept = handshake_headers(request, {"OpenAI-Beta": "responses_websockets=2099-01-01"}, "")
    assert kept["OpenAI-Beta"] == "responses_websockets=2099-01-01" and "session_id" not in kept


def test_follow_ups_carry_their_increment() -> None:
    conv = Conversation()
    first = conv.next_turn(create("one"))
    assert first.delta is None and first.continues is None
    conv.remember(first.body, {"id": "r1", "output": [{"type": "message", "role": "assistant", "content": []}]})
    append = conv.next_turn({"type": "response.append", "input": [user("two")]})
    assert append.delta == [user("two")] and append.continues == "r1" and len(append.body["input"]) == 3
    chained = conv.next_turn({"type": "response.create", "input": [user("two")], "previous_response_id": "r1"})
    assert chained.delta == [user("two")] and chained.continues == "r1"
    plain = conv.next_turn({"type": "response.create", "input": [user("two")]})
    assert plain.delta == [user("two")] and plain.continues == "r1" and plain.body["input"] == [user("two")]
    transcript = [user("one"), {"type": "message", "role": "assistant", "content": []}, user("two")]
    whole = conv.next_turn({"type": "response.create", "input": transcript})
    assert whole.delta is None and whole.continues is None


# --------------------------------------------------------------------------- over the proxy


async def test_turn_goes_over_the_upstream_websocket(proxyd_factory, fake_ws, session) -> None:  # type: ignore[no-untyped-def]
    server = await proxyd_factory(config(fake_ws))
    records: list[Any] = []
    server.app[PIPELINE].observers.append(records.append)
    async with session.ws_connect(server.url + "/v1/responses", headers={**AUTH, "x-codex-turn-state": "t1"}) as ws:
        await ws.send_json(create(instructions="be brief"))
        frames = await turn(ws)
    assert [f["type"] for f in frames] == ["response.created", "response.output_text.delta", "response.completed"]
    assert frames[-1]["response"]["model"] == MODEL
    assert fake_ws.http_posts == [] and len(fake_ws.handshakes) == 1
    shake = fake_ws.handshakes[0]
    headers = {k.lower(): v for k, v in shake.headers.items()}
    assert headers["authorization"] == "Bearer sk-ws-1" and headers["openai-beta"] == BETA_VALUE
    assert headers["sec-websocket-extensions"] == EXTENSIONS and headers["x-codex-turn-state"] == "t1"
    assert headers["session_id"] == headers["conversation_id"] == shake.frames[0]["prompt_cache_key"]
    for absent in ("content-type", "accept", "accept-encoding", "session-id"):
        assert absent not in headers
    frame = shake.frames[0]
    assert frame["type"] == "response.create" and frame["model"] == MODEL and frame["stream"] is True
    assert frame["input"] == [user("hi")] and frame["instructions"] == "be brief" and frame["store"] is False
    await asyncio.sleep(0.05)
    assert len(records) == 1 and records[0].status == 200 and records[0].input_tokens == 11
    assert records[0].output_tokens == 7 and records[0].credential_id


async def test_later_turns_are_incremental_on_the_same_socket(proxyd_factory, fake_ws, session) -> None:  # type: ignore[no-untyped-def]
    server = await proxyd_factory(config(fake_ws, keys=2))
    async with session.ws_connect(server.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_json(create("first"))
        await turn(ws)
        await ws.send_json({"type": "response.append", "input": [user("second")]})
        await turn(ws)
        await ws.send_json(create("third", previous_response_id="resp_2"))
        await turn(ws)
    assert len(fake_ws.handshakes) == 1  # one socket, pinned to the first credential
    first, second, third = fake_ws.handshakes[0].frames
    assert second["input"] == [user("second")] and second["previous_response_id"] == "resp_1"
    assert third["input"] == [user("third")] and third["previous_response_id"] == "resp_2"
    assert first["prompt_cache_key"] == second["prompt_cache_key"] == third["prompt_cache_key"]
    assert "previous_response_id" not in first


async def test_a_lost_socket_sends_the_next_turn_whole(proxyd_factory, fake_ws, session) -> None:  # type: ignore[no-untyped-def]
    server = await proxyd_factory(config(fake_ws))
    fake_ws.script = ["ok", "close"]
    async with session.ws_connect(server.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_json(create("first"))
        await turn(ws)
        await ws.send_json({"type": "response.append", "input": [user("second")]})
        frames = [json.loads((await asyncio.wait_for(ws.receive(), 5)).data) for _ in range(2)]
        assert [f["type"] for f in frames] == ["response.created", "response.output_text.delta"]
        assert await closed(ws)  # cut mid-turn: dropped without an error frame
    async with session.ws_connect(server.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_json(create("again"))
        await turn(ws)
    assert len(fake_ws.handshakes) == 2


async def test_socket_closed_between_turns_gets_the_whole_transcript(proxyd_factory, fake_ws, session) -> None:  # type: ignore[no-untyped-def]
    server = await proxyd_factory(config(fake_ws))
    async with session.ws_connect(server.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_json(create("first"))
        await turn(ws)
        shake_count = len(fake_ws.handshakes)
        await _close_upstream_sockets(fake_ws)  # the upstream goes away while the client is idle
        await ws.send_json({"type": "response.append", "input": [user("second")]})
        frames = await turn(ws)
    assert frames[-1]["type"] == "response.completed"
    assert len(fake_ws.handshakes) == shake_count + 1
    whole = fake_ws.handshakes[-1].frames[0]
    assert "previous_response_id" not in whole
    assert [item.get("role") for item in whole["input"]] == ["user", "assistant", "user"]


async def _close_upstream_sockets(fake: FakeCodexWebSocket) -> None:
    """Close every upstream socket of the fake from its side (a clean 1000 close while idle)."""
    assert fake._runner is not None
    server = fake._runner.server
    assert server is not None
    for handler in list(server.connections):
        handler.force_close()
    fake.sockets_closed.clear()
    await asyncio.sleep(0.1)


async def test_upstream_error_frames(proxyd_factory, fake_ws, session) -> None:  # type: ignore[no-untyped-def]
    server = await proxyd_factory(config(fake_ws, keys=2, retry=0))
    fake_ws.script = ["error:400"]
    async with session.ws_connect(server.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_json(create())
        frames = await turn(ws)
        assert frames == [{"type": "error", "status": 400, "error": {
            "message": "fake ws error 400", "type": "invalid_request_error", "code": None},
            "headers": {"Content-Type": "application/json", "Retry-After": "7"}}]  # the upstream frame's headers
        assert await closed(ws)
    assert len(fake_ws.handshakes) == 1  # a 400 is not retried

    fake_ws.script = ["error:500", "error:500"]
    fake_ws.handshakes.clear()
    async with session.ws_connect(server.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_json(create())
        frames = await turn(ws)
        assert frames[0]["status"] == 500
        assert await closed(ws)
    assert sorted(h.credential for h in fake_ws.handshakes) == ["sk-ws-1", "sk-ws-2"]  # retried on the other key
    manager = server.app[RUNTIME].current.manager
    creds = [c for c in server.app[RUNTIME].current.credentials if c.kind == "codex"]
    assert len(creds) == 2 and all(manager.blocked_until(c, MODEL) is not None for c in creds)  # cooled down


async def test_cut_mid_turn_drops_the_client(proxyd_factory, fake_ws, session) -> None:  # type: ignore[no-untyped-def]
    server = await proxyd_factory(config(fake_ws))
    fake_ws.script = ["cut"]
    async with session.ws_connect(server.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_json(create())
        types = []
        while True:
            msg = await asyncio.wait_for(ws.receive(), 5)
            if msg.type is not WSMsgType.TEXT:
                break
            types.append(json.loads(msg.data)["type"])
    assert types == ["response.created", "response.output_text.delta"]


async def test_426_falls_back_to_http(proxyd_factory, fake_ws, session) -> None:  # type: ignore[no-untyped-def]
    server = await proxyd_factory(config(fake_ws))
    fake_ws.refuse = 426
    async with session.ws_connect(server.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_json(create())
        frames = await turn(ws)
    assert frames[-1]["type"] == "response.completed"
    assert len(fake_ws.http_posts) == 1 and fake_ws.http_posts[0]["input"] == [user("hi")]


async def test_refused_upgrade_is_an_upstream_error(proxyd_factory, fake_ws, session) -> None:  # type: ignore[no-untyped-def]
    server = await proxyd_factory(config(fake_ws))
    fake_ws.refuse = 400
    async with session.ws_connect(server.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_json(create())
        frames = await turn(ws)
    assert frames[0]["type"] == "error" and frames[0]["status"] == 400
    assert fake_ws.http_posts == []


async def test_credentials_without_websockets_use_http(proxyd_factory, fake_ws, session) -> None:  # type: ignore[no-untyped-def]
    server = await proxyd_factory(config(fake_ws, websockets=False))
    async with session.ws_connect(server.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_json(create())
        await turn(ws)
    assert fake_ws.handshakes == [] and len(fake_ws.http_posts) == 1


async def test_http_clients_never_use_the_socket(proxyd_factory, fake_ws, session) -> None:  # type: ignore[no-untyped-def]
    server = await proxyd_factory(config(fake_ws))
    async with session.post(server.url + "/v1/responses", headers=AUTH,
                            json={"model": MODEL, "input": "hi", "stream": True}) as response:
        assert response.status == 200
        await response.read()
    assert fake_ws.handshakes == [] and len(fake_ws.http_posts) == 1


async def test_steer_between_and_during_turns(proxyd_factory, fake_ws, session) -> None:  # type: ignore[no-untyped-def]
    server = await proxyd_factory(config(fake_ws, steering=True))
    steer = {"type": "response.steer", "previous_response_id": "resp_1", "input": "go left"}
    fake_ws.script = ["ok", "ok", "hold"]
    async with session.ws_connect(server.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_json(create("first"))
        await turn(ws)
        await ws.send_json(steer)  # between turns: forwarded untouched, its answer relayed untouched
        frames = await turn(ws)
        assert frames[-1]["type"] == "response.completed" and frames[-1]["response"]["model"] == ""
        await ws.send_json({"type": "response.append", "input": [user("more")]})
        first = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
        assert first["type"] == "response.created"
        await ws.send_json({**steer, "input": "faster"})  # during a turn: straight to the running response
        rest = await turn(ws)
        assert rest[-1]["type"] == "response.completed"
    sent = fake_ws.handshakes[0].frames
    assert sent[1] == steer and sent[-1] == {**steer, "input": "faster"}
    assert sent[2]["previous_response_id"] == "resp_2"  # chained on the steer's answer


async def test_steer_without_steering_is_refused(proxyd_factory, fake_ws, session) -> None:  # type: ignore[no-untyped-def]
    server = await proxyd_factory(config(fake_ws))
    async with session.ws_connect(server.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_json(create())
        await turn(ws)
        await ws.send_json({"type": "response.steer", "input": "x"})
        frames = await turn(ws)
    assert frames[0]["status"] == 400 and "response.steer" in frames[0]["error"]["message"]


async def test_client_close_closes_the_upstream_socket(proxyd_factory, fake_ws, session) -> None:  # type: ignore[no-untyped-def]
    server = await proxyd_factory(config(fake_ws))
    async with session.ws_connect(server.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_json(create())
        await turn(ws)
    await asyncio.wait_for(fake_ws.sockets_closed.wait(), 5)
