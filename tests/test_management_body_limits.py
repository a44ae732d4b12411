"""Management routes read request bodies through the bounded reader: an oversized body is a 413 in the
management error shape, nothing is done or written, and the server keeps answering."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
import openai
import pytest
from aiohttp import StreamReader
from fakes import FakeOpenAIUpstream, compat_config
from test_authdir import write

from proxyd.http.body import read_stream
from proxyd.keys import RUNTIME
from proxyd.management import api_call, auth_files, credentials

MGMT = "mgmt-secret"
AUTH = {"Authorization": f"Bearer {MGMT}"}
EXTRA = f'remote-management:\n  secret-key: "{MGMT}"\n'


async def _post(server: Any, method: str, path: str, data: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.request(method, f"{server.url}/v0/management{path}",
                                                             data=data, headers=AUTH) as resp:
        return resp.status, await resp.json()


def _oversized(limit: int, chunked: bool) -> Any:
    """A body one byte past `limit`: with a Content-Length, or streamed chunked (no declared length)."""
    raw = json.dumps({"pad": "x" * limit}).encode()

    async def stream() -> AsyncIterator[bytes]:
        for at in range(0, len(raw), 16 * 1024):
            yield raw[at:at + 16 * 1024]

    return stream() if chunked else raw


@pytest.mark.parametrize("chunked", [False, True])
async def test_api_call_refuses_an_oversized_body(fake_openai: FakeOpenAIUpstream, proxyd_factory: Any,
                                                  chunked: bool) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url, extra=EXTRA))
    status, body = await _post(server, "POST", "/api-call", _oversized(api_call.MAX_REQUEST_BYTES, chunked))
    assert (status, body) == (413, {"error": "request body too large"})
    assert not fake_openai.requests  # no call went out
    status, body = await _post(server, "POST", "/api-call", json.dumps({"method": "GET",
                                                                        "url": f"{fake_openai.base_url}/models"}))
    assert status == 200 and body["status_code"] == 200  # the server still answers


@pytest.mark.parametrize("chunked", [False, True])
async def test_credentials_reset_refuses_an_oversized_body(fake_openai: FakeOpenAIUpstream, proxyd_factory: Any,
                                                           chunked: bool) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url, upstream_keys=("sk-0", "sk-1"), extra=EXTRA))
    fake_openai.enqueue_error(503, {"error": {"message": "overloaded", "type": "server_error"}})
    client = openai.AsyncOpenAI(base_url=server.v1, api_key="client-key", max_retries=0)
    await client.chat.completions.create(model="my-model", messages=[{"role": "user", "content": "hi"}])
    await client.close()
    manager = server.app[RUNTIME].current.manager
    assert [c["status"] for c in manager.snapshot()].count("cooling") == 1
    status, body = await _post(server, "POST", "/credentials/reset",
                               _oversized(credentials.MAX_BODY_BYTES, chunked))
    assert (status, body) == (413, {"error": "request body too large"})
    assert [c["status"] for c in manager.snapshot()].count("cooling") == 1  # nothing was reset
    status, body = await _post(server, "POST", "/credentials/reset", b"{}")
    assert status == 200 and all(c["status"] == "ok" for c in manager.snapshot())


@pytest.mark.parametrize("path", ["/auth-files/status", "/auth-files/fields"])
@pytest.mark.parametrize("chunked", [False, True])
async def test_auth_file_patches_refuse_an_oversized_body(proxyd_factory: Any, tmp_path: Path, path: str,
                                                          chunked: bool) -> None:
    auth = tmp_path / "auth"
    auth.mkdir()
    written = write(auth, "c.json", {"type": "claude", "access_token": "t", "email": "e@x"})
    before = written.read_bytes()
    server = await proxyd_factory(f'host: "127.0.0.1"\nauth-dir: "{auth}"\napi-keys: ["client-key"]\n{EXTRA}')
    status, body = await _post(server, "PATCH", path, _oversized(auth_files.MAX_PATCH_BYTES, chunked))
    assert (status, body) == (413, {"error": "request body too large"})
    assert written.read_bytes() == before  # nothing written
    status, body = await _post(server, "PATCH", "/auth-files/status", json.dumps({"name": "c.json", "disabled": True}))
    assert (status, body) == (200, {"status": "ok", "disabled": True})


def _reader(*chunks: bytes) -> StreamReader:
    reader = StreamReader(mock.Mock(_reading_paused=False), 2 ** 16, loop=asyncio.get_running_loop())
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    return reader


async def test_read_stream_bounds_and_truncates() -> None:
    assert await read_stream(_reader(b"abc", b"def"), 6) == b"abcdef"
    assert await read_stream(_reader(b"abc", b"defg"), 6) is None
    assert await read_stream(_reader(b"abc", b"defg"), 6, truncate=True) == b"abcdef"
    assert await read_stream(_reader(), 6) == b""
