"""``GET /healthz`` (liveness) and ``GET /readyz`` (readiness): no auth, no secrets, cheap enough to poll.

``/readyz`` answers 200 while a config is loaded and at least one upstream credential exists, else 503 with the
reason; it turns 503 as soon as a graceful shutdown begins, so a load balancer stops sending new work.
"""

from __future__ import annotations

from aiohttp import web

from proxyd.keys import RUNTIME

__all__ = ["SHUTTING_DOWN", "add_health_routes", "readiness"]

SHUTTING_DOWN = web.AppKey("proxyd.shutting_down", list)  # non-empty once shutdown started
NO_STORE = {"Cache-Control": "no-store"}


async def healthz(request: web.Request) -> web.StreamResponse:
    """The process is up and its event loop answers."""
    return web.json_response({"status": "ok"})  # as the reference's /healthz: no cache headers


def readiness(app: web.Application) -> tuple[bool, str, int]:
    """(ready, reason when not, credential count)."""
    if app.get(SHUTTING_DOWN):
        return False, "shutting down", 0
    holder = app.get(RUNTIME)
    if holder is None:
        return False, "config not loaded", 0
    count = len(holder.current.credentials)
    if not count:
        return False, "no upstream credentials configured", 0
    return True, "", count


async def readyz(request: web.Request) -> web.StreamResponse:
    """200 when requests can be served, 503 with the reason otherwise."""
    ready, reason, count = readiness(request.app)
    if ready:
        return web.json_response({"status": "ready", "credentials": count}, headers=NO_STORE)
    return web.json_response({"status": "not ready", "reason": reason}, status=503, headers=NO_STORE)


async def _mark_shutting_down(app: web.Application) -> None:
    app[SHUTTING_DOWN].append(True)


def add_health_routes(app: web.Application) -> None:
    app[SHUTTING_DOWN] = []
    app.on_shutdown.append(_mark_shutting_down)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
