"""The canonical representation every protocol codec decodes into and encodes from.

One request model, one response model and one stream-event vocabulary. A codec converts its protocol to and
from these; translating A → B is `codec_B.encode(codec_A.decode(x))`, so N protocols cost N codecs.
Everything here is immutable (attrs frozen); sequences are tuples, free-form JSON stays in plain dicts.

Conventions:
- Roles are `user` and `assistant` only. The system prompt is `Request.system`; tool results are
  `ToolResultPart`s inside a `user` message (OpenAI's `tool` role messages decode to that and encode back).
- Tool-call `arguments` are JSON *text* (what OpenAI and Responses carry); codecs for protocols that carry
  objects (Claude `input`, Gemini `args`) parse/serialise at their edge. Invalid JSON text is kept as text.
- Provider-issued opaque tokens (Claude thinking signatures, Gemini thought signatures, Responses encrypted
  reasoning) record the protocol that issued them in `signature_source`; an encoder for another protocol must
  drop them (DECISIONS 8).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from proxyd.protocols.base import WireProtocol

Role = Literal["user", "assistant"]


# --------------------------------------------------------------------------------------------- parts


@attrs.frozen
class TextPart:
    """Plain text. `cache_control` carries Claude's prompt-caching marker across Claude-bound paths."""

    text: str
    cache_control: Mapping[str, Any] | None = None


@attrs.frozen
class ImagePart:
    """An image, inline (base64 `data` + `media_type`) or by `url` (http(s) or a `data:` URL)."""

    media_type: str = ""
    data: str | None = None
    url: str | None = None
    detail: str | None = None


@attrs.frozen
class FilePart:
    """A document (PDF, text…), inline base64 `data` or by `url`/`file_id`."""

    media_type: str = ""
    data: str | None = None
    url: str | None = None
    file_id: str | None = None
    filename: str | None = None


@attrs.frozen
class ToolCallPart:
    """An assistant's call of a tool. `arguments` is JSON text; `signature` is a Gemini thought signature."""

    id: str
    name: str
    arguments: str = "{}"
    signature: str | None = None
    signature_source: WireProtocol | None = None


@attrs.frozen
class ToolResultPart:
    """The result of a tool call, inside a user message; `content` holds text and image parts."""

    tool_call_id: str
    content: tuple[TextPart | ImagePart | FilePart, ...] = ()
    name: str | None = None
    is_error: bool = False


@attrs.frozen
class ThinkingPart:
    """Model reasoning. `redacted` = Claude `redacted_thinking` (opaque `signature` holds its data);
    `encrypted` = Responses `encrypted_content`; `summary` marks Responses reasoning summaries."""

    text: str = ""
    signature: str | None = None
    signature_source: WireProtocol | None = None
    redacted: bool = False
    encrypted: str | None = None
    id: str | None = None


Part = TextPart | ImagePart | FilePart | ToolCallPart | ToolResultPart | ThinkingPart


@attrs.frozen
class Message:
    """One conversation turn."""

    role: Role
    parts: tuple[Part, ...]
    name: str | None = None


# --------------------------------------------------------------------------------------------- tools


@attrs.frozen
class Tool:
    """A function the model may call. `parameters` is a JSON schema (object). Built-in tools of one protocol
    (web search, code execution…) are kept raw in `builtin` with `builtin_protocol` and only reach that one."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = attrs.field(factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None
    builtin: Mapping[str, Any] | None = None
    builtin_protocol: WireProtocol | None = None


@attrs.frozen
class ToolChoice:
    """`auto`, `none`, `required` (any tool), or `tool` (the one named). `parallel=False` forbids parallel calls."""

    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None
    parallel: bool | None = None


# --------------------------------------------------------------------------------------------- settings


@attrs.frozen
class ResponseFormat:
    """`text`, `json_object` (JSON mode) or `json_schema` with `schema`/`name`/`strict`."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: Mapping[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


@attrs.frozen
class Reasoning:
    """Thinking settings: an effort level (`none` `minimal` `low` `medium` `high` `xhigh`), or a token budget
    (0 = off, -1 = dynamic), whether thoughts are returned, and a Responses summary mode."""

    effort: str | None = None
    budget_tokens: int | None = None
    include_thoughts: bool | None = None
    summary: str | None = None


@attrs.frozen
class Generation:
    """Sampling and length settings; None = not set by the client."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    candidate_count: int | None = None
    response_format: ResponseFormat | None = None


@attrs.frozen
class Request:
    """A generation request, protocol-neutral."""

    model: str
    messages: tuple[Message, ...]
    system: tuple[TextPart, ...] = ()
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    generation: Generation = Generation()
    reasoning: Reasoning | None = None
    stream: bool = False
    user: str | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict)


# --------------------------------------------------------------------------------------------- responses


class FinishReason(enum.StrEnum):
    """Why generation stopped, in canonical terms; codecs map their own values to and from these."""

    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"
    PAUSE = "pause"  # Claude pause_turn
    REFUSAL = "refusal"
    ERROR = "error"


@attrs.frozen
class Usage:
    """Token counts. `input_tokens` includes cached tokens (`cached_tokens` ⊆ input); `output_tokens`
    includes reasoning (`reasoning_tokens` ⊆ output). Codecs convert to their protocol's conventions."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int | None = None

    @property
    def total(self) -> int:
        return self.total_tokens if self.total_tokens is not None else self.input_tokens + self.output_tokens


@attrs.frozen
class Response:
    """A complete (non-streamed) answer: the assistant's parts in order."""

    id: str
    model: str
    content: tuple[Part, ...]
    finish_reason: FinishReason = FinishReason.STOP
    usage: Usage | None = None
    created: int = 0
    native_finish_reason: str | None = None
    stop_sequence: str | None = None


# --------------------------------------------------------------------------------------------- stream events


@attrs.frozen
class StreamStart:
    """The stream began; ids as the upstream gave them (encoders may mint their own style)."""

    id: str = ""
    model: str = ""
    created: int = 0


@attrs.frozen
class TextDelta:
    text: str


@attrs.frozen
class ThinkingDelta:
    text: str


@attrs.frozen
class ThinkingSignature:
    """The signature closing the current thinking block (Claude), or opaque reasoning state."""

    signature: str
    source: WireProtocol
    redacted: bool = False
    encrypted: str | None = None


@attrs.frozen
class ToolCallStart:
    """A tool call opens. `index` counts tool calls of this response from 0 (parallel calls = distinct indexes)."""

    index: int
    id: str
    name: str
    signature: str | None = None
    signature_source: WireProtocol | None = None


@attrs.frozen
class ToolCallDelta:
    index: int
    arguments: str


@attrs.frozen
class ToolCallEnd:
    index: int


@attrs.frozen
class UsageUpdate:
    """Usage so far (later updates replace earlier ones)."""

    usage: Usage


@attrs.frozen
class Finish:
    """Generation finished (usage may still follow)."""

    reason: FinishReason
    native: str | None = None
    stop_sequence: str | None = None


@attrs.frozen
class StreamError:
    """The upstream failed mid-stream."""

    status: int
    message: str
    type: str | None = None


StreamEvent = (
    StreamStart | TextDelta | ThinkingDelta | ThinkingSignature | ToolCallStart | ToolCallDelta | ToolCallEnd
    | UsageUpdate | Finish | StreamError
)


def text_of(parts: tuple[Part, ...]) -> str:
    """The concatenated text parts (a convenience for codecs and tests)."""
    return "".join(p.text for p in parts if isinstance(p, TextPart))
