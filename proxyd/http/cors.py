"""CORS: the reference's permissive headers on every response, and 204 for any OPTIONS before auth.

aiohttp-cors answers real browser requests (an `Origin` header) on routed resources; the middleware here
guarantees the reference's headers on every other response, 404s included, and answers every OPTIONS
request (routed or not, with or without `Origin`) with an empty 204 like the reference.
"""

from __future__ import annotations

import aiohttp_cors
from aiohttp import web

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
    # After aiohttp-cors's own hook: it refuses to run when the headers are already there.
    app.on_response_prepare.append(_add_cors_headers)
