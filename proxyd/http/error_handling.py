"""Turn anything a handler raises into a response in the client's own error envelope; never crash."""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from proxyd.http.errors import ProxyError, family_for_path

log = structlog.get_logger(__name__)


async def answer_exception(request: web.Request, exc: BaseException) -> web.StreamResponse:
    """The response for an exception a handler raised (the edge middleware re-raises what must propagate:
    aiohttp's own HTTP exceptions other than 404/405, cancellation, a reset client connection)."""
    if isinstance(exc, ProxyError):
        return exc.response(family_for_path(request.path))
    if isinstance(exc, web.HTTPNotFound | web.HTTPMethodNotAllowed):
        return await _not_found(request)
    log.exception("unhandled error", path=request.path, exc_info=exc)
    return ProxyError(500, "internal proxy error").response(family_for_path(request.path))


def must_propagate(exc: BaseException) -> bool:
    return isinstance(exc, asyncio.CancelledError | ConnectionResetError) or (
        isinstance(exc, web.HTTPException) and not isinstance(exc, web.HTTPNotFound | web.HTTPMethodNotAllowed))


NOT_FOUND_TEXT = "404 page not found"


async def _not_found(request: web.Request) -> web.StreamResponse:
    """The reference's plain 404 (wrong methods too), or its redirect when only a trailing slash differs."""
    path = request.path
    if len(path) > 1 and path.endswith("/"):
        target = path.rstrip("/") or "/"
        match = await request.app.router.resolve(request.clone(rel_url=target))
        if match.http_exception is None:
            location = target + (f"?{request.query_string}" if request.query_string else "")
            redirect = web.HTTPMovedPermanently if request.method == "GET" else web.HTTPTemporaryRedirect
            return web.Response(status=redirect.status_code, headers={"Location": location})
    return web.Response(status=404, text=NOT_FOUND_TEXT)
