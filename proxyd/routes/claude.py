"""Claude-compatible routes: `/v1/messages` and `/v1/messages/count_tokens`."""

from __future__ import annotations

from aiohttp import web

from proxyd.protocols.base import WireProtocol
from proxyd.routes.proxy import run_pipeline


class ClaudeHandlers:
    """Handlers of the Anthropic Messages family."""

    async def messages(self, request: web.Request) -> web.StreamResponse:
        return await run_pipeline(request, WireProtocol.CLAUDE)

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        return await run_pipeline(request, WireProtocol.CLAUDE, stream=False, count=True)


def add_claude_routes(app: web.Application) -> None:
    h = ClaudeHandlers()
    app.router.add_post("/v1/messages", h.messages)
    app.router.add_post("/v1/messages/count_tokens", h.count_tokens)
