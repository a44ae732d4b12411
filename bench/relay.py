"""The yardstick: a bare aiohttp relay (uvloop, one shared ClientSession, stream bytes relayed as they come).

Any POST is forwarded to the same path on the upstream; it is the floor any aiohttp gateway pays.
    python -m bench.relay --upstream http://127.0.0.1:PORT [--port 0]
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiohttp
from aiohttp import web

HOP = {"content-length", "transfer-encoding", "connection", "content-encoding"}


def make_app(upstream: str) -> web.Application:
    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with session.post(upstream + request.path_qs, data=body,
                                headers={"Content-Type": "application/json"}) as up:
            headers = {k: v for k, v in up.headers.items() if k.lower() not in HOP}
            if up.content_type != "text/event-stream":
                return web.Response(status=up.status, body=await up.read(), headers=headers)
            resp = web.StreamResponse(status=up.status, headers=headers)
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        nonlocal session
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)
        yield
        await session.close()

    session: aiohttp.ClientSession
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/{tail:.*}", relay)
    app.cleanup_ctx.append(session_ctx)
    return app


async def serve(upstream: str, port: int) -> None:
    runner = web.AppRunner(make_app(upstream.rstrip("/")), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    sys.stdout.write(f"PORT {site._server.sockets[0].getsockname()[1]}\n")  # type: ignore[union-attr]
    sys.stdout.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="bare aiohttp relay")
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.upstream, args.port))
