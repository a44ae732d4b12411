"""The Exchange: one proxied request's state, shared by every stage."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
import attrs
import structlog
from aiohttp import web

from proxyd.http.body import parse_json_object, read_body
from proxyd.http.errors import ErrorFamily, UpstreamError
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.sse import SSEEvent

if TYPE_CHECKING:
    from proxyd.credentials.model import Credential
    from proxyd.logs.request_log import RequestLogCapture
    from proxyd.models.registry import Route
    from proxyd.pipeline.translate import Translation
    from proxyd.protocols.canonical import Usage
    from proxyd.providers.base import Provider, UpstreamReply
    from proxyd.runtime import Runtime
    from proxyd.thinking import ThinkingConfig


_LOG = structlog.get_logger("proxyd.exchange")
_NULL: list[RequestLogCapture] = []


def _null_capture() -> RequestLogCapture:
    if not _NULL:
        from proxyd.logs.request_log import NULL_CAPTURE  # imported late: proxyd.logs needs the app keys

        _NULL.append(NULL_CAPTURE)
    return _NULL[0]


def error_family_of(protocol: WireProtocol) -> ErrorFamily:
    """The error envelope a protocol's clients (and upstreams) use."""
    if protocol is WireProtocol.CLAUDE:
        return ErrorFamily.CLAUDE
    if protocol is WireProtocol.GEMINI:
        return ErrorFamily.GEMINI
    return ErrorFamily.OPENAI


@attrs.define(eq=False)
class Candidate:
    """One way to serve the request: a credential, an upstream model name and the provider that calls it."""

    route: Route
    upstream_model: str
    provider: Provider

    @property
    def credential_id(self) -> str:
        return self.route.credential.id


@attrs.define(eq=False)
class Attempt:
    """What one dispatch attempt did: which credential, upstream model and protocol, and how it ended."""

    credential_id: str
    upstream_model: str
    protocol: WireProtocol
    status: int
    error: str = ""


class Prefetched:
    """An upstream attempt the fast lane made and handed to the dispatch stage (which never sends it again):
    its failure, or a stream reply whose body is `chunks` (what the lane read so far, then the rest)."""

    __slots__ = ("candidate", "chunks", "error", "started")

    def __init__(self, candidate: Candidate, started: float, *, error: UpstreamError | None = None,
                 chunks: AsyncIterator[bytes] | None = None) -> None:
        self.candidate = candidate
        self.started = started  # time.monotonic() when the attempt began (for the upstream timer)
        self.error = error
        self.chunks = chunks


@attrs.define(eq=False)
class Exchange:
    """Request-scoped state: filled in by the stages in order, closed by the handler."""

    request: web.Request
    protocol: WireProtocol
    runtime: Runtime
    session: aiohttp.ClientSession
    request_id: str = ""
    path_model: str | None = None  # Gemini routes carry the model in the URL
    client_key: str | None = None
    model: str = ""  # as the client asked (answers carry it back)
    route_model: str = ""  # the model routed and cooled down by: suffix removed, `auto` resolved
    thinking_suffix: ThinkingConfig | None = None
    held_credential: Credential | None = None  # in flight until the answer is written
    stream: bool = False
    forced_stream: bool | None = None  # set by routes whose URL decides streaming (Gemini, count_tokens)
    count: bool = False  # a token-count request (`/v1/messages/count_tokens`, Gemini `:countTokens`)
    count_tokens: int | None = None
    count_body: bytes | None = None  # the upstream's own count answer (passed through to same-protocol clients)
    connection_session: str | None = None  # the client connection's own session (a Responses WebSocket's id)
    candidates: list[Candidate] = attrs.Factory(list)
    translation: Translation | None = None
    chosen: Candidate | None = None
    upstream: UpstreamReply | None = None
    upstream_body: bytes | None = None  # a non-streaming answer, read whole by the dispatch stage
    events: AsyncIterator[SSEEvent] | None = None
    attempts: list[Attempt] = attrs.Factory(list)
    last_error: UpstreamError | None = None
    response: web.StreamResponse | None = None
    usage: Usage | None = None
    failed_mid_stream: bool = False
    lane: bool = False  # the fast lane may serve it: its request-log capture is made only if it is needed
    prefetched: Prefetched | None = None  # the fast lane's attempt, for the dispatch stage
    capture: RequestLogCapture = attrs.Factory(lambda: _null_capture())  # request-log collection points
    started: float = attrs.Factory(time.perf_counter)
    log_context: dict[str, Any] = attrs.Factory(dict)  # fields of every line `log` writes
    _log: Any = None
    _raw_body: bytes | None = None
    _body: dict[str, Any] | None = None

    @property
    def log(self) -> Any:
        """This request's logger, bound to `log_context` (built on first use: most requests log nothing)."""
        if self._log is None:
            self._log = _LOG.bind(**self.log_context)
        return self._log

    @log.setter
    def log(self, value: Any) -> None:
        self._log = value

    def bind_log(self, **fields: Any) -> None:
        """Add fields to every later line of this request's logger."""
        self.log_context.update(fields)
        if self._log is not None:
            self._log = self._log.bind(**fields)

    @property
    def error_family(self) -> ErrorFamily:
        return error_family_of(self.protocol)

    def failed_protocol(self) -> WireProtocol | None:
        """The protocol of the upstream that produced the last failed attempt."""
        return self.attempts[-1].protocol if self.attempts else None

    async def raw_body(self) -> bytes:
        if self._raw_body is None:
            limit = self.runtime.config.request_body_limit_mb * 1024 * 1024
            self._raw_body = await read_body(self.request, limit)
            self.capture.request_body(self._raw_body)
        return self._raw_body

    async def json_body(self) -> dict[str, Any]:
        """The client's JSON object body, read and parsed once (400/413 on bad input)."""
        if self._body is None:
            self._body = parse_json_object(await self.raw_body())
        return self._body

    async def aclose(self) -> None:
        """Release the upstream connection (also on client disconnect and errors)."""
        if self.events is not None:
            aclose = getattr(self.events, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):  # closing must never raise
                    await aclose()
            self.events = None
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
        if self.held_credential is not None:
            self.runtime.manager.release(self.held_credential)
            self.held_credential = None
