"""The keep-alive pool and the request path of the lean upstream client.

One connection is aiohttp's own `ResponseHandler` protocol (its C response parser, its StreamReader bodies with
flow control, its decompression, its idle-read timeout and its connection-loss errors), so what callers read and
catch is what aiohttp's ClientSession gave them. What is left out is the ClientSession/ClientRequest/
ClientResponse machinery around it (URL objects per call, header merging, tracing, cookie jar, timer contexts,
connector bookkeeping), which was most of the client's cost per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import structlog
from aiohttp import ClientConnectionError, ClientOSError, ClientResponseError, RequestInfo, ServerDisconnectedError
from aiohttp.client_proto import ResponseHandler
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from proxyd.upstream.connect import Connector
from proxyd.upstream.head import Target, request_head

log = structlog.get_logger(__name__)

KEEPALIVE_SECONDS = 15.0  # aiohttp's keepalive_timeout default
MAX_IDLE_PER_HOST = 256
READ_BUFSIZE = 2**16  # aiohttp's read_bufsize default: the body buffer pauses the socket past twice this
# aiohttp retries these on a dropped connection; other methods only when the request provably never left.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

PoolKey = tuple[bool, str, int]


class UpstreamConnection(ResponseHandler):
    """aiohttp's client protocol plus what the pool needs: whether any byte of the current answer arrived."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.answered = False
        self.expired = False  # the first-byte deadline passed while this connection carried the request
        self.idle_since = 0.0
        self.key: PoolKey = (False, "", 0)

    def data_received(self, data: bytes) -> None:
        self.answered = True
        ResponseHandler.data_received(self, data)

    def first_byte_expired(self) -> None:
        """The first-byte deadline: fail the wait for the answer head (and a stalled body write)."""
        self.expired = True
        self.set_exception(TimeoutError())
        if self.writing_paused and self.transport is not None:
            self.transport.abort()


class LeanResponse:
    """An upstream answer with its body unread: `.status`, `.headers` (CIMultiDictProxy), `.content` (aiohttp
    StreamReader). The connection returns to the pool once the body has been received whole; `release()` or
    `close()` before that closes it (an unread body never goes back to the pool)."""

    __slots__ = ("_conn", "_pool", "content", "headers", "status")

    def __init__(self, status: int, headers: CIMultiDictProxy[str], content: Any, conn: UpstreamConnection,
                 pool: UpstreamPool) -> None:
        self.status = status
        self.headers = headers
        self.content = content
        self._conn: UpstreamConnection | None = conn
        self._pool = pool

    def _on_eof(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.release(conn)

    def _notify_content(self) -> None:
        content = self.content
        if not content.is_eof() and content.exception() is None:
            content.set_exception(ClientConnectionError("Connection closed"))  # as ClientResponse.release does

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._notify_content()
            self._pool.release(conn)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._notify_content()
            self._pool.discard(conn)


class UpstreamPool:
    """Keep-alive connections per (TLS, host, port): last in, first out, at most MAX_IDLE_PER_HOST idle per
    key, closed after KEEPALIVE_SECONDS idle. A connection goes back only when its answer was read whole and
    neither side asked to close it; one the peer closed is dropped as soon as asyncio reports it (and is
    checked again when taken)."""

    def __init__(self, *, auto_decompress: bool = True, connector: Connector | None = None) -> None:
        self.auto_decompress = auto_decompress
        self.connector = connector if connector is not None else Connector()
        self._idle: dict[PoolKey, list[UpstreamConnection]] = {}
        self._busy: set[UpstreamConnection] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self.closed = False

    # -- connections ---------------------------------------------------------------------------------------
    def _take_idle(self, key: PoolKey) -> UpstreamConnection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        deadline = time.monotonic() - KEEPALIVE_SECONDS
        while idle:
            conn = idle.pop()
            if conn.is_connected() and not conn.should_close and conn.idle_since > deadline:
                return conn
            self._close(conn)
        return None

    async def _open(self, target: Target, connect_seconds: float, deadline: float) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        if connect_seconds > 0:  # 0: none, as aiohttp
            deadline = min(deadline, loop.time() + connect_seconds)
        async with asyncio.timeout_at(deadline):
            _, protocol = await self.connector.connect(lambda: UpstreamConnection(loop), target.host, target.port,
                                                       target.tls, target.ip)
        assert isinstance(protocol, UpstreamConnection)
        return protocol

    def release(self, conn: UpstreamConnection) -> None:
        """Back to the pool, or closed when it cannot carry another request."""
        self._busy.discard(conn)
        if self.closed or conn.should_close or not conn.is_connected():
            self._close(conn)
            return
        key = conn.key
        idle = self._idle.setdefault(key, [])
        if len(idle) >= MAX_IDLE_PER_HOST:
            idle[:] = [c for c in idle if c.is_connected()]
            if len(idle) >= MAX_IDLE_PER_HOST:
                self._close(idle.pop(0))
        conn.idle_since = time.monotonic()
        idle.append(conn)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(KEEPALIVE_SECONDS, self._sweep)

    def discard(self, conn: UpstreamConnection) -> None:
        self._busy.discard(conn)
        self._close(conn)

    @staticmethod
    def _close(conn: UpstreamConnection) -> None:
        transport = conn.transport
        conn.close()
        if transport is not None and transport.get_extra_info("sslcontext") is not None:
            # aiohttp's enable_cleanup_closed: a TLS peer that never answers close_notify is cut after 2 s
            asyncio.get_running_loop().call_later(2.0, transport.abort)

    def _sweep(self) -> None:
        self._sweeper = None
        deadline = time.monotonic() - KEEPALIVE_SECONDS
        for key, idle in list(self._idle.items()):
            keep = []
            for conn in idle:
                if conn.is_connected() and conn.idle_since > deadline:
                    keep.append(conn)
                else:
                    self._close(conn)
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]
        if self._idle and not self.closed:
            self._sweeper = asyncio.get_running_loop().call_later(KEEPALIVE_SECONDS / 2, self._sweep)

    def idle_count(self) -> int:
        return sum(1 for idle in self._idle.values() for conn in idle if conn.is_connected())

    async def close(self) -> None:
        """Close every connection, idle or in use (as ClientSession.close does), and the resolver."""
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        for conn in list(self._busy):
            conn.close()
        self._busy.clear()
        await self.connector.close()

    # -- requests ------------------------------------------------------------------------------------------
    async def request(self, method: str, target: Target, headers: Mapping[str, str], body: bytes | None, *,
                      connect_timeout: float, first_byte_timeout: float, idle_timeout: float,
                      url: str = "") -> LeanResponse:
        """Send one request and return once the answer's head has arrived (1xx answers skipped).

        Timeouts: `first_byte_timeout` from now until the answer head (connecting included), `connect_timeout`
        for opening a connection, `idle_timeout` between reads once the request is written (aiohttp's
        sock_read). Passing the first-byte or connect deadline raises TimeoutError.

        A request that fails on a *reused* connection before any byte of an answer arrived is sent once more on
        a fresh connection when that cannot repeat work the upstream did: for the methods aiohttp retries
        (idempotent ones), or for any method when the connection was already dead as the request was written
        (the write failed at once, so nothing reached the upstream: the race of a keep-alive connection the
        upstream closed just then). A POST that was written is not repeated: no answer byte does not prove the
        upstream did not act on it, and the pipeline decides about retrying it with its own rules.
        """
        if self.closed:
            raise ClientConnectionError("Session is closed")
        method = method.upper()
        head = request_head(method, target, headers, body)
        data = head + body if body else head
        key: PoolKey = (target.tls, target.host, target.port)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + first_byte_timeout
        fresh = False
        while True:
            conn = None if fresh else self._take_idle(key)
            reused = conn is not None
            if conn is None:
                conn = await self._open(target, connect_timeout, deadline)
                conn.key = key
            self._busy.add(conn)
            conn.answered = False
            unsent = True
            timer = loop.call_at(deadline, conn.first_byte_expired)
            try:
                conn.set_response_params(read_until_eof=True, auto_decompress=self.auto_decompress,
                                         read_timeout=idle_timeout or None, read_bufsize=READ_BUFSIZE)
                transport = conn.transport
                if transport is None or transport.is_closing():
                    raise ServerDisconnectedError()
                transport.write(data)
                unsent = transport.is_closing()  # the write failed at once: nothing reached the upstream
                if conn.writing_paused:
                    await conn._drain_helper()
                conn.start_timeout()
                while True:
                    message, payload = await conn.read()
                    if message.code < 100 or message.code > 199 or message.code == 101:
                        break
            except (ServerDisconnectedError, ClientOSError):
                timer.cancel()
                self.discard(conn)
                if conn.expired:
                    raise TimeoutError() from None
                if reused and not fresh and not conn.answered and (method in IDEMPOTENT or unsent):
                    log.debug("stale upstream connection; sending again on a fresh one", host=target.host)
                    fresh = True
                    continue
                raise
            except HttpProcessingError as exc:
                timer.cancel()
                self.discard(conn)
                raise ClientResponseError(_request_info(method, url, headers), (), status=exc.code,
                                          message=exc.message, headers=exc.headers) from exc
            except BaseException:
                timer.cancel()
                self.discard(conn)
                if conn.expired:
                    raise TimeoutError() from None
                raise
            timer.cancel()
            response = LeanResponse(message.code, message.headers, payload, conn, self)
            payload.on_eof(response._on_eof)
            return response


def _request_info(method: str, url: str, headers: Mapping[str, str]) -> RequestInfo:
    parsed = URL(url) if url else URL()
    return RequestInfo(parsed, method, CIMultiDictProxy(CIMultiDict(headers)), parsed)
