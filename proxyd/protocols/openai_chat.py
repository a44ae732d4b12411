"""OpenAI Chat Completions (`/v1/chat/completions`) ↔ the canonical representation.

Client side: a chat request body → Request; a Response → a `chat.completion` object; canonical stream events →
`chat.completion.chunk` SSE frames ending with `data: [DONE]`. Upstream side: a Request → a clean chat request;
a `chat.completion` → Response; upstream chunks → canonical stream events.

Lossy edges (what Chat Completions cannot express, and what this codec does instead):
- thinking is never sent upstream (no thinking input in Chat Completions); signatures and encrypted reasoning are
  dropped; on responses thinking text is `reasoning_content`;
- tool results carry text only: images inside a tool result are sent in a user message right after the tool
  messages; `is_error` has no field and is not sent; a tool result with no text is sent as `""`;
- images in assistant turns are not sent (Chat Completions assistant content is text only);
- a file given only by URL becomes a text part naming it (Chat Completions files take inline data or a file id);
- `cache_control`, `metadata` (OpenAI accepts it only with `store: true`) and foreign built-in tools are not sent;
- `Reasoning.budget_tokens` becomes a `reasoning_effort` level: -1 auto, 0 none, 1–512 minimal, 513–1024 low,
  1025–8192 medium, 8193–24576 high, ≥24577 xhigh (translation.md §6.3);
- request fields with no canonical home (`logprobs`, `logit_bias`, `modalities`, `audio`, `prediction`,
  `service_tier`, `store`, `stream_options`…) are not carried; images in system/developer messages are skipped
  (the canonical system prompt is text);
- `max_tokens` is what the upstream receives (the widest-supported name; `max_completion_tokens` is read on input
  and wins over `max_tokens`); legacy `function_call` turns get ids `call_legacy_<n>` paired by name;
- only the first choice of an upstream answer or stream is read (`n` > 1 is forwarded, the extra choices dropped).

Answers are shaped per upstream protocol as the reference shapes them (`SHAPES`: Claude, Codex/Responses, Gemini;
the full OpenAI shape otherwise), except Gemini's `created: 0` (translation.md §7 quirk 5, fixed per DECISIONS 7).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

from proxyd.protocols import jsonfast
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.canonical import (
    FilePart,
    Finish,
    FinishReason,
    Generation,
    ImagePart,
    Message,
    Part,
    Reasoning,
    Request,
    Response,
    ResponseFormat,
    StreamError,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    Tool,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    ToolChoice,
    ToolResultPart,
    Usage,
    UsageUpdate,
)
from proxyd.protocols.codec import NO_CONTEXT, NO_REQUEST_CONTEXT, AnswerContext, CodecError, RequestContext
from proxyd.protocols.common import parse_data_url, to_data_url
from proxyd.protocols.gemini_to_chat import chat_call_id, function_response_texts
from proxyd.protocols.ids import new_id, now
from proxyd.protocols.sse import SSEEvent

DONE_FRAME = b"data: [DONE]\n\n"
CHAT_ID_PREFIX = "chatcmpl-"

_EFFORT_LEVELS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
_FINISH_FROM_OPENAI: dict[str, FinishReason] = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "content_filter": FinishReason.CONTENT_FILTER,
    # Non-standard values some compatible upstreams send.
    "max_tokens": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "end_turn": FinishReason.STOP,
    "refusal": FinishReason.REFUSAL,
    "safety": FinishReason.CONTENT_FILTER,
}
_FINISH_TO_OPENAI: dict[FinishReason, str] = {
    FinishReason.STOP: "stop",
    FinishReason.LENGTH: "length",
    FinishReason.TOOL_CALLS: "tool_calls",
    FinishReason.CONTENT_FILTER: "content_filter",
    FinishReason.REFUSAL: "content_filter",
    FinishReason.PAUSE: "stop",
    FinishReason.ERROR: "stop",
}
_AUDIO_FORMAT_TO_MEDIA = {
    "mp3": "audio/mpeg", "wav": "audio/wav", "ogg": "audio/ogg", "flac": "audio/flac", "aac": "audio/aac",
    "webm": "audio/webm", "pcm16": "audio/pcm", "g711_ulaw": "audio/basic", "g711_alaw": "audio/basic",
}
_AUDIO_MEDIA_TO_FORMAT = {"audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/wav": "wav", "audio/x-wav": "wav",
                          "audio/wave": "wav", "audio/pcm": "pcm16"}
_EXTENSION_MEDIA = {
    "pdf": "application/pdf", "txt": "text/plain", "md": "text/markdown", "csv": "text/csv",
    "json": "application/json", "html": "text/html", "htm": "text/html", "xml": "application/xml",
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
    "mp3": "audio/mpeg", "wav": "audio/wav", "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
_ERROR_TYPE_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
                      "not_found_error": 404, "rate_limit_error": 429, "overloaded_error": 529}


# ============================================================================================ small helpers


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _opt_int(body: Mapping[str, Any], key: str, field: str | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not _is_int(value):
        raise CodecError(field or key, "must be an integer")
    return int(value)


def _opt_float(body: Mapping[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if not _is_number(value):
        raise CodecError(key, "must be a number")
    return float(value)


def _opt_str(body: Mapping[str, Any], key: str, field: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CodecError(field, "must be a string")
    return value


def _media_from_filename(filename: str | None) -> str:
    if not filename or "." not in filename:
        return ""
    return _EXTENSION_MEDIA.get(filename.rsplit(".", 1)[1].lower(), "")


def effort_for_budget(budget: int) -> str:
    """A thinking token budget → the reasoning_effort level of translation.md §6.3."""
    if budget < 0:
        return "auto"
    if budget == 0:
        return "none"
    if budget <= 512:
        return "minimal"
    if budget <= 1024:
        return "low"
    if budget <= 8192:
        return "medium"
    if budget <= 24576:
        return "high"
    return "xhigh"


def _safe_int(value: Any) -> int:
    if _is_int(value):
        return int(value)
    if isinstance(value, float) and value == value and abs(value) < 1e18:
        return int(value)
    return 0


def usage_from_openai(raw: Any) -> Usage | None:
    """An OpenAI `usage` object → Usage (prompt includes cached, completion includes reasoning, as canonical)."""
    if not isinstance(raw, Mapping):
        return None
    prompt = _safe_int(raw.get("prompt_tokens", raw.get("input_tokens")))
    completion = _safe_int(raw.get("completion_tokens", raw.get("output_tokens")))
    prompt_details = raw.get("prompt_tokens_details") or raw.get("input_tokens_details")
    completion_details = raw.get("completion_tokens_details") or raw.get("output_tokens_details")
    cached = _safe_int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, Mapping) else 0
    reasoning = (_safe_int(completion_details.get("reasoning_tokens"))
                 if isinstance(completion_details, Mapping) else 0)
    total = raw.get("total_tokens")
    return Usage(input_tokens=prompt, output_tokens=completion, cached_tokens=cached, reasoning_tokens=reasoning,
                 total_tokens=_safe_int(total) if total is not None else None)


def usage_to_openai(usage: Usage) -> dict[str, Any]:
    """Usage → an OpenAI `usage` object with both details objects."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def finish_from_openai(native: Any, saw_tool_calls: bool) -> FinishReason:
    """An OpenAI finish_reason → FinishReason; tool calls win over `stop` (DECISIONS 7)."""
    reason = _FINISH_FROM_OPENAI.get(native.lower(), FinishReason.STOP) if isinstance(native, str) \
        else FinishReason.STOP
    if saw_tool_calls and reason is FinishReason.STOP:
        return FinishReason.TOOL_CALLS
    return reason


def finish_to_openai(reason: FinishReason, has_tool_calls: bool) -> str:
    """FinishReason → OpenAI; `tool_calls` exactly when tool calls were sent (DECISIONS 7)."""
    if has_tool_calls:
        return "tool_calls"
    if reason is FinishReason.TOOL_CALLS:
        return "stop"
    return _FINISH_TO_OPENAI.get(reason, "stop")


def chat_id(candidate: str | None) -> str:
    """The upstream's id as is (the reference keeps `msg_…`, `resp_…`, Gemini's bare `responseId`); minted
    `chatcmpl-…` only when the upstream gave none."""
    if candidate:
        return candidate
    return new_id(CHAT_ID_PREFIX)


def openai_error_body(status: int, message: str) -> dict[str, Any]:
    """The OpenAI error envelope for a status and an error text (a JSON error text is unwrapped, not nested)."""
    from proxyd.http.errors import openai_type_code

    error_type, code = openai_type_code(status)
    text = message
    stripped = message.strip()
    if stripped.startswith("{"):
        try:
            parsed = json.loads(stripped)
        except ValueError:
            parsed = None
        inner = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            text = inner["message"]
            if isinstance(inner.get("type"), str) and inner["type"]:
                error_type = inner["type"]
            if isinstance(inner.get("code"), str) and inner["code"]:
                code = inner["code"]
        elif isinstance(inner, str):
            text = inner
        elif isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
            text = parsed["message"]
    return {"error": {"message": text or "upstream error", "type": error_type, "code": code}}


def _chunks_of(value: Any) -> str:
    """Text of a `content` that is a string or a list of text parts (robust to odd upstreams)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, Mapping) and isinstance(item.get("text"), str):
                out.append(item["text"])
        return "".join(out)
    return ""


# ============================================================================================ request decoding


class _RequestDecoder:
    """One client chat body → Request; keeps the tool-call-id → name map and the merge state."""

    def __init__(self) -> None:
        self.system: list[TextPart] = []
        self.messages: list[Message] = []
        self.call_names: dict[str, str] = {}
        self.legacy_calls: list[tuple[str, str]] = []  # (id, name) of legacy function_call turns, unanswered
        self.legacy_counter = 0
        self.open_tool_turn = False  # the last message was built from tool messages and takes more parts

    # ------------------------------------------------------------------ parts

    def text_parts(self, content: Any, field: str, *, allow_refusal: bool = False) -> list[TextPart]:
        if content is None:
            return []
        if isinstance(content, str):
            return [TextPart(content)] if content else []
        if not isinstance(content, list):
            raise CodecError(field, "must be a string or an array of content parts")
        out: list[TextPart] = []
        for i, item in enumerate(content):
            f = f"{field}[{i}]"
            if isinstance(item, str):
                if item:
                    out.append(TextPart(item))
                continue
            if not isinstance(item, Mapping):
                raise CodecError(f, "must be an object")
            kind = item.get("type", "text")
            if kind in ("text", "input_text", "output_text") or (allow_refusal and kind == "refusal"):
                key = "refusal" if kind == "refusal" else "text"
                text = item.get(key)
                if not isinstance(text, str):
                    raise CodecError(f"{f}.{key}", "must be a string")
                if text:
                    out.append(TextPart(text))
            elif kind in ("image_url", "input_audio", "file", "input_image"):
                continue  # not expressible here (system prompt / assistant content): skipped
            else:
                raise CodecError(f"{f}.type", f"unsupported content part type {kind!r}")
        return out

    def user_parts(self, content: Any, field: str) -> list[TextPart | ImagePart | FilePart]:
        if content is None:
            return []
        if isinstance(content, str):
            return [TextPart(content)] if content else []
        if not isinstance(content, list):
            raise CodecError(field, "must be a string or an array of content parts")
        out: list[TextPart | ImagePart | FilePart] = []
        for i, item in enumerate(content):
            f = f"{field}[{i}]"
            if isinstance(item, str):
                if item:
                    out.append(TextPart(item))
                continue
            if not isinstance(item, Mapping):
                raise CodecError(f, "must be an object")
            kind = item.get("type", "text")
            if kind in ("text", "input_text", "output_text", "refusal"):
                key = "refusal" if kind == "refusal" else "text"
                text = item.get(key)
                if not isinstance(text, str):
                    raise CodecError(f"{f}.{key}", "must be a string")
                if text:
                    out.append(TextPart(text))
            elif kind in ("image_url", "input_image"):
                out.append(self.image_part(item.get("image_url"), f"{f}.image_url"))
            elif kind == "input_audio":
                out.append(self.audio_part(item.get("input_audio"), f"{f}.input_audio"))
            elif kind == "file":
                out.append(self.file_part(item.get("file"), f"{f}.file"))
            else:
                raise CodecError(f"{f}.type", f"unsupported content part type {kind!r}")
        return out

    @staticmethod
    def image_part(value: Any, field: str) -> ImagePart:
        detail: str | None = None
        if isinstance(value, str):
            url = value
        elif isinstance(value, Mapping):
            url = value.get("url")
            if not isinstance(url, str):
                raise CodecError(f"{field}.url", "must be a string")
            raw_detail = value.get("detail")
            if raw_detail is not None and not isinstance(raw_detail, str):
                raise CodecError(f"{field}.detail", "must be a string")
            detail = raw_detail
        else:
            raise CodecError(field, "must be an object with a url")
        if not url:
            raise CodecError(f"{field}.url", "must not be empty")
        parsed = parse_data_url(url)
        if parsed is not None:
            return ImagePart(media_type=parsed[0], data=parsed[1], detail=detail)
        return ImagePart(url=url, detail=detail)

    @staticmethod
    def audio_part(value: Any, field: str) -> FilePart:
        if not isinstance(value, Mapping):
            raise CodecError(field, "must be an object")
        data = value.get("data")
        if not isinstance(data, str):
            raise CodecError(f"{field}.data", "must be a string")
        fmt = value.get("format", "wav")
        if not isinstance(fmt, str):
            raise CodecError(f"{field}.format", "must be a string")
        return FilePart(media_type=_AUDIO_FORMAT_TO_MEDIA.get(fmt.lower(), f"audio/{fmt.lower()}"), data=data)

    @staticmethod
    def file_part(value: Any, field: str) -> FilePart:
        if not isinstance(value, Mapping):
            raise CodecError(field, "must be an object")
        file_data = value.get("file_data")
        file_id = value.get("file_id")
        filename = value.get("filename")
        for key, v in (("file_data", file_data), ("file_id", file_id), ("filename", filename)):
            if v is not None and not isinstance(v, str):
                raise CodecError(f"{field}.{key}", "must be a string")
        if file_data is None and file_id is None:
            raise CodecError(field, "needs file_data or file_id")
        media = _media_from_filename(filename)
        data = file_data
        if file_data is not None:
            parsed = parse_data_url(file_data)
            if parsed is not None:
                media, data = parsed
        return FilePart(media_type=media, data=data, file_id=file_id, filename=filename)

    # ------------------------------------------------------------------ messages

    def add(self, role: Literal["user", "assistant"], parts: list[Part], name: str | None = None,
            *, tool_turn: bool = False, merge_into_tool_turn: bool = False) -> None:
        if (tool_turn or merge_into_tool_turn) and self.open_tool_turn and self.messages:
            last = self.messages[-1]
            self.messages[-1] = Message(role="user", parts=last.parts + tuple(parts), name=last.name or name)
            self.open_tool_turn = tool_turn
            return
        self.open_tool_turn = tool_turn
        if not parts:
            return
        self.messages.append(Message(role=role, parts=tuple(parts), name=name))

    def message(self, raw: Any, index: int) -> None:
        f = f"messages[{index}]"
        if not isinstance(raw, Mapping):
            raise CodecError(f, "must be an object")
        role = raw.get("role")
        if not isinstance(role, str):
            raise CodecError(f"{f}.role", "must be a string")
        name = _opt_str(raw, "name", f"{f}.name")
        content = raw.get("content")
        if role in ("system", "developer"):
            self.system.extend(self.text_parts(content, f"{f}.content"))
            self.open_tool_turn = False
        elif role == "user":
            self.add("user", list(self.user_parts(content, f"{f}.content")), name, merge_into_tool_turn=True)
        elif role == "assistant":
            self.add("assistant", self.assistant_parts(raw, f), name)
        elif role == "tool":
            self.add("user", [self.tool_result(raw, f)], tool_turn=True)
        elif role == "function":
            self.add("user", [self.function_result(raw, f)], tool_turn=True)
        else:
            raise CodecError(f"{f}.role", f"unsupported role {role!r}")

    def assistant_parts(self, raw: Mapping[str, Any], f: str) -> list[Part]:
        parts: list[Part] = []
        reasoning = raw.get("reasoning_content")
        if reasoning is not None:
            if not isinstance(reasoning, str):
                raise CodecError(f"{f}.reasoning_content", "must be a string")
            if reasoning:
                parts.append(ThinkingPart(text=reasoning))
        parts.extend(self.text_parts(raw.get("content"), f"{f}.content", allow_refusal=True))
        refusal = raw.get("refusal")
        if refusal is not None:
            if not isinstance(refusal, str):
                raise CodecError(f"{f}.refusal", "must be a string")
            if refusal:
                parts.append(TextPart(refusal))
        tool_calls = raw.get("tool_calls")
        if tool_calls is not None:
            if not isinstance(tool_calls, list):
                raise CodecError(f"{f}.tool_calls", "must be an array")
            for j, call in enumerate(tool_calls):
                parts.append(self.tool_call(call, f"{f}.tool_calls[{j}]"))
        function_call = raw.get("function_call")
        if function_call is not None:
            fname, arguments = self.function(function_call, f"{f}.function_call")
            self.legacy_counter += 1
            call_id = f"call_legacy_{self.legacy_counter}"
            self.legacy_calls.append((call_id, fname))
            self.call_names[call_id] = fname
            parts.append(ToolCallPart(id=call_id, name=fname, arguments=arguments))
        return parts

    @staticmethod
    def function(raw: Any, field: str) -> tuple[str, str]:
        if not isinstance(raw, Mapping):
            raise CodecError(field, "must be an object")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise CodecError(f"{field}.name", "must be a non-empty string")
        arguments = raw.get("arguments", "{}")
        if arguments is None:
            arguments = "{}"
        elif isinstance(arguments, Mapping | list):
            arguments = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
        elif not isinstance(arguments, str):
            raise CodecError(f"{field}.arguments", "must be a string")
        return name, arguments

    def tool_call(self, raw: Any, field: str) -> ToolCallPart:
        if not isinstance(raw, Mapping):
            raise CodecError(field, "must be an object")
        call_type = raw.get("type", "function")
        if call_type != "function":
            raise CodecError(f"{field}.type", f"unsupported tool call type {call_type!r}")
        call_id = raw.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise CodecError(f"{field}.id", "must be a non-empty string")
        name, arguments = self.function(raw.get("function"), f"{field}.function")
        self.call_names[call_id] = name
        return ToolCallPart(id=call_id, name=name, arguments=arguments)

    def tool_result(self, raw: Mapping[str, Any], f: str) -> ToolResultPart:
        call_id = raw.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise CodecError(f"{f}.tool_call_id", "must be a non-empty string")
        content = raw.get("content")
        parts: list[TextPart | ImagePart | FilePart]
        if isinstance(content, Mapping | int | float | bool):
            parts = [TextPart(json.dumps(content, ensure_ascii=False))]
        else:
            parts = self.user_parts(content, f"{f}.content")
        name = self.call_names.get(call_id) or _opt_str(raw, "name", f"{f}.name")
        return ToolResultPart(tool_call_id=call_id, content=tuple(parts), name=name)

    def function_result(self, raw: Mapping[str, Any], f: str) -> ToolResultPart:
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise CodecError(f"{f}.name", "must be a non-empty string")
        call_id = None
        for k, (cid, cname) in enumerate(self.legacy_calls):
            if cname == name:
                call_id = cid
                del self.legacy_calls[k]
                break
        if call_id is None:
            self.legacy_counter += 1
            call_id = f"call_legacy_{self.legacy_counter}"
        parts = self.user_parts(raw.get("content"), f"{f}.content")
        return ToolResultPart(tool_call_id=call_id, content=tuple(parts), name=name)


def _decode_tools(body: Mapping[str, Any]) -> tuple[Tool, ...]:
    tools: list[Tool] = []
    raw_tools = body.get("tools")
    if raw_tools is not None:
        if not isinstance(raw_tools, list):
            raise CodecError("tools", "must be an array")
        for i, raw in enumerate(raw_tools):
            f = f"tools[{i}]"
            if not isinstance(raw, Mapping):
                raise CodecError(f, "must be an object")
            kind = raw.get("type", "function")
            if kind == "function":
                tools.append(_function_tool(raw.get("function"), f"{f}.function"))
            elif isinstance(kind, str) and kind:
                name = raw.get(kind, {}).get("name") if isinstance(raw.get(kind), Mapping) else None
                tools.append(Tool(name=name if isinstance(name, str) and name else kind, builtin=dict(raw),
                                  builtin_protocol=WireProtocol.OPENAI_CHAT))
            else:
                raise CodecError(f"{f}.type", "must be a non-empty string")
    functions = body.get("functions")
    if functions is not None:
        if not isinstance(functions, list):
            raise CodecError("functions", "must be an array")
        for i, raw in enumerate(functions):
            tools.append(_function_tool(raw, f"functions[{i}]"))
    return tuple(tools)


def _function_tool(raw: Any, field: str) -> Tool:
    if not isinstance(raw, Mapping):
        raise CodecError(field, "must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise CodecError(f"{field}.name", "must be a non-empty string")
    description = raw.get("description") or ""
    if not isinstance(description, str):
        raise CodecError(f"{field}.description", "must be a string")
    parameters = raw.get("parameters")
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    elif not isinstance(parameters, Mapping):
        raise CodecError(f"{field}.parameters", "must be an object")
    strict = raw.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise CodecError(f"{field}.strict", "must be a boolean")
    return Tool(name=name, description=description, parameters=dict(parameters), strict=strict)


def _decode_tool_choice(body: Mapping[str, Any]) -> ToolChoice | None:
    raw = body.get("tool_choice")
    field = "tool_choice"
    if raw is None and body.get("function_call") is not None:
        raw, field = body.get("function_call"), "function_call"
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise CodecError("parallel_tool_calls", "must be a boolean")
    choice: ToolChoice | None = None
    if raw is None:
        pass
    elif isinstance(raw, str):
        if raw not in ("auto", "none", "required"):
            raise CodecError(field, f"unsupported value {raw!r}")
        choice = ToolChoice(mode=raw)  # type: ignore[arg-type]
    elif isinstance(raw, Mapping):
        kind = raw.get("type", "function")
        if kind == "function":
            fn = raw.get("function") if field == "tool_choice" else raw
            if field == "tool_choice" and fn is None and isinstance(raw.get("name"), str):
                fn = raw  # lenient: {"type":"function","name":...}
            name = fn.get("name") if isinstance(fn, Mapping) else None
            if not isinstance(name, str) or not name:
                raise CodecError(f"{field}.function.name" if field == "tool_choice" else f"{field}.name",
                                 "must be a non-empty string")
            choice = ToolChoice(mode="tool", name=name)
        elif kind == "allowed_tools":
            allowed = raw.get("allowed_tools")
            mode = allowed.get("mode") if isinstance(allowed, Mapping) else None
            choice = ToolChoice(mode="required" if mode == "required" else "auto")
        elif isinstance(kind, str) and kind in ("auto", "none", "required"):
            choice = ToolChoice(mode=kind)  # type: ignore[arg-type]
        else:
            raise CodecError(f"{field}.type", f"unsupported tool choice type {kind!r}")
    else:
        raise CodecError(field, "must be a string or an object")
    if parallel is not None:
        choice = ToolChoice(mode=choice.mode, name=choice.name, parallel=parallel) if choice \
            else ToolChoice(parallel=parallel)
    return choice


def _decode_response_format(body: Mapping[str, Any]) -> ResponseFormat | None:
    raw = body.get("response_format")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise CodecError("response_format", "must be an object")
    kind = raw.get("type")
    if kind in ("text", "json_object"):
        return ResponseFormat(type=kind)
    if kind == "json_schema":
        spec = raw.get("json_schema")
        if not isinstance(spec, Mapping):
            raise CodecError("response_format.json_schema", "must be an object")
        schema = spec.get("schema")
        if schema is not None and not isinstance(schema, Mapping):
            raise CodecError("response_format.json_schema.schema", "must be an object")
        name = _opt_str(spec, "name", "response_format.json_schema.name")
        strict = spec.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise CodecError("response_format.json_schema.strict", "must be a boolean")
        return ResponseFormat(type="json_schema", schema=dict(schema) if schema is not None else None, name=name,
                              strict=strict)
    raise CodecError("response_format.type", "must be text, json_object or json_schema")


_GENERATION_KEYS = frozenset({"max_completion_tokens", "max_tokens", "stop", "temperature", "top_p", "top_k", "seed",
                              "presence_penalty", "frequency_penalty", "n", "response_format"})
_NO_GENERATION = Generation()  # immutable, so one instance serves every body without sampling settings


def _decode_generation(body: Mapping[str, Any]) -> Generation:
    if _GENERATION_KEYS.isdisjoint(body):
        return _NO_GENERATION
    max_tokens = _opt_int(body, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = _opt_int(body, "max_tokens")
    stop_raw = body.get("stop")
    stop: tuple[str, ...] = ()
    if isinstance(stop_raw, str):
        stop = (stop_raw,) if stop_raw else ()
    elif isinstance(stop_raw, list):
        if not all(isinstance(s, str) for s in stop_raw):
            raise CodecError("stop", "must be a string or an array of strings")
        stop = tuple(s for s in stop_raw if s)
    elif stop_raw is not None:
        raise CodecError("stop", "must be a string or an array of strings")
    return Generation(
        max_tokens=max_tokens,
        temperature=_opt_float(body, "temperature"),
        top_p=_opt_float(body, "top_p"),
        top_k=_opt_int(body, "top_k"),
        stop=stop,
        seed=_opt_int(body, "seed"),
        presence_penalty=_opt_float(body, "presence_penalty"),
        frequency_penalty=_opt_float(body, "frequency_penalty"),
        candidate_count=_opt_int(body, "n"),
        response_format=_decode_response_format(body),
    )


def _decode_reasoning(body: Mapping[str, Any]) -> Reasoning | None:
    effort = body.get("reasoning_effort")
    if effort is None:
        nested = body.get("reasoning")
        if isinstance(nested, Mapping):
            effort = nested.get("effort")
    if effort is None:
        return None
    if not isinstance(effort, str):
        raise CodecError("reasoning_effort", "must be a string")
    level = effort.strip().lower()
    if level == "auto":
        return Reasoning(budget_tokens=-1)
    if level not in _EFFORT_LEVELS:
        raise CodecError("reasoning_effort", f"unsupported value {effort!r}")
    return Reasoning(effort=level)


# ============================================================================================ request encoding


def _image_to_openai(part: ImagePart) -> dict[str, Any]:
    url = part.url if part.url else to_data_url(part.media_type or "image/png", part.data or "")
    image: dict[str, Any] = {"url": url}
    if part.detail:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def _file_to_openai(part: FilePart) -> dict[str, Any]:
    media = (part.media_type or "").lower()
    if part.data is not None and media.startswith("audio/"):
        fmt = _AUDIO_MEDIA_TO_FORMAT.get(media, media.split("/", 1)[1] or "wav")
        return {"type": "input_audio", "input_audio": {"data": part.data, "format": fmt}}
    if part.data is not None or part.file_id:
        file: dict[str, Any] = {}
        if part.data is not None:
            file["file_data"] = to_data_url(part.media_type or "application/octet-stream", part.data)
        if part.file_id:
            file["file_id"] = part.file_id
        if part.filename:
            file["filename"] = part.filename
        return {"type": "file", "file": file}
    label = part.filename or "file"
    return {"type": "text", "text": f"[{label}: {part.url or ''}]"}


def _content_value(items: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A single text part travels as a plain string; anything else as a parts array."""
    if len(items) == 1 and items[0]["type"] == "text":
        return str(items[0]["text"])
    return items


def _user_items(parts: Iterable[Part]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, TextPart):
            items.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            items.append(_image_to_openai(part))
        elif isinstance(part, FilePart):
            items.append(_file_to_openai(part))
    return items


def _tool_message(part: ToolResultPart) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A tool result → its `tool` message, plus the non-text parts to re-send in a user message."""
    texts = [{"type": "text", "text": p.text} for p in part.content if isinstance(p, TextPart)]
    others = _user_items(p for p in part.content if not isinstance(p, TextPart))
    content: str | list[dict[str, Any]]
    if not texts:
        content = ""
    elif len(texts) == 1:
        content = str(texts[0]["text"])
    else:
        content = texts
    return {"role": "tool", "tool_call_id": part.tool_call_id, "content": content}, others


@attrs.frozen
class ChatRequestShape:
    """How the reference's X→chat translator of one client protocol shapes the upstream request."""

    system_parts: bool = False  # the system message's content is a parts array even for one text
    assistant_text_parts: bool = False  # an assistant turn's text is a parts array even for one text
    user_text_parts: bool = False  # a user message's text is a parts array even for one text
    tools_only_no_content: bool = False  # an assistant turn with only tool calls has no `content` key
    tool_message_name: bool = False  # `tool` messages carry the function's `name`
    stop_list: bool = False  # `stop` is always an array
    send_user: bool = True  # the client's user id becomes `user`
    tools_only_empty_content: bool = False  # an assistant turn with only tool calls has `content: ""`
    empty_description: bool = False  # function tools always carry `description` (may be "")
    # Gemini clients (protocols/gemini_to_chat): tool messages carry the functionResponse JSON (name, text per
    # response, in order); None = the result text. Minted Gemini call ids get the reference's `call_<hex>` shape.
    gemini_results: tuple[tuple[str, str], ...] | None = None


DEFAULT_REQUEST_SHAPE = ChatRequestShape()
REQUEST_SHAPES: dict[WireProtocol, ChatRequestShape] = {
    WireProtocol.CLAUDE: ChatRequestShape(system_parts=True, assistant_text_parts=True, tool_message_name=True,
                                          stop_list=True, send_user=False),
    WireProtocol.OPENAI_RESPONSES: ChatRequestShape(user_text_parts=True, tools_only_no_content=True),
    WireProtocol.GEMINI: ChatRequestShape(system_parts=True, tools_only_empty_content=True, empty_description=True,
                                          gemini_results=()),
}
"""Upstream request shape per client protocol; anything else (no context) is DEFAULT_REQUEST_SHAPE."""


def request_shape_for(context: RequestContext) -> ChatRequestShape:
    """The chat request shape for the exchange's client protocol (DEFAULT_REQUEST_SHAPE when unknown)."""
    shape = REQUEST_SHAPES.get(context.client, DEFAULT_REQUEST_SHAPE) if context.client is not None \
        else DEFAULT_REQUEST_SHAPE
    if shape.user_text_parts and not isinstance((context.client_body or {}).get("input"), list):
        shape = attrs.evolve(shape, user_text_parts=False)  # a string `input` stays a string
    if shape.gemini_results is not None:
        shape = attrs.evolve(shape, gemini_results=function_response_texts(context.client_body))
    return shape


class _ToolTexts:
    """The tool message texts of a Gemini client's function responses, taken in order (ChatRequestShape)."""

    def __init__(self, shape: ChatRequestShape) -> None:
        self.pending = list(shape.gemini_results or ())
        self.ids = shape.gemini_results is not None

    def call_id(self, call_id: str) -> str:
        return chat_call_id(call_id) if self.ids else call_id

    def text(self, result: ToolResultPart) -> str | None:
        """The functionResponse text for `result`, when the next one in order is for the same function."""
        if not self.pending:
            return None
        name, text = self.pending.pop(0)
        return text if not result.name or name == result.name else None


def _encode_messages(request: Request, shape: ChatRequestShape = DEFAULT_REQUEST_SHAPE) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    tool_texts = _ToolTexts(shape)
    system = [p for p in request.system if p.text]
    if system:
        items = [{"type": "text", "text": p.text} for p in system]
        out.append({"role": "system", "content": items if shape.system_parts else _content_value(items)})
    for message in request.messages:
        if message.role == "assistant":
            texts = [p.text for p in message.parts if isinstance(p, TextPart) and p.text]
            calls = [p for p in message.parts if isinstance(p, ToolCallPart)]
            entry: dict[str, Any] = {"role": "assistant"}
            if len(texts) == 1 and not shape.assistant_text_parts:
                entry["content"] = texts[0]
            elif texts:
                entry["content"] = [{"type": "text", "text": t} for t in texts]
            else:
                entry["content"] = None if calls and not shape.tools_only_empty_content else ""
            if calls:
                entry["tool_calls"] = [{"id": tool_texts.call_id(c.id), "type": "function",
                                        "function": {"name": c.name, "arguments": c.arguments or "{}"}}
                                       for c in calls]
            if message.name:
                entry["name"] = message.name
            if entry["content"] == "" and not calls and not any(isinstance(p, ThinkingPart | ImagePart)
                                                                  for p in message.parts):
                continue
            if entry["content"] is None and shape.tools_only_no_content:
                del entry["content"]
            out.append(entry)
            continue
        results = [p for p in message.parts if isinstance(p, ToolResultPart)]
        extra: list[dict[str, Any]] = []
        for result in results:
            tool_msg, others = _tool_message(result)
            tool_msg["tool_call_id"] = tool_texts.call_id(result.tool_call_id)
            gemini_text = tool_texts.text(result)
            if gemini_text is not None:
                tool_msg["content"] = gemini_text
            if shape.tool_message_name and result.name:
                tool_msg["name"] = result.name
            out.append(tool_msg)
            extra.extend(others)
        items = extra + _user_items(p for p in message.parts if not isinstance(p, ToolResultPart))
        if items:
            content = items if shape.user_text_parts else _content_value(items)
            user: dict[str, Any] = {"role": "user", "content": content}
            if message.name:
                user["name"] = message.name
            out.append(user)
    return out


def _encode_tools(request: Request, shape: ChatRequestShape = DEFAULT_REQUEST_SHAPE) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    for tool in request.tools:
        if tool.builtin is not None:
            if tool.builtin_protocol is WireProtocol.OPENAI_CHAT:
                tools.append(dict(tool.builtin))
            continue
        fn: dict[str, Any] = {"name": tool.name}
        if tool.description or shape.empty_description:
            fn["description"] = tool.description or ""
        fn["parameters"] = dict(tool.parameters)
        if tool.strict is not None:
            fn["strict"] = tool.strict
        tools.append({"type": "function", "function": fn})
    return tools


def _encode_tool_choice(choice: ToolChoice) -> str | dict[str, Any]:
    if choice.mode == "tool" and choice.name:
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode if choice.mode != "tool" else "required"


def encode_chat_request(
    request: Request, model: str, shape: ChatRequestShape = DEFAULT_REQUEST_SHAPE
) -> dict[str, Any]:
    """A canonical Request → a Chat Completions request body (in the client pair's `shape`)."""
    body: dict[str, Any] = {"model": model, "messages": _encode_messages(request, shape)}
    tools = _encode_tools(request, shape)
    if tools:
        body["tools"] = tools
        if request.tool_choice is not None:
            body["tool_choice"] = _encode_tool_choice(request.tool_choice)
            if request.tool_choice.parallel is not None:
                body["parallel_tool_calls"] = request.tool_choice.parallel
    gen = request.generation
    if gen.max_tokens is not None:
        body["max_tokens"] = gen.max_tokens
    for key, value in (("temperature", gen.temperature), ("top_p", gen.top_p), ("top_k", gen.top_k),
                       ("seed", gen.seed), ("presence_penalty", gen.presence_penalty),
                       ("frequency_penalty", gen.frequency_penalty), ("n", gen.candidate_count)):
        if value is not None:
            body[key] = value
    if gen.stop:
        body["stop"] = gen.stop[0] if len(gen.stop) == 1 and not shape.stop_list else list(gen.stop)
    fmt = gen.response_format
    if fmt is not None:
        if fmt.type == "json_schema":
            spec: dict[str, Any] = {"name": fmt.name or "response"}
            if fmt.schema is not None:
                spec["schema"] = dict(fmt.schema)
            if fmt.strict is not None:
                spec["strict"] = fmt.strict
            body["response_format"] = {"type": "json_schema", "json_schema": spec}
        else:
            body["response_format"] = {"type": fmt.type}
    reasoning = request.reasoning
    if reasoning is not None:
        if reasoning.effort:
            body["reasoning_effort"] = reasoning.effort
        elif reasoning.budget_tokens is not None:
            body["reasoning_effort"] = effort_for_budget(reasoning.budget_tokens)
    if request.user and shape.send_user:
        body["user"] = request.user
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    else:
        body["stream"] = False  # said explicitly, as the reference's translators do
    return body


# ============================================================================================ answer shapes


@attrs.frozen
class ChatShape:
    """How a chat answer translated from one upstream protocol looks.

    The reference translates per pair, so its chat answers differ per upstream: which fields are present (or
    explicitly null), the usage details, how stream chunks are cut. `SHAPES` names the pairs; the default
    (no context, or an upstream without an entry) is the full OpenAI shape.
    """

    logprobs: bool = True  # choices carry `logprobs: null`
    refusal: bool = True  # messages carry `refusal: null`
    message_nulls: bool = False  # messages carry `reasoning_content` / `tool_calls` as null when absent
    tools_only_content: str | None = None  # `content` of a message with tool calls and no text
    native_finish: bool = False  # choices carry `native_finish_reason`
    native_finish_names: bool = False  # `finish_reason` is the upstream's own value lower-cased (Gemini)
    usage: Literal["full", "claude", "gemini"] = "full"
    named_tool_ids: bool = False  # ids minted for the upstream's unnamed calls: `<name>-<unix nanos>-<n>`
    # streams
    role_chunk: bool = True  # a first chunk of its own with the role
    role_chunk_content: bool = True  # … and `content: ""`
    role_on_deltas: bool = False  # every content / reasoning / tool-call-header delta repeats the role
    chunk_per_upstream_event: bool = False  # one chunk (every delta key present) per upstream event
    whole_tool_arguments: bool = False  # a tool call is sent once it ended, with all its arguments
    finish_with_usage: bool = False  # the finish chunk carries the usage
    usage_chunk: bool = True  # a `choices: []` usage chunk before [DONE]
    thinking_break: bool = False  # a "\n\n" reasoning delta closes each run of reasoning (Codex)
    native_errors: bool = False  # an upstream error event is relayed as {"error": {message, type}} + [DONE]
    upstream_error_codes: bool = False  # error events: type `server_error`, `code` the upstream's own (Codex)


DEFAULT_SHAPE = ChatShape()
SHAPES: dict[WireProtocol, ChatShape] = {
    WireProtocol.CLAUDE: ChatShape(
        logprobs=False, refusal=False, tools_only_content="", usage="claude", role_chunk_content=False,
        whole_tool_arguments=True, finish_with_usage=True, native_errors=True,
    ),
    WireProtocol.OPENAI_RESPONSES: ChatShape(
        logprobs=False, refusal=False, message_nulls=True, native_finish=True, role_chunk=False,
        role_on_deltas=True, finish_with_usage=True, usage_chunk=False, thinking_break=True,
        upstream_error_codes=True,
    ),
    WireProtocol.GEMINI: ChatShape(
        logprobs=False, refusal=False, message_nulls=True, native_finish=True, native_finish_names=True,
        usage="gemini", named_tool_ids=True, role_chunk=False, role_on_deltas=True, chunk_per_upstream_event=True,
        finish_with_usage=True, usage_chunk=False,
    ),
}


def shape_for(context: AnswerContext) -> ChatShape:
    """The answer shape for the exchange's upstream protocol (the full OpenAI shape when unknown)."""
    return SHAPES.get(context.source, DEFAULT_SHAPE) if context.source is not None else DEFAULT_SHAPE


def usage_for_shape(usage: Usage, shape: ChatShape) -> dict[str, Any]:
    """Usage in the pair's style: Claude adds cache-creation counts, Gemini names only non-zero details."""
    if shape.usage == "full":
        return usage_to_openai(usage)
    out: dict[str, Any] = {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                           "total_tokens": usage.total}
    if shape.usage == "claude":
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens,
                                        "cached_creation_tokens": usage.cache_creation_tokens,
                                        "cache_write_tokens": usage.cache_creation_tokens}
        return out
    if usage.cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def _finish_for_shape(reason: FinishReason, native: str | None, has_tool_calls: bool, shape: ChatShape,
                      *, stream: bool) -> tuple[str, str | None]:
    """(`finish_reason`, `native_finish_reason`) of a choice.

    Gemini: the native value lower-cased (`max_tokens`), `tool_calls` when calls were made; its streams keep the
    native value in `native_finish_reason`. Others: the OpenAI value; native = the incomplete reason on length.
    """
    finish = finish_to_openai(reason, has_tool_calls)
    if shape.native_finish_names and native:
        own = native.lower()
        if not has_tool_calls:
            finish = own
        return finish, own if stream else finish
    if reason is FinishReason.LENGTH and native and native not in ("length", "incomplete"):
        return finish, native
    return finish, finish


def _minted(call_id: str) -> bool:
    """An id the upstream decoder made up (the upstream gave none): `call_…` or empty."""
    return not call_id or call_id.startswith("call_")


def named_tool_id(name: str, ordinal: int) -> str:
    """The reference's id for a Gemini function call without one: `<name>-<unix nanos>-<ordinal from 1>`."""
    return f"{name}-{time.time_ns()}-{ordinal}"


# ============================================================================================ responses


def _tool_call_to_openai(part: ToolCallPart, call_id: str | None = None) -> dict[str, Any]:
    return {"id": call_id or part.id, "type": "function",
            "function": {"name": part.name, "arguments": part.arguments}}


def encode_chat_response(response: Response, model: str, shape: ChatShape = DEFAULT_SHAPE) -> dict[str, Any]:
    """A canonical Response → a `chat.completion` object for the client that asked for `model`."""
    texts = [p.text for p in response.content if isinstance(p, TextPart)]
    thinking = [p.text for p in response.content if isinstance(p, ThinkingPart) and p.text and not p.redacted]
    calls = [p for p in response.content if isinstance(p, ToolCallPart)]
    images = [p for p in response.content if isinstance(p, ImagePart)]
    content: str | None = "".join(texts) if texts or not calls else shape.tools_only_content
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if shape.refusal:
        message["refusal"] = None
    if thinking or shape.message_nulls:
        message["reasoning_content"] = "".join(thinking) if thinking else None
    if calls:
        message["tool_calls"] = [
            _tool_call_to_openai(c, named_tool_id(c.name, n) if shape.named_tool_ids and _minted(c.id) else None)
            for n, c in enumerate(calls, 1)]
    elif shape.message_nulls:
        message["tool_calls"] = None
    if images:
        message["images"] = [{"type": "image_url", "image_url": _image_to_openai(img)["image_url"], "index": i}
                             for i, img in enumerate(images)]
    finish, native = _finish_for_shape(response.finish_reason, response.native_finish_reason, bool(calls), shape,
                                       stream=False)
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
    if shape.logprobs:
        choice["logprobs"] = None
    if shape.native_finish:
        choice["native_finish_reason"] = native
    out: dict[str, Any] = {
        "id": chat_id(response.id),
        "object": "chat.completion",
        "created": response.created or now(),
        "model": model,
        "choices": [choice],
    }
    if response.usage is not None:
        out["usage"] = usage_for_shape(response.usage, shape)
    return out


def _decode_tool_calls(raw: Any) -> list[ToolCallPart]:
    calls: list[ToolCallPart] = []
    if not isinstance(raw, list):
        return calls
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        fn = item.get("function")
        if not isinstance(fn, Mapping):
            continue
        name = fn.get("name") if isinstance(fn.get("name"), str) else ""
        arguments = fn.get("arguments")
        if isinstance(arguments, Mapping | list):
            arguments = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
        elif not isinstance(arguments, str):
            arguments = "{}"
        call_id = item.get("id") if isinstance(item.get("id"), str) and item.get("id") else new_id("call_")
        calls.append(ToolCallPart(id=call_id, name=name, arguments=arguments))
    return calls


def decode_chat_response(body: Any) -> Response:
    """An upstream `chat.completion` → Response (the first choice)."""
    if not isinstance(body, Mapping):
        body = {}
    choices = body.get("choices")
    choice: Mapping[str, Any] = {}
    if isinstance(choices, list):
        for item in choices:
            if isinstance(item, Mapping):
                choice = item
                break
    message = choice.get("message")
    if not isinstance(message, Mapping):
        message = {}
    parts: list[Part] = []
    reasoning = message.get("reasoning_content")
    if reasoning is None:
        reasoning = message.get("reasoning")
    reasoning_text = _chunks_of(reasoning)
    if reasoning_text:
        parts.append(ThinkingPart(text=reasoning_text))
    text = _chunks_of(message.get("content"))
    if text:
        parts.append(TextPart(text))
    refusal = message.get("refusal")
    refused = isinstance(refusal, str) and bool(refusal)
    if refused:
        parts.append(TextPart(str(refusal)))
    calls = _decode_tool_calls(message.get("tool_calls"))
    legacy = message.get("function_call")
    if isinstance(legacy, Mapping):
        calls.extend(_decode_tool_calls([{"function": legacy}]))
    parts.extend(calls)
    native = choice.get("finish_reason")
    reason = finish_from_openai(native, bool(calls))
    if refused and not text and reason is FinishReason.STOP:
        reason = FinishReason.REFUSAL
    created = body.get("created")
    return Response(
        id=body.get("id") if isinstance(body.get("id"), str) else "",
        model=body.get("model") if isinstance(body.get("model"), str) else "",
        content=tuple(parts),
        finish_reason=reason,
        usage=usage_from_openai(body.get("usage")),
        created=_safe_int(created),
        native_finish_reason=native if isinstance(native, str) else None,
    )


# ============================================================================================ streams


class ChatStreamDecoder:
    """Upstream `chat.completion.chunk` events → canonical stream events."""

    def __init__(self) -> None:
        self._started = False
        self._finished = False
        self._saw_tool = False
        self._next_index = 0
        self._open: dict[Any, int] = {}  # upstream tool key → canonical index, for calls not yet ended
        self._ids: dict[Any, str] = {}
        self._pending: dict[Any, tuple[str | None, str]] = {}  # calls whose name has not arrived: (id, arguments)
        self.saw_done = False  # the upstream's `data: [DONE]` arrived

    def decode(self, event: SSEEvent) -> list[StreamEvent]:
        data = event.data.strip()
        if data.startswith(b"data:"):
            data = data[5:].strip()
        if data == b"[DONE]":
            self.saw_done = True
            return []
        if not data:
            return []
        try:
            chunk = jsonfast.loads(data)
        except ValueError:
            return []
        if not isinstance(chunk, dict):  # parsed JSON: objects are dicts
            return []
        out: list[StreamEvent] = [] if self._started else self._start(chunk)
        error = chunk.get("error")
        if error is not None:
            out.append(self._error(error))
            self._finished = True
            return out
        choices = chunk.get("choices")
        if isinstance(choices, list) and choices:
            choice = choices[0]  # nearly always the one choice, index 0
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), None)
                if choice is None:
                    choice = next((c for c in choices if isinstance(c, dict)), None)
            if choice is not None:
                self._choice(choice, out)
        raw_usage = chunk.get("usage")
        if raw_usage is not None:
            usage = usage_from_openai(raw_usage)
            if usage is not None:
                out.append(UsageUpdate(usage))
        return out

    def close(self) -> list[StreamEvent]:
        if not self._started or self._finished:
            return []
        out: list[StreamEvent] = self._end_tools()
        out.append(Finish(FinishReason.TOOL_CALLS if self._saw_tool else FinishReason.STOP))
        self._finished = True
        return out

    def _start(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        if self._started:
            return []
        self._started = True
        cid, model = chunk.get("id"), chunk.get("model")
        return [StreamStart(id=cid if isinstance(cid, str) else "", model=model if isinstance(model, str) else "",
                            created=_safe_int(chunk.get("created")))]

    @staticmethod
    def _error(error: Any) -> StreamError:
        if isinstance(error, Mapping):
            message = error.get("message")
            etype = error.get("type") if isinstance(error.get("type"), str) else None
            code = error.get("code")
            status = code if _is_int(code) and 400 <= code <= 599 else _ERROR_TYPE_STATUS.get(etype or "", 500)
            return StreamError(status=status, message=message if isinstance(message, str) else json.dumps(error),
                               type=etype)
        return StreamError(status=500, message=error if isinstance(error, str) else json.dumps(error))

    def _choice(self, choice: dict[str, Any], out: list[StreamEvent]) -> None:
        delta = choice.get("delta")
        if type(delta) is dict and len(delta) == 1 and type(delta.get("content")) is str:
            if delta["content"]:  # the common delta: text alone (what the full path below makes of it)
                out.append(TextDelta(delta["content"]))
        elif isinstance(delta, dict) and delta:
            get = delta.get
            reasoning = get("reasoning_content")
            if reasoning is None:
                reasoning = get("reasoning")
            if reasoning is not None:
                text = _chunks_of(reasoning)
                if text:
                    out.append(ThinkingDelta(text))
            content = get("content")
            if content is not None:
                text = content if type(content) is str else _chunks_of(content)
                if text:
                    out.append(TextDelta(text))
            refusal = get("refusal")
            if isinstance(refusal, str) and refusal:
                out.append(TextDelta(refusal))
            calls = get("tool_calls")
            if isinstance(calls, list):
                for position, call in enumerate(calls):
                    if isinstance(call, dict):
                        out.extend(self._tool_delta(call, position))
            legacy = get("function_call")
            if isinstance(legacy, dict):
                out.extend(self._tool_delta({"index": "legacy", "function": legacy}, 0))
        native = choice.get("finish_reason")
        if native is not None and not self._finished:
            out.extend(self._end_tools())
            out.append(Finish(finish_from_openai(native, self._saw_tool),
                              native=native if isinstance(native, str) else None))
            self._finished = True

    def _tool_delta(self, call: Mapping[str, Any], position: int) -> list[StreamEvent]:
        key = call.get("index", position)
        if not isinstance(key, int | str) or isinstance(key, bool):
            key = position
        call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else None
        fn = call.get("function") if isinstance(call.get("function"), Mapping) else {}
        name = fn.get("name") if isinstance(fn.get("name"), str) else None
        arguments = fn.get("arguments")
        if isinstance(arguments, Mapping | list):
            arguments = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
        out: list[StreamEvent] = []
        # The same index under a new id is a new call (some compatible upstreams reuse index 0).
        if key in self._open and call_id is not None and self._ids.get(key) not in (None, call_id):
            out.append(ToolCallEnd(self._open.pop(key)))
        pieces = arguments if isinstance(arguments, str) else ""
        if key not in self._open:
            pending_id, buffered = self._pending.pop(key, (None, ""))
            if name is None:  # a call announced without its name yet: hold it until the name arrives
                self._pending[key] = (pending_id or call_id, buffered + pieces)
                self._saw_tool = True
                return out
            out.extend(self._open_call(key, call_id or pending_id, name, buffered))
        if pieces:
            out.append(ToolCallDelta(index=self._open[key], arguments=pieces))
        return out

    def _open_call(self, key: Any, call_id: str | None, name: str, buffered: str) -> list[StreamEvent]:
        index = self._next_index
        self._next_index += 1
        self._open[key] = index
        self._ids[key] = call_id or new_id("call_")
        self._saw_tool = True
        out: list[StreamEvent] = [ToolCallStart(index=index, id=self._ids[key], name=name)]
        if buffered:
            out.append(ToolCallDelta(index=index, arguments=buffered))
        return out

    def _end_tools(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for key, (call_id, buffered) in list(self._pending.items()):
            out.extend(self._open_call(key, call_id, "", buffered))
        self._pending.clear()
        out.extend(ToolCallEnd(index) for index in sorted(self._open.values()))
        self._open.clear()
        return out


_TEXT_TAILS = {  # the rest of a text chunk after its delta, by (shape.logprobs, shape.native_finish)
    (logprobs, native): b"".join((b',"finish_reason":null', b',"logprobs":null' if logprobs else b"",
                                  b',"native_finish_reason":null' if native else b"", b"}]}\n\n"))
    for logprobs in (False, True) for native in (False, True)
}


class ChatStreamEncoder:
    """Canonical stream events → `chat.completion.chunk` frames in the order the openai SDK expects.

    Default shape: role chunk first, content / reasoning_content / tool_call deltas, one finish chunk, a usage
    chunk with `choices: []` whenever usage is known, then `data: [DONE]` from close(). The upstream's
    `ChatShape` (from the context) changes the cut: e.g. Gemini answers get one chunk per upstream event, which
    `flush()` (called by the rewriter after each upstream event) emits. `encode_chunks` / `close_chunks` expose
    the chunk objects before framing (the legacy completions encoder maps them).
    """

    def __init__(self, *, model: str, context: AnswerContext = NO_CONTEXT) -> None:
        self.context = context
        self.shape = shape_for(context)
        self.model = model
        self._id: str | None = None  # minted on first use: a StreamStart usually brings the upstream's
        self.created = 0
        self._started = False
        self._finished = False
        self._closed = False
        self._saw_tool = False
        self._tools: dict[int, int] = {}  # canonical index → OpenAI index
        self._whole: dict[int, dict[str, Any]] = {}  # whole_tool_arguments: calls not sent yet
        self._usage: Usage | None = None
        self._held: tuple[str, str | None] | None = None  # finish_with_usage: (finish, native) not sent yet
        self._pending: dict[str, Any] | None = None  # chunk_per_upstream_event: this event's delta
        self._pending_finish: tuple[str, str | None] | None = None
        self._thinking = False  # thinking_break: reasoning text sent since the last break
        self._fresh_usage = False  # chunk_per_upstream_event: usage came with the current upstream event
        self._usage_sent: Usage | None = None  # the usage a finish chunk carried
        self._head: tuple[str, int, bytes] | None = None  # (id, created, framed bytes up to "choices")
        # Text chunks framed straight from templates, unless a subclass frames chunk objects its own way.
        self._fast = type(self)._frame is ChatStreamEncoder._frame

    @property
    def id(self) -> str:
        """The chunks' `id`: the upstream's (from StreamStart), else a fresh `chatcmpl-…`."""
        if self._id is None:
            self._id = new_id(CHAT_ID_PREFIX)
        return self._id

    @id.setter
    def id(self, value: str) -> None:
        self._id = value

    # ------------------------------------------------------------------ chunk objects

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, native: str | None = None,
               usage: Usage | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        if self.shape.logprobs:
            choice["logprobs"] = None
        if self.shape.native_finish:
            choice["native_finish_reason"] = native
        out = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
               "choices": [choice]}
        if usage is not None:
            out["usage"] = usage_for_shape(usage, self.shape)
            self._usage_sent = usage
        return out

    def _delta(self, key: str, value: Any, *, role: bool = True) -> dict[str, Any]:
        delta: dict[str, Any] = {"role": "assistant"} if role and self.shape.role_on_deltas else {}
        delta[key] = value
        return delta

    def _ensure_started(self) -> list[dict[str, Any]]:
        if self._started:
            return []
        self._started = True
        if not self.created:
            self.created = now()
        if not self.shape.role_chunk:
            return []
        delta: dict[str, Any] = {"role": "assistant"}
        if self.shape.role_chunk_content:
            delta["content"] = ""
        return [self._chunk(delta)]

    def _tool_id(self, call_id: str, name: str, position: int) -> str:
        if self.shape.named_tool_ids and _minted(call_id):
            return named_tool_id(name, position + 1)
        return call_id or new_id("call_")

    def _open_tool(self, index: int, call_id: str, name: str) -> list[dict[str, Any]]:
        position = len(self._tools)
        self._tools[index] = position
        self._saw_tool = True
        header = {"index": position, "id": self._tool_id(call_id, name, position), "type": "function",
                  "function": {"name": name, "arguments": ""}}
        if self.shape.whole_tool_arguments:
            self._whole[index] = header
            return []
        if self.shape.chunk_per_upstream_event:
            self._pending_calls().append(header)
            return []
        return [self._chunk(self._delta("tool_calls", [header]))]

    def _pending_delta(self) -> dict[str, Any]:
        if self._pending is None:
            self._pending = {"role": "assistant", "content": None, "reasoning_content": None, "tool_calls": None}
        return self._pending

    def _pending_calls(self) -> list[dict[str, Any]]:
        delta = self._pending_delta()
        if delta["tool_calls"] is None:
            delta["tool_calls"] = []
        calls: list[dict[str, Any]] = delta["tool_calls"]
        return calls

    def _add_text(self, key: str, text: str) -> list[dict[str, Any]]:
        if self.shape.chunk_per_upstream_event:
            delta = self._pending_delta()
            delta[key] = (delta[key] or "") + text
            return []
        return [self._chunk(self._delta(key, text))]

    def _break_thinking(self) -> list[dict[str, Any]]:
        if not self._thinking:
            return []
        self._thinking = False
        return [self._chunk(self._delta("reasoning_content", "\n\n"))]

    def _end_whole_tools(self, only: int | None = None) -> list[dict[str, Any]]:
        out = []
        for index in sorted(self._whole) if only is None else [only]:
            header = self._whole.pop(index, None)
            if header is not None:
                out.append(self._chunk(self._delta("tool_calls", [header])))
        return out

    def encode_chunks(self, event: StreamEvent) -> list[dict[str, Any]]:
        if self._closed:
            return []
        if isinstance(event, StreamStart):
            if not self._started:
                self.id = chat_id(event.id)
                if event.created:
                    self.created = event.created
            return self._ensure_started()
        if isinstance(event, UsageUpdate):
            self._usage = event.usage
            self._fresh_usage = True
            return []
        if isinstance(event, StreamError):
            out = [*self.flush_chunks(), self._error_chunk(event)]
            self._closed = True
            return out
        if isinstance(event, ToolCallEnd):
            return self._end_whole_tools(event.index) if self.shape.whole_tool_arguments else []
        if isinstance(event, Finish):
            return self._finish(event)
        if isinstance(event, TextDelta | ThinkingDelta):
            if not event.text:
                return []
            out = self._ensure_started()
            if isinstance(event, ThinkingDelta):
                self._thinking = self.shape.thinking_break
                return out + self._add_text("reasoning_content", event.text)
            return out + self._break_thinking() + self._add_text("content", event.text)
        if isinstance(event, ToolCallStart):
            out = self._ensure_started() + self._break_thinking()
            if event.index in self._tools:
                return out
            return out + self._open_tool(event.index, event.id, event.name)
        if isinstance(event, ToolCallDelta):
            out = self._ensure_started()
            if event.index not in self._tools:
                out += self._open_tool(event.index, "", "")
            if event.arguments:
                out += self._add_arguments(event.index, event.arguments)
            return out
        # ThinkingSignature: nothing to send in Chat Completions.
        return []

    def _add_arguments(self, index: int, arguments: str) -> list[dict[str, Any]]:
        if index in self._whole:
            self._whole[index]["function"]["arguments"] += arguments
            return []
        position = self._tools[index]
        if self.shape.chunk_per_upstream_event:
            calls = self._pending_calls()
            entry = next((c for c in calls if c["index"] == position), None)
            if entry is None:
                calls.append({"index": position, "function": {"arguments": arguments}})
            else:
                entry["function"]["arguments"] += arguments
            return []
        return [self._chunk(self._delta("tool_calls", [{"index": position, "function": {"arguments": arguments}}],
                                        role=False))]

    def _finish(self, event: Finish) -> list[dict[str, Any]]:
        if self._finished:
            return []
        self._finished = True
        out = [*self._ensure_started(), *self._break_thinking(), *self._end_whole_tools()]
        finish, native = _finish_for_shape(event.reason, event.native, self._saw_tool, self.shape, stream=True)
        if self.shape.chunk_per_upstream_event:
            self._pending_delta()
            self._pending_finish = (finish, native)
        elif self.shape.finish_with_usage:
            self._held = (finish, native)
        else:
            out.append(self._chunk({}, finish, native))
        return out

    def _error_chunk(self, event: StreamError) -> dict[str, Any]:
        if self.shape.native_errors:
            error_type = event.type or openai_error_body(event.status, event.message)["error"]["type"]
            return {"error": {"message": event.message, "type": error_type}}
        body = openai_error_body(event.status, event.message)
        if self.shape.upstream_error_codes and event.type:
            body["error"].update(type="server_error", code=event.type)
        return body

    def flush_chunks(self) -> list[dict[str, Any]]:
        """The chunks held back for the end of the current upstream event (merged delta, finish + usage)."""
        out: list[dict[str, Any]] = []
        if self._pending is not None:
            finish, native = self._pending_finish or (None, None)
            usage = self._usage if finish is not None or self._fresh_usage else None
            out.append(self._chunk(self._pending, finish, native, usage))
            self._pending = None
            self._pending_finish = None
        self._fresh_usage = False
        if self._held is not None:
            finish, native = self._held
            out.append(self._chunk({}, finish, native, self._usage))
            self._held = None
        return out

    def close_chunks(self) -> list[dict[str, Any]]:
        """The chunks still owed at a clean end (finish inferred when missing, then usage); not [DONE]."""
        if self._closed:
            return []
        out: list[dict[str, Any]] = []
        if self._started or self._usage is not None:
            out.extend(self._ensure_started())
            if not self._finished:
                reason = FinishReason.TOOL_CALLS if self._saw_tool else FinishReason.STOP
                out.extend(self._finish(Finish(reason)))
            out.extend(self.flush_chunks())
            # The usage chunk; also when the finish chunk went out before the (final) usage arrived.
            if self._usage is not None and (self.shape.usage_chunk or self._usage_sent != self._usage):
                out.append({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                            "model": self.model, "choices": [], "usage": usage_for_shape(self._usage, self.shape)})
        self._closed = True
        return out

    # ------------------------------------------------------------------ framing

    @staticmethod
    def _frame(chunks: list[dict[str, Any]]) -> bytes:
        # Compact JSON has no raw newline, so each frame is one `data:` line.
        return b"".join([b"data: " + jsonfast.dumps(c).encode() + b"\n\n" for c in chunks])

    def _text_frame(self, delta: bytes) -> bytes:
        """The frame of `_chunk(<delta>)` (no finish, no usage) for a delta already in JSON: the hot path of
        text streams, byte for byte what `_frame` makes of the chunk object."""
        head = self._head
        if head is None or head[0] is not self.id or head[1] != self.created:
            prefix = b"".join((b'data: {"id":', jsonfast.dumps(self.id).encode(),
                               b',"object":"chat.completion.chunk","created":', jsonfast.dumps(self.created).encode(),
                               b',"model":', jsonfast.dumps(self.model).encode(), b',"choices":[{"index":0,"delta":'))
            head = self._head = (self.id, self.created, prefix)
        tail = _TEXT_TAILS[self.shape.logprobs, self.shape.native_finish]
        return b"".join((head[2], delta, tail))

    def _fast_text(self, event: TextDelta) -> bytes | None:
        """encode(TextDelta) once the stream runs (started, no reasoning break owed), or None for the full path."""
        if not self._fast or not self._started or self._closed or self._thinking or type(event.text) is not str:
            return None
        if not event.text:
            return b""
        if self.shape.chunk_per_upstream_event:
            delta = self._pending
            if delta is None:  # _pending_delta() with this text
                self._pending = {"role": "assistant", "content": event.text, "reasoning_content": None,
                                 "tool_calls": None}
            else:
                delta["content"] = (delta["content"] or "") + event.text
            return b""
        role = b'{"role":"assistant","content":' if self.shape.role_on_deltas else b'{"content":'
        return self._text_frame(b"".join((role, jsonfast.string(event.text), b"}")))

    def encode(self, event: StreamEvent) -> bytes:
        if type(event) is TextDelta:
            fast = self._fast_text(event)
            if fast is not None:
                return fast
        was_closed = self._closed
        out = self._frame(self.encode_chunks(event))
        if isinstance(event, StreamError) and self.shape.native_errors and not was_closed:
            out += DONE_FRAME  # the reference ends a relayed Claude error event with [DONE]
        return out

    def flush(self) -> bytes:
        """End of one upstream event: what was held to be merged with its other events."""
        if self._closed:
            return b""
        pending = self._pending
        if (self._fast and pending is not None and self._pending_finish is None and not self._fresh_usage
                and self._held is None and type(pending["content"]) is str and pending["reasoning_content"] is None
                and pending["tool_calls"] is None):
            # flush_chunks() would emit just this merged text delta (role, content, two nulls).
            self._pending = None
            return self._text_frame(b"".join((b'{"role":"assistant","content":', jsonfast.string(pending["content"]),
                                              b',"reasoning_content":null,"tool_calls":null}')))
        return self._frame(self.flush_chunks())

    def close(self) -> bytes:
        if self._closed:
            return b""
        return self._frame(self.close_chunks()) + DONE_FRAME

    def error(self, status: int, message: str) -> bytes:
        if self._closed:
            return b""
        out = self._frame(self.flush_chunks())
        self._closed = True
        return out + self._frame([openai_error_body(status, message)])


# ============================================================================================ the codec


class OpenAIChatCodec:
    """The Chat Completions codec (client and upstream side)."""

    protocol = WireProtocol.OPENAI_CHAT

    def decode_request(self, body: dict[str, Any], *, model: str, stream: bool) -> Request:
        if not isinstance(body, Mapping):
            raise CodecError("", "request body must be a JSON object")
        raw_messages = body.get("messages")
        if not isinstance(raw_messages, list):
            raise CodecError("messages", "must be an array")
        decoder = _RequestDecoder()
        for i, raw in enumerate(raw_messages):
            decoder.message(raw, i)
        user = _opt_str(body, "user", "user")
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise CodecError("metadata", "must be an object")
        return Request(
            model=model,
            messages=tuple(decoder.messages),
            system=tuple(decoder.system),
            tools=_decode_tools(body),
            tool_choice=_decode_tool_choice(body),
            generation=_decode_generation(body),
            reasoning=_decode_reasoning(body),
            stream=stream,
            user=user,
            metadata=dict(metadata or {}),
        )

    def encode_response(
        self, response: Response, *, model: str, context: AnswerContext = NO_CONTEXT
    ) -> dict[str, Any]:
        return encode_chat_response(response, model, shape_for(context))

    def stream_encoder(self, *, model: str, context: AnswerContext = NO_CONTEXT) -> ChatStreamEncoder:
        return ChatStreamEncoder(model=model, context=context)

    def encode_request(
        self, request: Request, *, model: str, context: RequestContext = NO_REQUEST_CONTEXT
    ) -> dict[str, Any]:
        return encode_chat_request(request, model, request_shape_for(context))

    def decode_response(self, body: dict[str, Any]) -> Response:
        return decode_chat_response(body)

    def stream_decoder(self) -> ChatStreamDecoder:
        return ChatStreamDecoder()
