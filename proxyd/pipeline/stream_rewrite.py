"""stream-rewrite stage: the upstream answer → the client, non-streamed whole or streamed event by event."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import aiohttp
from aiohttp import web

from proxyd.http.errors import ProxyError, UpstreamError
from proxyd.http.streaming import HeldHeadersResponse
from proxyd.pipeline.exchange import Exchange
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.rewrite import ResponseRewriter, stream_closed_error, transport_cut_error
from proxyd.protocols.sse import KEEPALIVE_COMMENT, SSEError, SSEEvent, SSEParser
from proxyd.providers.base import streams_upstream

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
}


async def _next_with_keepalive(
    events: AsyncIterator[SSEEvent], response: web.StreamResponse, interval: float
) -> SSEEvent:
    """The next event; while waiting longer than `interval`, write SSE keep-alive comments."""
    if interval <= 0:
        return await anext(events)
    pending = asyncio.ensure_future(anext(events))
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if done:
                return pending.result()
            await response.write(KEEPALIVE_COMMENT)
    finally:
        if not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending


# Never copied by `passthrough-headers` (api-surface.md §9): hop-by-hop headers, cookies, framing and encoding.
_NOT_PASSED = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding",
    "upgrade", "set-cookie", "content-length", "content-encoding",
})


def passthrough_headers(exchange: Exchange, own: Mapping[str, str]) -> dict[str, str]:
    """With `passthrough-headers: true`, the upstream answer's headers (first value of each) the client may see,
    never one proxyd sets itself (`own`) nor one the upstream's `Connection` header names."""
    if not exchange.runtime.config.passthrough_headers or exchange.upstream is None:
        return {}
    upstream = exchange.upstream.headers
    named = {t.strip().lower() for t in upstream.get("Connection", "").split(",") if t.strip()}
    taken = {k.lower() for k in own}
    out: dict[str, str] = {}
    for name, value in upstream.items():
        key = name.lower()
        if key in _NOT_PASSED or key in named or key in taken:
            continue
        taken.add(key)
        out[name] = value
    return out


def _json(value: dict[str, object]) -> web.Response:
    """A JSON answer with the reference's bare `application/json` (no charset parameter)."""
    return web.Response(body=json.dumps(value).encode(), content_type="application/json")


class StreamRewriteStage:
    """Writes the answer in the client's protocol; after the first byte, failures become an error frame."""

    name = "stream-rewrite"

    async def run(self, exchange: Exchange) -> None:
        assert exchange.translation is not None and exchange.chosen is not None
        if exchange.count:
            response = exchange.response = self._count_response(exchange)
            exchange.capture.client_response(response.status, response.headers)
            if isinstance(response.body, bytes):
                exchange.capture.client_body(response.body)
            return
        rewriter = exchange.translation.rewriter_for(exchange.chosen.provider.protocol)
        try:
            if exchange.stream:
                await self._stream(exchange, rewriter)
            else:
                await self._whole(exchange, rewriter)
        finally:
            exchange.usage = rewriter.usage

    @staticmethod
    def _count_response(exchange: Exchange) -> web.Response:
        """Claude: `{"input_tokens": N}` (an Anthropic upstream's body as is); Gemini: always synthesised."""
        assert exchange.chosen is not None
        total = exchange.count_tokens or 0
        if exchange.protocol is WireProtocol.CLAUDE:
            if exchange.count_body is not None and exchange.chosen.provider.protocol is WireProtocol.CLAUDE:
                return web.Response(body=exchange.count_body, content_type="application/json")
            return _json({"input_tokens": total})
        return _json({"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]})

    async def _whole(self, exchange: Exchange, rewriter: ResponseRewriter) -> None:
        raw = exchange.upstream_body or b""
        assert exchange.chosen is not None
        try:
            if streams_upstream(exchange.chosen.provider, exchange.protocol):
                parser = SSEParser()
                body = rewriter.stream_body([*parser.feed(raw), *parser.close()])
            else:
                body = rewriter.body(raw)
        except ValueError:
            raise ProxyError(502, "upstream answered with a body that is not valid JSON", type="server_error",
                             code="bad_upstream_response") from None
        exchange.response = web.Response(status=200, body=body, content_type="application/json",
                                         headers=passthrough_headers(exchange, {"Content-Type": ""}))
        exchange.capture.client_response(200, exchange.response.headers)
        exchange.capture.client_body(body)

    async def _stream(self, exchange: Exchange, rewriter: ResponseRewriter) -> None:
        # The headers go out with the first event's bytes, in one packet (proxyd/http/streaming.py).
        response = HeldHeadersResponse(status=200,
                                       headers={**passthrough_headers(exchange, SSE_HEADERS), **SSE_HEADERS})
        await response.prepare(exchange.request)
        exchange.response = response
        capture = exchange.capture
        capture.client_response(200, response.headers)

        async def write(data: bytes) -> None:
            capture.client_body(data)
            await response.write(data)

        async def finish(data: bytes) -> None:
            capture.client_body(data)
            await response.write_eof(data)  # the last bytes and the chunked terminator in one send

        events = exchange.events
        if events is None:
            await finish(rewriter.done())
            return
        await relay_events(exchange, response, rewriter, events, write, finish)


async def relay_events(exchange: Exchange, response: HeldHeadersResponse, rewriter: ResponseRewriter,
                       events: AsyncIterator[SSEEvent], write: Callable[[bytes], Awaitable[None]],
                       finish: Callable[[bytes], Awaitable[None]], *, first: bool = True) -> None:
    """Relay upstream events through `rewriter` to the prepared `response` until the stream ends, then
    `finish` with the protocol's terminator; a failure after the first byte becomes the protocol's error frame.

    The stream-rewrite stage runs it over a whole stream; the fast lane (pipeline/fast_lane.py) hands it the
    rest of a stream whose bytes stopped being the plain shape it relays without parsing (`first`: no event
    was relayed yet, so the held headers go out alone if the first one yields no client bytes)."""
    assert exchange.chosen is not None
    keepalive = float(exchange.runtime.config.streaming.keepalive_seconds or 0)
    try:
        while True:
            try:
                event = await _next_with_keepalive(events, response, keepalive)
            except StopAsyncIteration:
                break
            # Everything already parsed from this upstream chunk goes out in one write.
            take_ready = getattr(events, "take_ready", None)
            batch = [event, *take_ready()] if take_ready is not None else [event]
            out = b"".join([rewriter.event(e) for e in batch])
            if out:
                await write(out)
            elif first:
                await response.send_headers()  # the client has the headers once the first event is in
            first = False
    except (aiohttp.ClientError, SSEError, TimeoutError, ValueError) as exc:
        exchange.log.warning("upstream stream failed mid-way", error=str(exc))
        exchange.failed_mid_stream = True
        if exchange.chosen.provider.protocol is not WireProtocol.OPENAI_RESPONSES:
            await finish(rewriter.error_frame(mid_stream_failure(exc)))
            return
        # A Responses (Codex) stream broken off is reported as one that ended before its terminal event
        # (the reference's 408): the translating rewriters say so when closed, a relay below.
    if getattr(rewriter, "unterminated", False):
        # a relayed Responses stream that ended without its terminal event: the reference's 408
        exchange.failed_mid_stream = True
        await finish(rewriter.error_frame(stream_closed_error()))
        return
    await finish(rewriter.done())


def mid_stream_failure(exc: BaseException) -> ProxyError | UpstreamError:
    """The error reported in-stream when reading a (non-Responses) upstream fails after the first event.

    A broken transfer is reported as the reference does (`unexpected EOF`); proxyd's own failures (an idle
    timeout, an unparseable event) keep their description."""
    if isinstance(exc, aiohttp.ClientError) and not isinstance(exc, TimeoutError):
        return transport_cut_error()
    return UpstreamError(502, f"upstream stream failed: {exc}".encode())
