"""Server basics: CORS, request ids, request-body errors, fixed routes, model lists, upstream error relay."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from fakes import FakeOpenAIUpstream, compat_config, openai_error

KEY = "client-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT_BODY: dict[str, Any] = {"model": "my-model", "messages": [{"role": "user", "content": "hi"}]}
CLAUDE_BODY: dict[str, Any] = {"model": "my-model", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "*",
}
GENERATED_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")  # a random UUID


@pytest.fixture
async def server(fake_openai: FakeOpenAIUpstream, proxyd_factory: Any) -> Any:
    return await proxyd_factory(compat_config(fake_openai.base_url, extra="request-body-limit-mb: 1\n"))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def assert_cors(headers: Any) -> None:
    for name, value in CORS.items():
        assert headers.get(name) == value, name


# --------------------------------------------------------------------------- CORS


async def test_cors_headers_on_success(server: Any, session: aiohttp.ClientSession) -> None:
    async with session.post(f"{server.v1}/chat/completions", json=CHAT_BODY, headers=AUTH) as r:
        assert r.status == 200
        assert_cors(r.headers)
    async with session.get(f"{server.v1}/models", headers=AUTH) as r:
        assert r.status == 200
        assert_cors(r.headers)
    async with session.get(f"{server.url}/") as r:
        assert r.status == 200
        assert_cors(r.headers)


async def test_cors_headers_on_401(server: Any, session: aiohttp.ClientSession) -> None:
    for path, method in [("/v1/chat/completions", "POST"), ("/v1/messages", "POST"), ("/v1beta/models", "GET"),
                         ("/v1/models", "GET")]:
        async with session.request(method, server.url + path, json={}) as r:
            assert r.status == 401, path
            assert_cors(r.headers)


async def test_cors_headers_on_unknown_path_404(server: Any, session: aiohttp.ClientSession) -> None:
    for method, path in [("GET", "/nope"), ("POST", "/v1/nope"), ("GET", "/v1/models/my-model"),
                         ("DELETE", "/v1/chat/completions")]:
        async with session.request(method, server.url + path) as r:
            assert r.status in (404, 405), (method, path)
            assert_cors(r.headers)


async def test_cors_headers_on_streaming_response(server: Any, session: aiohttp.ClientSession) -> None:
    body = {**CHAT_BODY, "stream": True}
    async with session.post(f"{server.v1}/chat/completions", json=body, headers=AUTH) as r:
        assert r.status == 200
        assert r.content_type == "text/event-stream"
        assert_cors(r.headers)
        text = (await r.read()).decode()
    assert text.rstrip().endswith("data: [DONE]")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/models", "/v1beta/models",
                                  "/v1beta/models/my-model:generateContent", "/nope", "/", "/a/b/c?x=1"])
async def test_options_any_path_is_204_without_key(server: Any, session: aiohttp.ClientSession,
                                                   fake_openai: FakeOpenAIUpstream, path: str) -> None:
    async with session.options(server.url + path) as r:
        assert r.status == 204
        assert await r.read() == b""
        assert_cors(r.headers)
        assert "Access-Control-Allow-Credentials" not in r.headers
        assert "Access-Control-Max-Age" not in r.headers
    assert len(fake_openai.requests) == 0


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/nope"])
async def test_browser_preflight_succeeds(server: Any, session: aiohttp.ClientSession, path: str) -> None:
    headers = {
        "Origin": "http://localhost:3000",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os",
    }
    async with session.options(server.url + path, headers=headers) as r:
        assert 200 <= r.status < 300
        assert r.headers["Access-Control-Allow-Origin"] in ("*", "http://localhost:3000")
        assert "POST" in r.headers["Access-Control-Allow-Methods"]


async def test_browser_request_with_origin_gets_allow_origin(server: Any, session: aiohttp.ClientSession) -> None:
    headers = {**AUTH, "Origin": "http://localhost:3000"}
    async with session.post(f"{server.v1}/chat/completions", json=CHAT_BODY, headers=headers) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] in ("*", "http://localhost:3000")


# --------------------------------------------------------------------------- request ids


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        ("GET", "/", {}, None, 200),
        ("GET", "/v1/models", AUTH, None, 200),
        ("POST", "/v1/chat/completions", AUTH, CHAT_BODY, 200),
        ("POST", "/v1/chat/completions", {}, CHAT_BODY, 401),
        ("POST", "/v1/chat/completions", AUTH, {"model": "gpt-9"}, 404),
        ("POST", "/v1/messages", AUTH, {"max_tokens": 1}, 400),
        ("GET", "/nope", {}, None, 404),
        ("GET", "/management.html", {}, None, 404),
        ("GET", "/google/callback?code=x&state=y", {}, None, 200),
    ],
    ids=["root", "models", "chat", "401", "unknown-model", "claude-400", "unknown-path", "panel-404", "callback"],
)
async def test_generated_request_id_on_every_response(server: Any, session: aiohttp.ClientSession, method: str,
                                                      path: str, headers: dict[str, str], body: Any,
                                                      status: int) -> None:
    async with session.request(method, server.url + path, headers=headers, json=body) as r:
        assert r.status == status
        assert GENERATED_ID.fullmatch(r.headers.get("X-Request-Id", "")), r.headers.get("X-Request-Id")


async def test_request_id_on_streaming_response(server: Any, session: aiohttp.ClientSession) -> None:
    async with session.post(f"{server.v1}/chat/completions", json={**CHAT_BODY, "stream": True}, headers=AUTH) as r:
        assert r.status == 200
        assert GENERATED_ID.fullmatch(r.headers["X-Request-Id"])
        await r.read()
    headers = {**AUTH, "X-Request-Id": "stream-id-1"}
    async with session.post(f"{server.v1}/chat/completions", json={**CHAT_BODY, "stream": True},
                            headers=headers) as r:
        assert r.headers["X-Request-Id"] == "stream-id-1"
        await r.read()


async def test_request_id_on_413(server: Any, session: aiohttp.ClientSession) -> None:
    async with session.post(f"{server.v1}/chat/completions", data=b"x" * (2 * 1024 * 1024), headers=AUTH) as r:
        assert r.status == 413
        assert GENERATED_ID.fullmatch(r.headers["X-Request-Id"])


async def test_generated_request_ids_are_unique(server: Any, session: aiohttp.ClientSession) -> None:
    ids = set()
    for _ in range(5):
        async with session.get(f"{server.url}/") as r:
            ids.add(r.headers["X-Request-Id"])
    assert len(ids) == 5


@pytest.mark.parametrize("offered", ["abc-123", "req_0123456789abcdef", "A.b:c_d-9", "x" * 128])
async def test_sane_client_request_id_is_echoed(server: Any, session: aiohttp.ClientSession,
                                                offered: str) -> None:
    async with session.get(f"{server.url}/", headers={"X-Request-Id": offered}) as r:
        assert r.headers["X-Request-Id"] == offered
    async with session.post(f"{server.v1}/chat/completions", json=CHAT_BODY,
                            headers={"X-Request-Id": offered}) as r:
        assert r.status == 401
        assert r.headers["X-Request-Id"] == offered


@pytest.mark.parametrize("offered", ["has space", "x" * 129, "a" * 1000, "semi;colon", "quote\"d", "<script>"],
                         ids=["space", "129-chars", "1000-chars", "semicolon", "quote", "html"])
async def test_insane_client_request_id_is_replaced(server: Any, session: aiohttp.ClientSession,
                                                    offered: str) -> None:
    async with session.get(f"{server.url}/", headers={"X-Request-Id": offered}) as r:
        got = r.headers["X-Request-Id"]
    assert got != offered
    assert GENERATED_ID.fullmatch(got)


async def test_request_id_on_options_response(server: Any, session: aiohttp.ClientSession) -> None:
    async with session.options(f"{server.v1}/chat/completions") as r:
        assert r.status == 204
        assert GENERATED_ID.fullmatch(r.headers.get("X-Request-Id", ""))
    async with session.options(f"{server.url}/nope", headers={"X-Request-Id": "abc-123"}) as r:
        assert r.headers.get("X-Request-Id") == "abc-123"


# --------------------------------------------------------------------------- request-body errors


@pytest.mark.parametrize("raw", [b"{bad", b'{"model": "my-model",', b"not json at all", b"\xff\xfe{}"],
                         ids=["brace", "truncated", "text", "not-utf8"])
async def test_malformed_json_is_400_openai_shape(server: Any, session: aiohttp.ClientSession,
                                                  fake_openai: FakeOpenAIUpstream, raw: bytes) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    async with session.post(f"{server.v1}/chat/completions", data=raw, headers=headers) as r:
        assert r.status == 400
        assert r.content_type == "application/json"
        body = await r.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == "invalid_request_error"
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert len(fake_openai.requests) == 0


@pytest.mark.parametrize("raw", [b"{bad", b"not json at all"], ids=["brace", "text"])
async def test_malformed_json_is_400_claude_shape(server: Any, session: aiohttp.ClientSession,
                                                  fake_openai: FakeOpenAIUpstream, raw: bytes) -> None:
    headers = {"x-api-key": KEY, "Content-Type": "application/json", "anthropic-version": "2023-06-01"}
    async with session.post(f"{server.v1}/messages", data=raw, headers=headers) as r:
        assert r.status == 400
        assert r.content_type == "application/json"
        body = await r.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert len(fake_openai.requests) == 0


async def test_malformed_json_exact_message(server: Any, session: aiohttp.ClientSession) -> None:
    async with session.post(f"{server.v1}/chat/completions", data=b"{bad", headers=AUTH) as r:
        assert await r.json() == {"error": {
            "message": "request body is not valid JSON: Expecting property name enclosed in double quotes "
                       "at line 1 column 2",
            "type": "invalid_request_error",
        }}


WIDE = 123456789012345678901234567890  # wider than 64 bits: orjson alone would make it a float


async def test_wide_integers_reach_the_upstream_exactly(server: Any, session: aiohttp.ClientSession,
                                                        fake_openai: FakeOpenAIUpstream) -> None:
    """Integers beyond 64 bits keep their digits, passed through and translated (the reference edits raw JSON)."""
    chat = {**CHAT_BODY, "seed": WIDE, "metadata": {"n": -WIDE}}
    async with session.post(f"{server.v1}/chat/completions", data=json.dumps(chat), headers=AUTH) as r:
        assert r.status == 200
    sent = fake_openai.last.body
    assert str(WIDE).encode() in sent and str(-WIDE).encode() in sent and b"e+29" not in sent
    assert fake_openai.last.json["seed"] == WIDE
    tool = {"name": "pick", "description": "d",
            "input_schema": {"type": "object", "properties": {"n": {"type": "integer", "maximum": WIDE}}}}
    claude = {**CLAUDE_BODY, "tools": [tool]}
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    async with session.post(f"{server.v1}/messages", data=json.dumps(claude), headers=headers) as r:
        assert r.status == 200
    sent_tools = fake_openai.last.json["tools"]
    assert sent_tools[0]["function"]["parameters"]["properties"]["n"]["maximum"] == WIDE
    assert str(WIDE).encode() in fake_openai.last.body


async def test_special_token_text_in_a_prompt_is_plain_text(server: Any, session: aiohttp.ClientSession,
                                                            fake_openai: FakeOpenAIUpstream) -> None:
    """`<|endoftext|>` in user text: the translated Claude stream's local input estimate and the local token
    count treat it as ordinary characters (the tokenizer would refuse it as a special token)."""
    text = "say <|endoftext|> and <|fim_prefix|> verbatim"
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    claude = {**CLAUDE_BODY, "stream": True, "messages": [{"role": "user", "content": text}]}
    async with session.post(f"{server.v1}/messages", json=claude, headers=headers) as r:
        assert r.status == 200
        events = [json.loads(line[5:]) for line in (await r.text()).splitlines() if line.startswith("data:")]
    start = next(e for e in events if e["type"] == "message_start")
    assert isinstance(start["message"]["usage"]["input_tokens"], int)
    assert events[-1]["type"] == "message_stop"
    assert text in fake_openai.last.body.decode()
    count = {"model": "my-model", "messages": [{"role": "user", "content": text}]}
    async with session.post(f"{server.v1}/messages/count_tokens", json=count, headers=headers) as r:
        assert r.status == 200
        assert (await r.json())["input_tokens"] > 10


@pytest.mark.parametrize("value", [[1, 2], "a string", 42, None, True], ids=["list", "string", "int", "null", "bool"])
async def test_body_not_object_is_400(server: Any, session: aiohttp.ClientSession, value: Any) -> None:
    async with session.post(f"{server.v1}/chat/completions", data=json.dumps(value), headers=AUTH) as r:
        assert r.status == 400
        assert await r.json() == {"error": {"message": "request body must be a JSON object",
                                            "type": "invalid_request_error"}}
    async with session.post(f"{server.v1}/messages", data=json.dumps(value), headers=AUTH) as r:
        assert r.status == 400
        assert await r.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                             "message": "request body must be a JSON object"}}


async def test_empty_body_is_400(server: Any, session: aiohttp.ClientSession) -> None:
    async with session.post(f"{server.v1}/chat/completions", data=b"", headers=AUTH) as r:
        assert r.status == 400
        body = await r.json()
    assert body["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("body", [{"messages": []}, {"model": None, "messages": []}, {"model": "", "messages": []}],
                         ids=["absent", "null", "empty"])
async def test_missing_model_is_400_with_param(server: Any, session: aiohttp.ClientSession,
                                               fake_openai: FakeOpenAIUpstream, body: dict[str, Any]) -> None:
    async with session.post(f"{server.v1}/chat/completions", json=body, headers=AUTH) as r:
        assert r.status == 400
        assert await r.json() == {"error": {"message": "missing required field: model",
                                            "type": "invalid_request_error", "param": "model"}}
    assert len(fake_openai.requests) == 0


async def test_model_of_wrong_type_is_400_naming_field(server: Any, session: aiohttp.ClientSession) -> None:
    async with session.post(f"{server.v1}/chat/completions", json={"model": 7, "messages": []}, headers=AUTH) as r:
        assert r.status == 400
        body = await r.json()
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == "model"
    assert "model" in body["error"]["message"]


async def test_missing_model_claude_shape(server: Any, session: aiohttp.ClientSession) -> None:
    async with session.post(f"{server.v1}/messages", json={"max_tokens": 1}, headers=AUTH) as r:
        assert r.status == 400
        assert await r.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                             "message": "missing required field: model"}}


async def test_unknown_model_is_404_model_not_found(server: Any, session: aiohttp.ClientSession,
                                                    fake_openai: FakeOpenAIUpstream) -> None:
    async with session.post(f"{server.v1}/chat/completions", json={**CHAT_BODY, "model": "gpt-9"},
                            headers=AUTH) as r:
        assert r.status == 404
        body = await r.json()
    assert body["error"]["code"] == "model_not_found"
    assert body["error"]["type"] == "invalid_request_error"
    assert "gpt-9" in body["error"]["message"]
    # Upstream model names are not client-routable; only the configured aliases are.
    async with session.post(f"{server.v1}/chat/completions", json={**CHAT_BODY, "model": "gpt-4o"},
                            headers=AUTH) as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "model_not_found"
    assert len(fake_openai.requests) == 0


async def test_unknown_model_streaming_is_plain_404(server: Any, session: aiohttp.ClientSession) -> None:
    body = {**CHAT_BODY, "model": "gpt-9", "stream": True}
    async with session.post(f"{server.v1}/chat/completions", json=body, headers=AUTH) as r:
        assert r.status == 404
        assert r.content_type == "application/json"
        assert (await r.json())["error"]["code"] == "model_not_found"


async def test_unknown_model_claude_shape(server: Any, session: aiohttp.ClientSession) -> None:
    async with session.post(f"{server.v1}/messages", json={**CLAUDE_BODY, "model": "claude-nope"},
                            headers=AUTH) as r:
        assert r.status == 404
        body = await r.json()
    assert body["type"] == "error"
    assert body["error"]["code"] == "model_not_found"
    assert "claude-nope" in body["error"]["message"]


async def test_unknown_model_openai_sdk(server: Any) -> None:
    client = openai.AsyncOpenAI(base_url=server.v1, api_key=KEY, max_retries=0)
    try:
        with pytest.raises(openai.NotFoundError) as info:
            await client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    finally:
        await client.close()
    assert info.value.status_code == 404
    assert info.value.code == "model_not_found"


async def test_body_over_limit_is_413_and_server_survives(server: Any, session: aiohttp.ClientSession,
                                                          fake_openai: FakeOpenAIUpstream) -> None:
    big = {**CHAT_BODY, "padding": "a" * (1024 * 1024 + 10)}
    async with session.post(f"{server.v1}/chat/completions", json=big, headers=AUTH) as r:
        assert r.status == 413
        body = await r.json()
        assert_cors(r.headers)
    assert body["error"]["type"] == "invalid_request_error"
    assert "1048576" in body["error"]["message"]
    assert len(fake_openai.requests) == 0
    async with aiohttp.ClientSession() as fresh, fresh.post(f"{server.v1}/chat/completions", json=CHAT_BODY,
                                                            headers=AUTH) as r:
        assert r.status == 200
        assert (await r.json())["choices"][0]["message"]["content"] == "Hello from fake"
    async with session.post(f"{server.v1}/chat/completions", json=CHAT_BODY, headers=AUTH) as r:
        assert r.status == 200


async def test_body_just_under_limit_is_accepted(server: Any, session: aiohttp.ClientSession) -> None:
    body = {**CHAT_BODY, "padding": ""}
    overhead = len(json.dumps(body).encode())
    body["padding"] = "a" * (1024 * 1024 - overhead)
    raw = json.dumps(body).encode()
    assert len(raw) == 1024 * 1024
    async with session.post(f"{server.v1}/chat/completions", data=raw,
                            headers={**AUTH, "Content-Type": "application/json"}) as r:
        assert r.status == 200


async def test_chunked_body_over_limit_is_413(server: Any, session: aiohttp.ClientSession) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"a" * 65536

    async with session.post(f"{server.v1}/chat/completions", data=chunks(), headers=AUTH) as r:
        assert r.status == 413
    async with session.post(f"{server.v1}/chat/completions", json=CHAT_BODY, headers=AUTH) as r:
        assert r.status == 200


async def test_gzip_body_limit_counted_after_decompression(server: Any, session: aiohttp.ClientSession) -> None:
    raw = json.dumps({**CHAT_BODY, "padding": "a" * (2 * 1024 * 1024)}).encode()
    packed = gzip.compress(raw)
    assert len(packed) < 1024 * 1024
    headers = {**AUTH, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    async with session.post(f"{server.v1}/chat/completions", data=packed, headers=headers) as r:
        assert r.status == 413


async def test_body_over_limit_claude_shape(server: Any, session: aiohttp.ClientSession) -> None:
    async with session.post(f"{server.v1}/messages", data=b"x" * (1024 * 1024 + 1), headers=AUTH) as r:
        assert r.status == 413
        body = await r.json()
    assert body["type"] == "error"
    assert "1048576" in body["error"]["message"]


# --------------------------------------------------------------------------- fixed routes


async def test_root_banner(server: Any, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{server.url}/") as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        body = await r.json()
    assert body == {
        "endpoints": ["POST /v1/chat/completions", "POST /v1/completions", "GET /v1/models"],
        "message": "CLI Proxy API Server",
    }


@pytest.mark.parametrize(("method", "status"), [("GET", 301), ("POST", 307)])
async def test_trailing_slash_redirects_like_the_reference(server: Any, session: aiohttp.ClientSession,
                                                           method: str, status: int) -> None:
    path = "/v1/models/" if method == "GET" else "/v1/chat/completions/"
    async with session.request(method, f"{server.url}{path}?key=1", headers=AUTH, allow_redirects=False) as r:
        assert r.status == status
        assert r.headers["Location"] == path.rstrip("/") + "?key=1"
        # The reference's router redirects before any middleware: no CORS headers; GET gets Go's small HTML body.
        assert "Access-Control-Allow-Origin" not in r.headers
        body = await r.text()
    if method == "GET":
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        assert body == '<a href="/v1/models?key=1">Moved Permanently</a>.\n\n'
    else:
        assert body == ""


@pytest.mark.parametrize("provider", ["google", "anthropic", "codex", "iflow", "antigravity"])
async def test_oauth_callback_page(server: Any, session: aiohttp.ClientSession, provider: str) -> None:
    async with session.get(f"{server.url}/{provider}/callback", params={"code": "x", "state": "y"}) as r:
        assert r.status == 200
        assert r.content_type == "text/html"
        assert r.charset == "utf-8"
        text = await r.text()
    assert "Authentication successful" in text
    assert "window.close" in text


@pytest.mark.parametrize("query", [{}, {"error": "access_denied"}, {"state": "../../etc"}],
                         ids=["no-params", "error", "bad-state"])
async def test_oauth_callback_always_success_page(server: Any, session: aiohttp.ClientSession,
                                                  query: dict[str, str]) -> None:
    async with session.get(f"{server.url}/google/callback", params=query) as r:
        assert r.status == 200
        assert "Authentication successful" in await r.text()


async def test_management_html_is_404(server: Any, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{server.url}/management.html") as r:
        assert r.status == 404
        assert await r.read() == b""


async def test_unknown_oauth_provider_callback_is_404(server: Any, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{server.url}/github/callback", params={"code": "x"}) as r:
        assert r.status == 404


# --------------------------------------------------------------------------- model lists


async def test_gemini_model_list(server: Any, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{server.url}/v1beta/models", headers={"x-goog-api-key": KEY}) as r:
        assert r.status == 200
        body = await r.json()
    assert set(body) == {"models"}
    by_name = {m["name"]: m for m in body["models"]}
    assert set(by_name) == {"models/my-model", "models/mini"}
    entry = by_name["models/my-model"]
    assert entry["supportedGenerationMethods"] == ["generateContent"]
    assert entry["displayName"]
    assert entry["description"]


async def test_openai_model_list_shape(server: Any, session: aiohttp.ClientSession) -> None:
    for headers in (AUTH, {**AUTH, "User-Agent": "python-requests/2.31"}, {**AUTH, "User-Agent": "Claude-CLI/2.0"}):
        async with session.get(f"{server.v1}/models", headers=headers) as r:
            assert r.status == 200
            body = await r.json()
        assert body["object"] == "list"
        assert set(body) == {"object", "data"}
        assert {m["id"] for m in body["data"]} == {"my-model", "mini"}
        for entry in body["data"]:
            assert set(entry) == {"id", "object", "created", "owned_by"}
            assert entry["object"] == "model"
            assert entry["owned_by"] == "fake"
            assert isinstance(entry["created"], int) and not isinstance(entry["created"], bool)


@pytest.mark.parametrize("extra", [{"User-Agent": "claude-cli/2.0.14 (external, cli)"},
                                   {"anthropic-version": "2023-06-01"}])
async def test_claude_model_list_for_claude_cli(server: Any, session: aiohttp.ClientSession,
                                                extra: dict[str, str]) -> None:
    headers = {**AUTH, **extra}
    async with session.get(f"{server.v1}/models", headers=headers) as r:
        assert r.status == 200
        body = await r.json()
    assert set(body) == {"data", "first_id", "last_id", "has_more"}
    assert body["has_more"] is False
    ids = [m["id"] for m in body["data"]]
    assert set(ids) == {"my-model", "mini"}
    assert body["first_id"] == ids[0]
    assert body["last_id"] == ids[-1]
    for entry in body["data"]:
        assert entry["type"] == "model"
        assert entry["object"] == "model"
        assert entry["owned_by"] == "fake"
        # Anthropic's shape (and the recorded reference's): RFC 3339 `created_at`, token limits per model.
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["created_at"])
        assert entry["max_input_tokens"] > 0 and entry["max_tokens"] > 0
        assert "created" not in entry


async def test_openai_sdk_models_list(server: Any) -> None:
    client = openai.AsyncOpenAI(base_url=server.v1, api_key=KEY, max_retries=0)
    try:
        page = await client.models.list()
    finally:
        await client.close()
    assert {(m.id, m.owned_by) for m in page.data} == {("my-model", "fake"), ("mini", "fake")}


# --------------------------------------------------------------------------- upstream errors


async def test_non_json_upstream_503_is_wrapped(server: Any, fake_openai: FakeOpenAIUpstream) -> None:
    fake_openai.enqueue_error(503, "overloaded", times=5)
    client = openai.AsyncOpenAI(base_url=server.v1, api_key=KEY, max_retries=0)
    try:
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(model="my-model", messages=[{"role": "user", "content": "hi"}])
    finally:
        await client.close()
    assert info.value.status_code == 503
    assert info.value.response.json() == {
        "error": {"message": "overloaded", "type": "server_error", "code": "internal_server_error"}
    }
    assert len(fake_openai.requests) >= 1


async def test_non_json_upstream_503_raw(server: Any, session: aiohttp.ClientSession,
                                         fake_openai: FakeOpenAIUpstream) -> None:
    fake_openai.enqueue_error(503, "overloaded", times=5)
    async with session.post(f"{server.v1}/chat/completions", json=CHAT_BODY, headers=AUTH) as r:
        assert r.status == 503
        assert r.content_type == "application/json"
        assert_cors(r.headers)
        assert GENERATED_ID.fullmatch(r.headers["X-Request-Id"])
        assert await r.json() == {
            "error": {"message": "overloaded", "type": "server_error", "code": "internal_server_error"}
        }


async def test_upstream_json_400_passes_through_verbatim(server: Any, session: aiohttp.ClientSession,
                                                         fake_openai: FakeOpenAIUpstream) -> None:
    error = openai_error("messages[0].content is bad", "invalid_request_error", code="invalid_value",
                         param="messages")
    fake_openai.enqueue_error(400, error)
    async with session.post(f"{server.v1}/chat/completions", json=CHAT_BODY, headers=AUTH) as r:
        assert r.status == 400
        assert r.content_type == "application/json"
        raw = await r.read()
    assert json.loads(raw) == error
    assert raw == json.dumps(error).encode()
    # A 400 is not retried on another credential.
    assert len(fake_openai.requests) == 1


async def test_upstream_json_400_via_openai_sdk(server: Any, fake_openai: FakeOpenAIUpstream) -> None:
    error = openai_error("bad request from upstream", "invalid_request_error", code="invalid_value")
    fake_openai.enqueue_error(400, error)
    client = openai.AsyncOpenAI(base_url=server.v1, api_key=KEY, max_retries=0)
    try:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="my-model", messages=[{"role": "user", "content": "hi"}])
    finally:
        await client.close()
    assert info.value.status_code == 400
    assert info.value.response.json() == error
    assert info.value.code == "invalid_value"


# --------------------------------------------------------------------------- known deviations


async def test_unknown_path_body_matches_reference(server: Any, session: aiohttp.ClientSession) -> None:
    """The recorded reference answers an unknown route with an empty 404 (CORS headers, no Content-Type)."""
    async with session.get(f"{server.url}/nope") as r:
        assert r.status == 404
        assert "Content-Type" not in r.headers
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert await r.read() == b""


async def test_wrong_method_on_known_path_is_404(server: Any, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{server.v1}/chat/completions", headers=AUTH) as r:
        assert r.status == 404
        assert await r.read() == b""
