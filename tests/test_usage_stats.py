"""Usage statistics: aggregates over real proxied requests, the reference's JSON shape, buckets, persistence,
bounded details, export/import with de-duplication, hashed client keys (management.md §3.8, §5; DECISIONS 12).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import bcrypt
import openai
import pytest
from aiohttp.test_utils import TestServer
from fakes import compat_config

from proxyd.app import create_app
from proxyd.pipeline.record import RequestRecord, key_fingerprint
from proxyd.usage import USAGE, UsageStats
from proxyd.usage.stats import UnsupportedVersion, go_time, parse_time

KEY = "usage-mgmt-key"
HASH = bcrypt.hashpw(KEY.encode(), bcrypt.gensalt(rounds=4)).decode()
MGMT = "/v0/management"
CLIENT_KEYS = ("client-key-alpha-0001", "client-key-bravo-0002")
MGMT_BLOCK = f"""remote-management:
  secret-key: "{HASH}"
"""


def usage_config(upstream: Any, *, enabled: bool = True, extra: str = "") -> str:
    return compat_config(upstream.base_url, api_keys=CLIENT_KEYS, extra=(
        f"request-retry: 0\nusage-statistics-enabled: {'true' if enabled else 'false'}\n{MGMT_BLOCK}{extra}"))


async def mgmt(url: str, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {KEY}"}
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    async with aiohttp.ClientSession() as s, s.request(method, f"{url}{MGMT}{path}", headers=headers,
                                                       data=data) as r:
        text = await r.read()
        return r.status, json.loads(text) if text else None


async def chat(base_v1: str, key: str, model: str = "my-model", *, stream: bool = False) -> None:
    client = openai.AsyncOpenAI(base_url=base_v1, api_key=key, max_retries=0)
    try:
        if stream:
            async for _ in await client.chat.completions.create(
                    model=model, stream=True, messages=[{"role": "user", "content": "hi"}]):
                pass
        else:
            await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    finally:
        await client.close()


def record(ts: float, *, key: str = "k1", model: str = "m", failed: bool = False, tokens: tuple[int, ...] = (10, 5),
           latency: float = 100.0) -> RequestRecord:
    return RequestRecord(
        timestamp=ts, request_id="r", endpoint="/v1/chat/completions", client_protocol="openai-chat",
        client_key_hash=key_fingerprint(key), model=model, upstream_model=model, provider="openai-compat",
        credential_id="openai-compat:abc", stream=False, status=500 if failed else 200, failed=failed,
        latency_ms=latency, attempts=1, input_tokens=tokens[0], output_tokens=tokens[1],
        total_tokens=sum(tokens),
    )


# --------------------------------------------------------------------------------- over real requests


async def test_usage_counts_real_requests_per_key_and_model(fake_openai: Any, proxyd_factory: Any) -> None:
    server = await proxyd_factory(usage_config(fake_openai))
    await chat(server.v1, CLIENT_KEYS[0])
    await chat(server.v1, CLIENT_KEYS[0], "mini", stream=True)
    await chat(server.v1, CLIENT_KEYS[1])
    fake_openai.enqueue_error(400, {"error": {"message": "bad", "type": "invalid_request_error"}})
    with pytest.raises(openai.BadRequestError):
        await chat(server.v1, CLIENT_KEYS[1])

    status, body = await mgmt(server.url, "GET", "/usage")
    assert status == 200
    usage = body["usage"]
    assert body["failed_requests"] == 1 == usage["failure_count"]
    assert usage["total_requests"] == 4 and usage["success_count"] == 3
    alpha, bravo = key_fingerprint(CLIENT_KEYS[0]), key_fingerprint(CLIENT_KEYS[1])
    assert set(usage["apis"]) == {alpha, bravo}
    assert set(usage["apis"][alpha]["models"]) == {"gpt-4o", "gpt-4o-mini"}  # upstream names, as the reference
    a_model = usage["apis"][alpha]["models"]["gpt-4o"]
    assert a_model["total_requests"] == 1 and a_model["total_tokens"] == 20
    assert a_model["input_tokens"] == 12 and a_model["output_tokens"] == 8
    [detail] = a_model["details"]
    assert set(detail) >= {"timestamp", "source", "auth_index", "tokens", "failed"}
    assert detail["tokens"] == {"input_tokens": 12, "output_tokens": 8, "reasoning_tokens": 0,
                                "cached_tokens": 0, "total_tokens": 20}
    assert detail["failed"] is False and len(detail["auth_index"]) == 16
    assert parse_time(detail["timestamp"]) == pytest.approx(time.time(), abs=60)
    b_api = usage["apis"][bravo]
    assert b_api["total_requests"] == 2 and b_api["failure_count"] == 1 and b_api["success_count"] == 1
    # a request that failed before an upstream answered is filed under the attempted upstream model when the
    # record names it, else under the model the client asked for
    b_details = [d for m in b_api["models"].values() for d in m["details"]]
    assert sorted(d["failed"] for d in b_details) == [False, True]
    assert usage["apis"][bravo]["total_tokens"] == 20  # the failed request carried no tokens
    assert usage["total_tokens"] == 60
    today = time.strftime("%Y-%m-%d")
    assert usage["requests_by_day"] == {today: 4} and usage["tokens_by_day"] == {today: 60}
    [hour] = usage["requests_by_hour"]
    assert len(hour) == 2 and hour.isdigit() and usage["requests_by_hour"][hour] == 4

    text = json.dumps(body)
    assert all(k not in text for k in CLIENT_KEYS)  # keyed by hash only
    assert "sk-up-1" not in text  # nor the upstream key (the reference's `source` would show it)


async def test_disabled_records_nothing_and_toggle_is_hot(fake_openai: Any, proxyd_factory: Any) -> None:
    server = await proxyd_factory(usage_config(fake_openai, enabled=False))
    await chat(server.v1, CLIENT_KEYS[0])
    status, body = await mgmt(server.url, "GET", "/usage")
    assert status == 200 and body == {"usage": body["usage"], "failed_requests": 0}
    usage = body["usage"]
    assert usage["total_requests"] == 0 and usage["apis"] == {}
    assert all(usage[m] == {} for m in ("requests_by_day", "requests_by_hour", "tokens_by_day", "tokens_by_hour"))

    server.config_path.write_text(usage_config(fake_openai, enabled=True))
    store = server.app[USAGE].store
    await store.reload("test")
    await chat(server.v1, CLIENT_KEYS[0])
    _, body = await mgmt(server.url, "GET", "/usage")
    assert body["usage"]["total_requests"] == 1


async def test_management_key_required(fake_openai: Any, proxyd_factory: Any) -> None:
    server = await proxyd_factory(usage_config(fake_openai))
    async with aiohttp.ClientSession() as s, s.get(f"{server.url}{MGMT}/usage") as r:
        assert r.status == 401


# --------------------------------------------------------------------------------- buckets and shape


def test_hour_and_day_buckets_use_local_time() -> None:
    stats = UsageStats()
    base = time.mktime((2026, 3, 20, 9, 15, 4, 0, 0, -1))
    stats.record(record(base + 0.1, latency=0))
    stats.record(record(base + 3600, tokens=(1, 2), latency=0))  # 10:15
    stats.record(record(base + 86400, failed=True, tokens=(0, 0), latency=0))  # next day, 09:15
    snap = stats.snapshot()
    assert snap["requests_by_day"] == {"2026-03-20": 2, "2026-03-21": 1}
    assert snap["requests_by_hour"] == {"09": 2, "10": 1}
    assert snap["tokens_by_hour"] == {"09": 15, "10": 3}
    assert snap["tokens_by_day"] == {"2026-03-20": 18, "2026-03-21": 0}
    assert snap["failures_by_day"] == {"2026-03-20": 0, "2026-03-21": 1}
    assert (snap["total_requests"], snap["success_count"], snap["failure_count"], snap["total_tokens"]) == (3, 2, 1, 18)


def test_detail_timestamp_is_call_start_and_total_is_filled() -> None:
    stats = UsageStats()
    end = time.mktime((2026, 3, 20, 9, 0, 0, 0, 0, -1)) + 2.5
    rec = record(end, tokens=(7, 3), latency=2500.0)
    stats.record(rec)
    [detail] = stats.snapshot()["apis"][key_fingerprint("k1")]["models"]["m"]["details"]
    assert parse_time(detail["timestamp"]) == pytest.approx(end - 2.5)
    assert detail["latency_ms"] == 2500.0

    stats2 = UsageStats()
    stats2.record(attrs.evolve(rec, total_tokens=0, input_tokens=0, output_tokens=0, cached_tokens=9))
    [d2] = stats2.snapshot()["apis"][key_fingerprint("k1")]["models"]["m"]["details"]
    assert d2["tokens"]["total_tokens"] == 9  # total 0 → input+output+reasoning, then + cached


def test_go_time_formats() -> None:
    ts = 1773972001.5
    assert go_time(ts, utc=True) == "2026-03-20T02:00:01.5Z"
    assert go_time(1773972001.0, utc=True) == "2026-03-20T02:00:01Z"
    assert parse_time("2026-03-20T09:15:04.512301789+08:00") == pytest.approx(1773969304.512301)
    assert parse_time(go_time(ts)) == pytest.approx(ts)


def test_unauthenticated_requests_bucket_by_route() -> None:
    stats = UsageStats()
    stats.record(attrs.evolve(record(time.time()), client_key_hash=""))
    stats.record(attrs.evolve(record(time.time()), client_key_hash="", endpoint="/v1beta/models/x:generateContent"))
    assert set(stats.snapshot()["apis"]) == {"POST /v1/chat/completions", "POST /v1beta/models/*action"}


# --------------------------------------------------------------------------------- bounded memory


def test_details_ring_is_bounded_but_counters_stay_exact() -> None:
    stats = UsageStats(max_details=50)
    now = time.time()
    for i in range(500):
        stats.record(record(now + i, model=f"m{i % 3}", latency=0))
    snap = stats.snapshot()
    details = [d for api in snap["apis"].values() for m in api["models"].values() for d in m["details"]]
    assert len(details) == 50 == stats.details_count
    assert snap["total_requests"] == 500
    assert sum(m["total_requests"] for api in snap["apis"].values() for m in api["models"].values()) == 500
    newest = max(parse_time(d["timestamp"]) for d in details)
    assert newest == pytest.approx(now + 499)  # the newest are kept
    assert len(stats._seen) <= stats._max_seen


# --------------------------------------------------------------------------------- export / import


def test_export_import_round_trip_with_dedupe() -> None:
    source = UsageStats()
    now = time.time()
    for i in range(10):
        source.record(record(now - i, key="a" if i % 2 else "b", failed=i == 3, latency=0))
    exported = source.export()
    assert exported["version"] == 1 and exported["exported_at"].endswith("Z")

    target = UsageStats()
    first = target.merge(json.loads(json.dumps(exported)))
    assert (first.added, first.skipped) == (10, 0)
    again = target.merge(exported)
    assert (again.added, again.skipped) == (0, 10)
    mine = target.snapshot()
    theirs = source.snapshot()
    for key in ("total_requests", "success_count", "failure_count", "total_tokens", "requests_by_day",
                "requests_by_hour", "tokens_by_day", "tokens_by_hour"):
        assert mine[key] == theirs[key], key
    assert mine["apis"].keys() == theirs["apis"].keys()


def test_import_rules() -> None:
    stats = UsageStats()
    detail = {"timestamp": "2026-03-20T09:15:04.512301+08:00", "source": "s", "auth_index": "i",
              "tokens": {"input_tokens": 5, "output_tokens": 5}, "failed": False}
    doc = {"usage": {"total_requests": 999, "apis": {
        "k": {"models": {"": {"details": [detail, dict(detail)]}, "m": {"details": [{"tokens": {}}]}}},
        " ": {"models": {"m": {"details": [detail]}}},  # blank API: skipped entirely, not counted
    }}}
    result = stats.merge(doc)
    assert (result.added, result.skipped) == (2, 1)  # the duplicate inside the payload is skipped
    snap = stats.snapshot()
    assert snap["total_requests"] == 2  # recomputed from the details, not the 999 in the payload
    assert set(snap["apis"]["k"]["models"]) == {"unknown", "m"}
    assert snap["apis"]["k"]["models"]["unknown"]["total_tokens"] == 10  # total filled from parts
    with pytest.raises(UnsupportedVersion):
        stats.merge({"version": 2, "usage": {}})
    assert stats.merge({"version": 0, "usage": {}}).added == 0


async def test_import_and_export_endpoints(fake_openai: Any, proxyd_factory: Any) -> None:
    server = await proxyd_factory(usage_config(fake_openai, enabled=False))  # import is not gated by the flag
    other = UsageStats()
    other.record(record(time.time(), failed=True, latency=0))
    other.record(record(time.time() - 5, latency=0))
    status, body = await mgmt(server.url, "POST", "/usage/import", other.export())
    assert status == 200
    assert body == {"added": 2, "skipped": 0, "total_requests": 2, "failed_requests": 1}
    status, body = await mgmt(server.url, "POST", "/usage/import", other.export())
    assert body["added"] == 0 and body["skipped"] == 2
    assert await mgmt(server.url, "POST", "/usage/import", raw=b"{nope") == (400, {"error": "invalid json"})
    assert await mgmt(server.url, "POST", "/usage/import", {"version": 7}) == (400, {"error": "unsupported version"})
    status, exported = await mgmt(server.url, "GET", "/usage/export")
    assert status == 200 and exported["version"] == 1 and exported["usage"]["total_requests"] == 2


async def test_import_read_whole_when_the_body_arrives_in_pieces(fake_openai: Any, proxyd_factory: Any) -> None:
    """A chunked upload arriving slowly is read to its end (reading with content.read(n) saw only the first part)."""
    server = await proxyd_factory(usage_config(fake_openai, enabled=False))
    other = UsageStats()
    for i in range(50):
        other.record(record(time.time() - i, latency=0))
    payload = json.dumps(other.export()).encode()

    async def pieces() -> Any:
        for start in range(0, len(payload), 1024):
            yield payload[start:start + 1024]
            await asyncio.sleep(0.01)

    async with aiohttp.ClientSession() as s, s.post(f"{server.url}{MGMT}/usage/import", data=pieces(),
                                                    headers={"Authorization": f"Bearer {KEY}"}) as r:
        assert r.status == 200
        assert (await r.json())["added"] == 50


# --------------------------------------------------------------------------------- persistence


async def _start(config_path: Path) -> TestServer:
    server = TestServer(create_app(config_path, watch=False), host="127.0.0.1")
    await server.start_server()
    return server


async def test_counts_survive_a_restart(fake_openai: Any, tmp_config: Any) -> None:
    path = tmp_config(usage_config(fake_openai))
    server = await _start(path)
    try:
        await chat(f"http://127.0.0.1:{server.port}/v1", CLIENT_KEYS[0])
        await chat(f"http://127.0.0.1:{server.port}/v1", CLIENT_KEYS[1])
    finally:
        await server.close()  # flushes at shutdown
    snapshot = path.parent / "usage-statistics.json"
    assert snapshot.exists()
    assert oct(snapshot.stat().st_mode & 0o777) == "0o600"
    text = snapshot.read_text()
    assert all(k not in text for k in CLIENT_KEYS)
    assert not list(path.parent.glob(".usage-statistics.json.*"))  # atomic writes leave no temp files

    server = await _start(path)
    try:
        _, body = await mgmt(f"http://127.0.0.1:{server.port}", "GET", "/usage")
        assert body["usage"]["total_requests"] == 2
        await chat(f"http://127.0.0.1:{server.port}/v1", CLIENT_KEYS[0])
        _, body = await mgmt(f"http://127.0.0.1:{server.port}", "GET", "/usage")
        assert body["usage"]["total_requests"] == 3
        assert body["usage"]["apis"][key_fingerprint(CLIENT_KEYS[0])]["models"]["gpt-4o"]["total_requests"] == 2
    finally:
        await server.close()


async def test_periodic_flush_and_configurable_path(fake_openai: Any, tmp_config: Any, tmp_path: Path) -> None:
    path = tmp_config(usage_config(fake_openai, extra="usage-statistics-file: stats/u.json\n"
                                                      "usage-statistics-flush-seconds: 0.05\n"))
    server = await _start(path)
    try:
        await chat(f"http://127.0.0.1:{server.port}/v1", CLIENT_KEYS[0])
        target = tmp_path / "stats" / "u.json"
        for _ in range(100):
            if target.exists():
                break
            await asyncio.sleep(0.02)
        data = json.loads(target.read_text())
        assert data["version"] == 1 and data["usage"]["total_requests"] == 1
    finally:
        await server.close()


async def test_bounded_details_survive_restart_with_exact_counters(tmp_path: Path) -> None:
    stats = UsageStats(max_details=5)
    for i in range(40):
        stats.record(record(time.time() + i, latency=0))
    restored = UsageStats(max_details=5)
    restored.restore(json.loads(json.dumps({"version": 1, "usage": stats.snapshot()})))
    snap = restored.snapshot()
    assert snap["total_requests"] == 40 and restored.details_count == 5
    assert snap["apis"][key_fingerprint("k1")]["models"]["m"]["total_requests"] == 40


async def test_corrupted_snapshot_is_reported_and_ignored(fake_openai: Any, tmp_config: Any, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_config(usage_config(fake_openai))
    (tmp_path / "usage-statistics.json").write_text('{"version": 1, "usage": {"apis": [')
    server = await _start(path)
    try:
        _, body = await mgmt(f"http://127.0.0.1:{server.port}", "GET", "/usage")
        assert body["usage"]["total_requests"] == 0
        await chat(f"http://127.0.0.1:{server.port}/v1", CLIENT_KEYS[0])
    finally:
        await server.close()
    kept = [p.path for p in os.scandir(tmp_path) if p.name.startswith("usage-statistics.json.corrupt-")]
    assert len(kept) == 1
    with open(kept[0]) as fh:  # noqa: ASYNC230 - a test reading a tiny file
        assert fh.read().startswith('{"version"')  # set aside, not overwritten
    assert json.loads((tmp_path / "usage-statistics.json").read_text())["usage"]["total_requests"] == 1


@pytest.mark.parametrize("bad", ['"a string"', '{"version": 9}', '{"usage": {"apis": 3}}', "[]"])
def test_restore_rejects_non_snapshots(bad: str) -> None:
    with pytest.raises(ValueError, match=r".+"):
        UsageStats().restore(json.loads(bad))
