"""OpenAI Responses API (`/v1/responses`): Codex CLI and other Responses clients; the Codex backend upstream.

Client side: a Responses request body → canonical Request; a canonical Response / event stream → a Responses
`response` object / the Responses SSE event sequence the openai SDK accumulates. Upstream side: a canonical
Request → a body a Codex (ChatGPT backend) or OpenAI Responses upstream accepts; its `response` object and SSE
events → canonical.

Mapping notes (what the canonical model keeps, and where data goes that it has no field for):
- `instructions` and `system`/`developer` message items (wherever they occur in `input`) become `Request.system`;
  a mid-conversation developer message is therefore hoisted into the system prompt.
- `function_call`/`function_call_output` items map to ToolCallPart (id = `call_id`) / ToolResultPart; Codex's
  freeform tools (`custom_tool_call` {call_id, name, input} / `custom_tool_call_output`) map the same way with the
  raw `input` text as the arguments, and are encoded back as custom items when the request declares a `custom`
  tool of that name. `item_reference` items (pointers to server-stored items) carry no content and are ignored:
  proxyd is stateless and upstreams are called with `store: false`. Other built-in tool items
  (`web_search_call`, `local_shell_call`, …) are ignored as well.
- `reasoning` items map to ThinkingPart (text = summaries joined by a blank line, else `content` texts;
  `encrypted` = `encrypted_content`; `signature_source` = OPENAI_RESPONSES; `id` = the item id).
- Fields without a canonical slot (`previous_response_id`, `store`, `include`, `prompt_cache_key`, `service_tier`,
  `truncation`, `text.verbosity`) are kept in `Request.metadata[EXTRAS_KEY]`; the client's own `metadata` object
  is `Request.metadata` itself. `previous_response_id` is not honoured (stateless proxy; routing.md §2.6).
- Responses has no `stop`, `seed`, `top_k`, penalties or `n`: encode_request drops them.

Upstream-side duties the codec does NOT take (they belong to the Codex provider, routing.md §2.6): forcing
`stream: true` (the codec writes `stream` as the client asked), deleting the fields the ChatGPT Codex backend
rejects (`max_output_tokens`, `temperature`, `top_p`, `user`, `metadata`, `truncation`, `service_tier` ≠ priority,
`previous_response_id`, `prompt_cache_retention`, `safety_identifier`), default reasoning effort, prompt-cache
identity, and the 64-character tool-name limit (`codex_tool_names` computes the §2.4 map; restoring names in the
response needs the request, which decoders do not see).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import Any

import attrs

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
from proxyd.protocols.common import parse_data_url, to_data_url
from proxyd.protocols.ids import new_id, now
from proxyd.protocols.sse import SSEEvent, frame

EXTRAS_KEY = "_openai_responses"
"""`Request.metadata` key holding Responses fields the canonical model has no slot for (a dict)."""

ENCRYPTED_REASONING_INCLUDE = "reasoning.encrypted_content"
_EXTRA_FIELDS = ("previous_response_id", "store", "include", "prompt_cache_key", "service_tier", "truncation")
_BILLING_HEADER = "x-anthropic-billing-header: "
STREAM_CLOSED_MESSAGE = "stream error: stream disconnected before completion: stream closed before response.completed"
"""The reference's 408 message for a Responses stream that ended (or broke off) before `response.completed`."""

_Content = TextPart | ImagePart | FilePart

# A few file types by extension (mimetypes would read system files; codecs do no I/O).
_EXTENSIONS = {"pdf": "application/pdf", "txt": "text/plain", "md": "text/markdown", "csv": "text/csv",
               "json": "application/json", "html": "text/html", "xml": "application/xml", "png": "image/png",
               "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
               "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}
_EXTENSION_FOR = {"image/jpeg": "jpg", **{v: k for k, v in _EXTENSIONS.items() if k != "jpeg" and k != "jpg"}}


def _guess_media_type(filename: str | None) -> str:
    ext = filename.rsplit(".", 1)[-1].lower() if filename and "." in filename else ""
    return _EXTENSIONS.get(ext, "application/octet-stream")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# ============================================================================================ request decoding


def _opt_number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CodecError(name, "must be a number")
    return float(value)


def _opt_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            or value != int(value)):
        raise CodecError(name, "must be an integer")
    return int(value)


def _opt_str(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise CodecError(field, "must be a string")
    return value


def _image_part(item: dict[str, Any], field: str) -> _Content:
    detail = _opt_str(item.get("detail"), f"{field}.detail")
    url = item.get("image_url", item.get("url"))
    if isinstance(url, dict):  # chat-style {"url": …} tolerated
        url = url.get("url")
    url = _opt_str(url, f"{field}.image_url")
    if url:
        parsed = parse_data_url(url)
        if parsed is not None:
            return ImagePart(media_type=parsed[0], data=parsed[1], detail=detail)
        return ImagePart(url=url, detail=detail)
    file_id = _opt_str(item.get("file_id"), f"{field}.file_id")
    if file_id:
        # ImagePart has no file_id: an uploaded image is carried as a FilePart with an image media type.
        return FilePart(media_type="image/*", file_id=file_id)
    raise CodecError(field, "input_image needs image_url or file_id")


def _file_part(item: dict[str, Any], field: str) -> FilePart:
    filename = _opt_str(item.get("filename"), f"{field}.filename")
    file_data = _opt_str(item.get("file_data"), f"{field}.file_data")
    if file_data:
        parsed = parse_data_url(file_data)
        if parsed is not None:
            return FilePart(media_type=parsed[0], data=parsed[1], filename=filename)
        return FilePart(media_type=_guess_media_type(filename), data=file_data, filename=filename)
    file_url = _opt_str(item.get("file_url"), f"{field}.file_url")
    if file_url:
        return FilePart(url=file_url, filename=filename)
    file_id = _opt_str(item.get("file_id"), f"{field}.file_id")
    if file_id:
        return FilePart(file_id=file_id, filename=filename)
    raise CodecError(field, "input_file needs file_data, file_url or file_id")


def _content_parts(content: Any, field: str) -> list[_Content]:
    """A message's (or tool output's) `content`: a string or a list of typed parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise CodecError(field, "must be a string or an array of content parts")
    parts: list[_Content] = []
    for i, item in enumerate(content):
        path = f"{field}[{i}]"
        if isinstance(item, str):
            parts.append(TextPart(item))
            continue
        if not isinstance(item, dict):
            raise CodecError(path, "must be an object")
        kind = item.get("type")
        if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            text = item.get("text")
            if not isinstance(text, str):
                raise CodecError(f"{path}.text", "must be a string")
            parts.append(TextPart(text))
        elif kind == "refusal":
            parts.append(TextPart(_opt_str(item.get("refusal"), f"{path}.refusal") or ""))
        elif kind in ("input_image", "image_url", "image"):
            parts.append(_image_part(item, path))
        elif kind in ("input_file", "file"):
            parts.append(_file_part(item, path))
        # other part types (input_audio, …) have no canonical form and are skipped
    return parts


def _texts(items: Any) -> list[str]:
    if not isinstance(items, list):
        return []
    return [it["text"] for it in items if isinstance(it, dict) and isinstance(it.get("text"), str)]


def _thinking_from_item(item: dict[str, Any]) -> ThinkingPart:
    summaries = _texts(item.get("summary"))
    text = "\n\n".join(summaries) if summaries else "\n\n".join(_texts(item.get("content")))
    encrypted = item.get("encrypted_content")
    item_id = item.get("id")
    return ThinkingPart(text=text, encrypted=encrypted if isinstance(encrypted, str) and encrypted else None,
                        signature_source=WireProtocol.OPENAI_RESPONSES,
                        id=item_id if isinstance(item_id, str) and item_id else None)


def _arguments_text(value: Any) -> str:
    if value is None:
        return "{}"
    if isinstance(value, str):
        return value
    return _dumps(value)


class _MessageBuilder:
    """Appends parts by role, merging consecutive items of one role into one canonical message."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[Part]]] = []

    def add(self, role: str, parts: list[Part]) -> None:
        if not parts:
            return
        if self.messages and self.messages[-1][0] == role:
            self.messages[-1][1].extend(parts)
        else:
            self.messages.append((role, list(parts)))

    def build(self) -> tuple[Message, ...]:
        return tuple(Message(role=role, parts=tuple(parts)) for role, parts in self.messages)  # type: ignore[arg-type]


def _decode_input(value: Any, system: list[TextPart]) -> tuple[Message, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (Message(role="user", parts=(TextPart(value),)),)
    if not isinstance(value, list):
        raise CodecError("input", "must be a string or an array of input items")
    builder = _MessageBuilder()
    names: dict[str, str] = {}
    for i, item in enumerate(value):
        field = f"input[{i}]"
        if not isinstance(item, dict):
            raise CodecError(field, "must be an object")
        kind = item.get("type")
        if kind is None and "role" in item:
            kind = "message"
        if kind == "message":
            role = item.get("role")
            parts = _content_parts(item.get("content"), f"{field}.content")
            if role in ("system", "developer"):
                system.extend(p for p in parts if isinstance(p, TextPart))
            elif role in ("user", "assistant"):
                builder.add(role, list(parts))
            else:
                raise CodecError(f"{field}.role", "must be user, assistant, system or developer")
        elif kind in ("function_call", "custom_tool_call"):
            call_id = item.get("call_id") or item.get("id")
            if not isinstance(call_id, str) or not call_id:
                raise CodecError(f"{field}.call_id", "must be a non-empty string")
            name = item.get("name")
            if not isinstance(name, str) or not name:
                raise CodecError(f"{field}.name", "must be a non-empty string")
            raw = item.get("arguments") if kind == "function_call" else item.get("input")
            if kind == "custom_tool_call" and raw is not None and not isinstance(raw, str):
                raise CodecError(f"{field}.input", "must be a string")
            names[call_id] = name
            builder.add("assistant", [ToolCallPart(id=call_id, name=name, arguments=_arguments_text(raw))])
        elif kind in ("function_call_output", "custom_tool_call_output"):
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise CodecError(f"{field}.call_id", "must be a non-empty string")
            output = item.get("output")
            if isinstance(output, str | list) or output is None:
                content = _content_parts(output, f"{field}.output")
            else:
                content = [TextPart(_dumps(output))]
            builder.add("user", [ToolResultPart(tool_call_id=call_id, content=tuple(content),
                                                name=names.get(call_id))])
        elif kind == "reasoning":
            builder.add("assistant", [_thinking_from_item(item)])
        elif isinstance(kind, str) or kind is None:
            # item_reference (server-stored items: meaningless with store=false) and built-in tool items
            # (web_search_call, local_shell_call, …) have no canonical form.
            continue
        else:
            raise CodecError(f"{field}.type", "must be a string")
    return builder.build()


def _decode_tools(value: Any) -> tuple[Tool, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise CodecError("tools", "must be an array")
    tools: list[Tool] = []
    for i, raw in enumerate(value):
        field = f"tools[{i}]"
        if not isinstance(raw, dict):
            raise CodecError(field, "must be an object")
        kind = raw.get("type", "function")
        if kind == "function":
            spec = raw["function"] if isinstance(raw.get("function"), dict) and "name" not in raw else raw
            name = spec.get("name")
            if not isinstance(name, str) or not name:
                raise CodecError(f"{field}.name", "must be a non-empty string")
            params = spec.get("parameters")
            if params is not None and not isinstance(params, dict):
                raise CodecError(f"{field}.parameters", "must be an object")
            strict = spec.get("strict")
            tools.append(Tool(
                name=name,
                description=spec.get("description") if isinstance(spec.get("description"), str) else "",
                parameters=params if params is not None else {"type": "object", "properties": {}},
                strict=strict if isinstance(strict, bool) else None,
            ))
        elif isinstance(kind, str):
            name = raw.get("name")
            tools.append(Tool(name=name if isinstance(name, str) and name else kind, builtin=raw,
                              builtin_protocol=WireProtocol.OPENAI_RESPONSES))
        else:
            raise CodecError(f"{field}.type", "must be a string")
    return tuple(tools)


def _decode_tool_choice(value: Any, parallel: Any, has_tools: bool) -> ToolChoice | None:
    if parallel is not None and not isinstance(parallel, bool):
        raise CodecError("parallel_tool_calls", "must be a boolean")
    if value is None:
        return ToolChoice(mode="auto", parallel=parallel) if parallel is not None and has_tools else None
    if isinstance(value, str):
        if value not in ("auto", "none", "required"):
            raise CodecError("tool_choice", "must be auto, none, required or an object")
        return ToolChoice(mode=value, parallel=parallel)  # type: ignore[arg-type]
    if not isinstance(value, dict):
        raise CodecError("tool_choice", "must be a string or an object")
    kind = value.get("type")
    if kind in ("function", "custom"):
        name = value.get("name")
        if not isinstance(name, str) and isinstance(value.get("function"), dict):
            name = value["function"].get("name")
        if not isinstance(name, str) or not name:
            raise CodecError("tool_choice.name", "must be a non-empty string")
        return ToolChoice(mode="tool", name=name, parallel=parallel)
    if kind == "allowed_tools":
        mode = value.get("mode")
        return ToolChoice(mode="required" if mode == "required" else "auto", parallel=parallel)
    # a hosted tool choice ({"type": "web_search"} …) has no canonical form: the model chooses
    return ToolChoice(mode="auto", parallel=parallel)


def _decode_text_format(text: Any) -> tuple[ResponseFormat | None, str | None]:
    if text is None:
        return None, None
    if not isinstance(text, dict):
        raise CodecError("text", "must be an object")
    verbosity = text.get("verbosity") if isinstance(text.get("verbosity"), str) else None
    fmt = text.get("format")
    if fmt is None:
        return None, verbosity
    if not isinstance(fmt, dict):
        raise CodecError("text.format", "must be an object")
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return ResponseFormat(type=kind), verbosity
    if kind == "json_schema":
        schema = fmt.get("schema")
        if schema is not None and not isinstance(schema, dict):
            raise CodecError("text.format.schema", "must be an object")
        strict = fmt.get("strict")
        return ResponseFormat(type="json_schema", schema=schema, name=_opt_str(fmt.get("name"), "text.format.name"),
                              strict=strict if isinstance(strict, bool) else None), verbosity
    raise CodecError("text.format.type", "must be text, json_object or json_schema")


def _decode_reasoning(value: Any) -> Reasoning | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CodecError("reasoning", "must be an object")
    effort = _opt_str(value.get("effort"), "reasoning.effort")
    summary = value.get("summary", value.get("generate_summary"))
    summary = _opt_str(summary, "reasoning.summary")
    include = None if summary is None else summary != "none"
    return Reasoning(effort=effort, summary=summary, include_thoughts=include)


# ============================================================================================ request encoding


def _budget_to_effort(budget: int) -> str | None:
    """translation.md §6.3 budget → level (−1 = dynamic: leave the effort to the model)."""
    if budget < 0:
        return None
    if budget == 0:
        return "none"
    for limit, level in ((512, "minimal"), (1024, "low"), (8192, "medium"), (24576, "high")):
        if budget <= limit:
            return level
    return "xhigh"


def _encode_reasoning(reasoning: Reasoning | None) -> dict[str, Any] | None:
    if reasoning is None:
        return None
    effort = reasoning.effort
    if effort is None and reasoning.budget_tokens is not None:
        effort = _budget_to_effort(reasoning.budget_tokens)
    if effort == "auto":
        effort = None
    if effort == "max":
        effort = "xhigh"
    out: dict[str, Any] = {}
    if effort is not None:
        out["effort"] = effort
    summary = reasoning.summary
    # A summary is asked for with an explicit effort; a budget (Claude/Gemini thinking) maps to the effort alone.
    if summary is None and reasoning.effort is not None and reasoning.include_thoughts is not False \
            and effort not in (None, "none"):
        summary = "auto"
    if summary is not None:
        out["summary"] = summary
    return out or None


def _normalise_schema(schema: Any) -> dict[str, Any]:
    """A function tool's parameters as the Responses API accepts them (§3.6): an object schema, no `$schema`."""
    if not isinstance(schema, dict):
        return {"type": "object", "properties": {}}
    out = {k: v for k, v in schema.items() if k != "$schema"}
    out.setdefault("type", "object")
    if out["type"] == "object" and not isinstance(out.get("properties"), dict):
        out["properties"] = {}
    return out


@attrs.frozen
class CodexRequestShape:
    """How the reference's X→Codex translator of one client protocol shapes the upstream request."""

    default_tool_choice: bool = False
    """`tool_choice: "auto"` is sent when the client declares tools without choosing (Claude, Gemini clients)."""
    part_per_message: bool = False
    """each text/image/file part of a turn is its own input message (the Gemini translator's layout)."""
    closed_tool_schemas: bool = False
    """function parameters carry `additionalProperties: false`; a declaration without a schema sends none."""


NATIVE_CODEX_SHAPE = CodexRequestShape()
CODEX_REQUEST_SHAPES: dict[WireProtocol, CodexRequestShape] = {
    WireProtocol.CLAUDE: CodexRequestShape(default_tool_choice=True),
    WireProtocol.GEMINI: CodexRequestShape(default_tool_choice=True, part_per_message=True,
                                           closed_tool_schemas=True),
}
"""Codex request shape per client protocol; anything else (Chat clients, no context) is NATIVE_CODEX_SHAPE."""


def codex_shape_for(context: RequestContext) -> CodexRequestShape:
    """The Codex upstream request shape for the exchange's client protocol."""
    return CODEX_REQUEST_SHAPES.get(context.client, NATIVE_CODEX_SHAPE) if context.client is not None \
        else NATIVE_CODEX_SHAPE


def _gemini_schemaless(body: Mapping[str, Any] | None) -> frozenset[str]:
    """Names of the Gemini client's function declarations given without `parameters`/`parametersJsonSchema`."""
    names: set[str] = set()
    tools = body.get("tools") if isinstance(body, Mapping) else None
    for tool in tools if isinstance(tools, list) else []:
        decls = tool.get("functionDeclarations", tool.get("function_declarations")) \
            if isinstance(tool, Mapping) else None
        for decl in decls if isinstance(decls, list) else []:
            if isinstance(decl, Mapping) and isinstance(decl.get("name"), str) and not any(
                    decl.get(k) is not None for k in ("parameters", "parametersJsonSchema",
                                                       "parameters_json_schema")):
                names.add(decl["name"])
    return frozenset(names)


def _function_tool(tool: Tool, shape: CodexRequestShape, schemaless: frozenset[str]) -> dict[str, Any]:
    # `description` only when the client gave one (the reference's translators copy the key if present).
    out: dict[str, Any] = {"type": "function", "name": tool.name}
    if tool.description:
        out["description"] = tool.description
    if not (shape.closed_tool_schemas and tool.name in schemaless):
        parameters = _normalise_schema(tool.parameters)
        if shape.closed_tool_schemas and parameters.get("additionalProperties") is not False:
            parameters["additionalProperties"] = False
        out["parameters"] = parameters
    # Responses defaults `strict` to true, which rejects ordinary schemas: say false unless asked.
    out["strict"] = bool(tool.strict)
    return out


def _encode_tools(tools: tuple[Tool, ...], shape: CodexRequestShape = NATIVE_CODEX_SHAPE,
                  schemaless: frozenset[str] = frozenset()) -> tuple[list[dict[str, Any]], set[str]]:
    """Function tools flattened, Responses built-ins verbatim, other protocols' built-ins dropped
    (Claude's web search becomes Responses `web_search`). Returns the tools and the names of `custom` tools."""
    out: list[dict[str, Any]] = []
    custom: set[str] = set()
    for tool in tools:
        if tool.builtin is not None:
            if tool.builtin_protocol is WireProtocol.OPENAI_RESPONSES:
                out.append(dict(tool.builtin))
                if tool.builtin.get("type") == "custom":
                    custom.add(tool.name)
            elif (tool.builtin_protocol is WireProtocol.CLAUDE
                  and str(tool.builtin.get("type", "")).startswith("web_search")):
                out.append({"type": "web_search"})
            continue
        out.append(_function_tool(tool, shape, schemaless))
    return out, custom


def _encode_tool_choice(choice: ToolChoice, custom: set[str]) -> Any:
    if choice.mode == "tool":
        if not choice.name:
            return "required"
        return {"type": "custom" if choice.name in custom else "function", "name": choice.name}
    return choice.mode


def _image_item(part: ImagePart) -> dict[str, Any]:
    url = to_data_url(part.media_type, part.data) if part.data else (part.url or "")
    item: dict[str, Any] = {"type": "input_image", "image_url": url}
    if part.detail:
        item["detail"] = part.detail
    return item


def _file_item(part: FilePart) -> dict[str, Any]:
    if part.file_id and not part.data and not part.url and part.media_type.startswith("image/"):
        return {"type": "input_image", "file_id": part.file_id}
    item: dict[str, Any] = {"type": "input_file"}
    if part.data:
        item["file_data"] = to_data_url(part.media_type, part.data)
        ext = _EXTENSION_FOR.get(part.media_type)
        item["filename"] = part.filename or (f"file.{ext}" if ext else "file")
    elif part.url:
        item["file_url"] = part.url
    elif part.file_id:
        item["file_id"] = part.file_id
    if part.filename:
        item["filename"] = part.filename
    return item


def _content_item(part: _Content) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "input_text", "text": part.text}
    if isinstance(part, ImagePart):
        return _image_item(part)
    return _file_item(part)


def _tool_output(part: ToolResultPart) -> str | list[dict[str, Any]]:
    if all(isinstance(c, TextPart) for c in part.content):
        return "".join(c.text for c in part.content if isinstance(c, TextPart))
    return [_content_item(c) for c in part.content]


class _InputEncoder:
    """Canonical messages → Responses input items, in order, ids kept so every output has its call."""

    def __init__(self, custom: set[str], part_per_message: bool = False) -> None:
        self.items: list[dict[str, Any]] = []
        self.custom = custom
        self.part_per_message = part_per_message
        self.calls: dict[str, str] = {}  # call_id → kind of call item
        self.minted: list[str] = []
        self.pending: list[dict[str, Any]] = []
        self.pending_role = "user"

    def flush(self) -> None:
        if self.pending:
            self.items.append({"type": "message", "role": self.pending_role, "content": self.pending})
            self.pending = []

    def push(self, role: str, content: dict[str, Any]) -> None:
        if self.pending_role != role:
            self.flush()
            self.pending_role = role
        self.pending.append(content)
        if self.part_per_message:
            self.flush()

    def call_id(self, given: str) -> str:
        if given:
            return given
        minted = new_id("call_")
        self.minted.append(minted)
        return minted

    def encode(self, messages: tuple[Message, ...]) -> list[dict[str, Any]]:
        for message in messages:
            for part in message.parts:
                if message.role == "assistant":
                    self.assistant_part(part)
                else:
                    self.user_part(part)
            self.flush()
        return self.items

    def assistant_part(self, part: Part) -> None:
        if isinstance(part, TextPart):
            self.push("assistant", {"type": "output_text", "text": part.text})
        elif isinstance(part, ToolCallPart):
            self.flush()
            call_id = self.call_id(part.id)
            if part.name in self.custom:
                self.calls[call_id] = "custom_tool_call_output"
                self.items.append({"type": "custom_tool_call", "call_id": call_id, "name": part.name,
                                   "input": part.arguments})
            else:
                self.calls[call_id] = "function_call_output"
                self.items.append({"type": "function_call", "call_id": call_id, "name": part.name,
                                   "arguments": part.arguments or "{}"})
        elif (isinstance(part, ThinkingPart) and part.signature_source is WireProtocol.OPENAI_RESPONSES
              and part.encrypted):
            # Only Responses-issued encrypted reasoning can be replayed (foreign thinking is dropped); ids are
            # left out because items are not persisted with store=false (an id would be looked up, not found).
            self.flush()
            summary = [{"type": "summary_text", "text": part.text}] if part.text else []
            self.items.append({"type": "reasoning", "summary": summary, "encrypted_content": part.encrypted})
        # images/files in assistant turns have no Responses form (assistant content is output_text only)

    def user_part(self, part: Part) -> None:
        if isinstance(part, TextPart | ImagePart | FilePart):
            self.push("user", _content_item(part))
        elif isinstance(part, ToolResultPart):
            call_id = part.tool_call_id or (self.minted.pop(0) if self.minted else "")
            kind = self.calls.get(call_id)
            if kind is None:
                # An output without its call is rejected upstream ("No tool call found for function call
                # output"): keep the result as user text instead of failing the whole request.
                output = _tool_output(part)
                text = output if isinstance(output, str) else _dumps(output)
                label = part.name or call_id or "tool"
                self.push("user", {"type": "input_text", "text": f"[{label} result] {text}"})
                return
            self.flush()
            self.items.append({"type": kind, "call_id": call_id, "output": _tool_output(part)})


def _encode_text_config(fmt: ResponseFormat | None, verbosity: str | None) -> dict[str, Any] | None:
    text: dict[str, Any] = {}
    if fmt is not None:
        if fmt.type == "json_schema":
            out: dict[str, Any] = {"type": "json_schema", "name": fmt.name or "response",
                                   "schema": dict(fmt.schema) if fmt.schema is not None else {"type": "object"}}
            if fmt.strict is not None:
                out["strict"] = fmt.strict
            text["format"] = out
        else:
            text["format"] = {"type": fmt.type}
    if verbosity:
        text["verbosity"] = verbosity
    return text or None


def codex_tool_names(names: list[str], limit: int = 64) -> dict[str, str]:
    """translation.md §2.4: original tool name → a unique name of at most `limit` characters."""
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        if name in mapping:
            continue
        candidate = name
        if len(name) > limit:
            candidate = ("mcp__" + name.rsplit("__", 1)[-1])[:limit] if name.startswith("mcp__") else name[:limit]
        base, n = candidate, 0
        while candidate in used:
            n += 1
            suffix = f"_{n}"
            candidate = base[: limit - len(suffix)] + suffix
        used.add(candidate)
        mapping[name] = candidate
    return mapping


# ============================================================================================ responses


def _usage_from(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None

    def num(obj: Any, key: str) -> int:
        value = obj.get(key) if isinstance(obj, dict) else None
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0

    total = raw.get("total_tokens")
    return Usage(
        input_tokens=num(raw, "input_tokens"),
        output_tokens=num(raw, "output_tokens"),
        cached_tokens=num(raw.get("input_tokens_details"), "cached_tokens"),
        reasoning_tokens=num(raw.get("output_tokens_details"), "reasoning_tokens"),
        total_tokens=int(total) if isinstance(total, int | float) and not isinstance(total, bool) else None,
    )


def _usage_json(usage: Usage | None) -> dict[str, Any]:
    usage = usage or Usage()
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total,
    }


def _finish_from_status(status: Any, incomplete: Any, has_tools: bool, refused: bool
                        ) -> tuple[FinishReason, str | None]:
    reason = incomplete.get("reason") if isinstance(incomplete, dict) else None
    if status == "incomplete":
        if reason == "content_filter":
            return FinishReason.CONTENT_FILTER, reason
        return FinishReason.LENGTH, reason if isinstance(reason, str) else "incomplete"
    if status == "failed":
        return FinishReason.ERROR, "failed"
    if has_tools:
        return FinishReason.TOOL_CALLS, status if isinstance(status, str) else None
    if refused:
        return FinishReason.REFUSAL, "refusal"
    return FinishReason.STOP, status if isinstance(status, str) else None


def _parts_from_output(output: Any) -> tuple[list[Part], bool]:
    parts: list[Part] = []
    refused = False
    for item in output if isinstance(output, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for c in item.get("content") if isinstance(item.get("content"), list) else []:
                if not isinstance(c, dict):
                    continue
                if c.get("type") == "output_text" and isinstance(c.get("text"), str):
                    parts.append(TextPart(c["text"]))
                elif c.get("type") == "refusal" and isinstance(c.get("refusal"), str):
                    parts.append(TextPart(c["refusal"]))
                    refused = True
        elif kind == "reasoning":
            parts.append(_thinking_from_item(item))
        elif kind in ("function_call", "custom_tool_call"):
            call_id = item.get("call_id") or item.get("id") or ""
            raw = item.get("arguments") if kind == "function_call" else item.get("input")
            parts.append(ToolCallPart(id=str(call_id), name=str(item.get("name") or ""),
                                      arguments=_arguments_text(raw) if raw not in (None, "") else "{}"))
    return parts, refused


_KEPT_ID_PREFIXES = ("resp_", "msg_", "chatcmpl-")


def _response_id(given: str) -> str:
    """The reference keeps the upstream's id as is (`msg_…` from Claude, `chatcmpl-…` from Chat upstreams,
    `resp_…`) and prefixes Gemini's bare `responseId` with `resp_`; minted when the upstream gave none."""
    if not given:
        return new_id("resp_")
    return given if given.startswith(_KEPT_ID_PREFIXES) else "resp_" + given


def _status_fields(reason: FinishReason, source: WireProtocol | None = None
                   ) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
    """(status, incomplete_details, error) of a response that finished for `reason`.

    The reference reports a Gemini answer cut at the token limit as `completed` and a Claude `pause_turn` as
    `incomplete` without details; other sources as OpenAI does."""
    if reason is FinishReason.PAUSE:
        return "incomplete", None, None
    if reason is FinishReason.LENGTH:
        if source is WireProtocol.GEMINI:
            return "completed", None, None
        return "incomplete", {"reason": "max_output_tokens"}, None
    if reason is FinishReason.CONTENT_FILTER:
        return "incomplete", {"reason": "content_filter"}, None
    if reason is FinishReason.ERROR:
        return "failed", None, {"code": "server_error", "message": "the upstream reported an error"}
    return "completed", None, None


# Request fields a translated answer echoes from the client's request when the client sent them (translation.md
# §4.3); without a client body nothing is echoed.
ECHO_FIELDS = ("instructions", "max_output_tokens", "max_tool_calls", "parallel_tool_calls", "previous_response_id",
               "prompt_cache_key", "reasoning", "safety_identifier", "service_tier", "store", "temperature", "text",
               "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "user", "metadata")


def _echo(context: AnswerContext, phase: str = "final") -> dict[str, Any]:
    body = context.client_body
    if not isinstance(body, Mapping):
        return {}
    if phase == "answer" and context.source is WireProtocol.OPENAI_CHAT:
        return _chat_echo(body)
    return {name: body[name] for name in ECHO_FIELDS if name in body}


def _chat_echo(body: Mapping[str, Any]) -> dict[str, Any]:
    """The reference's non-stream answers from Chat upstreams echo the translated Chat request, not the client's:
    only the token limit, tool choice, parallel flag and the tools in Chat form."""
    out: dict[str, Any] = {}
    if "max_output_tokens" in body:
        out["max_output_tokens"] = body["max_output_tokens"]
    for name in ("parallel_tool_calls", "tool_choice"):
        if name in body:
            out[name] = body[name]
    tools = body.get("tools")
    if isinstance(tools, list):
        out["tools"] = [
            {"type": "function", "function": {k: t[k] for k in ("name", "description", "parameters", "strict")
                                              if k in t}}
            if isinstance(t, Mapping) and t.get("type") == "function" else t
            for t in tools
        ]
    return out


def _response_object(*, response_id: str, created: int, model: str, status: str, output: list[dict[str, Any]],
                     usage: dict[str, Any] | None, incomplete: dict[str, Any] | None = None,
                     error: dict[str, Any] | None = None, context: AnswerContext = NO_CONTEXT,
                     phase: str = "answer") -> dict[str, Any]:
    """A `response` object as the reference's translators write it, per phase: `created` and `in_progress`
    snapshots (the latter without background/error), the stream's `final` object (echo fields, usage when known,
    incomplete_details only on an incomplete answer) and the non-stream `answer` (incomplete_details always)."""
    obj: dict[str, Any] = {"id": response_id, "object": "response", "created_at": created, "status": status}
    if phase != "in_progress":
        obj["background"] = False
        obj["error"] = error
    if phase == "answer" or (phase == "final" and status == "incomplete"):
        obj["incomplete_details"] = incomplete
    obj["model"] = model
    if phase in ("final", "answer"):
        obj.update(_echo(context, phase))
    obj["output"] = output
    if usage is not None or phase == "answer":
        obj["usage"] = usage
    return obj


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def _reasoning_item(item_id: str, text: str | None, encrypted: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": item_id, "type": "reasoning",
                            "summary": [{"type": "summary_text", "text": text}] if text is not None else []}
    if encrypted:
        item["encrypted_content"] = encrypted
    return item


@attrs.frozen
class _SourceShape:
    """How the reference's translator for one upstream writes a Responses answer (translation.md §4.3/4.5/4.13).

    `reasoning_*`: which fields a reasoning item carries when added / done (stream) and in the final or
    non-stream output; `item_ids`: "output" numbers stream message/reasoning ids by output index, "zero" keeps
    `_0`; `mint_calls`: call ids made up as `call_<unix nanos>_<n>` (the upstream has none); `usage`: "claude"
    (reasoning estimated from the thinking text), "no_reasoning" (reasoning tokens dropped)."""

    reasoning_added: tuple[str, ...] = ("status", "summary")
    reasoning_done: tuple[str, ...] = ("encrypted_content?", "summary")
    reasoning_final: tuple[str, ...] = ("encrypted_content?", "summary")
    reasoning_answer: tuple[str, ...] = ("encrypted_content?", "summary")
    item_ids: str = "output"
    reasoning_ids: str = "output"
    mint_calls: bool = False
    usage: str = ""


_DEFAULT_SHAPE = _SourceShape()
_SOURCE_SHAPES = {
    WireProtocol.CLAUDE: _SourceShape(
        reasoning_added=("status", "encrypted_content", "summary"),
        reasoning_done=("status", "encrypted_content", "summary"),
        reasoning_final=("status", "encrypted_content", "summary"),
        reasoning_answer=("status", "encrypted_content", "summary"), item_ids="zero", usage="claude"),
    WireProtocol.GEMINI: _SourceShape(
        reasoning_added=("status", "encrypted_content", "summary"), reasoning_done=("encrypted_content", "summary"),
        reasoning_final=("encrypted_content", "summary"), reasoning_answer=("encrypted_content", "summary"),
        mint_calls=True),
    WireProtocol.OPENAI_CHAT: _SourceShape(
        reasoning_added=("status", "summary"), reasoning_done=("encrypted_content", "summary"),
        reasoning_final=("summary",), reasoning_answer=("encrypted_content", "summary"), item_ids="zero",
        reasoning_ids="zero", usage="no_reasoning"),
}


def _shape_of(context: AnswerContext) -> _SourceShape:
    return _SOURCE_SHAPES.get(context.source, _DEFAULT_SHAPE) if context.source else _DEFAULT_SHAPE


def _shaped_reasoning(item: dict[str, Any], fields: tuple[str, ...], status: str) -> dict[str, Any]:
    """A reasoning item with exactly `fields` (plus id/type); a missing encrypted_content becomes ""."""
    out: dict[str, Any] = {"id": item["id"], "type": "reasoning"}
    for name in fields:
        if name == "status":
            out["status"] = status
        elif name == "encrypted_content":
            out["encrypted_content"] = item.get("encrypted_content") or ""
        elif name == "encrypted_content?":
            if item.get("encrypted_content"):
                out["encrypted_content"] = item["encrypted_content"]
        else:
            out[name] = item.get(name, [])
    return out


def _shaped_usage(usage: Usage | None, shape: _SourceShape, thinking: str) -> Usage | None:
    if usage is None or not shape.usage:
        return usage
    if shape.usage == "claude":
        estimate = len(thinking.encode()) // 4
        return attrs.evolve(usage, reasoning_tokens=estimate)
    return attrs.evolve(usage, reasoning_tokens=0)


def _minted_call_id(n: int) -> str:
    return f"call_{time.time_ns()}_{n}"


def _call_item(call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    return {"id": f"fc_{call_id}", "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}


def _thinking_reusable(part: ThinkingPart) -> tuple[str | None, str | None]:
    """(item id, encrypted content) a Responses client may see: only Responses-issued state (DECISIONS 8)."""
    if part.signature_source is WireProtocol.OPENAI_RESPONSES:
        return part.id, part.encrypted
    return None, None


# ============================================================================================ stream encoder


@attrs.define
class _OpenMessage:
    item_id: str
    output_index: int
    text: list[str] = attrs.field(factory=list)


@attrs.define
class _OpenReasoning:
    item_id: str
    output_index: int
    text: list[str] = attrs.field(factory=list)
    has_part: bool = False
    encrypted: str | None = None


@attrs.define
class _Call:
    index: int
    call_id: str
    name: str
    args: list[str] = attrs.field(factory=list)
    ended: bool = False
    output_index: int | None = None  # set when its item is emitted
    closed: bool = False


class ResponsesStreamEncoder:
    """Canonical events → the Responses SSE event sequence (created, in_progress, items one at a time with their
    part/delta/done events, then completed/incomplete/failed), `sequence_number` from 1 (as the reference's
    translated streams).

    Items never interleave: a tool call that starts while another is streaming is buffered and emitted whole
    when the current one ends (or at finish)."""

    def __init__(self, *, model: str, context: AnswerContext = NO_CONTEXT) -> None:
        self.context = context
        self._shape = _shape_of(context)
        self._thinking: list[str] = []
        self._model = model
        self._seq = 1
        self._wrote = False
        self._started = False
        self._done = False
        self._response_id = ""
        self._created = 0
        self._items: list[dict[str, Any]] = []
        self._current: _OpenMessage | _OpenReasoning | _Call | None = None
        self._calls: dict[int, _Call] = {}
        self._queue: list[_Call] = []
        self._call_ids: set[str] = set()
        self._finish: Finish | None = None
        self._usage: Usage | None = None

    # ------------------------------------------------------------------ framing
    def _event(self, kind: str, payload: dict[str, Any]) -> bytes:
        data = {"type": kind, "sequence_number": self._seq, **payload}
        self._seq += 1
        chunk = frame(_dumps(data).encode(), kind)
        if not self._wrote:
            self._wrote = True
            chunk = b"\n" + chunk  # api-surface §7.6.2: the byte stream opens with a blank line
        return chunk

    def _start(self, start: StreamStart | None = None) -> bytes:
        if self._started:
            return b""
        self._started = True
        self._response_id = _response_id(start.id if start else "")
        self._created = start.created if start and start.created else now()
        def snapshot(phase: str) -> dict[str, Any]:
            return _response_object(response_id=self._response_id, created=self._created, model=self._model,
                                    status="in_progress", output=[], usage=None, phase=phase)

        return (self._event("response.created", {"response": snapshot("created")})
                + self._event("response.in_progress", {"response": snapshot("in_progress")}))

    # ------------------------------------------------------------------ items
    def _close_current(self) -> bytes:
        current, self._current = self._current, None
        if current is None:
            return b""
        if isinstance(current, _OpenMessage):
            return self._close_message(current)
        if isinstance(current, _OpenReasoning):
            return self._close_reasoning(current)
        return self._close_call(current)

    def _open_message(self) -> bytes:
        out = self._close_current()
        number = 0 if self._shape.item_ids == "zero" else len(self._items)
        msg = _OpenMessage(item_id=f"msg_{self._response_id}_{number}", output_index=len(self._items))
        self._current = msg
        item = {"id": msg.item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        out += self._event("response.output_item.added", {"output_index": msg.output_index, "item": item})
        out += self._event("response.content_part.added", {
            "item_id": msg.item_id, "output_index": msg.output_index, "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
        return out

    def _close_message(self, msg: _OpenMessage) -> bytes:
        text = "".join(msg.text)
        ids = {"item_id": msg.item_id, "output_index": msg.output_index, "content_index": 0}
        out = self._event("response.output_text.done", {**ids, "text": text, "logprobs": []})
        out += self._event("response.content_part.done", {
            **ids, "part": {"type": "output_text", "text": text, "annotations": [], "logprobs": []}})
        truncated = self._finish is not None and _status_fields(self._finish.reason,
                                                                  self.context.source)[0] == "incomplete"
        item = _message_item(msg.item_id, text, "incomplete" if truncated else "completed")
        self._items.append(item)
        return out + self._event("response.output_item.done", {"output_index": msg.output_index, "item": item})

    def _open_reasoning(self) -> bytes:
        out = self._close_current()
        number = 0 if self._shape.reasoning_ids == "zero" else len(self._items)
        rs = _OpenReasoning(item_id=f"rs_{self._response_id}_{number}", output_index=len(self._items))
        self._current = rs
        item = _shaped_reasoning({"id": rs.item_id, "summary": []}, self._shape.reasoning_added, "in_progress")
        return out + self._event("response.output_item.added", {"output_index": rs.output_index, "item": item})

    def _summary_part(self, rs: _OpenReasoning) -> bytes:
        if rs.has_part:
            return b""
        rs.has_part = True
        return self._event("response.reasoning_summary_part.added", {
            "item_id": rs.item_id, "output_index": rs.output_index, "summary_index": 0,
            "part": {"type": "summary_text", "text": ""}})

    def _close_reasoning(self, rs: _OpenReasoning) -> bytes:
        out = b""
        text = "".join(rs.text)
        ids = {"item_id": rs.item_id, "output_index": rs.output_index, "summary_index": 0}
        if rs.has_part:
            out += self._event("response.reasoning_summary_text.done", {**ids, "text": text})
            out += self._event("response.reasoning_summary_part.done", {
                **ids, "part": {"type": "summary_text", "text": text}})
        item = _reasoning_item(rs.item_id, text if rs.has_part else None, rs.encrypted)
        self._thinking.append(text)
        self._items.append(_shaped_reasoning(item, self._shape.reasoning_final, "completed"))
        done = _shaped_reasoning(item, self._shape.reasoning_done, "completed")
        return out + self._event("response.output_item.done", {"output_index": rs.output_index, "item": done})

    def _open_call(self, call: _Call) -> bytes:
        call.output_index = len(self._items)
        self._current = call
        item = _call_item(call.call_id, call.name, "", status="in_progress")
        out = self._event("response.output_item.added", {"output_index": call.output_index, "item": item})
        if call.args:
            out += self._args_delta(call, "".join(call.args))
        return out

    def _args_delta(self, call: _Call, delta: str) -> bytes:
        return self._event("response.function_call_arguments.delta", {
            "item_id": f"fc_{call.call_id}", "output_index": call.output_index, "delta": delta})

    def _close_call(self, call: _Call) -> bytes:
        call.closed = True
        out = b""
        arguments = "".join(call.args)
        if not arguments:
            arguments = "{}"
            out += self._args_delta(call, arguments)
        out += self._event("response.function_call_arguments.done", {
            "item_id": f"fc_{call.call_id}", "output_index": call.output_index, "arguments": arguments})
        item = _call_item(call.call_id, call.name, arguments)
        self._items.append(item)
        return out + self._event("response.output_item.done", {"output_index": call.output_index, "item": item})

    def _promote(self) -> bytes:
        """Emit queued tool calls while nothing else is open; stops at the first one still streaming."""
        out = b""
        while self._current is None and self._queue:
            call = self._queue.pop(0)
            out += self._open_call(call)
            if call.ended:
                out += self._close_current()
        return out

    def _call(self, index: int, call_id: str = "", name: str = "") -> _Call:
        call = self._calls.get(index)
        if call is None:
            if self._shape.mint_calls:
                call_id = _minted_call_id(len(self._calls) + 1)
            elif not call_id or call_id in self._call_ids:
                call_id = new_id("call_")  # the SDK keys calls by call_id: it must exist and be unique
            self._call_ids.add(call_id)
            call = _Call(index=index, call_id=call_id, name=name)
            self._calls[index] = call
            self._queue.append(call)
        return call

    def _finish_items(self) -> bytes:
        for call in self._calls.values():
            call.ended = True
        out = self._close_current()
        return out + self._promote()

    # ------------------------------------------------------------------ public
    def encode(self, event: StreamEvent) -> bytes:
        if self._done:
            return b""
        if isinstance(event, StreamStart):
            return self._start(event)
        if isinstance(event, StreamError):
            return self.error(event.status, event.message)
        out = self._start()
        if isinstance(event, TextDelta):
            if not isinstance(self._current, _OpenMessage):
                out += self._open_message()
            assert isinstance(self._current, _OpenMessage)
            msg = self._current
            if event.text:
                msg.text.append(event.text)
                out += self._event("response.output_text.delta", {
                    "item_id": msg.item_id, "output_index": msg.output_index, "content_index": 0,
                    "delta": event.text, "logprobs": []})
        elif isinstance(event, ThinkingDelta):
            if not isinstance(self._current, _OpenReasoning):
                out += self._open_reasoning()
            assert isinstance(self._current, _OpenReasoning)
            rs = self._current
            out += self._summary_part(rs)
            if event.text:
                rs.text.append(event.text)
                out += self._event("response.reasoning_summary_text.delta", {
                    "item_id": rs.item_id, "output_index": rs.output_index, "summary_index": 0,
                    "delta": event.text})
        elif isinstance(event, ThinkingSignature):
            ours = event.source is WireProtocol.OPENAI_RESPONSES and bool(event.encrypted)
            if ours and not isinstance(self._current, _OpenReasoning):
                out += self._open_reasoning()
            if isinstance(self._current, _OpenReasoning):
                if ours:
                    self._current.encrypted = event.encrypted
                out += self._close_current()  # a signature ends its thinking block
        elif isinstance(event, ToolCallStart):
            if event.index not in self._calls:
                self._call(event.index, event.id, event.name)
                if not isinstance(self._current, _Call):
                    out += self._close_current() + self._promote()
        elif isinstance(event, ToolCallDelta):
            call = self._call(event.index)
            if self._current is None:
                out += self._promote()
            if call.closed or not event.arguments:
                pass  # late fragments of a call already closed cannot be added any more
            elif call is self._current:
                call.args.append(event.arguments)
                out += self._args_delta(call, event.arguments)
            else:
                call.args.append(event.arguments)
        elif isinstance(event, ToolCallEnd):
            call = self._calls.get(event.index)
            if call is not None and not call.ended:
                call.ended = True
                if call is self._current:
                    out += self._close_current() + self._promote()
        elif isinstance(event, UsageUpdate):
            self._usage = event.usage
        elif isinstance(event, Finish):
            self._finish = self._finish or event
            out += self._finish_items()
        return out

    def close(self) -> bytes:
        if self._done:
            return b""
        out = self._start() + self._finish_items()
        reason = self._finish.reason if self._finish else (
            FinishReason.TOOL_CALLS if self._calls else FinishReason.STOP)
        status, incomplete, error = _status_fields(reason, self.context.source)
        response = _response_object(response_id=self._response_id, created=self._created, model=self._model,
                                    status=status, output=list(self._items),
                                    usage=_usage_json(_shaped_usage(self._usage, self._shape, "".join(self._thinking)))
                                    if self._usage is not None else None,
                                    incomplete=incomplete, error=error, context=self.context, phase="final")
        kind = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(status,
                                                                                              "response.failed")
        self._done = True
        return out + self._event(kind, {"response": response}) + b"\n"  # the reference ends on a blank line

    def error(self, status: int, message: str) -> bytes:
        if self._done:
            return b""
        self._done = True
        code, text = _error_code(status), message
        try:
            parsed = json.loads(message)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            inner = parsed.get("error") if isinstance(parsed.get("error"), dict) else parsed
            if isinstance(inner.get("message"), str):
                text = inner["message"]
            if isinstance(inner.get("code"), str):
                code = inner["code"]
        # The reference numbers the error frame with the count of events before it (not one past the last).
        self._seq -= 1
        return self._event("error", error_payload(status, text, code))


def error_payload(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """The body of a Responses stream `error` event (without `type` and `sequence_number`)."""
    return {"error": {"type": _error_type(status), "code": code or _error_code(status), "message": message,
                      "param": None}}


def error_event(status: int, message: str, sequence_number: int) -> bytes:
    """A whole Responses stream `error` event frame, numbered `sequence_number`."""
    data = {"type": "error", "sequence_number": sequence_number, **error_payload(status, message)}
    return frame(_dumps(data).encode(), "error")


def _error_type(status: int) -> str:
    """The `error.type` of a stream error frame (server_error for anything but a client-side 4xx)."""
    types = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
             404: "invalid_request_error", 429: "rate_limit_error"}
    return types.get(status, "server_error")


def _error_code(status: int) -> str:
    """api-surface §7.6.4: the Responses error code for an HTTP status."""
    codes = {401: "invalid_api_key", 403: "insufficient_quota", 404: "model_not_found", 408: "request_timeout",
             429: "rate_limit_exceeded"}
    if status in codes:
        return codes[status]
    if status >= 500:
        return "internal_server_error"
    if 400 <= status < 500:
        return "invalid_request_error"
    return "unknown_error"


_CODE_STATUS = {"invalid_api_key": 401, "insufficient_quota": 429, "model_not_found": 404, "request_timeout": 408,
                "rate_limit_exceeded": 429, "usage_limit_reached": 429, "invalid_request_error": 400,
                "context_length_exceeded": 400, "invalid_prompt": 400, "server_is_overloaded": 503}


def _status_for(code: Any) -> int:
    return _CODE_STATUS.get(code, 500) if isinstance(code, str) else 500


# ============================================================================================ stream decoder


@attrs.define
class _UpCall:
    index: int
    args_seen: bool = False
    ended: bool = False


class ResponsesStreamDecoder:
    """Responses SSE events (Codex / OpenAI upstream) → canonical events. Tool-call index = ordinal of the
    function_call items; a stream that ends without a terminal event yields a 408 StreamError."""

    def __init__(self) -> None:
        self._started = False
        self._terminal = False
        self._calls: list[_UpCall] = []  # in index order
        self._keys: dict[str, _UpCall] = {}  # "item:<id>", "call:<call_id>", "out:<output_index>" → call
        self._next_call = 0
        self._text_items: set[str] = set()  # message items whose text has been emitted
        self._thinking_items: dict[str, int] = {}  # reasoning item → summary parts opened
        self._thinking_text: set[str] = set()
        self._content_seen = False

    def _start(self, response: Any = None) -> list[StreamEvent]:
        if self._started:
            return []
        self._started = True
        r = response if isinstance(response, dict) else {}
        created = r.get("created_at")
        return [StreamStart(id=str(r.get("id") or ""), model=str(r.get("model") or ""),
                            created=int(created) if isinstance(created, int | float) else 0)]

    @staticmethod
    def _keys_of(item_id: Any, call_id: Any, output_index: Any) -> list[str]:
        keys = []
        if isinstance(item_id, str) and item_id:
            keys.append(f"item:{item_id}")
        if isinstance(call_id, str) and call_id:
            keys.append(f"call:{call_id}")
        if isinstance(output_index, int) and not isinstance(output_index, bool):
            keys.append(f"out:{output_index}")
        return keys

    def _lookup(self, item_id: Any, call_id: Any, output_index: Any) -> _UpCall | None:
        """The call an event refers to; events naming nothing refer to the latest open call."""
        keys = self._keys_of(item_id, call_id, output_index)
        for key in keys:
            if key in self._keys:
                return self._keys[key]
        if not keys:
            open_calls = [c for c in self._calls if not c.ended]
            return open_calls[-1] if open_calls else None
        return None

    def _new_call(self, item: dict[str, Any], output_index: Any) -> tuple[_UpCall, list[StreamEvent]]:
        call = _UpCall(index=self._next_call)
        self._next_call += 1
        self._calls.append(call)
        for key in self._keys_of(item.get("id"), item.get("call_id"), output_index):
            self._keys[key] = call
        self._content_seen = True
        call_id = item.get("call_id") or item.get("id") or ""
        return call, [ToolCallStart(index=call.index, id=str(call_id), name=str(item.get("name") or ""))]

    def decode(self, event: SSEEvent) -> list[StreamEvent]:
        raw = event.data.strip()
        if not raw or raw == b"[DONE]" or self._terminal:
            return []
        try:
            data = json.loads(raw)
        except ValueError:
            return []
        if not isinstance(data, dict):
            return []
        kind = data.get("type") if isinstance(data.get("type"), str) else event.event
        if kind in ("response.created", "response.in_progress", "response.queued"):
            return self._start(data.get("response"))
        if kind == "error":
            self._terminal = True
            error = data.get("error") if isinstance(data.get("error"), dict) else data
            return [*self._start(), StreamError(status=_status_for(error.get("code")),
                                                message=str(error.get("message") or "upstream error"),
                                                type=str(error.get("code") or "") or None)]
        out = self._start(data.get("response"))
        if kind in ("response.completed", "response.incomplete", "response.failed", "response.done"):
            return out + self._terminal_events(kind, data.get("response"))
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            delta = data.get("delta")
            if isinstance(delta, str) and delta:
                self._text_items.add(str(data.get("item_id")))
                self._content_seen = True
                out.append(TextDelta(delta))
        elif kind == "response.output_text.done":
            item_id = str(data.get("item_id"))
            if item_id not in self._text_items and isinstance(data.get("text"), str) and data["text"]:
                self._text_items.add(item_id)
                self._content_seen = True
                out.append(TextDelta(data["text"]))
        elif kind == "response.reasoning_summary_part.added":
            item_id = str(data.get("item_id"))
            opened = self._thinking_items.get(item_id, 0)
            self._thinking_items[item_id] = opened + 1
            if opened and item_id in self._thinking_text:
                out.append(ThinkingDelta("\n\n"))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            delta = data.get("delta")
            if isinstance(delta, str) and delta:
                self._thinking_text.add(str(data.get("item_id")))
                self._content_seen = True
                out.append(ThinkingDelta(delta))
        elif kind == "response.output_item.added":
            item = data.get("item")
            if isinstance(item, dict) and item.get("type") in ("function_call", "custom_tool_call"):
                _, events = self._new_call(item, data.get("output_index"))
                out += events
        elif kind in ("response.function_call_arguments.delta", "response.custom_tool_call_input.delta"):
            call = self._lookup(data.get("item_id"), None, data.get("output_index"))
            delta = data.get("delta")
            if call is not None and not call.ended and isinstance(delta, str) and delta:
                call.args_seen = True
                out.append(ToolCallDelta(index=call.index, arguments=delta))
        elif kind in ("response.function_call_arguments.done", "response.custom_tool_call_input.done"):
            call = self._lookup(data.get("item_id"), None, data.get("output_index"))
            full = data.get("arguments", data.get("input"))
            if call is not None and not call.ended and not call.args_seen and isinstance(full, str) and full:
                call.args_seen = True
                out.append(ToolCallDelta(index=call.index, arguments=full))
        elif kind == "response.output_item.done":
            out += self._item_done(data.get("item"), data.get("output_index"))
        return out

    def _item_done(self, item: Any, output_index: Any) -> list[StreamEvent]:
        if not isinstance(item, dict):
            return []
        kind = item.get("type")
        out: list[StreamEvent] = []
        item_id = str(item.get("id"))
        if kind in ("function_call", "custom_tool_call"):
            call = self._lookup(item.get("id"), item.get("call_id"), output_index)
            if call is None:
                call, out = self._new_call(item, output_index)
            if call.ended:
                return out
            full = item.get("arguments") if kind == "function_call" else item.get("input")
            if not call.args_seen and isinstance(full, str) and full:
                call.args_seen = True
                out.append(ToolCallDelta(index=call.index, arguments=full))
            call.ended = True
            out.append(ToolCallEnd(index=call.index))
        elif kind == "reasoning":
            if item_id not in self._thinking_text:
                text = _thinking_from_item(item).text
                if text:
                    self._thinking_text.add(item_id)
                    self._content_seen = True
                    out.append(ThinkingDelta(text))
            encrypted = item.get("encrypted_content")
            if isinstance(encrypted, str) and encrypted:
                self._content_seen = True
                out.append(ThinkingSignature(signature="", source=WireProtocol.OPENAI_RESPONSES,
                                             encrypted=encrypted))
        elif kind == "message" and item_id not in self._text_items:
            parts, _ = _parts_from_output([item])
            text = "".join(p.text for p in parts if isinstance(p, TextPart))
            self._text_items.add(item_id)
            if text:
                self._content_seen = True
                out.append(TextDelta(text))
        return out

    def _terminal_events(self, kind: str, response: Any) -> list[StreamEvent]:
        self._terminal = True
        r = response if isinstance(response, dict) else {}
        out: list[StreamEvent] = []
        if not self._content_seen:
            # an upstream that streams nothing but the final object: replay its output
            for item in r.get("output") if isinstance(r.get("output"), list) else []:
                out += self._item_done(item, None)
        for call in self._all_calls():
            if not call.ended:
                call.ended = True
                out.append(ToolCallEnd(index=call.index))
        if kind == "response.failed":
            error = r.get("error") if isinstance(r.get("error"), dict) else {}
            return [*out, StreamError(status=_status_for(error.get("code")),
                                      message=str(error.get("message") or "upstream response failed"),
                                      type=str(error.get("code") or "") or None)]
        status = r.get("status") or ("incomplete" if kind == "response.incomplete" else "completed")
        _, refused = _parts_from_output(r.get("output"))
        reason, native = _finish_from_status(status, r.get("incomplete_details"), self._next_call > 0, refused)
        out.append(Finish(reason=reason, native=native))
        usage = _usage_from(r.get("usage"))
        if usage is not None:
            out.append(UsageUpdate(usage))
        return out

    def _all_calls(self) -> list[_UpCall]:
        return self._calls

    def close(self) -> list[StreamEvent]:
        if self._terminal:
            return []
        self._terminal = True
        out = self._start()
        for call in self._all_calls():
            if not call.ended:
                call.ended = True
                out.append(ToolCallEnd(index=call.index))
        return [*out, StreamError(status=408, message=STREAM_CLOSED_MESSAGE, type="request_timeout")]


# ============================================================================================ the codec


class OpenAIResponsesCodec:
    """The OpenAI Responses API (`/v1/responses`; Codex CLI; the Codex backend) ↔ canonical."""

    protocol = WireProtocol.OPENAI_RESPONSES

    # ------------------------------------------------------------------ client side
    def decode_request(self, body: dict[str, Any], *, model: str, stream: bool) -> Request:
        if not isinstance(body, dict):
            raise CodecError("", "the request body must be a JSON object")
        system: list[TextPart] = []
        instructions = body.get("instructions")
        if isinstance(instructions, str):
            if instructions:
                system.append(TextPart(instructions))
        elif isinstance(instructions, list):
            _decode_input(instructions, system)  # instruction items: only their system text matters
        elif instructions is not None:
            raise CodecError("instructions", "must be a string")
        messages = _decode_input(body.get("input"), system)
        tools = _decode_tools(body.get("tools"))
        tool_choice = _decode_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"), bool(tools))
        response_format, verbosity = _decode_text_format(body.get("text"))
        generation = Generation(
            max_tokens=_opt_int(body, "max_output_tokens"),
            temperature=_opt_number(body, "temperature"),
            top_p=_opt_number(body, "top_p"),
            response_format=response_format,
        )
        client_metadata = body.get("metadata")
        if client_metadata is not None and not isinstance(client_metadata, dict):
            raise CodecError("metadata", "must be an object")
        metadata: dict[str, Any] = dict(client_metadata or {})
        extras = {name: body[name] for name in _EXTRA_FIELDS if body.get(name) is not None}
        if verbosity:
            extras["verbosity"] = verbosity
        if extras:
            metadata[EXTRAS_KEY] = extras
        user = body.get("user")
        if user is None:
            user = body.get("safety_identifier")
        return Request(
            model=model,
            messages=messages,
            system=tuple(system),
            tools=tools,
            tool_choice=tool_choice,
            generation=generation,
            reasoning=_decode_reasoning(body.get("reasoning")),
            stream=stream,
            user=_opt_str(user, "user"),
            metadata=metadata,
        )

    def encode_response(
        self, response: Response, *, model: str, context: AnswerContext = NO_CONTEXT
    ) -> dict[str, Any]:
        response_id = _response_id(response.id)
        # Item ids as the reference's non-stream translators make them: from the upstream id as given (Gemini's
        # bare responseId, not the resp_ form), messages and reasoning items numbered separately; reasoning
        # carries the number only after a Claude id (rs_msg_…_0), else from its second item on (rs_chatcmpl-…).
        base = response.id or response_id
        numbered_reasoning = base.startswith("msg_")
        output: list[dict[str, Any]] = []
        text: list[str] | None = None
        seen_calls: set[str] = set()
        messages = reasonings = 0

        def flush_text() -> None:
            nonlocal text, messages
            if text is not None:
                output.append(_message_item(f"msg_{base}_{messages}", "".join(text)))
                messages += 1
                text = None

        def reasoning_id() -> str:
            nonlocal reasonings
            reasonings += 1
            n = reasonings - 1
            return f"rs_{base}_{n}" if numbered_reasoning or n else f"rs_{base}"

        shape = _shape_of(context)
        calls = 0
        for part in response.content:
            if isinstance(part, TextPart):
                if text is None:
                    text = []
                text.append(part.text)
            elif isinstance(part, ThinkingPart):
                flush_text()
                item_id, encrypted = _thinking_reusable(part)
                item = _reasoning_item(item_id or reasoning_id(), part.text or None, encrypted)
                output.append(_shaped_reasoning(item, shape.reasoning_answer, "completed"))
            elif isinstance(part, ToolCallPart):
                flush_text()
                calls += 1
                if shape.mint_calls:
                    call_id = _minted_call_id(calls)
                else:
                    call_id = part.id if part.id and part.id not in seen_calls else new_id("call_")
                seen_calls.add(call_id)
                output.append(_call_item(call_id, part.name, part.arguments or "{}"))
        flush_text()
        status, incomplete, error = _status_fields(response.finish_reason, context.source)
        if status == "incomplete" and output and output[-1]["type"] == "message":
            output[-1]["status"] = "incomplete"  # the text was cut off
        return _response_object(response_id=response_id, created=response.created or now(), model=model,
                                status=status, output=output, usage=_usage_json(_shaped_usage(
                                    response.usage, shape, "".join(p.text for p in response.content
                                                                   if isinstance(p, ThinkingPart)))),
                                incomplete=incomplete, error=error, context=context)

    def stream_encoder(self, *, model: str, context: AnswerContext = NO_CONTEXT) -> ResponsesStreamEncoder:
        return ResponsesStreamEncoder(model=model, context=context)

    # ------------------------------------------------------------------ upstream side
    def encode_request(
        self, request: Request, *, model: str, context: RequestContext = NO_REQUEST_CONTEXT
    ) -> dict[str, Any]:
        shape = codex_shape_for(context)
        schemaless = _gemini_schemaless(context.client_body) if shape.closed_tool_schemas else frozenset()
        tools, custom = _encode_tools(request.tools, shape, schemaless)
        extras = request.metadata.get(EXTRAS_KEY) if isinstance(request.metadata, Mapping) else None
        extras = extras if isinstance(extras, Mapping) else {}
        # The system prompt goes as a leading developer message with empty instructions (the recorded build's
        # Codex requests; instructions stay the Codex client's own field).
        system = [{"type": "input_text", "text": p.text} for p in request.system
                  if p.text and not p.text.startswith(_BILLING_HEADER)]
        developer = [{"type": "message", "role": "developer", "content": system}] if system else []
        include = [ENCRYPTED_REASONING_INCLUDE]
        wanted = extras.get("include")
        for name in wanted if isinstance(wanted, list) else []:
            if isinstance(name, str) and name not in include:
                include.append(name)
        body: dict[str, Any] = {
            "model": model,
            "instructions": "",
            "input": developer + _InputEncoder(custom, shape.part_per_message).encode(request.messages),
            "stream": request.stream,
            "store": False,
            "include": include,
        }
        if tools:
            body["tools"] = tools
        choice = request.tool_choice
        if choice is not None and tools:
            body["tool_choice"] = _encode_tool_choice(choice, custom)
        elif tools and shape.default_tool_choice:
            body["tool_choice"] = "auto"
        body["parallel_tool_calls"] = choice.parallel if choice is not None and choice.parallel is not None else True
        gen = request.generation
        if gen.max_tokens is not None:
            body["max_output_tokens"] = gen.max_tokens
        if gen.temperature is not None:
            body["temperature"] = gen.temperature
        if gen.top_p is not None:
            body["top_p"] = gen.top_p
        text = _encode_text_config(gen.response_format,
                                   extras.get("verbosity") if isinstance(extras.get("verbosity"), str) else None)
        if text is not None:
            body["text"] = text
        # Without thinking settings the recorded build asks for medium effort.
        body["reasoning"] = _encode_reasoning(request.reasoning) or {"effort": "medium"}
        if request.user:
            body["user"] = request.user
        # Client metadata (Claude's user_id…) is not forwarded: the Codex backend keys its caches on
        # prompt_cache_key, and the recorded build sends none.
        for name in ("prompt_cache_key", "service_tier"):
            if isinstance(extras.get(name), str):
                body[name] = extras[name]
        return body

    def decode_response(self, body: dict[str, Any]) -> Response:
        if not isinstance(body, dict):
            body = {}
        if isinstance(body.get("response"), dict) and isinstance(body.get("type"), str):
            body = body["response"]  # a `response.completed` event handed over whole
        parts, refused = _parts_from_output(body.get("output"))
        has_tools = any(isinstance(p, ToolCallPart) for p in parts)
        reason, native = _finish_from_status(body.get("status"), body.get("incomplete_details"), has_tools, refused)
        created = body.get("created_at")
        return Response(
            id=str(body.get("id") or ""),
            model=str(body.get("model") or ""),
            content=tuple(parts),
            finish_reason=reason,
            usage=_usage_from(body.get("usage")),
            created=int(created) if isinstance(created, int | float) and not isinstance(created, bool) else 0,
            native_finish_reason=native,
        )

    def stream_decoder(self) -> ResponsesStreamDecoder:
        return ResponsesStreamDecoder()
