"""OAuth redirect landing routes (management.md §3.4, §3.12 item 3): no management auth.

`/{anthropic,codex,google,iflow,antigravity}/callback` hand `code`/`state`/`error` (or `error_description`) to a
pending login of that provider by writing its hand-off file, and always answer the reference's success page.
`/callback` (the recorded reference build's provider-neutral sink, newer than v6.9.0) finds the provider from
the state and answers `400` JSON when there is nothing to hand off.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from proxyd.oauth.handoff import valid_state
from proxyd.oauth.service import OAUTH

log = structlog.get_logger(__name__)

# URL segment -> canonical provider of the session
PROVIDERS = {"anthropic": "anthropic", "codex": "codex", "google": "gemini", "iflow": "iflow",
             "antigravity": "antigravity"}

SUCCESS_PAGE = (
    '<html><head><meta charset="utf-8"><title>Authentication successful</title>'
    "<script>setTimeout(function(){window.close();},5000);</script></head>"
    "<body><h1>Authentication successful!</h1><p>You can close this window.</p>"
    "<p>This window will close automatically in 5 seconds.</p></body></html>"
)


def _params(request: web.Request) -> tuple[str, str, str]:
    query = request.query
    error = query.get("error", "").strip() or query.get("error_description", "").strip()
    return query.get("code", "").strip(), query.get("state", "").strip(), error


def _page() -> web.Response:
    return web.Response(text=SUCCESS_PAGE, content_type="text/html", charset="utf-8")


async def callback(request: web.Request) -> web.StreamResponse:
    """`/<provider>/callback`: hand off to a pending session of that provider (silently skipped otherwise)."""
    provider = PROVIDERS[request.match_info["provider"]]
    code, state, error = _params(request)
    if state and valid_state(state):
        try:
            await request.app[OAUTH].deliver(provider, state, code, error)
        except OSError as exc:
            log.error("oauth callback not written", provider=provider, error=exc.strerror or type(exc).__name__)
    return _page()


async def generic_callback(request: web.Request) -> web.StreamResponse:
    """`/callback`: the session named by `state` decides the provider; 400 when none is pending."""
    code, state, error = _params(request)
    headers = {"Cache-Control": "no-store"}
    if not code and not error:
        return web.json_response({"error": "code or error is required"}, status=400, headers=headers)
    service = request.app[OAUTH]
    session = service.sessions.get(state) if state and valid_state(state) else None
    delivered = False
    if session is not None and session.pending:
        try:
            delivered = await service.deliver(session.provider, state, code, error)
        except OSError as exc:
            log.error("oauth callback not written", provider=session.provider, error=exc.strerror or type(exc).__name__)
    if not delivered:
        return web.json_response({"error": "invalid or expired OAuth callback"}, status=400, headers=headers)
    return _page()


def add_oauth_callback_routes(app: web.Application) -> None:
    pattern = "|".join(PROVIDERS)
    app.router.add_get("/{provider:" + pattern + "}/callback", callback)
    app.router.add_get("/callback", generic_callback)
