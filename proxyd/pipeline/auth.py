"""auth stage: the client key from any of the reference's five places, checked in constant time."""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterable

from aiohttp import web

from proxyd.http.errors import ProxyError
from proxyd.pipeline.exchange import Exchange


def key_candidates(request: web.Request) -> list[str]:
    """Candidate keys in the reference's order: Authorization, X-Goog-Api-Key, X-Api-Key, ?key=, ?auth_token=."""
    out: list[str] = []
    auth = request.headers.get("Authorization", "").strip()
    if auth:
        scheme, sep, token = auth.partition(" ")
        out.append(token.strip() if sep and scheme.lower() == "bearer" else auth)
    for header in ("X-Goog-Api-Key", "X-Api-Key"):
        value = request.headers.get(header, "")
        if value:
            out.append(value)
    for param in ("key", "auth_token"):
        value = request.query.get(param, "")
        if value:
            out.append(value)
    return out


def match_key(candidates: Iterable[str], keys: Iterable[str]) -> str | None:
    """The first candidate equal to a configured key.

    Keys are compared by their SHA-256 digests in a table built once per key set, then confirmed with a
    constant-time comparison: the time taken says nothing about how much of a guess was right, and it does not
    grow with the number of configured keys."""
    table = _digests(keys if isinstance(keys, frozenset) else frozenset(keys))
    for candidate in candidates:
        raw = candidate.encode()
        key = table.get(hashlib.sha256(raw).digest())
        if key is not None and hmac.compare_digest(raw, key):
            return candidate
    return None


@functools.lru_cache(maxsize=8)
def _digests(keys: frozenset[str]) -> dict[bytes, bytes]:
    return {hashlib.sha256(k.encode()).digest(): k.encode() for k in keys}


def authenticate(request: web.Request, keys: frozenset[str]) -> str | None:
    """The matched client key (None when access is open), or ProxyError 401."""
    if not keys:
        return None
    candidates = key_candidates(request)
    if not candidates:
        raise ProxyError(401, "Missing API key", type="invalid_request_error", code="invalid_api_key")
    matched = match_key(candidates, keys)
    if matched is None:
        raise ProxyError(401, "Invalid API key", type="invalid_request_error", code="invalid_api_key")
    return matched


class AuthStage:
    """Rejects requests without a valid client key (open access when `api-keys` is empty)."""

    name = "auth"

    async def run(self, exchange: Exchange) -> None:
        exchange.client_key = authenticate(exchange.request, exchange.runtime.api_keys)
