"""``GET /metrics``: Prometheus text exposition.

Access: when a management key is configured (``remote-management.secret-key`` or ``MANAGEMENT_PASSWORD``) the
request must pass the management key check, lockout and ``allow-remote`` rule included; without one only
loopback clients are answered (403 otherwise). Credential gauges are read from the live runtime; token counters
are fed by a pipeline observer registered here.
"""

from __future__ import annotations

from aiohttp import web

from proxyd.http.client_address import client_address, is_local
from proxyd.keys import CONFIG_STORE, PIPELINE, RUNTIME
from proxyd.management import MANAGEMENT_ACCESS
from proxyd.metrics import CONTENT_TYPE, METRICS, observe_request

__all__ = ["add_metrics_routes", "credential_state"]


def credential_state(_credential: object) -> str:
    """The state label of one credential (cooling and disabled states arrive with the credential-state work)."""
    return "available"


async def metrics_handler(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG_STORE].current
    access = request.app.get(MANAGEMENT_ACCESS)
    if access is not None and access.enabled(config):
        refusal = await access.check(request, config)
        if refusal is not None:
            return refusal
    elif not is_local(client_address(request)):
        return web.json_response(
            {"error": "metrics are served to loopback clients only while no management key is configured"},
            status=403,
        )
    holder = request.app[RUNTIME]
    states = ((cred.provider, credential_state(cred)) for cred in holder.current.credentials)
    body = METRICS.render(states)
    return web.Response(body=body.encode(), headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})


def add_metrics_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics_handler)
    pipeline = app.get(PIPELINE)
    observers = getattr(pipeline, "observers", None)
    if isinstance(observers, list) and observe_request not in observers:
        observers.append(observe_request)
