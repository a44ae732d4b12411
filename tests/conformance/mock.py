"""The scripted mock upstream (FORMAT.md §4): four provider families on one port, every request recorded.

Families are chosen by the first path segment (``/anthropic``, ``/codex``, ``/gemini``, ``/compat``), which is
stripped. Each generate request consumes one step of the installed :class:`Script` and is answered with the
family's native wire format, rendered from the constants of §4.3.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

FAMILIES = ("anthropic", "codex", "gemini", "compat")
CREATED = 1700000000
SIGNATURE = "c2lnbmF0dXJlLW1vY2s="
DROPPED_HEADERS = frozenset({"host", "content-length", "sec-websocket-key"})
THINK_PIECES = ("Let me ", "think.")
TOOL_ARGS = ({"city": "Paris"}, {"city": "Rome"})


# --------------------------------------------------------------------------- script


@dataclass(slots=True)
class Reply:
    """One scripted answer: ``kind`` is ok, error, cut, stream_error or raw."""

    kind: str = "ok"
    content: str = "text"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    after: int = 0
    abort: bool = False
    content_type: str = "application/json"


@dataclass(slots=True)
class Step:
    """A reply with a use budget (``times`` None = unlimited), an optional credential filter and timing."""

    reply: Reply
    times: int | None = None
    credential: str | None = None
    delay_ms: int = 0
    stall_ms: int = 0
    chunking: str = "whole"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Script:
    """Steps tried in order; ``fallback`` answers when no step is left or matches."""

    steps: list[Step] = field(default_factory=list)
    fallback: Reply = field(default_factory=Reply)

    def take(self, credential: str) -> Step:
        """Consume the first step with uses left whose credential filter matches."""
        for step in self.steps:
            if step.times is not None and step.times <= 0:
                continue
            if step.credential is not None and step.credential not in credential:
                continue
            if step.times is not None:
                step.times -= 1
            return step
        return Step(reply=self.fallback)


def ok(content: str = "text") -> Reply:
    """A success reply of one content kind."""
    return Reply(kind="ok", content=content)


def error(status: int, headers: dict[str, str] | None = None, body: Any = None) -> Reply:
    """An error reply (native error body unless ``body`` is given)."""
    return Reply(kind="error", status=status, headers=dict(headers or {}), body=body)


# --------------------------------------------------------------------------- rendering helpers


def _items(content: str) -> list[tuple[str, int]]:
    """Output items of a content kind: (``think``|``text``|``tool``, tool number)."""
    return {
        "thinking": [("think", 0), ("text", 0)],
        # The old-era recorder's Gemini mock (FORMAT.md §4.3: the other replies.rs variant) streamed the text of a
        # thinking answer as one chunk.
        "thinking_whole_text": [("think", 0), ("whole_text", 0)],
        "tool": [("tool", 1)],
        "tool_call": [("tool", 1)],
        "parallel": [("tool", 1), ("tool", 2)],
        "mixed": [("text", 0), ("tool", 1)],
    }.get(content, [("text", 0)])


def _args(n: int) -> dict[str, str]:
    return TOOL_ARGS[(n - 1) % 2]


def _args_json(n: int) -> str:
    return json.dumps(_args(n), separators=(",", ":"))


def _halves(text: str) -> tuple[str, str]:
    mid = len(text) // 2
    return text[:mid], text[mid:]


def _has_tool(content: str) -> bool:
    return any(kind == "tool" for kind, _ in _items(content))


def _sse(data: Any, event: str | None = None) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


# --------------------------------------------------------------------------- anthropic


def _claude_usage(content: str) -> dict[str, int]:
    usage = {"input_tokens": 11, "output_tokens": 7}
    if content == "cached":
        usage |= {"cache_read_input_tokens": 5, "cache_creation_input_tokens": 3}
    return usage


def _claude_stop(content: str) -> str:
    if content == "length":
        return "max_tokens"
    if content == "pause":
        return "pause_turn"
    return "tool_use" if _has_tool(content) else "end_turn"


def claude_json(model: str, tool: str, content: str) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    for kind, n in _items(content):
        if kind == "think":
            blocks.append({"type": "thinking", "thinking": "Let me think.", "signature": SIGNATURE})
        elif kind == "text":
            blocks.append({"type": "text", "text": "Hello from mock"})
        else:
            blocks.append({"type": "tool_use", "id": f"toolu_mock0{n}", "name": tool, "input": _args(n)})
    return {
        "id": "msg_mock01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": _claude_stop(content),
        "stop_sequence": None,
        "usage": _claude_usage(content),
    }


def claude_events(model: str, tool: str, content: str) -> list[bytes]:
    start = {
        "id": "msg_mock01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 1},
    }
    out = [_sse({"type": "message_start", "message": start}, "message_start"), _sse({"type": "ping"}, "ping")]

    def delta(i: int, d: dict[str, Any]) -> bytes:
        return _sse({"type": "content_block_delta", "index": i, "delta": d}, "content_block_delta")

    for i, (kind, n) in enumerate(_items(content)):
        if kind == "think":
            block: dict[str, Any] = {"type": "thinking", "thinking": ""}
            deltas = [{"type": "thinking_delta", "thinking": h} for h in THINK_PIECES]
            deltas.append({"type": "signature_delta", "signature": SIGNATURE})
        elif kind == "text":
            block = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": h} for h in ("Hello from ", "mock")]
        else:
            block = {"type": "tool_use", "id": f"toolu_mock0{n}", "name": tool, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": h} for h in _halves(_args_json(n))]
        out.append(_sse({"type": "content_block_start", "index": i, "content_block": block}, "content_block_start"))
        out.extend(delta(i, d) for d in deltas)
        out.append(_sse({"type": "content_block_stop", "index": i}, "content_block_stop"))
    md = {
        "type": "message_delta",
        "delta": {"stop_reason": _claude_stop(content), "stop_sequence": None},
        "usage": _claude_usage(content),
    }
    out.append(_sse(md, "message_delta"))
    out.append(_sse({"type": "message_stop"}, "message_stop"))
    return out


CLAUDE_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def claude_error(status: int) -> dict[str, Any]:
    etype = CLAUDE_ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": etype, "message": f"mock upstream error {status}"}}


# --------------------------------------------------------------------------- compat (OpenAI chat)


def _compat_usage(content: str) -> dict[str, Any]:
    usage: dict[str, Any] = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    if content == "thinking":
        usage["completion_tokens_details"] = {"reasoning_tokens": 3}
    if content == "cached":
        usage["prompt_tokens_details"] = {"cached_tokens": 5}
    return usage


def _compat_finish(content: str) -> str:
    if content == "length":
        return "length"
    return "tool_calls" if _has_tool(content) else "stop"


def compat_json(model: str, tool: str, content: str) -> dict[str, Any]:
    items = _items(content)
    message: dict[str, Any] = {"role": "assistant"}
    message["content"] = "Hello from mock" if any(k == "text" for k, _ in items) else None
    if any(k == "think" for k, _ in items):
        message["reasoning_content"] = "Let me think."
    calls = [
        {"id": f"call_mock0{n}", "type": "function", "function": {"name": tool, "arguments": _args_json(n)}}
        for k, n in items
        if k == "tool"
    ]
    if calls:
        message["tool_calls"] = calls
    return {
        "id": "chatcmpl-mock01",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _compat_finish(content)}],
        "usage": _compat_usage(content),
    }


def compat_events(model: str, tool: str, content: str) -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = {
            "id": "chatcmpl-mock01",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return _sse(body)

    out = [chunk({"role": "assistant", "content": ""})]
    tool_index = 0
    for kind, n in _items(content):
        if kind == "think":
            out.extend(chunk({"reasoning_content": h}) for h in THINK_PIECES)
        elif kind == "text":
            out.extend(chunk({"content": h}) for h in ("Hello from ", "mock"))
        else:
            head = {"index": tool_index, "id": f"call_mock0{n}", "type": "function"}
            head["function"] = {"name": tool, "arguments": ""}
            out.append(chunk({"tool_calls": [head]}))
            for h in _halves(_args_json(n)):
                out.append(chunk({"tool_calls": [{"index": tool_index, "function": {"arguments": h}}]}))
            tool_index += 1
    out.append(chunk({}, _compat_finish(content)))
    usage = {
        "id": "chatcmpl-mock01",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "choices": [],
        "usage": _compat_usage(content),
    }
    out.append(_sse(usage))
    out.append(_sse("[DONE]"))
    return out


COMPAT_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def compat_error(status: int) -> dict[str, Any]:
    etype, code = COMPAT_ERRORS.get(status, ("server_error", None))
    return {"error": {"message": f"mock upstream error {status}", "type": etype, "code": code}}


# --------------------------------------------------------------------------- codex (Responses)


def _codex_items(tool: str, content: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for kind, n in _items(content):
        if kind == "think":
            out.append(
                {"id": "rs_mock01", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Let me think."}]}
            )
        elif kind == "text":
            out.append(
                {
                    "id": "msg_mock01",
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "annotations": [], "text": "Hello from mock"}],
                }
            )
        else:
            out.append(
                {
                    "id": f"fc_mock0{n}",
                    "type": "function_call",
                    "status": "completed",
                    "call_id": f"call_mock0{n}",
                    "name": tool,
                    "arguments": _args_json(n),
                }
            )
    if content == "image":
        out.append({"id": "ig_mock01", "type": "image_generation_call", "status": "completed", "result": "AAEC"})
    return out


def _codex_response(model: str, tool: str, content: str, *, final: bool) -> dict[str, Any]:
    resp: dict[str, Any] = {
        "id": "resp_mock01",
        "object": "response",
        "created_at": CREATED,
        "status": ("incomplete" if content == "length" else "completed") if final else "in_progress",
        "model": model,
        "output": _codex_items(tool, content) if final else [],
        "parallel_tool_calls": True,
        "store": False,
    }
    if final:
        resp["usage"] = {
            "input_tokens": 11,
            "input_tokens_details": {"cached_tokens": 5 if content == "cached" else 0},
            "output_tokens": 7,
            "output_tokens_details": {"reasoning_tokens": 3 if content == "thinking" else 0},
            "total_tokens": 18,
        }
        if content == "image":
            resp["tool_usage"] = {"image_gen": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}}
        if content == "length":
            resp["incomplete_details"] = {"reason": "max_output_tokens"}
    return resp


def codex_json(model: str, tool: str, content: str) -> dict[str, Any]:
    return _codex_response(model, tool, content, final=True)


def codex_event_objects(model: str, tool: str, content: str) -> list[dict[str, Any]]:
    """The Responses stream as event objects (the ``sequence_number`` runs from 0)."""
    events: list[dict[str, Any]] = []

    def add(etype: str, **fields: Any) -> None:
        events.append({"type": etype, "sequence_number": len(events), **fields})

    add("response.created", response=_codex_response(model, tool, content, final=False))
    add("response.in_progress", response=_codex_response(model, tool, content, final=False))
    for oi, item in enumerate(_codex_items(tool, content)):
        iid = item["id"]
        if item["type"] == "reasoning":
            add("response.output_item.added", output_index=oi, item={"id": iid, "type": "reasoning", "summary": []})
            base = {"item_id": iid, "output_index": oi, "summary_index": 0}
            add("response.reasoning_summary_part.added", **base, part={"type": "summary_text", "text": ""})
            for h in THINK_PIECES:
                add("response.reasoning_summary_text.delta", **base, delta=h)
            add("response.reasoning_summary_text.done", **base, text="Let me think.")
            add("response.reasoning_summary_part.done", **base, part={"type": "summary_text", "text": "Let me think."})
        elif item["type"] == "message":
            added = {"id": iid, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
            add("response.output_item.added", output_index=oi, item=added)
            base = {"item_id": iid, "output_index": oi, "content_index": 0}
            add("response.content_part.added", **base, part={"type": "output_text", "annotations": [], "text": ""})
            for h in ("Hello from ", "mock"):
                add("response.output_text.delta", **base, delta=h)
            add("response.output_text.done", **base, text="Hello from mock")
            part = {"type": "output_text", "annotations": [], "text": "Hello from mock"}
            add("response.content_part.done", **base, part=part)
        elif item["type"] == "function_call":
            add("response.output_item.added", output_index=oi, item=item | {"status": "in_progress", "arguments": ""})
            for h in _halves(item["arguments"]):
                add("response.function_call_arguments.delta", item_id=iid, output_index=oi, delta=h)
            add("response.function_call_arguments.done", item_id=iid, output_index=oi, arguments=item["arguments"])
        else:
            add("response.output_item.added", output_index=oi, item=item | {"status": "in_progress"})
        add("response.output_item.done", output_index=oi, item=item)
    final = "response.incomplete" if content == "length" else "response.completed"
    add(final, response=_codex_response(model, tool, content, final=True))
    return events


def codex_events(model: str, tool: str, content: str) -> list[bytes]:
    return [_sse(e, e["type"]) for e in codex_event_objects(model, tool, content)]


# --------------------------------------------------------------------------- gemini


def _gemini_usage(content: str) -> dict[str, int]:
    usage = {"promptTokenCount": 11, "candidatesTokenCount": 7, "totalTokenCount": 18}
    if content in ("thinking", "thinking_whole_text"):
        usage |= {"totalTokenCount": 21, "thoughtsTokenCount": 3}
    if content == "cached":
        usage["cachedContentTokenCount"] = 5
    return usage


def _gemini_finish(content: str) -> str:
    return "MAX_TOKENS" if content == "length" else "STOP"


def _gemini_parts(tool: str, content: str, *, stream: bool) -> list[list[dict[str, Any]]]:
    """Parts grouped per stream chunk (a non-stream answer joins them all)."""
    chunks: list[list[dict[str, Any]]] = []
    for kind, n in _items(content):
        if kind == "think":
            pieces = THINK_PIECES if stream else ("Let me think.",)
            chunks.extend([{"text": p, "thought": True}] for p in pieces)
        elif kind in ("text", "whole_text"):
            pieces = ("Hello from ", "mock") if stream and kind == "text" else ("Hello from mock",)
            chunks.extend([{"text": p}] for p in pieces)
        else:
            chunks.append([{"functionCall": {"name": tool, "args": _args(n)}}])
    return chunks


def gemini_json(model: str, tool: str, content: str) -> dict[str, Any]:
    parts = [p for chunk in _gemini_parts(tool, content, stream=False) for p in chunk]
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": _gemini_finish(content), "index": 0}
        ],
        "usageMetadata": _gemini_usage(content),
        "modelVersion": model,
        "responseId": "mockresp01",
    }


def gemini_events(model: str, tool: str, content: str) -> list[bytes]:
    chunks = _gemini_parts(tool, content, stream=True)
    out: list[bytes] = []
    for i, parts in enumerate(chunks):
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        body: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": "mockresp01"}
        if i == len(chunks) - 1:
            candidate["finishReason"] = _gemini_finish(content)
            body["usageMetadata"] = _gemini_usage(content)
        out.append(_sse(body))
    return out


GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
}


def gemini_error(status: int) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": f"mock upstream error {status}",
            "status": GEMINI_STATUS.get(status, "INTERNAL"),
        }
    }


# --------------------------------------------------------------------------- family table


def render_json(family: str, model: str, tool: str, content: str) -> dict[str, Any]:
    """The non-stream success body of a family."""
    if family == "anthropic":
        return claude_json(model, tool, content)
    if family == "gemini":
        return gemini_json(model, tool, content)
    if family == "codex" or content == "responses":
        return codex_json(model, tool, content)
    return compat_json(model, tool, content)


def render_events(family: str, op: str, model: str, tool: str, content: str) -> list[bytes]:
    """The SSE events of a family's success stream, one bytes block per event."""
    if family == "anthropic":
        return claude_events(model, tool, content)
    if family == "gemini":
        return gemini_events(model, tool, content)
    if family == "codex" or op == "responses":
        return codex_events(model, tool, content)
    return compat_events(model, tool, content)


def native_error(family: str, status: int) -> dict[str, Any]:
    """The family's native error body."""
    if family == "anthropic":
        return claude_error(status)
    if family == "gemini":
        return gemini_error(status)
    return compat_error(status)


def mid_stream_error(family: str, op: str, after: int) -> bytes:
    """The in-band error event appended by a StreamError reply."""
    if family == "anthropic":
        return _sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error")
    if family == "gemini":
        return _sse({"error": {"code": 500, "message": "mock mid-stream error", "status": "INTERNAL"}})
    if family == "codex" or op == "responses":
        failed = {
            "type": "response.failed",
            "sequence_number": after,
            "response": {
                "id": "resp_mock01",
                "object": "response",
                "status": "failed",
                "error": {"code": "server_error", "message": "mock mid-stream error"},
            },
        }
        return _sse(failed, "response.failed")
    err = {"error": {"message": "mock mid-stream error", "type": "server_error", "code": "server_error"}}
    return _sse(err)


WS_FRAME_PACE = 0.015


def ws_reply_frames(step: Step, frame: Any) -> tuple[list[Any], str | None]:
    """The frames answering one upstream WebSocket request and how the socket ends afterwards (None: stays open,
    ``abort``: dropped, ``clean``: closed 1000 "mock done")."""
    reply = step.reply
    model = frame.get("model", "") if isinstance(frame, dict) else ""
    model = model if isinstance(model, str) else ""
    tool = first_tool_name(frame)
    if reply.kind == "error":
        body = reply.body if reply.body is not None else compat_error(reply.status)
        out: dict[str, Any] = {"type": "error", "status": reply.status, "error": body.get("error")}
        extra = {**step.headers, **reply.headers}
        if extra:
            out["headers"] = extra
        return [out], None
    if reply.kind == "raw":
        return [reply.body if isinstance(reply.body, str) else json.dumps(reply.body)], None
    events: list[Any] = list(codex_event_objects(model, tool, reply.content))
    if reply.kind == "cut":
        return events[: reply.after], "abort" if reply.abort else "clean"
    if reply.kind == "stream_error":
        failed = {"type": "response.failed", "response": {"status": "failed", "error": {
            "code": "server_error", "message": "mock mid-stream error"}}}
        return [*events[: reply.after], failed], None
    return events, None


def first_tool_name(body: Any) -> str:
    """Name of the first tool of a request body, default ``get_weather``."""
    if isinstance(body, dict):
        tools = body.get("tools")
        if isinstance(tools, list) and tools and isinstance(tools[0], dict):
            t = tools[0]
            if isinstance(t.get("name"), str):
                return t["name"]
            fn = t.get("function")
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                return fn["name"]
            decls = t.get("functionDeclarations")
            first = decls[0] if isinstance(decls, list) and decls else None
            if isinstance(first, dict) and isinstance(first.get("name"), str):
                return first["name"]
    return "get_weather"


# --------------------------------------------------------------------------- server


def _credential(headers: dict[str, str]) -> str:
    auth = headers.get("authorization")
    if auth is not None:
        return auth[7:] if auth.startswith("Bearer ") else auth
    return headers.get("x-api-key") or headers.get("x-goog-api-key") or ""


def _record_headers(request: web.Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        if key in DROPPED_HEADERS:
            continue
        out[key] = f"{out[key]}, {value}" if key in out else value
    ctype = out.get("content-type", "")
    if ctype.startswith("multipart/"):
        out["content-type"] = "multipart/form-data; boundary=<boundary>"
    return out


def _parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


class MockUpstream:
    """The mock server; ``script`` answers, ``log`` holds every received request in arrival order."""

    def __init__(self, script: Script | None = None, port: int = 0) -> None:
        self.script = script or Script()
        self.log: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.port = port

    async def start(self) -> None:
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def reset(self, script: Script) -> None:
        """Install a scenario's script and clear the log (the recorder's ``POST /__control/script``)."""
        self.script = script
        self.log = []

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> MockUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ----------------------------------------------------------------- dispatch

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        segments = request.path.split("/", 2)
        family = segments[1] if len(segments) > 1 and segments[1] in FAMILIES else "unknown"
        path = "/" + segments[2] if family != "unknown" and len(segments) > 2 else request.path
        if family == "unknown":
            path = request.path
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request, family, path)
        raw = await request.read()
        headers = _record_headers(request)
        body = _parse_body(raw)
        self.log.append(
            {
                "family": family,
                "method": request.method,
                "path": path,
                "query": request.query_string,
                "credential": _credential(headers),
                "headers": headers,
                "body": body,
            }
        )
        op, model, stream = self._operation(family, request.method, path, body)
        if op == "models":
            return _json_reply(self._model_list(family))
        if op == "unknown":
            return _json_reply({"error": "mock: unknown route"}, status=404)
        step = self.script.take(_credential(headers))
        if step.delay_ms:
            await asyncio.sleep(step.delay_ms / 1000)
        if op == "count":
            return _json_reply({"totalTokens": 42} if family == "gemini" else {"input_tokens": 42})
        return await self._reply(request, step, family, op, model, stream, first_tool_name(body))

    async def _websocket(self, request: web.Request, family: str, path: str) -> web.StreamResponse:
        """An upstream Responses WebSocket (Codex): the handshake is logged at once, every text frame received is
        added to that entry's ``ws_frames``, consumes one script step and is answered with Responses events as
        separate text frames, WS_FRAME_PACE seconds apart (FORMAT.md §4.1, §4.3)."""
        headers = _record_headers(request)
        credential = _credential(headers)
        entry: dict[str, Any] = {
            "family": family,
            "method": request.method,
            "path": path,
            "query": request.query_string,
            "credential": credential,
            "headers": headers,
            "body": None,
            "ws_frames": [],
        }
        self.log.append(entry)
        # the recorded mock accepted no permessage-deflate (its 101 has no Sec-WebSocket-Extensions)
        ws = web.WebSocketResponse(autoping=True, compress=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frame = _parse_body(msg.data.encode())
            entry["ws_frames"].append(frame)
            step = self.script.take(credential)
            if step.delay_ms:
                await asyncio.sleep(step.delay_ms / 1000)
            frames, close = ws_reply_frames(step, frame)
            for out in frames:
                await asyncio.sleep(WS_FRAME_PACE)
                try:
                    await ws.send_str(out if isinstance(out, str) else json.dumps(out, separators=(",", ":")))
                except ConnectionError:
                    return ws
            if close is None:
                continue
            await asyncio.sleep(WS_FRAME_PACE * 4)  # let the proxy forward the last frame first
            if close == "abort":
                _abort(request)
            else:
                await ws.close(code=1000, message=b"mock done")
            return ws
        return ws

    @staticmethod
    def _operation(family: str, method: str, path: str, body: Any) -> tuple[str, str, bool]:
        bare = path.rstrip("/")
        if method == "GET" and bare in ("/models", "/v1/models", "/v1beta/models"):
            return "models", "", False
        model = body.get("model", "") if isinstance(body, dict) else ""
        model = model if isinstance(model, str) else ""
        stream = isinstance(body, dict) and body.get("stream") is True
        if method != "POST":
            return "unknown", model, stream
        if family == "anthropic":
            if path == "/v1/messages":
                return "messages", model, stream
            if path == "/v1/messages/count_tokens":
                return "count", model, False
        elif family == "compat" and path == "/chat/completions":
            return "chat", model, stream
        elif family in ("compat", "codex") and path == "/responses":
            return "responses", model, stream
        elif family in ("compat", "codex") and path == "/responses/compact":
            return "compact", model, False
        elif family == "gemini" and path.startswith("/v1beta/models/") and ":" in path:
            name, _, verb = path[len("/v1beta/models/") :].rpartition(":")
            if verb == "countTokens":
                return "count", name, False
            if verb in ("generateContent", "streamGenerateContent"):
                return "generate", name, verb == "streamGenerateContent"
        return "unknown", model, stream

    @staticmethod
    def _model_list(family: str) -> dict[str, Any]:
        if family == "gemini":
            return {"models": [{"name": "models/gemini-mock", "displayName": "Gemini Mock"}]}
        if family == "anthropic":
            return {"data": [{"id": "claude-mock", "type": "model", "display_name": "Claude Mock"}], "has_more": False}
        return {"object": "list", "data": [{"id": "mock-model", "object": "model", "owned_by": "mock"}]}

    # ----------------------------------------------------------------- replies

    async def _reply(
        self, request: web.Request, step: Step, family: str, op: str, model: str, stream: bool, tool: str
    ) -> web.StreamResponse:
        reply = step.reply
        extra = {**step.headers, **reply.headers}
        if reply.kind == "raw":
            body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
            resp = web.Response(status=reply.status, text=body, headers=extra)
            resp.content_type = reply.content_type
            return resp
        if reply.kind == "error" or (reply.kind == "stream_error" and not stream):
            status = reply.status if reply.kind == "error" else 500
            body = reply.body if reply.body is not None else native_error(family, status)
            return _json_reply(body, status=status, headers=extra)
        events_family = "codex" if op in ("responses", "compact") else family
        if not stream:
            payload = json.dumps(render_json(events_family, model, tool, reply.content), separators=(",", ":"))
            data = payload.encode()
            if reply.kind == "cut":
                return await self._write_cut_json(request, data, reply, extra)
            return web.Response(body=data, content_type="application/json", headers=extra)
        events = render_events(events_family, op, model, tool, reply.content)
        if reply.kind == "cut":
            events = events[: reply.after]
        elif reply.kind == "stream_error":
            events = [*events[: reply.after], mid_stream_error(events_family, op, reply.after)]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **extra})
        await resp.prepare(request)
        for i, piece in enumerate(_chunked(events, step.chunking)):
            await resp.write(piece)
            await asyncio.sleep(0.001)
            if i == 0 and step.stall_ms:
                await asyncio.sleep(step.stall_ms / 1000)
        if reply.kind == "cut" and reply.abort:
            _abort(request)
            return resp
        await resp.write_eof()
        return resp

    @staticmethod
    async def _write_cut_json(
        request: web.Request, data: bytes, reply: Reply, extra: dict[str, str]
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json", **extra})
        await resp.prepare(request)
        await resp.write(data[: min(len(data) // 2, reply.after * 16)])
        if reply.abort:
            _abort(request)
            return resp
        await resp.write_eof()
        return resp


def _json_reply(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON reply as the recorded mock wrote it (FORMAT.md §4.3): compact, ``application/json`` without a
    charset (request-log files and api-call answers show these bytes and headers)."""
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return web.Response(status=status, body=data, content_type="application/json", headers=headers)


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


def _chunked(events: list[bytes], mode: str) -> Iterable[bytes]:
    if mode == "split":
        for event in events:
            mid = len(event) // 2
            yield event[:mid]
            yield event[mid:]
    elif mode == "merged":
        for i in range(0, len(events), 3):
            yield b"".join(events[i : i + 3])
    else:
        yield from events
