"""Tests for the fake Gemini upstream, judged by the google-genai SDK and by raw aiohttp."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from fakes import FakeGeminiUpstream, gemini_error, google_status
from fakes.sse import iter_sse, parse_sse
from google import genai
from google.genai import errors, types

MODEL = "gemini-2.5-flash"
KEY = "AIza-test-key-1"
CONTENTS = [{"role": "user", "parts": [{"text": "hi"}]}]


@pytest.fixture
async def client(fake_gemini: FakeGeminiUpstream) -> AsyncIterator[genai.Client]:
    """SDK client pointed at the fake (Gemini API surface)."""
    c = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=fake_gemini.base_url))
    yield c
    await c.aio.aclose()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session for wire-level checks."""
    async with aiohttp.ClientSession() as session:
        yield session


def _url(up: FakeGeminiUpstream, action: str, model: str = MODEL, query: str = "") -> str:
    return f"{up.base_url}/v1beta/models/{model}:{action}{query}"


async def _post(
    http: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    async with http.post(url, json=body, headers={"x-goog-api-key": KEY} if headers is None else headers) as resp:
        return resp.status, dict(resp.headers), await resp.read()


# --------------------------------------------------------------------------- SDK: generateContent


async def test_base_url(fake_gemini: FakeGeminiUpstream) -> None:
    assert fake_gemini.base_url == f"http://127.0.0.1:{fake_gemini.port}"


async def test_generate_content(fake_gemini: FakeGeminiUpstream, client: genai.Client) -> None:
    resp = await client.aio.models.generate_content(model=MODEL, contents="hi")
    assert resp.text == "Hello from fake"
    cand = resp.candidates[0]
    assert cand.content.role == "model"
    assert cand.finish_reason == types.FinishReason.STOP
    assert cand.index == 0
    assert resp.model_version == MODEL
    assert resp.response_id
    usage = resp.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (12, 8, 20)
    assert usage.thoughts_token_count is None
    assert usage.cached_content_token_count is None

    rec = fake_gemini.last
    assert rec.method == "POST"
    assert rec.path.endswith(f"/models/{MODEL}:generateContent")
    assert rec.surface == "gemini"
    assert rec.model == MODEL
    assert rec.action == "generateContent"
    assert rec.api_key == KEY
    assert rec.credential == KEY
    assert not rec.stream
    assert rec.request is not None
    assert rec.request["contents"][0]["parts"] == [{"text": "hi"}]


async def test_raw_generate_content_shape(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    fake_gemini.response_model = "gemini-2.5-flash-preview-05-20"
    status, headers, raw = await _post(http, _url(fake_gemini, "generateContent"), {"contents": CONTENTS})
    assert status == 200
    assert headers["Content-Type"] == "application/json; charset=UTF-8"
    body = json.loads(raw)
    assert set(body) == {"candidates", "usageMetadata", "modelVersion", "responseId"}
    assert body["candidates"] == [
        {"content": {"parts": [{"text": "Hello from fake"}], "role": "model"}, "finishReason": "STOP", "index": 0}
    ]
    assert body["modelVersion"] == "gemini-2.5-flash-preview-05-20"
    assert body["usageMetadata"]["promptTokensDetails"] == [{"modality": "TEXT", "tokenCount": 12}]
    assert fake_gemini.last.path == f"/v1beta/models/{MODEL}:generateContent"


async def test_thinking_and_signature(fake_gemini: FakeGeminiUpstream, client: genai.Client) -> None:
    fake_gemini.reply_thinking = "Let me think about it."
    resp = await client.aio.models.generate_content(model=MODEL, contents="hi")
    parts = resp.candidates[0].content.parts
    assert parts[0].thought is True
    assert parts[0].text == "Let me think about it."
    assert parts[1].text == "Hello from fake"
    assert not parts[1].thought
    assert parts[1].thought_signature == base64.b64decode(fake_gemini.thought_signature or "")
    assert resp.text == "Hello from fake"
    usage = resp.usage_metadata
    assert usage.thoughts_token_count == 6
    assert usage.total_token_count == 12 + 8 + 6

    fake_gemini.thought_signature = None
    fake_gemini.thoughts_tokens = 40
    resp = await client.aio.models.generate_content(model=MODEL, contents="hi")
    assert resp.candidates[0].content.parts[1].thought_signature is None
    assert resp.usage_metadata.thoughts_token_count == 40


async def test_parallel_function_calls(fake_gemini: FakeGeminiUpstream, client: genai.Client) -> None:
    sig = base64.b64encode(b"sig-1").decode()
    fake_gemini.reply_text = ""
    fake_gemini.reply_function_calls = [
        {"name": "get_weather", "args": {"city": "Paris"}, "thoughtSignature": sig},
        {"name": "get_time", "args": {"tz": "CET"}, "id": "call-2"},
        {"name": "noop"},
    ]
    resp = await client.aio.models.generate_content(model=MODEL, contents="hi")
    calls = resp.function_calls
    assert calls is not None
    assert [(c.name, c.args, c.id) for c in calls] == [
        ("get_weather", {"city": "Paris"}, None),
        ("get_time", {"tz": "CET"}, "call-2"),
        ("noop", {}, None),
    ]
    parts = resp.candidates[0].content.parts
    assert len(parts) == 3
    assert parts[0].thought_signature == b"sig-1"
    assert parts[1].thought_signature is None
    assert resp.candidates[0].finish_reason == types.FinishReason.STOP


async def test_thinking_signature_goes_on_first_call(fake_gemini: FakeGeminiUpstream, client: genai.Client) -> None:
    fake_gemini.reply_text = ""
    fake_gemini.reply_thinking = "plan"
    fake_gemini.reply_function_calls = [{"name": "a", "args": {}}, {"name": "b", "args": {"x": 1}}]
    resp = await client.aio.models.generate_content(model=MODEL, contents="hi")
    parts = resp.candidates[0].content.parts
    assert [bool(p.thought) for p in parts] == [True, False, False]
    assert parts[1].function_call is not None
    assert parts[1].thought_signature == b"fake-thought-signature:0001"
    assert parts[2].thought_signature is None


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("MAX_TOKENS", types.FinishReason.MAX_TOKENS),
        ("SAFETY", types.FinishReason.SAFETY),
        ("RECITATION", types.FinishReason.RECITATION),
        ("MALFORMED_FUNCTION_CALL", types.FinishReason.MALFORMED_FUNCTION_CALL),
    ],
)
async def test_finish_reason_override(
    fake_gemini: FakeGeminiUpstream, client: genai.Client, reason: str, expected: types.FinishReason
) -> None:
    fake_gemini.finish_reason = reason
    resp = await client.aio.models.generate_content(model=MODEL, contents="hi")
    assert resp.candidates[0].finish_reason == expected
    if reason == "SAFETY":
        assert resp.candidates[0].safety_ratings[0].blocked is True


async def test_usage_numbers_and_cache(fake_gemini: FakeGeminiUpstream, client: genai.Client) -> None:
    fake_gemini.prompt_tokens = 100
    fake_gemini.candidates_tokens = 30
    fake_gemini.cached_tokens = 64
    resp = await client.aio.models.generate_content(model=MODEL, contents="hi")
    usage = resp.usage_metadata
    assert usage.prompt_token_count == 100
    assert usage.candidates_token_count == 30
    assert usage.cached_content_token_count == 64
    assert usage.total_token_count == 130
    assert usage.cache_tokens_details[0].token_count == 64


async def test_block_reason(fake_gemini: FakeGeminiUpstream, client: genai.Client) -> None:
    fake_gemini.block_reason = "SAFETY"
    resp = await client.aio.models.generate_content(model=MODEL, contents="hi")
    assert not resp.candidates
    assert resp.prompt_feedback.block_reason == types.BlockedReason.SAFETY


async def test_enqueue_reply_and_reply_parts(fake_gemini: FakeGeminiUpstream, client: genai.Client) -> None:
    fake_gemini.enqueue_reply("one-off", thinking="hmm", finish_reason="MAX_TOKENS")
    assert fake_gemini.pending_actions == 1
    resp = await client.aio.models.generate_content(model=MODEL, contents="hi")
    assert resp.text == "one-off"
    assert resp.candidates[0].content.parts[0].thought is True
    assert resp.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert fake_gemini.pending_actions == 0
    resp = await client.aio.models.generate_content(model=MODEL, contents="hi")
    assert resp.text == "Hello from fake"

    png = base64.b64encode(b"\x89PNG fake").decode()
    fake_gemini.reply_parts = [{"text": "here"}, {"inlineData": {"mimeType": "image/png", "data": png}}]
    resp = await client.aio.models.generate_content(model=MODEL, contents="draw")
    parts = resp.candidates[0].content.parts
    assert parts[0].text == "here"
    assert parts[1].inline_data.mime_type == "image/png"
    assert parts[1].inline_data.data == b"\x89PNG fake"


# --------------------------------------------------------------------------- SDK: streaming


async def test_stream(fake_gemini: FakeGeminiUpstream, client: genai.Client) -> None:
    fake_gemini.reply_text = "The quick brown fox jumps"
    fake_gemini.chunk_count = 5
    chunks = [c async for c in await client.aio.models.generate_content_stream(model=MODEL, contents="hi")]
    assert len(chunks) == 5
    assert "".join(c.text or "" for c in chunks) == "The quick brown fox jumps"
    assert all(c.usage_metadata is None for c in chunks[:-1])
    assert chunks[-1].usage_metadata.total_token_count == 20
    assert all(c.candidates[0].finish_reason is None for c in chunks[:-1])
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert len({c.response_id for c in chunks}) == 1
    assert all(c.model_version == MODEL for c in chunks)
    rec = fake_gemini.last
    assert rec.stream
    assert rec.sse
    assert rec.action == "streamGenerateContent"
    assert fake_gemini.completed_streams == 1


async def test_stream_thinking_and_calls(fake_gemini: FakeGeminiUpstream, client: genai.Client) -> None:
    fake_gemini.chunk_count = 2
    fake_gemini.reply_thinking = "abcd"
    fake_gemini.reply_text = "wxyz"
    fake_gemini.reply_function_calls = [{"name": "f", "args": {"a": 1}}, {"name": "g", "args": {"b": 2}}]
    chunks = [c async for c in await client.aio.models.generate_content_stream(model=MODEL, contents="hi")]
    parts = [c.candidates[0].content.parts for c in chunks]
    assert [[p.thought for p in ps] for ps in parts[:2]] == [[True], [True]]
    assert "".join(p[0].text for p in parts[:2]) == "abcd"
    assert parts[2][0].text == "wx"
    assert parts[2][0].thought_signature == b"fake-thought-signature:0001"
    assert parts[3][0].text == "yz"
    assert [p.function_call.name for p in parts[4]] == ["f", "g"]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.thoughts_token_count == 6


async def test_stream_usage_on_every_chunk(fake_gemini: FakeGeminiUpstream, client: genai.Client) -> None:
    fake_gemini.usage_on_every_chunk = True
    chunks = [c async for c in await client.aio.models.generate_content_stream(model=MODEL, contents="hi")]
    assert len(chunks) == 3
    for c in chunks[:-1]:
        assert c.usage_metadata.prompt_token_count == 12
        assert c.usage_metadata.candidates_token_count is None
    assert chunks[-1].usage_metadata.candidates_token_count == 8


async def test_sse_wire_format(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    fake_gemini.reply_text = "abcdef"
    status, headers, raw = await _post(
        http, _url(fake_gemini, "streamGenerateContent", query="?alt=sse"), {"contents": CONTENTS}
    )
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    frames = raw.split(b"\r\n\r\n")
    assert frames[-1] == b""
    assert len(frames) == 4
    assert all(f.startswith(b"data: ") and b"\n" not in f for f in frames[:-1])
    events = parse_sse(raw)
    assert not any(e.is_done for e in events)
    chunks = [e.json() for e in events]
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == "abcdef"
    assert [("finishReason" in c["candidates"][0]) for c in chunks] == [False, False, True]
    assert [("usageMetadata" in c) for c in chunks] == [False, False, True]
    assert all(c["candidates"][0]["content"]["role"] == "model" for c in chunks)


async def test_json_array_stream(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    fake_gemini.reply_text = "abcdef"
    status, headers, raw = await _post(http, _url(fake_gemini, "streamGenerateContent"), {"contents": CONTENTS})
    assert status == 200
    assert headers["Content-Type"] == "application/json; charset=UTF-8"
    text = raw.decode()
    assert text.startswith("[{")
    assert text.endswith("}\n]")
    assert "\n,\r\n{" in text
    chunks = json.loads(text)
    assert isinstance(chunks, list)
    assert len(chunks) == 3
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert not fake_gemini.last.sse


async def test_stream_is_incremental(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    fake_gemini.chunk_count = 3
    fake_gemini.chunk_delay = 0.15
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    url = _url(fake_gemini, "streamGenerateContent", query="?alt=sse")
    async with http.post(url, json={"contents": CONTENTS}, headers={"x-goog-api-key": KEY}) as resp:
        async for _ in iter_sse(resp):
            arrivals.append(loop.time())
    assert len(arrivals) == 3
    assert arrivals[-1] - arrivals[0] >= 0.25


async def test_stream_failure(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    fake_gemini.reply_text = "abcdef"
    fake_gemini.enqueue_stream_failure(after_chunks=1)
    got: list[Any] = []
    url = _url(fake_gemini, "streamGenerateContent", query="?alt=sse")

    async def read() -> None:
        async with http.post(url, json={"contents": CONTENTS}, headers={"x-goog-api-key": KEY}) as resp:
            async for ev in iter_sse(resp):
                got.append(ev.json())

    with pytest.raises(aiohttp.ClientPayloadError):
        await read()
    assert len(got) == 1
    assert fake_gemini.completed_streams == 0


async def test_stream_failure_via_sdk(fake_gemini: FakeGeminiUpstream, client: genai.Client) -> None:
    fake_gemini.chunk_count = 3
    fake_gemini.enqueue_stream_failure(after_chunks=2)
    got: list[types.GenerateContentResponse] = []

    async def read() -> None:
        async for chunk in await client.aio.models.generate_content_stream(model=MODEL, contents="hi"):
            got.append(chunk)

    with pytest.raises(aiohttp.ClientPayloadError):
        await read()
    assert len(got) == 2


async def test_non_stream_failure_closes(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    fake_gemini.enqueue_stream_failure(after_chunks=0)
    with pytest.raises(aiohttp.ClientError):
        await _post(http, _url(fake_gemini, "generateContent"), {"contents": CONTENTS})
    status, _, _ = await _post(http, _url(fake_gemini, "generateContent"), {"contents": CONTENTS})
    assert status == 200


async def test_stream_error_event(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    fake_gemini.enqueue_stream_error_event(after_chunks=1)
    status, _, raw = await _post(
        http, _url(fake_gemini, "streamGenerateContent", query="?alt=sse"), {"contents": CONTENTS}
    )
    assert status == 200
    chunks = [e.json() for e in parse_sse(raw)]
    assert len(chunks) == 2
    assert chunks[1]["error"]["code"] == 500
    assert chunks[1]["error"]["status"] == "INTERNAL"

    fake_gemini.enqueue_stream_error_event(after_chunks=1)
    _, _, raw = await _post(http, _url(fake_gemini, "streamGenerateContent"), {"contents": CONTENTS})
    arr = json.loads(raw)
    assert "candidates" in arr[0]
    assert arr[1]["error"]["status"] == "INTERNAL"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "google", "exc"),
    [
        (400, "INVALID_ARGUMENT", errors.ClientError),
        (401, "UNAUTHENTICATED", errors.ClientError),
        (403, "PERMISSION_DENIED", errors.ClientError),
        (404, "NOT_FOUND", errors.ClientError),
        (429, "RESOURCE_EXHAUSTED", errors.ClientError),
        (500, "INTERNAL", errors.ServerError),
        (503, "UNAVAILABLE", errors.ServerError),
    ],
)
async def test_default_error_bodies(
    fake_gemini: FakeGeminiUpstream, client: genai.Client, status: int, google: str, exc: type[errors.APIError]
) -> None:
    fake_gemini.enqueue_error(status)
    with pytest.raises(exc) as info:
        await client.aio.models.generate_content(model=MODEL, contents="hi")
    assert info.value.code == status
    assert info.value.status == google
    assert info.value.message
    assert google_status(status) == google


async def test_429_retry_details(fake_gemini: FakeGeminiUpstream, client: genai.Client) -> None:
    fake_gemini.enqueue_error(429)
    with pytest.raises(errors.ClientError) as info:
        await client.aio.models.generate_content(model=MODEL, contents="hi")
    details = info.value.details["error"]["details"]
    by_type = {d["@type"].rsplit(".", 1)[-1]: d for d in details}
    assert by_type["RetryInfo"]["retryDelay"] == "7s"
    assert by_type["RetryInfo"]["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
    assert by_type["QuotaFailure"]["violations"][0]["quotaDimensions"]["model"] == MODEL


async def test_error_times_headers_and_custom_bodies(
    fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession
) -> None:
    fake_gemini.retry_delay = "3.5s"
    fake_gemini.enqueue_error(429, headers={"Retry-After": "3"}, times=2)
    for _ in range(2):
        status, headers, raw = await _post(http, _url(fake_gemini, "generateContent"), {"contents": CONTENTS})
        assert status == 429
        assert headers["Retry-After"] == "3"
        assert "Please retry in 3.5s." in json.loads(raw)["error"]["message"]
    status, _, _ = await _post(http, _url(fake_gemini, "generateContent"), {"contents": CONTENTS})
    assert status == 200

    fake_gemini.enqueue_error(400, gemini_error(400, "custom message"))
    status, _, raw = await _post(http, _url(fake_gemini, "generateContent"), {"contents": CONTENTS})
    assert (status, json.loads(raw)) == (
        400,
        {"error": {"code": 400, "message": "custom message", "status": "INVALID_ARGUMENT"}},
    )
    fake_gemini.enqueue_error(502, "upstream connect error")
    status, headers, raw = await _post(http, _url(fake_gemini, "generateContent"), {"contents": CONTENTS})
    assert (status, raw) == (502, b"upstream connect error")
    assert headers["Content-Type"].startswith("text/plain")


async def test_error_before_stream(fake_gemini: FakeGeminiUpstream, client: genai.Client) -> None:
    fake_gemini.enqueue_error(503)
    with pytest.raises(errors.ServerError) as info:
        async for _ in await client.aio.models.generate_content_stream(model=MODEL, contents="hi"):
            pass
    assert info.value.code == 503


# --------------------------------------------------------------------------- auth


async def test_api_key_auth(fake_gemini: FakeGeminiUpstream, client: genai.Client, http: aiohttp.ClientSession) -> None:
    fake_gemini.expected_keys = {KEY}
    resp = await client.aio.models.generate_content(model=MODEL, contents="hi")
    assert resp.text == "Hello from fake"

    status, _, _ = await _post(
        http, _url(fake_gemini, "generateContent", query=f"?key={KEY}"), {"contents": CONTENTS}, headers={}
    )
    assert status == 200
    assert fake_gemini.last.api_key == KEY

    bad = genai.Client(api_key="wrong", http_options=types.HttpOptions(base_url=fake_gemini.base_url))
    with pytest.raises(errors.ClientError) as info:
        await bad.aio.models.generate_content(model=MODEL, contents="hi")
    await bad.aio.aclose()
    assert info.value.code == 400
    assert info.value.status == "INVALID_ARGUMENT"
    assert info.value.message == "API key not valid. Please pass a valid API key."
    assert info.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"

    status, _, raw = await _post(http, _url(fake_gemini, "generateContent"), {"contents": CONTENTS}, headers={})
    assert status == 403
    assert json.loads(raw)["error"]["status"] == "PERMISSION_DENIED"


async def test_bearer_auth(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    fake_gemini.expected_keys = {"ya29.token"}
    url = f"{fake_gemini.base_url}/v1internal:generateContent"
    envelope = {"model": MODEL, "project": "p1", "request": {"contents": CONTENTS}}
    status, _, _ = await _post(http, url, envelope, headers={"Authorization": "Bearer ya29.token"})
    assert status == 200
    assert fake_gemini.last.bearer == "ya29.token"
    status, _, raw = await _post(http, url, envelope, headers={"Authorization": "Bearer nope"})
    assert status == 401
    assert json.loads(raw)["error"]["status"] == "UNAUTHENTICATED"
    status, _, raw = await _post(http, url, envelope, headers={})
    assert status == 401
    assert json.loads(raw)["error"]["details"][0]["reason"] == "CREDENTIALS_MISSING"


# --------------------------------------------------------------------------- validation


async def test_contents_validation(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    url = _url(fake_gemini, "generateContent")
    cases: list[tuple[Any, str]] = [
        ({}, "contents is not specified"),
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "user", "parts": []}]}, "contents.parts must not be empty"),
        ({"contents": [{"role": "user", "parts": [{"thought": True}]}]}, "contents[0].parts[0].data: required oneof"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "Please use a valid role: user, model."),
    ]
    for body, needle in cases:
        status, _, raw = await _post(http, url, body)
        err = json.loads(raw)["error"]
        assert (status, err["code"], err["status"]) == (400, 400, "INVALID_ARGUMENT"), body
        assert needle in err["message"], (body, err["message"])
    async with http.post(url, data=b"{not json", headers={"x-goog-api-key": KEY}) as resp:
        assert resp.status == 400
        assert "Invalid JSON payload" in (await resp.json())["error"]["message"]
    ok = {"contents": [{"parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}
    status, _, _ = await _post(http, url, ok)
    assert status == 200


def _tool(schema: dict[str, Any], key: str = "parameters") -> dict[str, Any]:
    return {"functionDeclarations": [{"name": "f", "description": "d", key: schema}]}


async def test_schema_rejection(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    url = _url(fake_gemini, "generateContent")
    schema = {
        "type": "object",
        "$schema": "http://json-schema.org/draft-07/schema#",
        "additionalProperties": False,
        "properties": {
            "additionalProperties": {"type": "string"},  # a property *name*: allowed
            "n": {"type": "integer", "exclusiveMinimum": 0},
            "tags": {"type": "array", "items": {"type": ["string", "null"]}},
        },
    }
    status, _, raw = await _post(http, url, {"contents": CONTENTS, "tools": [_tool(schema)]})
    assert status == 400
    err = json.loads(raw)["error"]
    assert err["status"] == "INVALID_ARGUMENT"
    base = "tools[0].function_declarations[0].parameters"
    assert f"Unknown name \"$schema\" at '{base}': Cannot find field." in err["message"]
    assert f"Unknown name \"additionalProperties\" at '{base}': Cannot find field." in err["message"]
    assert f"Unknown name \"exclusiveMinimum\" at '{base}.properties[1].value'" in err["message"]
    assert f"'{base}.properties[2].value.items': Proto field is not repeating" in err["message"]
    assert "properties[0]" not in err["message"]
    violations = err["details"][0]["fieldViolations"]
    assert err["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert len(violations) == 4

    clean = {"type": "OBJECT", "properties": {"additionalProperties": {"type": "STRING", "enum": ["a", "b"]}}}
    status, _, _ = await _post(http, url, {"contents": CONTENTS, "tools": [_tool(clean)]})
    assert status == 200

    for key in ("$ref", "$defs", "const", "oneOf", "allOf", "x-google-enum"):
        status, _, raw = await _post(http, url, {"contents": CONTENTS, "tools": [_tool({"type": "object", key: 1})]})
        assert status == 400, key
        assert f'Unknown name "{key}"' in json.loads(raw)["error"]["message"]
    assert "additionalProperties" in FakeGeminiUpstream.REJECTED_SCHEMA_KEYS


async def test_json_schema_field_is_opt_in(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    url = _url(fake_gemini, "generateContent")
    schema = {"type": "object", "additionalProperties": False, "properties": {}}
    body = {"contents": CONTENTS, "tools": [_tool(schema, "parametersJsonSchema")]}
    status, _, _ = await _post(http, url, body)
    assert status == 200
    fake_gemini.validate_json_schema = True
    status, _, raw = await _post(http, url, body)
    assert status == 400
    assert "'tools[0].function_declarations[0].parameters_json_schema'" in json.loads(raw)["error"]["message"]

    resp_schema = {"contents": CONTENTS, "generationConfig": {"responseSchema": {"type": "object", "$ref": "#/a"}}}
    status, _, raw = await _post(http, url, resp_schema)
    assert status == 400
    assert "generation_config.response_schema" in json.loads(raw)["error"]["message"]


async def test_schema_rejection_via_sdk(fake_gemini: FakeGeminiUpstream, client: genai.Client) -> None:
    tool = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="f",
                parameters_json_schema={"type": "object", "properties": {"a": {"type": "string"}}},
            )
        ]
    )
    resp = await client.aio.models.generate_content(
        model=MODEL, contents="hi", config=types.GenerateContentConfig(tools=[tool])
    )
    assert resp.text == "Hello from fake"
    sent = fake_gemini.last.json["tools"][0]["functionDeclarations"][0]
    assert "parameters_json_schema" in sent  # the SDK sends the proto field name; Google accepts both spellings

    strict = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="f",
                parameters=types.Schema(
                    type=types.Type.OBJECT,
                    properties={"a": types.Schema(type=types.Type.STRING)},
                    additional_properties=False,
                ),
            )
        ]
    )
    with pytest.raises(errors.ClientError) as info:
        await client.aio.models.generate_content(
            model=MODEL, contents="hi", config=types.GenerateContentConfig(tools=[strict])
        )
    assert info.value.code == 400
    assert info.value.status == "INVALID_ARGUMENT"
    assert 'Unknown name "additional_properties"' in (info.value.message or "")


async def test_unknown_models(fake_gemini: FakeGeminiUpstream, client: genai.Client) -> None:
    fake_gemini.reject_unknown_models = True
    with pytest.raises(errors.ClientError) as info:
        await client.aio.models.generate_content(model="gemini-0.1-nope", contents="hi")
    assert info.value.code == 404
    assert info.value.status == "NOT_FOUND"
    assert "models/gemini-0.1-nope is not found" in (info.value.message or "")


# --------------------------------------------------------------------------- countTokens, models


async def test_count_tokens(fake_gemini: FakeGeminiUpstream, client: genai.Client) -> None:
    resp = await client.aio.models.count_tokens(model=MODEL, contents="hello")
    assert resp.total_tokens == 12
    fake_gemini.count_tokens = 99
    resp = await client.aio.models.count_tokens(model=MODEL, contents="hello")
    assert resp.total_tokens == 99
    assert fake_gemini.last.action == "countTokens"


async def test_models_list_and_get(fake_gemini: FakeGeminiUpstream, client: genai.Client) -> None:
    fake_gemini.models = ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash"]
    names = [m.name async for m in await client.aio.models.list(config={"page_size": 2})]
    assert names == ["models/gemini-2.5-flash", "models/gemini-2.5-pro", "models/gemini-2.0-flash"]
    model = await client.aio.models.get(model="gemini-2.5-pro")
    assert model.name == "models/gemini-2.5-pro"
    assert model.display_name == "Gemini 2.5 Pro"
    assert model.input_token_limit == 1_048_576
    assert "generateContent" in (model.supported_actions or [])
    with pytest.raises(errors.ClientError) as info:
        await client.aio.models.get(model="gemini-9")
    assert info.value.code == 404


async def test_raw_models_shape(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{fake_gemini.base_url}/v1beta/models", headers={"x-goog-api-key": KEY}) as resp:
        body = await resp.json()
    assert [m["name"] for m in body["models"]] == ["models/gemini-2.5-flash", "models/gemini-2.5-pro"]
    assert "nextPageToken" not in body
    entry = body["models"][0]
    assert {
        "name",
        "version",
        "displayName",
        "inputTokenLimit",
        "outputTokenLimit",
        "supportedGenerationMethods",
    } <= set(entry)


# --------------------------------------------------------------------------- vertex


@pytest.mark.parametrize(
    "prefix",
    ["/v1/publishers/google/models", "/v1/projects/my-proj/locations/us-central1/publishers/google/models"],
)
async def test_vertex_paths(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession, prefix: str) -> None:
    fake_gemini.expected_keys = {"vertex-token"}
    base = f"{fake_gemini.base_url}{prefix}/{MODEL}"
    auth = {"Authorization": "Bearer vertex-token"}
    status, _, raw = await _post(http, f"{base}:generateContent", {"contents": CONTENTS}, auth)
    assert status == 200
    body = json.loads(raw)
    assert body["candidates"][0]["content"]["parts"][0]["text"] == "Hello from fake"
    assert body["createTime"].endswith("Z")
    assert fake_gemini.last.surface == "vertex"
    assert fake_gemini.last.model == MODEL

    status, _, raw = await _post(http, f"{base}:streamGenerateContent?alt=sse", {"contents": CONTENTS}, auth)
    assert status == 200
    chunks = [e.json() for e in parse_sse(raw)]
    assert chunks[-1]["usageMetadata"]["totalTokenCount"] == 20

    status, _, raw = await _post(
        http, f"{base}:countTokens", {"contents": CONTENTS}, {"x-goog-api-key": "vertex-token"}
    )
    assert status == 200
    assert json.loads(raw)["totalTokens"] == 12

    status, _, raw = await _post(http, f"{base}:generateContent", {"contents": CONTENTS}, {})
    assert status == 401


async def test_vertex_express_sdk(fake_gemini: FakeGeminiUpstream) -> None:
    c = genai.Client(vertexai=True, api_key=KEY, http_options=types.HttpOptions(base_url=fake_gemini.base_url))
    try:
        resp = await c.aio.models.generate_content(model=MODEL, contents="hi")
        assert resp.text == "Hello from fake"
        assert resp.create_time is not None
        chunks = [x async for x in await c.aio.models.generate_content_stream(model=MODEL, contents="hi")]
        assert "".join(x.text or "" for x in chunks) == "Hello from fake"
    finally:
        await c.aio.aclose()
    assert "/publishers/google/models/" in fake_gemini.last.path
    assert fake_gemini.last.surface == "vertex"


async def test_vertex_imagen_predict(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    url = f"{fake_gemini.base_url}/v1/publishers/google/models/imagen-4.0-generate-001:predict"
    status, _, raw = await _post(http, url, {"instances": [{"prompt": "a cat"}], "parameters": {"sampleCount": 1}})
    assert status == 200
    pred = json.loads(raw)["predictions"][0]
    assert pred["mimeType"] == "image/png"
    assert base64.b64decode(pred["bytesBase64Encoded"]).startswith(b"\x89PNG")


# --------------------------------------------------------------------------- Gemini CLI / Code Assist


async def test_code_assist_generate(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    url = f"{fake_gemini.base_url}/v1internal:generateContent"
    envelope = {"model": "gemini-2.5-pro", "project": "proj-1", "request": {"contents": CONTENTS}}
    status, _, raw = await _post(http, url, envelope, {"Authorization": "Bearer t"})
    assert status == 200
    body = json.loads(raw)
    assert set(body) == {"response", "traceId"}
    inner = body["response"]
    assert inner["candidates"][0]["content"]["parts"] == [{"text": "Hello from fake"}]
    assert inner["modelVersion"] == "gemini-2.5-pro"
    assert inner["usageMetadata"]["totalTokenCount"] == 20
    rec = fake_gemini.last
    assert (rec.surface, rec.model, rec.action) == ("cli", "gemini-2.5-pro", "generateContent")
    assert rec.request == {"contents": CONTENTS}

    status, _, raw = await _post(http, url, {"model": "gemini-2.5-pro", "project": "p"}, {"Authorization": "Bearer t"})
    assert status == 400
    status, _, raw = await _post(http, url, {"model": "m", "request": {"contents": []}}, {"Authorization": "Bearer t"})
    assert status == 400
    assert "contents is not specified" in json.loads(raw)["error"]["message"]


async def test_code_assist_stream(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    fake_gemini.reply_thinking = "th"
    url = f"{fake_gemini.base_url}/v1internal:streamGenerateContent?alt=sse"
    envelope = {"model": MODEL, "project": "proj-1", "request": {"contents": CONTENTS}}
    status, headers, raw = await _post(http, url, envelope, {"Authorization": "Bearer t"})
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert raw.endswith(b"\r\n\r\n")
    events = [e.json() for e in parse_sse(raw)]
    assert all(set(e) == {"response", "traceId"} for e in events)
    assert len({e["traceId"] for e in events}) == 1
    assert events[0]["response"]["candidates"][0]["content"]["parts"][0]["thought"] is True
    final = events[-1]["response"]
    assert final["candidates"][0]["finishReason"] == "STOP"
    assert final["usageMetadata"]["thoughtsTokenCount"] == 6


async def test_code_assist_count_and_429(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    url = f"{fake_gemini.base_url}/v1internal:countTokens"
    body = {"request": {"model": f"models/{MODEL}", "contents": CONTENTS}}
    status, _, raw = await _post(http, url, body, {"Authorization": "Bearer t"})
    assert (status, json.loads(raw)) == (200, {"totalTokens": 12})
    assert fake_gemini.last.model == MODEL

    fake_gemini.enqueue_error(429)
    gen_url = f"{fake_gemini.base_url}/v1internal:generateContent"
    envelope = {"model": MODEL, "project": "p", "request": {"contents": CONTENTS}}
    status, _, raw = await _post(http, gen_url, envelope, {"Authorization": "Bearer t"})
    assert status == 429
    err = json.loads(raw)["error"]
    assert err["status"] == "RESOURCE_EXHAUSTED"
    assert "reset after 7s." in err["message"]
    types_ = [d["@type"] for d in err["details"]]
    assert "type.googleapis.com/google.rpc.RetryInfo" in types_
    assert "type.googleapis.com/google.rpc.QuotaFailure" in types_
    info = next(d for d in err["details"] if d["@type"].endswith("ErrorInfo"))
    assert info["metadata"]["quotaResetDelay"] == "7s"


async def test_load_code_assist_and_onboard(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    auth = {"Authorization": "Bearer t"}
    meta = {"ideType": "IDE_UNSPECIFIED", "platform": "PLATFORM_UNSPECIFIED", "pluginType": "GEMINI"}
    load = f"{fake_gemini.base_url}/v1internal:loadCodeAssist"
    status, _, raw = await _post(http, load, {"metadata": meta}, auth)
    body = json.loads(raw)
    assert status == 200
    assert body["cloudaicompanionProject"] == "fake-project-123"
    assert body["currentTier"]["id"] == "free-tier"
    assert next(t for t in body["allowedTiers"] if t.get("isDefault"))["id"] == "free-tier"

    fake_gemini.code_assist_project = None
    _, _, raw = await _post(http, load, {"metadata": meta}, auth)
    body = json.loads(raw)
    assert "cloudaicompanionProject" not in body
    assert "currentTier" not in body

    onboard = f"{fake_gemini.base_url}/v1internal:onboardUser"
    _, _, raw = await _post(http, onboard, {"tierId": "free-tier", "metadata": meta}, auth)
    assert json.loads(raw)["done"] is False
    _, _, raw = await _post(http, onboard, {"tierId": "free-tier", "metadata": meta}, auth)
    done = json.loads(raw)
    assert done["done"] is True
    assert done["response"]["cloudaicompanionProject"]["id"] == "fake-onboarded-project"
    _, _, raw = await _post(http, onboard, {"tierId": "standard-tier", "cloudaicompanionProject": "mine"}, auth)
    assert json.loads(raw)["response"]["cloudaicompanionProject"]["id"] == "mine"
    assert fake_gemini.onboard_calls == 3


# --------------------------------------------------------------------------- transport behaviour


async def test_client_disconnect_detected(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    fake_gemini.chunk_count = 10
    fake_gemini.chunk_delay = 0.05
    url = _url(fake_gemini, "streamGenerateContent", query="?alt=sse")
    async with http.post(url, json={"contents": CONTENTS}, headers={"x-goog-api-key": KEY}) as resp:
        await resp.content.readline()
    await asyncio.wait_for(fake_gemini.client_disconnected.wait(), timeout=2)
    assert fake_gemini.disconnects == 1
    assert fake_gemini.completed_streams == 0


async def test_hang_before_headers(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    fake_gemini.hang_before_headers = True
    timeout = aiohttp.ClientTimeout(total=0.2)
    with pytest.raises(asyncio.TimeoutError):
        await http.post(_url(fake_gemini, "generateContent"), json={"contents": CONTENTS}, timeout=timeout)
    await asyncio.wait_for(fake_gemini.client_disconnected.wait(), timeout=2)

    task = asyncio.create_task(_post(http, _url(fake_gemini, "generateContent"), {"contents": CONTENTS}))
    await fake_gemini.wait_for_requests(2)
    await asyncio.sleep(0.05)
    assert not task.done()
    fake_gemini.release_hang()
    status, _, _ = await asyncio.wait_for(task, timeout=2)
    assert status == 200


async def test_unknown_path_reset_and_wait(fake_gemini: FakeGeminiUpstream, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{fake_gemini.base_url}/v2/whatever") as resp:
        assert resp.status == 404
        assert resp.headers["Content-Type"].startswith("text/html")
        assert "/v2/whatever" in await resp.text()
    status, _, _ = await _post(http, _url(fake_gemini, "embedContentX"), {"contents": CONTENTS})
    assert status == 404
    recs = await fake_gemini.wait_for_requests(2)
    assert len(recs) == 2
    fake_gemini.enqueue_error(500)
    fake_gemini.reset()
    assert fake_gemini.requests == []
    assert fake_gemini.pending_actions == 0
    with pytest.raises(LookupError):
        _ = fake_gemini.last
