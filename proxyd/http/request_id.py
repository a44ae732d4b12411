"""Request ids: taken from a sane client `X-Request-Id` or generated, echoed back, bound to every log line.

Used by the edge middleware (proxyd/http/edge.py).
"""

from __future__ import annotations

import random
import re
from typing import Any

import structlog
from aiohttp import web
from multidict import istr

from proxyd.http.types import request_key

HEADER = istr("X-Request-Id")
REQUEST_ID: Any = request_key("proxyd.request_id", str)
_SANE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


_RANDOM = random.Random()  # seeded from os.urandom once; ids are for correlation, not secrets
# The version-4 UUID layout on a 128-bit number (what `uuid.UUID(int=n, version=4)` does): version nibble 4,
# variant bits 10.
_KEEP = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)
_LAYOUT = (0x8000 << 48) | (4 << 76)

# structlog's own context variable for `request_id` (the one `bind_contextvars(request_id=…)` sets): set and
# cleared directly, without building and returning a token mapping twice per request.
_BOUND = structlog.contextvars.bind_contextvars(request_id="")["request_id"]
_CONTEXT_VAR = _BOUND.var
_CONTEXT_VAR.reset(_BOUND)


def new_request_id() -> str:
    """A random UUID (version 4 layout), as the recorded reference build's request ids (they end its
    `X-Cpa-Trace-Id`); from a seeded PRNG, so no system call per request."""
    h = f"{_RANDOM.getrandbits(128) & _KEEP | _LAYOUT:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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
    _CONTEXT_VAR.set(rid)  # = structlog.contextvars.bind_contextvars(request_id=rid)
    return rid


def release() -> None:
    _CONTEXT_VAR.set(Ellipsis)  # = structlog.contextvars.unbind_contextvars("request_id")


def stamp_prepared(request: web.Request, response: web.StreamResponse) -> None:
    """Streaming handlers prepare the response themselves: stamp the id before headers go out."""
    try:
        rid = request[REQUEST_ID]
    except KeyError:
        return
    if rid:
        response.headers.setdefault(HEADER, rid)
