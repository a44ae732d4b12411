"""One structured log line per request: method, path (never the query: it may hold a key), status, latency.

Written by the edge middleware (proxyd/http/edge.py) when the request is over.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

log = structlog.get_logger("proxyd.access")

# What the proxy pipeline learnt about a request (model, provider, credential id), for its access line: journald
# then files them as fields of their own (`journalctl -u proxyd MODEL=… CREDENTIAL=…`).
FIELDS: Any = web.RequestKey("proxyd.access.fields", dict) if hasattr(web, "RequestKey") else "proxyd.access.fields"


def write(request: web.Request, status: int, seconds: float) -> None:
    try:
        extra: dict[str, Any] = request[FIELDS]
    except KeyError:
        extra = {}
    log.info("request", method=request.method, path=request.path, status=status,
             latency_ms=round(seconds * 1000, 2), peer=request.remote, **extra)
