"""`X-Cpa-Trace-Id`: which credential served a request, as the recorded reference build reports it.

The dispatch stage notes every credential it tries (`note`); the last one noted before the answer's headers go
out is named in `<YYYYMMDDHHMMSS>-<auth_index>-<request id>` (local time of the attempt, the credential's
stable index of proxyd/credentials/index.py, the request's `X-Request-Id`). Answers made without trying any
credential (auth failures, unknown models, every key cooling down) and WebSocket upgrades carry none.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import hdrs, web
from multidict import istr

from proxyd.http.request_id import request_id_of
from proxyd.http.types import request_key

HEADER = istr("X-Cpa-Trace-Id")
TRACE: Any = request_key("proxyd.trace_id", str)


def format_trace_id(selected_at: float, auth_index: str, request_id: str) -> str:
    """`<YYYYMMDDHHMMSS>-<auth_index>-<request id>`; `""` when the index or the id is missing."""
    auth_index, request_id = auth_index.strip(), request_id.strip()
    if not auth_index or not request_id:
        return ""
    return f"{time.strftime('%Y%m%d%H%M%S', time.localtime(selected_at))}-{auth_index}-{request_id}"


def note(request: web.Request, auth_index: str) -> None:
    """The request is about to try the credential with this index (a later attempt replaces it)."""
    if request.headers.get(hdrs.UPGRADE, "").lower() == "websocket":
        return
    trace = format_trace_id(time.time(), auth_index, request_id_of(request))
    if trace:
        request[TRACE] = trace


def stamp(request: web.Request, response: web.StreamResponse) -> None:
    """Response-prepare hook: name the credential last tried (an upstream's own header never passes)."""
    try:
        trace = request[TRACE]
    except KeyError:
        response.headers.popall(HEADER, None)
        return
    response.headers[HEADER] = trace


__all__ = ["HEADER", "format_trace_id", "note", "stamp"]
