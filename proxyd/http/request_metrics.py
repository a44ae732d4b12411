"""Request metrics: count and time every request by route template and status; track in-flight streams.

The route label is the matched resource's template (``/v1beta/models/{model}``), never the raw path, so the
series count stays bounded; unrouted requests share ``unmatched``. A request the client abandoned mid-way is
counted as status 499. A response counts as a stream (``proxyd_inflight_streams``) from the moment it is
prepared as ``text/event-stream`` or as a WebSocket until its handler returns.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from proxyd import metrics
from proxyd.http.types import request_key

__all__ = ["CLIENT_CLOSED", "finish", "on_prepare", "route_label"]

UNMATCHED = "unmatched"
CLIENT_CLOSED = 499
_STREAMING: Any = request_key("proxyd.metrics.streaming", bool)


def route_label(request: web.Request) -> str:
    """The route template the request matched, or ``unmatched``."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


def finish(request: web.Request, status: int, seconds: float) -> None:
    """Count and time a finished request (the edge middleware calls this once per request)."""
    try:
        streaming = request[_STREAMING]
    except KeyError:  # most requests (Mapping.get would raise and catch the same KeyError, more slowly)
        streaming = False
    if streaming:
        request[_STREAMING] = False
        metrics.stream_finished()
    metrics.record_request(route_label(request), status, seconds)


def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """A response counts as a stream from the moment it is prepared as SSE or a WebSocket."""
    if type(response) is web.Response:  # a whole body: never a stream
        return
    streaming = isinstance(response, web.WebSocketResponse) or response.content_type == "text/event-stream"
    if streaming and not request.get(_STREAMING):
        request[_STREAMING] = True
        metrics.stream_started()
