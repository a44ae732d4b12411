"""Responses events as WebSocket frames: the pipeline's writer stage for a socket, and the error frames.

Each Responses streaming event goes out as one text frame holding only its JSON payload (no `event:` line,
no `data:` prefix, no `[DONE]`). The writer runs the same response rewriter the SSE path uses (passthrough
for Codex, translation for every other upstream), re-splits its SSE output into events and sends them one
by one, awaiting each send: a slow reader holds the upstream back instead of growing a buffer.

Error frames are `{"type": "error", "status": N, "error": {...}}` (plus `headers` when the error carries
some, e.g. `Retry-After` on a cooldown 429).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from proxyd.http.errors import ErrorFamily, ProxyError, UpstreamError
from proxyd.pipeline.exchange import Exchange
from proxyd.pipeline.stream_rewrite import mid_stream_failure
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.openai_responses import STREAM_CLOSED_MESSAGE
from proxyd.protocols.sse import SSEError, SSEEvent, SSEParser
from proxyd.ws.upstream import UpstreamSocketLost

Send = Callable[[str], Awaitable[None]]

TERMINAL_TYPES = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})
REMEMBERED_TYPES = frozenset({"response.completed", "response.incomplete"})
STREAM_CLOSED = "stream closed before response.completed"

# Responses error-event codes → the HTTP status a WebSocket error frame carries (api-surface §7.6.4, reversed).
_STATUS_BY_CODE = {
    "invalid_api_key": 401,
    "insufficient_quota": 403,
    "model_not_found": 404,
    "request_timeout": 408,
    "rate_limit_exceeded": 429,
    "internal_server_error": 500,
    "server_error": 500,
    "invalid_request_error": 400,
}


def error_frame(status: int, error: Any, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`{"type": "error", "status", "error"[, "headers"]}`; `error` is the error member of an error body."""
    frame: dict[str, Any] = {"type": "error", "status": status or 500, "error": error}
    if headers:
        frame["headers"] = {"Content-Type": "application/json", **headers}
    return frame


def proxy_error_frame(error: ProxyError) -> dict[str, Any]:
    body = error.body(ErrorFamily.OPENAI)
    return error_frame(error.status, body.get("error", body), error.headers)


def response_error_frame(response: web.StreamResponse, upstream: UpstreamError | None) -> dict[str, Any]:
    """An error the pipeline rendered as an HTTP response (an upstream failure before the first event)."""
    raw = response.body if isinstance(response, web.Response) else None
    body: Any = None
    if isinstance(raw, bytes | bytearray):
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
    if isinstance(body, dict) and "error" in body:
        body = body["error"]
    headers = {}
    if upstream is not None and upstream.headers.get("Retry-After"):
        headers["Retry-After"] = upstream.headers["Retry-After"]
    return error_frame(response.status, body, headers)


def mid_stream_frame(protocol: WireProtocol, exc: BaseException) -> dict[str, Any]:
    """The frame for an HTTP upstream stream that failed after its first event, worded as the HTTP stream path
    and the reference word it: a Responses (Codex) upstream's is the 408 of a stream that ended before
    `response.completed`, any other upstream's broken transfer Go's 500 `unexpected EOF` (proxyd's own
    failures, such as an idle timeout, keep their description). The reference drops the socket without a
    frame; proxyd reports the failure (DECISIONS 2), in the reference's error-frame body."""
    if protocol is WireProtocol.OPENAI_RESPONSES:
        return error_frame(408, {"message": STREAM_CLOSED_MESSAGE, "type": "invalid_request_error"})
    failure = mid_stream_failure(exc)
    return proxy_error_frame(failure if isinstance(failure, ProxyError) else failure.to_proxy_error())


def _from_error_event(data: dict[str, Any]) -> dict[str, Any]:
    """A Responses SSE `error` event (`{"type":"error","code","message"}`) → the WebSocket error frame."""
    if "status" in data and "error" in data:
        return data  # already a WebSocket error frame
    code = data.get("code")
    status = _STATUS_BY_CODE.get(code, 500) if isinstance(code, str) else 500
    error: dict[str, Any] = {"message": data.get("message", ""),
                             "type": "server_error" if status >= 500 else "invalid_request_error"}
    if code:
        error["code"] = code
    return error_frame(status, error)


class WebSocketWriterStage:
    """Stands in for the stream-rewrite stage: sends each rewritten event as one text frame via `send`.

    After the run, `final` holds the `response` object of the turn's `response.completed` (or
    `response.incomplete`), `terminal` tells whether any terminal event was sent, `lost` whether the
    upstream WebSocket went away mid-turn (then no error frame is sent: the connection is dropped),
    `error_frame` the error frame the turn ended with, if any.
    """

    name = "stream-rewrite"

    def __init__(self, send: Send) -> None:
        self._send = send
        self._parser = SSEParser()
        self.final: dict[str, Any] | None = None
        self.terminal = False
        self.lost = False  # the upstream socket went away mid-turn (nothing more is sent)
        self.error_frame: dict[str, Any] | None = None
        self.frames = 0

    async def run(self, exchange: Exchange) -> None:
        assert exchange.translation is not None and exchange.chosen is not None
        rewriter = exchange.translation.rewriter_for(exchange.chosen.provider.protocol)
        exchange.response = web.Response(status=200)  # nothing goes over HTTP; the status is for records
        try:
            if exchange.events is not None:
                try:
                    async for event in exchange.events:
                        await self._emit(self._parser.feed(rewriter.event(event)))
                        if self.terminal:
                            break
                except UpstreamSocketLost as exc:
                    # the reference closes the client connection without a frame (Codex CLI reconnects and resends)
                    exchange.log.warning("upstream websocket lost mid-turn", error=str(exc))
                    exchange.failed_mid_stream = True
                    self.lost = True
                    return
                except (aiohttp.ClientError, SSEError, TimeoutError, ValueError) as exc:
                    exchange.log.warning("upstream stream failed mid-way", error=str(exc))
                    exchange.failed_mid_stream = True
                    await self._frame(mid_stream_frame(exchange.chosen.provider.protocol, exc))
                    return
            if not self.terminal:
                await self._emit([*self._parser.feed(rewriter.done()), *self._parser.close()])
            if not self.terminal:
                exchange.failed_mid_stream = True
                await self._frame(error_frame(408, {"message": STREAM_CLOSED, "type": "invalid_request_error"}))
        finally:
            exchange.usage = rewriter.usage

    async def _emit(self, events: list[SSEEvent]) -> None:
        for event in events:
            if self.terminal:
                return
            text = event.data.decode("utf-8", "replace")
            try:
                data = json.loads(text)
            except ValueError:
                continue  # `[DONE]` and other non-JSON lines have no frame
            if not isinstance(data, dict):
                continue
            kind = data.get("type")
            if kind == "error" or event.event == "error":
                await self._frame(_from_error_event(data))
                self.terminal = True
                return
            await self._send(text)
            self.frames += 1
            if kind in TERMINAL_TYPES:
                self.terminal = True
                response = data.get("response")
                if kind in REMEMBERED_TYPES and isinstance(response, dict):
                    self.final = response

    async def _frame(self, frame: dict[str, Any]) -> None:
        self.error_frame = frame
        await self._send(json.dumps(frame, ensure_ascii=False, separators=(",", ":")))
        self.frames += 1
        self.terminal = True
