"""`POST /v1internal:{method}`: Gemini CLI (Code Assist) traffic, loopback only (api-surface §7.12, DECISIONS 5)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from fakes import matrix_config

from proxyd.app import create_app

MODELS = ["gemini-model", "claude-model", "codex-model", "compat-model"]


def envelope(model: str, text: str = "hi", **request: Any) -> dict[str, Any]:
    return {"model": model, "project": "my-project", "user_prompt_id": "p1",
            "request": {"contents": [{"role": "user", "parts": [{"text": text}]}], **request}}


def sse_data(raw: str) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) per SSE event."""
    out: list[tuple[str | None, Any]] = []
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        name = None
        data = []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        out.append((name, json.loads("\n".join(data))))
    return out


def text_of(response: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for c in response.get("candidates", [])
                   for p in c.get("content", {}).get("parts", []) if not p.get("thought"))


@pytest.fixture
async def matrix(proxyd_factory, fake_openai, fake_claude, fake_gemini, fake_codex):  # type: ignore[no-untyped-def]
    return await proxyd_factory(matrix_config(fake_openai, fake_claude, fake_gemini, fake_codex))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.mark.parametrize("model", MODELS)
async def test_generate_content_through_every_upstream(matrix, session, model) -> None:  # type: ignore[no-untyped-def]
    # no client key although api-keys is set: /v1internal is guarded by the loopback rule instead
    async with session.post(matrix.url + "/v1internal:generateContent", json=envelope(model)) as resp:
        assert resp.status == 200, await resp.text()
        body = await resp.json()
    assert set(body) == {"response"}
    assert text_of(body["response"]) == "Hello from fake"
    assert body["response"]["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize("model", MODELS)
async def test_stream_generate_content_through_every_upstream(matrix, session, model) -> None:  # type: ignore[no-untyped-def]
    url = matrix.url + "/v1internal:streamGenerateContent?alt=sse"
    async with session.post(url, json=envelope(model)) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events = sse_data(await resp.text())
    assert events and all(name is None for name, _ in events)
    assert all(set(data) == {"response"} for _, data in events)
    assert "".join(text_of(data["response"]) for _, data in events) == "Hello from fake"


async def test_gemini_upstream_receives_the_inner_request(matrix, session, fake_gemini) -> None:  # type: ignore[no-untyped-def]
    body = envelope("gemini-model", "hello there", generationConfig={"temperature": 0.5})
    async with session.post(matrix.url + "/v1internal:generateContent", json=body) as resp:
        assert resp.status == 200
    sent = fake_gemini.last.json
    assert sent["contents"] == body["request"]["contents"]
    assert sent["generationConfig"]["temperature"] == 0.5
    assert "project" not in sent and "request" not in sent


async def test_stream_errors_arrive_in_stream(matrix, session, fake_gemini) -> None:  # type: ignore[no-untyped-def]
    url = matrix.url + "/v1internal:streamGenerateContent"
    async with session.post(url, json=envelope("no-such-model")) as resp:
        assert resp.status == 200
        events = sse_data(await resp.text())
    assert events[0][0] == "error" and events[0][1]["error"]["code"] == 404
    fake_gemini.enqueue_error(429)
    async with session.post(url, json=envelope("gemini-model")) as resp:
        assert resp.status == 200
        events = sse_data(await resp.text())
    assert events[0][0] == "error" and events[0][1]["error"]["code"] == 429
    async with session.post(url, data=b"{broken") as resp:
        assert resp.status == 200
        events = sse_data(await resp.text())
    assert events[0][0] == "error" and events[0][1]["error"]["code"] == 400


async def test_generate_content_errors(matrix, session) -> None:  # type: ignore[no-untyped-def]
    async with session.post(matrix.url + "/v1internal:generateContent", json=envelope("no-such-model")) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["status"] == "NOT_FOUND"
    async with session.post(matrix.url + "/v1internal:generateContent", json={"model": "gemini-model"}) as resp:
        assert resp.status == 400
        assert "request" in (await resp.json())["error"]["message"]


async def test_count_tokens(matrix, session) -> None:  # type: ignore[no-untyped-def]
    body = {"request": {"model": "models/gemini-model", "contents": [{"role": "user", "parts": [{"text": "hi"}]}]}}
    async with session.post(matrix.url + "/v1internal:countTokens", json=body) as resp:
        assert resp.status == 200
        answer = await resp.json()
    assert answer["totalTokens"] > 0


async def test_account_methods_are_answered_locally(matrix, session, fake_gemini) -> None:  # type: ignore[no-untyped-def]
    load = {"cloudaicompanionProject": "my-project", "metadata": {"ideType": "IDE_UNSPECIFIED"}}
    async with session.post(matrix.url + "/v1internal:loadCodeAssist", json=load) as resp:
        assert resp.status == 200
        loaded = await resp.json()
    assert loaded["currentTier"]["id"] == "standard-tier"
    assert loaded["cloudaicompanionProject"] == "my-project"
    async with session.post(matrix.url + "/v1internal:loadCodeAssist", json={"metadata": {}}) as resp:
        assert (await resp.json())["cloudaicompanionProject"] == "proxyd"
    async with session.post(matrix.url + "/v1internal:onboardUser", json={"tierId": "standard-tier"}) as resp:
        onboarded = await resp.json()
    assert onboarded["done"] is True
    assert onboarded["response"]["cloudaicompanionProject"]["id"] == "proxyd"
    async with session.post(matrix.url + "/v1internal:recordCodeAssistMetrics", json={"metrics": []}) as resp:
        assert resp.status == 200 and await resp.json() == {}
    assert fake_gemini.requests == []


async def test_non_loopback_clients_are_refused(proxyd_factory, fake_openai, fake_claude, fake_gemini, fake_codex,
                                                session) -> None:  # type: ignore[no-untyped-def]
    config = matrix_config(fake_openai, fake_claude, fake_gemini, fake_codex) + 'trusted-proxies: ["127.0.0.1/32"]\n'
    server = await proxyd_factory(config)
    remote = {"X-Forwarded-For": "203.0.113.7"}
    for method in ("generateContent", "streamGenerateContent", "loadCodeAssist"):
        async with session.post(server.url + f"/v1internal:{method}", json=envelope("gemini-model"),
                                headers=remote) as resp:
            assert resp.status == 403
            body = await resp.json()
            assert body["error"]["message"] == "CLI reply only allow local access"
            assert body["error"]["status"] == "PERMISSION_DENIED"
    # a forwarded loopback address is still local
    async with session.post(server.url + "/v1internal:generateContent", json=envelope("gemini-model"),
                            headers={"X-Forwarded-For": "127.0.0.1"}) as resp:
        assert resp.status == 200


async def test_ipv6_loopback_is_accepted(tmp_config, fake_openai, fake_claude, fake_gemini, fake_codex,
                                         session) -> None:  # type: ignore[no-untyped-def]
    path = tmp_config(matrix_config(fake_openai, fake_claude, fake_gemini, fake_codex))
    server = TestServer(create_app(path, watch=False), host="::1")
    await server.start_server()
    try:
        url = f"http://[::1]:{server.port}/v1internal:generateContent"
        async with session.post(url, json=envelope("gemini-model")) as resp:
            assert resp.status == 200
            assert text_of((await resp.json())["response"]) == "Hello from fake"
    finally:
        await server.close()
