"""The shared entry point of every proxied endpoint: build an Exchange and run the pipeline."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from proxyd.http.request_id import request_id_of
from proxyd.keys import CLIENT_SESSION, PIPELINE, RUNTIME
from proxyd.logs import begin_capture
from proxyd.pipeline.exchange import Exchange
from proxyd.protocols.base import WireProtocol


def new_exchange(request: web.Request, protocol: WireProtocol, *, path_model: str | None = None,
                 stream: bool | None = None, count: bool = False, body: dict[str, Any] | None = None,
                 request_id: str | None = None, lane: bool = False) -> Exchange:
    """The Exchange of one proxied request; the runtime snapshot is fixed for the whole request.

    `body` gives the JSON body directly (WebSocket turns, v1internal envelopes); otherwise the HTTP body is read
    when a stage asks for it. `lane`: the fast lane may serve it, and makes its request-log capture if needed.
    """
    app = request.app
    rid = request_id if request_id is not None else request_id_of(request)
    exchange = Exchange(
        request=request,
        protocol=protocol,
        runtime=app[RUNTIME].current,
        session=app[CLIENT_SESSION],
        request_id=rid,
        path_model=path_model,
        body=body,
    )
    exchange.log_context.update(request_id=rid, protocol=str(protocol))
    if lane:
        exchange.lane = True
    else:
        exchange.capture = begin_capture(request, rid)
    exchange.forced_stream = stream
    exchange.count = count
    return exchange


async def run_pipeline(request: web.Request, protocol: WireProtocol, *, path_model: str | None = None,
                       stream: bool | None = None, count: bool = False) -> web.StreamResponse:
    """Run the app's pipeline for one request (through its fast lane when the lane takes this kind of request)."""
    pipeline = request.app[PIPELINE]
    lane = pipeline.lane is not None and pipeline.lane.takes(protocol, path_model, stream, count)
    exchange = new_exchange(request, protocol, path_model=path_model, stream=stream, count=count, lane=lane)
    return await pipeline.run(exchange)
