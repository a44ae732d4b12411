"""The access line's direct writer (proxyd.log.emit_line) writes what the structlog chain would."""

from __future__ import annotations

import datetime
import io
import json
import random
import uuid

import structlog

from proxyd import log
from proxyd.http.request_id import new_request_id


def test_utc_timestamp_matches_structlog_iso_format() -> None:
    rng = random.Random(7)
    samples = [0, 10**9, 1_764_637_023_000_000_999] + [rng.randrange(10**18, 2 * 10**18) for _ in range(2000)]
    for ns in samples:
        second, micro = divmod(ns // 1000, 10**6)
        expected = datetime.datetime.fromtimestamp(second, tz=datetime.UTC).replace(microsecond=micro)
        assert log.utc_timestamp(ns) == expected.isoformat().replace("+00:00", "Z")


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_emit_line_equals_the_structlog_chain() -> None:
    stream = io.StringIO()
    seen: list[tuple[str, dict, str, int]] = []

    def sink(_created: float, level: str, event: dict, filename: str, lineno: int) -> None:
        seen.append((level, dict(event), filename, lineno))

    log.setup_logging(fmt="json", stream=stream)
    log.add_event_sink(sink)
    try:
        structlog.contextvars.bind_contextvars(request_id="abc123")
        fields = {"method": "POST", "path": "/v1/chat/completions", "status": 200, "latency_ms": 1.5,
                  "peer": "127.0.0.1", "model": "m"}
        structlog.get_logger("proxyd.access").info("request", **fields)
        log.emit_line("info", "request", dict(fields), "access_log.py", 1)
        log._flush()
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
        log.remove_event_sink(sink)
    chain, direct = _lines(stream)
    assert list(chain) == list(direct)  # same keys in the same order
    chain.pop("timestamp")
    direct.pop("timestamp")
    assert chain == direct
    assert [s[0] for s in seen] == ["info", "info"]
    assert seen[1][1]["request_id"] == "abc123" and seen[1][2:] == ("access_log.py", 1)


def test_emit_line_follows_a_reconfigured_structlog() -> None:
    with structlog.testing.capture_logs() as logs:
        log.emit_line("info", "request", {"status": 204}, "access_log.py", 1)
    assert logs == [{"event": "request", "status": 204, "log_level": "info"}]


def test_request_ids_are_distinct_uuid4s() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids)
