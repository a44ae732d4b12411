"""Per-credential activity shown by ``GET /auth-files``: recent request buckets and upstream quota signals.

*Recent requests* (the recorded reference build's ``recent_requests``): successes and failures counted in
20 ten-minute wall-clock buckets; the snapshot lists the last 20 buckets, oldest first, each labelled
``HH:MM-HH:MM`` in local time, zero where nothing happened.

*Quota signals* (the recorded build's ``quota.signals``): the rate-limit and quota headers of the newest upstream
answer for the credential that carried any (``x-ratelimit-*``, ``anthropic-ratelimit-*``, ``x-codex-*``
windows, ``retry-after``…), by lower-case header name. Bounded in count and length; never a secret (these
headers carry limits and counters, not credentials).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

__all__ = ["BUCKET_COUNT", "BUCKET_SECONDS", "QuotaSignals", "RecentRequests", "quota_headers"]

BUCKET_SECONDS = 10 * 60
BUCKET_COUNT = 20

QUOTA_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "x-codex-", "x-rate-limit-", "ratelimit-")
QUOTA_NAMES = frozenset({"retry-after", "ratelimit", "ratelimit-policy"})
MAX_SIGNALS = 32
MAX_VALUE_CHARS = 256


class RecentRequests:
    """A ring of :data:`BUCKET_COUNT` buckets: ``[bucket id, successes, failures]`` each."""

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: list[list[int]] = [[-1, 0, 0] for _ in range(BUCKET_COUNT)]

    def record(self, now: float, *, success: bool) -> None:
        bucket_id = int(now // BUCKET_SECONDS)
        bucket = self._buckets[bucket_id % BUCKET_COUNT]
        if bucket[0] != bucket_id:
            bucket[:] = [bucket_id, 0, 0]
        bucket[1 if success else 2] += 1

    def snapshot(self, now: float) -> list[dict[str, object]]:
        """The last :data:`BUCKET_COUNT` buckets up to the current one, oldest first."""
        current = int(now // BUCKET_SECONDS)
        out: list[dict[str, object]] = []
        for bucket_id in range(current - BUCKET_COUNT + 1, current + 1):
            stored = self._buckets[bucket_id % BUCKET_COUNT]
            hit = stored[0] == bucket_id
            out.append({"time": bucket_label(bucket_id), "success": stored[1] if hit else 0,
                        "failed": stored[2] if hit else 0})
        return out


def bucket_label(bucket_id: int) -> str:
    """``HH:MM-HH:MM`` of a bucket, local time."""
    start = bucket_id * BUCKET_SECONDS
    first = time.strftime("%H:%M", time.localtime(start))
    return f"{first}-{time.strftime('%H:%M', time.localtime(start + BUCKET_SECONDS))}"


def quota_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> dict[str, str]:
    """The quota-related headers of an upstream answer, by lower-case name (bounded)."""
    if headers is None:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in items:
        key = str(name).strip().lower()
        if key in QUOTA_NAMES or key.startswith(QUOTA_PREFIXES):
            text = str(value).strip()
            if text and "\n" not in text and "\r" not in text:
                out[key] = text[:MAX_VALUE_CHARS]
                if len(out) >= MAX_SIGNALS:
                    break
    return out


class QuotaSignals:
    """The newest non-empty set of quota headers seen for one credential."""

    __slots__ = ("observed_at", "signals")

    def __init__(self) -> None:
        self.signals: dict[str, str] = {}
        self.observed_at = 0.0

    def observe(self, headers: Mapping[str, str] | Iterable[tuple[str, str]] | None, now: float) -> None:
        found = quota_headers(headers)
        if found:
            self.signals, self.observed_at = found, now
