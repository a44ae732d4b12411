"""Type aliases shared by the middleware modules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_key(name: str, kind: type) -> Any:
    """A typed request-storage key (`web.RequestKey`, aiohttp 3.12+); the plain name on older aiohttp."""
    return web.RequestKey(name, kind) if hasattr(web, "RequestKey") else name
