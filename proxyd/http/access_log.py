"""One structured log line per request: method, path (never the query: it may hold a key), status, latency.

Written by the edge middleware (proxyd/http/edge.py) when the request is over.
"""

from __future__ import annotations

import structlog
from aiohttp import web

log = structlog.get_logger("proxyd.access")


def write(request: web.Request, status: int, seconds: float) -> None:
    log.info("request", method=request.method, path=request.path, status=status,
             latency_ms=round(seconds * 1000, 2), peer=request.remote)
