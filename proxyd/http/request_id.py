"""Request ids: taken from a sane client `X-Request-Id` or generated, echoed back, bound to every log line."""

from __future__ import annotations

import re
import secrets
from typing import Any

import structlog
from aiohttp import web

from proxyd.http.types import Handler

HEADER = "X-Request-Id"
REQUEST_ID: Any = (
    web.RequestKey("proxyd.request_id", str) if hasattr(web, "RequestKey") else "proxyd.request_id"
)
_SANE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def new_request_id() -> str:
    return secrets.token_hex(8)


def request_id_of(request: web.Request) -> str:
    """The id bound to this request (set by the middleware)."""
    rid = request.get(REQUEST_ID)
    return rid if isinstance(rid, str) else ""


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    offered = request.headers.get(HEADER, "")
    rid = offered if _SANE.match(offered) else new_request_id()
    request[REQUEST_ID] = rid
    structlog.contextvars.bind_contextvars(request_id=rid)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[HEADER] = rid
        raise
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    if not response.prepared:
        response.headers[HEADER] = rid
    return response


async def _stamp_prepared(request: web.Request, response: web.StreamResponse) -> None:
    # Streaming handlers prepare the response themselves; stamp the id before headers go out.
    rid = request.get(REQUEST_ID)
    if isinstance(rid, str) and HEADER not in response.headers:
        response.headers[HEADER] = rid


def setup_request_id(app: web.Application) -> None:
    app.middlewares.append(request_id_middleware)
    app.on_response_prepare.append(_stamp_prepared)
