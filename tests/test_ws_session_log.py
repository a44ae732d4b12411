"""Request logs of Responses WebSocket sessions (proxyd/logs/ws_session.py): the renderer, and whole sessions over
the proxy (several turns on the upstream Codex WebSocket, an upstream error frame, an upstream socket dropped
mid-turn, HTTP-upstream turns) each written as one file."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from test_codex_ws_upstream import AUTH, FakeCodexWebSocket, closed, config, create, turn, user

from proxyd.logs import LOGS
from proxyd.logs.request_log import RequestLogSettings
from proxyd.logs.ws_session import EOF_TEXT, MAX_HTTP_ATTEMPTS, WebSocketSessionCapture, close_error_text

TS = re.compile(r"^Timestamp: \S+$", re.M)


def masked(text: str) -> str:
    return TS.sub("Timestamp: <ts>", text)


class Credential:
    provider = kind = "codex"
    id = "codex:apikey:0123456789ab"
    api_key = "sk-codex-secret-1"
    options: dict[str, Any] = {}


def session_capture(max_body_kb: int = 1024) -> WebSocketSessionCapture:
    capture = WebSocketSessionCapture(None, RequestLogSettings(enabled=True, max_body_bytes=max_body_kb * 1024), "r1")
    headers = CIMultiDictProxy(CIMultiDict({"Host": "127.0.0.1:1", "Upgrade": "websocket",
                                            "Authorization": "Bearer client-key-123456", "User-Agent": "t/1"}))
    capture.client_request("GET", "/v1/responses", headers)
    return capture


# --------------------------------------------------------------------------- renderer


def test_close_error_texts_are_gorillas() -> None:
    assert close_error_text(0) == "websocket: close 1005 (no status)"
    assert close_error_text(None) == "websocket: close 1005 (no status)"
    assert close_error_text(1000, "mock done") == "websocket: close 1000 (normal): mock done"
    assert close_error_text(1001) == "websocket: close 1001 (going away)"
    assert close_error_text(4000, "custom") == "websocket: close 4000: custom"
    assert EOF_TEXT == "websocket: close 1006 (abnormal closure): unexpected EOF"


def test_socket_session_renders_the_reference_layout() -> None:
    capture = session_capture()
    capture.client_message('  {"type":"response.create"}\n')
    capture.api_websocket_request("ws://up/codex/responses", {
        "Authorization": "Bearer sk-codex-secret-1", "session_id": "s1", "conversation_id": "s1",
        "OpenAI-Beta": "responses_websockets=2026-02-06"}, b'{"type":"response.create"}', Credential())
    capture.api_websocket_handshake(101, {"Upgrade": "websocket", "Connection": "upgrade"})
    capture.api_websocket_response('{"type":"error","status":400}')
    capture.api_websocket_error("upstream_error", '{"status":400,"error":{}}', 400)
    capture.client_frame('{"type":"error","status":400}')
    status, text = capture.turn_failed(502, "ignored: the socket's failure is the turn's")
    assert (status, text) == (400, '{"status":400,"error":{}}')
    capture.close_sent()
    capture.client_closed(EOF_TEXT)  # after the proxy ended the session: not recorded
    assert masked(capture.render().decode()) == """=== REQUEST INFO ===
Version: {version}
URL: /v1/responses
Method: GET
Downstream Transport: websocket
Upstream Transport: websocket+http
Timestamp: <ts>


=== HEADERS ===
Authorization: Bearer clie...3456
Upgrade: websocket
User-Agent: t/1


=== WEBSOCKET TIMELINE ===
Timestamp: <ts>
Event: websocket.request
{{"type":"response.create"}}

Timestamp: <ts>
Event: websocket.response
{{"type":"error","status":400}}

Timestamp: <ts>
Event: websocket.disconnect
websocket: close sent


=== API WEBSOCKET TIMELINE ===
Timestamp: <ts>
Event: api.websocket.request
Upstream URL: ws://up/codex/responses
Auth: provider=codex, auth_id=codex:apikey:0123456789ab, label=codex-apikey, type=api_key value=sk-c...et-1
Headers:
Authorization: Bearer sk-c...et-1
Conversation_id: s1
Openai-Beta: responses_websockets=2026-02-06
session_id: s1

Body:
{{"type":"response.create"}}

Timestamp: <ts>
Event: api.websocket.handshake
Status: 101
Headers:
Connection: upgrade
Upgrade: websocket

Timestamp: <ts>
Event: api.websocket.response
{{"type":"error","status":400}}

Timestamp: <ts>
Event: api.websocket.error
Stage: upstream_error
Error: {{"status":400,"error":{{}}}}


=== API ERROR RESPONSE ===
HTTP Status: 400
{{"status":400,"error":{{}}}}


=== API RESPONSE ===
Timestamp: <ts>
{{"status":400,"error":{{}}}}


""".format(version=__import__("proxyd").__version__)


def test_http_turns_use_the_numbered_blocks_and_a_silent_failure_is_logged_before_the_close() -> None:
    capture = session_capture()
    for index in (1, 2):
        capture.client_message(f'{{"n":{index}}}')
        capture.upstream_request("POST", "http://up/responses", {"Accept": "text/event-stream"}, b"{}", Credential())
        capture.upstream_response(200, {"Content-Type": "text/event-stream"})
        capture.upstream_body(b"data: {}\n\n")
    capture.turn_failed(500, "unexpected EOF")
    capture.turn_failed(500, "unexpected EOF")
    capture.close_sent("unexpected EOF")
    text = masked(capture.render().decode())
    assert "Upstream Transport: http\n" in text
    assert "=== API REQUEST 1 ===" in text and "=== API REQUEST 2 ===" in text
    assert text.index("=== API ERROR RESPONSE ===") < text.index("=== API RESPONSE 1 ===")
    assert text.count("=== API ERROR RESPONSE ===") == 2
    assert "=== API RESPONSE ===" not in text  # the HTTP answers are the API response section
    assert "=== REQUEST BODY ===" not in text and "=== RESPONSE ===" not in text
    assert "Event: websocket.disconnect\nunexpected EOF\n\nTimestamp: <ts>\nEvent: websocket.disconnect\n" \
           "websocket: close sent\n" in text
    assert text.endswith("data: {}\n\n\n")


def test_no_upstream_no_transport_line_and_the_timeline_is_bounded() -> None:
    capture = session_capture(max_body_kb=1)
    capture.client_message("x" * 3000)  # one payload: capped at the body limit
    for _ in range(40):
        capture.client_frame("y" * 1000)
    capture.client_closed(close_error_text(0))
    text = capture.render().decode()
    assert "Upstream Transport" not in text and "=== API" not in text
    assert "[proxyd: payload truncated: 1024 of 3000 characters kept]" in text
    assert capture.dropped_events > 0
    assert f"[proxyd: {capture.dropped_events} timeline events not kept: session log size limit]" in text
    assert len(text) < 17 * 1024 + 2000


def test_a_long_session_keeps_its_first_http_attempts() -> None:
    capture = session_capture()
    for _ in range(MAX_HTTP_ATTEMPTS + 3):
        capture.upstream_request("POST", "http://up/responses", {}, b"{}", Credential())
        capture.upstream_response(200, {})
        capture.upstream_body(b"data: {}")
    capture.upstream_error(500, b"late failure", {})  # of a dropped attempt: not an answer of a kept one
    assert len(capture.upstream_requests) == len(capture.upstream_answers) == MAX_HTTP_ATTEMPTS
    assert all(answer.body is not None and answer.body.total == 8 for answer in capture.upstream_answers)
    text = capture.render().decode()
    assert f"=== API REQUEST {MAX_HTTP_ATTEMPTS} ===" in text and f"API REQUEST {MAX_HTTP_ATTEMPTS + 1} " not in text
    assert "[proxyd: 3 upstream attempts not kept: session log size limit]" in text


# --------------------------------------------------------------------------- over the proxy


@pytest.fixture
async def fake_ws() -> AsyncIterator[FakeCodexWebSocket]:
    fake = FakeCodexWebSocket()
    await fake.start()
    yield fake
    await fake.close()


def request_logs_in(directory: Path) -> list[str]:
    return [p.read_text() for p in sorted(directory.glob("*.log")) if p.name != "main.log"]


async def session_logs(server: Any) -> list[str]:
    service = server.app[LOGS]
    for _ in range(50):  # the log is written once the handler has returned
        await service.requests.drain()
        if texts := request_logs_in(Path(service.directory)):
            return texts
        await asyncio.sleep(0.05)
    return []


def events_of(text: str, section: str) -> list[str]:
    """The `Event:` names of one timeline section."""
    body = text.split(f"=== {section} ===\n", 1)[1].split("\n\n\n", 1)[0]
    return re.findall(r"^Event: (\S+)$", body, re.M)


async def test_a_socket_session_with_turns_and_an_upstream_error_is_one_log(proxyd_factory, fake_ws) -> None:  # type: ignore[no-untyped-def]
    fake_ws.script = ["ok", "ok", "error:400"]
    server = await proxyd_factory(config(fake_ws) + "request-log: true\n")
    async with aiohttp.ClientSession() as http, http.ws_connect(server.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_json(create("first"))
        await turn(ws)
        await ws.send_json({"type": "response.append", "input": [user("second")]})
        await turn(ws)
        await ws.send_json({"type": "response.append", "input": [user("third")]})
        frames = await turn(ws)
        assert frames[-1]["type"] == "error" and frames[-1]["status"] == 400
        assert await closed(ws)
    [text] = await session_logs(server)
    assert "Downstream Transport: websocket\nUpstream Transport: websocket+http\n" in text
    assert events_of(text, "WEBSOCKET TIMELINE") == [
        "websocket.request", *["websocket.response"] * 3, "websocket.request", *["websocket.response"] * 3,
        "websocket.request", "websocket.response", "websocket.disconnect"]
    assert text.split("Event: websocket.disconnect\n", 1)[1].startswith("websocket: close sent\n")
    api = events_of(text, "API WEBSOCKET TIMELINE")
    assert api == ["api.websocket.request", "api.websocket.handshake", *["api.websocket.response"] * 3,
                   "api.websocket.request", *["api.websocket.response"] * 3,
                   "api.websocket.request", "api.websocket.response", "api.websocket.error"]
    assert '"previous_response_id":"resp_1"' in text  # the second turn went incrementally on the same socket
    error = ('{"status":400,"error":{"message":"fake ws error 400","type":"invalid_request_error","code":null}}')
    assert f"Stage: upstream_error\nError: {error}\n" in text
    assert f"=== API ERROR RESPONSE ===\nHTTP Status: 400\n{error}\n\n\n" in text
    assert re.search(rf"=== API RESPONSE ===\nTimestamp: \S+\n{re.escape(error)}\n\n\n$", text)
    assert "sk-ws-1" not in text and "Authorization: Bearer ****" in text  # short keys are not shown at all
    assert "=== API REQUEST" not in text and "=== RESPONSE ===" not in text


async def test_an_upstream_socket_dropped_mid_turn(proxyd_factory, fake_ws) -> None:  # type: ignore[no-untyped-def]
    fake_ws.script = ["cut"]
    server = await proxyd_factory(config(fake_ws) + "request-log: true\n")
    async with aiohttp.ClientSession() as http, http.ws_connect(server.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_json(create())
        frames: list[Any] = []
        while (msg := await asyncio.wait_for(ws.receive(), 5)).type is aiohttp.WSMsgType.TEXT:
            frames.append(msg.json())
    assert [f["type"] for f in frames] == ["response.created", "response.output_text.delta"]
    [text] = await session_logs(server)
    assert f"Stage: read\nError: {EOF_TEXT}\n" in text
    assert f"Event: websocket.disconnect\n{EOF_TEXT}\n\nTimestamp: " in text
    assert text.count("Event: websocket.disconnect") == 2 and "websocket: close sent" in text
    assert f"=== API ERROR RESPONSE ===\nHTTP Status: 500\n{EOF_TEXT}\n" in text
    assert text.endswith(f"{EOF_TEXT}\n\n\n")


async def test_http_upstream_turns_and_the_clients_close(proxyd_factory, fake_ws) -> None:  # type: ignore[no-untyped-def]
    server = await proxyd_factory(config(fake_ws, websockets=False) + "request-log: true\n")
    async with aiohttp.ClientSession() as http, http.ws_connect(server.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_json(create("one"))
        await turn(ws)
        await ws.send_json({"type": "response.append", "input": [user("two")]})
        await turn(ws)
    [text] = await session_logs(server)  # one file for the session, not one per turn
    assert "Upstream Transport: http\n" in text and "=== API WEBSOCKET TIMELINE ===" not in text
    assert "=== API REQUEST 1 ===" in text and "=== API REQUEST 2 ===" in text
    assert "=== API RESPONSE 1 ===" in text and "=== API RESPONSE 2 ===" in text
    assert "Event: websocket.disconnect\nwebsocket: close 1000 (normal)\n" in text
    assert "=== API ERROR RESPONSE ===" not in text


async def test_no_session_log_without_request_log(proxyd_factory, fake_ws) -> None:  # type: ignore[no-untyped-def]
    fake_ws.script = ["error:400"]
    server = await proxyd_factory(config(fake_ws))
    async with aiohttp.ClientSession() as http, http.ws_connect(server.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_json(create())
        await turn(ws)
        assert await closed(ws)
    await asyncio.sleep(0.2)
    service = server.app[LOGS]
    await service.requests.drain()
    assert request_logs_in(Path(service.directory)) == []


async def test_a_refused_upgrade_is_an_http_attempt(proxyd_factory, fake_ws) -> None:  # type: ignore[no-untyped-def]
    fake_ws.refuse = 426  # the turn falls back to HTTP
    server = await proxyd_factory(config(fake_ws) + "request-log: true\n")
    async with aiohttp.ClientSession() as http, http.ws_connect(server.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_json(create())
        assert (await turn(ws))[-1]["type"] == "response.completed"
    [text] = await session_logs(server)
    assert "Upstream Transport: websocket+http\n" in text
    assert events_of(text, "API WEBSOCKET TIMELINE") == ["api.websocket.request"]
    first = text.split("=== API REQUEST 1 ===\n", 1)[1].split("=== API REQUEST 2 ===", 1)[0]
    assert f"Upstream URL: {fake_ws.url}/responses\nHTTP Method: GET\n" in first
    assert "Connection: Upgrade\n" in first and "Upgrade: websocket\n" in first
    assert "=== API REQUEST 2 ===" in text and "HTTP Method: POST" in text
    assert "=== API RESPONSE 1 ===" in text and "Status: 426\n" in text and "=== API RESPONSE 2 ===" in text
    assert "=== API RESPONSE 3 ===" not in text


async def test_a_refused_upgrade_that_fails_the_turn_is_answered_once(proxyd_factory, fake_ws) -> None:  # type: ignore[no-untyped-def]
    fake_ws.refuse = 401
    server = await proxyd_factory(config(fake_ws) + "request-log: true\n")
    async with aiohttp.ClientSession() as http, http.ws_connect(server.url + "/v1/responses", headers=AUTH) as ws:
        await ws.send_json(create())
        assert (await turn(ws))[-1]["type"] == "error"
        assert await closed(ws)
    [text] = await session_logs(server)
    assert text.count("=== API RESPONSE") == 1 and "Status: 401\n" in text
    assert "=== API ERROR RESPONSE ===\nHTTP Status: 401\n" in text
    assert text.split("Event: websocket.disconnect\n", 1)[1].startswith("websocket: close sent\n")
