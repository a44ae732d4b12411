"""The Provider protocol and the one HTTP sender every HTTP provider shares."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
import attrs
import structlog
from multidict import CIMultiDictProxy

from proxyd.credentials.model import Credential
from proxyd.http.errors import UpstreamError
from proxyd.protocols.base import WireProtocol

log = structlog.get_logger(__name__)

MAX_ERROR_BODY = 1024 * 1024


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
    """A 2xx upstream answer whose body has not been read yet; the caller must close it."""

    status: int
    headers: CIMultiDictProxy[str]
    response: aiohttp.ClientResponse

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


def json_bytes(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _proxy_for(proxy_url: str) -> str | None:
    if not proxy_url or proxy_url.lower() in ("direct", "none"):
        return None
    return proxy_url


async def send(session: aiohttp.ClientSession, request: UpstreamRequest, timeouts: Timeouts) -> UpstreamReply:
    """Send `request`; return the open 2xx reply, or raise UpstreamError (status 0 for transport failures)."""
    timeout = aiohttp.ClientTimeout(total=None, connect=timeouts.connect, sock_connect=timeouts.connect,
                                    sock_read=timeouts.idle)
    try:
        async with asyncio.timeout(timeouts.first_byte):
            response = await session.request(
                request.method, request.url, data=request.body, headers=dict(request.headers),
                timeout=timeout, proxy=_proxy_for(request.proxy_url), allow_redirects=False,
            )
    except TimeoutError:
        raise UpstreamError(504, b"upstream did not answer within the first-byte timeout") from None
    except aiohttp.ClientError as exc:
        log.warning("upstream transport error", url=request.url.split("?")[0], error=str(exc))
        raise UpstreamError(0, f"upstream request failed: {exc}".encode()) from None
    if response.status >= 300:
        try:
            body = await response.content.read(MAX_ERROR_BODY)
        except (aiohttp.ClientError, TimeoutError):
            body = b""
        finally:
            response.release()
        raise UpstreamError(response.status, body, response.headers)
    return UpstreamReply(status=response.status, headers=response.headers, response=response)
