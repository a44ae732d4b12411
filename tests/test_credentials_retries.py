"""Credentials at work: selection strategies, retries, cooldowns with upstream hints, waits, reload state."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from typing import Any

import aiohttp
import openai
import pytest
from fakes import FakeOpenAIUpstream, compat_config

from proxyd.credentials.hints import body_hint, reset_hint, retry_after_header
from proxyd.credentials.manager import CredentialManager
from proxyd.credentials.model import Credential
from proxyd.keys import CONFIG_STORE, RUNTIME
from proxyd.protocols.base import WireProtocol

MESSAGES = [{"role": "user", "content": "hi"}]
MGMT = "mgmt-secret"


def keys(n: int) -> tuple[str, ...]:
    return tuple(f"sk-{i}" for i in range(n))


def sdk(server: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.v1, api_key="client-key", max_retries=0)


def rate_limit(retry_after: int | None = None) -> tuple[dict[str, Any], dict[str, str] | None]:
    body = {"error": {"message": "Rate limit reached", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}
    return body, ({"Retry-After": str(retry_after)} if retry_after is not None else None)


async def test_round_robin_three_keys_nine_requests(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url, upstream_keys=keys(3)))
    client = sdk(server)
    for _ in range(9):
        await client.chat.completions.create(model="my-model", messages=MESSAGES)
    await client.close()
    assert Counter(r.bearer for r in fake_openai.requests) == {"sk-0": 3, "sk-1": 3, "sk-2": 3}


async def test_fill_first_sticks_until_cooled(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    config = compat_config(fake_openai.base_url, upstream_keys=keys(3), extra="routing:\n  strategy: fill-first\n")
    server = await proxyd_factory(config)
    client = sdk(server)
    for _ in range(3):
        await client.chat.completions.create(model="my-model", messages=MESSAGES)
    first = {r.bearer for r in fake_openai.requests}
    assert len(first) == 1
    body, headers = rate_limit(retry_after=600)
    fake_openai.enqueue_error(429, body, headers)
    for _ in range(3):
        await client.chat.completions.create(model="my-model", messages=MESSAGES)
    await client.close()
    after = [r.bearer for r in fake_openai.requests[3:]]
    assert after[0] in first  # the 429 hit the first key…
    assert len(set(after[1:])) == 1 and after[1] not in first  # …then the next one sticks while it cools


async def test_retryable_statuses_rotate_others_fail_at_once(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url, upstream_keys=keys(2)))
    client = sdk(server)
    for status in (403, 408, 500, 502, 503, 504):
        fake_openai.reset()
        for cred in server.app[RUNTIME].current.credentials:
            server.app[RUNTIME].current.manager.clear_cooldown(cred.id)
        fake_openai.enqueue_error(status, {"error": {"message": f"boom {status}", "type": "server_error"}})
        reply = await client.chat.completions.create(model="my-model", messages=MESSAGES)
        assert reply.choices[0].message.content == fake_openai.reply_text
        assert len(fake_openai.requests) == 2, status
    for status in (400, 401, 404, 422):
        fake_openai.reset()
        for cred in server.app[RUNTIME].current.credentials:
            server.app[RUNTIME].current.manager.clear_cooldown(cred.id)
        fake_openai.enqueue_error(status, {"error": {"message": f"nope {status}", "type": "invalid_request_error"}})
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="my-model", messages=MESSAGES)
        assert info.value.status_code == status
        assert len(fake_openai.requests) == 1, status
    await client.close()


async def test_all_cooling_waits_then_succeeds(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url, upstream_keys=keys(2)))
    client = sdk(server)
    body, headers = rate_limit(retry_after=1)
    fake_openai.enqueue_error(429, body, headers, times=2)
    started = time.monotonic()
    reply = await client.chat.completions.create(model="my-model", messages=MESSAGES)
    elapsed = time.monotonic() - started
    await client.close()
    assert reply.choices[0].message.content == fake_openai.reply_text
    assert len(fake_openai.requests) == 3
    assert 0.8 <= elapsed < 5


async def test_all_cooling_too_long_fails_with_retry_after(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url, upstream_keys=keys(2)))
    client = sdk(server)
    body, headers = rate_limit(retry_after=120)
    fake_openai.enqueue_error(429, body, headers, times=2)
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="my-model", messages=MESSAGES)
    # The client sees the upstream's own 429, not a proxy-made one.
    assert info.value.body["message"] == "Rate limit reached"
    assert len(fake_openai.requests) == 2
    # The next request finds every credential cooling: a proxy-made 429 with Retry-After, no upstream call.
    async with aiohttp.ClientSession() as http, http.post(
            f"{server.v1}/chat/completions", json={"model": "my-model", "messages": MESSAGES},
            headers={"Authorization": "Bearer client-key"}) as resp:
        assert resp.status == 429
        assert 100 <= int(resp.headers["Retry-After"]) <= 120
        error = (await resp.json())["error"]
    assert error["code"] == "model_cooldown" and "my-model" in error["message"]
    assert len(fake_openai.requests) == 2
    await client.close()


async def test_cooldown_hint_is_capped(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url,
                                                extra="max-cooldown-seconds: 5\nrequest-retry: 0\n"))
    client = sdk(server)
    body, headers = rate_limit(retry_after=86400)
    fake_openai.enqueue_error(429, body, headers)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="my-model", messages=MESSAGES)
    await client.close()
    [state] = server.app[RUNTIME].current.manager.snapshot()
    assert state["status"] == "cooling"
    assert 0 < state["cooldowns"]["my-model"]["seconds_left"] <= 5
    assert state["cooldowns"]["my-model"]["reason"] == "quota"


async def test_reload_keeps_state_of_unchanged_credentials(fake_openai: FakeOpenAIUpstream, proxyd_factory,
                                                           tmp_config) -> None:
    text = compat_config(fake_openai.base_url, upstream_keys=keys(2))
    server = await proxyd_factory(text)
    client = sdk(server)
    body, headers = rate_limit(retry_after=600)
    fake_openai.enqueue_error(429, body, headers)
    await client.chat.completions.create(model="my-model", messages=MESSAGES)
    cooled = next(c for c in server.app[RUNTIME].current.manager.snapshot() if c["status"] == "cooling")
    cooled_key = next(c.api_key for c in server.app[RUNTIME].current.credentials if c.id == cooled["id"])
    store = server.app[CONFIG_STORE]
    tmp_config(text + "debug: true\n")
    assert await store.reload("test")
    still = {c["id"]: c for c in server.app[RUNTIME].current.manager.snapshot()}
    assert still[cooled["id"]]["status"] == "cooling"  # an unrelated edit keeps the cooldown
    remaining = tuple(k for k in keys(2) if k != cooled_key)
    tmp_config(compat_config(fake_openai.base_url, upstream_keys=remaining))  # the cooled key removed…
    assert await store.reload("test")
    tmp_config(text)  # …and added back: it starts fresh
    assert await store.reload("test")
    assert all(c["status"] == "ok" for c in server.app[RUNTIME].current.manager.snapshot())
    await client.close()


async def test_management_shows_and_resets_cooldowns(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    config = compat_config(fake_openai.base_url, upstream_keys=keys(2),
                           extra=f'remote-management:\n  secret-key: "{MGMT}"\n')
    server = await proxyd_factory(config)
    client = sdk(server)
    fake_openai.enqueue_error(503, {"error": {"message": "overloaded", "type": "server_error"}})
    await client.chat.completions.create(model="my-model", messages=MESSAGES)
    await client.close()
    auth = {"Authorization": f"Bearer {MGMT}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/v0/management/credentials", headers=auth) as resp:
            assert resp.status == 200
            creds = (await resp.json())["credentials"]
        cooling = [c for c in creds if c["status"] == "cooling"]
        assert len(cooling) == 1
        assert cooling[0]["cooldowns"]["my-model"]["last_status"] == 503
        assert cooling[0]["cooldowns"]["my-model"]["last_error"].find("overloaded") >= 0
        assert "sk-" not in str(creds)  # no secrets in the read model
        async with http.post(f"{server.url}/v0/management/credentials/reset", headers=auth,
                             json={"id": cooling[0]["id"]}) as resp:
            assert resp.status == 200
        async with http.get(f"{server.url}/v0/management/credentials", headers=auth) as resp:
            assert all(c["status"] == "ok" for c in (await resp.json())["credentials"])


async def test_streams_fail_over_before_first_byte_and_release(fake_openai: FakeOpenAIUpstream,
                                                               proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url, upstream_keys=keys(2)))
    client = sdk(server)
    fake_openai.enqueue_error(502, "bad gateway")
    stream = await client.chat.completions.create(model="my-model", messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    await client.close()
    assert text == fake_openai.reply_text
    assert all(c["in_flight"] == 0 for c in server.app[RUNTIME].current.manager.snapshot())


async def test_random_failures_do_not_reach_clients(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    """Done-when of the credentials step: 30 % retryable failures, 200 SDK requests over 4 keys, all succeed."""
    rng = random.Random(1234)
    server = await proxyd_factory(compat_config(fake_openai.base_url, upstream_keys=keys(4)))
    failures = 0

    async def one(client: openai.AsyncOpenAI) -> str:
        reply = await client.chat.completions.create(model="my-model", messages=MESSAGES)
        return reply.choices[0].message.content or ""

    client = sdk(server)
    for batch in range(20):
        for _ in range(10):
            if rng.random() < 0.3:
                failures += 1
                status = rng.choice([429, 500, 502, 503, 504])
                fake_openai.enqueue_error(status, {"error": {"message": "flaky", "type": "server_error"}})
        results = await asyncio.gather(*(one(client) for _ in range(10)))
        assert results == [fake_openai.reply_text] * 10, batch
    await client.close()
    assert failures > 30
    assert len(fake_openai.requests) >= 200 + failures - 5
    assert sum(c["failures"] for c in server.app[RUNTIME].current.manager.snapshot()) >= failures - 5


def test_manager_backoff_and_sync() -> None:
    now = [1000.0]
    manager = CredentialManager(clock=lambda: now[0])
    cred = Credential(id="c1", kind="openai-compatibility", provider="p", protocol=WireProtocol.OPENAI_CHAT,
                      base_url="http://x")
    manager.sync([cred])
    assert [manager.mark_failure(cred, "m", 429, "x") for _ in range(3)] == [1.0, 2.0, 4.0]
    assert manager.blocked_until(cred, "m") == 1004.0
    assert manager.blocked_until(cred, "other") is None
    assert manager.mark_failure(cred, "m", 500, "x") == 1.0
    assert manager.mark_failure(cred, "m", 401, "x") == 1800.0
    assert manager.mark_failure(cred, "m", 400, "x") == 0.0
    assert manager.mark_failure(cred, "m", 429, "x", hint=99999, max_cooldown=60) == 60
    assert manager.mark_failure(cred, "m", 503, "x", disable_cooling=True) == 0.0
    manager.mark_success(cred, "m")
    assert manager.blocked_until(cred, "m") is None
    manager.mark_failure(cred, "m", 429, "x")
    assert manager.mark_failure(cred, "m", 429, "x") == 2.0  # backoff restarts after a success
    manager.sync([cred])
    assert manager.blocked_until(cred, "m") is not None  # unchanged credential keeps its state
    changed = Credential(id="c1", kind="openai-compatibility", provider="p", protocol=WireProtocol.OPENAI_CHAT,
                         base_url="http://y")
    manager.sync([changed])
    assert manager.blocked_until(changed, "m") is None


def test_reset_hints() -> None:
    assert retry_after_header({"Retry-After": "7"}) == 7
    assert retry_after_header({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412480 - 60) == 60
    google = (b'{"error":{"code":429,"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo",'
              b'"retryDelay":"7s"}]}}')
    assert body_hint(google) == 7
    info = (b'{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo",'
            b'"metadata":{"quotaResetDelay":"373.8ms"}}]}}')
    assert body_hint(info) == pytest.approx(0.3738)
    assert body_hint(b'{"error":{"message":"Your quota will reset after 17s."}}') == 17
    codex = b'{"error":{"type":"usage_limit_reached","resets_at":1100}}'
    assert body_hint(codex, now=1000) == 100
    assert body_hint(b'{"error":{"type":"usage_limit_reached","resets_in_seconds":30}}', now=1000) == 30
    assert reset_hint({}, b"not json") is None


async def test_nonstream_keepalive_newlines_then_answer(fake_claude, proxyd_factory) -> None:
    config = (f'api-keys: ["client-key"]\nnonstream-keepalive-interval: 1\nclaude-api-key:\n  - api-key: "c"\n'
              f'    base-url: "{fake_claude.base_url}"\n')
    server = await proxyd_factory(config)
    fake_claude.hang_before_headers = True
    fake_claude.hang_seconds = 2.3
    body = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http, http.post(
            f"{server.url}/v1/messages", json=body,
            headers={"x-api-key": "client-key", "anthropic-version": "2023-06-01"}) as resp:
        assert resp.status == 200
        raw = await resp.read()
    assert raw.startswith(b"\n\n")  # two keep-alive newlines while the upstream hung
    message = json.loads(raw)
    assert message["type"] == "message" and message["content"][0]["text"] == fake_claude.reply_text


async def test_sse_keepalive_comments_during_silence(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    fake_openai.chunk_count = 2
    fake_openai.chunk_delay = 1.3
    server = await proxyd_factory(compat_config(fake_openai.base_url, extra="streaming:\n  keepalive-seconds: 1\n"))
    async with aiohttp.ClientSession() as http, http.post(
            f"{server.v1}/chat/completions", json={"model": "my-model", "messages": MESSAGES, "stream": True},
            headers={"Authorization": "Bearer client-key"}) as resp:
        raw = await resp.read()
    assert b": keep-alive\n\n" in raw
    assert raw.endswith(b"data: [DONE]\n\n")
