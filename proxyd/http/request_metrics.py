"""Request metrics: count and time every request by route template and status; track in-flight streams.

The route label is the matched resource's template (``/v1beta/models/{model}``), never the raw path, so the
series count stays bounded; unrouted requests share ``unmatched``. A request the client abandoned mid-way is
counted as status 499. A response counts as a stream (``proxyd_inflight_streams``) from the moment it is
prepared as ``text/event-stream`` or as a WebSocket until its handler returns.
"""

from __future__ import annotations

from aiohttp import web

from proxyd import metrics

__all__ = ["CLIENT_CLOSED", "finish", "on_prepare", "route_label"]

UNMATCHED = "unmatched"
CLIENT_CLOSED = 499
# The requests (by id) whose response counts as an open stream now: an empty set costs one test per request,
# where a request-storage key would raise and catch a KeyError for every request that is not a stream.
_STREAMING: set[int] = set()


def route_label(request: web.Request) -> str:
    """The route template the request matched, or ``unmatched``."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


def finish(request: web.Request, status: int, seconds: float) -> None:
    """Count and time a finished request (the edge middleware calls this once per request)."""
    if _STREAMING and id(request) in _STREAMING:
        _STREAMING.discard(id(request))
        metrics.stream_finished()
    resource = request.match_info.route.resource
    metrics.record_request(resource.canonical if resource is not None else UNMATCHED, status, seconds)


def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """A response counts as a stream from the moment it is prepared as SSE or a WebSocket."""
    if type(response) is web.Response:  # a whole body: never a stream
        return
    streaming = isinstance(response, web.WebSocketResponse) or response.content_type == "text/event-stream"
    if streaming and id(request) not in _STREAMING:
        _STREAMING.add(id(request))
        metrics.stream_started()
