"""CORS: the reference's permissive headers on every response, and 204 for any OPTIONS before auth.

aiohttp-cors answers real browser requests (an `Origin` header) on routed resources; the middleware here
guarantees the reference's headers on every other response, 404s included, and answers every OPTIONS
request (routed or not, with or without `Origin`) with an empty 204 like the reference.
"""

from __future__ import annotations

from typing import Any

import aiohttp_cors
from aiohttp import hdrs, web
from multidict import istr

ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
EXPOSE_HEADERS = ("X-CPA-TRACE-ID, X-Request-Id, Retry-After, Location, OpenAI-Request-Id, X-CPA-VERSION, "
                  "X-CPA-COMMIT, X-CPA-BUILD-DATE")
CORS_HEADERS: dict[str, str] = {  # `istr` names: CIMultiDict looks them up without case-folding them first
    istr("Access-Control-Allow-Origin"): "*",
    istr("Access-Control-Allow-Methods"): ALLOW_METHODS,
    istr("Access-Control-Allow-Headers"): "*",
    istr("Access-Control-Expose-Headers"): EXPOSE_HEADERS,
}
_DEFAULTS = tuple(CORS_HEADERS.items())

CORS_KEY = web.AppKey("proxyd.cors", aiohttp_cors.CorsConfig)
NO_CORS = web.ResponseKey("proxyd.no_cors", bool)  # a response holding this key gets no CORS headers (redirects)
_CORS_HOOK = web.AppKey("proxyd.cors.hook", Any)


def preflight() -> web.Response:
    """Every OPTIONS request (routed or not, with or without `Origin`): an empty 204, before auth."""
    return web.Response(status=204, headers=CORS_HEADERS)


async def stamp(request: web.Request, response: web.StreamResponse) -> None:
    """The reference's permissive headers on a response about to be sent: aiohttp-cors's own hook first, for
    browser requests (an `Origin` header; it refuses to run once the headers are there), then the defaults."""
    if len(response) and NO_CORS in response:  # (`in` raises and catches a KeyError when the key is absent)
        return
    if hdrs.ORIGIN in request.headers:
        await browser_hook(request, response)
    stamp_defaults(response)


async def browser_hook(request: web.Request, response: web.StreamResponse) -> None:
    """aiohttp-cors's response hook (a browser request: it has an `Origin` header)."""
    hook = request.app.get(_CORS_HOOK)
    if hook is not None:
        await hook(request, response)


def stamp_defaults(response: web.StreamResponse) -> None:
    """The reference's permissive headers wherever the response has none of its own."""
    setdefault = response.headers.setdefault
    for name, value in _DEFAULTS:
        setdefault(name, value)


def _take_cors_hook(app: web.Application) -> None:
    """Move aiohttp-cors's response hook out of `on_response_prepare` into the app: :func:`stamp` calls it only
    for requests with an `Origin` header (it does nothing for others, but only after two router look-ups)."""
    hooks = app.on_response_prepare
    for index, hook in enumerate(hooks):
        owner = getattr(hook, "__self__", None)
        if owner is not None and type(owner).__module__ == "aiohttp_cors.cors_config":
            app[_CORS_HOOK] = hook
            del hooks[index]
            return


def setup_cors(app: web.Application) -> None:
    """Install aiohttp-cors on every route added so far (the edge middleware answers preflights and stamps the
    headers; see proxyd/http/edge.py)."""
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
    _take_cors_hook(app)
