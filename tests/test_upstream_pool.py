"""The upstream pool does not cap streams per host: 300 concurrent streams to one upstream are all open at once."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from fakes import compat_config

from proxyd.keys import CLIENT_SESSION

STREAMS = 300  # above the old limit_per_host=256


async def test_connector_has_no_per_host_limit(proxyd_factory: Any) -> None:
    server = await proxyd_factory(compat_config("http://127.0.0.1:9/v1"))
    assert server.app[CLIENT_SESSION].connector.limit_per_host == 0


async def test_many_streams_to_one_upstream_are_held_at_once(proxyd_factory: Any) -> None:
    release = asyncio.Event()
    open_upstream = 0

    async def chat(request: web.Request) -> web.StreamResponse:
        nonlocal open_upstream
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'data: {"id":"x","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,'
                         b'"delta":{"role":"assistant","content":"hi"},"finish_reason":null}]}\n\n')
        open_upstream += 1
        await release.wait()
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    upstream = TestServer(app, host="127.0.0.1")
    await upstream.start_server()
    try:
        server = await proxyd_factory(compat_config(f"http://127.0.0.1:{upstream.port}/v1"))
        body = {"model": "my-model", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        firsts = 0
        all_open = asyncio.Event()
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

            async def one() -> int:
                nonlocal firsts
                async with session.post(f"{server.v1}/chat/completions", json=body,
                                        headers={"Authorization": "Bearer client-key"}) as r:
                    await r.content.readany()
                    firsts += 1
                    if firsts == STREAMS:
                        all_open.set()
                    await r.read()
                    return r.status

            tasks = [asyncio.create_task(one()) for _ in range(STREAMS)]
            async with asyncio.timeout(30):
                await all_open.wait()
            assert open_upstream == STREAMS
            release.set()
            assert await asyncio.gather(*tasks) == [200] * STREAMS
    finally:
        release.set()
        await upstream.close()
