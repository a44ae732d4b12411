"""The lean upstream HTTP/1.1 client: direct http:// and https:// calls of `providers.base.send`.

`head` builds request heads byte-identical to aiohttp's, `connect` opens connections as aiohttp's connector
does, `pool` keeps them alive and runs a request over aiohttp's own response protocol. Proxied calls, WebSockets,
management api-call and OAuth stay on aiohttp's ClientSession. docs/architecture.md has the overview.
"""

from __future__ import annotations

import weakref

import aiohttp

from proxyd.upstream.head import Target, target_of, usable_headers
from proxyd.upstream.pool import LeanResponse, UpstreamPool

__all__ = ["LeanResponse", "Target", "UpstreamPool", "attach_pool", "pool_of", "target_of", "usable_headers"]

# The pool that serves a ClientSession's direct calls (app.py attaches one to the process's session).
_POOLS: weakref.WeakKeyDictionary[aiohttp.ClientSession, UpstreamPool] = weakref.WeakKeyDictionary()


def attach_pool(session: aiohttp.ClientSession, pool: UpstreamPool) -> None:
    """Serve `session`'s direct upstream calls in `send` through `pool` (close the pool with the session)."""
    _POOLS[session] = pool


def pool_of(session: aiohttp.ClientSession) -> UpstreamPool | None:
    """The pool attached to `session`; None (aiohttp serves every call) for a session without one."""
    return _POOLS.get(session)
