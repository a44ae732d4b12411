"""Request metrics: count and time every request by route template and status; track in-flight streams.

The route label is the matched resource's template (``/v1beta/models/{model}``), never the raw path, so the
series count stays bounded; unrouted requests share ``unmatched``. A request the client abandoned mid-way is
counted as status 499. A response counts as a stream (``proxyd_inflight_streams``) from the moment it is
prepared as ``text/event-stream`` or as a WebSocket until its handler returns.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from proxyd import metrics
from proxyd.http.types import Handler

__all__ = ["route_label", "setup_request_metrics"]

UNMATCHED = "unmatched"
CLIENT_CLOSED = 499
_STREAMING: Any = (
    web.RequestKey("proxyd.metrics.streaming", bool) if hasattr(web, "RequestKey") else "proxyd.metrics.streaming"
)


def route_label(request: web.Request) -> str:
    """The route template the request matched, or ``unmatched``."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def request_metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = CLIENT_CLOSED
        raise
    finally:
        if request.get(_STREAMING):
            request[_STREAMING] = False
            metrics.stream_finished()
        metrics.record_request(route_label(request), status, time.monotonic() - started)


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    streaming = isinstance(response, web.WebSocketResponse) or response.content_type == "text/event-stream"
    if streaming and not request.get(_STREAMING):
        request[_STREAMING] = True
        metrics.stream_started()


def setup_request_metrics(app: web.Application) -> None:
    """Install the middleware (place it near the outside, next to the access log) and the prepare hook."""
    app.middlewares.append(request_metrics_middleware)
    app.on_response_prepare.append(_on_prepare)
