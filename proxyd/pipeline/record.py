"""What one finished request looked like, for observers (usage statistics, metrics): no secrets inside."""

from __future__ import annotations

import functools
import hashlib
import time

import attrs

from proxyd.credentials.model import auth_index_of
from proxyd.pipeline.exchange import Exchange


def key_fingerprint(client_key: str | None) -> str:
    """A stable, non-reversible id of a client key (DECISIONS 12: usage is keyed by a hash, never the key)."""
    if not client_key:
        return ""
    return _fingerprint(client_key)


@functools.lru_cache(maxsize=1024)
def _fingerprint(client_key: str) -> str:
    return hashlib.sha256(client_key.encode()).hexdigest()[:16]


@attrs.define
class RequestRecord:
    """One proxied request, after its answer was written (or failed). Observers treat it as read-only (not
    frozen: a frozen attrs class costs a setattr call per field, about 20 K instructions per request)."""

    timestamp: float
    request_id: str
    endpoint: str
    client_protocol: str
    client_key_hash: str
    model: str
    upstream_model: str
    provider: str
    credential_id: str
    stream: bool
    status: int
    failed: bool
    latency_ms: float
    attempts: int
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    auth_index: str = ""  # the credential's stable index (proxyd/credentials/index.py)


def record_of(exchange: Exchange, status: int) -> RequestRecord:
    chosen = exchange.chosen
    usage = exchange.usage
    return RequestRecord(
        timestamp=time.time(),
        request_id=exchange.request_id,
        endpoint=exchange.request.path,
        client_protocol=str(exchange.protocol),
        client_key_hash=key_fingerprint(exchange.client_key),
        model=exchange.model,
        upstream_model=chosen.upstream_model if chosen else (
            exchange.attempts[-1].upstream_model if exchange.attempts else ""),
        provider=chosen.route.credential.provider if chosen else "",
        credential_id=chosen.credential_id if chosen else "",
        stream=exchange.stream,
        status=status,
        failed=status >= 400 or exchange.failed_mid_stream,
        latency_ms=round((time.perf_counter() - exchange.started) * 1000, 3),
        attempts=len(exchange.attempts),
        input_tokens=usage.input_tokens if usage else 0,
        output_tokens=usage.output_tokens if usage else 0,
        cached_tokens=usage.cached_tokens if usage else 0,
        reasoning_tokens=usage.reasoning_tokens if usage else 0,
        total_tokens=usage.total if usage else 0,
        auth_index=auth_index_of(chosen.route.credential) if chosen else "",
    )
