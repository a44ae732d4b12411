"""Shortcuts on the per-request edge give what the code they replace gave (request ids, log context, headers)."""

from __future__ import annotations

import asyncio
import uuid

import structlog
from aiohttp import web

from proxyd.http import request_id
from proxyd.http.streaming import HeldHeadersResponse


def test_request_ids_equal_uuid4_of_the_same_random_bits() -> None:
    for seed in range(3000):
        request_id._RANDOM.seed(seed)
        fast = request_id.new_request_id()
        request_id._RANDOM.seed(seed)
        assert fast == str(uuid.UUID(int=request_id._RANDOM.getrandbits(128), version=4))
    assert uuid.UUID(request_id.new_request_id()).version == 4


def test_the_request_id_is_bound_and_unbound_as_structlog_binds_it() -> None:
    class Request(dict):  # the storage and headers the middleware uses
        headers: dict[str, str] = {"X-Request-Id": "client-id-1"}

    rid = request_id.assign(Request())
    assert rid == "client-id-1"
    assert structlog.contextvars.get_contextvars() == {"request_id": "client-id-1"}
    request_id.release()
    assert structlog.contextvars.get_contextvars() == {}
    structlog.contextvars.bind_contextvars(request_id="bound-elsewhere")  # still the one variable
    try:
        assert structlog.contextvars.get_contextvars() == {"request_id": "bound-elsewhere"}
        request_id.release()
        assert structlog.contextvars.get_contextvars() == {}
    finally:
        structlog.contextvars.clear_contextvars()


async def _raw_get(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    return reader, writer


async def _serve(handler) -> tuple[web.AppRunner, int]:  # type: ignore[no-untyped-def]
    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def test_held_headers_leave_with_the_first_body_bytes() -> None:
    prepared, release = asyncio.Event(), asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        response = HeldHeadersResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        prepared.set()
        await release.wait()
        await response.write(b"data: 1\n\n")
        await response.write_eof(b"data: [DONE]\n\n")
        return response

    runner, port = await _serve(handler)
    try:
        reader, writer = await _raw_get(port)
        await prepared.wait()
        early = asyncio.ensure_future(reader.read(1))
        await asyncio.sleep(0.2)
        assert not early.done()  # prepared, but nothing sent before the first bytes
        release.set()
        data = (await early) + await reader.readuntil(b"0\r\n\r\n")
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"Content-Type: text/event-stream" in head
        assert body == b"9\r\ndata: 1\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"
        writer.close()
    finally:
        await runner.cleanup()


async def test_send_headers_pushes_them_out_alone() -> None:
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        response = HeldHeadersResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.send_headers()
        await response.send_headers()  # once only
        await release.wait()
        await response.write_eof()
        return response

    runner, port = await _serve(handler)
    try:
        reader, writer = await _raw_get(port)
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        release.set()
        assert await reader.readuntil(b"0\r\n\r\n") == b"0\r\n\r\n"
        writer.close()
    finally:
        await runner.cleanup()
