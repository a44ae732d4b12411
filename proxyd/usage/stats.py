"""Usage statistics: bounded aggregates of finished requests in the reference's JSON shape (management.md §5).

Totals, per-API-bucket and per-model counters and the day/hour maps are exact and small (one entry per bucket,
model, day and hour). Per-request ``details`` live in one ring of at most ``max_details`` entries shared by every
bucket, so memory stays bounded however long the daemon runs (the reference keeps every detail forever).

API buckets are keyed by a hash of the client key (DECISIONS 12), never the key itself.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from proxyd.pipeline.record import RequestRecord

__all__ = [
    "DEFAULT_MAX_DETAILS",
    "Detail",
    "ImportResult",
    "UnsupportedVersion",
    "UsageStats",
    "auth_index_of",
    "go_time",
]

DEFAULT_MAX_DETAILS = 10_000
MAX_DAYS = 800  # requests_by_day keeps a little over two years of days
_TOKEN_FIELDS = ("input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens", "total_tokens")


class UnsupportedVersion(ValueError):
    """An import document with a ``version`` other than 0/absent or 1."""


def auth_index_of(credential_id: str) -> str:
    """A stable 16-hex index of a credential (the reference's ``auth_index`` is an opaque hash too)."""
    if not credential_id:
        return ""
    return hashlib.sha256(credential_id.encode()).hexdigest()[:16]


def go_time(ts: float, *, utc: bool = False) -> str:
    """RFC 3339 with the fraction trimmed as Go's RFC3339Nano does; local zone offset unless ``utc``."""
    moment = datetime.fromtimestamp(ts, tz=UTC) if utc else datetime.fromtimestamp(ts).astimezone()
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    if fraction:
        base += "." + fraction
    if utc:
        return base + "Z"
    offset = moment.strftime("%z")
    return f"{base}{offset[:3]}:{offset[3:]}" if offset not in ("", "+0000") else base + "Z"


def parse_time(value: Any) -> float | None:
    """Seconds since the epoch for an RFC 3339 string (nanosecond fractions accepted), else ``None``."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:  # Python takes at most 6 fraction digits
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:digits][:6].ljust(6, '0')}{rest[digits:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.timestamp()


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value == value and value not in (float("inf"), float("-inf")):
        return max(int(value), 0)
    return 0


@attrs.frozen
class Detail:
    """One request as listed under ``apis[*].models[*].details``."""

    timestamp: float
    source: str
    auth_index: str
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    total_tokens: int = 0
    failed: bool = False
    latency_ms: float = 0.0

    @classmethod
    def normalized(cls, **fields: Any) -> Detail:
        """A detail with ``total_tokens`` filled as the reference does when it is 0."""
        detail = cls(**fields)
        total = detail.total_tokens
        if total == 0:
            total = detail.input_tokens + detail.output_tokens + detail.reasoning_tokens
        if total == 0:
            total = detail.input_tokens + detail.output_tokens + detail.reasoning_tokens + detail.cached_tokens
        return attrs.evolve(detail, total_tokens=total)

    def to_json(self) -> dict[str, Any]:
        return {
            "timestamp": go_time(self.timestamp),
            "source": self.source,
            "auth_index": self.auth_index,
            "tokens": {name: getattr(self, name) for name in _TOKEN_FIELDS},
            "failed": self.failed,
            "latency_ms": self.latency_ms,
        }

    def dedupe_key(self, api: str, model: str) -> bytes:
        """The reference's import de-duplication key (management.md §5.3), digested to 16 bytes."""
        parts = [api, model, go_time(self.timestamp, utc=True), self.source, self.auth_index,
                 "true" if self.failed else "false", *(str(getattr(self, n)) for n in _TOKEN_FIELDS)]
        return hashlib.blake2b("|".join(parts).encode(), digest_size=16).digest()


@attrs.define
class _Counters:
    """Requests, outcomes, tokens and latency of one bucket."""

    total_requests: int = 0
    success_count: int = 0
    failure_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    total_tokens: int = 0
    total_latency_ms: float = 0.0

    def add(self, detail: Detail) -> None:
        self.total_requests += 1
        if detail.failed:
            self.failure_count += 1
        else:
            self.success_count += 1
        self.input_tokens += detail.input_tokens
        self.output_tokens += detail.output_tokens
        self.reasoning_tokens += detail.reasoning_tokens
        self.cached_tokens += detail.cached_tokens
        self.total_tokens += detail.total_tokens
        self.total_latency_ms += detail.latency_ms

    def to_json(self) -> dict[str, Any]:
        return {
            "total_requests": self.total_requests,
            "success_count": self.success_count,
            "failure_count": self.failure_count,
            "total_tokens": self.total_tokens,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cached_tokens": self.cached_tokens,
            "total_latency_ms": round(self.total_latency_ms, 3),
        }

    @classmethod
    def from_json(cls, data: Any) -> _Counters:
        if not isinstance(data, Mapping):
            return cls()
        counters = cls(**{f: _int(data.get(f)) for f in (
            "total_requests", "success_count", "failure_count", "input_tokens", "output_tokens",
            "reasoning_tokens", "cached_tokens", "total_tokens")})
        if "success_count" not in data and "failure_count" not in data:
            counters.success_count = counters.total_requests
        latency = data.get("total_latency_ms")
        if isinstance(latency, int | float) and not isinstance(latency, bool) and latency >= 0:
            counters.total_latency_ms = float(latency)
        return counters


@attrs.frozen
class ImportResult:
    """What ``POST /usage/import`` answers (plus the totals after the merge)."""

    added: int
    skipped: int


def api_bucket(record: RequestRecord) -> str:
    """The ``apis`` key: the client key's hash; unauthenticated requests fall back as the reference does."""
    if record.client_key_hash:
        return record.client_key_hash
    if record.endpoint:
        route = record.endpoint
        if route.startswith("/v1beta/models/"):
            route = "/v1beta/models/*action"
        return f"POST {route}"
    return record.provider or "unknown"


class UsageStats:
    """The in-memory usage store: exact bounded aggregates plus a ring of recent request details."""

    def __init__(self, max_details: int = DEFAULT_MAX_DETAILS) -> None:
        self.max_details = max(0, max_details)
        self.totals = _Counters()
        self.apis: dict[str, _Counters] = {}
        self.models: dict[tuple[str, str], _Counters] = {}
        self.requests_by_day: dict[str, int] = {}
        self.tokens_by_day: dict[str, int] = {}
        self.failures_by_day: dict[str, int] = {}
        self.requests_by_hour: dict[str, int] = {}
        self.tokens_by_hour: dict[str, int] = {}
        self.failures_by_hour: dict[str, int] = {}
        self._details: deque[tuple[str, str, Detail]] = deque()
        # Dedupe keys of details seen (recorded or imported): bounded, oldest forgotten first.
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._max_seen = max(4 * self.max_details, 1000)
        self.revision = 0  # bumped on every change (the persister writes when it moved)

    # ------------------------------------------------------------------ recording

    def record(self, record: RequestRecord) -> None:
        """Count one finished request (the pipeline observer)."""
        latency = max(record.latency_ms, 0.0)
        detail = Detail.normalized(
            timestamp=record.timestamp - latency / 1000.0,  # when the call started, as the reference
            source=record.credential_id,
            auth_index=record.auth_index or auth_index_of(record.credential_id),
            input_tokens=max(record.input_tokens, 0),
            output_tokens=max(record.output_tokens, 0),
            reasoning_tokens=max(record.reasoning_tokens, 0),
            cached_tokens=max(record.cached_tokens, 0),
            total_tokens=max(record.total_tokens, 0),
            failed=record.failed,
            latency_ms=round(latency, 3),
        )
        model = record.upstream_model or record.model or "unknown"
        self.add(api_bucket(record), model, detail)

    def add(self, api: str, model: str, detail: Detail) -> None:
        """Fold one detail into every aggregate and the ring."""
        self._count(api, model, detail)
        self._remember(detail.dedupe_key(api, model))
        self._push(api, model, detail)
        self.revision += 1

    def _count(self, api: str, model: str, detail: Detail) -> None:
        self.totals.add(detail)
        self.apis.setdefault(api, _Counters()).add(detail)
        self.models.setdefault((api, model), _Counters()).add(detail)
        moment = time.localtime(detail.timestamp)
        day = time.strftime("%Y-%m-%d", moment)
        hour = f"{moment.tm_hour:02d}"
        for by_day, by_hour, amount in (
            (self.requests_by_day, self.requests_by_hour, 1),
            (self.tokens_by_day, self.tokens_by_hour, detail.total_tokens),
            (self.failures_by_day, self.failures_by_hour, 1 if detail.failed else 0),
        ):
            by_day[day] = by_day.get(day, 0) + amount
            by_hour[hour] = by_hour.get(hour, 0) + amount
        if len(self.requests_by_day) > MAX_DAYS:
            for oldest in sorted(self.requests_by_day)[: len(self.requests_by_day) - MAX_DAYS]:
                for by_day in (self.requests_by_day, self.tokens_by_day, self.failures_by_day):
                    by_day.pop(oldest, None)

    def _push(self, api: str, model: str, detail: Detail) -> None:
        if self.max_details == 0:
            return
        self._details.append((api, model, detail))
        while len(self._details) > self.max_details:
            self._details.popleft()

    def _remember(self, key: bytes) -> None:
        self._seen[key] = None
        while len(self._seen) > self._max_seen:
            self._seen.popitem(last=False)

    @property
    def details_count(self) -> int:
        return len(self._details)

    # ------------------------------------------------------------------ views

    def snapshot(self) -> dict[str, Any]:
        """The ``usage`` object of ``GET /usage`` (management.md §5.2), plus proxyd's extra counters."""
        grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for api, model, detail in self._details:
            grouped.setdefault((api, model), []).append(detail.to_json())
        apis: dict[str, Any] = {}
        for api in sorted(self.apis):
            counters = self.apis[api]
            apis[api] = {**counters.to_json(), "models": {}}
        for (api, model) in sorted(self.models):
            counters = self.models[(api, model)]
            entry = apis.setdefault(api, {**_Counters().to_json(), "models": {}})
            entry["models"][model] = {**counters.to_json(), "details": grouped.get((api, model), [])}
        return {
            **self.totals.to_json(),
            "apis": apis,
            "requests_by_day": dict(sorted(self.requests_by_day.items())),
            "requests_by_hour": dict(sorted(self.requests_by_hour.items())),
            "tokens_by_day": dict(sorted(self.tokens_by_day.items())),
            "tokens_by_hour": dict(sorted(self.tokens_by_hour.items())),
            "failures_by_day": dict(sorted(self.failures_by_day.items())),
            "failures_by_hour": dict(sorted(self.failures_by_hour.items())),
        }

    def export(self) -> dict[str, Any]:
        """``GET /usage/export``: ``{"version": 1, "exported_at": <UTC>, "usage": <snapshot>}``."""
        return {"version": 1, "exported_at": go_time(time.time(), utc=True), "usage": self.snapshot()}

    # ------------------------------------------------------------------ import / restore

    @staticmethod
    def _usage_of(document: Any) -> Mapping[str, Any]:
        if not isinstance(document, Mapping):
            raise ValueError("not an object")
        version = document.get("version")
        if version is not None and (isinstance(version, bool) or version not in (0, 1)):
            raise UnsupportedVersion(str(version))
        usage = document.get("usage")
        return usage if isinstance(usage, Mapping) else {}

    @staticmethod
    def _details_of(usage: Mapping[str, Any]) -> Iterable[tuple[str, str, Detail]]:
        apis = usage.get("apis")
        if not isinstance(apis, Mapping):
            return
        now = time.time()
        for api, api_entry in apis.items():
            if not isinstance(api, str) or not api.strip() or not isinstance(api_entry, Mapping):
                continue
            models = api_entry.get("models")
            if not isinstance(models, Mapping):
                continue
            for model, model_entry in models.items():
                name = model.strip() if isinstance(model, str) else ""
                details = model_entry.get("details") if isinstance(model_entry, Mapping) else None
                if not isinstance(details, list):
                    continue
                for raw in details:
                    if not isinstance(raw, Mapping):
                        continue
                    tokens = raw.get("tokens") if isinstance(raw.get("tokens"), Mapping) else {}
                    latency = raw.get("latency_ms")
                    ts = parse_time(raw.get("timestamp"))
                    yield api, name or "unknown", Detail.normalized(
                        timestamp=now if ts is None else ts,
                        source=str(raw.get("source") or ""),
                        auth_index=str(raw.get("auth_index") or ""),
                        failed=raw.get("failed") is True,
                        latency_ms=float(latency) if isinstance(latency, int | float)
                        and not isinstance(latency, bool) and latency >= 0 else 0.0,
                        **{name: _int(tokens.get(name)) for name in _TOKEN_FIELDS},
                    )

    def merge(self, document: Any) -> ImportResult:
        """``POST /usage/import``: merge the details of an export, skipping ones already counted.

        Only the details are read; aggregate numbers in the document are recomputed from them (§5.3).
        Raises ``UnsupportedVersion`` or ``ValueError`` for documents that are not an export.
        """
        usage = self._usage_of(document)
        added = skipped = 0
        for api, model, detail in self._details_of(usage):
            key = detail.dedupe_key(api, model)
            if key in self._seen:
                skipped += 1
                continue
            self.add(api, model, detail)
            added += 1
        return ImportResult(added=added, skipped=skipped)

    def restore(self, document: Any) -> None:
        """Load proxyd's own snapshot file: counters are taken as written, the details refill the ring.

        Unlike :meth:`merge`, aggregates survive even for requests whose details fell out of the ring.
        Raises ``ValueError`` when the document is not a usage snapshot.
        """
        usage = self._usage_of(document)
        if "apis" in usage and not isinstance(usage.get("apis"), Mapping):
            raise ValueError("usage.apis is not an object")
        fresh = UsageStats(self.max_details)
        fresh.totals = _Counters.from_json(usage)
        for api, api_entry in (usage.get("apis") or {}).items():
            if not isinstance(api, str) or not isinstance(api_entry, Mapping):
                continue
            fresh.apis[api] = _Counters.from_json(api_entry)
            models = api_entry.get("models")
            for model, model_entry in (models.items() if isinstance(models, Mapping) else ()):
                if isinstance(model, str):
                    fresh.models[(api, model)] = _Counters.from_json(model_entry)
        for name in ("requests_by_day", "tokens_by_day", "failures_by_day",
                     "requests_by_hour", "tokens_by_hour", "failures_by_hour"):
            raw = usage.get(name)
            if isinstance(raw, Mapping):
                getattr(fresh, name).update({str(k): _int(v) for k, v in raw.items()})
        restored = sorted(self._details_of(usage), key=lambda item: item[2].timestamp)
        for api, model, detail in restored:
            fresh._remember(detail.dedupe_key(api, model))
            fresh._push(api, model, detail)
        revision = self.revision + 1
        self.__dict__.update(fresh.__dict__)
        self.revision = revision
