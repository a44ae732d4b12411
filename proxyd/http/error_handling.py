"""Turn anything a handler raises into a response in the client's own error envelope; never crash."""

from __future__ import annotations

import asyncio
import html

import structlog
from aiohttp import hdrs, web

from proxyd.http.cors import NO_CORS
from proxyd.http.errors import ProxyError, family_for_path, reason_phrase

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


async def _not_found(request: web.Request) -> web.StreamResponse:
    """The reference's 404 (wrong methods too): an empty body; or its redirect when only a trailing slash differs.

    The redirect is the router's (it runs before any middleware in the reference): no CORS headers, and for GET
    and HEAD the small HTML body of Go's `http.Redirect`."""
    path = request.path
    if len(path) > 1 and path.endswith("/"):
        target = path.rstrip("/") or "/"
        match = await request.app.router.resolve(request.clone(rel_url=target))
        if match.http_exception is None:
            location = target + (f"?{request.query_string}" if request.query_string else "")
            get = request.method in (hdrs.METH_GET, hdrs.METH_HEAD)
            status = web.HTTPMovedPermanently.status_code if get else web.HTTPTemporaryRedirect.status_code
            response = web.Response(status=status, headers={"Location": location})
            if get:
                text = f'<a href="{html.escape(location)}">{reason_phrase(status)}</a>.\n\n'
                response.body = text.encode() if request.method == hdrs.METH_GET else b""
                response.headers[hdrs.CONTENT_TYPE] = "text/html; charset=utf-8"
            response[NO_CORS] = True
            return response
    return web.Response(status=404)
