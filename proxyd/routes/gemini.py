"""Gemini-compatible routes under `/v1beta/models`."""

from __future__ import annotations

from aiohttp import web

from proxyd.http.errors import ProxyError
from proxyd.keys import RUNTIME
from proxyd.pipeline.auth import authenticate
from proxyd.protocols.base import WireProtocol
from proxyd.routes.listing import gemini_model_entry, gemini_model_list
from proxyd.routes.proxy import run_pipeline

STREAM_METHOD = "streamGenerateContent"
COUNT_METHOD = "countTokens"
GENERATE_METHODS = frozenset({"generateContent", STREAM_METHOD, COUNT_METHOD})


class GeminiHandlers:
    """Handlers of the Generative Language API family."""

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        runtime = request.app[RUNTIME].current
        authenticate(request, runtime.api_keys)
        return web.json_response(gemini_model_list(runtime.registry.list_models()))

    async def get_model(self, request: web.Request) -> web.StreamResponse:
        runtime = request.app[RUNTIME].current
        authenticate(request, runtime.api_keys)
        wanted = request.match_info["tail"]
        for info in runtime.registry.list_models():
            if wanted in (info.id, f"models/{info.id}") or info.id == wanted.removeprefix("models/"):
                return web.json_response(gemini_model_entry(info, defaults=False))
        raise ProxyError(404, f"model {wanted} not found", code="model_not_found")

    async def action(self, request: web.Request) -> web.StreamResponse:
        authenticate(request, request.app[RUNTIME].current.api_keys)
        tail = request.match_info["tail"]
        parts = tail.split(":")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise ProxyError(404, f"{request.path} not found.")
        model, method = parts
        if method not in GENERATE_METHODS:
            raise ProxyError(404, f"method {method} is not supported by this proxy")
        return await run_pipeline(request, WireProtocol.GEMINI, path_model=model, stream=method == STREAM_METHOD,
                                  count=method == COUNT_METHOD)


def add_gemini_routes(app: web.Application) -> None:
    h = GeminiHandlers()
    app.router.add_get("/v1beta/models", h.list_models)
    app.router.add_get("/v1beta/models/{tail:.+}", h.get_model)
    app.router.add_post("/v1beta/models/{tail:.+}", h.action)
    # google-genai ≥ 2 defaults to API version v1: serve its generateContent calls too.
    app.router.add_post("/v1/models/{tail:.+}", h.action)

