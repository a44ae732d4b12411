"""The Codec protocol: one per wire protocol, four directions, pure functions and small state machines (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from proxyd.protocols.base import WireProtocol
from proxyd.protocols.canonical import Request, Response, StreamEvent
from proxyd.protocols.sse import SSEEvent


class CodecError(ValueError):
    """A client body that cannot be decoded; becomes a 400 `invalid_request_error` naming `field`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


@attrs.frozen
class AnswerContext:
    """What a client-side encoder may know about the exchange besides the answer itself.

    `source` is the upstream's protocol (the reference's answer shapes differ per upstream/client pair),
    `request` the canonical client request and `client_body` the client's raw JSON body (echo fields such as the
    Responses API's `instructions`, `tools`, `max_output_tokens`). All optional: encoders must work without them.
    """

    source: WireProtocol | None = None
    request: Request | None = None
    client_body: Mapping[str, Any] | None = None


NO_CONTEXT = AnswerContext()


@attrs.frozen
class RequestContext:
    """What an upstream-side request encoder may know besides the canonical request.

    `client` is the client's protocol (the reference translates per pair, so some upstream request shapes depend on
    who asked) and `client_body` the client's raw JSON body. Both optional: encoders must work without them.
    """

    client: WireProtocol | None = None
    client_body: Mapping[str, Any] | None = None


NO_REQUEST_CONTEXT = RequestContext()


class StreamDecoder(Protocol):
    """Upstream SSE events → canonical stream events; holds one upstream response's state."""

    def decode(self, event: SSEEvent) -> list[StreamEvent]: ...

    def close(self) -> list[StreamEvent]:
        """The upstream stream ended: flush whatever is pending (e.g. a Finish never sent explicitly)."""
        ...


class StreamEncoder(Protocol):
    """Canonical stream events → the client protocol's SSE bytes (framed); holds one response's state."""

    def encode(self, event: StreamEvent) -> bytes: ...

    def close(self) -> bytes:
        """Clean end of stream: the protocol's closing frames (OpenAI `[DONE]`, Claude `message_stop`…)."""
        ...

    def error(self, status: int, message: str) -> bytes:
        """A terminal error frame after which the stream ends (no further frames)."""
        ...


class Codec(Protocol):
    """Everything proxyd knows about one wire protocol's bodies.

    Client side: `decode_request`, `encode_response`, `stream_encoder`.
    Upstream side: `encode_request`, `decode_response`, `stream_decoder`.
    """

    protocol: WireProtocol

    def decode_request(self, body: dict[str, Any], *, model: str, stream: bool) -> Request:
        """A client body → canonical Request. Raises CodecError for malformed input."""
        ...

    def encode_response(
        self, response: Response, *, model: str, context: AnswerContext = NO_CONTEXT
    ) -> dict[str, Any]:
        """A canonical Response → the client's non-streaming JSON; `model` is the id the client asked for."""
        ...

    def stream_encoder(self, *, model: str, context: AnswerContext = NO_CONTEXT) -> StreamEncoder: ...

    def encode_request(
        self, request: Request, *, model: str, context: RequestContext = NO_REQUEST_CONTEXT
    ) -> dict[str, Any]:
        """A canonical Request → this protocol's upstream body for upstream model `model`."""
        ...

    def decode_response(self, body: dict[str, Any]) -> Response:
        """An upstream non-streaming JSON body → canonical Response."""
        ...

    def stream_decoder(self) -> StreamDecoder: ...
