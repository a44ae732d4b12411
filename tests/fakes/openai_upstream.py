"""A scriptable fake OpenAI-compatible upstream speaking the real Chat Completions wire format.

Usage::

    async with FakeOpenAIUpstream() as up:
        up.reply_text = "Hello from fake"
        client = openai.AsyncOpenAI(base_url=up.base_url, api_key="sk-test")
        ...
        assert up.last.json["model"] == "gpt-4o-mini"
"""

from __future__ import annotations

import asyncio
import collections
import json as jsonlib
import math
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from .sse import DONE, encode_data

__all__ = [
    "FakeOpenAIUpstream",
    "RecordedRequest",
    "ToolCallSpec",
    "openai_error",
    "split_text",
]

ToolCallSpec = dict[str, Any]
"""A scripted tool call: ``{"name": str, "arguments": str | dict, "id": str (optional)}``."""

_POLL = 0.01  # seconds between disconnect checks while the fake waits


def openai_error(
    message: str,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """Build an OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def split_text(text: str, parts: int) -> list[str]:
    """Split ``text`` into at most ``parts`` contiguous non-empty pieces of near-equal length."""
    if not text:
        return []
    parts = max(1, min(parts, len(text)))
    size = math.ceil(len(text) / parts)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _mask_key(key: str) -> str:
    if len(key) <= 8:
        return key[:1] + "*" * max(0, len(key) - 1)
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


@dataclass(slots=True)
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    query: MultiDictProxy[str]
    headers: CIMultiDictProxy[str]
    body: bytes
    json: Any
    time: float

    @property
    def bearer(self) -> str | None:
        """The key from ``Authorization: Bearer <key>``, or None."""
        auth = self.headers.get("Authorization", "")
        scheme, _, key = auth.partition(" ")
        return key.strip() if scheme.lower() == "bearer" and key.strip() else None

    @property
    def stream(self) -> bool:
        """True if the JSON body asked for a stream."""
        return isinstance(self.json, dict) and bool(self.json.get("stream"))


@dataclass(slots=True)
class _Error:
    status: int
    body: dict[str, Any] | str
    headers: dict[str, str]


@dataclass(slots=True)
class _StreamFailure:
    after_chunks: int
    mode: Literal["close", "event"]
    body: dict[str, Any] | None = None


@dataclass(slots=True)
class _Reply:
    text: str | None
    tool_calls: list[ToolCallSpec] | None
    finish_reason: str | None


_Action = _Error | _StreamFailure | _Reply


class _ClientGone(Exception):
    """The client closed the connection before the response finished."""


class _Stopping(Exception):
    """The fake is shutting down."""


@dataclass
class _Generation:
    """What one completion request should produce."""

    text: str
    tool_calls: list[ToolCallSpec]
    finish_reason: str
    failure: _StreamFailure | None = None


class FakeOpenAIUpstream:
    """Fake OpenAI-compatible HTTP server on 127.0.0.1 with a random free port.

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
        self.models: list[str] = list(models) if models is not None else ["gpt-4o-mini", "gpt-4o"]
        self.expected_keys: set[str] | None = None
        self.reply_tool_calls: list[ToolCallSpec] | None = None
        self.tool_args_pieces: int = 3
        self.finish_reason: str | None = None
        self.response_model: str | None = None
        self.reject_unknown_models: bool = False
        self.prompt_tokens: int = 12
        self.completion_tokens: int = 8
        self.response_headers: dict[str, str] = {}
        self.hang_before_headers: bool = False
        self.hang_seconds: float | None = None

        self.requests: list[RecordedRequest] = []
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
            raise RuntimeError("FakeOpenAIUpstream is not started")
        return self._port

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT`` without the ``/v1`` suffix."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, the value for a provider's base-url."""
        return f"{self.origin}/v1"

    async def start(self) -> None:
        """Bind and start serving."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
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

    async def __aenter__(self) -> FakeOpenAIUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------- scripting

    def enqueue_error(
        self,
        status: int,
        body: dict[str, Any] | str,
        headers: dict[str, str] | None = None,
        *,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests with this error (dict → JSON, str → text/plain)."""
        for _ in range(times):
            self._script.append(_Error(status, body, dict(headers or {})))

    def enqueue_stream_failure(self, after_chunks: int, *, times: int = 1) -> None:
        """Break the connection after ``after_chunks`` SSE events of the next stream(s).

        A non-streaming request consuming this is answered by closing the connection
        without any response.
        """
        for _ in range(times):
            self._script.append(_StreamFailure(after_chunks, "close"))

    def enqueue_stream_error_event(self, after_chunks: int, body: dict[str, Any] | None = None) -> None:
        """After ``after_chunks`` events send ``data: {"error": ...}`` and end the stream (no [DONE])."""
        body = body or openai_error("The server had an error processing your request.", "server_error")
        self._script.append(_StreamFailure(after_chunks, "event", body))

    def enqueue_reply(
        self,
        text: str | None = None,
        *,
        tool_calls: list[ToolCallSpec] | None = None,
        finish_reason: str | None = None,
    ) -> None:
        """Override the reply for the next request only (unset values fall back to the attributes)."""
        self._script.append(_Reply(text, tool_calls, finish_reason))

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
    def last(self) -> RecordedRequest:
        """The most recent request."""
        if not self.requests:
            raise LookupError("FakeOpenAIUpstream received no requests")
        return self.requests[-1]

    async def wait_for_requests(self, count: int = 1, within: float = 2.0) -> list[RecordedRequest]:
        """Wait up to ``within`` seconds until at least ``count`` requests were recorded."""
        async with asyncio.timeout(within), self._request_seen:
            await self._request_seen.wait_for(lambda: len(self.requests) >= count)
        return self.requests

    # ----------------------------------------------------------------- plumbing

    async def _record(self, request: web.Request) -> RecordedRequest:
        body = await request.read()
        parsed: Any = None
        if body:
            try:
                parsed = jsonlib.loads(body)
            except ValueError:
                parsed = None
        rec = RecordedRequest(
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
        hdrs = {"x-request-id": f"req_{secrets.token_hex(16)}", **self.response_headers, **(headers or {})}
        return web.json_response(body, status=status, headers=hdrs)

    def _error_response(self, err: _Error) -> web.Response:
        if isinstance(err.body, str):
            headers = {"Content-Type": "text/plain; charset=utf-8", **err.headers}
            return web.Response(status=err.status, text=err.body, headers=headers)
        return self._json(err.status, err.body, err.headers)

    def _check_auth(self, rec: RecordedRequest) -> web.Response | None:
        if self.expected_keys is None:
            return None
        key = rec.bearer
        if key is None:
            return self._json(
                401,
                openai_error(
                    "You didn't provide an API key. You need to provide your API key in an Authorization "
                    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password "
                    "field (with blank username) if you're accessing the API from your browser and are "
                    "prompted for a username and password. You can obtain an API key from "
                    "https://platform.openai.com/account/api-keys."
                ),
            )
        if key not in self.expected_keys:
            return self._json(
                401,
                openai_error(
                    f"Incorrect API key provided: {_mask_key(key)}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    code="invalid_api_key",
                ),
            )
        return None

    async def _preamble(
        self, request: web.Request
    ) -> tuple[RecordedRequest, web.StreamResponse | _Action | None]:
        """Record, hang, authenticate and pop the script; returns a ready response or an action."""
        rec = await self._record(request)
        if self.hang_before_headers:
            try:
                await self._pause(request, self.hang_seconds, until_release=True)
            except _ClientGone:
                self._client_gone()
                return rec, web.Response(status=499)
            except _Stopping:
                return rec, web.Response(status=503)
        denied = self._check_auth(rec)
        if denied is not None:
            return rec, denied
        action = self._script.popleft() if self._script else None
        if isinstance(action, _Error):
            return rec, self._error_response(action)
        return rec, action

    def _validate_body(self, rec: RecordedRequest) -> web.Response | None:
        if not isinstance(rec.json, dict):
            return self._json(
                400,
                openai_error(
                    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
                    "sent was not valid JSON. If you have trouble figuring out how to fix this, please "
                    "contact us through our help center at help.openai.com.)"
                ),
            )
        model = rec.json.get("model")
        if not model:
            return self._json(400, openai_error("you must provide a model parameter"))
        if self.reject_unknown_models and model not in self.models:
            return self._json(
                404,
                openai_error(
                    f"The model `{model}` does not exist or you do not have access to it.",
                    code="model_not_found",
                ),
            )
        return None

    def _generation(self, action: Any) -> _Generation:
        text, tools, finish = self.reply_text, self.reply_tool_calls, self.finish_reason
        failure = None
        if isinstance(action, _Reply):
            text = action.text if action.text is not None else text
            tools = action.tool_calls if action.tool_calls is not None else tools
            finish = action.finish_reason or finish
        elif isinstance(action, _StreamFailure):
            failure = action
        tool_calls = [self._normalize_tool(t) for t in tools or []]
        return _Generation(
            text=text,
            tool_calls=tool_calls,
            finish_reason=finish or ("tool_calls" if tool_calls else "stop"),
            failure=failure,
        )

    @staticmethod
    def _normalize_tool(spec: ToolCallSpec) -> ToolCallSpec:
        args = spec.get("arguments", "{}")
        if not isinstance(args, str):
            args = jsonlib.dumps(args, separators=(",", ":"))
        call_id = spec.get("id") or f"call_{secrets.token_hex(12)}"
        return {"id": call_id, "name": spec["name"], "arguments": args}

    def _usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    async def _stream(
        self, request: web.Request, events: list[dict[str, Any]], failure: _StreamFailure | None
    ) -> web.StreamResponse:
        """Write SSE events one by one, draining each, and detect client disconnects."""
        headers = {
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "Connection": "keep-alive",
            "x-request-id": f"req_{secrets.token_hex(16)}",
            **self.response_headers,
        }
        resp = web.StreamResponse(status=200, headers=headers)
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
            payloads: list[bytes] = [encode_data(e) for e in events] + [encode_data(DONE)]
            for i, data in enumerate(payloads):
                if failure is not None and i == failure.after_chunks:
                    if failure.mode == "event":
                        await self._write(request, resp, encode_data(failure.body))
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
    def _include_usage(body: dict[str, Any]) -> bool:
        opts = body.get("stream_options")
        return isinstance(opts, dict) and bool(opts.get("include_usage"))

    @staticmethod
    def _abort(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)

    # ----------------------------------------------------------------- endpoints

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        rec, early = await self._preamble(request)
        if isinstance(early, web.StreamResponse):
            return early
        invalid = self._validate_body(rec)
        if invalid is not None:
            return invalid
        body: dict[str, Any] = rec.json
        gen = self._generation(early)
        model = self.response_model or body["model"]
        cid = f"chatcmpl-{secrets.token_urlsafe(21).replace('-', 'x').replace('_', 'y')}"
        created = int(time.time())
        fingerprint = "fp_fake0001"

        if not body.get("stream"):
            if gen.failure is not None:
                return self._abort(request)
            message: dict[str, Any] = {
                "role": "assistant",
                "content": gen.text if (gen.text or not gen.tool_calls) else None,
                "refusal": None,
                "annotations": [],
            }
            if gen.tool_calls:
                message["tool_calls"] = [
                    {
                        "id": t["id"],
                        "type": "function",
                        "function": {"name": t["name"], "arguments": t["arguments"]},
                    }
                    for t in gen.tool_calls
                ]
            return self._json(
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {"index": 0, "message": message, "logprobs": None, "finish_reason": gen.finish_reason}
                    ],
                    "usage": self._usage(),
                    "service_tier": "default",
                    "system_fingerprint": fingerprint,
                },
            )

        include_usage = self._include_usage(body)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": fingerprint,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                out["usage"] = None
            return out

        first_content: str | None = "" if (gen.text or not gen.tool_calls) else None
        events = [chunk({"role": "assistant", "content": first_content, "refusal": None})]
        events += [chunk({"content": piece}) for piece in split_text(gen.text, self.chunk_count)]
        for index, tool in enumerate(gen.tool_calls):
            events.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": tool["id"],
                                "type": "function",
                                "function": {"name": tool["name"], "arguments": ""},
                            }
                        ]
                    }
                )
            )
            for piece in split_text(tool["arguments"], self.tool_args_pieces):
                events.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
        events.append(chunk({}, gen.finish_reason))
        if include_usage:
            final = chunk({})
            final["choices"] = []
            final["usage"] = self._usage()
            events.append(final)
        return await self._stream(request, events, gen.failure)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        rec, early = await self._preamble(request)
        if isinstance(early, web.StreamResponse):
            return early
        invalid = self._validate_body(rec)
        if invalid is not None:
            return invalid
        body: dict[str, Any] = rec.json
        gen = self._generation(early)
        model = self.response_model or body["model"]
        cid = f"cmpl-{secrets.token_urlsafe(21).replace('-', 'x').replace('_', 'y')}"
        created = int(time.time())
        finish = "stop" if gen.finish_reason == "tool_calls" else gen.finish_reason

        def obj(text: str, finish_reason: str | None) -> dict[str, Any]:
            return {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake0001",
                "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}],
            }

        if not body.get("stream"):
            if gen.failure is not None:
                return self._abort(request)
            out = obj(gen.text, finish)
            out["usage"] = self._usage()
            return self._json(200, out)

        include_usage = self._include_usage(body)
        events = [obj(piece, None) for piece in split_text(gen.text, self.chunk_count)]
        events.append(obj("", finish))
        if include_usage:
            for e in events:
                e["usage"] = None
            final = obj("", None)
            final["choices"] = []
            final["usage"] = self._usage()
            events.append(final)
        return await self._stream(request, events, gen.failure)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        _, early = await self._preamble(request)
        if isinstance(early, web.StreamResponse):
            return early
        if isinstance(early, _StreamFailure):
            return self._abort(request)
        data = [
            {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "openai"} for m in self.models
        ]
        return self._json(200, {"object": "list", "data": data})

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return self._json(404, openai_error(f"Invalid URL ({request.method} {request.path})", code=None))
