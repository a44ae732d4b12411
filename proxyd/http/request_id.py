"""Request ids: taken from a sane client `X-Request-Id` or generated, echoed back, bound to every log line.

Used by the edge middleware (proxyd/http/edge.py).
"""

from __future__ import annotations

import random
import re
import uuid
from typing import Any

import structlog
from aiohttp import web

from proxyd.http.types import request_key

HEADER = "X-Request-Id"
REQUEST_ID: Any = request_key("proxyd.request_id", str)
_SANE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


_RANDOM = random.Random()  # seeded from os.urandom once; ids are for correlation, not secrets


def new_request_id() -> str:
    """A random UUID (version 4 layout), as the recorded reference build's request ids (they end its
    `X-Cpa-Trace-Id`); from a seeded PRNG, so no system call per request."""
    return str(uuid.UUID(int=_RANDOM.getrandbits(128), version=4))


def request_id_of(request: web.Request) -> str:
    """The id bound to this request (set by the middleware)."""
    try:
        return request[REQUEST_ID]  # type: ignore[no-any-return]
    except KeyError:  # (Mapping.get is several times slower on aiohttp requests)
        return ""


def assign(request: web.Request) -> str:
    """Take the client's sane `X-Request-Id` or make one; bind it to the request and to every log line."""
    offered = request.headers.get(HEADER, "")
    rid = offered if offered and _SANE.match(offered) else new_request_id()
    request[REQUEST_ID] = rid
    structlog.contextvars.bind_contextvars(request_id=rid)
    return rid


def release() -> None:
    structlog.contextvars.unbind_contextvars("request_id")


def stamp_prepared(request: web.Request, response: web.StreamResponse) -> None:
    """Streaming handlers prepare the response themselves: stamp the id before headers go out."""
    rid = request_id_of(request)
    if rid:
        response.headers.setdefault(HEADER, rid)
