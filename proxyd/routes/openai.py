"""OpenAI-compatible routes: chat completions, legacy completions, responses, model list."""

from __future__ import annotations

from aiohttp import web

from proxyd.keys import RUNTIME
from proxyd.pipeline.auth import authenticate
from proxyd.protocols.base import WireProtocol
from proxyd.routes.compact import add_compact_routes
from proxyd.routes.listing import claude_model_list, openai_model_list
from proxyd.routes.proxy import run_pipeline
from proxyd.routes.responses_ws import add_responses_ws_routes


class OpenAIHandlers:
    """Handlers of the `/v1` OpenAI family."""

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await run_pipeline(request, WireProtocol.OPENAI_CHAT)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await run_pipeline(request, WireProtocol.OPENAI_COMPLETIONS)

    async def responses(self, request: web.Request) -> web.StreamResponse:
        return await run_pipeline(request, WireProtocol.OPENAI_RESPONSES)

    async def models(self, request: web.Request) -> web.StreamResponse:
        runtime = request.app[RUNTIME].current
        authenticate(request, runtime.api_keys)
        models = runtime.registry.list_models()
        if request.headers.get("User-Agent", "").startswith("claude-cli") or "anthropic-version" in request.headers:
            return web.json_response(claude_model_list(models))
        return web.json_response(openai_model_list(models))


def add_openai_routes(app: web.Application) -> None:
    h = OpenAIHandlers()
    app.router.add_post("/v1/chat/completions", h.chat_completions)
    app.router.add_post("/v1/completions", h.completions)
    app.router.add_post("/v1/responses", h.responses)
    add_responses_ws_routes(app)  # GET /v1/responses: the same API over a WebSocket
    add_compact_routes(app)
    app.router.add_get("/v1/models", h.models)
