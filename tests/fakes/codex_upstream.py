"""A scriptable fake Codex upstream speaking the OpenAI Responses API as the Codex backend does.

Usage::

    async with FakeCodexUpstream() as up:
        up.reply_text = "Hello from fake"
        client = openai.AsyncOpenAI(base_url=up.base_url, api_key="sk-test", max_retries=0)
        stream = await client.responses.create(model="gpt-5-codex", input="hi", stream=True)
        ...
        assert up.last.json["model"] == "gpt-5-codex"

Endpoints (``base_url`` is the codex base-url; the proxy posts to ``{base-url}/responses``):

* ``POST /responses`` — with ``"stream": true`` an SSE stream of ``event: <type>\\ndata: <json>\\n\\n``
  events, each with a ``sequence_number``: ``response.created``, ``response.in_progress``, then per
  output item (reasoning when ``reply_reasoning`` is set, the assistant message, one function_call
  per ``reply_tool_calls`` entry) its ``output_item.added`` / part and delta events /
  ``output_item.done``, and finally ``response.completed`` carrying the full response object.
  Without ``stream: true`` the response object is answered as JSON (the real Codex backend
  refuses that; set ``require_stream = True`` for its 400 ``{"detail": "Stream must be set to true"}``).
* ``POST /responses/compact`` — JSON ``{"id", "object": "response.compaction", "created_at",
  "output": [the request's user messages…, {"type": "compaction", "encrypted_content", …}], "usage"}``.

Errors are OpenAI-shaped ``{"error": {"message", "type", "param", "code"}}``; the ChatGPT
usage limit is :func:`usage_limit_error` (429 with ``resets_at`` / ``resets_in_seconds``).
"""

from __future__ import annotations

import asyncio
import collections
import json as jsonlib
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from .openai_upstream import RecordedRequest, openai_error, split_text

__all__ = [
    "CodexRecordedRequest",
    "CodexToolCallSpec",
    "FakeCodexUpstream",
    "usage_limit_error",
]

CodexToolCallSpec = dict[str, Any]
"""A scripted function call: ``{"name": str, "arguments": str | dict, "id": str (call_id, optional)}``."""

_POLL = 0.01  # seconds between disconnect checks while the fake waits

_DEFAULT_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Your authentication token is invalid.", "invalid_request_error", "invalid_api_key"),
    403: ("You do not have access to this resource.", "invalid_request_error", "unsupported_country_region_territory"),
    404: ("Not found.", "invalid_request_error", None),
    429: ("Rate limit reached. Please try again later.", "rate_limit_error", "rate_limit_exceeded"),
    500: ("An error occurred while processing your request.", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The server is overloaded or not ready yet.", "server_error", None),
}


def _hex_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def usage_limit_error(
    resets_in_seconds: int = 3600,
    *,
    resets_at: int | None = None,
    message: str = "The usage limit has been reached",
    plan_type: str = "plus",
) -> dict[str, Any]:
    """The ChatGPT/Codex 429 body: ``{"error": {"type": "usage_limit_reached", "message", "resets_at", ...}}``.

    ``resets_at`` defaults to now + ``resets_in_seconds`` (unix seconds).
    """
    return {
        "error": {
            "type": "usage_limit_reached",
            "message": message,
            "plan_type": plan_type,
            "resets_at": resets_at if resets_at is not None else int(time.time()) + resets_in_seconds,
            "resets_in_seconds": resets_in_seconds,
        }
    }


def _encode_event(payload: dict[str, Any]) -> bytes:
    """``event: <payload type>\\ndata: <compact json>\\n\\n``."""
    data = jsonlib.dumps(payload, separators=(",", ":"))
    return f"event: {payload['type']}\ndata: {data}\n\n".encode()


@dataclass(slots=True)
class CodexRecordedRequest(RecordedRequest):
    """One request as the fake received it, with Codex-specific header accessors."""

    @property
    def account_id(self) -> str | None:
        """The ``chatgpt-account-id`` header, or None."""
        return self.headers.get("chatgpt-account-id")

    @property
    def originator(self) -> str | None:
        """The ``originator`` header, or None."""
        return self.headers.get("originator")

    @property
    def version(self) -> str | None:
        """The ``version`` header, or None."""
        return self.headers.get("version")

    @property
    def session_id(self) -> str | None:
        """The ``session_id`` header, or None."""
        return self.headers.get("session_id")

    @property
    def conversation_id(self) -> str | None:
        """The ``conversation_id`` header, or None."""
        return self.headers.get("conversation_id")


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
    reasoning: str | None
    tool_calls: list[CodexToolCallSpec] | None


_Action = _Error | _StreamFailure | _Reply


class _ClientGone(Exception):
    """The client closed the connection before the response finished."""


class _Stopping(Exception):
    """The fake is shutting down."""


@dataclass
class _Generation:
    """What one Responses request should produce."""

    text: str
    reasoning: str | None
    tool_calls: list[dict[str, Any]]
    failure: _StreamFailure | None = None


class FakeCodexUpstream:
    """Fake Codex (Responses API) HTTP server on 127.0.0.1 with a random free port.

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
        self.models: list[str] = list(models) if models is not None else ["gpt-5-codex", "gpt-5"]
        self.expected_keys: set[str] | None = None
        self.reply_reasoning: str | None = None
        self.reasoning_encrypted_content: str | None = None
        self.reply_tool_calls: list[CodexToolCallSpec] | None = None
        self.tool_args_pieces: int = 3
        self.response_model: str | None = None
        self.reject_unknown_models: bool = False
        self.require_stream: bool = False
        self.omit_completed: bool = False
        self.input_tokens: int = 12
        self.cached_tokens: int = 0
        self.output_tokens: int = 8
        self.reasoning_tokens: int = 0
        self.response_headers: dict[str, str] = {}
        self.hang_before_headers: bool = False
        self.hang_seconds: float | None = None

        self.requests: list[CodexRecordedRequest] = []
        self.non_stream_requests: int = 0
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
            raise RuntimeError("FakeCodexUpstream is not started")
        return self._port

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the codex base-url (requests go to ``{base_url}/responses``)."""
        return self.origin

    async def start(self) -> None:
        """Bind and start serving."""
        app = web.Application()
        app.router.add_post("/responses", self._responses)
        app.router.add_post("/responses/compact", self._compact)
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

    async def __aenter__(self) -> FakeCodexUpstream:
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

        ``body`` dict → JSON, str → text/plain; None → an OpenAI-shaped error typical for ``status``.
        """
        for _ in range(times):
            if body is None:
                message, kind, code = _DEFAULT_ERRORS.get(status, _DEFAULT_ERRORS[500])
                payload: dict[str, Any] | str = openai_error(message, kind, code)
            else:
                payload = body
            self._script.append(_Error(status, payload, dict(headers or {})))

    def enqueue_usage_limit(
        self, resets_in_seconds: int = 3600, *, resets_at: int | None = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests with 429 :func:`usage_limit_error`."""
        for _ in range(times):
            self._script.append(_Error(429, usage_limit_error(resets_in_seconds, resets_at=resets_at), {}))

    def enqueue_stream_failure(self, after_events: int, *, times: int = 1) -> None:
        """Break the connection after ``after_events`` SSE events of the next stream(s).

        A non-streaming request consuming this is answered by closing the connection
        without any response.
        """
        for _ in range(times):
            self._script.append(_StreamFailure(after_events, "close"))

    def enqueue_stream_error_event(self, after_events: int, body: dict[str, Any] | None = None) -> None:
        """After ``after_events`` events send one more event and end the stream (no response.completed).

        ``body`` is the event payload (its ``type`` names the event; ``sequence_number`` is
        filled in); the default is ``response.failed`` whose response has
        ``error: {"code": "server_error", "message": ...}``. A non-streaming request consuming
        this gets 500 with an OpenAI-shaped server_error.
        """
        self._script.append(_StreamFailure(after_events, "event", body))

    def enqueue_reply(
        self,
        text: str | None = None,
        *,
        reasoning: str | None = None,
        tool_calls: list[CodexToolCallSpec] | None = None,
    ) -> None:
        """Override the reply for the next request only (unset values fall back to the attributes)."""
        self._script.append(_Reply(text, reasoning, tool_calls))

    def release_hang(self) -> None:
        """Let requests held by ``hang_before_headers`` continue normally."""
        self._release.set()

    def reset(self) -> None:
        """Clear recorded requests, disconnect state and pending scripted actions."""
        self.requests.clear()
        self._script.clear()
        self.non_stream_requests = 0
        self.disconnects = 0
        self.completed_streams = 0
        self.client_disconnected.clear()
        self._release.clear()

    @property
    def pending_actions(self) -> int:
        """How many scripted actions are still queued."""
        return len(self._script)

    @property
    def last(self) -> CodexRecordedRequest:
        """The most recent request."""
        if not self.requests:
            raise LookupError("FakeCodexUpstream received no requests")
        return self.requests[-1]

    async def wait_for_requests(self, count: int = 1, within: float = 2.0) -> list[CodexRecordedRequest]:
        """Wait up to ``within`` seconds until at least ``count`` requests were recorded."""
        async with asyncio.timeout(within), self._request_seen:
            await self._request_seen.wait_for(lambda: len(self.requests) >= count)
        return self.requests

    # ----------------------------------------------------------------- plumbing

    async def _record(self, request: web.Request) -> CodexRecordedRequest:
        body = await request.read()
        parsed: Any = None
        if body:
            try:
                parsed = jsonlib.loads(body)
            except ValueError:
                parsed = None
        rec = CodexRecordedRequest(
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
        hdrs = {"x-request-id": secrets.token_hex(16), **self.response_headers, **(headers or {})}
        return web.json_response(body, status=status, headers=hdrs)

    def _error_response(self, err: _Error) -> web.Response:
        if isinstance(err.body, str):
            headers = {"Content-Type": "text/plain; charset=utf-8", **err.headers}
            return web.Response(status=err.status, text=err.body, headers=headers)
        return self._json(err.status, err.body, err.headers)

    def _check_auth(self, rec: CodexRecordedRequest) -> web.Response | None:
        if self.expected_keys is None:
            return None
        key = rec.bearer
        if key is None:
            return self._json(
                401, openai_error("Missing bearer or basic authentication in header", "invalid_request_error")
            )
        if key not in self.expected_keys:
            return self._json(
                401,
                openai_error(
                    "Your authentication token is not valid. Please try signing in again.",
                    "invalid_request_error",
                    code="invalid_api_key",
                ),
            )
        return None

    async def _preamble(
        self, request: web.Request
    ) -> tuple[CodexRecordedRequest, web.StreamResponse | _Action | None]:
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

    def _validate_body(self, rec: CodexRecordedRequest) -> web.Response | None:
        if not isinstance(rec.json, dict):
            return self._json(
                400, openai_error("We could not parse the JSON body of your request.", "invalid_request_error")
            )
        model = rec.json.get("model")
        if not model:
            return self._json(400, openai_error("Missing required parameter: 'model'.", param="model",
                                                code="missing_required_parameter"))
        if self.reject_unknown_models and model not in self.models:
            return self._json(
                400, {"detail": f"The '{model}' model is not supported when using Codex with a ChatGPT account."}
            )
        return None

    def _generation(self, action: Any) -> _Generation:
        text, reasoning, tools = self.reply_text, self.reply_reasoning, self.reply_tool_calls
        failure = None
        if isinstance(action, _Reply):
            text = action.text if action.text is not None else text
            reasoning = action.reasoning if action.reasoning is not None else reasoning
            tools = action.tool_calls if action.tool_calls is not None else tools
        elif isinstance(action, _StreamFailure):
            failure = action
        return _Generation(
            text=text,
            reasoning=reasoning,
            tool_calls=[self._normalize_tool(t) for t in tools or []],
            failure=failure,
        )

    @staticmethod
    def _normalize_tool(spec: CodexToolCallSpec) -> dict[str, Any]:
        args = spec.get("arguments", "{}")
        if not isinstance(args, str):
            args = jsonlib.dumps(args, separators=(",", ":"))
        return {
            "id": _hex_id("fc"),
            "call_id": spec.get("id") or spec.get("call_id") or f"call_{secrets.token_urlsafe(18)}",
            "name": spec["name"],
            "arguments": args,
        }

    def _usage(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.input_tokens + self.output_tokens,
        }

    @staticmethod
    def _show_message(gen: _Generation) -> bool:
        return bool(gen.text) or not gen.tool_calls

    def _response_object(
        self, body: dict[str, Any], response_id: str, created_at: int, *, status: str, output: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The Responses ``response`` object; ``usage`` is only set once completed."""
        reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else None
        return {
            "id": response_id,
            "object": "response",
            "created_at": created_at,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": None,
            "max_tool_calls": None,
            "model": self.response_model or body["model"],
            "output": output,
            "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
            "previous_response_id": None,
            "prompt_cache_key": body.get("prompt_cache_key"),
            "reasoning": {"effort": (reasoning or {}).get("effort", "medium"),
                          "summary": (reasoning or {}).get("summary")},
            "service_tier": "auto",
            "store": bool(body.get("store", False)),
            "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "top_logprobs": 0,
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": self._usage() if status == "completed" else None,
            "user": None,
            "metadata": {},
        }

    def _items(self, gen: _Generation) -> list[tuple[str, dict[str, Any]]]:
        """``(kind, completed item)`` for every output item, in output order."""
        items: list[tuple[str, dict[str, Any]]] = []
        if gen.reasoning is not None:
            encrypted = self.reasoning_encrypted_content or "gAAAAB" + secrets.token_urlsafe(48)
            summary = [{"type": "summary_text", "text": gen.reasoning}] if gen.reasoning else []
            items.append(
                ("reasoning", {"id": _hex_id("rs"), "type": "reasoning", "summary": summary,
                               "encrypted_content": encrypted})
            )
        if self._show_message(gen):
            items.append(
                (
                    "message",
                    {
                        "id": _hex_id("msg"),
                        "type": "message",
                        "status": "completed",
                        "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": gen.text}],
                        "role": "assistant",
                    },
                )
            )
        for tool in gen.tool_calls:
            items.append(
                (
                    "function_call",
                    {
                        "id": tool["id"],
                        "type": "function_call",
                        "status": "completed",
                        "arguments": tool["arguments"],
                        "call_id": tool["call_id"],
                        "name": tool["name"],
                    },
                )
            )
        return items

    def _stream_events(self, body: dict[str, Any], gen: _Generation) -> list[dict[str, Any]]:
        """Every SSE payload of one streamed response (sequence numbers are filled in when written)."""
        response_id = _hex_id("resp")
        created_at = int(time.time())
        items = self._items(gen)

        def response(status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
            return self._response_object(body, response_id, created_at, status=status, output=output)

        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": response("in_progress", [])},
            {"type": "response.in_progress", "response": response("in_progress", [])},
        ]
        for index, (kind, item) in enumerate(items):
            ref = {"item_id": item["id"], "output_index": index}
            if kind == "reasoning":
                events.append({"type": "response.output_item.added", "output_index": index,
                               "item": {**item, "summary": []}})
                for s_index, part in enumerate(item["summary"]):
                    sref = {**ref, "summary_index": s_index}
                    events.append({"type": "response.reasoning_summary_part.added", **sref,
                                   "part": {"type": "summary_text", "text": ""}})
                    events += [
                        {"type": "response.reasoning_summary_text.delta", **sref, "delta": piece}
                        for piece in split_text(part["text"], self.chunk_count)
                    ]
                    events.append({"type": "response.reasoning_summary_text.done", **sref, "text": part["text"]})
                    events.append({"type": "response.reasoning_summary_part.done", **sref, "part": part})
            elif kind == "message":
                part = item["content"][0]
                cref = {**ref, "content_index": 0}
                events.append({"type": "response.output_item.added", "output_index": index,
                               "item": {**item, "status": "in_progress", "content": []}})
                events.append({"type": "response.content_part.added", **cref, "part": {**part, "text": ""}})
                events += [
                    {"type": "response.output_text.delta", **cref, "delta": piece, "logprobs": []}
                    for piece in split_text(part["text"], self.chunk_count)
                ]
                events.append({"type": "response.output_text.done", **cref, "text": part["text"], "logprobs": []})
                events.append({"type": "response.content_part.done", **cref, "part": part})
            else:
                events.append({"type": "response.output_item.added", "output_index": index,
                               "item": {**item, "status": "in_progress", "arguments": ""}})
                events += [
                    {"type": "response.function_call_arguments.delta", **ref, "delta": piece}
                    for piece in split_text(item["arguments"], self.tool_args_pieces)
                ]
                events.append({"type": "response.function_call_arguments.done", **ref,
                               "arguments": item["arguments"]})
            events.append({"type": "response.output_item.done", "output_index": index, "item": item})
        if not self.omit_completed:
            events.append({"type": "response.completed", "response": response("completed", [i for _, i in items])})
        return events

    def _failure_event(self, body: dict[str, Any], failure: _StreamFailure) -> dict[str, Any]:
        if failure.body is not None:
            return dict(failure.body)
        failed = self._response_object(body, _hex_id("resp"), int(time.time()), status="failed", output=[])
        failed["error"] = {"code": "server_error", "message": "An error occurred while processing your request."}
        return {"type": "response.failed", "response": failed}

    async def _stream(
        self, request: web.Request, body: dict[str, Any], events: list[dict[str, Any]], failure: _StreamFailure | None
    ) -> web.StreamResponse:
        """Write SSE events one by one (numbering them), draining each, and detect client disconnects."""
        headers = {
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "Connection": "keep-alive",
            "x-request-id": secrets.token_hex(16),
            **self.response_headers,
        }
        resp = web.StreamResponse(status=200, headers=headers)
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
            for i, event in enumerate(events):
                if failure is not None and i == failure.after_events:
                    if failure.mode == "event":
                        payload = {**self._failure_event(body, failure), "sequence_number": i}
                        await self._write(request, resp, _encode_event(payload))
                        await resp.write_eof()
                    else:
                        await self._drain(request)
                        if request.transport is not None:
                            request.transport.close()
                    return resp
                if i and self.chunk_delay > 0:
                    await self._pause(request, self.chunk_delay)
                await self._write(request, resp, _encode_event({**event, "sequence_number": i}))
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

    # ----------------------------------------------------------------- endpoints

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        rec, early = await self._preamble(request)
        if isinstance(early, web.StreamResponse):
            return early
        invalid = self._validate_body(rec)
        if invalid is not None:
            return invalid
        body: dict[str, Any] = rec.json
        if not body.get("stream"):
            self.non_stream_requests += 1
            if self.require_stream:
                return self._json(400, {"detail": "Stream must be set to true"})
        gen = self._generation(early)

        if body.get("stream"):
            return await self._stream(request, body, self._stream_events(body, gen), gen.failure)

        if gen.failure is not None:
            if gen.failure.mode == "event":
                return self._json(500, openai_error("An error occurred while processing your request.",
                                                    "server_error"))
            return self._abort(request)
        output = [item for _, item in self._items(gen)]
        return self._json(
            200, self._response_object(body, _hex_id("resp"), int(time.time()), status="completed", output=output)
        )

    @staticmethod
    def _input_content(content: Any) -> list[dict[str, Any]]:
        if isinstance(content, str):
            return [{"type": "input_text", "text": content}]
        return list(content) if isinstance(content, list) else []

    async def _compact(self, request: web.Request) -> web.StreamResponse:
        rec, early = await self._preamble(request)
        if isinstance(early, web.StreamResponse):
            return early
        if isinstance(early, _StreamFailure):
            return self._abort(request)
        invalid = self._validate_body(rec)
        if invalid is not None:
            return invalid
        body: dict[str, Any] = rec.json
        if body.get("stream"):
            return self._json(400, openai_error("Unsupported parameter: 'stream'.", param="stream",
                                                code="unsupported_parameter"))
        raw_input = body.get("input", [])
        if isinstance(raw_input, str):
            raw_input = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw_input}]}]
        kept = [
            {"id": _hex_id("msg"), "type": "message", "status": "completed", "role": "user",
             "content": self._input_content(item.get("content", []))}
            for item in raw_input
            if isinstance(item, dict) and item.get("role") == "user"
        ]
        compaction = {"id": _hex_id("cmp"), "type": "compaction",
                      "encrypted_content": "gAAAAB" + secrets.token_urlsafe(48)}
        return self._json(
            200,
            {
                "id": _hex_id("resp"),
                "object": "response.compaction",
                "created_at": int(time.time()),
                "output": [*kept, compaction],
                "usage": self._usage(),
            },
        )

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return self._json(404, {"detail": "Not Found"})
