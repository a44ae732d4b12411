"""One structured log line per request: method, path (never the query: it may hold a key), status, latency.

Written by the edge middleware (proxyd/http/edge.py) when the request is over.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from proxyd.http.types import request_key
from proxyd.log import emit_line, line_enabled

# What the proxy pipeline learnt about a request (model, provider, credential id), for its access line: journald
# then files them as fields of their own (`journalctl -u proxyd MODEL=… CREDENTIAL=…`).
FIELDS: Any = request_key("proxyd.access.fields", dict)


def write(request: web.Request, status: int, seconds: float) -> None:
    if not line_enabled():
        return
    event: dict[str, Any] = {"method": request.method, "path": request.path, "status": status,
                             "latency_ms": round(seconds * 1000, 2), "peer": request.remote}
    try:  # noqa: SIM105 - contextlib.suppress costs a context manager per request
        event.update(request[FIELDS])
    except KeyError:  # not a proxied request
        pass
    emit_line("info", "request", event, _FILE, _LINE)


# Where the access line comes from, for the log ring and main.log (the structlog chain would walk the stack).
_FILE = "access_log.py"
_LINE = write.__code__.co_firstlineno
