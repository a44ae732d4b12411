"""The Provider protocol and the one HTTP sender every HTTP provider shares."""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import aiohttp
import aiohttp_socks
import attrs
import orjson
import python_socks
import structlog
from aiohttp_socks import ProxyConnector, ProxyType
from multidict import CIMultiDictProxy

from proxyd.credentials.model import Credential
from proxyd.http.body import read_stream
from proxyd.http.errors import UpstreamError
from proxyd.protocols.base import WireProtocol
from proxyd.upstream import LeanResponse, UpstreamPool, pool_of, target_of, usable_headers

log = structlog.get_logger(__name__)

MAX_ERROR_BODY = 1024 * 1024
MAX_UPSTREAM_BODY = 64 * 1024 * 1024
# What a SOCKS handshake failure raises (aiohttp-socks has its own classes, older versions python-socks').
_SOCKS_ERRORS: tuple[type[Exception], ...] = (
    aiohttp_socks.ProxyError, aiohttp_socks.ProxyConnectionError, aiohttp_socks.ProxyTimeoutError,
    python_socks.ProxyError, python_socks.ProxyConnectionError, python_socks.ProxyTimeoutError,
)


@attrs.frozen
class UpstreamRequest:
    """A fully built upstream HTTP call."""

    method: str
    url: str
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)
    proxy_url: str = ""


@attrs.frozen
class Timeouts:
    """Upstream timeouts in seconds: connect, first byte (response headers), idle between chunks."""

    connect: float = 10.0
    first_byte: float = 300.0
    idle: float = 300.0


@attrs.define
class UpstreamReply:
    """A 2xx upstream answer whose body has not been read yet; the caller must close it.

    `response` is the lean client's answer for direct calls, aiohttp's ClientResponse for proxied ones: both
    have `.content` (an aiohttp StreamReader), `.release()` and `.close()`."""

    status: int
    headers: CIMultiDictProxy[str]
    response: aiohttp.ClientResponse | LeanResponse

    def close(self) -> None:
        self.response.close()


class Provider(Protocol):
    """Builds upstream calls for one upstream kind; knows nothing about client protocols.

    `always_streams`: the upstream is called with streaming even for non-streaming clients (Codex); the
    pipeline then aggregates the stream into one answer.
    """

    kind: str
    protocol: WireProtocol
    always_streams: bool

    def build_request(
        self, credential: Credential, upstream_model: str, body: dict[str, Any], *, stream: bool,
        client_headers: Mapping[str, str],
    ) -> UpstreamRequest: ...

    def count_request(
        self, credential: Credential, upstream_model: str, body: dict[str, Any], *, client_headers: Mapping[str, str],
    ) -> UpstreamRequest | None:
        """The upstream's token-count call, or None when tokens are estimated locally."""
        ...

    def count_total(self, answer: dict[str, Any]) -> int:
        """The prompt token count from the count call's JSON answer."""
        ...


async def send_for(provider: Provider, session: aiohttp.ClientSession, request: UpstreamRequest,
                   timeouts: Timeouts) -> UpstreamReply:
    """`send`, with a non-2xx answer passed through the provider's own error normalisation (`classify_error`,
    when the provider has one: Codex names known failures as the recorded reference build does)."""
    try:
        return await send(session, request, timeouts)
    except UpstreamError as error:
        classify = getattr(provider, "classify_error", None)
        if classify is None:
            raise
        raise classify(error) from None


def streams_upstream(provider: Provider, client: WireProtocol) -> bool:
    """Whether a non-streaming client's call to `provider` is made as a stream and aggregated: always for
    `always_streams` upstreams (Codex), and for translated traffic on providers that set `streams_translated`
    (Claude: the reference streams Anthropic for every client of another protocol)."""
    if provider.always_streams:
        return True
    return client is not provider.protocol and bool(getattr(provider, "streams_translated", False))


class LocalCount:
    """Mixin for providers without a count endpoint: proxyd estimates locally."""

    def count_request(
        self, credential: Credential, upstream_model: str, body: dict[str, Any], *, client_headers: Mapping[str, str],
    ) -> UpstreamRequest | None:
        return None

    def count_total(self, answer: dict[str, Any]) -> int:
        raise NotImplementedError


def custom_headers(configured: Mapping[str, str], client_headers: Mapping[str, str]) -> dict[str, str]:
    """An entry's `headers:`; a value `$Name` copies the client's `Name` header (left out when absent)."""
    out: dict[str, str] = {}
    for name, value in configured.items():
        if value.startswith("$") and len(value) > 1:
            copied = client_headers.get(value[1:])
            if copied:
                out[name] = copied
        else:
            out[name] = value
    return out


async def read_capped(response: aiohttp.ClientResponse | LeanResponse, limit: int, *, truncate: bool = False) -> bytes:
    """The whole body of `response` (StreamReader.read(n) returns only what has arrived), at most `limit` bytes.

    A larger body raises UpstreamError(502), or with `truncate` is cut at `limit`; a transfer cut short raises
    aiohttp's ClientPayloadError.
    """
    body = await read_stream(response.content, limit, truncate=truncate)
    if body is None:
        raise UpstreamError(502, f"upstream body larger than {limit} bytes".encode())
    return body


def json_bytes(body: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON (orjson; the stdlib for what orjson refuses, such as integers beyond 64 bits)."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


_TIMEOUTS: dict[Timeouts, aiohttp.ClientTimeout] = {}


def _client_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    found = _TIMEOUTS.get(timeouts)
    if found is None:
        if len(_TIMEOUTS) > 64:
            _TIMEOUTS.clear()
        found = _TIMEOUTS[timeouts] = aiohttp.ClientTimeout(
            total=None, connect=timeouts.connect, sock_connect=timeouts.connect, sock_read=timeouts.idle)
    return found


def _proxy_for(proxy_url: str) -> str | None:
    """The proxy URL to use (routing.md §6.1): empty, `direct` and `none` mean a direct connection."""
    proxy_url = proxy_url.strip()
    if not proxy_url or proxy_url.lower() in ("direct", "none"):
        return None
    return proxy_url


def is_socks(proxy_url: str) -> bool:
    return proxy_url.lower().startswith("socks5://")


# One extra ClientSession per distinct SOCKS5 proxy URL, kept per main session (so per app and event loop).
_SOCKS: weakref.WeakKeyDictionary[aiohttp.ClientSession, dict[str, aiohttp.ClientSession]] = (
    weakref.WeakKeyDictionary())


def _socks_session(session: aiohttp.ClientSession, proxy_url: str) -> aiohttp.ClientSession:
    """The pooled session tunnelling through `proxy_url` (created on first use, closed with the main one)."""
    sessions = _SOCKS.setdefault(session, {})
    found = sessions.get(proxy_url)
    if found is not None and not found.closed:
        return found
    parts = urlsplit(proxy_url)
    connector = ProxyConnector(
        host=parts.hostname or "", port=parts.port or 1080, proxy_type=ProxyType.SOCKS5,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        rdns=True,  # the target host name goes to the SOCKS server as-is, like the reference's dialer
        limit=0, limit_per_host=256, enable_cleanup_closed=True,
    )
    created = aiohttp.ClientSession(connector=connector, auto_decompress=session.auto_decompress,
                                    skip_auto_headers=("User-Agent",))
    sessions[proxy_url] = created
    log.info("socks5 proxy session opened", proxy=f"{parts.hostname}:{parts.port or 1080}")
    return created


async def close_proxy_sessions(session: aiohttp.ClientSession) -> None:
    """Close the SOCKS5 sessions opened next to `session` (call at shutdown)."""
    for extra in list(_SOCKS.pop(session, {}).values()):
        await extra.close()


# Methods the lean client sends (aiohttp's own parser would need to know about HEAD's empty body).
_LEAN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


async def send(session: aiohttp.ClientSession, request: UpstreamRequest, timeouts: Timeouts) -> UpstreamReply:
    """Send `request`; return the open 2xx reply, or raise UpstreamError (status 0 for transport failures).

    `request.proxy_url`: socks5 URLs go through a cached SOCKS connector, http/https ones through aiohttp's
    `proxy=`; empty, `direct` and `none` connect directly, through the lean client (proxyd.upstream) when the
    session has a pool attached (app.py), else through `session`.
    """
    proxy = _proxy_for(request.proxy_url)
    if proxy is None:
        pool = pool_of(session)
        if pool is not None and request.method.upper() in _LEAN_METHODS and usable_headers(request.headers):
            target = target_of(request.url)
            if target is not None:
                return await _send_lean(pool, target, request, timeouts)
    timeout = _client_timeout(timeouts)
    if proxy is not None and is_socks(proxy):
        session, proxy = _socks_session(session, proxy), None
    try:
        async with asyncio.timeout(timeouts.first_byte):
            response = await session.request(
                request.method, request.url, data=request.body, headers=dict(request.headers),
                timeout=timeout, proxy=proxy, allow_redirects=False,
            )
    except _SOCKS_ERRORS as exc:
        log.warning("socks proxy failed", url=request.url.split("?")[0], error=str(exc))
        raise UpstreamError(0, f"upstream request failed: socks proxy: {exc}".encode()) from None
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise _transport_failure(request, exc) from None
    return await _reply_or_raise(response)


async def _send_lean(pool: UpstreamPool, target: Any, request: UpstreamRequest, timeouts: Timeouts) -> UpstreamReply:
    """`send` over the lean client: the same timeouts, statuses and messages as the aiohttp path above."""
    try:
        response = await pool.request(request.method, target, request.headers, request.body,
                                      connect_timeout=timeouts.connect, first_byte_timeout=timeouts.first_byte,
                                      idle_timeout=timeouts.idle, url=request.url)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise _transport_failure(request, exc) from None
    return await _reply_or_raise(response)


def _transport_failure(request: UpstreamRequest, exc: Exception) -> UpstreamError:
    """A call that got no answer: a timeout (aiohttp's ServerTimeoutError included) is 504, else status 0."""
    if isinstance(exc, TimeoutError):
        return UpstreamError(504, b"upstream did not answer within the first-byte timeout")
    log.warning("upstream transport error", url=request.url.split("?")[0], error=str(exc))
    return UpstreamError(0, f"upstream request failed: {exc}".encode())


async def _reply_or_raise(response: Any) -> UpstreamReply:
    """The open 2xx reply; any other status raises UpstreamError with the (capped) error body, read and released.

    `response` is aiohttp's ClientResponse or the lean client's, which reads the same way."""
    if response.status >= 300:
        try:
            body = await read_capped(response, MAX_ERROR_BODY, truncate=True)
        except (aiohttp.ClientError, TimeoutError):
            body = b""
        finally:
            response.release()
        raise UpstreamError(response.status, body, response.headers)
    return UpstreamReply(status=response.status, headers=response.headers, response=response)
