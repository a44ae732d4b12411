"""`GET /v1/responses`: the OpenAI Responses API over a WebSocket (api-surface §7.8).

The upgrade request is authenticated like every `/v1` request (the 401 is answered in the OpenAI envelope
before any upgrade; `ws-auth` does not apply). A plain GET without upgrade headers gets 400 `Bad Request`.

Each turn is one pipeline run over an Exchange whose body is the normalized `response.create` payload (see
proxyd/ws/conversation.py) and whose writer sends every Responses event as one text frame
(proxyd/ws/frames.py): auth, model routing, credential rotation, translation to Claude / Gemini /
OpenAI-compatible upstreams and passthrough to Codex all work as on `POST /v1/responses`.

Turns run one at a time, in order. A reader task keeps reading the socket while a turn runs, so a client
that closes (or vanishes) mid-turn cancels the turn at once, and with it the upstream call; messages sent
during a turn wait in a small bounded queue (when it is full the reader stops reading: TCP back-pressure).
Protocol pings keep idle connections alive (aiohttp heartbeat). Server shutdown closes every open socket
with 1001 "going away".

With `request-log: true` the whole session is one request log (proxyd/logs/ws_session.py): every turn's
pipeline feeds the session's capture, and this module adds the client's messages, the frames sent, the turns'
failures and how the session ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
import weakref
from typing import Any

import structlog
from aiohttp import WSCloseCode, WSMsgType, hdrs, web
from multidict import CIMultiDict

from proxyd.http.errors import ProxyError
from proxyd.http.request_id import request_id_of
from proxyd.keys import CONFIG_STORE, RUNTIME
from proxyd.logs import NULL_CAPTURE, WebSocketSessionCapture, begin_websocket_session
from proxyd.logs.ws_session import EOF_TEXT, close_error_text
from proxyd.pipeline.auth import authenticate
from proxyd.pipeline.exchange import Exchange
from proxyd.protocols.base import WireProtocol
from proxyd.routes.custom_pipeline import exchange_for, pipeline_with
from proxyd.ws.conversation import Conversation, Turn, TurnError, prewarm_frames
from proxyd.ws.frames import WebSocketWriterStage, error_frame, proxy_error_frame, response_error_frame
from proxyd.ws.upstream import CodexSocketDispatch, CodexSockets, SocketTurn, UpstreamSocketLost, relay_raw

log = structlog.get_logger(__name__)

HEARTBEAT_SECONDS = 30.0
QUEUED_MESSAGES = 8
TURN_STATE_HEADER = "x-codex-turn-state"
CODEX_BACKEND_PATH = "/backend-api/codex/responses"

WS_SOCKETS = web.AppKey("proxyd.responses_ws_sockets", weakref.WeakSet)  # open sockets, closed on shutdown

_HANDSHAKE_HEADERS = frozenset({"upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
                                "sec-websocket-extensions", "sec-websocket-protocol", "accept"})
_CLOSE_TYPES = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR})
STEER = "response.steer"


def steering_enabled(app: web.Application) -> bool:
    """`codex.response-steering: true` in the config file: `response.steer` messages reach the upstream socket."""
    try:
        return app[CONFIG_STORE].document.get(("codex", "response-steering")) is True
    except Exception:  # no config store (bare test apps) or an odd document: steering stays off
        return False


def _steer_text(data: str | bytes) -> str | None:
    """The message's text when it is a `response.steer`, else None (cheap test first)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if STEER not in text:
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    return text if isinstance(message, dict) and message.get("type") == STEER else None


class _UpgradeResponse(web.WebSocketResponse):
    """A WebSocketResponse whose 101 says `Connection: Upgrade` (the spelling of RFC 6455 and of the reference;
    aiohttp writes `upgrade`), and nothing else that was not asked for."""

    def _pre_start(self, request: web.BaseRequest) -> Any:
        started = super()._pre_start(request)
        self.headers[hdrs.CONNECTION] = "Upgrade"
        return started

    async def _write_headers(self) -> None:
        # CORS does not apply to WebSockets; the reference's 101 carries only the handshake headers
        for name in [n for n in self.headers if n.lower().startswith("access-control-")]:
            del self.headers[name]
        await super()._write_headers()


def _turn_request(request: web.Request) -> web.Request:
    """The request each turn's pipeline sees: the upgrade request's headers without the handshake ones, asking
    for an event stream (`Accept: text/event-stream`, as the reference presents a WebSocket turn to providers that
    forward the client's Accept)."""
    headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _HANDSHAKE_HEADERS)
    headers[hdrs.ACCEPT] = "text/event-stream"
    return request.clone(headers=headers)


class _Connection:
    """One client socket: reads messages, runs turns in order, keeps the conversation."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse,
                 session_log: WebSocketSessionCapture | None = None) -> None:
        self.request = request
        self.session_log = session_log  # the session's request log (request-log on)
        self.turn_request = _turn_request(request)
        self.ws = ws
        self.conversation = Conversation()
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=QUEUED_MESSAGES)
        self.closed = asyncio.Event()
        self.turns = 0
        self.log = log.bind(request_id=request_id_of(request))
        self.session_id = str(uuid.uuid4())  # this connection's own session (a sub-agent's prompt-cache id)
        self.sockets = CodexSockets()  # the upstream Codex WebSocket of this connection, when one is used
        self.steering = steering_enabled(request.app)

    async def send(self, text: str) -> None:
        if self.session_log is not None:
            self.session_log.client_frame(text)
        await self.ws.send_str(text)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(json.dumps(frame, ensure_ascii=False, separators=(",", ":")))

    async def serve(self) -> None:
        reader = asyncio.create_task(self._read(), name="proxyd-ws-reader")
        try:
            while not self.closed.is_set() or not self.queue.empty():
                message = await self.queue.get()
                if message is None or self.closed.is_set():
                    break
                if not await self._run_guarded(message):
                    break
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await self.sockets.close()

    async def _read(self) -> None:
        ended = EOF_TEXT  # how the client side ended, in the request log: Go's close-error text
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type in _CLOSE_TYPES:
                    if msg.type is WSMsgType.CLOSE:
                        ended = close_error_text(msg.data, msg.extra or "")
                    return
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    if self.steering and await self._steer_now(msg.data):
                        continue
                    await self.queue.put(msg.data)
        except (ConnectionError, RuntimeError):
            return
        finally:
            if self.session_log is not None:
                self.session_log.client_closed(ended)
            self.closed.set()
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)

    async def _steer_now(self, data: str | bytes) -> bool:
        """A `response.steer` sent while a turn streams on the upstream socket goes to that socket at once
        (the upstream folds it into the running response); True when it was forwarded."""
        text = _steer_text(data)
        socket = self.sockets.live()
        if text is None or socket is None or not socket.busy:
            return False
        if self.session_log is not None:
            self.session_log.client_message(text)
        try:
            await socket.send_text(text)
        except (ConnectionError, RuntimeError):
            return False
        self.log.info("response.steer forwarded to the running upstream turn")
        return True

    async def _run_guarded(self, message: Any) -> bool:
        """Run one message; cancel it when the socket closes first. False when the connection is over."""
        turn = asyncio.create_task(self._handle(message), name="proxyd-ws-turn")
        closed = asyncio.create_task(self.closed.wait())
        try:
            done, _ = await asyncio.wait({turn, closed}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            turn.cancel()
            raise
        finally:
            closed.cancel()
        if turn not in done:
            self.log.info("websocket closed mid-turn; cancelling the upstream call")
            turn.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await turn
            return False
        try:
            turn.result()
        except ConnectionError:
            return False
        return True

    async def _handle(self, raw: str | bytes) -> None:
        if self.session_log is not None:
            self.session_log.client_message(raw)
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            message = json.loads(text)
        except ValueError as exc:
            await self.send_frame(error_frame(400, {"message": f"websocket request is not valid JSON: {exc}",
                                                    "type": "invalid_request_error"}))
            return
        if self.steering and isinstance(message, dict) and message.get("type") == STEER:
            await self._steer(text, message)
            return
        try:
            turn = self.conversation.next_turn(message)
        except TurnError as exc:
            await self.send_frame(error_frame(exc.status, exc.error_object()))
            return
        if turn.prewarm:
            created, completed = prewarm_frames(turn.body)
            await self.send_frame(created)
            await self.send_frame(completed)
            self.conversation.remember(turn.body, completed["response"])
            return
        final = await self._run_turn(turn)
        if final is not None:
            self.conversation.remember(turn.body, final)

    async def _steer(self, text: str, message: dict[str, Any]) -> None:
        """A `response.steer` between turns: forwarded untouched on the upstream socket, its answer relayed
        untouched. Without a socket there is nothing to steer: an error frame."""
        try:
            relayed = await relay_raw(self.sockets, text, self.send)
        except UpstreamSocketLost as exc:
            self.log.warning("upstream websocket lost during a steer", error=str(exc))
            self.drop()
            return
        if relayed:
            self.conversation.steered(message, relayed)
            return
        if relayed is None:
            await self.send_frame(error_frame(400, {
                "message": "response.steer needs a response running on an upstream websocket",
                "type": "invalid_request_error"}))
            return
        self.drop()  # the steered response failed upstream: end the connection as after a failed turn

    def drop(self, reason: str | None = None) -> None:
        """End the connection without a closing handshake, as the reference does after an upstream failure (the
        client sees the socket go away; Codex CLI reconnects and resends the whole conversation). `reason`: the
        failure's text for the request log, when no error frame told the client."""
        if self.session_log is not None:
            self.session_log.close_sent(reason)
        transport = self.request.transport
        if transport is not None:
            transport.close()

    async def _run_turn(self, turn: Turn) -> dict[str, Any] | None:
        """One pipeline run; the completed response object, or None when the turn failed.

        A turn that failed upstream (an error answer after the retries, a mid-stream failure, a cut stream) ends
        the connection once its error frame is out; errors proxyd makes itself (unknown model, cooldown…) keep it.
        """
        self.turns += 1
        rid = f"{request_id_of(self.request)}.{self.turns}"
        exchange = exchange_for(self.turn_request, WireProtocol.OPENAI_RESPONSES, turn.body, stream=True,
                                request_id=rid)
        exchange.log = exchange.log.bind(transport="websocket", turn=self.turns)
        exchange.connection_session = self.session_id
        session_log = self.session_log
        exchange.capture = session_log if session_log is not None else NULL_CAPTURE  # one log per session
        if session_log is not None:
            session_log.turn_started()
        writer = WebSocketWriterStage(self.send)
        self.sockets.turn = SocketTurn(turn.delta, turn.continues)
        pipeline = pipeline_with(self.request.app, writer, CodexSocketDispatch(self.sockets))
        try:
            response = await pipeline.run(exchange)
        except ProxyError as exc:
            frame = proxy_error_frame(exc)
            self._turn_failed(exchange, frame)
            await self.send_frame(frame)
            if exchange.attempts:
                self.drop()
            return None
        if response is not exchange.response or response.status >= 400:
            frame = response_error_frame(response, exchange.last_error)
            self._turn_failed(exchange, frame)
            await self.send_frame(frame)
            if exchange.attempts:
                self.drop()
            return None
        if writer.final is None:
            failure = self._turn_failed(exchange, writer.error_frame)
            self.drop(None if writer.error_frame is not None else failure)
        return writer.final

    def _turn_failed(self, exchange: Exchange, frame: dict[str, Any] | None) -> str | None:
        """Log a failed turn in the session's request log: the upstream's error when there was one, else the
        error frame; returns the text logged."""
        if self.session_log is None:
            return None
        error = exchange.last_error
        if error is not None:
            status, text = error.status or 500, error.text
        elif frame is not None:
            status = frame.get("status") if isinstance(frame.get("status"), int) else 500
            text = json.dumps({k: v for k, v in frame.items() if k != "type"}, ensure_ascii=False,
                              separators=(",", ":"))
        else:
            status, text = 502, "stream closed before response.completed"
        return self.session_log.turn_failed(status, text)[1]


async def _plain_get(request: web.Request) -> web.Response:
    """What a WebSocket library answers a GET without upgrade headers."""
    return web.Response(status=400, text="Bad Request\n", content_type="text/plain", charset="utf-8",
                        headers={"Sec-Websocket-Version": "13"})


async def responses_websocket(request: web.Request) -> web.StreamResponse:
    """The upgrade handler; returns when the socket is closed."""
    runtime = request.app[RUNTIME].current
    authenticate(request, runtime.api_keys)  # 401 in the OpenAI envelope, before any upgrade
    ws = _UpgradeResponse(heartbeat=HEARTBEAT_SECONDS, autoping=True,
                               max_msg_size=max(1, runtime.config.request_body_limit_mb) * 1024 * 1024)
    if not ws.can_prepare(request).ok:
        return await _plain_get(request)
    turn_state = request.headers.get(TURN_STATE_HEADER)
    if turn_state:
        ws.headers[TURN_STATE_HEADER] = turn_state
    await ws.prepare(request)
    sockets = request.app[WS_SOCKETS]
    sockets.add(ws)
    session_log = begin_websocket_session(request, request_id_of(request))
    connection = _Connection(request, ws, session_log)
    connection.log.info("responses websocket open")
    try:
        await connection.serve()
    except asyncio.CancelledError:
        # aiohttp cancels the handler when the peer's TCP connection goes; after a close that is the normal end
        if not ws.closed:
            raise
    finally:
        sockets.discard(ws)
        if not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close()
        if session_log is not None:
            session_log.end()
        connection.log.info("responses websocket closed", turns=connection.turns, code=ws.close_code)
    return ws


async def _close_sockets(app: web.Application) -> None:
    """on_shutdown: close every open socket with 1001 so clients see a clean close, not a reset."""
    sockets = list(app[WS_SOCKETS])
    if sockets:
        log.info("closing responses websockets for shutdown", count=len(sockets))
    await asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
                           for ws in sockets if not ws.closed), return_exceptions=True)


def add_responses_ws_routes(app: web.Application) -> None:
    """`GET /v1/responses` and the shutdown hook that closes its sockets."""
    app[WS_SOCKETS] = weakref.WeakSet()
    app.router.add_get("/v1/responses", responses_websocket)
    app.router.add_get(CODEX_BACKEND_PATH, responses_websocket)  # Codex CLI's own path, same service
    app.on_shutdown.append(_close_sockets)
