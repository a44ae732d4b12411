"""The application factory: one aiohttp Application, its resources (cleanup_ctx) and its route tables."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import structlog
from aiohttp import web

from proxyd import __version__
from proxyd.config import ConfigChange, ConfigStore
from proxyd.credentials.authdir import AuthDir
from proxyd.http.cors import setup_cors
from proxyd.http.edge import setup_edge
from proxyd.keys import CLIENT_SESSION, CONFIG_STORE, PIPELINE, RUNTIME
from proxyd.log import set_debug
from proxyd.logs.service import logs_ctx
from proxyd.management import add_management_routes
from proxyd.oauth import setup_oauth
from proxyd.pipeline.runner import Pipeline
from proxyd.providers.base import close_proxy_sessions
from proxyd.routes.claude import add_claude_routes
from proxyd.routes.gemini import add_gemini_routes
from proxyd.routes.health import add_health_routes
from proxyd.routes.metrics import add_metrics_routes
from proxyd.routes.oauth_callbacks import add_oauth_callback_routes
from proxyd.routes.openai import add_openai_routes
from proxyd.routes.panel import add_panel_routes
from proxyd.routes.root import add_root_routes
from proxyd.routes.v1internal import add_v1internal_routes
from proxyd.runtime import RuntimeHolder
from proxyd.upstream import UpstreamPool, attach_pool
from proxyd.usage.service import usage_ctx

log = structlog.get_logger(__name__)


async def client_session_ctx(app: web.Application) -> AsyncIterator[None]:
    """One pooled upstream ClientSession for the whole process (proxied calls, OAuth), and the lean client's
    keep-alive pool attached to it, which serves the direct http(s) calls of providers.base.send."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300, enable_cleanup_closed=True)
    session = aiohttp.ClientSession(
        connector=connector,
        auto_decompress=True,
        headers={},
        skip_auto_headers=("User-Agent",),
    )
    pool = UpstreamPool(auto_decompress=session.auto_decompress)
    attach_pool(session, pool)
    app[CLIENT_SESSION] = session
    yield
    await pool.close()
    await session.close()
    await close_proxy_sessions(session)  # the SOCKS5 sessions opened next to it


async def config_watch_ctx(app: web.Application) -> AsyncIterator[None]:
    """Watch the config file while the app runs."""
    store = app[CONFIG_STORE]
    task = asyncio.create_task(store.watch(), name="proxyd-config-watch")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def auth_dir_watch_ctx(app: web.Application) -> AsyncIterator[None]:
    """Watch the auth directory while the app runs (files added, changed, removed)."""
    auth_dir = app[RUNTIME].auth_dir
    task = asyncio.create_task(auth_dir.watch(), name="proxyd-auth-dir-watch") if auth_dir else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _on_config_change(change: ConfigChange) -> None:
    if "debug" in change.changed:
        set_debug(change.new.debug)


def create_app(config: Path | ConfigStore, *, watch: bool = True) -> web.Application:
    """Build the daemon's Application from a config path (or an already open ConfigStore)."""
    store = config if isinstance(config, ConfigStore) else ConfigStore.open(Path(config))
    app = web.Application(client_max_size=1024**4)
    app[CONFIG_STORE] = store
    auth_dir = AuthDir(store.current.resolved_auth_dir(store.config_dir), store.current)
    auth_dir.load()
    holder = RuntimeHolder(store.current, auth_dir)
    auth_dir.subscribe(holder.on_auth_change)
    app[RUNTIME] = holder
    app[PIPELINE] = Pipeline()
    store.subscribe(holder.on_config_change)
    store.subscribe(_on_config_change)

    setup_edge(app)  # request id, access line, metrics, error envelopes, CORS preflight: one middleware

    add_root_routes(app)
    add_health_routes(app)
    add_metrics_routes(app)
    add_openai_routes(app)
    add_claude_routes(app)
    add_gemini_routes(app)
    add_v1internal_routes(app)
    setup_oauth(app)  # OAuth logins: app[OAUTH], cancelled at shutdown
    add_oauth_callback_routes(app)
    add_panel_routes(app)
    add_management_routes(app)
    setup_cors(app)

    app.cleanup_ctx.append(client_session_ctx)
    app.cleanup_ctx.extend((logs_ctx, usage_ctx))  # log ring/files/request dumps; usage statistics
    if watch:
        app.cleanup_ctx.append(config_watch_ctx)
        app.cleanup_ctx.append(auth_dir_watch_ctx)
    log.info("app created", version=__version__, config=str(store.path))
    return app
