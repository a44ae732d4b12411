"""A scriptable fake Anthropic upstream speaking the real Messages API wire format.

Usage::

    async with FakeClaudeUpstream() as up:
        up.reply_text = "Hello from fake"
        client = anthropic.AsyncAnthropic(base_url=up.base_url, api_key="sk-ant-test", max_retries=0)
        ...
        assert up.last.json["model"] == "claude-sonnet-4-5-20250929"

Endpoints (any query string is accepted, e.g. the proxy's ``?beta=true``):

* ``POST /v1/messages`` — a Messages JSON object, or with ``"stream": true`` the SSE sequence
  ``message_start``, ``ping``, per content block ``content_block_start`` /
  ``content_block_delta``… / ``content_block_stop``, ``message_delta``, ``message_stop``; each
  event framed as ``event: <type>\\ndata: <json>\\n\\n`` and written one by one.
* ``POST /v1/messages/count_tokens`` — ``{"input_tokens": N}`` where N is
  :func:`estimate_input_tokens` of the request (``ceil(characters / 4)``, at least 1) unless
  ``count_tokens_result`` is set.
* ``GET /v1/models`` — Anthropic's list shape (``data``, ``has_more``, ``first_id``, ``last_id``).

Errors use Anthropic's body ``{"type": "error", "error": {"type", "message"}, "request_id"}``
and every response carries a ``request-id`` header, as the real API does.
"""

from __future__ import annotations

import asyncio
import collections
import gzip
import json as jsonlib
import math
import secrets
import socket
import string
import time
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from .openai_upstream import RecordedRequest, split_text

__all__ = [
    "CLAUDE_ERROR_TYPES",
    "ClaudeRecordedRequest",
    "ClaudeToolUseSpec",
    "FakeClaudeUpstream",
    "anthropic_error",
    "encode_event",
    "estimate_input_tokens",
]

ClaudeToolUseSpec = dict[str, Any]
"""A scripted tool call: ``{"name": str, "input": dict | str (JSON), "id": str (optional)}``."""

CLAUDE_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
"""Anthropic's ``error.type`` for each HTTP status it documents."""

_DEFAULT_MESSAGES: dict[str, str] = {
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found",
    "timeout_error": "Request timed out",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "api_error": "Internal server error",
    "overloaded_error": "Overloaded",
}

_POLL = 0.01  # seconds between disconnect checks while the fake waits
_ALNUM = string.ascii_letters + string.digits


def _rand_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def _request_id() -> str:
    return _rand_id("req_", 24)


def anthropic_error(message: str | None = None, type: str = "invalid_request_error") -> dict[str, Any]:
    """Build an Anthropic error body ``{"type": "error", "error": {"type", "message"}, "request_id"}``."""
    return {
        "type": "error",
        "error": {"type": type, "message": message or _DEFAULT_MESSAGES.get(type, "Error")},
        "request_id": _request_id(),
    }


def encode_event(event: str, payload: Any) -> bytes:
    """Encode one named SSE event: ``event: <event>\\ndata: <compact json>\\n\\n``."""
    text = payload if isinstance(payload, str) else jsonlib.dumps(payload, separators=(",", ":"))
    return f"event: {event}\ndata: {text}\n\n".encode()


def _content_text(content: Any) -> str:
    """Text of a message ``content`` (a string or a list of blocks) for token estimation."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict):
            kind = block.get("type")
            if kind == "text":
                parts.append(str(block.get("text", "")))
            elif kind == "thinking":
                parts.append(str(block.get("thinking", "")))
            elif kind == "tool_use":
                parts.append(str(block.get("name", "")))
                parts.append(jsonlib.dumps(block.get("input", {}), separators=(",", ":")))
            elif kind == "tool_result":
                parts.append(_content_text(block.get("content", "")))
    return "".join(parts)


def estimate_input_tokens(body: Any) -> int:
    """The fake's token count for a Messages request body: ``max(1, ceil(chars / 4))``.

    ``chars`` is the total length of: the ``system`` prompt (string, or the ``text`` of its
    blocks); every message's content (strings; ``text``/``thinking`` of blocks; tool_use
    ``name`` + compact JSON ``input``; tool_result content, recursively); and every tool's
    ``name`` + ``description`` + compact JSON ``input_schema``. Images and documents count 0.
    """
    if not isinstance(body, dict):
        return 1
    chars = len(_content_text(body.get("system", "")))
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            chars += len(_content_text(message.get("content", "")))
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            chars += len(str(tool.get("name", ""))) + len(str(tool.get("description", "")))
            if "input_schema" in tool:
                chars += len(jsonlib.dumps(tool["input_schema"], separators=(",", ":")))
    return max(1, math.ceil(chars / 4))


@dataclass(slots=True)
class ClaudeRecordedRequest(RecordedRequest):
    """One request as the fake received it, with Anthropic-specific header accessors."""

    @property
    def x_api_key(self) -> str | None:
        """The ``x-api-key`` header, or None."""
        return self.headers.get("x-api-key") or None

    @property
    def api_key(self) -> str | None:
        """The key the client authenticated with: ``x-api-key``, else ``Authorization: Bearer``."""
        return self.x_api_key or self.bearer

    @property
    def auth_scheme(self) -> Literal["x-api-key", "bearer"] | None:
        """Which credential header carried the key (``x-api-key`` wins when both are present)."""
        if self.x_api_key:
            return "x-api-key"
        if self.bearer:
            return "bearer"
        return None

    @property
    def anthropic_version(self) -> str | None:
        """The ``anthropic-version`` header, or None."""
        return self.headers.get("anthropic-version")

    @property
    def anthropic_beta(self) -> list[str]:
        """The ``anthropic-beta`` values (comma-separated and repeated headers), in order."""
        values: list[str] = []
        for raw in self.headers.getall("anthropic-beta", []):
            values += [v.strip() for v in raw.split(",") if v.strip()]
        return values


@dataclass(slots=True)
class _Error:
    status: int
    body: dict[str, Any] | str
    headers: dict[str, str]


@dataclass(slots=True)
class _StreamFailure:
    after_events: int
    mode: Literal["close", "event"]
    body: dict[str, Any] | None = None


@dataclass(slots=True)
class _Reply:
    text: str | None
    thinking: str | tuple[str, str] | None
    tool_calls: list[ClaudeToolUseSpec] | None
    stop_reason: str | None


_Action = _Error | _StreamFailure | _Reply


class _ClientGone(Exception):
    """The client closed the connection before the response finished."""


class _Stopping(Exception):
    """The fake is shutting down."""


@dataclass
class _Generation:
    """What one Messages request should produce."""

    text: str
    thinking: tuple[str, str] | None
    tool_calls: list[dict[str, Any]]
    stop_reason: str
    failure: _StreamFailure | None = None


class FakeClaudeUpstream:
    """Fake Anthropic Messages API server on 127.0.0.1 with a random free port.

    Scripting attributes may be changed at any time, including while the server runs.
    """

    def __init__(
        self,
        *,
        reply_text: str = "Hello from fake",
        models: list[str] | None = None,
        chunk_count: int = 3,
        chunk_delay: float = 0.0,
    ) -> None:
        self.reply_text: str = reply_text
        self.chunk_count: int = chunk_count
        self.chunk_delay: float = chunk_delay
        self.models: list[str] = (
            list(models)
            if models is not None
            else ["claude-sonnet-4-5-20250929", "claude-opus-4-1-20250805", "claude-3-5-haiku-20241022"]
        )
        self.expected_keys: set[str] | None = None
        self.require_version: bool = True
        self.reply_thinking: str | tuple[str, str] | None = None
        self.reply_tool_calls: list[ClaudeToolUseSpec] | None = None
        self.tool_args_pieces: int = 3
        self.stop_reason: str | None = None
        self.response_model: str | None = None
        self.reject_unknown_models: bool = False
        self.input_tokens: int = 12
        self.output_tokens: int = 8
        self.cache_creation_input_tokens: int = 0
        self.cache_read_input_tokens: int = 0
        self.count_tokens_result: int | None = None
        self.gzip_responses: bool = False
        self.gzip_omit_header: bool = False
        self.response_headers: dict[str, str] = {}
        self.hang_before_headers: bool = False
        self.hang_seconds: float | None = None

        self.requests: list[ClaudeRecordedRequest] = []
        self.disconnects: int = 0
        self.client_disconnected: asyncio.Event = asyncio.Event()
        self.completed_streams: int = 0

        self._script: collections.deque[_Action] = collections.deque()
        self._release = asyncio.Event()
        self._stopping = asyncio.Event()
        self._request_seen = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        """The bound TCP port (only valid while started)."""
        if self._port is None:
            raise RuntimeError("FakeClaudeUpstream is not started")
        return self._port

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no ``/v1``): the value for a claude-api-key base-url and for the SDK."""
        return self.origin

    async def start(self) -> None:
        """Bind and start serving."""
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()

    async def stop(self) -> None:
        """Stop serving; hung or sleeping handlers are released first."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeClaudeUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------- scripting

    def enqueue_error(
        self,
        status: int,
        body: dict[str, Any] | str | None = None,
        headers: dict[str, str] | None = None,
        *,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests with this error.

        ``body`` dict → JSON, str → text/plain; None → :func:`anthropic_error` with the type
        Anthropic uses for ``status`` (400 invalid_request_error, 401 authentication_error,
        429 rate_limit_error, 500 api_error, 529 overloaded_error, …).
        """
        for _ in range(times):
            payload = body if body is not None else anthropic_error(type=CLAUDE_ERROR_TYPES.get(status, "api_error"))
            self._script.append(_Error(status, payload, dict(headers or {})))

    def enqueue_stream_failure(self, after_events: int, *, times: int = 1) -> None:
        """Break the connection after ``after_events`` SSE events of the next stream(s).

        A non-streaming request consuming this is answered by closing the connection
        without any response.
        """
        for _ in range(times):
            self._script.append(_StreamFailure(after_events, "close"))

    def enqueue_stream_error_event(self, after_events: int, body: dict[str, Any] | None = None) -> None:
        """After ``after_events`` events send ``event: error`` with an Anthropic error body and end the stream.

        The default body is an ``overloaded_error`` (what the real API sends mid-stream).
        A non-streaming request consuming this gets the same body with status 529.
        """
        self._script.append(_StreamFailure(after_events, "event", body or anthropic_error(type="overloaded_error")))

    def enqueue_reply(
        self,
        text: str | None = None,
        *,
        thinking: str | tuple[str, str] | None = None,
        tool_calls: list[ClaudeToolUseSpec] | None = None,
        stop_reason: str | None = None,
    ) -> None:
        """Override the reply for the next request only (unset values fall back to the attributes)."""
        self._script.append(_Reply(text, thinking, tool_calls, stop_reason))

    def release_hang(self) -> None:
        """Let requests held by ``hang_before_headers`` continue normally."""
        self._release.set()

    def reset(self) -> None:
        """Clear recorded requests, disconnect state and pending scripted actions."""
        self.requests.clear()
        self._script.clear()
        self.disconnects = 0
        self.completed_streams = 0
        self.client_disconnected.clear()
        self._release.clear()

    @property
    def pending_actions(self) -> int:
        """How many scripted actions are still queued."""
        return len(self._script)

    @property
    def last(self) -> ClaudeRecordedRequest:
        """The most recent request."""
        if not self.requests:
            raise LookupError("FakeClaudeUpstream received no requests")
        return self.requests[-1]

    async def wait_for_requests(self, count: int = 1, within: float = 2.0) -> list[ClaudeRecordedRequest]:
        """Wait up to ``within`` seconds until at least ``count`` requests were recorded."""
        async with asyncio.timeout(within), self._request_seen:
            await self._request_seen.wait_for(lambda: len(self.requests) >= count)
        return self.requests

    # ----------------------------------------------------------------- plumbing

    async def _record(self, request: web.Request) -> ClaudeRecordedRequest:
        body = await request.read()
        parsed: Any = None
        if body:
            try:
                parsed = jsonlib.loads(body)
            except ValueError:
                parsed = None
        rec = ClaudeRecordedRequest(
            method=request.method,
            path=request.path,
            query=MultiDictProxy(MultiDict(request.query)),
            headers=CIMultiDictProxy(CIMultiDict(request.headers)),
            body=body,
            json=parsed,
            time=time.time(),
        )
        self.requests.append(rec)
        async with self._request_seen:
            self._request_seen.notify_all()
        return rec

    def _client_gone(self) -> None:
        self.disconnects += 1
        self.client_disconnected.set()

    @staticmethod
    def _is_gone(request: web.Request) -> bool:
        transport = request.transport
        return transport is None or transport.is_closing()

    async def _pause(
        self, request: web.Request, seconds: float | None, *, until_release: bool = False
    ) -> None:
        """Sleep while watching for client disconnect and shutdown."""
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        while True:
            if self._is_gone(request):
                raise _ClientGone
            if self._stopping.is_set():
                raise _Stopping
            if until_release and self._release.is_set():
                return
            remaining = _POLL if deadline is None else deadline - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(_POLL, remaining))

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
        """A JSON response; gzip-encoded when ``gzip_responses`` is set."""
        hdrs = {"request-id": _request_id(), **self.response_headers, **(headers or {})}
        raw = jsonlib.dumps(body).encode()
        if self.gzip_responses:
            raw = gzip.compress(raw)
            if not self.gzip_omit_header:
                hdrs["Content-Encoding"] = "gzip"
        return web.Response(status=status, body=raw, headers=hdrs, content_type="application/json")

    def _error(self, status: int, type: str, message: str) -> web.Response:
        return self._json(status, anthropic_error(message, type))

    def _error_response(self, err: _Error) -> web.Response:
        if isinstance(err.body, str):
            headers = {"request-id": _request_id(), "Content-Type": "text/plain; charset=utf-8", **err.headers}
            return web.Response(status=err.status, text=err.body, headers=headers)
        return self._json(err.status, err.body, err.headers)

    def _check_headers(self, rec: ClaudeRecordedRequest) -> web.Response | None:
        """Authenticate (``x-api-key`` or Bearer) and require ``anthropic-version``."""
        if self.expected_keys is not None:
            key = rec.api_key
            if key is None:
                return self._error(401, "authentication_error", "x-api-key header is required")
            if key not in self.expected_keys:
                return self._error(401, "authentication_error", "invalid x-api-key")
        if self.require_version and not rec.anthropic_version:
            return self._error(400, "invalid_request_error", "anthropic-version: header is required")
        return None

    async def _preamble(
        self, request: web.Request
    ) -> tuple[ClaudeRecordedRequest, web.StreamResponse | _Action | None]:
        """Record, hang, check headers and pop the script; returns a ready response or an action."""
        rec = await self._record(request)
        if self.hang_before_headers:
            try:
                await self._pause(request, self.hang_seconds, until_release=True)
            except _ClientGone:
                self._client_gone()
                return rec, web.Response(status=499)
            except _Stopping:
                return rec, web.Response(status=503)
        denied = self._check_headers(rec)
        if denied is not None:
            return rec, denied
        action = self._script.popleft() if self._script else None
        if isinstance(action, _Error):
            return rec, self._error_response(action)
        return rec, action

    def _validate_body(self, rec: ClaudeRecordedRequest) -> web.Response | None:
        if not isinstance(rec.json, dict):
            return self._error(400, "invalid_request_error", "There was an error parsing the body of your request")
        model = rec.json.get("model")
        if not model:
            return self._error(400, "invalid_request_error", "model: Field required")
        if not isinstance(rec.json.get("messages"), list):
            return self._error(400, "invalid_request_error", "messages: Field required")
        if self.reject_unknown_models and model not in self.models:
            return self._error(404, "not_found_error", f"model: {model}")
        return None

    def _generation(self, action: Any) -> _Generation:
        text, thinking = self.reply_text, self.reply_thinking
        tools, stop = self.reply_tool_calls, self.stop_reason
        failure = None
        if isinstance(action, _Reply):
            text = action.text if action.text is not None else text
            thinking = action.thinking if action.thinking is not None else thinking
            tools = action.tool_calls if action.tool_calls is not None else tools
            stop = action.stop_reason or stop
        elif isinstance(action, _StreamFailure):
            failure = action
        tool_calls = [self._normalize_tool(t) for t in tools or []]
        if isinstance(thinking, str):
            thinking = (thinking, _rand_id("Eq", 64))
        return _Generation(
            text=text,
            thinking=thinking,
            tool_calls=tool_calls,
            stop_reason=stop or ("tool_use" if tool_calls else "end_turn"),
            failure=failure,
        )

    @staticmethod
    def _normalize_tool(spec: ClaudeToolUseSpec) -> dict[str, Any]:
        raw = spec.get("input", spec.get("arguments", {}))
        parsed = jsonlib.loads(raw) if isinstance(raw, str) else raw
        return {
            "id": spec.get("id") or _rand_id("toolu_01"),
            "name": spec["name"],
            "input": parsed,
            "json": jsonlib.dumps(parsed, separators=(",", ":")),
        }

    def _usage(self, output_tokens: int | None = None) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "output_tokens": self.output_tokens if output_tokens is None else output_tokens,
            "service_tier": "standard",
        }

    @staticmethod
    def _show_text(gen: _Generation) -> bool:
        return bool(gen.text) or not gen.tool_calls

    async def _stream(
        self, request: web.Request, events: list[tuple[str, dict[str, Any]]], failure: _StreamFailure | None
    ) -> web.StreamResponse:
        """Write named SSE events one by one, draining each, and detect client disconnects."""
        headers = {
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "Connection": "keep-alive",
            "request-id": _request_id(),
            **self.response_headers,
        }
        resp = web.StreamResponse(status=200, headers=headers)
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
            payloads = [encode_event(name, data) for name, data in events]
            for i, data in enumerate(payloads):
                if failure is not None and i == failure.after_events:
                    if failure.mode == "event":
                        await self._write(request, resp, encode_event("error", failure.body))
                        await resp.write_eof()
                    else:
                        await self._drain(request)
                        if request.transport is not None:
                            request.transport.close()
                    return resp
                if i and self.chunk_delay > 0:
                    await self._pause(request, self.chunk_delay)
                await self._write(request, resp, data)
        except _ClientGone:
            self._client_gone()
            return resp
        except _Stopping:
            if request.transport is not None:
                request.transport.close()
            return resp
        self.completed_streams += 1
        return resp

    async def _write(self, request: web.Request, resp: web.StreamResponse, data: bytes) -> None:
        if self._is_gone(request):
            raise _ClientGone
        try:
            await resp.write(data)
            await self._drain(request)
        except (ConnectionError, RuntimeError) as exc:
            raise _ClientGone from exc

    @staticmethod
    async def _drain(request: web.Request) -> None:
        try:
            await request.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise _ClientGone from exc

    @staticmethod
    def _abort(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)

    def _stream_events(self, gen: _Generation, message_id: str, model: str) -> list[tuple[str, dict[str, Any]]]:
        """The full SSE event list of one streamed message."""
        events: list[tuple[str, dict[str, Any]]] = [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": message_id,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": self._usage(output_tokens=1),
                    },
                },
            ),
            ("ping", {"type": "ping"}),
        ]
        index = 0

        def block(start: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
            nonlocal index
            opening = {"type": "content_block_start", "index": index, "content_block": start}
            events.append(("content_block_start", opening))
            events.extend(
                ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas
            )
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
            index += 1

        if gen.thinking is not None:
            thought, signature = gen.thinking
            deltas = [{"type": "thinking_delta", "thinking": p} for p in split_text(thought, self.chunk_count)]
            deltas.append({"type": "signature_delta", "signature": signature})
            block({"type": "thinking", "thinking": "", "signature": ""}, deltas)
        if self._show_text(gen):
            deltas = [{"type": "text_delta", "text": p} for p in split_text(gen.text, self.chunk_count)]
            block({"type": "text", "text": ""}, deltas)
        for tool in gen.tool_calls:
            pieces = ["", *split_text(tool["json"], self.tool_args_pieces)]
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
            block({"type": "tool_use", "id": tool["id"], "name": tool["name"], "input": {}}, deltas)
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": gen.stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": self.output_tokens},
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    # ----------------------------------------------------------------- endpoints

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        rec, early = await self._preamble(request)
        if isinstance(early, web.StreamResponse):
            return early
        invalid = self._validate_body(rec)
        if invalid is not None:
            return invalid
        body: dict[str, Any] = rec.json
        gen = self._generation(early)
        model = self.response_model or body["model"]
        message_id = _rand_id("msg_01")

        if body.get("stream"):
            return await self._stream(request, self._stream_events(gen, message_id, model), gen.failure)

        if gen.failure is not None:
            if gen.failure.mode == "event" and gen.failure.body is not None:
                return self._json(529, gen.failure.body)
            return self._abort(request)
        content: list[dict[str, Any]] = []
        if gen.thinking is not None:
            content.append({"type": "thinking", "thinking": gen.thinking[0], "signature": gen.thinking[1]})
        if self._show_text(gen):
            content.append({"type": "text", "text": gen.text})
        content += [{"type": "tool_use", "id": t["id"], "name": t["name"], "input": t["input"]} for t in gen.tool_calls]
        return self._json(
            200,
            {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": gen.stop_reason,
                "stop_sequence": None,
                "usage": self._usage(),
            },
        )

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        rec, early = await self._preamble(request)
        if isinstance(early, web.StreamResponse):
            return early
        if isinstance(early, _StreamFailure):
            return self._abort(request)
        invalid = self._validate_body(rec)
        if invalid is not None:
            return invalid
        count = self.count_tokens_result if self.count_tokens_result is not None else estimate_input_tokens(rec.json)
        return self._json(200, {"input_tokens": count})

    async def _models(self, request: web.Request) -> web.StreamResponse:
        _, early = await self._preamble(request)
        if isinstance(early, web.StreamResponse):
            return early
        if isinstance(early, _StreamFailure):
            return self._abort(request)
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-02-19T00:00:00Z"} for m in self.models
        ]
        return self._json(
            200,
            {
                "data": data,
                "has_more": False,
                "first_id": self.models[0] if self.models else None,
                "last_id": self.models[-1] if self.models else None,
            },
        )

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return self._error(404, "not_found_error", "Not Found")
