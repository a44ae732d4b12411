"""dispatch stage: try candidates in order until one answers; a stream counts once its first event arrived."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import aiohttp

from proxyd.credentials.hints import reset_hint
from proxyd.http.errors import ProxyError, UpstreamError
from proxyd.metrics import upstream_timer
from proxyd.pipeline.exchange import Attempt, Candidate, Exchange
from proxyd.protocols.sse import SSEError, SSEEvent, iter_sse
from proxyd.providers.base import MAX_ERROR_BODY, MAX_UPSTREAM_BODY, Timeouts, UpstreamReply, read_capped, send
from proxyd.thinking import ThinkingError, apply_thinking
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


class _Cooling(Exception):
    """Every candidate is cooling down; `until` is the soonest recovery (epoch seconds)."""

    def __init__(self, until: float) -> None:
        super().__init__("all credentials cooling down")
        self.until = until


def _format_duration(seconds: float) -> str:
    """A Go-style duration (`1m30s`), as the reference's `reset_time`."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes or hours else "") + f"{secs}s"


class DispatchStage:
    """Sends the request over the candidates; cools failing credentials down and waits for them when allowed.

    One pass tries each usable credential once (skipping those cooling down for this model); a retryable
    failure before anything reached the client moves on (DECISIONS 16). After a failed pass, when the soonest
    cooling credential recovers within `max-retry-interval`, the stage waits and runs another pass, up to
    `request-retry` times. `streaming.bootstrap-retries` adds immediate extra passes for streams.
    """

    name = "dispatch"

    async def run(self, exchange: Exchange) -> None:
        if not exchange.candidates:
            raise ProxyError(500, "auth_not_found: no auth available", type="server_error",
                             code="internal_server_error")
        config = exchange.runtime.config
        manager = exchange.runtime.manager
        waits = 0
        bootstrap = config.streaming.bootstrap_retries if exchange.stream else 0
        while True:
            try:
                if await self._pass(exchange):
                    return
            except _Cooling as cooling:
                delay = cooling.until - manager.clock()
                if waits < config.request_retry and delay <= config.max_retry_interval:
                    waits += 1
                    exchange.log.info("all credentials cooling down; waiting", seconds=round(delay, 3))
                    await asyncio.sleep(max(0.0, delay))
                    continue
                if exchange.last_error is not None:
                    raise exchange.last_error from None  # the upstream's own error, not a proxy-made 429
                raise self._cooldown_error(exchange, delay) from None
            if bootstrap > 0 and exchange.last_error is not None and \
                    exchange.last_error.status in RETRYABLE_STATUSES:
                bootstrap -= 1
                continue
            assert exchange.last_error is not None
            raise exchange.last_error

    async def _pass(self, exchange: Exchange) -> bool:
        """One round over the candidates: True on success; False after a final failure; _Cooling when no
        candidate was usable, or every attempt failed retryably and some credential is cooling down."""
        config = exchange.runtime.config
        manager = exchange.runtime.manager
        model = exchange.route_model
        limit = config.max_retry_credentials
        tried: set[str] = set()
        cooling: list[float] = []  # when each credential skipped or just cooled down recovers
        for candidate in exchange.candidates:
            credential = candidate.route.credential
            if candidate.credential_id not in tried:  # later pool members of a tried credential still run
                until = manager.blocked_until(credential, model)
                if until is not None:
                    cooling.append(until)
                    continue
                if limit > 0 and len(tried) >= limit:
                    break
            tried.add(candidate.credential_id)
            manager.acquire(credential)
            try:
                with upstream_timer(credential.provider):
                    await self._attempt(exchange, candidate)
            except UpstreamError as error:
                manager.release(credential)
                await exchange.aclose()
                self._record_failure(exchange, candidate, error)
                if error.status not in RETRYABLE_STATUSES:
                    return False
                until = manager.blocked_until(credential, model)
                if until is not None:
                    cooling.append(until)
                continue
            except BaseException:
                manager.release(credential)
                raise
            exchange.held_credential = credential
            if not exchange.count:
                manager.mark_success(credential, model)
            exchange.chosen = candidate
            exchange.attempts.append(Attempt(candidate.credential_id, candidate.upstream_model,
                                             candidate.provider.protocol, 200))
            return True
        if cooling:
            raise _Cooling(min(cooling))
        return False

    def _record_failure(self, exchange: Exchange, candidate: Candidate, error: UpstreamError) -> None:
        config = exchange.runtime.config
        exchange.last_error = error
        exchange.capture.upstream_error(error.status, error.body)
        exchange.attempts.append(
            Attempt(candidate.credential_id, candidate.upstream_model, candidate.provider.protocol, error.status,
                    error.text[:200])
        )
        cooldown = 0.0
        if not exchange.count:  # count failures do not cool credentials down (routing.md §4.2)
            cooldown = exchange.runtime.manager.mark_failure(
                candidate.route.credential, exchange.route_model, error.status, error.text,
                hint=reset_hint(error.headers, error.body) if error.status in (429, 503) else None,
                disable_cooling=config.disable_cooling, max_cooldown=config.max_cooldown_seconds,
            )
        exchange.log.warning("upstream attempt failed", credential=candidate.credential_id,
                             upstream_model=candidate.upstream_model, status=error.status,
                             cooldown_seconds=round(cooldown, 3))

    @staticmethod
    def _cooldown_error(exchange: Exchange, delay: float) -> ProxyError:
        providers = {c.route.credential.provider for c in exchange.candidates}
        seconds = max(1, math.ceil(delay))
        via = f" via provider {next(iter(providers))}" if len(providers) == 1 else ""
        return ProxyError(
            429, f"All credentials for model {exchange.model} are cooling down{via}; retry in "
                 f"{_format_duration(seconds)}",
            type="rate_limit_error", code="model_cooldown", headers={"Retry-After": str(seconds)},
        )

    @staticmethod
    def _with_thinking(exchange: Exchange, candidate: Candidate, body: dict[str, Any]) -> dict[str, Any]:
        """Thinking from the model suffix or the body, validated and written in the upstream's fields."""
        mapping = candidate.route.mapping_for(candidate.upstream_model)
        try:
            return apply_thinking(
                body, upstream_format=str(candidate.provider.protocol), model=candidate.upstream_model,
                model_info=mapping.info if mapping else None, suffix=exchange.thinking_suffix,
                client_format=str(exchange.protocol), user_defined=mapping.user_defined if mapping else True,
            )
        except ThinkingError as exc:
            raise ProxyError(400, exc.message, type="invalid_request_error") from None

    async def _count(self, exchange: Exchange, candidate: Candidate) -> None:
        """A token count: the upstream's count endpoint where it has one, else a local estimate."""
        assert exchange.translation is not None
        provider = candidate.provider
        body = exchange.translation.request_for(provider.protocol, candidate.upstream_model)
        request = provider.count_request(candidate.route.credential, candidate.upstream_model, body,
                                         client_headers=exchange.request.headers)
        if request is not None:
            exchange.capture.upstream_request(request.method, request.url, request.headers, request.body,
                                              candidate.route.credential)
        if request is None:
            fallback = "cl100k_base" if provider.kind == "codex" else "o200k_base"
            exchange.count_tokens = estimate_request_tokens(exchange.translation.canonical(), candidate.upstream_model,
                                                            fallback=fallback)
            return
        reply = await send(exchange.session, request, timeouts_of(exchange))
        exchange.upstream = reply
        exchange.capture.upstream_response(reply.status, reply.headers)
        try:
            raw = await read_capped(reply.response, MAX_ERROR_BODY)
            exchange.capture.upstream_body(raw)
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
        body = self._with_thinking(exchange, candidate,
                                   exchange.translation.request_for(provider.protocol, candidate.upstream_model))
        request = provider.build_request(
            candidate.route.credential, candidate.upstream_model, body,
            stream=exchange.stream or provider.always_streams, client_headers=exchange.request.headers,
        )
        capture = exchange.capture
        capture.upstream_request(request.method, request.url, request.headers, request.body,
                                 candidate.route.credential)
        reply: UpstreamReply = await send(exchange.session, request, timeouts_of(exchange))
        exchange.upstream = reply
        capture.upstream_response(reply.status, reply.headers)
        if not exchange.stream:
            # Read the whole answer here, so a body cut short counts as this attempt's failure (and is retried).
            try:
                exchange.upstream_body = await read_capped(reply.response, MAX_UPSTREAM_BODY)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise UpstreamError(0, f"upstream body read failed: {exc}".encode()) from None
            capture.upstream_body(exchange.upstream_body)
            return
        chunks = reply.response.content.iter_any()
        events = iter_sse(capture.tee(chunks) if capture.full else chunks)
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
        events.push_back(first)
        exchange.events = events
