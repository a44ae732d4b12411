"""/metrics (Prometheus text, parsed with prometheus_client's parser), its access rule, /healthz and /readyz."""

from __future__ import annotations

import asyncio
import math

import aiohttp
import openai
import pytest
from fakes import FakeOpenAIUpstream, compat_config
from prometheus_client.parser import text_string_to_metric_families

from proxyd import metrics
from proxyd.metrics import Metrics, upstream_timer

MESSAGES = [{"role": "user", "content": "hi"}]


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def _scrape(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics", headers=headers or {}) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


# --------------------------------------------------------------------------------------- the exposition


def test_exposition_parses_and_escapes_labels() -> None:
    m = Metrics()
    m.record_request('/odd"route\\\n', 200, 0.2)
    m.record_request("/v1/chat/completions", 200, 0.004)
    m.record_request("/v1/chat/completions", 502, 7.0)
    m.record_upstream("fake", 200, 0.5)
    m.record_upstream("fake", 429, 0.1)
    m.record_upstream("fake", 0, 3.0)
    m.record_tokens("input", 12)
    m.record_tokens("output", 8)
    m.record_tokens("bogus", 5)  # ignored: the label set stays bounded
    m.inflight_streams = 2
    samples = _samples(m.render([("fake", "available"), ("fake", "available"), ("claude", "available")]))
    assert _value(samples, "proxyd_requests_total", route='/odd"route\\\n', status="200") == 1
    assert _value(samples, "proxyd_requests_total", route="/v1/chat/completions", status="502") == 1
    bucket = "proxyd_request_duration_seconds_bucket"
    assert _value(samples, bucket, route="/v1/chat/completions", le="0.005") == 1
    assert _value(samples, bucket, route="/v1/chat/completions", le="5.0") == 1
    assert _value(samples, bucket, route="/v1/chat/completions", le="+Inf") == 2
    assert math.isclose(_value(samples, "proxyd_request_duration_seconds_sum", route="/v1/chat/completions"), 7.004)
    assert _value(samples, "proxyd_upstream_errors_total", provider="fake", status="429") == 1
    assert _value(samples, "proxyd_upstream_errors_total", provider="fake", status="0") == 1
    assert ("proxyd_upstream_errors_total", frozenset({("provider", "fake"), ("status", "200")})) not in samples
    assert _value(samples, "proxyd_upstream_duration_seconds_count", provider="fake") == 3
    assert _value(samples, "proxyd_tokens_total", direction="input") == 12
    assert _value(samples, "proxyd_tokens_total", direction="output") == 8
    assert ("proxyd_tokens_total", frozenset({("direction", "bogus")})) not in samples
    assert _value(samples, "proxyd_inflight_streams") == 2
    assert _value(samples, "proxyd_credentials", provider="fake", state="available") == 2
    assert _value(samples, "proxyd_credentials", provider="claude", state="available") == 1


def test_observe_request_reads_a_request_record() -> None:
    from proxyd.pipeline.record import RequestRecord

    m = metrics.METRICS
    before = {d: m.tokens[(d,)] for d in ("input", "output", "cached", "reasoning")}
    record = RequestRecord(timestamp=0.0, request_id="r", endpoint="/v1/chat/completions", client_protocol="openai",
                           client_key_hash="", model="m", upstream_model="u", provider="p", credential_id="c",
                           stream=False, status=200, failed=False, latency_ms=1.0, attempts=1, input_tokens=30,
                           output_tokens=7, cached_tokens=10, reasoning_tokens=2, total_tokens=37)
    metrics.observe_request(record)
    assert {d: m.tokens[(d,)] - before[d] for d in before} == {"input": 30, "output": 7, "cached": 10, "reasoning": 2}


def test_upstream_timer_records_success_and_failure() -> None:
    class Failed(Exception):
        status = 503

    before = dict(metrics.METRICS.upstream_errors)
    count = metrics.METRICS.upstream_duration.count(("timer-test",))
    with upstream_timer("timer-test"):
        pass
    with pytest.raises(Failed), upstream_timer("timer-test"):
        raise Failed
    with pytest.raises(ValueError, match="no status"), upstream_timer("timer-test"):
        raise ValueError("no status")
    assert metrics.METRICS.upstream_duration.count(("timer-test",)) == count + 3
    errors = metrics.METRICS.upstream_errors
    assert errors[("timer-test", "503")] == before.get(("timer-test", "503"), 0) + 1
    assert errors[("timer-test", "0")] == before.get(("timer-test", "0"), 0) + 1


# ------------------------------------------------------------------------------------- served, in-process


async def test_metrics_count_requests_and_streams(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url))
    client = openai.AsyncOpenAI(base_url=server.v1, api_key="client-key", max_retries=0)
    _status, _type, text = await _scrape(server.url)
    before = _samples(text)

    await client.chat.completions.create(model="my-model", messages=MESSAGES)
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/no/such/path") as resp:
        assert resp.status == 404

    # While a slow stream runs, it is in flight.
    fake_openai.chunk_count, fake_openai.chunk_delay = 4, 0.3
    stream = await client.chat.completions.create(model="my-model", messages=MESSAGES, stream=True)
    first = await anext(aiter(stream))
    assert first is not None
    status, content_type, text = await _scrape(server.url)
    assert status == 200
    assert content_type.startswith("text/plain") and "version=0.0.4" in content_type
    assert _value(_samples(text), "proxyd_inflight_streams") >= 1
    async for _chunk in stream:
        pass
    await client.close()

    async def settled() -> dict:
        return _samples((await _scrape(server.url))[2])

    after = await settled()
    for _ in range(20):
        if _value(after, "proxyd_inflight_streams") == 0:
            break
        await asyncio.sleep(0.05)
        after = await settled()
    route = "/v1/chat/completions"

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("proxyd_requests_total", route=route, status="200") == 2
    assert delta("proxyd_requests_total", route=route, status="404") == 1
    assert delta("proxyd_requests_total", route="unmatched", status="404") == 1
    assert delta("proxyd_request_duration_seconds_count", route=route) == 3
    assert delta("proxyd_requests_total", route="/metrics", status="200") >= 2
    assert _value(after, "proxyd_inflight_streams") == 0
    # Tokens come from the pipeline's request records (the fake reports 12 in / 8 out per answer).
    assert delta("proxyd_tokens_total", direction="input") >= fake_openai.prompt_tokens
    assert delta("proxyd_tokens_total", direction="output") >= fake_openai.completion_tokens
    assert _value(after, "proxyd_credentials", provider="fake", state="available") == 1
    # The raw path never becomes a label.
    assert all(("route", "/no/such/path") not in labels for _name, labels in after)


async def test_metrics_are_loopback_only_without_a_management_key(fake_openai, proxyd_factory) -> None:
    text = compat_config(fake_openai.base_url, extra='trusted-proxies: ["127.0.0.1/32"]\n')
    server = await proxyd_factory(text)
    assert (await _scrape(server.url))[0] == 200
    status, _type, body = await _scrape(server.url, {"X-Forwarded-For": "203.0.113.9"})
    assert status == 403
    assert "loopback" in body


async def test_metrics_need_the_management_key_when_one_is_set(fake_openai, proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url,
                                                extra='remote-management:\n  secret-key: "metrics-secret"\n'))
    assert (await _scrape(server.url))[0] == 401
    assert (await _scrape(server.url, {"Authorization": "Bearer wrong"}))[0] == 401
    status, _type, text = await _scrape(server.url, {"Authorization": "Bearer metrics-secret"})
    assert status == 200
    assert "metrics-secret" not in text
    assert list(text_string_to_metric_families(text))


# ------------------------------------------------------------------------------------------------ health


async def test_healthz_and_readyz(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    ready = await proxyd_factory(compat_config(fake_openai.base_url, upstream_keys=("sk-a", "sk-b")))
    empty = await proxyd_factory('host: "127.0.0.1"\napi-keys: ["k"]\n')
    async with aiohttp.ClientSession() as http:
        for server in (ready, empty):
            async with http.get(f"{server.url}/healthz") as resp:
                assert resp.status == 200
                assert await resp.json() == {"status": "ok"}
        async with http.get(f"{ready.url}/readyz") as resp:
            assert resp.status == 200
            assert await resp.json() == {"status": "ready", "credentials": 2}
        async with http.get(f"{empty.url}/readyz") as resp:
            assert resp.status == 503
            body = await resp.json()
            assert body["status"] == "not ready" and "credential" in body["reason"]
            assert "sk-" not in await resp.text()
        # No client key needed even though api-keys is set.
        async with http.head(f"{ready.url}/healthz") as resp:
            assert resp.status == 200


async def test_readyz_follows_hot_reload(fake_openai: FakeOpenAIUpstream, proxyd_factory, tmp_config) -> None:
    server = await proxyd_factory('host: "127.0.0.1"\napi-keys: ["client-key"]\n')
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/readyz") as resp:
            assert resp.status == 503
        tmp_config(compat_config(fake_openai.base_url))
        for _ in range(60):
            async with http.get(f"{server.url}/readyz") as resp:
                if resp.status == 200:
                    break
            await asyncio.sleep(0.05)
        assert resp.status == 200


async def test_upstream_attempts_are_timed(fake_openai, proxyd_factory) -> None:
    """The dispatch stage reports every upstream attempt (success and failure) to the metrics."""
    import aiohttp
    import openai
    from fakes import compat_config
    from prometheus_client.parser import text_string_to_metric_families

    server = await proxyd_factory(compat_config(fake_openai.base_url, upstream_keys=("sk-a", "sk-b")))
    fake_openai.enqueue_error(503, {"error": {"message": "busy", "type": "server_error"}})
    client = openai.AsyncOpenAI(base_url=server.v1, api_key="client-key", max_retries=0)
    await client.chat.completions.create(model="my-model", messages=[{"role": "user", "content": "hi"}])
    await client.close()
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/metrics") as resp:
        text = await resp.text()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    errors = [s for s in samples if s.name == "proxyd_upstream_errors_total" and s.labels.get("provider") == "fake"
              and s.labels.get("status") == "503"]  # metrics are process-wide: other tests add their own
    assert errors and errors[0].value >= 1
    timed = [s for s in samples if s.name == "proxyd_upstream_duration_seconds_count"
             and s.labels.get("provider") == "fake"]
    assert timed and timed[0].value >= 2
