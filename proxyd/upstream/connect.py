"""Opening upstream connections the way aiohttp's TCPConnector does: its resolver with a 300 s cache, happy
eyeballs (250 ms), a verifying TLS context with ALPN `http/1.1`, SNI without trailing dots, and aiohttp's own
exception classes (so the "upstream request failed: Cannot connect to host …" texts stay the same)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import aiohappyeyeballs
import aiohttp.connector
from aiohttp import (
    ClientConnectorCertificateError,
    ClientConnectorDNSError,
    ClientConnectorError,
    ClientConnectorSSLError,
)
from aiohttp.resolver import DefaultResolver

DNS_TTL = 300.0
HAPPY_EYEBALLS_DELAY = 0.25


class ErrorKey(NamedTuple):
    """What aiohttp's connector errors read from their connection key (`ssl: True` prints as `default`)."""

    host: str
    port: int
    ssl: bool = True
    is_ssl: bool = False


def tls_context() -> ssl.SSLContext:
    """The context aiohttp uses for verified https (certificate and host name checked, ALPN http/1.1): its
    own, made once at its import (loading the CA bundle takes tens of milliseconds), else one made alike."""
    global _CONTEXT
    if _CONTEXT is None:
        shared = getattr(aiohttp.connector, "_SSL_CONTEXT_VERIFIED", None)
        if isinstance(shared, ssl.SSLContext):
            _CONTEXT = shared
        else:
            _CONTEXT = ssl.create_default_context()
            _CONTEXT.set_alpn_protocols(("http/1.1",))
    return _CONTEXT


_CONTEXT: ssl.SSLContext | None = None


class Connector:
    """Resolves (cached) and connects; one per pool."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.context = context if context is not None else tls_context()
        self._resolver: Any = None
        self._dns: dict[tuple[str, int], tuple[float, list[Any]]] = {}

    async def close(self) -> None:
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None
        self._dns.clear()

    async def _addr_infos(self, host: str, port: int) -> list[Any]:
        key = (host, port)
        cached = self._dns.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            infos = cached[1]
            if len(infos) > 1:  # round robin over the cached addresses, as aiohttp's cache does
                infos.append(infos.pop(0))
            return list(infos)
        if self._resolver is None:
            self._resolver = DefaultResolver()
        try:
            hosts = await self._resolver.resolve(host, port, family=socket.AF_UNSPEC)
        except OSError as exc:
            if exc.errno is None and isinstance(exc, TimeoutError):
                raise
            raise ClientConnectorDNSError(ErrorKey(host, port), exc) from exc  # type: ignore[arg-type]
        infos = []
        for found in hosts:
            address = found["host"]
            if ":" in address:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                              (address, found["port"], 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, found["port"])))
        if len(self._dns) > 1024:
            self._dns.clear()
        self._dns[key] = (now + DNS_TTL, infos)
        return list(infos)

    async def connect(self, factory: Callable[[], asyncio.Protocol], host: str, port: int, tls: bool,
                      ip: bool) -> tuple[asyncio.Transport, asyncio.Protocol]:
        """A connected transport and its protocol; aiohttp's exceptions on failure (TimeoutError passes)."""
        loop = asyncio.get_running_loop()
        key = ErrorKey(host, port, True, tls)
        if ip:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            address = (host, port, 0, 0) if family == socket.AF_INET6 else (host, port)
            infos = [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)]
        else:
            infos = await self._addr_infos(host, port)
        try:
            sock = await aiohappyeyeballs.start_connection(
                infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, interleave=None, loop=loop)
            if tls:
                return await loop.create_connection(factory, sock=sock, ssl=self.context,
                                                    server_hostname=host.rstrip("."))
            return await loop.create_connection(factory, sock=sock)
        except ssl.CertificateError as exc:
            raise ClientConnectorCertificateError(key, exc) from exc  # type: ignore[arg-type]
        except ssl.SSLError as exc:
            raise ClientConnectorSSLError(key, exc) from exc  # type: ignore[arg-type]
        except OSError as exc:
            if exc.errno is None and isinstance(exc, TimeoutError):
                raise
            raise ClientConnectorError(key, exc) from exc  # type: ignore[arg-type]
