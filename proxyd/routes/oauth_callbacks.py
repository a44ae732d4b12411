"""OAuth redirect sinks: always answer the success page, as the reference does.

Handing the code to a waiting login flow arrives with the OAuth login work; until then a callback is
acknowledged and logged (without the code).
"""

from __future__ import annotations

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

PROVIDERS = {"anthropic": "anthropic", "codex": "codex", "google": "gemini", "iflow": "iflow",
             "antigravity": "antigravity"}

SUCCESS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Authentication successful</title></head>
<body><h1>Authentication successful!</h1>
<p>You can close this window now.</p>
<script>setTimeout(function () { window.close(); }, 5000);</script>
</body></html>
"""


async def callback(request: web.Request) -> web.StreamResponse:
    provider = PROVIDERS[request.match_info["provider"]]
    log.info("oauth callback", provider=provider, has_code=bool(request.query.get("code")),
             error=request.query.get("error") or request.query.get("error_description") or "")
    return web.Response(text=SUCCESS_PAGE, content_type="text/html", charset="utf-8")


def add_oauth_callback_routes(app: web.Application) -> None:
    pattern = "|".join(PROVIDERS)
    app.router.add_get("/{provider:" + pattern + "}/callback", callback)
