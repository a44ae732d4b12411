"""Gemini `generateContent` / `streamGenerateContent` (v1beta) ↔ the canonical model.

Mapping decisions (the lossy ones last):
- Roles: `model` ↔ assistant; `user`, `function`, `tool` and unknown roles → user.
- `functionCall` ↔ ToolCallPart: `args` (object) ↔ JSON text; the call's `id` when Gemini gave one, else
  `call_gemini_<n>` numbered within the request (deterministic, as the reference); a part's `thoughtSignature`
  → `signature` with `signature_source=GEMINI`.
- `functionResponse` ↔ ToolResultPart, paired to the earlier call by `id`, else the oldest unanswered call of that
  name, else the oldest unanswered call. `response` → text: the string of `{"result"|"output"|"content": str}`,
  `{"error": x}` → `is_error` with x's text, anything else → its compact JSON. Encoding: `{"output": text}`, or the
  object itself when the text is a JSON object (no double encoding), `{"error": text}` for errors; images of a
  tool result follow as `inlineData`/`fileData` parts of the same user turn.
- `thought: true` parts ↔ ThinkingPart. In requests a `thoughtSignature` on a non-thought text part (or a part
  holding only a signature) becomes an empty ThinkingPart carrying the signature just before that part; in
  responses it closes the preceding thought (else it is dropped), in streams it is a ThinkingSignature event.
  Encoding attaches a pending Gemini signature to the next part. Foreign signatures are dropped; a function
  call without a Gemini signature gets `skip_thought_signature_validator` (Gemini 3 rejects replayed calls
  without one).
- Thinking: `thinkingBudget` ↔ `Reasoning.budget_tokens`, `thinkingLevel` ↔ `effort`, `includeThoughts` ↔
  `include_thoughts`. A budget without a level also fills `effort` through `budget_to_effort` (0 none, ≤512
  minimal, ≤1024 low, ≤8192 medium, ≤24576 high, more xhigh, -1 no effort); encoding prefers the budget and
  turns an effort into one with EFFORT_TO_BUDGET (none 0, minimal 512, low 1024, medium 8192, high 24576, xhigh
  32768; budgets work on every thinking Gemini model); `includeThoughts` defaults to budget ≠ 0, except for
  clients whose effort sets the amount only (Responses: the thoughts are asked for with `reasoning.summary`).
- Layout details that depend on the client protocol (user-turn grouping, replayed thoughts, system role, empty
  descriptions): protocols/gemini_layout.
- `safetySettings` are not canonical: dropped on decode; requests for Gemini get DEFAULT_SAFETY_SETTINGS.
- Not expressible in Gemini: `ToolChoice.parallel`, `Request.user`, more than 5 stop sequences (the first 5 are
  sent), non-Gemini built-in tools (web search maps to `googleSearch`, others are dropped), provider file ids
  (sent as a text note). Not expressible canonically: `allowedFunctionNames` with several names (→ required),
  mode VALIDATED (→ auto), `text/x.enum` responses, `cachedContent`, non-text system parts, streamed
  `inlineData` (no canonical stream event for images).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import mimetypes
from collections.abc import Mapping
from typing import Any

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
from proxyd.protocols.gemini_answers import TRAFFIC_TYPE, AnswerStyle, style_for, usage_gemini_convention
from proxyd.protocols.gemini_layout import (
    DEFAULT_SHAPE,
    GeminiRequestShape,
    TaggedParts,
    merge_user_turns,
    request_shape_for,
    user_contents,
)
from proxyd.protocols.gemini_schema import clean_schema_for_gemini, openapi_to_json_schema
from proxyd.protocols.ids import new_id, now
from proxyd.protocols.sse import SSEEvent, frame

SENTINEL_SIGNATURE = "skip_thought_signature_validator"

DEFAULT_SAFETY_SETTINGS: tuple[dict[str, str], ...] = (
    {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"},
    {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"},
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "threshold": "OFF"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "OFF"},
    {"category": "HARM_CATEGORY_CIVIC_INTEGRITY", "threshold": "BLOCK_NONE"},
)



def with_default_safety(body: dict[str, Any]) -> dict[str, Any]:
    """A Gemini client body bound for a Gemini upstream (passthrough): the reference adds
    DEFAULT_SAFETY_SETTINGS when the client sent none; the client's own settings are kept."""
    if body.get("safetySettings"):
        return body
    return {**body, "safetySettings": [dict(s) for s in DEFAULT_SAFETY_SETTINGS]}


EFFORT_TO_BUDGET: dict[str, int] = {
    "none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768, "max": 128000,
    "auto": -1,
}
"""Canonical effort → `thinkingBudget` (translation.md §6.3)."""


def budget_to_effort(budget: int) -> str | None:
    """`thinkingBudget` → canonical effort (§6.3 bands); -1 (dynamic) has no effort."""
    if budget == 0:
        return "none"
    if budget < 0:
        return None
    for limit, effort in ((512, "minimal"), (1024, "low"), (8192, "medium"), (24576, "high")):
        if budget <= limit:
            return effort
    return "xhigh"


_MAX_STOP_SEQUENCES = 5
_RESULT_KEYS = ("result", "output", "content")
_FILTER_REASONS = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
                             "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "LANGUAGE"})
_ERROR_REASONS = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS",
                            "MISSING_THOUGHT_SIGNATURE", "MALFORMED_RESPONSE"})
_GEMINI_BUILTINS = {
    "googleSearch": "googleSearch", "google_search": "googleSearch",
    "googleSearchRetrieval": "googleSearchRetrieval", "google_search_retrieval": "googleSearchRetrieval",
    "codeExecution": "codeExecution", "code_execution": "codeExecution",
    "urlContext": "urlContext", "url_context": "urlContext",
    "fileSearch": "fileSearch", "file_search": "fileSearch",
    "googleMaps": "googleMaps", "google_maps": "googleMaps",
    "computerUse": "computerUse", "computer_use": "computerUse",
    "enterpriseWebSearch": "enterpriseWebSearch", "enterprise_web_search": "enterpriseWebSearch",
    "retrieval": "retrieval",
}
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 408: "DEADLINE_EXCEEDED", 409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
                 499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
                 504: "DEADLINE_EXCEEDED"}


def status_name(status: int) -> str:
    """The google.rpc status name Gemini puts next to an HTTP code."""
    if status in _STATUS_NAMES:
        return _STATUS_NAMES[status]
    return "INTERNAL" if status >= 500 else "INVALID_ARGUMENT" if status >= 400 else "UNKNOWN"


def error_body(status: int, message: str) -> dict[str, Any]:
    """Google's error envelope."""
    return {"error": {"code": status, "message": message, "status": status_name(status)}}


# ============================================================================================ small helpers


def _get(obj: Mapping[str, Any], camel: str, snake: str | None = None) -> Any:
    """A field by its camelCase name or its snake_case alias (Gemini's JSON accepts both)."""
    if camel in obj:
        return obj[camel]
    if snake is not None:
        return obj.get(snake)
    return None


def _is_number(value: Any) -> bool:
    """A finite JSON number (bools, NaN and infinities are not)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _json_text(value: Any) -> str:
    return jsonfast.dumps(value)


def _is_image(mime: str, uri: str = "") -> bool:
    if mime:
        return mime.lower().startswith("image/")
    guessed, _ = mimetypes.guess_type(uri.split("?", 1)[0]) if uri else (None, None)
    return bool(guessed and guessed.startswith("image/"))


def _guess_mime(uri: str, fallback: str) -> str:
    guessed, _ = mimetypes.guess_type(uri.split("?", 1)[0])
    return guessed or fallback


def _parse_time(value: Any) -> int:
    if isinstance(value, str) and value:
        text = value.strip().replace("Z", "+00:00")
        if "." in text:  # Gemini sends nanoseconds; datetime takes at most microseconds
            head, _, rest = text.partition(".")
            digits = "".join(c for c in rest if c.isdigit())
            text = f"{head}.{digits[:6]}{rest[len(digits):]}"
        try:
            return int(_dt.datetime.fromisoformat(text).timestamp())
        except (ValueError, OverflowError, OSError):
            return 0
    return 0


def _format_time(created: int, fmt: str = "%Y-%m-%dT%H:%M:%S.%fZ") -> str:
    return _dt.datetime.fromtimestamp(created, _dt.UTC).strftime(fmt)


def _usage_metadata(style: AnswerStyle, usage: Usage | None) -> dict[str, Any] | None:
    """`usageMetadata` in the style's convention; `{"trafficType": …}` alone when the style wants it without
    counts; None when there is nothing to say."""
    meta = style.usage(usage) if usage is not None else None
    if style.traffic_type:
        meta = {**(meta or {}), "trafficType": TRAFFIC_TYPE}
    return meta


def _unwrap_envelope(body: Any) -> Any:
    """Gemini CLI / Code Assist wraps responses as `{"response": {...}}`."""
    if isinstance(body, Mapping) and isinstance(body.get("response"), Mapping) and "candidates" not in body:
        return body["response"]
    return body


def _blob_part(mime: str, data: str | None, url: str | None, fallback_mime: str) -> dict[str, Any] | None:
    """inlineData for base64 or data URLs, fileData for other URLs."""
    if data:
        return {"inlineData": {"mimeType": mime or fallback_mime, "data": data}}
    if url:
        parsed = parse_data_url(url)
        if parsed is not None:
            return {"inlineData": {"mimeType": mime or parsed[0], "data": parsed[1]}}
        return {"fileData": {"mimeType": mime or _guess_mime(url, fallback_mime), "fileUri": url}}
    return None


def _media_part(part: ImagePart | FilePart) -> dict[str, Any] | None:
    if isinstance(part, ImagePart):
        return _blob_part(part.media_type, part.data, part.url, "image/jpeg")
    encoded = _blob_part(part.media_type, part.data, part.url, "application/octet-stream")
    if encoded is not None:
        return encoded
    if part.file_id:
        if "/" in part.file_id:  # a Gemini Files API name or URI
            return {"fileData": {"mimeType": part.media_type or "application/octet-stream",
                                 "fileUri": part.file_id}}
        label = part.filename or part.file_id
        return {"text": f"[file {label} is not available to this model]"}
    return None


def _snake_inline(media: dict[str, Any]) -> dict[str, Any]:
    """Request content blobs in the snake-case form the reference sends (`inline_data {mime_type, data}`)."""
    inline = media.get("inlineData")
    if not isinstance(inline, Mapping):
        return media
    return {"inline_data": {"mime_type": inline.get("mimeType"), "data": inline.get("data")}}


def _code_text(part: Mapping[str, Any]) -> str | None:
    """`executableCode` / `codeExecutionResult` parts rendered as text (no canonical equivalent)."""
    code = _get(part, "executableCode", "executable_code")
    if isinstance(code, Mapping):
        language = code.get("language")
        lang = language.lower() if isinstance(language, str) and language != "LANGUAGE_UNSPECIFIED" else ""
        return f"\n```{lang}\n{code.get('code', '')}\n```\n"
    result = _get(part, "codeExecutionResult", "code_execution_result")
    if isinstance(result, Mapping):
        output = result.get("output", "")
        return f"\n```\n{output}\n```\n"
    return None


def _tool_result_text(response: Any) -> tuple[str, bool]:
    """A `functionResponse.response` → (text, is_error)."""
    if isinstance(response, Mapping):
        if len(response) == 1:
            key, value = next(iter(response.items()))
            if key in _RESULT_KEYS and isinstance(value, str):
                return value, False
            if key == "error":
                return (value if isinstance(value, str) else _json_text(value)), True
        return _json_text(response), False
    if isinstance(response, str):
        return response, False
    if response is None:
        return "", False
    return _json_text(response), False


def _tool_response_object(text: str, is_error: bool) -> dict[str, Any]:
    """Tool-result text → `functionResponse.response` (a JSON object text is embedded, not double-encoded)."""
    if is_error:
        return {"error": text}
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        if isinstance(value, dict) and not (len(value) == 1 and next(iter(value)) in (*_RESULT_KEYS, "error")):
            return value
    return {"result": text}


def _gemini_finish(reason: FinishReason | None) -> str:
    if reason is FinishReason.LENGTH:
        return "MAX_TOKENS"
    if reason in (FinishReason.CONTENT_FILTER, FinishReason.REFUSAL):
        return "SAFETY"
    if reason is FinishReason.ERROR:
        return "OTHER"
    return "STOP"


def _canonical_finish(native: str | None, saw_tool_call: bool) -> FinishReason:
    value = (native or "").upper()
    if value == "MAX_TOKENS":
        return FinishReason.LENGTH
    if value in _FILTER_REASONS:
        return FinishReason.CONTENT_FILTER
    if value in _ERROR_REASONS:
        return FinishReason.ERROR
    return FinishReason.TOOL_CALLS if saw_tool_call else FinishReason.STOP


def _int(value: Any) -> int:
    return int(value) if _is_number(value) else 0


def usage_from_gemini(meta: Any) -> Usage | None:
    """`usageMetadata` → canonical Usage (output = candidates + thoughts; tool-use prompt counts as input)."""
    if not isinstance(meta, Mapping):
        return None
    prompt = _int(meta.get("promptTokenCount")) + _int(meta.get("toolUsePromptTokenCount"))
    candidates = _int(meta.get("candidatesTokenCount"))
    thoughts = _int(meta.get("thoughtsTokenCount"))
    total = meta.get("totalTokenCount")
    return Usage(input_tokens=prompt, output_tokens=candidates + thoughts, cached_tokens=_int(
        meta.get("cachedContentTokenCount")), reasoning_tokens=thoughts,
        total_tokens=int(total) if _is_number(total) else None)


def usage_to_gemini(usage: Usage) -> dict[str, Any]:
    """Canonical Usage → `usageMetadata` in Gemini's convention (candidates exclude thoughts)."""
    return usage_gemini_convention(usage)


# ============================================================================================ response parts


class _PartEncoder:
    """Canonical assistant parts → Gemini parts, carrying a pending Gemini signature onto the next part."""

    def __init__(self, *, request: bool = False, model_turn: bool = False, foreign_sentinel: bool = False,
                 replay_thoughts: bool = False) -> None:
        self.pending: str | None = None
        self.request = request
        # Requests omit thought text (only a Gemini signature is carried over) unless the client's shape replays it.
        self.thoughts = not request or replay_thoughts
        self.sentinel = request and model_turn  # replayed unsigned function calls get SENTINEL_SIGNATURE
        self.foreign_sentinel = foreign_sentinel  # a thought signed elsewhere shows the sentinel instead

    def take(self, own: str | None = None) -> str | None:
        signature = own or self.pending
        self.pending = None
        return signature

    def encode(self, part: Part) -> dict[str, Any] | None:
        if isinstance(part, TextPart):
            if not part.text:
                return None
            out: dict[str, Any] = {"text": part.text}
        elif isinstance(part, ThinkingPart):
            own = part.signature if part.signature_source is WireProtocol.GEMINI else None
            if not part.text or not self.thoughts:
                if own:
                    self.pending = own
                return None
            out = {"text": part.text, "thought": True}
            if own:
                out["thoughtSignature"] = own
            elif self.foreign_sentinel and part.signature:
                out["thoughtSignature"] = SENTINEL_SIGNATURE
            return out
        elif isinstance(part, ToolCallPart):
            call: dict[str, Any] = {"name": part.name, "args": arguments_to_object(part.arguments)}
            if part.id:
                call["id"] = part.id
            out = {"functionCall": call}
            own = part.signature if part.signature_source is WireProtocol.GEMINI else None
            signature = self.take(own) or (SENTINEL_SIGNATURE if self.sentinel else None)
            if signature:
                out["thoughtSignature"] = signature
            return out
        elif isinstance(part, ImagePart | FilePart):
            media = _media_part(part)
            if media is None:
                return None
            out = _snake_inline(media) if self.request else media
        else:
            return None
        signature = self.take()
        if signature:
            out["thoughtSignature"] = signature
        return out


def _decode_media(part: Mapping[str, Any], where: str) -> Part | None:
    inline = _get(part, "inlineData", "inline_data")
    if inline is not None:
        if not isinstance(inline, Mapping):
            raise CodecError(f"{where}.inlineData", "must be an object")
        mime = _get(inline, "mimeType", "mime_type") or ""
        data = inline.get("data")
        if not isinstance(mime, str) or not isinstance(data, str):
            raise CodecError(f"{where}.inlineData", "needs string mimeType and data")
        if _is_image(mime):
            return ImagePart(media_type=mime, data=data)
        return FilePart(media_type=mime, data=data)
    file_data = _get(part, "fileData", "file_data")
    if file_data is not None:
        if not isinstance(file_data, Mapping):
            raise CodecError(f"{where}.fileData", "must be an object")
        mime = _get(file_data, "mimeType", "mime_type") or ""
        uri = _get(file_data, "fileUri", "file_uri")
        if not isinstance(mime, str) or not isinstance(uri, str) or not uri:
            raise CodecError(f"{where}.fileData", "needs a string fileUri")
        if _is_image(mime, uri):
            return ImagePart(media_type=mime, url=uri)
        return FilePart(media_type=mime, url=uri)
    return None


# ============================================================================================ the codec


class GeminiCodec:
    """Gemini generateContent bodies ↔ canonical (client side and upstream side)."""

    protocol = WireProtocol.GEMINI

    # ---------------------------------------------------------------------------------- client: request

    def decode_request(self, body: dict[str, Any], *, model: str, stream: bool) -> Request:
        if not isinstance(body, Mapping):
            raise CodecError("", "request body must be a JSON object")
        if "contents" not in body and isinstance(body.get("request"), Mapping):
            body = body["request"]  # a Gemini CLI envelope
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise CodecError("contents", "must be a non-empty array")
        messages = _RequestDecoder().decode(contents)
        if not messages:
            raise CodecError("contents", "no content has any usable part")
        return Request(
            model=model,
            messages=tuple(messages),
            system=self._decode_system(_get(body, "systemInstruction", "system_instruction")),
            tools=self._decode_tools(body.get("tools")),
            tool_choice=self._decode_tool_choice(_get(body, "toolConfig", "tool_config")),
            generation=self._decode_generation(_get(body, "generationConfig", "generation_config")),
            reasoning=self._decode_reasoning(_get(body, "generationConfig", "generation_config")),
            stream=stream,
        )

    @staticmethod
    def _decode_system(system: Any) -> tuple[TextPart, ...]:
        if system is None:
            return ()
        if isinstance(system, str):
            return (TextPart(system),) if system else ()
        if not isinstance(system, Mapping):
            raise CodecError("systemInstruction", "must be a Content object")
        parts = system.get("parts", [])
        if isinstance(parts, Mapping):
            parts = [parts]
        if not isinstance(parts, list):
            raise CodecError("systemInstruction.parts", "must be an array")
        out: list[TextPart] = []
        for i, part in enumerate(parts):
            if not isinstance(part, Mapping):
                raise CodecError(f"systemInstruction.parts[{i}]", "must be an object")
            text = part.get("text")
            if text is None:
                continue  # non-text system parts have no canonical place
            if not isinstance(text, str):
                raise CodecError(f"systemInstruction.parts[{i}].text", "must be a string")
            if text:
                out.append(TextPart(text))
        return tuple(out)

    @staticmethod
    def _decode_tools(tools: Any) -> tuple[Tool, ...]:
        if tools is None:
            return ()
        if isinstance(tools, Mapping):
            tools = [tools]
        if not isinstance(tools, list):
            raise CodecError("tools", "must be an array")
        out: list[Tool] = []
        for i, tool in enumerate(tools):
            if not isinstance(tool, Mapping):
                raise CodecError(f"tools[{i}]", "must be an object")
            for key, value in tool.items():
                if key in ("functionDeclarations", "function_declarations"):
                    if not isinstance(value, list):
                        raise CodecError(f"tools[{i}].functionDeclarations", "must be an array")
                    for j, decl in enumerate(value):
                        out.append(_decode_declaration(decl, f"tools[{i}].functionDeclarations[{j}]"))
                else:
                    out.append(Tool(name=_GEMINI_BUILTINS.get(key, key), description="",
                                    builtin={key: value}, builtin_protocol=WireProtocol.GEMINI))
        return tuple(out)

    @staticmethod
    def _decode_tool_choice(config: Any) -> ToolChoice | None:
        if config is None:
            return None
        if not isinstance(config, Mapping):
            raise CodecError("toolConfig", "must be an object")
        calling = _get(config, "functionCallingConfig", "function_calling_config")
        if calling is None:
            return None
        if not isinstance(calling, Mapping):
            raise CodecError("toolConfig.functionCallingConfig", "must be an object")
        mode = calling.get("mode")
        if mode is not None and not isinstance(mode, str):
            raise CodecError("toolConfig.functionCallingConfig.mode", "must be a string")
        names = _get(calling, "allowedFunctionNames", "allowed_function_names")
        if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
            raise CodecError("toolConfig.functionCallingConfig.allowedFunctionNames", "must be an array of strings")
        mode = (mode or "").upper()
        if mode == "NONE":
            return ToolChoice(mode="none")
        if mode == "ANY":
            if names and len(set(names)) == 1:
                return ToolChoice(mode="tool", name=names[0])
            return ToolChoice(mode="required")
        if mode in ("AUTO", "VALIDATED"):
            return ToolChoice(mode="auto")
        return None

    @staticmethod
    def _decode_generation(config: Any) -> Generation:
        if config is None:
            return Generation()
        if not isinstance(config, Mapping):
            raise CodecError("generationConfig", "must be an object")

        def number(camel: str, snake: str, integer: bool = False) -> Any:
            value = _get(config, camel, snake)
            if value is None:
                return None
            if not _is_number(value) or (integer and float(value) != int(value)):
                raise CodecError(f"generationConfig.{camel}", "must be an integer" if integer else "must be a number")
            return int(value) if integer else float(value)

        stop = _get(config, "stopSequences", "stop_sequences")
        if stop is None:
            stop = []
        elif isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise CodecError("generationConfig.stopSequences", "must be an array of strings")
        return Generation(
            max_tokens=number("maxOutputTokens", "max_output_tokens", integer=True),
            temperature=number("temperature", "temperature"),
            top_p=number("topP", "top_p"),
            top_k=number("topK", "top_k", integer=True),
            stop=tuple(stop),
            seed=number("seed", "seed", integer=True),
            presence_penalty=number("presencePenalty", "presence_penalty"),
            frequency_penalty=number("frequencyPenalty", "frequency_penalty"),
            candidate_count=number("candidateCount", "candidate_count", integer=True),
            response_format=_decode_response_format(config),
        )

    @staticmethod
    def _decode_reasoning(config: Any) -> Reasoning | None:
        if not isinstance(config, Mapping):
            return None
        thinking = _get(config, "thinkingConfig", "thinking_config")
        if thinking is None:
            return None
        if not isinstance(thinking, Mapping):
            raise CodecError("generationConfig.thinkingConfig", "must be an object")
        budget = _get(thinking, "thinkingBudget", "thinking_budget")
        if budget is not None and (not _is_number(budget) or float(budget) != int(budget)):
            raise CodecError("generationConfig.thinkingConfig.thinkingBudget", "must be an integer")
        include = _get(thinking, "includeThoughts", "include_thoughts")
        if include is not None and not isinstance(include, bool):
            raise CodecError("generationConfig.thinkingConfig.includeThoughts", "must be a boolean")
        level = _get(thinking, "thinkingLevel", "thinking_level")
        if level is not None and not isinstance(level, str):
            raise CodecError("generationConfig.thinkingConfig.thinkingLevel", "must be a string")
        effort = level.lower() if level and level.upper() != "THINKING_LEVEL_UNSPECIFIED" else None
        budget_tokens = int(budget) if budget is not None else None
        if effort is None and budget_tokens is not None:
            effort = budget_to_effort(budget_tokens)
        if effort is None and budget_tokens is None and include is None:
            return None
        return Reasoning(effort=effort, budget_tokens=budget_tokens, include_thoughts=include)

    # ---------------------------------------------------------------------------------- client: response

    def encode_response(
        self, response: Response, *, model: str, context: AnswerContext = NO_CONTEXT
    ) -> dict[str, Any]:
        style = style_for(context.source)
        encoder = _PartEncoder(foreign_sentinel=style.foreign_thought_sentinel)
        parts = [p for p in (encoder.encode(part) for part in response.content) if p is not None]
        if encoder.pending:
            parts.append({"text": "", "thoughtSignature": encoder.pending})
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts or [{"text": ""}]}}
        if style.index:
            candidate["index"] = 0
        candidate["finishReason"] = _gemini_finish(response.finish_reason)
        out: dict[str, Any] = {"candidates": [candidate]}
        meta = _usage_metadata(style, response.usage)
        if meta is not None:
            out["usageMetadata"] = meta
        out[style.model_key] = model
        if style.json_time and response.created:
            out["createTime"] = _format_time(response.created, style.time_format)
        if style.response_id:
            out["responseId"] = response.id or new_id("resp_")
        return out

    def stream_encoder(self, *, model: str, context: AnswerContext = NO_CONTEXT) -> GeminiStreamEncoder:
        return GeminiStreamEncoder(model=model, context=context)

    # ---------------------------------------------------------------------------------- upstream: request

    def encode_request(
        self, request: Request, *, model: str, context: RequestContext = NO_REQUEST_CONTEXT
    ) -> dict[str, Any]:
        shape = request_shape_for(context)
        body: dict[str, Any] = {"contents": _encode_contents(request.messages, shape)}
        system = [{"text": p.text} for p in request.system if p.text]
        if system:
            body["systemInstruction"] = {"role": "user", "parts": system} if shape.system_role else {"parts": system}
        declarations: list[dict[str, Any]] = []
        builtins: list[dict[str, Any]] = []
        for tool in request.tools:
            if tool.builtin is not None:
                mapped = _builtin_for_gemini(tool)
                if mapped is not None and mapped not in builtins:
                    builtins.append(mapped)
                continue
            declarations.append(_encode_declaration(tool, empty_description=shape.empty_description))
        tools: list[dict[str, Any]] = []
        if declarations:
            tools.append({"functionDeclarations": declarations})
        tools.extend(builtins)
        if tools:
            body["tools"] = tools
        if declarations and request.tool_choice is not None:
            body["toolConfig"] = {"functionCallingConfig": _encode_tool_choice(request.tool_choice)}
        generation = _encode_generation(request.generation, request.reasoning,
                                        effort_shows_thoughts=shape.effort_shows_thoughts)
        if generation:
            body["generationConfig"] = generation
        body["safetySettings"] = [dict(s) for s in DEFAULT_SAFETY_SETTINGS]
        return body

    # ---------------------------------------------------------------------------------- upstream: response

    def decode_response(self, body: dict[str, Any]) -> Response:
        body = _unwrap_envelope(body)
        if not isinstance(body, Mapping):
            raise CodecError("", "upstream response must be a JSON object")
        content: list[Part] = []
        native: str | None = None
        saw_tool_call = False
        candidates = body.get("candidates")
        candidate = candidates[0] if isinstance(candidates, list) and candidates else None
        if isinstance(candidate, Mapping):
            raw = candidate.get("content")
            parts = raw.get("parts") if isinstance(raw, Mapping) else None
            for part in parts if isinstance(parts, list) else ():
                if isinstance(part, Mapping):
                    for item in _decode_response_part(part):
                        _append_response_part(content, item)
            saw_tool_call = any(isinstance(p, ToolCallPart) for p in content)
            reason = _get(candidate, "finishReason", "finish_reason")
            native = reason if isinstance(reason, str) else None
        finish = _canonical_finish(native, saw_tool_call)
        feedback = _get(body, "promptFeedback", "prompt_feedback")
        if candidate is None and isinstance(feedback, Mapping) and feedback.get("blockReason"):
            native = str(feedback["blockReason"])
            finish = FinishReason.CONTENT_FILTER
        response_id = body.get("responseId")
        model = body.get("modelVersion")
        return Response(
            id=response_id if isinstance(response_id, str) and response_id else new_id("resp_"),
            model=model if isinstance(model, str) else "",
            content=tuple(content),
            finish_reason=finish,
            usage=usage_from_gemini(_get(body, "usageMetadata", "usage_metadata")),
            created=_parse_time(body.get("createTime")) or now(),
            native_finish_reason=native,
        )

    def stream_decoder(self) -> GeminiStreamDecoder:
        return GeminiStreamDecoder()


# ============================================================================================ request decoding


def _decode_declaration(decl: Any, where: str) -> Tool:
    if not isinstance(decl, Mapping):
        raise CodecError(where, "must be an object")
    name = decl.get("name")
    if not isinstance(name, str) or not name:
        raise CodecError(f"{where}.name", "must be a non-empty string")
    description = decl.get("description") or ""
    if not isinstance(description, str):
        raise CodecError(f"{where}.description", "must be a string")
    schema = _get(decl, "parametersJsonSchema", "parameters_json_schema")
    if schema is None:
        parameters = decl.get("parameters")
        schema = openapi_to_json_schema(parameters) if parameters is not None else None
    if schema is None:
        schema = {"type": "object", "properties": {}}
    if not isinstance(schema, Mapping):
        raise CodecError(f"{where}.parameters", "must be an object")
    return Tool(name=name, description=description, parameters=dict(schema))


def _decode_response_format(config: Mapping[str, Any]) -> ResponseFormat | None:
    mime = _get(config, "responseMimeType", "response_mime_type")
    if mime is not None and not isinstance(mime, str):
        raise CodecError("generationConfig.responseMimeType", "must be a string")
    schema = _get(config, "responseJsonSchema", "response_json_schema")
    if schema is None:
        schema = config.get("_responseJsonSchema")
    if schema is None:
        raw = _get(config, "responseSchema", "response_schema")
        schema = openapi_to_json_schema(raw) if raw is not None else None
    if schema is not None and not isinstance(schema, Mapping):
        raise CodecError("generationConfig.responseSchema", "must be an object")
    if (mime or "").lower() != "application/json":
        return None
    if schema is not None:
        return ResponseFormat(type="json_schema", schema=dict(schema))
    return ResponseFormat(type="json_object")


class _RequestDecoder:
    """Gemini `contents` → canonical messages, pairing function responses with their calls."""

    def __init__(self) -> None:
        self.open_calls: list[tuple[str, str]] = []  # (id, name), unanswered, oldest first
        self.minted = 0

    def _mint(self) -> str:
        """An id for a call Gemini sent without one: numbered within the request (`call_gemini_<16 digits>`, as
        the reference), so the same history gets the same ids on every turn and upstream prompt caches hold."""
        self.minted += 1
        return f"call_gemini_{self.minted:016d}"

    def decode(self, contents: list[Any]) -> list[Message]:
        messages: list[Message] = []
        for i, content in enumerate(contents):
            where = f"contents[{i}]"
            if not isinstance(content, Mapping):
                raise CodecError(where, "must be an object")
            role = content.get("role")
            if role is not None and not isinstance(role, str):
                raise CodecError(f"{where}.role", "must be a string")
            parts = content.get("parts")
            if parts is None:
                parts = []
            if isinstance(parts, Mapping):
                parts = [parts]
            if not isinstance(parts, list):
                raise CodecError(f"{where}.parts", "must be an array")
            out: list[Part] = []
            for j, part in enumerate(parts):
                out.extend(self._part(part, f"{where}.parts[{j}]"))
            if out:
                messages.append(Message(role="assistant" if role == "model" else "user", parts=tuple(out)))
        return messages

    def _pair(self, call_id: str | None, name: str) -> str:
        if call_id:
            for k, (cid, _) in enumerate(self.open_calls):
                if cid == call_id:
                    del self.open_calls[k]
                    return call_id
            return call_id
        for k, (cid, cname) in enumerate(self.open_calls):
            if cname == name:
                del self.open_calls[k]
                return cid
        if self.open_calls:
            return self.open_calls.pop(0)[0]
        return self._mint()

    def _part(self, part: Any, where: str) -> list[Part]:
        if not isinstance(part, Mapping):
            raise CodecError(where, "must be an object")
        signature = _get(part, "thoughtSignature", "thought_signature")
        if signature is not None and not isinstance(signature, str):
            raise CodecError(f"{where}.thoughtSignature", "must be a string")
        sig_part: list[Part] = (
            [ThinkingPart(signature=signature, signature_source=WireProtocol.GEMINI)] if signature else [])
        if "text" in part:
            text = part["text"]
            if not isinstance(text, str):
                raise CodecError(f"{where}.text", "must be a string")
            if part.get("thought") is True:
                return [ThinkingPart(text=text, signature=signature or None,
                                     signature_source=WireProtocol.GEMINI if signature else None)]
            return [*sig_part, TextPart(text)] if text else sig_part
        call = _get(part, "functionCall", "function_call")
        if call is not None:
            if not isinstance(call, Mapping):
                raise CodecError(f"{where}.functionCall", "must be an object")
            name = call.get("name")
            if not isinstance(name, str) or not name:
                raise CodecError(f"{where}.functionCall.name", "must be a non-empty string")
            args = call.get("args")
            if args is not None and not isinstance(args, Mapping):
                raise CodecError(f"{where}.functionCall.args", "must be an object")
            call_id = call.get("id")
            if call_id is not None and not isinstance(call_id, str):
                raise CodecError(f"{where}.functionCall.id", "must be a string")
            call_id = call_id or self._mint()
            self.open_calls.append((call_id, name))
            return [ToolCallPart(id=call_id, name=name, arguments=object_to_arguments(dict(args or {})),
                                 signature=signature or None,
                                 signature_source=WireProtocol.GEMINI if signature else None)]
        response = _get(part, "functionResponse", "function_response")
        if response is not None:
            return [self._function_response(response, f"{where}.functionResponse")]
        media = _decode_media(part, where)
        if media is not None:
            return [*sig_part, media]
        code = _code_text(part)
        if code is not None:
            return [*sig_part, TextPart(code)]
        return sig_part

    def _function_response(self, response: Any, where: str) -> ToolResultPart:
        if not isinstance(response, Mapping):
            raise CodecError(where, "must be an object")
        name = response.get("name")
        if name is not None and not isinstance(name, str):
            raise CodecError(f"{where}.name", "must be a string")
        call_id = response.get("id")
        if call_id is not None and not isinstance(call_id, str):
            raise CodecError(f"{where}.id", "must be a string")
        text, is_error = _tool_result_text(response.get("response"))
        content: list[TextPart | ImagePart | FilePart] = [TextPart(text)] if text else []
        extra = response.get("parts")
        if isinstance(extra, list):
            for k, sub in enumerate(extra):
                if isinstance(sub, Mapping):
                    media = _decode_media(sub, f"{where}.parts[{k}]")
                    if isinstance(media, ImagePart | FilePart):
                        content.append(media)
        return ToolResultPart(tool_call_id=self._pair(call_id, name or ""), content=tuple(content),
                              name=name or None, is_error=is_error)


# ============================================================================================ request encoding


def _encode_contents(messages: tuple[Message, ...], shape: GeminiRequestShape = DEFAULT_SHAPE) -> list[dict[str, Any]]:
    names: dict[str, str] = {}
    contents: list[dict[str, Any]] = []
    for message in messages:
        model_turn = message.role == "assistant"
        encoder = _PartEncoder(request=True, model_turn=model_turn, replay_thoughts=shape.replay_thoughts)
        tagged: TaggedParts = []  # (part of a tool result, encoded part), in order
        for part in message.parts:
            if isinstance(part, ToolCallPart):
                names[part.id] = part.name
            if isinstance(part, ToolResultPart):
                tagged.append((True, _encode_tool_result(part, names)))
                tagged.extend((True, m) for m in (_media_part(c) for c in part.content
                                                  if isinstance(c, ImagePart | FilePart)) if m is not None)
                continue
            encoded = encoder.encode(part)
            if encoded is not None:
                tagged.append((False, encoded))
        if encoder.pending:
            for _, encoded in reversed(tagged):
                if "thoughtSignature" not in encoded:
                    encoded["thoughtSignature"] = encoder.pending
                    break
        if model_turn:
            if tagged:
                contents.append({"role": "model", "parts": [p for _, p in tagged]})
            continue
        contents.extend({"role": "user", "parts": parts} for parts in user_contents(tagged, shape.user_layout))
    return merge_user_turns(contents) if shape.user_layout == "merge" else contents


def _encode_tool_result(part: ToolResultPart, names: Mapping[str, str]) -> dict[str, Any]:
    text = "\n".join(c.text for c in part.content if isinstance(c, TextPart))
    name = part.name or names.get(part.tool_call_id) or "unknown"
    response: dict[str, Any] = {"name": name, "response": _tool_response_object(text, part.is_error)}
    if part.tool_call_id:
        response["id"] = part.tool_call_id
    return {"functionResponse": response}


def _encode_declaration(tool: Tool, *, empty_description: bool = False) -> dict[str, Any]:
    decl: dict[str, Any] = {"name": tool.name}
    if tool.description or empty_description:
        decl["description"] = tool.description or ""
    if tool.parameters:
        # Full JSON Schema field (what the reference sends); still cleaned, so old models that map it onto the
        # OpenAPI subset accept it too.
        decl["parametersJsonSchema"] = clean_schema_for_gemini(tool.parameters)
    return decl


def _builtin_for_gemini(tool: Tool) -> dict[str, Any] | None:
    raw = tool.builtin or {}
    if tool.builtin_protocol is WireProtocol.GEMINI:
        return dict(raw)
    for key, value in raw.items():
        if key in _GEMINI_BUILTINS:
            return {_GEMINI_BUILTINS[key]: value if isinstance(value, Mapping) else {}}
    kind = raw.get("type")
    if isinstance(kind, str) and kind.startswith("web_search"):
        return {"googleSearch": {}}
    return None


def _encode_tool_choice(choice: ToolChoice) -> dict[str, Any]:
    if choice.mode == "none":
        return {"mode": "NONE"}
    if choice.mode == "required":
        return {"mode": "ANY"}
    if choice.mode == "tool" and choice.name:
        return {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    return {"mode": "AUTO"}


def _encode_generation(gen: Generation, reasoning: Reasoning | None, *,
                       effort_shows_thoughts: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (("maxOutputTokens", gen.max_tokens), ("temperature", gen.temperature),
                       ("topP", gen.top_p), ("topK", gen.top_k), ("seed", gen.seed),
                       ("presencePenalty", gen.presence_penalty), ("frequencyPenalty", gen.frequency_penalty),
                       ("candidateCount", gen.candidate_count)):
        if value is not None:
            out[key] = value
    if gen.stop:
        out["stopSequences"] = list(gen.stop[:_MAX_STOP_SEQUENCES])
    fmt = gen.response_format
    if fmt is not None and fmt.type != "text":
        out["responseMimeType"] = "application/json"
        if fmt.type == "json_schema" and fmt.schema is not None:
            out["responseSchema"] = clean_schema_for_gemini(fmt.schema, object_root=False)
    thinking = _encode_thinking(reasoning, effort_shows_thoughts=effort_shows_thoughts)
    if thinking:
        out["thinkingConfig"] = thinking
    return out


def _encode_thinking(reasoning: Reasoning | None, *, effort_shows_thoughts: bool = True) -> dict[str, Any]:
    if reasoning is None:
        return {}
    budget = reasoning.budget_tokens
    if budget is None and reasoning.effort is not None:
        budget = EFFORT_TO_BUDGET.get(reasoning.effort.lower())
    out: dict[str, Any] = {}
    if budget is not None:
        out["thinkingBudget"] = budget
    include = reasoning.include_thoughts
    if include is None and budget is not None and (effort_shows_thoughts or budget == 0):
        include = budget != 0
    if include is not None:
        out["includeThoughts"] = include
    return out


# ============================================================================================ response decoding


def _decode_response_part(part: Mapping[str, Any]) -> list[Part]:
    signature = _get(part, "thoughtSignature", "thought_signature")
    signature = signature if isinstance(signature, str) and signature else None
    sig_part: list[Part] = (
        [ThinkingPart(signature=signature, signature_source=WireProtocol.GEMINI)] if signature else [])
    text = part.get("text")
    if isinstance(text, str):
        if part.get("thought") is True:
            return [ThinkingPart(text=text, signature=signature,
                                 signature_source=WireProtocol.GEMINI if signature else None)]
        return [*sig_part, TextPart(text)] if text else sig_part
    call = _get(part, "functionCall", "function_call")
    if isinstance(call, Mapping):
        name = call.get("name")
        call_id = call.get("id")
        return [ToolCallPart(id=call_id if isinstance(call_id, str) and call_id else new_id("call_"),
                             name=name if isinstance(name, str) else "",
                             arguments=object_to_arguments(call.get("args") or {}),
                             signature=signature, signature_source=WireProtocol.GEMINI if signature else None)]
    try:
        media = _decode_media(part, "part")
    except CodecError:
        media = None
    if media is not None:
        return [*sig_part, media]
    code = _code_text(part)
    if code is not None:
        return [*sig_part, TextPart(code)]
    return sig_part


def _append_response_part(content: list[Part], item: Part) -> None:
    """Add a decoded response part. A signature Gemini put on a non-thought part (the first part after the
    thoughts) closes the preceding unsigned thought; with no thought before it no consumer can use it (other
    protocols drop Gemini signatures), so it is not turned into an empty thinking part."""
    if isinstance(item, ThinkingPart) and not item.text and item.signature:
        previous = content[-1] if content else None
        if isinstance(previous, ThinkingPart) and previous.text and not previous.signature:
            content[-1] = ThinkingPart(text=previous.text, signature=item.signature,
                                       signature_source=WireProtocol.GEMINI)
        return
    content.append(item)


# ============================================================================================ streams


class GeminiStreamDecoder:
    """Gemini SSE chunks (`data: <GenerateContentResponse>`, or CLI `{"response": …}`) → canonical events."""

    def __init__(self) -> None:
        self.started = False
        self.finished = False
        self.tool_index = 0
        self.last_usage: Usage | None = None
        self.failed = False

    def decode(self, event: SSEEvent) -> list[StreamEvent]:
        if self.failed:
            return []
        data = event.data.strip()
        if not data or data == b"[DONE]":
            return []
        try:
            parsed = jsonfast.loads(data)
        except ValueError:
            return []
        if type(parsed) is not list:
            return self._chunk(parsed, event.event)
        out: list[StreamEvent] = []
        for chunk in parsed:
            out.extend(self._chunk(chunk, event.event))
        return out

    def _chunk(self, chunk: Any, name: str | None) -> list[StreamEvent]:
        # Parsed JSON: objects are dicts. Returns a new list (decode may hand it on as is).
        if not isinstance(chunk, dict):
            return []
        error = chunk.get("error")
        if isinstance(error, dict):
            return self._error(error)
        if "candidates" not in chunk and isinstance(chunk.get("response"), dict):
            chunk = chunk["response"]  # the Gemini CLI / Code Assist envelope
            error = chunk.get("error")
            if isinstance(error, dict):
                return self._error(error)
        if name == "error":
            return self._error(chunk)
        out: list[StreamEvent] = []
        if not self.started:
            self.started = True
            response_id = chunk.get("responseId")
            model = chunk.get("modelVersion")
            out.append(StreamStart(id=response_id if isinstance(response_id, str) else "",
                                   model=model if isinstance(model, str) else "",
                                   created=_parse_time(chunk.get("createTime")) or now()))
        candidates = chunk.get("candidates")
        candidate = candidates[0] if isinstance(candidates, list) and candidates else None
        native: str | None = None
        blocked = False
        if isinstance(candidate, dict):
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            if isinstance(parts, list):
                for part in parts:
                    if isinstance(part, dict):
                        text = part.get("text")
                        if type(text) is str and len(part) == 1:  # the common part: text alone
                            if text:
                                out.append(TextDelta(text))
                        else:
                            out.extend(self._part(part))
            # _get(candidate, "finishReason", "finish_reason"), inlined on this per-event path
            reason = candidate["finishReason"] if "finishReason" in candidate else candidate.get("finish_reason")
            native = reason if isinstance(reason, str) and reason else None
        elif candidate is None:
            feedback = _get(chunk, "promptFeedback", "prompt_feedback")
            blocked = isinstance(feedback, dict) and feedback.get("blockReason")
        meta = chunk["usageMetadata"] if "usageMetadata" in chunk else chunk.get("usage_metadata")
        usage = usage_from_gemini(meta) if meta is not None else None
        if native is not None and not self.finished:
            self.finished = True
            out.append(Finish(reason=_canonical_finish(native, self.tool_index > 0), native=native))
        elif blocked and not self.finished:
            self.finished = True
            out.append(Finish(reason=FinishReason.CONTENT_FILTER, native=str(feedback["blockReason"])))
        if usage is not None and usage != self.last_usage:
            self.last_usage = usage
            out.append(UsageUpdate(usage))
        return out

    def _part(self, part: Mapping[str, Any]) -> list[StreamEvent]:
        signature = _get(part, "thoughtSignature", "thought_signature")
        signature = signature if isinstance(signature, str) and signature else None
        sig_event: list[StreamEvent] = [ThinkingSignature(signature, WireProtocol.GEMINI)] if signature else []
        text = part.get("text")
        if isinstance(text, str):
            if part.get("thought") is True:
                return [*([ThinkingDelta(text)] if text else []), *sig_event]
            return [*sig_event, *([TextDelta(text)] if text else [])]
        call = _get(part, "functionCall", "function_call")
        if isinstance(call, Mapping):
            index = self.tool_index
            self.tool_index += 1
            call_id = call.get("id")
            name = call.get("name")
            return [ToolCallStart(index=index, id=call_id if isinstance(call_id, str) and call_id else new_id("call_"),
                                  name=name if isinstance(name, str) else "", signature=signature,
                                  signature_source=WireProtocol.GEMINI if signature else None),
                    ToolCallDelta(index=index, arguments=object_to_arguments(call.get("args") or {})),
                    ToolCallEnd(index=index)]
        code = _code_text(part)
        if code is not None:
            return [*sig_event, TextDelta(code)]
        return sig_event  # inlineData / fileData: no canonical stream event for media

    def _error(self, error: Mapping[str, Any]) -> list[StreamEvent]:
        self.failed = True
        code = error.get("code")
        message = error.get("message")
        status = error.get("status")
        return [StreamError(status=int(code) if _is_number(code) else 500,
                            message=message if isinstance(message, str) else _json_text(error),
                            type=status if isinstance(status, str) else None)]

    def close(self) -> list[StreamEvent]:
        if not self.started or self.finished or self.failed:
            return []
        self.finished = True
        return [Finish(reason=FinishReason.TOOL_CALLS if self.tool_index else FinishReason.STOP)]


class _OpenCall:
    __slots__ = ("args", "id", "name", "signature")

    def __init__(self, call_id: str, name: str, signature: str | None) -> None:
        self.id = call_id
        self.name = name
        self.signature = signature
        self.args: list[str] = []


class GeminiStreamEncoder:
    """Canonical events → Gemini SSE: one `data: <GenerateContentResponse>` chunk per new part; whole function
    calls at their end; the last chunk carries finishReason and usageMetadata; no terminator. The details that
    depend on the upstream (start chunk, where calls and usage go, ids and times) follow its AnswerStyle."""

    def __init__(self, *, model: str, context: AnswerContext = NO_CONTEXT) -> None:
        self.context = context
        self.style = style_for(context.source)
        self.model = model
        self.response_id = ""
        self.created = 0
        self.any_event = False
        self.calls: dict[int, _OpenCall] = {}
        self.held: list[dict[str, Any]] = []  # finished calls waiting for the finish (style.calls_at_finish)
        self.parts = _PartEncoder()
        self.finish: Finish | None = None
        self.usage: Usage | None = None
        self.usage_pending = False
        self.saw_tool_call = False
        self.closed_candidate = False  # usage_chunk style: the finish chunk went out
        self.done = False

    # ------------------------------------------------------------------ chunks

    def _reason(self) -> str:
        reason = self.finish.reason if self.finish is not None else (
            FinishReason.TOOL_CALLS if self.saw_tool_call else FinishReason.STOP)
        return _gemini_finish(reason)

    def _time(self, *, delta: bool) -> str:
        if delta and self.style.delta_time:
            return self.style.delta_time
        return _format_time(self.created or now(), self.style.time_format)

    def _chunk(self, parts: list[dict[str, Any]] | None, *, reason: str | None = None, usage: bool = False,
               delta: bool = True) -> bytes:
        """One chunk: a candidate with `parts` (none when `parts` is None), usage counts when `usage`."""
        style = self.style
        body: dict[str, Any] = {"candidates": []}
        if parts is not None:
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
            if style.index:
                candidate["index"] = 0
            if reason:
                candidate["finishReason"] = reason
            body["candidates"].append(candidate)
        meta = _usage_metadata(style, self.usage if usage else None)
        if meta is not None:
            body["usageMetadata"] = meta
        body[style.model_key] = self.model
        if style.stream_time:
            body["createTime"] = self._time(delta=delta)
        if style.response_id:
            if not self.response_id:
                self.response_id = new_id("resp_")
            body["responseId"] = self.response_id
        return frame(_json_text(body).encode())

    def _call_part(self, index: int) -> dict[str, Any] | None:
        call = self.calls.pop(index, None)
        if call is None:
            return None
        return self.parts.encode(ToolCallPart(id=call.id, name=call.name, arguments="".join(call.args),
                                              signature=call.signature,
                                              signature_source=WireProtocol.GEMINI if call.signature else None))

    def _end_call(self, index: int) -> bytes:
        part = self._call_part(index)
        if part is None:
            return b""
        if self.style.calls_at_finish:
            self.held.append(part)
            return b""
        return self._chunk([part], reason="STOP" if self.style.call_finish_reason else None)

    def _flush_calls(self) -> bytes:
        out = b"".join(self._end_call(index) for index in sorted(self.calls))
        if self.held and not self.style.usage_chunk:
            held, self.held = self.held, []
            out += self._chunk(held, reason="STOP" if self.style.call_finish_reason else None)
        return out

    def _usage_chunk(self) -> bytes:
        self.usage_pending = False
        return self._chunk(None, usage=True, delta=False)

    def _close_candidate(self) -> bytes:
        """usage_chunk style: the held calls (if any) and the finish reason in one chunk."""
        for index in sorted(self.calls):
            self._end_call(index)
        held, self.held = self.held, []
        self.closed_candidate = True
        out = self._chunk(held, reason=self._reason())
        if self.usage_pending:
            out += self._usage_chunk()
        return out

    def _final(self) -> bytes:
        if self.done:
            return b""
        self.done = True
        if self.style.usage_chunk:
            if not self.closed_candidate:
                return self._close_candidate()
            return self._usage_chunk() if self.usage_pending else b""
        out = self._flush_calls()
        parts: list[dict[str, Any]] = [] if self.style.final_parts_empty else [{"text": ""}]
        if self.parts.pending:
            parts = [{"text": "", "thoughtSignature": self.parts.take()}]
        reason: str | None = self._reason()
        if self.style.final_omits_stop and reason == "STOP":
            reason = None
        return out + self._chunk(parts, reason=reason, usage=True, delta=False)

    # ------------------------------------------------------------------ events

    def encode(self, event: StreamEvent) -> bytes:
        if self.done:
            return b""
        self.any_event = True
        if isinstance(event, StreamStart):
            if event.id and not self.response_id:
                self.response_id = event.id
            if event.created and not self.created:
                self.created = event.created
            return self._chunk([], delta=False) if self.style.start_chunk else b""
        if isinstance(event, TextDelta | ThinkingDelta):
            if not event.text:
                return b""
            canonical = TextPart(event.text) if isinstance(event, TextDelta) else ThinkingPart(text=event.text)
            part = self.parts.encode(canonical)
            return self._chunk([part]) if part is not None else b""
        if isinstance(event, ThinkingSignature):
            if event.source is WireProtocol.GEMINI and event.signature:
                self.parts.pending = event.signature
            elif self.style.signature_chunk and event.signature:
                return self._chunk([{"thought": True, "thoughtSignature": SENTINEL_SIGNATURE}])
            return b""
        if isinstance(event, ToolCallStart):
            self.saw_tool_call = True
            signature = event.signature if event.signature_source is WireProtocol.GEMINI else None
            self.calls[event.index] = _OpenCall(event.id or new_id("call_"), event.name, signature)
            return b""
        if isinstance(event, ToolCallDelta):
            call = self.calls.get(event.index)
            if call is None:
                self.saw_tool_call = True
                call = self.calls[event.index] = _OpenCall(new_id("call_"), "", None)
            call.args.append(event.arguments)
            return b""
        if isinstance(event, ToolCallEnd):
            return self._end_call(event.index)
        if isinstance(event, UsageUpdate):
            self.usage = event.usage
            self.usage_pending = True
            if self.finish is None:
                return b""
            if self.style.usage_chunk:
                return self._usage_chunk()
            return self._final()
        if isinstance(event, Finish):
            if event.native is None and not self.style.synthesize_final:
                return self.close()  # a finish the decoder inferred at a cut: the upstream never finished
            self.finish = event
            if self.style.usage_chunk:
                return self._close_candidate()
            return self._flush_calls()
        if isinstance(event, StreamError):
            return self.error(event.status, event.message)
        return b""

    def close(self) -> bytes:
        if self.done or not self.any_event:
            return b""
        if self.finish is None and not self.style.synthesize_final:
            # The upstream ended without finishing (as the reference: no invented final chunk), but calls
            # already received still reach the client.
            self.done = True
            if self.calls or self.held:
                if self.style.usage_chunk:
                    return self._close_candidate()
                return self._flush_calls()
            return b""
        return self._final()

    def error(self, status: int, message: str) -> bytes:
        if self.done:
            return b""
        self.done = True
        # Data-only (the reference adds `event: error`, which google-genai cannot parse and reports as an
        # unknown response; without it the SDK raises an APIError with the status and message).
        return frame(_json_text(error_body(status, message)).encode())
