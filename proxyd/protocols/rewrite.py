"""Response rewriters: the upstream's body or SSE events → what the client protocol expects.

Same protocol: bytes pass through, only the model name is renamed back to the client's id. Different
protocols: the upstream codec decodes into canonical events/responses and the client codec encodes them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Protocol

from proxyd.http.errors import ErrorFamily, ProxyError, UpstreamError
from proxyd.protocols import jsonfast, openai_completions, openai_responses
from proxyd.protocols.aggregate import StreamAggregator
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.canonical import StreamEvent, Usage, UsageUpdate
from proxyd.protocols.codec import AnswerContext, Codec, StreamDecoder, StreamEncoder
from proxyd.protocols.sse import SSEEvent, frame
from proxyd.protocols.usage import UsageTap, merge, usage_in

MODEL_FIELD = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*"')
DONE = b"[DONE]"
DONE_FRAME = b"data: [DONE]\n\n"


def rename_model(payload: bytes, model: bytes) -> bytes:
    """Replace the first `"model": "..."` of a JSON text (the top-level one in OpenAI/Claude/Responses objects)."""
    return MODEL_FIELD.sub(b'"model":' + model, payload, count=1)


STREAM_CLOSED = openai_responses.STREAM_CLOSED_MESSAGE
UNEXPECTED_EOF = "unexpected EOF"
"""What the reference (Go's HTTP client) reports for an upstream body that broke off mid-transfer."""
CHAT_CLOSED_EARLY = "upstream stream closed before [DONE]"


def stream_closed_error() -> ProxyError:
    """A Responses stream that ended (or broke off) before `response.completed`: the reference's 408."""
    return ProxyError(408, STREAM_CLOSED, type="server_error", code="request_timeout")


def transport_cut_error() -> ProxyError:
    """An upstream stream whose transfer broke off after the first event, as the reference reports it: Go's
    `unexpected EOF`, status 500 (a Responses upstream's cut is a stream that never completed instead)."""
    return ProxyError(500, UNEXPECTED_EOF, from_upstream=True)


def error_status_message(error: ProxyError | UpstreamError) -> tuple[int, str]:
    if isinstance(error, UpstreamError):
        converted = error.to_proxy_error()
        return converted.status, converted.message
    return error.status, error.message


class ResponseRewriter(Protocol):
    """Turns one upstream protocol's answer into the client protocol's, piece by piece.

    `usage` holds the token usage seen so far (None when the upstream reported none).
    """

    usage: Usage | None

    def body(self, upstream: bytes) -> bytes:
        """A non-streaming upstream body → the client's body."""
        ...

    def stream_body(self, events: Iterable[SSEEvent]) -> bytes:
        """A whole upstream SSE stream (the upstream always streams) → the client's non-streaming body."""
        ...

    def event(self, event: SSEEvent) -> bytes: ...

    def done(self) -> bytes: ...

    def error_frame(self, error: ProxyError | UpstreamError) -> bytes: ...


def _openai_error_frame(error: ProxyError | UpstreamError) -> bytes:
    if isinstance(error, UpstreamError):
        if error.body and error.is_json():
            return frame(error.body.strip())
        error = error.to_proxy_error()
    return frame(json.dumps(error.body(ErrorFamily.OPENAI)).encode())


class SSEPassthrough:
    """Same protocol: events relayed as they are (thinking signatures byte for byte), the model renamed."""

    def __init__(self, protocol: WireProtocol, client_model: str, codec: Codec | None,
                 restore: Callable[[bytes], bytes] | None = None, tap: UsageTap | None = None) -> None:
        """`tap`: the usage seen so far, when a relay that began without parsing events continues here."""
        self._protocol = protocol
        self._restore = restore  # an upstream-side renaming to undo in every body/event (Codex collaboration)
        self._model = json.dumps(client_model).encode()
        self._client_model = client_model
        self._codec = codec
        self._tap = tap if tap is not None else UsageTap(protocol)
        self._chat = protocol is WireProtocol.OPENAI_CHAT
        self._responses = protocol is WireProtocol.OPENAI_RESPONSES
        self._rename = protocol is not WireProtocol.GEMINI
        self._ended = False  # chat: an in-band error chunk ended the stream; Responses: a terminal event went out
        self._events = 0  # Responses events relayed (the next frame's sequence number, the upstream counting from 0)

    @property
    def usage(self) -> Usage | None:
        return self._tap.usage

    def body(self, upstream: bytes) -> bytes:
        self._tap.feed(upstream)
        if self._restore is not None:
            upstream = self._restore(upstream)
        return rename_model(upstream, self._model)

    def stream_body(self, events: Iterable[SSEEvent]) -> bytes:
        if self._protocol is WireProtocol.OPENAI_RESPONSES:
            for event in events:
                try:
                    data = json.loads(event.data)
                except ValueError:
                    continue
                if isinstance(data, dict) and data.get("type") in ("response.completed", "response.incomplete"):
                    response = data.get("response")
                    if isinstance(response, dict):
                        encoded = json.dumps(response, ensure_ascii=False).encode()
                        self._tap.feed(encoded)
                        if self._restore is not None:
                            encoded = self._restore(encoded)
                        return rename_model(encoded, self._model)
            raise stream_closed_error()
        raise ProxyError(502, f"upstream {self._protocol} answered a stream to a non-streaming request",
                         type="server_error")

    @property
    def unterminated(self) -> bool:
        """A Responses stream relayed so far has had no terminal event (the reference's 408 if it ends now)."""
        return self._responses and not self._ended

    def event(self, event: SSEEvent) -> bytes:
        data = event.data
        if self._chat:
            if self._ended or (len(data) < 16 and data.strip() == DONE):
                return b""  # [DONE] is re-emitted once at the clean end; nothing follows an error chunk
            self._ended = _is_error_chunk(data)
        elif self._responses:
            self._events += 1
            self._ended = self._ended or _is_terminal_event(event)
        self._tap.feed(data)
        if self._restore is not None:
            data = self._restore(data)
        if self._rename:
            data = rename_model(data, self._model)
        return frame(data, event.event)

    def done(self) -> bytes:
        if self._responses:
            return b"\n"  # the reference relays the upstream's closing blank line on Responses streams
        if self._chat:
            # the reference's chat relay ends without [DONE] after the upstream's in-band error chunk
            return b"" if self._ended else DONE_FRAME
        return b""

    def error_frame(self, error: ProxyError | UpstreamError) -> bytes:
        if self._protocol is WireProtocol.OPENAI_CHAT or self._codec is None:
            return _openai_error_frame(error)
        status, message = error_status_message(error)
        if self._responses:
            return openai_responses.error_event(status, message, self._events)
        return self._codec.stream_encoder(model=self._client_model).error(status, message)


_RESPONSES_TERMINAL = (b"response.completed", b"response.incomplete", b"response.failed", b"error")


def _is_terminal_event(event: SSEEvent) -> bool:
    """A Responses event that ends the stream (completed, incomplete, failed or an error)."""
    name = event.event.encode() if event.event else b""
    if name:
        return name in _RESPONSES_TERMINAL
    try:
        data = json.loads(event.data)
    except ValueError:
        return False
    return isinstance(data, dict) and str(data.get("type", "")).encode() in _RESPONSES_TERMINAL


def _is_error_chunk(data: bytes) -> bool:
    """A chat stream chunk that is an upstream's in-band `{"error": …}` rather than a completion chunk."""
    if data.find(b'"error"') < 0:
        return False
    try:
        chunk = json.loads(data)
    except ValueError:
        return False
    return isinstance(chunk, dict) and chunk.get("error") is not None and "choices" not in chunk


class CompletionsFromChat:
    """Chat answers → legacy `text_completion` objects (empty chunks skipped)."""

    def __init__(self, client_model: str) -> None:
        self._model = client_model
        self.usage: Usage | None = None

    def body(self, upstream: bytes) -> bytes:
        chat = json.loads(upstream)
        self.usage = usage_in(WireProtocol.OPENAI_CHAT, chat)
        out = openai_completions.chat_response_to_completion(chat)
        out["model"] = self._model
        return json.dumps(out, ensure_ascii=False).encode()

    def stream_body(self, events: Iterable[SSEEvent]) -> bytes:
        raise ProxyError(502, "upstream answered a stream to a non-streaming request", type="server_error")

    def event(self, event: SSEEvent) -> bytes:
        if event.data.strip() == DONE:
            return b""
        chunk = json.loads(event.data)
        if not isinstance(chunk, dict):
            return b""
        self.usage = merge(self.usage, usage_in(WireProtocol.OPENAI_CHAT, chunk))
        out = openai_completions.chat_chunk_to_completion(chunk)
        if out is None:
            return b""
        out["model"] = self._model
        return frame(json.dumps(out, ensure_ascii=False).encode())

    def done(self) -> bytes:
        return DONE_FRAME

    def error_frame(self, error: ProxyError | UpstreamError) -> bytes:
        return _openai_error_frame(error)


class CanonicalRewriter:
    """Different protocols: upstream codec → canonical → client codec, incrementally for streams.

    The stream decoder and encoder are made on first use: a non-streamed body needs neither."""

    def __init__(self, upstream: Codec, client: Codec, client_model: str,
                 context: AnswerContext | None = None) -> None:
        self._upstream = upstream
        self._client = client
        self._model = client_model
        self._context = context or AnswerContext(source=upstream.protocol)
        self._decoder_: StreamDecoder | None = None
        self._encoder_: StreamEncoder | None = None
        # Encoders that merge one upstream event's pieces (Chat answers from Gemini) emit them on flush().
        self._flush: Callable[[], bytes] | None = None
        self.usage: Usage | None = None

    @property
    def _decoder(self) -> StreamDecoder:
        if self._decoder_ is None:
            self._decoder_ = self._upstream.stream_decoder()
        return self._decoder_

    @property
    def _encoder(self) -> StreamEncoder:
        if self._encoder_ is None:
            self._encoder_ = self._client.stream_encoder(model=self._model, context=self._context)
            self._flush = getattr(self._encoder_, "flush", None)
        return self._encoder_

    def _seen(self, events: list[StreamEvent]) -> list[StreamEvent]:
        for event in events:
            if type(event) is UsageUpdate:
                self.usage = event.usage
        return events

    def body(self, upstream: bytes) -> bytes:
        data = jsonfast.loads(upstream)
        if not isinstance(data, dict):
            raise ValueError("upstream body is not a JSON object")
        response = self._upstream.decode_response(data)
        self.usage = response.usage
        encoded = self._client.encode_response(response, model=self._model, context=self._context)
        return jsonfast.dumps_spaced(encoded).encode()

    def stream_body(self, events: Iterable[SSEEvent]) -> bytes:
        aggregator = StreamAggregator()
        decoder = self._decoder
        for event in events:
            for canonical in self._seen(decoder.decode(event)):
                aggregator.feed(canonical)
        for canonical in self._seen(decoder.close()):
            aggregator.feed(canonical)
        responses = self._upstream.protocol is WireProtocol.OPENAI_RESPONSES
        if aggregator.error is not None:
            if responses and aggregator.error.status == 408:  # the decoder's "closed before completion"
                raise stream_closed_error()
            raise UpstreamError(aggregator.error.status or 502, aggregator.error.message.encode())
        if aggregator.finish is None and responses:
            raise stream_closed_error()
        encoded = self._client.encode_response(aggregator.response(), model=self._model, context=self._context)
        return jsonfast.dumps_spaced(encoded).encode()

    def event(self, event: SSEEvent) -> bytes:
        decoder = self._decoder_ or self._decoder
        encoder = self._encoder_ or self._encoder
        decoded = decoder.decode(event)
        if len(decoded) == 1:  # the common case: one upstream event, one canonical event
            canonical = decoded[0]
            if type(canonical) is UsageUpdate:
                self.usage = canonical.usage
            out = encoder.encode(canonical)
        elif decoded:
            encode = encoder.encode
            out = b"".join([encode(c) for c in self._seen(decoded)])
        else:
            out = b""
        flush = self._flush
        return out + flush() if flush is not None else out

    def events(self, events: list[SSEEvent]) -> bytes:
        """`b"".join(self.event(e) for e in events)`: the events parsed from one upstream read."""
        if len(events) == 1:
            return self.event(events[0])
        event = self.event
        return b"".join([event(e) for e in events])

    def done(self) -> bytes:
        encoder = self._encoder
        chat_to_responses = (self._client.protocol is WireProtocol.OPENAI_RESPONSES
                             and self._upstream.protocol is WireProtocol.OPENAI_CHAT)
        if chat_to_responses and not getattr(self._decoder, "saw_done", True):
            # Responses clients need a terminal event: the reference fails a chat stream that ends without [DONE]
            return encoder.error(502, CHAT_CLOSED_EARLY)
        tail = b"".join(encoder.encode(c) for c in self._seen(self._decoder.close()))
        return tail + encoder.close()

    def error_frame(self, error: ProxyError | UpstreamError) -> bytes:
        status, message = error_status_message(error)
        return self._encoder.error(status, message)
