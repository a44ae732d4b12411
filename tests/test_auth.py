"""Client authentication against the proxy's `api-keys` (api-surface §3, DECISIONS 1)."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import pytest
from fakes import FakeOpenAIUpstream, compat_config

KEY = "client-key"
SECOND_KEY = "client-key-2"
UPSTREAM_KEY = "sk-up-1"

CHAT_BODY: dict[str, Any] = {"model": "my-model", "messages": [{"role": "user", "content": "hi"}]}
CLAUDE_BODY: dict[str, Any] = {"model": "my-model", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
GEMINI_BODY: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def openai_401(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}


def claude_401(message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "authentication_error", "message": message, "code": "invalid_api_key"}}


def gemini_401(message: str) -> dict[str, Any]:
    return {"error": {"code": 401, "message": message, "status": "UNAUTHENTICATED"}}


# (method, path, json body, envelope builder) for every authenticated route family.
PROTECTED: list[tuple[str, str, dict[str, Any] | None, Any]] = [
    ("POST", "/v1/chat/completions", CHAT_BODY, openai_401),
    ("POST", "/v1/completions", {"model": "my-model", "prompt": "hi"}, openai_401),
    ("POST", "/v1/responses", {"model": "my-model", "input": "hi"}, openai_401),
    ("GET", "/v1/models", None, openai_401),
    ("POST", "/v1/messages", CLAUDE_BODY, claude_401),
    ("POST", "/v1/messages/count_tokens", CLAUDE_BODY, claude_401),
    ("GET", "/v1beta/models", None, gemini_401),
    ("GET", "/v1beta/models/my-model", None, gemini_401),
    ("POST", "/v1beta/models/my-model:generateContent", GEMINI_BODY, gemini_401),
    ("POST", "/v1beta/models/my-model:streamGenerateContent?alt=sse", GEMINI_BODY, gemini_401),
]
PROTECTED_IDS = [f"{m} {p}" for m, p, _, _ in PROTECTED]


@pytest.fixture
async def server(fake_openai: FakeOpenAIUpstream, proxyd_factory: Any) -> Any:
    return await proxyd_factory(compat_config(fake_openai.base_url, api_keys=(KEY, SECOND_KEY)))


async def chat(server: Any, *, headers: dict[str, str] | None = None,
               params: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(
        f"{server.v1}/chat/completions", json=CHAT_BODY, headers=headers or {}, params=params or {}
    ) as r:
        return r.status, await r.json(content_type=None)


# --------------------------------------------------------------------------- accepted key sources

ACCEPTED: list[tuple[str, dict[str, str], dict[str, str]]] = [
    ("bearer", {"Authorization": f"Bearer {KEY}"}, {}),
    ("bearer-lowercase", {"Authorization": f"bearer {KEY}"}, {}),
    ("bearer-uppercase", {"Authorization": f"BEARER {KEY}"}, {}),
    ("bearer-extra-spaces", {"Authorization": f"Bearer   {KEY}  "}, {}),
    ("raw-authorization", {"Authorization": KEY}, {}),
    ("x-api-key", {"x-api-key": KEY}, {}),
    ("x-goog-api-key", {"x-goog-api-key": KEY}, {}),
    ("query-key", {}, {"key": KEY}),
    ("query-auth-token", {}, {"auth_token": KEY}),
    ("second-key", {"Authorization": f"Bearer {SECOND_KEY}"}, {}),
    ("second-key-x-api-key", {"x-api-key": SECOND_KEY}, {}),
    ("wrong-authorization-correct-query-key", {"Authorization": "Bearer wrong"}, {"key": KEY}),
    ("wrong-x-api-key-correct-auth-token", {"x-api-key": "wrong"}, {"auth_token": KEY}),
    ("wrong-authorization-correct-x-goog", {"Authorization": "Bearer nope", "x-goog-api-key": KEY}, {}),
]


@pytest.mark.parametrize(("headers", "params"), [(h, p) for _, h, p in ACCEPTED], ids=[a[0] for a in ACCEPTED])
async def test_key_source_accepted_on_chat(server: Any, fake_openai: FakeOpenAIUpstream,
                                           headers: dict[str, str], params: dict[str, str]) -> None:
    status, body = await chat(server, headers=headers, params=params)
    assert status == 200, body
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Hello from fake"
    assert len(fake_openai.requests) == 1


@pytest.mark.parametrize(("headers", "params"), [(h, p) for _, h, p in ACCEPTED], ids=[a[0] for a in ACCEPTED])
async def test_key_source_accepted_on_model_lists(server: Any, headers: dict[str, str],
                                                  params: dict[str, str]) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.v1}/models", headers=headers, params=params) as r:
            assert r.status == 200
            assert {m["id"] for m in (await r.json())["data"]} == {"my-model", "mini"}
        async with s.get(f"{server.url}/v1beta/models", headers=headers, params=params) as r:
            assert r.status == 200
            assert "models/my-model" in {m["name"] for m in (await r.json())["models"]}


# --------------------------------------------------------------------------- rejected requests


@pytest.mark.parametrize(("method", "path", "body", "envelope"), PROTECTED, ids=PROTECTED_IDS)
async def test_missing_key_is_401_in_route_shape(server: Any, fake_openai: FakeOpenAIUpstream, method: str,
                                                 path: str, body: dict[str, Any] | None, envelope: Any) -> None:
    async with aiohttp.ClientSession() as s, s.request(method, server.url + path, json=body) as r:
        assert r.status == 401
        assert r.content_type == "application/json"
        assert await r.json() == envelope("Missing API key")
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert "WWW-Authenticate" not in r.headers
    assert len(fake_openai.requests) == 0


@pytest.mark.parametrize(("method", "path", "body", "envelope"), PROTECTED, ids=PROTECTED_IDS)
async def test_invalid_key_is_401_in_route_shape(server: Any, fake_openai: FakeOpenAIUpstream, method: str,
                                                 path: str, body: dict[str, Any] | None, envelope: Any) -> None:
    headers = {"Authorization": "Bearer not-a-key"}
    async with aiohttp.ClientSession() as s, s.request(method, server.url + path, json=body, headers=headers) as r:
        assert r.status == 401
        assert r.content_type == "application/json"
        assert await r.json() == envelope("Invalid API key")
        assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert len(fake_openai.requests) == 0


REJECTED: list[tuple[str, dict[str, str], dict[str, str]]] = [
    ("bearer-wrong", {"Authorization": "Bearer wrong"}, {}),
    ("case-sensitive", {"Authorization": f"Bearer {KEY.upper()}"}, {}),
    ("prefix-of-key", {"Authorization": f"Bearer {KEY[:-1]}"}, {}),
    # A non-bearer scheme makes the whole header value the candidate.
    ("basic-scheme", {"Authorization": f"Basic {KEY}"}, {}),
    ("token-scheme", {"Authorization": f"Token {KEY}"}, {}),
    ("x-api-key-wrong", {"x-api-key": "wrong"}, {}),
    ("x-goog-api-key-wrong", {"x-goog-api-key": "wrong"}, {}),
    ("query-key-wrong", {}, {"key": "wrong"}),
    ("query-auth-token-wrong", {}, {"auth_token": "wrong"}),
    ("key-in-other-query-param", {}, {"api_key": "wrong", "token": "wrong", "key": "also-wrong"}),
    ("all-wrong", {"Authorization": "Bearer a", "x-api-key": "b", "x-goog-api-key": "c"},
     {"key": "d", "auth_token": "e"}),
]


@pytest.mark.parametrize(("headers", "params"), [(h, p) for _, h, p in REJECTED], ids=[r[0] for r in REJECTED])
async def test_wrong_key_sources_rejected(server: Any, fake_openai: FakeOpenAIUpstream,
                                          headers: dict[str, str], params: dict[str, str]) -> None:
    status, body = await chat(server, headers=headers, params=params)
    assert status == 401
    assert body == openai_401("Invalid API key")
    assert len(fake_openai.requests) == 0


@pytest.mark.parametrize(
    ("headers", "params"),
    [({}, {"key": ""}), ({}, {"auth_token": ""}), ({"x-api-key": ""}, {}), ({"Authorization": ""}, {}),
     ({}, {"api_key": KEY}), ({"api-key": KEY}, {})],
    ids=["empty-query-key", "empty-auth-token", "empty-x-api-key", "empty-authorization",
         "unsupported-query-name", "unsupported-header-name"],
)
async def test_empty_or_unread_sources_count_as_missing(server: Any, fake_openai: FakeOpenAIUpstream,
                                                        headers: dict[str, str], params: dict[str, str]) -> None:
    status, body = await chat(server, headers=headers, params=params)
    assert status == 401
    assert body == openai_401("Missing API key")
    assert len(fake_openai.requests) == 0


async def test_models_list_requires_auth(server: Any) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.v1}/models") as r:
            assert r.status == 401
            assert await r.json() == openai_401("Missing API key")
        async with s.get(f"{server.v1}/models", headers={"User-Agent": "claude-cli/2.0.14 (external, cli)"}) as r:
            assert r.status == 401
            assert await r.json() == openai_401("Missing API key")
        async with s.get(f"{server.v1}/models", headers={"x-api-key": "wrong"}) as r:
            assert r.status == 401
            assert await r.json() == openai_401("Invalid API key")


async def test_unauthenticated_paths_need_no_key(server: Any) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.url}/") as r:
            assert r.status == 200
        async with s.get(f"{server.url}/google/callback", params={"code": "x", "state": "y"}) as r:
            assert r.status == 200
        async with s.options(f"{server.v1}/chat/completions") as r:
            assert r.status == 204


# --------------------------------------------------------------------------- configured key set


async def test_empty_api_keys_is_open_access(fake_openai: FakeOpenAIUpstream, proxyd_factory: Any) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url, api_keys=()))
    for headers, params in [({}, {}), ({"Authorization": "Bearer anything"}, {}), ({"x-api-key": "junk"}, {}),
                            ({}, {"key": "whatever"}), ({"Authorization": "Basic Zm9vOmJhcg=="}, {})]:
        status, body = await chat(server, headers=headers, params=params)
        assert status == 200, (headers, params, body)
        assert body["choices"][0]["message"]["content"] == "Hello from fake"
    assert len(fake_openai.requests) == 5
    assert {r.bearer for r in fake_openai.requests} == {UPSTREAM_KEY}
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.v1}/models") as r:
            assert r.status == 200
        async with s.get(f"{server.url}/v1beta/models") as r:
            assert r.status == 200


async def test_blank_only_api_keys_is_open_access(fake_openai: FakeOpenAIUpstream, proxyd_factory: Any) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url, api_keys=("", "   ")))
    status, _ = await chat(server)
    assert status == 200


async def test_configured_keys_are_trimmed(fake_openai: FakeOpenAIUpstream, proxyd_factory: Any) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url, api_keys=("  padded-key  ", "")))
    status, _ = await chat(server, headers={"Authorization": "Bearer padded-key"})
    assert status == 200
    status, body = await chat(server)
    assert status == 401
    assert body == openai_401("Missing API key")


# --------------------------------------------------------------------------- openai SDK


async def test_openai_sdk_wrong_key_raises_authentication_error(server: Any,
                                                                fake_openai: FakeOpenAIUpstream) -> None:
    client = openai.AsyncOpenAI(base_url=server.v1, api_key="wrong-key", max_retries=0)
    try:
        with pytest.raises(openai.AuthenticationError) as info:
            await client.chat.completions.create(model="my-model", messages=[{"role": "user", "content": "hi"}])
        assert info.value.status_code == 401
        assert info.value.response.json() == openai_401("Invalid API key")
        assert info.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            await client.models.list()
    finally:
        await client.close()
    assert len(fake_openai.requests) == 0


async def test_openai_sdk_right_key_works(server: Any, fake_openai: FakeOpenAIUpstream) -> None:
    client = openai.AsyncOpenAI(base_url=server.v1, api_key=SECOND_KEY, max_retries=0)
    try:
        reply = await client.chat.completions.create(model="my-model",
                                                     messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "Hello from fake"
        models = await client.models.list()
        assert {m.id for m in models.data} == {"my-model", "mini"}
    finally:
        await client.close()
    assert fake_openai.last.bearer == UPSTREAM_KEY


# --------------------------------------------------------------------------- upstream isolation


async def test_client_key_never_forwarded_upstream(server: Any, fake_openai: FakeOpenAIUpstream) -> None:
    fake_openai.expected_keys = {UPSTREAM_KEY}
    headers = {"Authorization": f"Bearer {KEY}", "x-api-key": KEY, "x-goog-api-key": KEY}
    status, body = await chat(server, headers=headers, params={"key": KEY, "auth_token": KEY})
    assert status == 200, body
    rec = fake_openai.last
    assert rec.path == "/v1/chat/completions"
    assert rec.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert rec.bearer == UPSTREAM_KEY
    for name, value in rec.headers.items():
        assert KEY not in value, name
    assert "key" not in rec.query
    assert "auth_token" not in rec.query
    assert KEY.encode() not in rec.body


async def test_upstream_sees_upstream_key_for_every_client_key(server: Any,
                                                                fake_openai: FakeOpenAIUpstream) -> None:
    fake_openai.expected_keys = {UPSTREAM_KEY}
    for key in (KEY, SECOND_KEY):
        status, _ = await chat(server, headers={"x-api-key": key})
        assert status == 200
    assert [r.headers["Authorization"] for r in fake_openai.requests] == [f"Bearer {UPSTREAM_KEY}"] * 2


async def test_failed_auth_never_reaches_upstream(server: Any, fake_openai: FakeOpenAIUpstream) -> None:
    async with aiohttp.ClientSession() as s:
        for method, path, body, _ in PROTECTED:
            for headers in ({}, {"Authorization": "Bearer bad"}):
                async with s.request(method, server.url + path, json=body, headers=headers) as r:
                    assert r.status == 401, path
        stream_body = {**CHAT_BODY, "stream": True}
        async with s.post(f"{server.v1}/chat/completions", json=stream_body) as r:
            assert r.status == 401
            assert r.content_type == "application/json"
    assert len(fake_openai.requests) == 0


# --------------------------------------------------------------------------- known bugs


async def test_gemini_action_without_method_still_requires_auth(server: Any) -> None:
    async with aiohttp.ClientSession() as s, s.post(f"{server.url}/v1beta/models/my-model", json=GEMINI_BODY) as r:
        assert r.status == 401
        assert await r.json() == gemini_401("Missing API key")
