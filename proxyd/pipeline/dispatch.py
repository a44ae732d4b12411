"""dispatch stage: try candidates in order until one answers; a stream counts once its first event arrived."""

from __future__ import annotations

import asyncio
import enum
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from proxyd.credentials.hints import error_summary, reset_hint
from proxyd.credentials.manager import ModelState
from proxyd.credentials.model import Credential, auth_index_of
from proxyd.credentials.scoped_errors import FORCED_COOLDOWN_SECONDS, cools, scoped_action, stops
from proxyd.http import trace_id
from proxyd.http.errors import ProxyError, UpstreamError
from proxyd.metrics import upstream_timer
from proxyd.pipeline.exchange import Attempt, Candidate, Exchange, Prefetched
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.sse import SSEError, SSEEvent, iter_sse
from proxyd.providers.base import (
    MAX_ERROR_BODY,
    MAX_UPSTREAM_BODY,
    Timeouts,
    UpstreamReply,
    read_capped,
    send,
    send_for,
    streams_upstream,
)
from proxyd.providers.codex_collab import MODEL_LISTS
from proxyd.providers.codex_session import ClientOrigin
from proxyd.thinking import ThinkingError, apply_thinking
from proxyd.tokens import estimate_request_tokens

# DECISIONS 16: these move on to the next credential; other 4xx fail at once. 0 = transport failure.
RETRYABLE_STATUSES = frozenset({0, 403, 408, 429, 500, 502, 503, 504})


def timeouts_of(exchange: Exchange) -> Timeouts:
    t = exchange.runtime.config.upstream_timeouts
    return Timeouts(connect=t.connect_seconds, first_byte=t.first_byte_seconds, idle=t.idle_seconds)


def _in_stream_error(event: SSEEvent) -> UpstreamError | None:
    """An OpenAI-style `{"error": ...}` sent as the first event of a 200 stream (no HTTP status of its own unless
    the error names one: like a transport failure it cools nothing down, and answers 500 if it is the last)."""
    if not event.data.startswith(b"{") or event.data[:64].find(b'"error"') < 0:
        return None
    try:
        data = json.loads(event.data)
    except ValueError:
        return None
    if not isinstance(data, dict) or "error" not in data or "choices" in data:
        return None
    err = data["error"]
    status = err.get("code") if isinstance(err, dict) else None
    return UpstreamError(status if isinstance(status, int) and 400 <= status < 600 else 0, event.data)


class _Cooling(Exception):
    """Every candidate is cooling down; `until` is the soonest recovery (epoch seconds)."""

    def __init__(self, until: float) -> None:
        super().__init__("all credentials cooling down")
        self.until = until


class _Pass(enum.Enum):
    """How one round over the candidates ended."""

    OK = "ok"
    FINAL = "final"  # a failure that must not be retried, or no usable credential left to retry with
    STOP = "stop"  # a `request-scoped-errors` rule says: answer this failure now (no retry of any kind)
    AGAIN = "again"  # every attempt failed retryably and a credential tried is still usable: another round


def _format_duration(seconds: float) -> str:
    """A Go-style duration (`1m30s`), as the reference's `reset_time`."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes or hours else "") + f"{secs}s"


def provider_label(credential: Credential) -> str:
    """The provider key the reference names in cooldown answers (`openai-compatible-<name>` for compat)."""
    if credential.kind.startswith("openai-compatibility"):
        return f"openai-compatible-{credential.provider}"
    return credential.provider


_PROVIDER_TITLES = {"claude": "Claude", "codex": "Codex", "gemini": "Gemini", "vertex": "Vertex"}


async def read_whole(exchange: Exchange, candidate: Candidate) -> bytes:
    """A non-streaming answer read whole. A body cut short fails the attempt with the reference's transport
    error (500 `unexpected EOF`, retried); an always-streaming upstream keeps what arrived, so the rewrite
    stage answers the reference's 408 for a stream that never completed."""
    assert exchange.upstream is not None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in exchange.upstream.response.content.iter_any():
            size += len(chunk)
            if size > MAX_UPSTREAM_BODY:
                raise UpstreamError(502, f"upstream body larger than {MAX_UPSTREAM_BODY} bytes".encode())
            chunks.append(chunk)
    except (aiohttp.ClientError, TimeoutError) as exc:
        exchange.log.warning("upstream body cut short", error=str(exc), received=size)
        if not candidate.provider.always_streams:
            raise UpstreamError(0, b"unexpected EOF") from None
    return b"".join(chunks)


class DispatchStage:
    """Sends the request over the candidates; cools failing credentials down and waits for them when allowed.

    One pass tries each usable credential once (skipping those cooling down for this model); a retryable
    failure before anything reached the client moves on (DECISIONS 16). After a failed pass, up to
    `request-retry` more passes run: at once while a credential tried is still usable (a transport failure or
    `disable-cooling` left it uncooled), or after waiting for the soonest cooling credential when it recovers
    within `max-retry-interval`. `streaming.bootstrap-retries` adds immediate extra passes for streams.
    """

    name = "dispatch"

    async def run(self, exchange: Exchange) -> None:
        if not exchange.candidates:
            raise ProxyError(500, "auth_not_found: no auth available", type="server_error",
                             code="internal_server_error")
        config = exchange.runtime.config
        manager = exchange.runtime.manager
        rounds = 0
        bootstrap = config.streaming.bootstrap_retries if exchange.stream else 0
        while True:
            try:
                outcome = await self._pass(exchange)
            except _Cooling as cooling:
                delay = cooling.until - manager.clock()
                if rounds < config.request_retry and delay <= config.max_retry_interval:
                    rounds += 1
                    exchange.log.info("all credentials cooling down; waiting", seconds=round(delay, 3))
                    await asyncio.sleep(max(0.0, delay))
                    continue
                if exchange.last_error is not None:
                    raise exchange.last_error from None  # the upstream's own error, not a proxy-made one
                raise self._cooldown_error(exchange) from None
            if outcome is _Pass.OK:
                return
            if outcome is _Pass.STOP:
                assert exchange.last_error is not None
                raise exchange.last_error
            if outcome is _Pass.AGAIN and rounds < config.request_retry:
                rounds += 1
                continue
            if bootstrap > 0 and exchange.last_error is not None and \
                    exchange.last_error.status in RETRYABLE_STATUSES:
                bootstrap -= 1
                continue
            assert exchange.last_error is not None
            raise exchange.last_error

    async def _pass(self, exchange: Exchange) -> _Pass:
        """One round over the candidates. Raises _Cooling when no candidate was usable, or when every attempt
        failed retryably and every candidate is now cooling down."""
        config = exchange.runtime.config
        manager = exchange.runtime.manager
        model = exchange.route_model
        limit = config.max_retry_credentials
        tried: dict[str, Credential] = {}
        # The fast lane's attempt (pipeline/fast_lane.py): it already checked, picked and acquired its candidate
        # and sent the request; the candidates before it were cooling down when it looked.
        pending, exchange.prefetched = exchange.prefetched, None
        for candidate in exchange.candidates:
            credential = candidate.route.credential
            prefetched = None
            if pending is not None:
                if candidate is not pending.candidate:
                    continue
                prefetched, pending = pending, None
            else:
                if candidate.credential_id not in tried:  # later pool members of a tried credential still run
                    if manager.blocked_until(credential, model) is not None:
                        continue
                    if limit > 0 and len(tried) >= limit:
                        break
                exchange.runtime.selector.picked(model, candidate.route)
                trace_id.note(exchange.request, auth_index_of(credential))
                manager.acquire(credential)
            tried[candidate.credential_id] = credential
            try:
                timer = upstream_timer(credential.provider)
                with timer:
                    if prefetched is not None:
                        timer.started = prefetched.started  # the attempt began in the lane
                        await self._attempt(exchange, candidate, prefetched)
                    else:
                        await self._attempt(exchange, candidate)  # subclasses override this form
            except UpstreamError as error:
                manager.release(credential)
                await exchange.aclose()
                action = scoped_action(credential.scoped_errors, error.status, error.text) \
                    if credential.scoped_errors else None
                self._record_failure(exchange, candidate, error, action)
                if stops(action):
                    return _Pass.STOP
                if action is None and error.status not in RETRYABLE_STATUSES:
                    return _Pass.FINAL
                continue
            except BaseException:
                manager.release(credential)
                raise
            exchange.held_credential = credential
            if exchange.upstream is not None:
                manager.observe_quota(credential, exchange.upstream.headers)
            if not exchange.count:
                manager.mark_success(credential, model)
            exchange.chosen = candidate
            exchange.attempts.append(Attempt(candidate.credential_id, candidate.upstream_model,
                                             candidate.provider.protocol, 200))
            return _Pass.OK
        if any(manager.blocked_until(c, model) is None for c in tried.values()):
            return _Pass.AGAIN
        recoveries = [until for c in exchange.candidates
                      if (until := manager.blocked_until(c.route.credential, model)) is not None]
        if len(recoveries) == len(exchange.candidates):
            raise _Cooling(min(recoveries))
        return _Pass.FINAL

    def _record_failure(self, exchange: Exchange, candidate: Candidate, error: UpstreamError,
                        action: str | None = None) -> None:
        """Note the failed attempt and cool its credential down, as a matching scoped rule (`action`) says."""
        config = exchange.runtime.config
        exchange.last_error = error
        exchange.capture.upstream_error(error.status, error.body, error.headers)
        exchange.attempts.append(
            Attempt(candidate.credential_id, candidate.upstream_model, candidate.provider.protocol, error.status,
                    error.text[:200])
        )
        exchange.runtime.manager.observe_quota(candidate.route.credential, error.headers)
        cooldown = 0.0
        forced = cools(action)
        # count failures do not cool credentials down (routing.md §4.2); a plain `stop`/`continue` rule neither
        if not exchange.count and (action is None or forced):
            cooldown = exchange.runtime.manager.mark_failure(
                candidate.route.credential, exchange.route_model, error.status, error.text,
                hint=reset_hint(error.headers, error.body) if error.status in (429, 503) else None,
                disable_cooling=config.disable_cooling and not forced, max_cooldown=config.max_cooldown_seconds,
                force_cooldown=FORCED_COOLDOWN_SECONDS if forced else 0.0,
            )
        exchange.log.warning("upstream attempt failed", credential=candidate.credential_id,
                             upstream_model=candidate.upstream_model, status=error.status,
                             cooldown_seconds=round(cooldown, 3))

    @staticmethod
    def _cooldown_error(exchange: Exchange) -> ProxyError:
        """Every credential was cooling down before this request could try one (the reference's answers):
        all blocked by quota → 429 `model_cooldown`; otherwise → 503 `auth_unavailable`. Both quote the last
        upstream error that cooled a credential down."""
        manager = exchange.runtime.manager
        model = exchange.route_model or exchange.model
        blocked: list[tuple[Credential, ModelState]] = []
        for candidate in exchange.candidates:
            credential = candidate.route.credential
            state = manager.blocking_state(credential, model)
            if state is not None:
                blocked.append((credential, state))
        now = manager.clock()
        until = min((state.blocked_until for _, state in blocked), default=now + 1)
        seconds = max(1, math.ceil(until - now))
        last = max(blocked, key=lambda pair: pair[1].failed_at, default=None)
        last_error = error_summary(last[1].last_error) if last is not None and last[1].last_error else ""
        providers = sorted({provider_label(c.route.credential) for c in exchange.candidates})
        if blocked and all(state.quota for _, state in blocked):
            via = f" via provider {providers[0]}" if len(providers) == 1 else ""
            message = f"All credentials for model {model} are cooling down{via}"
            if last_error:
                message += f" (last error: {last_error})"
            details: dict[str, Any] = {"model": model, "reset_seconds": seconds,
                                       "reset_time": _format_duration(seconds)}
            if len(providers) == 1:
                details["provider"] = providers[0]
            if last_error:
                details["last_upstream_error"] = last_error
            return ProxyError(429, message, type="rate_limit_error", code="model_cooldown",
                              headers={"Retry-After": str(seconds)}, details=details)
        first = exchange.candidates[0].route.credential.provider
        title = _PROVIDER_TITLES.get(first, first)
        cause = f"; last upstream error: {last_error}" if last_error else ""
        message = (f"auth_unavailable: no auth available (providers={','.join(providers)}, model={model}{cause}); "
                   f"check {title} auth/key session and cooldown state via /v0/management/auth-files")
        return ProxyError(503, message, type="server_error", code="internal_server_error",
                          headers={"Retry-After": str(seconds)})

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
            exchange.count_tokens = estimate_request_tokens(
                exchange.translation.canonical(), candidate.upstream_model, fallback=fallback,
                roles=provider.protocol is WireProtocol.OPENAI_CHAT)
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

    async def _attempt(self, exchange: Exchange, candidate: Candidate, prefetched: Prefetched | None = None) -> None:
        if prefetched is not None:
            # sent by the fast lane: its failure, or a stream reply whose first event is this stage's to judge
            if prefetched.error is not None:
                raise prefetched.error
            assert prefetched.chunks is not None
            await self._first_event(exchange, prefetched.chunks)
            return
        if exchange.count:
            await self._count(exchange, candidate)
            return
        assert exchange.translation is not None
        provider = candidate.provider
        body = self._with_thinking(exchange, candidate,
                                   exchange.translation.request_for(provider.protocol, candidate.upstream_model))
        # Codex derives its prompt-cache / session id from the client's own request (providers/codex_session.py).
        registry = exchange.runtime.registry
        origin = ({"origin": ClientOrigin(exchange.protocol, exchange.translation.body, exchange.client_key,
                                          model_overrides=lambda: MODEL_LISTS.text_for(registry),
                                          connection_session=exchange.connection_session)}
                  if provider.kind == "codex" else {})
        request = provider.build_request(
            candidate.route.credential, candidate.upstream_model, body,
            stream=exchange.stream or streams_upstream(provider, exchange.protocol),
            client_headers=exchange.request.headers, **origin,
        )
        capture = exchange.capture
        capture.upstream_request(request.method, request.url, request.headers, request.body,
                                 candidate.route.credential)
        reply: UpstreamReply = await send_for(provider, exchange.session, request, timeouts_of(exchange))
        exchange.upstream = reply
        capture.upstream_response(reply.status, reply.headers)
        if not exchange.stream:
            # Read the whole answer here, so a body cut short counts as this attempt's failure (and is retried).
            exchange.upstream_body = await read_whole(exchange, candidate)
            capture.upstream_body(exchange.upstream_body)
            return
        await self._first_event(exchange, reply.response.content.iter_any())

    @staticmethod
    async def _first_event(exchange: Exchange, chunks: AsyncIterator[bytes]) -> None:
        """A stream attempt counts once its first event arrived (and is not an in-band error)."""
        capture = exchange.capture
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
