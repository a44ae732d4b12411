"""`GET /`: the reference's banner."""

from __future__ import annotations

from aiohttp import web

from proxyd import __version__

BANNER = {
    "endpoints": ["POST /v1/chat/completions", "POST /v1/completions", "GET /v1/models"],
    "message": "CLI Proxy API Server",
}


async def root(request: web.Request) -> web.StreamResponse:
    return web.json_response(BANNER, headers={"Server": f"proxyd/{__version__}"})


def add_root_routes(app: web.Application) -> None:
    app.router.add_get("/", root)
