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
    except (web.HTTPException, asyncio.CancelledError):
        raise
    except ConnectionResetError:
        # The client went away mid-response; nothing left to answer.
        raise
    except Exception:
        log.exception("unhandled error", path=request.path)
        error = ProxyError(500, "internal proxy error")
        return error.response(family_for_path(request.path))


def setup_error_handling(app: web.Application) -> None:
    app.middlewares.append(error_middleware)
