"""`POST /v0/management/api-call`: a provider call made with a stored credential (management.md §3.10).

DECISIONS 11 narrows the reference's open relay: only hosts of configured credentials and the providers'
public API hosts are reachable; every address a name resolves to is checked when the connection is made
(loopback, private, link-local, metadata and other special addresses only for a host that is a configured
base-url); redirects are not followed; answers are capped in size and time; the credential's token is never
echoed back.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import aiohttp
import structlog
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from proxyd.credentials.model import Credential, auth_index_of
from proxyd.http.body import read_limited
from proxyd.keys import RUNTIME

log = structlog.get_logger(__name__)

TOKEN_PLACEHOLDER = "$TOKEN$"
MAX_ANSWER_BYTES = 8 * 1024 * 1024
MAX_REQUEST_BYTES = 8 * 1024 * 1024  # the call's description, its `data` included
TIMEOUT_SECONDS = 60
PUBLIC_PROVIDER_HOSTS = frozenset({
    "api.anthropic.com", "generativelanguage.googleapis.com", "aiplatform.googleapis.com",
    "cloudcode-pa.googleapis.com", "chatgpt.com", "api.openai.com", "openrouter.ai",
    "portal.qwen.ai", "apis.iflow.cn", "api.kimi.com",
})


def _special(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


class CheckingResolver(AbstractResolver):
    """Resolves like aiohttp, then refuses special addresses unless the host is a configured base-url host."""

    def __init__(self, trusted_hosts: Iterable[str]) -> None:
        self._inner = DefaultResolver()
        self._trusted = {h.lower() for h in trusted_hosts}

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if host.lower() not in self._trusted:
            for result in results:
                if _special(result["host"]):
                    raise OSError(f"{host} resolves to a non-public address")
        return results

    async def close(self) -> None:
        await self._inner.close()


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _configured_hosts(credentials: Iterable[Credential]) -> set[str]:
    return {h.lower() for c in credentials if (h := urlsplit(c.base_url).hostname)}


async def api_call(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME].current
    try:
        raw = await read_limited(request, MAX_REQUEST_BYTES)
        if raw is None:
            return _error(413, "request body too large")
        body = json.loads(raw)
    except ValueError:
        return _error(400, "invalid body")
    if not isinstance(body, dict):
        return _error(400, "invalid body")
    wanted = next((str(body[k]) for k in ("auth_index", "authIndex", "AuthIndex") if body.get(k)), "")
    method = str(body.get("method") or "").strip().upper()
    if not method:
        return _error(400, "missing method")
    url = str(body.get("url") or "").strip()
    if not url:
        return _error(400, "missing url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return _error(400, "invalid url")
    credential = next((c for c in runtime.credentials if wanted and auth_index_of(c) == wanted), None)
    headers = body.get("header") or {}
    if not isinstance(headers, dict):
        return _error(400, "invalid body")
    token = credential.api_key if credential is not None else ""
    if credential is not None and not token:
        return _error(400, "auth token not found")
    out_headers = {str(k): str(v).replace(TOKEN_PLACEHOLDER, token) if token else str(v) for k, v in headers.items()}
    configured = _configured_hosts(runtime.credentials)
    host = parts.hostname.lower()
    if host not in configured and host not in PUBLIC_PROVIDER_HOSTS:
        log.warning("api-call refused: host not allowed", host=host)
        return _error(403, "host not allowed")
    data = body.get("data")
    proxy = (credential.proxy_url if credential is not None else "") or runtime.config.proxy_url
    if proxy.lower() in ("direct", "none") or proxy.startswith("socks"):
        proxy = ""  # SOCKS proxies are not used for api-call (documented); direct means direct
    connector = aiohttp.TCPConnector(resolver=CheckingResolver(configured))
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session, session.request(
                method, url, headers=out_headers, data=data.encode() if isinstance(data, str) and data else None,
                proxy=proxy or None, allow_redirects=False) as response:
            answer = bytearray()
            async for chunk in response.content.iter_any():
                answer += chunk
                if len(answer) > MAX_ANSWER_BYTES:
                    return _error(502, "response too large")
            status, answer_headers = response.status, response.headers
    except aiohttp.ClientPayloadError:
        return _error(502, "failed to read response")
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        log.warning("api-call failed", host=host, error=type(exc).__name__)
        return _error(502, "request failed")
    text = bytes(answer).decode("utf-8", "replace")
    grouped: dict[str, list[str]] = {}
    for name, value in answer_headers.items():
        grouped.setdefault(name, []).append(value.replace(token, "***") if token else value)
    if token:
        text = text.replace(token, "***")  # a stored secret never travels back to the browser
    return web.json_response({"status_code": status, "header": grouped, "body": text})


__all__ = ["CheckingResolver", "ResolveResult", "api_call", "auth_index_of"]
