"""Turn anything a handler raises into a response in the client's own error envelope; never crash."""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from proxyd.http.errors import ProxyError, family_for_path
from proxyd.http.types import Handler

log = structlog.get_logger(__name__)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ProxyError as exc:
        return exc.response(family_for_path(request.path))
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        return await _not_found(request)
    except (web.HTTPException, asyncio.CancelledError):
        raise
    except ConnectionResetError:
        # The client went away mid-response; nothing left to answer.
        raise
    except Exception:
        log.exception("unhandled error", path=request.path)
        error = ProxyError(500, "internal proxy error")
        return error.response(family_for_path(request.path))


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


def setup_error_handling(app: web.Application) -> None:
    app.middlewares.append(error_middleware)
