"""Anthropic Claude Messages (`/v1/messages`) ↔ the canonical model.

Client side: a Messages request body → Request; Response → a Messages object; canonical stream events → the
exact SSE event sequence the anthropic SDK accumulates. Upstream side: Request → a Messages body that the
Anthropic API accepts (alternating roles, tool results right after their calls, `max_tokens` always present);
Messages responses and SSE streams → canonical.

Lossy mappings (what Messages cannot express, and what happens instead):
- `response_format` (json_object / json_schema) becomes a system instruction appended to `system`.
- `seed`, presence/frequency penalties, `candidate_count`, image `detail`, tool `strict` are not sent.
- `temperature` is clamped to Anthropic's [0, 1]; when both temperature and top_p are set only temperature
  is sent (recent Claude models reject both). With thinking enabled, temperature (unless 1) and top_k are
  dropped and top_p only kept when ≥ 0.95 (Anthropic's rules for extended thinking).
- Reasoning always encodes as `{"type": "enabled", "budget_tokens": B}` (works on every thinking-capable
  model; `adaptive` is decoded but never emitted) using EFFORT_BUDGETS; budgets are at least 1024 and
  `max_tokens` is raised to `budget + max_tokens` when it would not exceed the budget. Thinking is left off
  when the tool choice forces a tool, or when the turn being continued ends in tool results whose assistant
  turn carries no Claude-signed thinking block, or when the conversation ends with an assistant prefill
  (Anthropic rejects these combinations).
- Thinking parts are kept only when their signature was issued by Claude; others are dropped (DECISIONS 8).
  In responses to Claude clients, unsigned/foreign thinking keeps its text with an empty signature.
- Built-in tools of other protocols are dropped; Claude built-in tools (`type` such as `web_search_20250305`)
  round-trip raw. Server-tool content blocks (`server_tool_use`, `*_tool_result`) and citations are dropped.
- A tool result whose call cannot be found in the history becomes a text block (Anthropic rejects orphans).
  History with tool calls but no declared tools gets minimal declarations plus `tool_choice: none`.
- Image `file` sources decode as FilePart(file_id) (canonical ImagePart has no file id). `cache_control`
  survives only on text blocks (canonical has no slot on tools, images, documents or tool results);
  document `context`/`citations`, `service_tier`, `container`, `mcp_servers` are not carried.
- Responses: images/files in an answer have no Claude block and are dropped; `stop_reason` follows
  translation.md §2.9 (content_filter → end_turn) and is `tool_use` whenever a tool_use block is present.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from typing import Any

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
    ThinkingSignature,
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
from proxyd.protocols.common import arguments_to_object, object_to_arguments, parse_data_url
from proxyd.protocols.ids import new_id, now
from proxyd.protocols.openai_responses import EXTRAS_KEY as RESPONSES_EXTRAS
from proxyd.protocols.sse import SSEEvent, frame
from proxyd.tokens import count_text

CLAUDE = WireProtocol.CLAUDE

DEFAULT_MAX_TOKENS = 32000
"""`max_tokens` sent to Claude when the client's protocol gave none (Anthropic requires the field; the reference's
translators default to 32000)."""

MIN_THINKING_BUDGET = 1024
"""Anthropic's smallest accepted `budget_tokens`."""

EFFORT_BUDGETS: dict[str, int] = {
    "minimal": 1024,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": 32768,
    "max": 32768,
    "auto": 8192,
}
"""Canonical effort level → Claude `budget_tokens` (§6.3's table, raised to Anthropic's 1024 minimum;
`auto` / budget −1 = dynamic → the medium budget). `none` → `{"type": "disabled"}`."""

_CLAUDE_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "xhigh"}
"""Claude adaptive `output_config.effort` → canonical effort."""

_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "pause_turn": FinishReason.PAUSE,
    "refusal": FinishReason.REFUSAL,
}

_FINISH_TO_STOP: dict[FinishReason, str] = {
    FinishReason.STOP: "end_turn",
    FinishReason.LENGTH: "max_tokens",
    FinishReason.TOOL_CALLS: "tool_use",
    FinishReason.CONTENT_FILTER: "end_turn",
    FinishReason.PAUSE: "pause_turn",
    FinishReason.REFUSAL: "refusal",
    FinishReason.ERROR: "end_turn",
}

_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_GEMINI_MINTED = re.compile(r"^call_gemini_(\d{16})$")
"""Ids the Gemini decoder mints for id-less calls; the reference numbers them `toolu_gemini_<n>` towards Claude."""
_RESPONSE_FORMAT_JSON = "Respond with a single valid JSON object and nothing else (no prose, no code fences)."
_RESPONSE_FORMAT_SCHEMA = ("Respond with a single valid JSON value that conforms to the JSON schema below, "
                           "and nothing else (no prose, no code fences).")


def _dumps(value: Any) -> str:
    return jsonfast.dumps(value)


def wants_stream(body: Mapping[str, Any]) -> bool:
    """The `/v1/messages` stream rule (api-surface §4.3): `stream` present and not the JSON literal false."""
    return "stream" in body and body["stream"] is not False


def message_id_for(upstream_id: str) -> str:
    """A Claude message `id`: the upstream's id as is (the reference keeps `resp_…`, `chatcmpl-…`, Gemini's
    `responseId`), a fresh `msg_…` when the upstream gave none."""
    return upstream_id or new_id("msg_")


def claude_tool_id(raw: str | None) -> str:
    """An id Claude accepts in `tool_use.id`: unsafe characters → `_`; empty → a fresh `toolu_` id."""
    cleaned = _ID_UNSAFE.sub("_", raw or "")
    return cleaned or new_id("toolu_")


def finish_from_stop_reason(stop_reason: Any, has_tool_calls: bool) -> FinishReason:
    """Claude `stop_reason` → FinishReason (a tool call in the answer turns a plain stop into TOOL_CALLS)."""
    reason = _STOP_REASONS.get(stop_reason, FinishReason.STOP) if isinstance(stop_reason, str) else FinishReason.STOP
    if has_tool_calls and reason is FinishReason.STOP:
        return FinishReason.TOOL_CALLS
    return reason


def stop_reason_from_finish(reason: FinishReason | None, *, has_tool_calls: bool,
                            stop_sequence: str | None) -> str:
    """FinishReason → Claude `stop_reason` (translation.md §2.9; `tool_use` whenever tools were called)."""
    if has_tool_calls:
        return "tool_use"
    if reason is None or reason is FinishReason.TOOL_CALLS:  # no tool_use block → the turn simply ended
        return "end_turn"
    if reason is FinishReason.STOP and stop_sequence:
        return "stop_sequence"
    return _FINISH_TO_STOP.get(reason, "end_turn")


def usage_from_claude(raw: Any) -> Usage | None:
    """Claude usage (input excludes cache reads/writes) → canonical (input includes them)."""
    if not isinstance(raw, Mapping):
        return None
    fresh = _int_or_zero(raw.get("input_tokens"))
    read = _int_or_zero(raw.get("cache_read_input_tokens"))
    created = _int_or_zero(raw.get("cache_creation_input_tokens"))
    return Usage(input_tokens=fresh + read + created, output_tokens=_int_or_zero(raw.get("output_tokens")),
                 cached_tokens=read, cache_creation_tokens=created)


def usage_to_claude(usage: Usage | None) -> dict[str, int]:
    """Canonical usage → Claude's convention (input_tokens = uncached, uncreated input)."""
    usage = usage or Usage()
    return {
        "input_tokens": max(0, usage.input_tokens - usage.cached_tokens - usage.cache_creation_tokens),
        "cache_creation_input_tokens": usage.cache_creation_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.output_tokens,
    }


def _int_or_zero(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


# --------------------------------------------------------------------------------------------- per-pair answer shapes


@attrs.frozen
class PairShape:
    """How the reference shapes a Claude answer translated from one upstream protocol (conformance goldens).

    Native (Claude upstream, or no context): `ping` after message_start, usage with every cache counter,
    unsigned thinking keeps `"signature": ""`, tool arguments streamed as they come. Translated answers differ
    per upstream; each flag names one difference.
    """

    ping: bool = True
    start_estimate: bool = False
    """message_start carries `{"input_tokens": <local estimate of the client prompt>, "output_tokens": 0}`."""
    lean_usage: bool = False
    """usage lists cache counters only when non-zero."""
    thinking_details: bool = False
    """usage adds `output_tokens_details: {"thinking_tokens": N}` (Codex reasoning tokens)."""
    empty_signature: bool = True
    """thinking without a Claude signature still carries `"signature": ""` (else the key is left out)."""
    whole_tool_arguments: bool = False
    """a streamed tool call's arguments go out as one input_json_delta when its block closes."""
    name_tool_ids: bool = False
    """tool_use ids are `<name>-<n>` (n from 1 per answer), the upstream had none."""
    trailing_newline: bool = False
    """the stream ends with one extra newline after message_stop."""
    bare_unfinished_end: bool = False
    """a stream that ends (or fails) before the upstream gave a stop reason (no Finish, or one without
    `native`) gets a bare message_stop: open blocks stay unclosed, no message_delta (an error event follows)."""


NATIVE_SHAPE = PairShape()
_TRANSLATED = PairShape(ping=False, start_estimate=True, lean_usage=True, empty_signature=False)
PAIR_SHAPES: dict[WireProtocol, PairShape] = {
    WireProtocol.OPENAI_CHAT: attrs.evolve(_TRANSLATED, whole_tool_arguments=True),
    WireProtocol.OPENAI_RESPONSES: attrs.evolve(_TRANSLATED, thinking_details=True),
    WireProtocol.GEMINI: attrs.evolve(_TRANSLATED, name_tool_ids=True, trailing_newline=True,
                                      bare_unfinished_end=True),
}
"""Answer shape per upstream protocol; anything else (Claude passthrough, no context) is NATIVE_SHAPE."""


@attrs.frozen
class RequestShape:
    """How the reference's X→Claude translator of one client protocol shapes the upstream request."""

    strict_tool_schemas: bool = False
    """tool input schemas given by the client carry `$schema: draft-07` and `additionalProperties: false`."""
    single_text_as_string: bool = False
    """a user message that is one text block is sent as a plain string."""


NATIVE_REQUEST_SHAPE = RequestShape()
REQUEST_SHAPES: dict[WireProtocol, RequestShape] = {
    WireProtocol.GEMINI: RequestShape(strict_tool_schemas=True),
    WireProtocol.OPENAI_RESPONSES: RequestShape(single_text_as_string=True),
}
"""Upstream request shape per client protocol; anything else (no context) is NATIVE_REQUEST_SHAPE."""

_DRAFT_07 = "http://json-schema.org/draft-07/schema#"
_EMPTY_SCHEMA = {"type": "object", "properties": {}}


def request_shape_for(context: RequestContext) -> RequestShape:
    """The upstream request shape for the exchange's client protocol."""
    return REQUEST_SHAPES.get(context.client, NATIVE_REQUEST_SHAPE) if context.client is not None \
        else NATIVE_REQUEST_SHAPE


def shape_for(context: AnswerContext) -> PairShape:
    """The answer shape for the exchange's upstream protocol."""
    return PAIR_SHAPES.get(context.source, NATIVE_SHAPE) if context.source is not None else NATIVE_SHAPE


def usage_for_shape(usage: Usage | None, shape: PairShape) -> dict[str, Any]:
    """Canonical usage in the Claude convention, laid out as `shape` wants it."""
    full = usage_to_claude(usage)
    if not shape.lean_usage:
        return dict(full)
    out: dict[str, Any] = {"input_tokens": full["input_tokens"], "output_tokens": full["output_tokens"]}
    for key in ("cache_read_input_tokens", "cache_creation_input_tokens"):
        if full[key]:
            out[key] = full[key]
    if shape.thinking_details:
        out["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens if usage is not None else 0}
    return out


def _request_segments(body: Mapping[str, Any]) -> list[str]:
    """The prompt-bearing strings of a Messages body, in order (system, each message's role and content,
    tools, tool_choice); control fields, images and documents are not counted."""
    segments: list[str] = []

    def text_of(value: Any) -> None:
        if isinstance(value, str):
            segments.append(value)
        elif isinstance(value, list):
            for block in value:
                if isinstance(block, str):
                    segments.append(block)
                elif isinstance(block, Mapping):
                    block_segments(block)

    def block_segments(block: Mapping[str, Any]) -> None:
        kind = block.get("type")
        if kind == "text":
            text_of(block.get("text"))
        elif kind == "thinking":
            text_of(block.get("thinking"))
        elif kind == "tool_use":
            for key in ("id", "name"):
                text_of(block.get(key))
            if "input" in block:
                segments.append(_dumps(block.get("input")))
        elif kind == "tool_result":
            text_of(block.get("tool_use_id"))
            text_of(block.get("content"))

    text_of(body.get("system"))
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, Mapping):
            text_of(message.get("role"))
            text_of(message.get("content"))
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, Mapping):
            text_of(tool.get("name"))
            text_of(tool.get("description"))
            if isinstance(tool.get("input_schema"), Mapping):
                segments.append(_dumps(tool["input_schema"]))
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping):
        text_of(choice.get("type"))
        text_of(choice.get("name"))
    return [s for s in segments if s]


def estimate_input_tokens(body: Mapping[str, Any] | None) -> int:
    """The local prompt-token estimate a translated stream's message_start carries (o200k_base over the
    prompt-bearing strings joined by newlines), as the reference does before the upstream reports usage."""
    if not isinstance(body, Mapping):
        return 0
    return count_text("\n".join(_request_segments(body)), "o200k_base")


# --------------------------------------------------------------------------------------------- request decoding


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _str(value: Any, field: str, *, optional: bool = False) -> str:
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise CodecError(field, "must be a string")
    return value


def _dict(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CodecError(field, "must be an object")
    return value


def _list(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise CodecError(field, "must be an array")
    return value


def _opt_int(body: Mapping[str, Any], key: str, field: str | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
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


def _cache_control(block: Mapping[str, Any]) -> Mapping[str, Any] | None:
    value = block.get("cache_control")
    return dict(value) if isinstance(value, dict) else None


def _decode_text_block(block: Mapping[str, Any], path: str) -> TextPart:
    return TextPart(text=_str(block.get("text"), f"{path}.text"), cache_control=_cache_control(block))


def _decode_image(block: Mapping[str, Any], path: str) -> ImagePart | FilePart:
    source = _dict(block.get("source"), f"{path}.source")
    kind = source.get("type")
    if kind == "base64":
        return ImagePart(media_type=_str(source.get("media_type"), f"{path}.source.media_type", optional=True),
                         data=_str(source.get("data"), f"{path}.source.data"))
    if kind == "url":
        return ImagePart(url=_str(source.get("url"), f"{path}.source.url"))
    if kind == "file":
        return FilePart(file_id=_str(source.get("file_id"), f"{path}.source.file_id"))
    raise CodecError(f"{path}.source.type", "must be one of base64, url, file")


def _b64_text(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _decode_document(block: Mapping[str, Any], path: str) -> FilePart:
    source = _dict(block.get("source"), f"{path}.source")
    title = block.get("title") if isinstance(block.get("title"), str) else None
    kind = source.get("type")
    if kind == "base64":
        return FilePart(media_type=_str(source.get("media_type"), f"{path}.source.media_type", optional=True),
                        data=_str(source.get("data"), f"{path}.source.data"), filename=title)
    if kind == "url":
        return FilePart(media_type="application/pdf", url=_str(source.get("url"), f"{path}.source.url"),
                        filename=title)
    if kind == "text":
        media_type = source.get("media_type") if isinstance(source.get("media_type"), str) else ""
        return FilePart(media_type=media_type or "text/plain",
                        data=_b64_text(_str(source.get("data"), f"{path}.source.data")), filename=title)
    if kind == "content":
        content = source.get("content")
        if isinstance(content, str):
            text = content
        else:
            items = _list(content, f"{path}.source.content")
            text = "\n".join(item["text"] for item in items
                             if isinstance(item, dict) and item.get("type") == "text"
                             and isinstance(item.get("text"), str))
        return FilePart(media_type="text/plain", data=_b64_text(text), filename=title)
    if kind == "file":
        return FilePart(file_id=_str(source.get("file_id"), f"{path}.source.file_id"), filename=title)
    raise CodecError(f"{path}.source.type", "must be one of base64, url, text, content, file")


def _decode_tool_result_content(value: Any, path: str) -> tuple[TextPart | ImagePart | FilePart, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (TextPart(text=value),)
    parts: list[TextPart | ImagePart | FilePart] = []
    for j, item in enumerate(_list(value, path)):
        item_path = f"{path}[{j}]"
        if isinstance(item, str):
            parts.append(TextPart(text=item))
            continue
        item = _dict(item, item_path)
        kind = item.get("type")
        if kind == "text":
            parts.append(_decode_text_block(item, item_path))
        elif kind == "image":
            parts.append(_decode_image(item, item_path))
        elif kind == "document":
            parts.append(_decode_document(item, item_path))
        # search_result and other block kinds have no canonical form: skipped.
    return tuple(parts)


def _decode_block(block: Any, path: str, tool_names: dict[str, str]) -> Part | None:
    block = _dict(block, path)
    kind = block.get("type")
    if kind == "text":
        return _decode_text_block(block, path)
    if kind == "image":
        return _decode_image(block, path)
    if kind == "document":
        return _decode_document(block, path)
    if kind == "tool_use":
        call_id = _str(block.get("id"), f"{path}.id")
        name = _str(block.get("name"), f"{path}.name")
        tool_names[call_id] = name
        return ToolCallPart(id=call_id, name=name, arguments=object_to_arguments(block.get("input")))
    if kind == "tool_result":
        call_id = _str(block.get("tool_use_id"), f"{path}.tool_use_id")
        is_error = block.get("is_error")
        if is_error is not None and not isinstance(is_error, bool):
            raise CodecError(f"{path}.is_error", "must be a boolean")
        return ToolResultPart(tool_call_id=call_id, name=tool_names.get(call_id),
                              content=_decode_tool_result_content(block.get("content"), f"{path}.content"),
                              is_error=bool(is_error))
    if kind == "thinking":
        signature = block.get("signature")
        return ThinkingPart(text=_str(block.get("thinking"), f"{path}.thinking", optional=True),
                            signature=signature if isinstance(signature, str) and signature else None,
                            signature_source=CLAUDE)
    if kind == "redacted_thinking":
        return ThinkingPart(redacted=True, signature=_str(block.get("data"), f"{path}.data"),
                            signature_source=CLAUDE)
    if not isinstance(kind, str):
        raise CodecError(f"{path}.type", "must be a string")
    return None  # server tool blocks, search results, container uploads…: no canonical form


def _decode_messages(raw: Any) -> tuple[Message, ...]:
    messages: list[Message] = []
    tool_names: dict[str, str] = {}
    for i, item in enumerate(_list(raw, "messages")):
        path = f"messages[{i}]"
        item = _dict(item, path)
        role = item.get("role")
        if role not in ("user", "assistant"):
            raise CodecError(f"{path}.role", "must be 'user' or 'assistant'")
        content = item.get("content")
        parts: list[Part] = []
        if isinstance(content, str):
            parts.append(TextPart(text=content))
        else:
            for j, block in enumerate(_list(content, f"{path}.content")):
                part = _decode_block(block, f"{path}.content[{j}]", tool_names)
                if part is not None:
                    parts.append(part)
        messages.append(Message(role=role, parts=tuple(parts)))
    return tuple(messages)


def _decode_system(raw: Any) -> tuple[TextPart, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (TextPart(text=raw),) if raw else ()
    parts: list[TextPart] = []
    for i, block in enumerate(_list(raw, "system")):
        path = f"system[{i}]"
        if isinstance(block, str):
            parts.append(TextPart(text=block))
            continue
        block = _dict(block, path)
        if block.get("type", "text") != "text":
            raise CodecError(f"{path}.type", "system blocks must be text")
        parts.append(_decode_text_block(block, path))
    return tuple(parts)


def _decode_tools(raw: Any) -> tuple[Tool, ...]:
    if raw is None:
        return ()
    tools: list[Tool] = []
    for i, item in enumerate(_list(raw, "tools")):
        path = f"tools[{i}]"
        item = _dict(item, path)
        name = _str(item.get("name"), f"{path}.name")
        kind = item.get("type")
        if kind is not None and not isinstance(kind, str):
            raise CodecError(f"{path}.type", "must be a string")
        if kind not in (None, "custom"):
            tools.append(Tool(name=name, builtin=dict(item), builtin_protocol=CLAUDE))
            continue
        schema = item.get("input_schema")
        schema = _dict(schema, f"{path}.input_schema") if schema is not None else {"type": "object", "properties": {}}
        description = _str(item.get("description"), f"{path}.description", optional=True)
        strict = item.get("strict") if isinstance(item.get("strict"), bool) else None
        tools.append(Tool(name=name, description=description, parameters=dict(schema), strict=strict))
    return tuple(tools)


def _decode_tool_choice(raw: Any) -> ToolChoice | None:
    if raw is None:
        return None
    raw = _dict(raw, "tool_choice")
    kind = raw.get("type")
    disable = raw.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        raise CodecError("tool_choice.disable_parallel_tool_use", "must be a boolean")
    parallel = None if disable is None else not disable
    if kind == "auto":
        return ToolChoice(mode="auto", parallel=parallel)
    if kind == "any":
        return ToolChoice(mode="required", parallel=parallel)
    if kind == "none":
        return ToolChoice(mode="none")
    if kind == "tool":
        return ToolChoice(mode="tool", name=_str(raw.get("name"), "tool_choice.name"), parallel=parallel)
    raise CodecError("tool_choice.type", "must be one of auto, any, tool, none")


def _decode_thinking(raw: Any, output_config: Any) -> Reasoning | None:
    if raw is None:
        return None
    raw = _dict(raw, "thinking")
    kind = raw.get("type")
    if kind == "enabled":
        budget = _opt_int(raw, "budget_tokens", "thinking.budget_tokens")
        return Reasoning(budget_tokens=budget if budget is not None else -1, include_thoughts=True)
    if kind == "disabled":
        return Reasoning(effort="none", budget_tokens=0, include_thoughts=False)
    if kind in ("adaptive", "auto"):
        effort = output_config.get("effort") if isinstance(output_config, dict) else None
        if isinstance(effort, str) and effort in _CLAUDE_EFFORTS:
            return Reasoning(effort=_CLAUDE_EFFORTS[effort], include_thoughts=True)
        return Reasoning(budget_tokens=-1, include_thoughts=True)
    raise CodecError("thinking.type", "must be one of enabled, disabled, adaptive")


def _decode_response_format(body: Mapping[str, Any]) -> ResponseFormat | None:
    output_config = body.get("output_config")
    raw = output_config.get("format") if isinstance(output_config, dict) else None
    if raw is None:
        raw = body.get("output_format")
    if not isinstance(raw, dict) or raw.get("type") != "json_schema":
        return None
    schema = raw.get("schema")
    return ResponseFormat(type="json_schema", schema=dict(schema) if isinstance(schema, dict) else None)


def _decode_stop(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    items = _list(raw, "stop_sequences")
    return tuple(_str(s, f"stop_sequences[{i}]") for i, s in enumerate(items))


# --------------------------------------------------------------------------------------------- request encoding


_IMAGE_MAGIC = (("iVBOR", "image/png"), ("/9j/", "image/jpeg"), ("R0lGOD", "image/gif"), ("UklGR", "image/webp"))


def _sniff_image_type(data: str) -> str:
    for prefix, media_type in _IMAGE_MAGIC:
        if data.startswith(prefix):
            return media_type
    return "image/png"


def _image_block(media_type: str, data: str | None, url: str | None) -> dict[str, Any] | None:
    if data is None and url:
        parsed = parse_data_url(url)
        if parsed is None:
            return {"type": "image", "source": {"type": "url", "url": url}}
        media_type, data = parsed
        if media_type == "application/octet-stream":
            media_type = ""
    if data is None:
        return None
    if not media_type.startswith("image/"):
        media_type = _sniff_image_type(data)
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _document_block(part: FilePart) -> dict[str, Any] | None:
    media_type, data = part.media_type, part.data
    if part.file_id and data is None and not part.url:
        block: dict[str, Any] = {"type": "document", "source": {"type": "file", "file_id": part.file_id}}
    else:
        if data is None and part.url:
            parsed = parse_data_url(part.url)
            if parsed is None:
                block = {"type": "document", "source": {"type": "url", "url": part.url}}
                if part.filename:
                    block["title"] = part.filename
                return block
            parsed_type, data = parsed
            media_type = media_type or parsed_type
        if data is None:
            return None
        if media_type.startswith("image/"):
            return _image_block(media_type, data, None)
        source: dict[str, Any] | None = None
        if media_type.startswith("text/"):
            try:
                text = base64.b64decode(data, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                text = None
            if text is not None:
                source = {"type": "text", "media_type": "text/plain", "data": text}
        if source is None:
            source = {"type": "base64", "media_type": media_type or "application/pdf", "data": data}
        block = {"type": "document", "source": source}
    if part.filename:
        block["title"] = part.filename
    return block


def _media_block(part: TextPart | ImagePart | FilePart) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        if not part.text:
            return None
        block: dict[str, Any] = {"type": "text", "text": part.text}
        if part.cache_control:
            block["cache_control"] = dict(part.cache_control)
        return block
    if isinstance(part, ImagePart):
        return _image_block(part.media_type, part.data, part.url)
    return _document_block(part)


def _tool_result_content(parts: tuple[TextPart | ImagePart | FilePart, ...]) -> str | list[dict[str, Any]] | None:
    if all(isinstance(p, TextPart) for p in parts):
        texts = [p for p in parts if isinstance(p, TextPart)]
        if not texts:
            return None
        if len(texts) == 1 and not texts[0].cache_control:
            return texts[0].text
    blocks = [b for b in (_media_block(p) for p in parts) if b is not None]
    return blocks or None


@attrs.define
class _Turn:
    role: str
    blocks: list[dict[str, Any]]
    results: list[dict[str, Any]] = attrs.field(factory=list)  # tool_result blocks routed here


class _RequestBuilder:
    """Canonical messages → Claude `messages` with alternation, tool pairing and tool-result placement."""

    def __init__(self) -> None:
        self.turns: list[_Turn] = []
        self.pending: list[tuple[str, str, str, int]] = []  # (original id, claude id, name, turn index)
        self.used_ids: set[str] = set()
        self.tool_names: list[str] = []

    def _turn(self, role: str) -> int:
        if not self.turns or self.turns[-1].role != role:
            self.turns.append(_Turn(role=role, blocks=[]))
        return len(self.turns) - 1

    def _call_block(self, part: ToolCallPart, turn: int) -> dict[str, Any]:
        claude_id = claude_tool_id(_GEMINI_MINTED.sub(r"toolu_gemini_\1", part.id or ""))
        while claude_id in self.used_ids:
            claude_id = new_id("toolu_")
        self.used_ids.add(claude_id)
        self.pending.append((part.id, claude_id, part.name, turn))
        if part.name not in self.tool_names:
            self.tool_names.append(part.name)
        return {"type": "tool_use", "id": claude_id, "name": part.name, "input": arguments_to_object(part.arguments)}

    def _pair(self, part: ToolResultPart) -> tuple[str, int] | None:
        match = None
        if part.tool_call_id:
            match = next((p for p in self.pending if p[0] == part.tool_call_id), None)
        else:
            match = next((p for p in self.pending if part.name and p[2] == part.name), None)
            if match is None and self.pending:
                match = self.pending[0]
        if match is None:
            return None
        self.pending.remove(match)
        return match[1], match[3]

    def add(self, message: Message) -> None:
        role = message.role if message.role in ("user", "assistant") else "user"
        for part in message.parts:
            if isinstance(part, ToolResultPart):
                self._add_result(part)
            elif isinstance(part, ToolCallPart):  # calls are assistant content, whatever the message says
                turn = self._turn("assistant")
                self.turns[turn].blocks.append(self._call_block(part, turn))
            else:
                block = self._block(part, role)
                if block is not None:
                    self.turns[self._turn(role)].blocks.append(block)

    @staticmethod
    def _block(part: Part, role: str) -> dict[str, Any] | None:
        if isinstance(part, ThinkingPart):
            if role != "assistant" or part.signature_source is not CLAUDE or not part.signature:
                return None
            if part.redacted:
                return {"type": "redacted_thinking", "data": part.signature}
            return {"type": "thinking", "thinking": part.text, "signature": part.signature}
        if isinstance(part, TextPart | ImagePart | FilePart):
            return _media_block(part)
        return None

    def _add_result(self, part: ToolResultPart) -> None:
        paired = self._pair(part)
        content = _tool_result_content(part.content)
        if paired is None:
            label = f"Result of tool call {part.tool_call_id or '(no id)'}"
            if part.name:
                label += f" ({part.name})"
            if part.is_error:
                label += " [error]"
            text = "".join(p.text for p in part.content if isinstance(p, TextPart))
            turn = self._turn("user")
            self.turns[turn].blocks.append({"type": "text", "text": f"{label}:\n{text}"})
            for p in part.content:
                if not isinstance(p, TextPart):
                    block = _media_block(p)
                    if block is not None:
                        self.turns[turn].blocks.append(block)
            return
        claude_id, call_turn = paired
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": claude_id}
        if content is not None:
            block["content"] = content
        if part.is_error:
            block["is_error"] = True
        self.turns[call_turn].results.append(block)
        # A user message of results keeps the turns apart: later assistant content must not merge upwards.
        if self.turns[-1].role == "assistant":
            self._turn("user")

    def build(self) -> list[dict[str, Any]]:
        ordered: list[_Turn] = []
        for turn in self.turns:
            if turn.blocks:
                ordered.append(_Turn(role=turn.role, blocks=list(turn.blocks)))
            if turn.results:
                ordered.append(_Turn(role="user", blocks=list(turn.results)))
        merged: list[_Turn] = []
        for turn in ordered:
            if merged and merged[-1].role == turn.role:
                merged[-1].blocks.extend(turn.blocks)
            else:
                merged.append(turn)
        out = []
        for turn in merged:
            blocks = turn.blocks
            if turn.role == "user":  # tool_result blocks must open a user message
                blocks = ([b for b in blocks if b.get("type") == "tool_result"]
                          + [b for b in blocks if b.get("type") != "tool_result"])
            out.append({"role": turn.role, "content": blocks})
        if out and out[-1]["role"] == "assistant":  # a prefill may not end in whitespace
            content = out[-1]["content"]
            if content[-1].get("type") == "text":
                content[-1]["text"] = content[-1]["text"].rstrip()
                if not content[-1]["text"]:
                    content.pop()
            if not content:
                out.pop()
        return out


def claude_user_id(request: Request) -> str:
    """`metadata.user_id` for a translated request, derived as the reference's translators do.

    The client's own user (chat/Responses `user`, a `metadata.user_id`) wins; otherwise a stable per-conversation
    hash: SHA-256 hex of `prompt_cache_key:<key>` (Responses clients) or else `content:<text of the first user
    message with text>` (its text parts stripped and joined by newlines), else `model:<model>;system:<text>`.
    The same conversation keeps the same id on every turn; different conversations get different ones.
    Lossy: the reference's raw-body fallbacks (`session_id`, `conversation_id`, the raw system JSON) have no
    canonical slot.
    """
    meta = request.metadata if isinstance(request.metadata, Mapping) else {}
    for own in (meta.get("user_id"), request.user):
        if isinstance(own, str) and own.strip():
            return own
    extras = meta.get(RESPONSES_EXTRAS)
    cache_key = extras.get("prompt_cache_key") if isinstance(extras, Mapping) else None
    if isinstance(cache_key, str) and cache_key.strip():
        seed = f"prompt_cache_key:{cache_key.strip()}"
    else:
        seed = ""
        for message in request.messages:
            if message.role != "user":
                continue
            texts = [t for t in (p.text.strip() for p in message.parts if isinstance(p, TextPart)) if t]
            if texts:
                seed = "content:" + "\n".join(texts).strip()
                break
        if not seed and request.model.strip():
            seed = f"model:{request.model.strip()}"
            if request.system:
                seed += ";system:" + "\n".join(p.text for p in request.system)
    if not seed:
        return "unknown"
    return hashlib.sha256(seed.encode()).hexdigest()


def _thinking_budget(reasoning: Reasoning | None) -> int | None:
    """0 = disabled, N = enabled with budget N, None = not set."""
    if reasoning is None:
        return None
    budget = reasoning.budget_tokens
    effort = (reasoning.effort or "").lower() or None
    if budget is not None and budget >= 0:
        return 0 if budget == 0 else max(MIN_THINKING_BUDGET, budget)
    if effort == "none":
        return 0
    if effort is not None:
        return EFFORT_BUDGETS.get(effort, EFFORT_BUDGETS["medium"])
    if budget is not None:  # −1 (dynamic) or another negative value
        return EFFORT_BUDGETS["auto"]
    if reasoning.include_thoughts:
        return EFFORT_BUDGETS["auto"]
    return None


def _input_schema(parameters: Mapping[str, Any]) -> dict[str, Any]:
    schema = dict(parameters) if isinstance(parameters, Mapping) else {}
    if schema.get("type") != "object":
        schema["type"] = "object"
    return schema


def _thinking_turn_ok(messages: list[dict[str, Any]]) -> bool:
    """Whether thinking may be enabled: not with an assistant prefill, and a conversation continuing a tool
    loop needs the assistant turn it continues to open with a thinking block."""
    if messages and messages[-1]["role"] == "assistant":
        return False
    if len(messages) < 2:
        return True
    first = messages[-1]["content"][0] if messages[-1]["content"] else {}
    if first.get("type") != "tool_result":
        return True
    previous = messages[-2]
    if previous["role"] != "assistant" or not previous["content"]:
        return True
    return previous["content"][0].get("type") in ("thinking", "redacted_thinking")


# --------------------------------------------------------------------------------------------- stream encoder


@attrs.define
class _Segment:
    kind: str  # text | thinking | redacted | tool
    chunks: list[str] = attrs.field(factory=list)
    finished: bool = False
    opened: bool = False
    index: int = -1
    tool_id: str = ""
    name: str = ""
    signature: str | None = None
    closed: bool = False


_BLOCK_DELTA_HEAD = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_JSON_DELTA_HEAD = b',"delta":{"type":"input_json_delta","partial_json":'
_DELTA_HEADS = {"text": b',"delta":{"type":"text_delta","text":',
                "thinking": b',"delta":{"type":"thinking_delta","thinking":'}


class ClaudeStreamEncoder:
    """Canonical stream events → Anthropic Messages SSE (message_start, ping, sequential blocks, message_delta,
    message_stop). Blocks never overlap: content arriving behind an unfinished tool call is buffered and
    flushed, in arrival order, when the blocks before it close."""

    def __init__(self, *, model: str, context: AnswerContext = NO_CONTEXT) -> None:
        self.context = context
        self.shape = shape_for(context)
        self.model = model
        self.id = ""
        self._started = False
        self._done = False
        self._next_index = 0
        self._queue: list[_Segment] = []
        self._tools: dict[int, _Segment] = {}
        self._saw_tool = False
        self._tool_count = 0
        self._usage: Usage | None = None
        self._finish: Finish | None = None
        self._delta_usage: dict[str, Any] | None = None  # usage of the message_delta already sent

    # -- framing helpers

    @staticmethod
    def _event(kind: str, payload: dict[str, Any]) -> bytes:
        return frame(_dumps({"type": kind, **payload}).encode("utf-8"), event=kind)

    def _start(self, out: list[bytes], start: StreamStart | None = None) -> None:
        if self._started:
            return
        self._started = True
        self.id = message_id_for(start.id if start is not None else "")
        usage: dict[str, Any]
        if self.shape.start_estimate:
            known = usage_to_claude(self._usage)["input_tokens"] if self._usage is not None else 0
            usage = {"input_tokens": known or estimate_input_tokens(self.context.client_body), "output_tokens": 0}
        else:
            usage = usage_to_claude(self._usage)
        message = {"id": self.id, "type": "message", "role": "assistant", "content": [], "model": self.model,
                   "stop_reason": None, "stop_sequence": None, "usage": usage}
        out.append(self._event("message_start", {"message": message}))
        if self.shape.ping:
            out.append(self._event("ping", {}))

    # -- block queue

    def _open(self, segment: _Segment, out: list[bytes]) -> None:
        segment.opened = True
        segment.index = self._next_index
        self._next_index += 1
        block: dict[str, Any]
        if segment.kind == "text":
            block = {"type": "text", "text": ""}
        elif segment.kind == "thinking":
            block = {"type": "thinking", "thinking": ""}
            if self.shape.empty_signature:
                block["signature"] = ""
        elif segment.kind == "redacted":
            block = {"type": "redacted_thinking", "data": segment.signature or ""}
        else:
            block = {"type": "tool_use", "id": segment.tool_id, "name": segment.name, "input": {}}
        out.append(self._event("content_block_start", {"index": segment.index, "content_block": block}))
        if self._whole_arguments(segment):
            return  # the arguments go out in one delta when the block closes
        pending = "".join(segment.chunks)
        segment.chunks.clear()
        if pending:
            self._delta(segment, pending, out)
        if segment.kind == "thinking" and segment.signature and segment.finished:
            self._signature(segment, out)

    def _delta(self, segment: _Segment, text: str, out: list[bytes]) -> None:
        # The frame _event would build for {"index": …, "delta": {"type": "<kind>_delta", "<key>": text}}.
        out.append(b"".join((_BLOCK_DELTA_HEAD, str(segment.index).encode(),
                             _DELTA_HEADS.get(segment.kind, _JSON_DELTA_HEAD), jsonfast.string(text), b"}}\n\n")))

    def _signature(self, segment: _Segment, out: list[bytes]) -> None:
        delta = {"type": "signature_delta", "signature": segment.signature}
        out.append(self._event("content_block_delta", {"index": segment.index, "delta": delta}))

    def _advance(self, out: list[bytes]) -> None:
        while self._queue:
            head = self._queue[0]
            if not head.opened:
                self._open(head, out)
            if not head.finished:
                return
            if self._whole_arguments(head) and head.chunks:
                self._delta(head, "".join(head.chunks), out)
                head.chunks.clear()
            out.append(self._event("content_block_stop", {"index": head.index}))
            head.closed = True
            self._queue.pop(0)

    def _whole_arguments(self, segment: _Segment) -> bool:
        return segment.kind == "tool" and self.shape.whole_tool_arguments

    def _append(self, segment: _Segment, out: list[bytes]) -> None:
        if self._queue and self._queue[-1].kind in ("text", "thinking"):
            self._queue[-1].finished = True
        self._queue.append(segment)
        self._advance(out)

    def _content(self, kind: str, text: str, out: list[bytes]) -> None:
        if not text:
            return
        self._start(out)
        last = self._queue[-1] if self._queue else None
        if last is not None and last.kind == kind and not last.finished:
            if last.opened:
                self._delta(last, text, out)
            else:
                last.chunks.append(text)
            return
        self._append(_Segment(kind=kind, chunks=[text]), out)

    def _thinking_signature(self, event: ThinkingSignature, out: list[bytes]) -> None:
        if event.source is not CLAUDE or not event.signature:
            return  # foreign opaque state is never forwarded (DECISIONS 8)
        self._start(out)
        if event.redacted:
            self._append(_Segment(kind="redacted", signature=event.signature, finished=True), out)
            return
        last = self._queue[-1] if self._queue else None
        if last is None or last.kind != "thinking" or last.finished:
            last = _Segment(kind="thinking")
            self._append(last, out)
        last.signature = event.signature
        last.finished = True
        if last.opened:
            self._signature(last, out)
        self._advance(out)

    def _tool_start(self, event: ToolCallStart, out: list[bytes]) -> None:
        self._start(out)
        self._saw_tool = True
        self._tool_count += 1
        tool_id = f"{event.name}-{self._tool_count}" if self.shape.name_tool_ids else claude_tool_id(event.id)
        segment = _Segment(kind="tool", tool_id=tool_id, name=event.name)
        self._tools[event.index] = segment
        self._append(segment, out)

    def _tool_delta(self, event: ToolCallDelta, out: list[bytes]) -> None:
        segment = self._tools.get(event.index)
        if segment is None:
            self._tool_start(ToolCallStart(index=event.index, id="", name=""), out)
            segment = self._tools[event.index]
        if not event.arguments or segment.closed:
            return
        if segment.opened and not self._whole_arguments(segment):
            self._delta(segment, event.arguments, out)
        else:
            segment.chunks.append(event.arguments)

    def _close_blocks(self, out: list[bytes]) -> None:
        for segment in self._queue:
            segment.finished = True
        self._advance(out)

    def _message_delta(self, out: list[bytes]) -> None:
        finish = self._finish
        stop_sequence = finish.stop_sequence if finish is not None else None
        reason = stop_reason_from_finish(finish.reason if finish is not None else None,
                                         has_tool_calls=self._saw_tool, stop_sequence=stop_sequence)
        usage = usage_for_shape(self._usage, self.shape)
        self._delta_usage = usage
        out.append(self._event("message_delta", {
            "delta": {"stop_reason": reason, "stop_sequence": stop_sequence if reason == "stop_sequence" else None},
            "usage": usage}))

    # -- StreamEncoder

    def encode(self, event: StreamEvent) -> bytes:
        if self._done:
            return b""
        if type(event) is TextDelta and self._queue:
            last = self._queue[-1]
            if last.kind == "text" and last.opened and not last.finished and event.text:
                # _content("text", …) on a running text block: one content_block_delta frame
                return b"".join((_BLOCK_DELTA_HEAD, str(last.index).encode(), _DELTA_HEADS["text"],
                                 jsonfast.string(event.text), b"}}\n\n"))
        out: list[bytes] = []
        if isinstance(event, StreamStart):
            self._start(out, event)
        elif isinstance(event, TextDelta):
            self._content("text", event.text, out)
        elif isinstance(event, ThinkingDelta):
            self._content("thinking", event.text, out)
        elif isinstance(event, ThinkingSignature):
            self._thinking_signature(event, out)
        elif isinstance(event, ToolCallStart):
            self._tool_start(event, out)
        elif isinstance(event, ToolCallDelta):
            self._tool_delta(event, out)
        elif isinstance(event, ToolCallEnd):
            segment = self._tools.get(event.index)
            if segment is not None:
                segment.finished = True
                self._advance(out)
        elif isinstance(event, UsageUpdate):
            self._usage = event.usage
            if self._delta_usage is not None and usage_for_shape(event.usage, self.shape) != self._delta_usage:
                self._message_delta(out)
        elif isinstance(event, Finish):
            if self._finish is None:
                self._start(out)
                self._finish = event
                if not self._bare_end():
                    self._close_blocks(out)
                    if self._usage is not None:
                        self._message_delta(out)
        elif isinstance(event, StreamError):
            return self.error(event.status, event.message)
        return b"".join(out)

    def close(self) -> bytes:
        if self._done:
            return b""
        out: list[bytes] = []
        self._start(out)
        if not self._bare_end():
            self._close_blocks(out)
            if self._delta_usage is None:
                self._message_delta(out)
        out.append(self._event("message_stop", {}))
        if self.shape.trailing_newline:
            out.append(b"\n")
        self._done = True
        return b"".join(out)

    def _bare_end(self) -> bool:
        """No stop reason from the upstream (a Finish without `native` is the decoder's inference at EOF)."""
        return self.shape.bare_unfinished_end and (self._finish is None or self._finish.native is None)

    def error(self, status: int, message: str) -> bytes:
        if self._done:
            return b""
        self._done = True
        stop = self._event("message_stop", {}) if self._started and self._bare_end() else b""
        payload = {"type": "error", "error": {"type": "api_error", "message": message}}
        return stop + frame(_dumps(payload).encode("utf-8"), event="error")


# --------------------------------------------------------------------------------------------- stream decoder


class ClaudeStreamDecoder:
    """Anthropic Messages SSE → canonical events. Tool-call indexes count tool_use blocks (0, 1, …), not
    Claude's block indexes; usage merges message_start (input, cache) with message_delta (output)."""

    def __init__(self) -> None:
        self._started = False
        self._blocks: dict[int, tuple[str, int]] = {}  # Claude block index → (kind, tool ordinal)
        self._open_tools: set[int] = set()
        self._tool_count = 0
        self._raw_usage: dict[str, Any] = {}
        self._usage_sent = False
        self._finished = False

    def _ensure_start(self, out: list[StreamEvent], message: Mapping[str, Any] | None = None) -> None:
        if self._started:
            return
        self._started = True
        message = message or {}
        raw_id, model = message.get("id"), message.get("model")
        out.append(StreamStart(id=raw_id if isinstance(raw_id, str) else "",
                               model=model if isinstance(model, str) else "", created=now()))

    def _merge_usage(self, raw: Any) -> None:
        if isinstance(raw, Mapping):
            for key, value in raw.items():
                if _is_int(value):
                    self._raw_usage[key] = value

    def _usage_event(self) -> UsageUpdate:
        self._usage_sent = True
        return UsageUpdate(usage=usage_from_claude(self._raw_usage) or Usage())

    def decode(self, event: SSEEvent) -> list[StreamEvent]:
        try:
            data = jsonfast.loads(event.data) if event.data else None
        except ValueError:
            return []
        if not isinstance(data, dict):
            return []
        kind = data.get("type", event.event)
        out: list[StreamEvent] = []
        if kind == "ping" or kind == "message_stop":
            return out
        if kind == "error":
            error = data.get("error") if isinstance(data.get("error"), dict) else {}
            etype = error.get("type") if isinstance(error.get("type"), str) else "api_error"
            message = error.get("message") if isinstance(error.get("message"), str) else _dumps(data)
            out.append(StreamError(status=_ERROR_STATUS.get(etype, 500), message=message, type=etype))
            return out
        if kind == "message_start":
            message = data.get("message") if isinstance(data.get("message"), dict) else {}
            self._ensure_start(out, message)
            self._merge_usage(message.get("usage"))
            return out
        self._ensure_start(out)
        index = data.get("index")
        if kind == "content_block_start" and _is_int(index):
            self._block_start(index, data.get("content_block"), out)
        elif kind == "content_block_delta" and _is_int(index):
            self._block_delta(index, data.get("delta"), out)
        elif kind == "content_block_stop" and _is_int(index):
            kind_ordinal = self._blocks.get(index)
            if kind_ordinal is not None and kind_ordinal[0] == "tool" and kind_ordinal[1] in self._open_tools:
                self._open_tools.discard(kind_ordinal[1])
                out.append(ToolCallEnd(index=kind_ordinal[1]))
        elif kind == "message_delta":
            delta = data.get("delta") if isinstance(data.get("delta"), dict) else {}
            self._merge_usage(data.get("usage"))
            stop_reason = delta.get("stop_reason")
            if stop_reason is not None and not self._finished:
                self._finished = True
                stop_sequence = delta.get("stop_sequence")
                out.extend(ToolCallEnd(index=i) for i in sorted(self._open_tools))
                self._open_tools.clear()
                out.append(Finish(reason=finish_from_stop_reason(stop_reason, self._tool_count > 0),
                                  native=stop_reason if isinstance(stop_reason, str) else None,
                                  stop_sequence=stop_sequence if isinstance(stop_sequence, str) else None))
            if data.get("usage") is not None or self._raw_usage:
                out.append(self._usage_event())
        return out

    def _block_start(self, index: int, block: Any, out: list[StreamEvent]) -> None:
        if not isinstance(block, dict):
            return
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = ("text", -1)
            if isinstance(block.get("text"), str) and block["text"]:
                out.append(TextDelta(text=block["text"]))
        elif kind == "thinking":
            self._blocks[index] = ("thinking", -1)
            if isinstance(block.get("thinking"), str) and block["thinking"]:
                out.append(ThinkingDelta(text=block["thinking"]))
            if isinstance(block.get("signature"), str) and block["signature"]:
                out.append(ThinkingSignature(signature=block["signature"], source=CLAUDE))
        elif kind == "redacted_thinking":
            self._blocks[index] = ("redacted", -1)
            if isinstance(block.get("data"), str):
                out.append(ThinkingSignature(signature=block["data"], source=CLAUDE, redacted=True))
        elif kind == "tool_use":
            ordinal = self._tool_count
            self._tool_count += 1
            self._blocks[index] = ("tool", ordinal)
            self._open_tools.add(ordinal)
            call_id, name = block.get("id"), block.get("name")
            out.append(ToolCallStart(index=ordinal, id=call_id if isinstance(call_id, str) else "",
                                     name=name if isinstance(name, str) else ""))
            initial = block.get("input")
            if isinstance(initial, dict) and initial:
                out.append(ToolCallDelta(index=ordinal, arguments=_dumps(initial)))
        else:
            self._blocks[index] = ("other", -1)  # server tools and their results: no canonical form

    def _block_delta(self, index: int, delta: Any, out: list[StreamEvent]) -> None:
        if not isinstance(delta, dict):
            return
        block_kind, ordinal = self._blocks.get(index, ("", -1))
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str) and block_kind in ("text", ""):
            if delta["text"]:
                out.append(TextDelta(text=delta["text"]))
        elif kind == "thinking_delta" and isinstance(delta.get("thinking"), str) and block_kind in ("thinking", ""):
            if delta["thinking"]:
                out.append(ThinkingDelta(text=delta["thinking"]))
        elif kind == "signature_delta" and isinstance(delta.get("signature"), str) and block_kind != "other":
            out.append(ThinkingSignature(signature=delta["signature"], source=CLAUDE))
        elif kind == "input_json_delta" and block_kind == "tool" and isinstance(delta.get("partial_json"), str) \
                and delta["partial_json"]:
            out.append(ToolCallDelta(index=ordinal, arguments=delta["partial_json"]))

    def close(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if not self._started:
            return out
        out.extend(ToolCallEnd(index=i) for i in sorted(self._open_tools))
        self._open_tools.clear()
        if not self._usage_sent and self._raw_usage:
            out.append(self._usage_event())
        return out


# --------------------------------------------------------------------------------------------- codec


class ClaudeCodec:
    """The Anthropic Messages codec (`WireProtocol.CLAUDE`); see the module docstring for lossy mappings."""

    protocol = CLAUDE

    # -- client side

    def decode_request(self, body: dict[str, Any], *, model: str, stream: bool) -> Request:
        """A `/v1/messages` body → Request; CodecError names the offending field."""
        if not isinstance(body, dict):
            raise CodecError("", "request body must be a JSON object")
        if "messages" not in body:
            raise CodecError("messages", "is required")
        messages = _decode_messages(body.get("messages"))
        metadata_raw = body.get("metadata")
        if metadata_raw is not None:
            _dict(metadata_raw, "metadata")
        metadata = dict(metadata_raw) if isinstance(metadata_raw, dict) else {}
        user = metadata.get("user_id")
        if user is not None and not isinstance(user, str):
            raise CodecError("metadata.user_id", "must be a string")
        output_config = body.get("output_config")
        if output_config is not None:
            _dict(output_config, "output_config")
        generation = Generation(
            max_tokens=_opt_int(body, "max_tokens"),
            temperature=_opt_float(body, "temperature"),
            top_p=_opt_float(body, "top_p"),
            top_k=_opt_int(body, "top_k"),
            stop=_decode_stop(body.get("stop_sequences")),
            response_format=_decode_response_format(body),
        )
        return Request(
            model=model,
            messages=messages,
            system=_decode_system(body.get("system")),
            tools=_decode_tools(body.get("tools")),
            tool_choice=_decode_tool_choice(body.get("tool_choice")),
            generation=generation,
            reasoning=_decode_thinking(body.get("thinking"), output_config),
            stream=stream,
            user=user or None,
            metadata=metadata,
        )

    def encode_response(
        self, response: Response, *, model: str, context: AnswerContext = NO_CONTEXT
    ) -> dict[str, Any]:
        """A Response → an Anthropic message object for a client that asked for `model`."""
        shape = shape_for(context)
        content: list[dict[str, Any]] = []
        tool_count = 0
        for part in response.content:
            if isinstance(part, TextPart):
                if part.text:
                    content.append({"type": "text", "text": part.text})
            elif isinstance(part, ThinkingPart):
                claude_signed = part.signature_source is CLAUDE and bool(part.signature)
                if part.redacted:
                    if claude_signed:
                        content.append({"type": "redacted_thinking", "data": part.signature})
                elif part.text or claude_signed:
                    block = {"type": "thinking", "thinking": part.text}
                    if claude_signed or shape.empty_signature:
                        block["signature"] = part.signature if claude_signed else ""
                    content.append(block)
            elif isinstance(part, ToolCallPart):
                tool_count += 1
                call_id = f"{part.name}-{tool_count}" if shape.name_tool_ids else claude_tool_id(part.id)
                content.append({"type": "tool_use", "id": call_id, "name": part.name,
                                "input": arguments_to_object(part.arguments)})
            # images/files in an answer have no Claude response block: dropped.
        message_id = message_id_for(response.id)
        stop_reason = stop_reason_from_finish(response.finish_reason, has_tool_calls=tool_count > 0,
                                              stop_sequence=response.stop_sequence)
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": response.stop_sequence if stop_reason == "stop_sequence" else None,
            "usage": usage_for_shape(response.usage, shape),
        }

    def stream_encoder(self, *, model: str, context: AnswerContext = NO_CONTEXT) -> ClaudeStreamEncoder:
        return ClaudeStreamEncoder(model=model, context=context)

    # -- upstream side

    def encode_request(
        self, request: Request, *, model: str, context: RequestContext = NO_REQUEST_CONTEXT
    ) -> dict[str, Any]:
        """A Request → an Anthropic Messages body for upstream model `model`."""
        shape = request_shape_for(context)
        builder = _RequestBuilder()
        for message in request.messages:
            builder.add(message)
        messages = builder.build()
        body: dict[str, Any] = {"model": model, "messages": messages}
        gen = request.generation

        system = [b for b in (_media_block(p) for p in request.system) if b is not None and b["type"] == "text"]
        fmt = gen.response_format
        if fmt is not None and fmt.type == "json_object":
            system.append({"type": "text", "text": _RESPONSE_FORMAT_JSON})
        elif fmt is not None and fmt.type == "json_schema":
            schema = _dumps(dict(fmt.schema) if fmt.schema else {"type": "object"})
            label = f" (schema name: {fmt.name})" if fmt.name else ""
            system.append({"type": "text", "text": f"{_RESPONSE_FORMAT_SCHEMA}{label}\n{schema}"})
        if system:
            body["system"] = system

        tools: list[dict[str, Any]] = []
        for tool in request.tools:
            if tool.builtin is not None:
                if tool.builtin_protocol is CLAUDE:
                    tools.append(dict(tool.builtin))
                continue
            # `description` always present ("" when none), as the reference's translators send it
            entry: dict[str, Any] = {"name": tool.name, "description": tool.description or ""}
            entry["input_schema"] = _input_schema(tool.parameters)
            if shape.strict_tool_schemas and entry["input_schema"] != _EMPTY_SCHEMA:
                entry["input_schema"] = {"$schema": _DRAFT_07, **entry["input_schema"]}
                entry["input_schema"].setdefault("additionalProperties", False)
            tools.append(entry)
        choice = request.tool_choice
        synthesized = False
        if not tools and builder.tool_names:
            # Anthropic rejects tool_use/tool_result history without tool definitions.
            tools = [{"name": name, "input_schema": {"type": "object", "properties": {}}}
                     for name in builder.tool_names if name]
            synthesized = bool(tools)
        if tools:
            body["tools"] = tools
            if synthesized and choice is None:
                body["tool_choice"] = {"type": "none"}
            elif choice is not None:
                body["tool_choice"] = self._tool_choice(choice)

        max_tokens = gen.max_tokens if gen.max_tokens is not None and gen.max_tokens > 0 else DEFAULT_MAX_TOKENS
        budget = _thinking_budget(request.reasoning)
        forced = "tool_choice" in body and body["tool_choice"]["type"] in ("any", "tool")
        if budget and (forced or not _thinking_turn_ok(messages)):
            budget = None
        thinking_on = bool(budget)
        if budget == 0:
            body["thinking"] = {"type": "disabled"}
        elif budget:
            if budget >= max_tokens:
                max_tokens = budget + max_tokens
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
            if request.reasoning is not None and request.reasoning.include_thoughts:
                body["thinking"]["display"] = "summarized"  # the client asked for its thoughts (Gemini)
        body["max_tokens"] = max_tokens

        if gen.temperature is not None and (not thinking_on or gen.temperature == 1):
            body["temperature"] = min(1.0, max(0.0, gen.temperature))
        elif gen.top_p is not None and (not thinking_on or gen.top_p >= 0.95):
            body["top_p"] = min(1.0, max(0.0, gen.top_p))
        if gen.top_k is not None and gen.top_k > 0 and not thinking_on:
            body["top_k"] = gen.top_k
        stops = [s for s in gen.stop if s.strip()]
        if stops:
            body["stop_sequences"] = stops

        body["metadata"] = {"user_id": claude_user_id(request)}
        body["stream"] = bool(request.stream)
        if shape.single_text_as_string:
            for message in messages:
                blocks = message["content"]
                if message["role"] == "user" and len(blocks) == 1 and set(blocks[0]) == {"type", "text"} \
                        and blocks[0]["type"] == "text":
                    message["content"] = blocks[0]["text"]
        return body

    @staticmethod
    def _tool_choice(choice: ToolChoice) -> dict[str, Any]:
        if choice.mode == "none":
            return {"type": "none"}
        out: dict[str, Any]
        if choice.mode == "required":
            out = {"type": "any"}
        elif choice.mode == "tool" and choice.name:
            out = {"type": "tool", "name": choice.name}
        else:
            out = {"type": "auto"}
        if choice.parallel is False:
            out["disable_parallel_tool_use"] = True
        return out

    def decode_response(self, body: dict[str, Any]) -> Response:
        """An Anthropic message object → Response (tolerant: unknown blocks are skipped)."""
        body = body if isinstance(body, dict) else {}
        parts: list[Part] = []
        blocks = body.get("content") if isinstance(body.get("content"), list) else []
        for block in blocks:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text" and isinstance(block.get("text"), str):
                parts.append(TextPart(text=block["text"]))
            elif kind == "thinking":
                text = block.get("thinking") if isinstance(block.get("thinking"), str) else ""
                signature = block.get("signature") if isinstance(block.get("signature"), str) else None
                parts.append(ThinkingPart(text=text, signature=signature or None, signature_source=CLAUDE))
            elif kind == "redacted_thinking" and isinstance(block.get("data"), str):
                parts.append(ThinkingPart(redacted=True, signature=block["data"], signature_source=CLAUDE))
            elif kind == "tool_use":
                call_id, name = block.get("id"), block.get("name")
                parts.append(ToolCallPart(id=call_id if isinstance(call_id, str) else "",
                                          name=name if isinstance(name, str) else "",
                                          arguments=object_to_arguments(block.get("input"))))
        stop_reason = body.get("stop_reason")
        stop_sequence = body.get("stop_sequence")
        has_tools = any(isinstance(p, ToolCallPart) for p in parts)
        is_error = body.get("type") == "error"
        finish = FinishReason.ERROR if is_error else finish_from_stop_reason(stop_reason, has_tools)
        raw_id, model = body.get("id"), body.get("model")
        return Response(
            id=raw_id if isinstance(raw_id, str) else "",
            model=model if isinstance(model, str) else "",
            content=tuple(parts),
            finish_reason=finish,
            usage=usage_from_claude(body.get("usage")),
            created=now(),
            native_finish_reason=stop_reason if isinstance(stop_reason, str) else None,
            stop_sequence=stop_sequence if isinstance(stop_sequence, str) else None,
        )

    def stream_decoder(self) -> ClaudeStreamDecoder:
        return ClaudeStreamDecoder()
