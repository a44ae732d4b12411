"""dispatch stage: try candidates in order until one answers; a stream counts once its first event arrived."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp

from proxyd.http.errors import ProxyError, UpstreamError
from proxyd.pipeline.exchange import Attempt, Candidate, Exchange
from proxyd.protocols.sse import SSEError, SSEEvent, iter_sse
from proxyd.providers.base import MAX_ERROR_BODY, Timeouts, UpstreamReply, send
from proxyd.tokens import estimate_request_tokens

# DECISIONS 16: these move on to the next credential; other 4xx fail at once. 0 = transport failure.
RETRYABLE_STATUSES = frozenset({0, 403, 408, 429, 500, 502, 503, 504})


def timeouts_of(exchange: Exchange) -> Timeouts:
    t = exchange.runtime.config.upstream_timeouts
    return Timeouts(connect=t.connect_seconds, first_byte=t.first_byte_seconds, idle=t.idle_seconds)


def _in_stream_error(event: SSEEvent) -> UpstreamError | None:
    """An OpenAI-style `{"error": ...}` sent as the first event of a 200 stream."""
    if not event.data.startswith(b"{") or b'"error"' not in event.data[:64]:
        return None
    try:
        data = json.loads(event.data)
    except ValueError:
        return None
    if not isinstance(data, dict) or "error" not in data or "choices" in data:
        return None
    err = data["error"]
    status = err.get("code") if isinstance(err, dict) else None
    return UpstreamError(status if isinstance(status, int) and 400 <= status < 600 else 502, event.data)


async def _prepend(first: SSEEvent, rest: AsyncIterator[SSEEvent]) -> AsyncIterator[SSEEvent]:
    yield first
    async for event in rest:
        yield event


class DispatchStage:
    """Sends the request; on a retryable failure before anything reached the client, tries the next candidate."""

    name = "dispatch"

    async def run(self, exchange: Exchange) -> None:
        if not exchange.candidates:
            raise ProxyError(500, "auth_not_found: no auth available", type="server_error",
                             code="internal_server_error")
        limit = exchange.runtime.config.max_retry_credentials
        tried: set[str] = set()
        for candidate in exchange.candidates:
            if limit > 0 and candidate.credential_id not in tried and len(tried) >= limit:
                break
            tried.add(candidate.credential_id)
            try:
                await self._attempt(exchange, candidate)
            except UpstreamError as error:
                exchange.last_error = error
                exchange.attempts.append(
                    Attempt(candidate.credential_id, candidate.upstream_model, error.status, error.text[:200])
                )
                exchange.log.warning("upstream attempt failed", credential=candidate.credential_id,
                                     upstream_model=candidate.upstream_model, status=error.status)
                await exchange.aclose()
                if error.status not in RETRYABLE_STATUSES:
                    break
                continue
            exchange.chosen = candidate
            exchange.attempts.append(Attempt(candidate.credential_id, candidate.upstream_model, 200))
            return
        assert exchange.last_error is not None
        raise exchange.last_error

    async def _count(self, exchange: Exchange, candidate: Candidate) -> None:
        """A token count: the upstream's count endpoint where it has one, else a local estimate."""
        assert exchange.translation is not None
        provider = candidate.provider
        body = exchange.translation.request_for(provider.protocol, candidate.upstream_model)
        request = provider.count_request(candidate.route.credential, candidate.upstream_model, body,
                                         client_headers=exchange.request.headers)
        if request is None:
            fallback = "cl100k_base" if provider.kind == "codex" else "o200k_base"
            exchange.count_tokens = estimate_request_tokens(exchange.translation.canonical(), candidate.upstream_model,
                                                            fallback=fallback)
            return
        reply = await send(exchange.session, request, timeouts_of(exchange))
        exchange.upstream = reply
        try:
            raw = await reply.response.content.read(MAX_ERROR_BODY)
            answer = json.loads(raw)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise UpstreamError(502, f"upstream count answer unreadable: {exc}".encode()) from None
        exchange.count_body = raw
        exchange.count_tokens = provider.count_total(answer if isinstance(answer, dict) else {})

    async def _attempt(self, exchange: Exchange, candidate: Candidate) -> None:
        if exchange.count:
            await self._count(exchange, candidate)
            return
        assert exchange.translation is not None
        provider = candidate.provider
        body = exchange.translation.request_for(provider.protocol, candidate.upstream_model)
        request = provider.build_request(
            candidate.route.credential, candidate.upstream_model, body,
            stream=exchange.stream or provider.always_streams, client_headers=exchange.request.headers,
        )
        reply: UpstreamReply = await send(exchange.session, request, timeouts_of(exchange))
        exchange.upstream = reply
        if not exchange.stream:
            return
        events = iter_sse(reply.response.content.iter_any())
        try:
            first = await anext(events)
        except StopAsyncIteration:
            exchange.events = None
            return  # an empty stream: the rewrite stage writes the protocol's empty terminator
        except (aiohttp.ClientError, SSEError, TimeoutError) as exc:
            raise UpstreamError(502, f"upstream stream failed before the first event: {exc}".encode()) from None
        failure = _in_stream_error(first)
        if failure is not None:
            raise failure
        exchange.events = _prepend(first, events)
