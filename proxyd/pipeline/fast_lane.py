"""The fast lane: the default stages specialised for same-protocol passthrough, with the same observable effects.

It serves an OpenAI Chat Completions client whose model routes only to OpenAI-compatible credentials (one
upstream name each), with no thinking to apply, and `request-log` off. It does the five stages' work in one
function, without what only other traffic needs: no Translation, no candidate list, no rewriter object, no
request-log capture (made only if the request ends in a way that writes one), and a stream relayed chunk by
chunk without parsing its events.

Everything with effects goes through the same code as the stages: `authenticate`, the body reader, the
selector, the credential manager, `trace_id.note`, the provider's `build_request`, `send_for`, the upstream
metrics, `rename_model`, the usage tap, `passthrough_headers`; the runner then writes the same request record,
access-line fields and capture. Anything unusual hands the Exchange back to the stages, at the point reached:

- not eligible (a thinking suffix, `reasoning_effort`, another kind of credential, an alias pool, a
  `request-log` or stream keep-alive setting…): before anything was decided, from `model-route` on;
- every credential cooling down, or the lane's attempt failed before anything reached the client (an error
  status, a transport error, a body cut short, a stream whose first bytes are not plain `data:` events): from
  `translate` on, with the attempt in `exchange.prefetched`, so the dispatch stage goes on with its retries,
  cooldowns and failover as if it had made that attempt itself (the request is never sent twice).

Once a stream's answer has started, bytes that stop being the plain shape (`data: <one line>` events, LF line
ends, no in-band error) are handed to the stream-rewrite stage's own relay loop, with what was held back.
"""

from __future__ import annotations

import functools
import json
import operator
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from proxyd.credentials.model import auth_index_of
from proxyd.http import trace_id
from proxyd.http.errors import UpstreamError
from proxyd.http.streaming import HeldHeadersResponse
from proxyd.metrics import record_upstream
from proxyd.models.registry import Route
from proxyd.pipeline.auth import authenticate
from proxyd.pipeline.dispatch import read_whole
from proxyd.pipeline.exchange import Attempt, Candidate, Exchange, Prefetched
from proxyd.pipeline.model_route import requested_model
from proxyd.pipeline.stream_rewrite import SSE_HEADERS, passthrough_headers, relay_events
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.registry import codec_for
from proxyd.protocols.rewrite import DONE_FRAME, MODEL_FIELD, SSEPassthrough, rename_model
from proxyd.protocols.sse import iter_sse
from proxyd.protocols.usage import UsageTap
from proxyd.providers.base import Provider, Timeouts, UpstreamRequest, send_for
from proxyd.providers.registry import provider_for
from proxyd.thinking import split_model_suffix

CHAT = WireProtocol.OPENAI_CHAT
COMPAT = "openai-compatibility"
AUTH, MODEL_ROUTE, TRANSLATE = "auth", "model-route", "translate"  # where the stages take over
_MAX_PLANS = 4096
_MAX_HELD = 64 * 1024  # bytes of an unfinished event held back before the stage's parser takes over
_DONE_EVENT = b"data: [DONE]\n\n"
_COUNT_MODEL = operator.methodcaller("count", b'"model"')


class _Plan:
    """How the lane serves one requested model id (made once per runtime snapshot and id)."""

    __slots__ = ("model_field", "model_json", "provider", "rename", "routes", "timeouts")

    def __init__(self, routes: list[Route], provider: Provider, model_json: bytes, timeouts: Timeouts) -> None:
        self.routes = routes
        self.provider = provider
        self.model_json = model_json
        self.model_field = b'"model":' + model_json
        self.rename = functools.partial(MODEL_FIELD.sub, self.model_field, count=1)  # rename_model of one event
        self.timeouts = timeouts


def _plan_for(runtime: Any, model: str) -> _Plan | None:
    """The lane's plan for `model`, or None when the stages must route it (what model-route would do differs
    from a plain look-up: a thinking suffix, `auto`; or a credential the lane does not call)."""
    base, suffix = split_model_suffix(model)
    if suffix is not None or base == "auto":
        return None
    routes = runtime.registry.routes(model)
    if not routes:
        return None
    for route in routes:
        if route.credential.kind != COMPAT or len(route.upstream_models) != 1:
            return None  # another provider, or an alias pool (its rotation is the stages' to do)
    provider = provider_for(COMPAT)
    if provider.protocol is not CHAT or provider.always_streams:
        return None
    model_json = json.dumps(model).encode()
    if model_json.find(b"\\") >= 0:
        return None  # rename_model's replacement is a template: keep escapes to the general path
    t = runtime.config.upstream_timeouts
    return _Plan(routes, provider, model_json,
                 Timeouts(connect=t.connect_seconds, first_byte=t.first_byte_seconds, idle=t.idle_seconds))


def _plain_events(region: bytes) -> bool:
    """`region` (complete events) is only `data: <line>` events with LF line ends: the stage's parser and
    framing would give back the same bytes."""
    if region.find(b"\r") >= 0 or region[:6] != b"data: ":
        return False
    events = region.count(b"\n\n")
    return region.count(b"\n") == 2 * events and region.count(b"\n\ndata: ") == events - 1


def _renamed(region: bytes, plan: _Plan) -> bytes:
    """`rename_model` applied to each event of a region of plain events, as the stage's rewriter does one by
    one: when every event has one `"model"` key and the same field, one replacement does it for all of them."""
    lines = region.split(b"\n\n")  # the last one is the b"" after the final blank line
    events = len(lines) - 1
    if events == 1:
        return plan.rename(region)
    found = MODEL_FIELD.search(region)
    if found is not None:
        field = found.group(0)
        if region.count(field) == events and list(map(_COUNT_MODEL, lines)).count(1) == events:
            return region.replace(field, plan.model_field)
    return b"\n\n".join(map(plan.rename, lines))


async def _replay(head: bytes, rest: AsyncIterator[bytes] | None, failure: BaseException | None = None
                  ) -> AsyncIterator[bytes]:
    """The bytes the lane read, then the rest of the body (or the failure the lane met reading it)."""
    if head:
        yield head
    if failure is not None:
        raise failure
    if rest is not None:
        async for chunk in rest:
            yield chunk


class FastLane:
    """The lane of the default pipeline. `served` counts the requests it answered, `handed_over` those it gave
    back to the stages (tests, diagnostics)."""

    def __init__(self) -> None:
        self._runtime: Any = None
        self._plans: dict[str, _Plan | None] = {}
        self.served = 0
        self.handed_over = 0

    @staticmethod
    def takes(protocol: WireProtocol, path_model: str | None, stream: bool | None, count: bool) -> bool:
        """Whether a request of this kind may be the lane's (the body decides the rest)."""
        return protocol is CHAT and path_model is None and stream is None and not count

    def _plan(self, runtime: Any, model: str) -> _Plan | None:
        if runtime is not self._runtime:  # a reload: plans are per snapshot
            self._runtime, self._plans = runtime, {}
        try:
            return self._plans[model]
        except KeyError:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            plan = self._plans[model] = _plan_for(runtime, model)
            return plan

    async def answer(self, exchange: Exchange) -> web.StreamResponse | str:
        """The answer, or the name of the stage the pipeline goes on with (the Exchange holds what was done)."""
        run = _Run(exchange)
        try:
            outcome = await run.serve(self)
        except BaseException:
            if exchange.chosen is not None:
                self.served += 1  # answered by the lane, then broken off (the client went away)
            run.materialise()  # a failure answered by the runner or the edge: its error log, as the stages'
            raise
        if isinstance(outcome, str):
            self.handed_over += 1
            run.materialise()
        else:
            self.served += 1
        return outcome


class _Run:
    """One request in the lane: what it did so far, so a hand-over or a failure gets the capture the stages
    would have filled (client request and body, the upstream call, the answer's status and headers)."""

    __slots__ = ("at", "exchange", "sent", "sent_at")

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.at = time.time()
        self.sent: tuple[UpstreamRequest, Any] | None = None
        self.sent_at = 0.0

    def materialise(self) -> None:
        """The request-log capture the stages would hold now (recorded in their order, with their times)."""
        exchange = self.exchange
        if not exchange.lane:
            return
        exchange.lane = False
        from proxyd.logs import NULL_CAPTURE, begin_capture  # late: proxyd.logs needs the app keys (the runner)

        capture = exchange.capture = begin_capture(exchange.request, exchange.request_id)  # with the client request
        if capture is NULL_CAPTURE:
            return
        capture.started = self.at
        raw = exchange._raw_body
        if raw is not None:
            capture.request_body(raw)
        if self.sent is not None:
            request, credential = self.sent
            capture.upstream_request(request.method, request.url, request.headers, request.body, credential)
            if capture.upstream_requests:
                capture.upstream_requests[-1].timestamp = self.sent_at
        reply = exchange.upstream
        if reply is not None:
            capture.upstream_response(reply.status, reply.headers)
        response = exchange.response
        if response is not None and response.prepared:
            capture.client_response(response.status, response.headers)

    async def serve(self, lane: FastLane) -> web.StreamResponse | str:
        exchange = self.exchange
        runtime = exchange.runtime
        config = runtime.config
        if config.request_log:
            return AUTH  # every section is captured: the stages' work from the start
        # auth
        exchange.client_key = authenticate(exchange.request, runtime.api_keys)
        # model-route
        body = await exchange.json_body()
        model = requested_model(exchange, body)
        plan = lane._plan(runtime, model)
        if plan is None or "reasoning_effort" in body:
            return MODEL_ROUTE
        stream = body.get("stream") is True
        if stream and config.streaming.keepalive_seconds > 0:
            return MODEL_ROUTE
        exchange.model = exchange.route_model = model
        exchange.stream = stream
        ordered = runtime.selector.order(model, plan.routes)
        exchange.bind_log(model=model, stream=stream)
        # dispatch: the first candidate not cooling down
        manager = runtime.manager
        for route in ordered:
            if manager.blocked_until(route.credential, model) is None:
                break
        else:
            return self._hand_over(plan, ordered, None)  # none usable (or none at all): the stage answers
        credential = route.credential
        provider = plan.provider
        candidate = Candidate(route=route, upstream_model=route.upstream_models[0], provider=provider)
        runtime.selector.picked(model, route)
        trace_id.note(exchange.request, auth_index_of(credential))
        manager.acquire(credential)
        started = time.monotonic()
        try:
            request = provider.build_request(credential, candidate.upstream_model, body, stream=stream,
                                             client_headers=exchange.request.headers)
            self.sent, self.sent_at = (request, credential), time.time()
            try:
                reply = await send_for(provider, exchange.session, request, plan.timeouts)
            except UpstreamError as error:
                exchange.prefetched = Prefetched(candidate, started, error=error)
                return self._hand_over(plan, ordered, candidate)
            exchange.upstream = reply
            if not stream:
                try:
                    raw = await read_whole(exchange, candidate)
                except UpstreamError as error:
                    exchange.prefetched = Prefetched(candidate, started, error=error)
                    return self._hand_over(plan, ordered, candidate)
                self._succeeded(candidate, started)
                return self._whole(plan, raw)
            chunks = reply.response.content.iter_any()
            held = b""
            try:
                while True:
                    held += await anext(chunks)
                    end = held.rfind(b"\n\n") + 2
                    if end > 1 or len(held) > _MAX_HELD:
                        break
            except StopAsyncIteration:
                end = 0
                chunks = None  # type: ignore[assignment]
            except Exception as exc:  # the stage words it (502 before the first event)
                exchange.prefetched = Prefetched(candidate, started, chunks=_replay(held, None, exc))
                return self._hand_over(plan, ordered, candidate)
            first = held[:end]
            if end < 2 or not _plain_events(first) or first.find(b'"error"') >= 0:
                # an empty stream, an in-band error, another framing: the stage judges the first event
                exchange.prefetched = Prefetched(candidate, started, chunks=_replay(held, chunks))
                return self._hand_over(plan, ordered, candidate)
        except BaseException as exc:
            if exchange.prefetched is None and exchange.held_credential is None:
                manager.release(credential)
                if isinstance(exc, Exception):  # as the stage's upstream timer counts a failed attempt
                    status = getattr(exc, "status", 0)
                    record_upstream(credential.provider, status if isinstance(status, int) else 0,
                                    time.monotonic() - started)
            raise
        self._succeeded(candidate, started)
        return await self._stream(plan, first, held[end:], chunks)

    def _hand_over(self, plan: _Plan, ordered: list[Route], tried: Candidate | None) -> str:
        """The candidate list the model-route stage would have made; the stages go on from `translate`."""
        provider = plan.provider
        self.exchange.candidates = [
            tried if tried is not None and route is tried.route
            else Candidate(route=route, upstream_model=route.upstream_models[0], provider=provider)
            for route in ordered
        ]
        return TRANSLATE

    def _succeeded(self, candidate: Candidate, started: float) -> None:
        """What the dispatch stage does when an attempt answered."""
        exchange = self.exchange
        credential = candidate.route.credential
        record_upstream(credential.provider, 200, time.monotonic() - started)
        manager = exchange.runtime.manager
        exchange.held_credential = credential
        manager.observe_quota(credential, exchange.upstream.headers)  # type: ignore[union-attr]
        manager.mark_success(credential, exchange.route_model)
        exchange.chosen = candidate
        exchange.attempts.append(Attempt(candidate.credential_id, candidate.upstream_model, CHAT, 200))

    def _whole(self, plan: _Plan, raw: bytes) -> web.Response:
        """What the stream-rewrite stage answers for a passthrough body."""
        exchange = self.exchange
        tap = UsageTap(CHAT)
        tap.feed(raw)
        exchange.usage = tap.usage
        response = web.Response(status=200, body=rename_model(raw, plan.model_json), content_type="application/json",
                                headers=passthrough_headers(exchange, {"Content-Type": ""}))
        exchange.response = response
        return response

    async def _stream(self, plan: _Plan, first: bytes, held: bytes, chunks: AsyncIterator[bytes] | None
                      ) -> web.StreamResponse:
        """The stream-rewrite stage's relay, by whole upstream chunks: each chunk's complete events are
        written as they came (the model renamed, `[DONE]` kept for the end, usage tapped where it appears)."""
        exchange = self.exchange
        response = HeldHeadersResponse(status=200,
                                       headers={**passthrough_headers(exchange, SSE_HEADERS), **SSE_HEADERS})
        await response.prepare(exchange.request)
        exchange.response = response
        tap = UsageTap(CHAT)
        write = response.write
        region, started = first, False  # started: the first region was relayed (as the stage's `first`)
        try:
            while True:
                if region.find(b'"error"') >= 0:
                    break  # an in-band error ends a chat relay: the stage's rewriter knows how
                if region.find(b"[DONE]") >= 0:
                    if region.count(b"[DONE]") != 1 or not (
                            region == _DONE_EVENT or region.endswith(b"\n\n" + _DONE_EVENT)):
                        break
                    region = region[:-len(_DONE_EVENT)]  # written once, at the clean end
                if region.find(b'"usage') >= 0:
                    for line in region.split(b"\n\n"):
                        if line.find(b'"usage') >= 0:
                            tap.feed(line[6:])
                if region:
                    await write(_renamed(region, plan))
                elif not started:
                    await response.send_headers()  # as the stage: the headers once the first event is in
                region, started = b"", True
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    chunks = None
                    if held:
                        break  # a last event without its blank line: the parser's close() takes it
                    await response.write_eof(DONE_FRAME)  # with the chunked terminator, as the stage
                    return response
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    chunks = _replay(b"", None, exc)  # the stage's relay writes the error frame
                    break
                held = held + chunk if held else chunk
                end = held.rfind(b"\n\n") + 2
                if end < 2:
                    if len(held) > _MAX_HELD:
                        break
                    continue
                region, held = held[:end], held[end:]
                if not _plain_events(region):
                    break
            # The rest through the stage's parser and rewriter, from the bytes not yet written.
            rewriter = SSEPassthrough(CHAT, exchange.model, codec_for(CHAT), tap=tap)
            events = exchange.events = iter_sse(_replay(region + held, chunks))
            await relay_events(exchange, response, rewriter, events, write, response.write_eof,
                               first=not started)
            return response
        finally:
            exchange.usage = tap.usage
