"""CORS: the reference's permissive headers on every response, and 204 for any OPTIONS before auth.

aiohttp-cors answers real browser requests (an `Origin` header) on routed resources; the middleware here
guarantees the reference's headers on every other response, 404s included, and answers every OPTIONS
request (routed or not, with or without `Origin`) with an empty 204 like the reference.
"""

from __future__ import annotations

from typing import Any

import aiohttp_cors
from aiohttp import hdrs, web

from proxyd.http.types import Handler

ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
EXPOSE_HEADERS = "X-Request-Id, Retry-After, Location, OpenAI-Request-Id, X-CPA-VERSION, X-CPA-COMMIT, X-CPA-BUILD-DATE"
CORS_HEADERS: dict[str, str] = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": ALLOW_METHODS,
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Expose-Headers": EXPOSE_HEADERS,
}

CORS_KEY = web.AppKey("proxyd.cors", aiohttp_cors.CorsConfig)


@web.middleware
async def preflight_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "OPTIONS":
        return web.Response(status=204, headers=CORS_HEADERS)
    return await handler(request)


async def _add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in CORS_HEADERS.items():
        if name not in response.headers:
            response.headers[name] = value


def _only_with_origin(app: web.Application) -> None:
    """Call aiohttp-cors's response hook only for requests with an `Origin` header (it does nothing for others,
    but only after two router look-ups): a saving on every API call, which never sends `Origin`."""
    hooks = app.on_response_prepare
    for index, hook in enumerate(hooks):
        owner = getattr(hook, "__self__", None)
        if owner is None or type(owner).__module__ != "aiohttp_cors.cors_config":
            continue

        async def with_origin(request: web.Request, response: web.StreamResponse, _hook: Any = hook) -> None:
            if hdrs.ORIGIN in request.headers:
                await _hook(request, response)

        hooks[index] = with_origin


def setup_cors(app: web.Application) -> None:
    """Install the preflight middleware, the header stamp and aiohttp-cors on every route added so far."""
    # Appended last: the request id and the access log still see the preflight; auth (a pipeline stage) never does.
    app.middlewares.append(preflight_middleware)
    cors = aiohttp_cors.setup(
        app,
        defaults={
            "*": aiohttp_cors.ResourceOptions(
                allow_credentials=False,
                expose_headers=tuple(h.strip() for h in EXPOSE_HEADERS.split(",")),
                allow_headers="*",
                allow_methods=tuple(m.strip() for m in ALLOW_METHODS.split(",")),
            )
        },
    )
    for route in list(app.router.routes()):
        if route.method != "OPTIONS":
            cors.add(route)
    app[CORS_KEY] = cors
    _only_with_origin(app)
    # After aiohttp-cors's own hook: it refuses to run when the headers are already there.
    app.on_response_prepare.append(_add_cors_headers)
