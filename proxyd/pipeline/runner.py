"""The pipeline: the ordered stage list (the one place to add or replace a stage) and its runner."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from aiohttp import web

from proxyd.http import access_log
from proxyd.http.errors import ProxyError, UpstreamError
from proxyd.pipeline import keepalive
from proxyd.pipeline.auth import AuthStage
from proxyd.pipeline.dispatch import DispatchStage
from proxyd.pipeline.exchange import Exchange, error_family_of
from proxyd.pipeline.fast_lane import FastLane
from proxyd.pipeline.model_route import ModelRouteStage
from proxyd.pipeline.record import RequestRecord, record_of
from proxyd.pipeline.stage import Stage
from proxyd.pipeline.stream_rewrite import StreamRewriteStage
from proxyd.pipeline.translate import TranslateStage

log = structlog.get_logger(__name__)


def default_stages() -> list[Stage]:
    """auth → model-route → translate → dispatch → stream-rewrite."""
    return [AuthStage(), ModelRouteStage(), TranslateStage(), DispatchStage(), StreamRewriteStage()]


Observer = Callable[[RequestRecord], None]


class Pipeline:
    """Runs stages in order over one Exchange and always releases its upstream connection.

    `observers` are told about every finished request (a RequestRecord: usage, status, latency); they run
    after the answer is written, must be quick and never raise into the request (errors are logged).
    """

    def __init__(self, stages: Sequence[Stage] | None = None) -> None:
        self.stages: list[Stage] = list(stages) if stages is not None else default_stages()
        self.observers: list[Observer] = []
        # The fast lane specialises the default stages (pipeline/fast_lane.py): a custom stage list has none.
        self.lane: FastLane | None = FastLane() if stages is None else None

    def replace(self, name: str, stage: Stage) -> None:
        """Swap the stage called `name` (tests and extensions use this)."""
        for index, existing in enumerate(self.stages):
            if existing.name == name:
                self.stages[index] = stage
                self.lane = None  # the lane does the default stages' work: it must not bypass a replaced one
                return
        raise KeyError(name)

    async def run(self, exchange: Exchange) -> web.StreamResponse:
        status = 500
        try:
            interval = exchange.runtime.config.nonstream_keepalive_interval
            if interval > 0 and keepalive.applies(exchange):
                response = await keepalive.with_keepalive(exchange, self._answer(exchange), float(interval))
            else:
                response = await self._answer(exchange)
            status = response.status
            return response
        except ProxyError as error:
            status = error.status
            exchange.capture.finish(error.status, json.dumps(error.body(exchange.error_family)))
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away
            raise
        finally:
            await exchange.aclose()
            _access_fields(exchange)
            self._notify(exchange, status)
            exchange.capture.finish(status)  # a second call does nothing

    async def _answer(self, exchange: Exchange) -> web.StreamResponse:
        try:
            stages = self.stages
            if exchange.lane and self.lane is not None:
                outcome = await self.lane.answer(exchange)
                if not isinstance(outcome, str):
                    return outcome
                stages = stages[self._index(outcome):]  # handed over: the stages from `outcome` on
            for stage in stages:
                await stage.run(exchange)
        except UpstreamError as error:
            if exchange.response is not None and exchange.response.prepared:
                raise
            response = self._upstream_error_response(exchange, error)
            exchange.capture.client_response(response.status, response.headers)
            if isinstance(response, web.Response) and isinstance(response.body, bytes):
                exchange.capture.client_body(response.body)
            return response
        if exchange.response is None:
            raise RuntimeError("pipeline finished without a response")
        return exchange.response

    def _index(self, name: str) -> int:
        for index, stage in enumerate(self.stages):
            if stage.name == name:
                return index
        raise KeyError(name)

    def _notify(self, exchange: Exchange, status: int) -> None:
        if not self.observers or exchange.model == "":
            return
        record = record_of(exchange, status)
        for observer in self.observers:
            try:
                observer(record)
            except Exception:
                log.exception("request observer failed", observer=getattr(observer, "__qualname__", "?"))

    @staticmethod
    def _upstream_error_response(exchange: Exchange, error: UpstreamError) -> web.StreamResponse:
        """Same error envelope as the client's: the upstream body as is; otherwise re-shaped (DECISIONS 2)."""
        exchange.log.info("request failed upstream", status=error.status, attempts=len(exchange.attempts))
        failed = exchange.failed_protocol()
        if failed is not None and error_family_of(failed) is exchange.error_family:
            return error.passthrough_response(exchange.error_family)
        return error.to_proxy_error().response(exchange.error_family)


def _access_fields(exchange: Exchange) -> None:
    """Hand the model, provider and credential to the request's access line (proxyd/http/access_log.py)."""
    if not exchange.model:
        return
    fields: dict[str, Any] = {"model": exchange.model}
    chosen = exchange.chosen
    if chosen is not None:
        fields["provider"] = chosen.route.credential.provider
        fields["credential"] = chosen.credential_id
    with contextlib.suppress(Exception):  # a WebSocket turn's request may be shared; never fail the answer
        exchange.request[access_log.FIELDS] = fields
