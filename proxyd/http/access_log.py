"""One structured log line per request: method, path (never the query: it may hold a key), status, latency."""

from __future__ import annotations

import time

import structlog
from aiohttp import web

from proxyd.http.types import Handler

log = structlog.get_logger("proxyd.access")


@web.middleware
async def access_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=status,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
            peer=request.remote,
        )


def setup_access_log(app: web.Application) -> None:
    app.middlewares.append(access_log_middleware)
