"""The short-lived `is_webui` redirect listener on 127.0.0.1:<provider port> (management.md §3.12 item 2).

Any request is answered `302` to the main server's `/<provider>/callback`, query string kept, so a browser
sent to the provider's fixed `http://localhost:<port>/...` redirect URI lands on proxyd.
"""

from __future__ import annotations

import structlog
from aiohttp import web

__all__ = ["CallbackForwarder"]

log = structlog.get_logger(__name__)


class CallbackForwarder:
    """One listener; `start` raises OSError when the port cannot be bound."""

    def __init__(self, port: int, target: str, provider: str) -> None:
        self.port = port
        self.target = target
        self.provider = provider
        self._runner: web.AppRunner | None = None

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        target = self.target
        if request.query_string:
            target += ("&" if "?" in target else "?") + request.query_string
        return web.Response(status=302, headers={"Location": target, "Cache-Control": "no-store"})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._redirect)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("oauth callback forwarder listening", provider=self.provider, address=f"127.0.0.1:{self.port}")

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("oauth callback forwarder stopped", provider=self.provider, port=self.port)

    @property
    def running(self) -> bool:
        return self._runner is not None
