"""`POST /v1/responses/compact` (api-surface §7.7, routing.md §1.2) against the upstream fakes."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from fakes import MATRIX_CLIENT_KEY, matrix_config

AUTH = {"Authorization": f"Bearer {MATRIX_CLIENT_KEY}"}
NOT_SUPPORTED = {"error": {"message": "/responses/compact not supported", "type": "server_error",
                           "code": "internal_server_error"}}


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


@pytest.fixture
async def matrix(proxyd_factory, fake_openai, fake_claude, fake_gemini, fake_codex):  # type: ignore[no-untyped-def]
    return await proxyd_factory(matrix_config(fake_openai, fake_claude, fake_gemini, fake_codex))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_codex_compact_with_the_openai_sdk(matrix, fake_codex) -> None:  # type: ignore[no-untyped-def]
    client = openai.AsyncOpenAI(base_url=matrix.v1, api_key=MATRIX_CLIENT_KEY, max_retries=0)
    result = await client.responses.compact(model="codex-model", input=[user("a long story")])  # type: ignore[arg-type,list-item]
    assert result.object == "response.compaction"
    assert [item.type for item in result.output] == ["message", "compaction"]
    assert result.usage.total_tokens > 0
    rec = fake_codex.last
    assert rec.path == "/responses/compact"
    assert rec.headers["Accept"] == "application/json"
    assert rec.headers["Authorization"] == "Bearer sk-codex"
    assert rec.json["model"] == "gpt-5-codex"
    assert rec.json["instructions"] == ""  # the Codex default when absent
    assert "stream" not in rec.json


async def test_stream_true_is_refused_before_any_upstream_call(matrix, session, fake_codex) -> None:  # type: ignore[no-untyped-def]
    body = {"model": "codex-model", "input": "x", "stream": True}
    async with session.post(matrix.v1 + "/responses/compact", json=body, headers=AUTH) as resp:
        assert resp.status == 400
        assert await resp.json() == {"error": {"message": "Streaming not supported for compact responses",
                                               "type": "invalid_request_error"}}
    assert fake_codex.requests == []


async def test_other_stream_values_are_removed(matrix, session, fake_codex) -> None:  # type: ignore[no-untyped-def]
    body = {"model": "codex-model", "input": "x", "stream": "yes", "previous_response_id": "resp_1",
            "instructions": "keep"}
    async with session.post(matrix.v1 + "/responses/compact", json=body, headers=AUTH) as resp:
        assert resp.status == 200
        assert (await resp.json())["object"] == "response.compaction"
    sent = fake_codex.last.json
    assert "stream" not in sent and "previous_response_id" not in sent and sent["instructions"] == "keep"


@pytest.mark.parametrize("model", ["claude-model", "gemini-model"])
async def test_other_providers_answer_501(matrix, session, fake_claude, fake_gemini, model) -> None:  # type: ignore[no-untyped-def]
    async with session.post(matrix.v1 + "/responses/compact", json={"model": model, "input": "Summarize"},
                            headers=AUTH) as resp:
        assert resp.status == 501
        assert await resp.json() == NOT_SUPPORTED
    assert fake_claude.requests == [] and fake_gemini.requests == []


async def test_upstream_errors_keep_status_and_body(matrix, session, fake_codex) -> None:  # type: ignore[no-untyped-def]
    error = {"error": {"message": "context too long", "type": "invalid_request_error", "code": "too_long"}}
    fake_codex.enqueue_error(400, error)
    async with session.post(matrix.v1 + "/responses/compact", json={"model": "codex-model", "input": "x"},
                            headers=AUTH) as resp:
        assert resp.status == 400
        assert await resp.json() == error


async def test_auth_and_unknown_model(matrix, session) -> None:  # type: ignore[no-untyped-def]
    async with session.post(matrix.v1 + "/responses/compact", json={"model": "codex-model", "input": "x"}) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["message"] == "Missing API key"
    async with session.post(matrix.v1 + "/responses/compact", json={"model": "nope", "input": "x"},
                            headers=AUTH) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "model_not_found"
    async with session.post(matrix.v1 + "/responses/compact", data=b"{oops", headers=AUTH) as resp:
        assert resp.status == 400


class _CompactUpstream:
    """An OpenAI-compatible upstream that implements `/v1/responses/compact`."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _compact(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers), await request.json()))
        return web.json_response({"id": "resp_c1", "object": "response.compaction", "model": "gpt-4o",
                                  "output": [{"type": "compaction", "encrypted_content": "enc"}],
                                  "usage": {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12}})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/responses/compact", self._compact)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self.runner, sock).start()


async def test_openai_compatible_compact(proxyd_factory, session) -> None:  # type: ignore[no-untyped-def]
    upstream = _CompactUpstream()
    await upstream.start()
    try:
        config = f"""\
host: "127.0.0.1"
api-keys: ["{MATRIX_CLIENT_KEY}"]
openai-compatibility:
  - name: "compactor"
    base-url: "http://127.0.0.1:{upstream.port}/v1"
    api-key-entries:
      - api-key: "sk-compat"
    models:
      - name: "gpt-4o"
        alias: "compat-model"
"""
        server = await proxyd_factory(config)
        body = {"model": "compat-model", "input": [user("hello")], "stream": False}
        async with session.post(server.v1 + "/responses/compact", json=body, headers=AUTH) as resp:
            assert resp.status == 200
            answer = await resp.json()
    finally:
        assert upstream.runner is not None
        await upstream.runner.cleanup()
    assert answer["object"] == "response.compaction" and answer["model"] == "compat-model"
    path, headers, sent = upstream.requests[0]
    assert path == "/v1/responses/compact"
    assert headers["Authorization"] == "Bearer sk-compat"
    assert sent == {"model": "gpt-4o", "input": [user("hello")]}


async def test_unsupported_candidates_are_skipped(proxyd_factory, fake_claude, fake_codex, session) -> None:  # type: ignore[no-untyped-def]
    config = f"""\
host: "127.0.0.1"
api-keys: ["{MATRIX_CLIENT_KEY}"]
claude-api-key:
  - api-key: "sk-claude"
    base-url: "{fake_claude.base_url}"
    models:
      - name: "claude-sonnet-4-5-20250929"
        alias: "shared"
codex-api-key:
  - api-key: "sk-codex"
    base-url: "{fake_codex.base_url}"
    models:
      - name: "gpt-5-codex"
        alias: "shared"
"""
    server = await proxyd_factory(config)
    for _ in range(2):  # whichever credential the rotation puts first, the Codex one compacts
        async with session.post(server.v1 + "/responses/compact", json={"model": "shared", "input": "x"},
                                headers=AUTH) as resp:
            assert resp.status == 200
    assert len(fake_codex.requests) == 2 and fake_claude.requests == []


async def test_large_compact_answers_arrive_whole(matrix, session, fake_codex) -> None:  # type: ignore[no-untyped-def]
    items = [user(f"{i:05d} " + "y" * 1000) for i in range(800)]  # ~0.9 MB each way: many TCP chunks
    async with session.post(matrix.v1 + "/responses/compact", json={"model": "codex-model", "input": items},
                            headers=AUTH) as resp:
        assert resp.status == 200
        answer = await resp.json()
    assert len(answer["output"]) == 801 and answer["output"][-1]["type"] == "compaction"
