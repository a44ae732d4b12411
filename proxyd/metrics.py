"""Process-wide metrics and their Prometheus text exposition (format 0.0.4), written by hand.

Everything runs on the event loop, so plain dicts suffice. The hooks other parts call:

* :func:`record_request` — the request-metrics middleware (``proxyd.http.request_metrics``);
* :func:`record_upstream` — the dispatch stage, once per upstream attempt (status 0 = transport failure), or
  :func:`upstream_timer` around the attempt, which times it and takes the status from the raised error;
* :func:`record_tokens` — token accounting; :func:`observe_request` does it for every finished request as a
  pipeline observer (``proxyd.routes.metrics`` registers it), so nothing else needs to call it for proxied traffic;
* :func:`stream_started` / :func:`stream_finished` — the middleware, around SSE and WebSocket responses.

Credential counts are not recorded: they are read from the live runtime at scrape time.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from proxyd import __version__

__all__ = [
    "CONTENT_TYPE",
    "DURATION_BUCKETS",
    "METRICS",
    "Histogram",
    "Metrics",
    "observe_request",
    "record_request",
    "record_tokens",
    "record_upstream",
    "stream_finished",
    "stream_started",
    "upstream_timer",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# LLM calls range from milliseconds (errors, counts) to many minutes (long streams).
DURATION_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
TOKEN_DIRECTIONS = ("input", "output", "reasoning", "cached")
_INPUT, _OUTPUT, _REASONING, _CACHED = ((d,) for d in TOKEN_DIRECTIONS)  # the label tuples of `tokens`

Labels = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


class Histogram:
    """Cumulative-bucket histogram per label set."""

    def __init__(self, buckets: Sequence[float] = DURATION_BUCKETS) -> None:
        self.buckets = tuple(sorted(buckets))
        self.counts: dict[Labels, list[int]] = {}
        self.sums: dict[Labels, float] = {}

    def observe(self, labels: Labels, value: float) -> None:
        counts = self.counts.get(labels)
        if counts is None:
            counts = self.counts[labels] = [0] * (len(self.buckets) + 1)
            self.sums[labels] = 0.0
        counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sums[labels] += value

    def count(self, labels: Labels) -> int:
        return sum(self.counts.get(labels, ()))

    def render(self, name: str, names: Sequence[str]) -> Iterable[str]:
        for labels in sorted(self.counts):
            running = 0
            for bound, n in zip((*self.buckets, math.inf), self.counts[labels], strict=True):
                running += n
                le = 'le="' + _number(float(bound)) + '"'
                yield f"{name}_bucket{_labels(names, labels, le)} {running}"
            yield f"{name}_sum{_labels(names, labels)} {_number(self.sums[labels])}"
            yield f"{name}_count{_labels(names, labels)} {running}"


class Metrics:
    """Every series proxyd exports."""

    def __init__(self) -> None:
        self.requests: Counter[Labels] = Counter()  # (route, status)
        self.request_duration = Histogram()  # (route,)
        self.upstream_errors: Counter[Labels] = Counter()  # (provider, status)
        self.upstream_duration = Histogram()  # (provider,)
        self.tokens: Counter[Labels] = Counter({(d,): 0 for d in ("input", "output")})  # (direction,)
        self.inflight_streams = 0

    def record_request(self, route: str, status: int, seconds: float) -> None:
        self.requests[(route, str(status))] += 1
        self.request_duration.observe((route,), max(seconds, 0.0))

    def record_upstream(self, provider: str, status: int, seconds: float) -> None:
        if status == 0 or status >= 400:
            self.upstream_errors[(provider, str(status))] += 1
        self.upstream_duration.observe((provider,), max(seconds, 0.0))

    def record_tokens(self, direction: str, count: int) -> None:
        if count > 0 and direction in TOKEN_DIRECTIONS:
            self.tokens[(direction,)] += int(count)

    def render(self, credentials: Iterable[tuple[str, str]] = ()) -> str:
        """The exposition text; ``credentials`` are (provider, state) pairs, one per credential."""
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        def counter(name: str, names: Sequence[str], values: Counter[Labels]) -> None:
            out.extend(f"{name}{_labels(names, labels)} {values[labels]}" for labels in sorted(values))

        family("proxyd_build_info", "gauge", "proxyd version (always 1).")
        out.append(f'proxyd_build_info{{version="{_escape(__version__)}"}} 1')
        family("proxyd_requests_total", "counter", "HTTP requests answered, by route template and status.")
        counter("proxyd_requests_total", ("route", "status"), self.requests)
        family("proxyd_request_duration_seconds", "histogram", "Time from request to the end of the response.")
        out.extend(self.request_duration.render("proxyd_request_duration_seconds", ("route",)))
        family("proxyd_upstream_errors_total", "counter",
               "Failed upstream attempts, by provider and status (0 = transport failure).")
        counter("proxyd_upstream_errors_total", ("provider", "status"), self.upstream_errors)
        family("proxyd_upstream_duration_seconds", "histogram", "Time until an upstream answered or failed.")
        out.extend(self.upstream_duration.render("proxyd_upstream_duration_seconds", ("provider",)))
        family("proxyd_tokens_total", "counter", "Tokens accounted, by direction.")
        counter("proxyd_tokens_total", ("direction",), self.tokens)
        family("proxyd_inflight_streams", "gauge", "Streaming responses (SSE, WebSocket) being written now.")
        out.append(f"proxyd_inflight_streams {self.inflight_streams}")
        family("proxyd_credentials", "gauge", "Configured upstream credentials, by provider and state.")
        counter("proxyd_credentials", ("provider", "state"), Counter(credentials))
        return "\n".join(out) + "\n"


METRICS = Metrics()


def record_request(route: str, status: int, seconds: float) -> None:
    """One answered HTTP request (``route`` is the route template, never the raw path)."""
    METRICS.record_request(route, status, seconds)


def record_upstream(provider: str, status: int, seconds: float) -> None:
    """One upstream attempt: its provider, the HTTP status (0 = transport failure) and how long it took."""
    METRICS.record_upstream(provider, status, seconds)


def record_tokens(direction: str, count: int) -> None:
    """Tokens of one request: ``direction`` is ``input`` or ``output`` (also ``reasoning``, ``cached``; others
    are ignored so a typo cannot explode the label set)."""
    METRICS.record_tokens(direction, count)


def observe_request(record: Any) -> None:
    """A pipeline observer: the tokens of one finished request (a ``RequestRecord``; read by attribute name).

    ``reasoning`` and ``cached`` are subsets of ``output`` and ``input``, kept as their own directions.
    """
    tokens = METRICS.tokens
    for key, count in ((_INPUT, getattr(record, "input_tokens", 0)), (_OUTPUT, getattr(record, "output_tokens", 0)),
                       (_REASONING, getattr(record, "reasoning_tokens", 0)),
                       (_CACHED, getattr(record, "cached_tokens", 0))):
        if type(count) is int and count > 0:
            tokens[key] += count


def stream_started() -> None:
    """A streaming response began."""
    METRICS.inflight_streams += 1


def stream_finished() -> None:
    """A streaming response ended."""
    METRICS.inflight_streams = max(0, METRICS.inflight_streams - 1)


class _UpstreamTimer:
    """The context manager :func:`upstream_timer` returns (a class: cheaper per attempt than a generator)."""

    __slots__ = ("provider", "started")

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.monotonic()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: Any) -> None:
        if kind is None:
            status = 200
        elif isinstance(exc, asyncio.CancelledError) or not isinstance(exc, Exception):
            return
        else:
            status = getattr(exc, "status", 0)
        record_upstream(self.provider, status if isinstance(status, int) else 0, time.monotonic() - self.started)


def upstream_timer(provider: str) -> _UpstreamTimer:
    """Time one upstream attempt: success counts as 200, an exception's ``status`` attribute (0 when it has none)
    as a failure; a cancelled attempt is not recorded."""
    return _UpstreamTimer(provider)
