"""`GET /management.html`: the control panel file, when one is shipped and the panel is enabled."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from proxyd.keys import RUNTIME

PANEL_FILE = Path(__file__).resolve().parent.parent / "data" / "panel" / "management.html"


async def panel(request: web.Request) -> web.StreamResponse:
    config = request.app[RUNTIME].current.config
    if config.remote_management.disable_control_panel or not PANEL_FILE.is_file():
        return web.Response(status=404)
    return web.FileResponse(PANEL_FILE, headers={"Content-Type": "text/html; charset=utf-8"})


def add_panel_routes(app: web.Application) -> None:
    app.router.add_get("/management.html", panel)
