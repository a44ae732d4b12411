"""The Codex upstream WebSocket: WebSocket turns on `websockets: true` Codex credentials (routing.md §2.7).

A client on the Responses WebSocket whose turn is served by a Codex credential with `websockets` enabled gets
its turn sent over one upstream WebSocket (`GET {base-url}/responses`, `http→ws`, `https→wss`) kept for the
whole client connection, instead of one HTTP SSE request per turn. Everything else is the HTTP path's:

* `CodexSocketDispatch` is the pipeline's dispatch stage for such turns: candidates, rotation, retries,
  cooldowns and usage recording are `DispatchStage`'s; only the attempt on a websocket-enabled Codex
  candidate goes over the socket. The body and headers are what `CodexProvider.build_request` builds for
  HTTP; the handshake drops the HTTP-only headers (`Content-Type`, `Accept`, `Connection`, `Session-Id`) and
  adds `OpenAI-Beta: responses_websockets=2026-02-06` (unless the client's beta header names another
  `responses_websockets=` version), `session_id`/`conversation_id` (the turn's prompt-cache id, kept for the
  socket's lifetime) and the client's `x-codex-*` headers. The turn is one text frame: the body plus
  `"type": "response.create"`.
* Later turns of the connection stay on the credential of the first turn served over the socket (the
  connection is pinned to it while the model routes to it) and travel incrementally: only the new input,
  with `previous_response_id` naming the socket's last response. When the socket is gone (closed by the
  upstream, another credential) the turn goes whole (merged transcript, no `previous_response_id`) on a new one.
* Upstream frames are Responses events, relayed through the same rewriter as SSE (`response.done` is
  renamed `response.completed`); the turn ends after its terminal event. An upstream `{"type":"error",
  "status":N}` frame before the first event is an upstream error of status N (retried like the HTTP
  answer); afterwards it is relayed as the error frame. A socket that closes or breaks mid-turn raises
  `UpstreamSocketLost` (the client connection is then dropped without a frame, as the reference does).
* A handshake answered 426 falls back to HTTP for that attempt; another status is an upstream error of that
  status; a dial failure is a transport failure (status 0).
* Request logs: each turn's frame and handshake headers, the 101, every upstream frame and each socket failure
  (with the reference's Go texts, e.g. `websocket: close 1006 (abnormal closure): unexpected EOF`) go to the
  session's capture (proxyd/logs/ws_session.py); a refused upgrade is logged as an HTTP attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import attrs
import structlog
from multidict import CIMultiDict

from proxyd.credentials.model import Credential
from proxyd.http.errors import UpstreamError
from proxyd.logs.request_log import NULL_CAPTURE, RequestLogCapture
from proxyd.logs.ws_session import EOF_TEXT, close_error_text
from proxyd.pipeline.dispatch import DispatchStage, timeouts_of
from proxyd.pipeline.exchange import Candidate, Exchange
from proxyd.protocols.sse import SSEEvent
from proxyd.providers.base import UpstreamRequest, is_socks
from proxyd.providers.codex_collab import MODEL_LISTS
from proxyd.providers.codex_session import ClientOrigin

log = structlog.get_logger(__name__)

BETA_HEADER = "OpenAI-Beta"
BETA_VALUE = "responses_websockets=2026-02-06"
EXTENSIONS = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
HANDSHAKE_SECONDS = 30.0
IDLE_SECONDS = 300.0
MAX_FRAME_BYTES = 64 * 1024 * 1024
# HTTP request headers of CodexProvider.build_request that a WebSocket handshake does not carry.
_HTTP_ONLY = frozenset({"content-type", "accept", "connection", "session-id", "content-length"})
# Client headers forwarded on the handshake when the client sent them (the reference's list).
_CLIENT_HEADERS = ("x-codex-turn-state", "x-codex-turn-metadata", "x-codex-beta-features", "x-client-request-id",
                   "x-responsesapi-include-timing-metrics")
_TERMINAL = frozenset({"response.completed", "response.done", "response.incomplete", "response.failed", "error"})


LOST_STATUS = 500  # the status a turn lost with its upstream socket is logged with (the reference's)
BINARY_TEXT = "codex websockets executor: unexpected binary message"


class UpstreamSocketLost(Exception):
    """The upstream socket closed or broke in the middle of a turn; `reason` is the reference's text for it."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


def websockets_enabled(credential: Credential) -> bool:
    """A Codex credential marked `websockets: true` (`credential.options["websockets"]`, set from the config)."""
    return credential.kind == "codex" and bool(credential.options.get("websockets"))


def websocket_url(http_url: str) -> str:
    """`http(s)://…/responses` → `ws(s)://…/responses`."""
    parts = urlsplit(http_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise UpstreamError(0, f"codex websocket: unsupported upstream URL {http_url!r}".encode())
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))


def handshake_headers(request: UpstreamRequest, client_headers: Mapping[str, str], session_id: str) -> CIMultiDict[str]:
    """The upgrade request's headers: the HTTP request's minus the HTTP-only ones, plus the WebSocket ones."""
    headers: CIMultiDict[str] = CIMultiDict(
        (k, v) for k, v in request.headers.items() if k.lower() not in _HTTP_ONLY)
    for name in _CLIENT_HEADERS:
        value = client_headers.get(name)
        if value and name not in headers:
            headers[name] = value
    beta = headers.get(BETA_HEADER) or client_headers.get(BETA_HEADER) or ""
    headers[BETA_HEADER] = beta if "responses_websockets=" in beta else BETA_VALUE
    if session_id:
        headers["session_id"] = session_id
        headers["conversation_id"] = session_id
    return headers


async def _exact_extensions(_session: aiohttp.ClientSession, _ctx: Any,
                            params: aiohttp.TraceRequestStartParams) -> None:
    """Offer permessage-deflate as the reference's dialer does (aiohttp writes only `client_max_window_bits`)."""
    if params.headers.get("Upgrade", "").lower() == "websocket":
        params.headers["Sec-WebSocket-Extensions"] = EXTENSIONS


def _client_session(proxy_url: str) -> aiohttp.ClientSession:
    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(_exact_extensions)
    connector: aiohttp.BaseConnector | None = None
    if proxy_url and is_socks(proxy_url):
        from aiohttp_socks import ProxyConnector  # the HTTP path's SOCKS5 support

        connector = ProxyConnector.from_url(proxy_url)
    return aiohttp.ClientSession(connector=connector, trace_configs=[trace],
                                 skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent"))


def _http_proxy(proxy_url: str) -> str | None:
    value = proxy_url.strip()
    if not value or value.lower() in ("direct", "none") or is_socks(value):
        return None
    return value


@attrs.define(eq=False)
class UpstreamSocket:
    """One open upstream WebSocket and what it remembers: its credential, URL, session id, last response."""

    credential_id: str
    url: str
    session_id: str
    ws: aiohttp.ClientWebSocketResponse
    client: aiohttp.ClientSession
    last_response_id: str | None = None
    busy: bool = False  # a turn is streaming on it
    capture: RequestLogCapture = NULL_CAPTURE  # the client session's request log (set per turn)

    @property
    def closed(self) -> bool:
        return self.ws.closed

    async def send(self, payload: Mapping[str, Any]) -> None:
        await self.ws.send_str(json.dumps(payload, ensure_ascii=False, separators=(",", ":")))

    async def send_text(self, text: str) -> None:
        await self.ws.send_str(text)

    def _lost(self, message: str, reason: str | None = None, stage: str = "read") -> UpstreamSocketLost:
        lost = UpstreamSocketLost(message, reason)
        self.capture.api_websocket_error(stage, lost.reason, LOST_STATUS)
        return lost

    async def next_frame(self) -> dict[str, Any]:
        """The next JSON text frame (empty ones skipped); UpstreamSocketLost when the socket ends or breaks."""
        while True:
            try:
                msg = await self.ws.receive(timeout=IDLE_SECONDS)
            except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
                raise self._lost(f"upstream websocket read failed: {exc!r}") from None
            if msg.type is aiohttp.WSMsgType.TEXT:
                text = msg.data.strip()
                if not text:
                    continue
                self.capture.api_websocket_response(text)
                try:
                    data = json.loads(text)
                except ValueError:
                    raise self._lost("upstream websocket sent a frame that is not JSON") from None
                if isinstance(data, dict):
                    return data
                continue
            if msg.type is aiohttp.WSMsgType.BINARY:
                raise self._lost("upstream websocket sent an unexpected binary frame", BINARY_TEXT,
                                 "unexpected_binary")
            if msg.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                continue
            # a close frame has its code (and reason); a connection that just went away is Go's EOF
            reason = close_error_text(msg.data, msg.extra or "") if msg.type is aiohttp.WSMsgType.CLOSE \
                else EOF_TEXT
            raise self._lost(f"upstream websocket closed ({self.ws.close_code})", reason)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        with contextlib.suppress(Exception):
            await self.client.close()


@attrs.frozen
class SocketTurn:
    """How the current turn may travel on a socket that served the conversation so far.

    `delta` is the input to send instead of the full body's when the socket's last response is `continues`;
    `previous_response_id` then goes with it. None: the turn always goes whole.
    """

    delta: list[Any] | None = None
    continues: str | None = None


class CodexSockets:
    """The upstream socket of one client connection, its pinned credential, and the turn in flight."""

    def __init__(self) -> None:
        self.socket: UpstreamSocket | None = None
        self.pinned: str | None = None  # credential id of the socket's first served turn
        self.turn = SocketTurn()
        self._lock = asyncio.Lock()

    def live(self) -> UpstreamSocket | None:
        socket = self.socket
        return socket if socket is not None and not socket.closed else None

    async def drop(self, reason: str) -> None:
        """Close the socket (an error on it, a turn cut short, another credential, the connection's end)."""
        socket, self.socket = self.socket, None
        if socket is not None:
            log.info("codex upstream websocket closed", credential=socket.credential_id, reason=reason)
            await socket.close()

    async def close(self) -> None:
        self.pinned = None
        await self.drop("client connection closed")

    async def connect(self, exchange: Exchange, credential: Credential, url: str,
                      headers: CIMultiDict[str], session_id: str) -> UpstreamSocket:
        """A new socket (the old one closed first). Raises UpstreamError on a refused or failed handshake."""
        await self.drop("replaced")
        client = _client_session(credential.proxy_url)
        timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0)
        connect = min(HANDSHAKE_SECONDS, timeouts_of(exchange).connect or HANDSHAKE_SECONDS)
        try:
            async with asyncio.timeout(max(connect, HANDSHAKE_SECONDS)):
                ws = await client.ws_connect(url, headers=headers, compress=15, autoping=True, autoclose=True,
                                             timeout=timeout, max_msg_size=MAX_FRAME_BYTES,
                                             proxy=_http_proxy(credential.proxy_url))
        except aiohttp.WSServerHandshakeError as exc:
            await client.close()
            _log_refused_upgrade(exchange.capture, credential, url, headers, exc)
            status = exc.status or 502
            message = f"codex websocket handshake answered {status}"
            body = json.dumps({"error": {"message": message, "type": "server_error"}}).encode()
            raise UpstreamError(status, body, dict(exc.headers or {})) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            await client.close()
            message = f"codex websocket connect failed: {exc!r}"
            exchange.capture.api_websocket_error("dial", message, LOST_STATUS)
            raise UpstreamError(0, message.encode()) from None
        except BaseException:
            await client.close()
            raise
        answer = getattr(ws, "_response", None)  # aiohttp keeps the 101 there (no public accessor)
        exchange.capture.api_websocket_handshake(101, answer.headers if answer is not None else None)
        socket = UpstreamSocket(credential.id, url, session_id, ws, client, capture=exchange.capture)
        self.socket = socket
        log.info("codex upstream websocket connected", credential=credential.id, url=url.split("?")[0])
        return socket


def _log_refused_upgrade(capture: RequestLogCapture, credential: Credential, url: str, headers: Mapping[str, str],
                         error: aiohttp.WSServerHandshakeError) -> None:
    """A refused upgrade in the request log, as the reference records it: an HTTP attempt (the `GET` to the
    http(s) URL with `Connection`/`Upgrade`) and its answer."""
    sent = CIMultiDict(headers)
    sent.setdefault("Connection", "Upgrade")
    sent.setdefault("Upgrade", "websocket")
    http_url = urlunsplit(urlsplit(url)._replace(scheme={"ws": "http", "wss": "https"}.get(urlsplit(url).scheme,
                                                                                          "http")))
    capture.upstream_request("GET", http_url, sent, None, credential)
    capture.upstream_response(error.status, error.headers or {})


def go_error_text(frame: Mapping[str, Any], status: int) -> str:
    """The reference's text for an upstream `{"type":"error"}` frame: `{"status":N[,"body"],"error":…}`."""
    out: dict[str, Any] = {"status": status}
    body = frame.get("body")
    if "body" in frame:
        out["body"] = body
    if isinstance(body, dict) and "error" in body:
        out["error"] = body["error"]
    elif "error" in frame:
        out["error"] = frame["error"]
    else:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        out["error"] = {"type": "server_error", "message": phrase}
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def _frame_text(payload: Mapping[str, Any]) -> str:
    """A turn's `response.create` frame: the HTTP body plus the type."""
    return json.dumps({**payload, "type": "response.create"}, ensure_ascii=False, separators=(",", ":"))


def _error_of(frame: Mapping[str, Any], capture: RequestLogCapture = NULL_CAPTURE) -> UpstreamError | None:
    """An upstream `{"type":"error","status":N,…}` frame as the upstream error it stands for (logged to `capture`
    as the turn's upstream failure)."""
    if frame.get("type") != "error":
        return None
    status = frame.get("status") or frame.get("status_code")
    if not isinstance(status, int) or status <= 0:
        return None
    capture.api_websocket_error("upstream_error", go_error_text(frame, status), status)
    body = frame.get("body")
    error = body.get("error") if isinstance(body, dict) and "error" in body else frame.get("error")
    if error is None:
        error = {"type": "server_error", "message": f"upstream websocket error {status}"}
    headers = frame.get("headers")
    extra = {str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {}
    return UpstreamError(status, json.dumps({"error": error}, ensure_ascii=False).encode(), extra)


def _event(frame: dict[str, Any]) -> SSEEvent:
    if frame.get("type") == "response.done":
        frame = {**frame, "type": "response.completed"}
    return SSEEvent(json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode(), str(frame.get("type")))


class _Relay:
    """The turn's events from `first` to its terminal one (an async iterator the writer stage consumes).

    The socket is busy until the terminal event; a turn that ends otherwise (lost socket, upstream failure,
    the client gone, never read) drops the socket, whose state is then unknown."""

    def __init__(self, sockets: CodexSockets, socket: UpstreamSocket, first: dict[str, Any]) -> None:
        self._sockets = sockets
        self._socket = socket
        self._next: dict[str, Any] | None = first
        self._done = False
        self._finished = False
        socket.busy = True

    def __aiter__(self) -> _Relay:
        return self

    async def __anext__(self) -> SSEEvent:
        if self._done:
            raise StopAsyncIteration
        socket = self._socket
        try:
            frame = self._next if self._next is not None else await socket.next_frame()
        except BaseException:
            await self.aclose()
            raise
        self._next = None
        kind = frame.get("type")
        if kind == "error":
            _error_of(frame, socket.capture)  # logged as the turn's upstream failure; relayed as the error frame
        if kind in ("response.completed", "response.done"):
            response = frame.get("response")
            rid = response.get("id") if isinstance(response, dict) else None
            socket.last_response_id = rid if isinstance(rid, str) else None
        if kind in _TERMINAL:
            self._finished = kind not in ("error", "response.failed")
            await self.aclose()
        return _event(frame)

    async def aclose(self) -> None:
        if self._done:
            return
        self._done = True
        self._socket.busy = False
        if not self._finished:
            await self._sockets.drop("turn ended early")


class CodexSocketDispatch(DispatchStage):
    """The dispatch stage of a WebSocket turn: websocket-enabled Codex candidates go over the connection's
    upstream socket; every other candidate (and a 426 handshake) goes over HTTP as usual."""

    def __init__(self, sockets: CodexSockets) -> None:
        self.sockets = sockets

    async def run(self, exchange: Exchange) -> None:
        pinned = self.sockets.pinned
        if pinned is not None:
            kept = [c for c in exchange.candidates if c.credential_id == pinned]
            if kept:
                exchange.candidates = kept
            else:  # the model no longer routes to the pinned credential
                self.sockets.pinned = None
        await super().run(exchange)

    async def _attempt(self, exchange: Exchange, candidate: Candidate) -> None:
        credential = candidate.route.credential
        if exchange.count or not exchange.stream or not websockets_enabled(credential):
            await super()._attempt(exchange, candidate)
            return
        try:
            await self._socket_attempt(exchange, candidate)
        except _HttpFallback:
            exchange.log.info("codex websocket upgrade refused with 426; using HTTP", credential=credential.id)
            await super()._attempt(exchange, candidate)

    async def _socket_attempt(self, exchange: Exchange, candidate: Candidate) -> None:
        assert exchange.translation is not None
        provider = candidate.provider
        credential = candidate.route.credential
        body = self._with_thinking(exchange, candidate,
                                   exchange.translation.request_for(provider.protocol, candidate.upstream_model))
        registry = exchange.runtime.registry
        origin = ClientOrigin(exchange.protocol, exchange.translation.body, exchange.client_key,
                              model_overrides=lambda: MODEL_LISTS.text_for(registry),
                              connection_session=exchange.connection_session)
        request = provider.build_request(credential, candidate.upstream_model, body, stream=True,  # type: ignore[call-arg]
                                         client_headers=exchange.request.headers, origin=origin)
        payload: dict[str, Any] = json.loads(request.body)
        url = websocket_url(request.url)
        sockets = self.sockets
        socket = sockets.live()
        reusable = socket is not None and not socket.busy and socket.credential_id == credential.id \
            and socket.url == url
        turn = sockets.turn
        if reusable:
            assert socket is not None
            payload["prompt_cache_key"] = socket.session_id  # one session id per upstream socket
            if turn.delta is not None and turn.continues is not None and turn.continues == socket.last_response_id:
                payload["input"] = list(turn.delta)
                payload["previous_response_id"] = turn.continues
        frame = _frame_text(payload)
        capture = exchange.capture
        if reusable:
            assert socket is not None
            socket.capture = capture
            capture.api_websocket_request(url, handshake_headers(request, exchange.request.headers,
                                                                 socket.session_id), frame, credential)
            try:
                await socket.send_text(frame)
            except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
                exchange.log.info("codex websocket send failed; reconnecting", error=str(exc))
                capture.api_websocket_error("send", str(exc) or type(exc).__name__)
                reusable = False
                payload = json.loads(request.body)
                frame = _frame_text(payload)
        if not reusable:
            session_id = payload.get("prompt_cache_key")
            session_id = session_id if isinstance(session_id, str) else ""
            headers = handshake_headers(request, exchange.request.headers, session_id)
            capture.api_websocket_request(url, headers, frame, credential)
            try:
                socket = await sockets.connect(exchange, credential, url, headers, session_id)
            except UpstreamError as error:
                if error.status == 426:
                    raise _HttpFallback from None
                raise
            try:
                await socket.send_text(frame)
            except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
                capture.api_websocket_error("send", str(exc) or type(exc).__name__, LOST_STATUS)
                await sockets.drop("send failed")
                raise UpstreamError(0, f"codex websocket send failed: {exc!r}".encode()) from None
        assert socket is not None
        try:
            first = await socket.next_frame()
        except UpstreamSocketLost as exc:
            await sockets.drop("closed before the first event")
            raise UpstreamError(0, str(exc).encode()) from None
        failure = _error_of(first, capture)
        if failure is not None:
            await sockets.drop(f"upstream error {failure.status}")
            raise failure
        sockets.pinned = credential.id
        exchange.events = _Relay(sockets, socket, first)


class _HttpFallback(Exception):
    """The upstream refused the upgrade with 426 Upgrade Required: this attempt goes over HTTP."""


async def relay_raw(sockets: CodexSockets, text: str, send: Any) -> dict[str, Any] | None:
    """A client message forwarded untouched on the live socket (`response.steer` between turns) and the
    upstream's frames relayed untouched until a terminal one. Returns the completed response (`{}` when the
    turn ended otherwise); None when there is no socket to send it on."""
    socket = sockets.live()
    if socket is None or socket.busy:
        return None
    socket.busy = True
    finished = False
    try:
        await socket.send_text(text)
        while True:
            frame = await socket.next_frame()
            kind = frame.get("type")
            if kind in ("response.completed", "response.done"):
                response = frame.get("response")
                rid = response.get("id") if isinstance(response, dict) else None
                socket.last_response_id = rid if isinstance(rid, str) else socket.last_response_id
            await send(json.dumps(_normalised(frame), ensure_ascii=False, separators=(",", ":")))
            if kind in _TERMINAL:
                finished = kind not in ("error", "response.failed")
                response = frame.get("response")
                return response if finished and isinstance(response, dict) else {}
    finally:
        socket.busy = False
        if not finished:
            await sockets.drop("steer relay ended early")


def _normalised(frame: dict[str, Any]) -> dict[str, Any]:
    return {**frame, "type": "response.completed"} if frame.get("type") == "response.done" else frame
