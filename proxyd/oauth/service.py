"""The OAuth login service of one app: sessions, background login tasks, redirect listeners, token-file saves.

Browser logins (Claude, Codex, Gemini CLI, Antigravity, iFlow) register a session, optionally start the
`is_webui` forwarder, and wait in a task for the hand-off file (handoff.py); device logins (Qwen, Kimi) poll their
token endpoint in a task. Every task ends by saving the token file through the AuthDir (atomic, mode 0600,
loaded at once) or by setting the session's error status. The app's shutdown cancels the tasks and listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Coroutine
from pathlib import Path
from typing import Any, Protocol

import structlog
from aiohttp import web

from proxyd.credentials.authdir import valid_name
from proxyd.fsutil import atomic_write_bytes
from proxyd.keys import CLIENT_SESSION, CONFIG_STORE, RUNTIME
from proxyd.oauth.endpoints import DEFAULT_ENDPOINTS, OAuthEndpoints
from proxyd.oauth.flow import BrowserLogin, FlowContext, FlowError, TokenFile
from proxyd.oauth.forwarder import CallbackForwarder
from proxyd.oauth.handoff import CallbackTimeout, wait_for_callback, write_handoff
from proxyd.oauth.http import OAuthClient
from proxyd.oauth.sessions import SessionStore

__all__ = ["OAUTH", "DeviceLogin", "OAuthService", "oauth_ctx", "setup_oauth"]

log = structlog.get_logger(__name__)


class DeviceLogin(Protocol):
    provider: str
    state: str
    url: str

    async def start(self, ctx: FlowContext) -> None: ...

    async def poll(self, ctx: FlowContext) -> TokenFile: ...


class SaveError(Exception):
    """The token file could not be written."""


class OAuthService:
    """Owner of the OAuth login state of one app (see the module docstring)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self.endpoints: OAuthEndpoints = DEFAULT_ENDPOINTS
        self.sessions = SessionStore()
        self._tasks: set[asyncio.Task[None]] = set()
        self._forwarders: dict[int, CallbackForwarder] = {}

    # ------------------------------------------------------------------ resources

    @property
    def auth_dir_path(self) -> Path:
        auth_dir = self._app[RUNTIME].auth_dir
        if auth_dir is not None:
            return auth_dir.directory
        store = self._app[CONFIG_STORE]
        return store.current.resolved_auth_dir(store.config_dir)

    def context(self, endpoints: OAuthEndpoints | None = None) -> FlowContext:
        endpoints = endpoints or self.endpoints
        config = self._app[CONFIG_STORE].current
        client = OAuthClient(self._app[CLIENT_SESSION], config.proxy_url, endpoints.http_timeout)
        return FlowContext(client=client, endpoints=endpoints)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def tasks(self) -> frozenset[asyncio.Task[None]]:
        return frozenset(self._tasks)

    async def close(self) -> None:
        """Cancel every running login and stop every listener (app shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for forwarder in list(self._forwarders.values()):
            await forwarder.stop()
        self._forwarders.clear()

    # ------------------------------------------------------------------ saving and hand-off

    async def save(self, token_file: TokenFile) -> Path:
        """Write the token file into auth-dir (atomic, 0600) and load it; raises SaveError."""
        if not valid_name(token_file.name):
            raise SaveError(f"invalid file name {token_file.name!r}")
        text = json.dumps(token_file.data, ensure_ascii=False, indent=2) + "\n"
        auth_dir = self._app[RUNTIME].auth_dir
        try:
            if auth_dir is not None:
                await auth_dir.write(token_file.name, text.encode("utf-8"))
                return auth_dir.path_of(token_file.name)
            path = self.auth_dir_path / token_file.name
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            await asyncio.to_thread(atomic_write_bytes, path, text.encode("utf-8"), 0o600)
            return path
        except OSError as exc:
            raise SaveError(exc.strerror or type(exc).__name__) from None

    async def deliver(self, provider: str, state: str, code: str, error: str) -> bool:
        """Write the hand-off file when `state` is a pending session of `provider`; False otherwise."""
        if not self.sessions.is_pending(state, provider):
            return False
        await asyncio.to_thread(write_handoff, self.auth_dir_path, provider, state, code, error)
        log.info("oauth callback handed off", provider=provider, state=state, has_code=bool(code),
                 has_error=bool(error))
        return True

    # ------------------------------------------------------------------ browser logins

    def _callback_target(self, request: web.Request, path: str) -> str:
        sock = request.transport.get_extra_info("sockname") if request.transport else None
        port = sock[1] if isinstance(sock, tuple) and len(sock) >= 2 else self._app[CONFIG_STORE].current.port
        scheme = "https" if request.secure else "http"
        return f"{scheme}://127.0.0.1:{port}/{path}/callback"

    async def _stop_forwarder(self, forwarder: CallbackForwarder) -> None:
        if self._forwarders.get(forwarder.port) is forwarder:
            del self._forwarders[forwarder.port]
        await forwarder.stop()

    async def start_browser(self, request: web.Request, login: BrowserLogin, *, webui: bool,
                            error_body: dict[str, str] | None = None) -> web.Response:
        """Register the session, start the forwarder when asked, spawn the waiting task; the auth-url answer."""
        self.sessions.register(login.state, login.provider)
        forwarder: CallbackForwarder | None = None
        if webui:
            port = login_port(login.endpoints, login.provider)
            previous = self._forwarders.pop(port, None)
            if previous is not None:
                await previous.stop()
            forwarder = CallbackForwarder(port, self._callback_target(request, login.callback_path), login.provider)
            try:
                await forwarder.start()
            except OSError as exc:
                self.sessions.discard(login.state)
                log.error("oauth callback forwarder failed to start", provider=login.provider, port=port,
                          error=exc.strerror or type(exc).__name__)
                return web.json_response(error_body or {"error": "failed to start callback server"}, status=500)
            self._forwarders[port] = forwarder
        task = self._run_browser(login, self.context(login.endpoints), forwarder)
        self._spawn(task, f"proxyd-oauth-{login.provider}")
        log.info("oauth login started", provider=login.provider, state=login.state, webui=webui)
        return web.json_response({"status": "ok", "url": login.url, "state": login.state})

    async def _run_browser(self, login: BrowserLogin, ctx: FlowContext, forwarder: CallbackForwarder | None) -> None:
        try:
            await self._settle(login.state, login.provider, self._browser_token(login, ctx),
                               save_failure=login.messages.save, complete_provider=True)
        finally:
            if forwarder is not None:
                await self._stop_forwarder(forwarder)

    async def _browser_token(self, login: BrowserLogin, ctx: FlowContext) -> TokenFile | None:
        """The token file after the provider's callback; None when the session ended without one."""
        state, messages = login.state, login.messages
        try:
            payload = await wait_for_callback(self.sessions, self.auth_dir_path, login.provider, state,
                                              timeout=ctx.endpoints.callback_timeout,
                                              interval=ctx.endpoints.callback_poll)
        except CallbackTimeout:
            raise FlowError(messages.timeout, "no callback in time") from None
        if payload is None:
            return None  # the session ended (another login of this provider finished, or it expired)
        if payload["error"]:
            raise FlowError(messages.callback_error, "the provider answered an error")
        got = payload["state"]
        if got != state and (messages.state_check == "strict" or got):
            raise FlowError(messages.state_mismatch, "callback state differs")
        if not payload["code"]:
            raise FlowError(messages.no_code, "callback without code")
        return await login.finish(ctx, payload["code"])

    async def _settle(self, state: str, provider: str, token_file: Awaitable[TokenFile | None], *,
                      save_failure: str, complete_provider: bool) -> None:
        """Await a login's token file, save it and complete its session; a failure becomes the session's status."""
        try:
            got = await token_file
            if got is None:
                return
            try:
                path = await self.save(got)
            except SaveError as exc:
                raise FlowError(save_failure, str(exc)) from None
            self.sessions.complete(state)
            if complete_provider:
                self.sessions.complete_provider(provider)
            log.info("oauth login completed", provider=provider, state=state, file=path.name)
        except FlowError as exc:
            self.sessions.set_error(state, exc.status)
            log.warning("oauth login failed", provider=provider, state=state, status=exc.status, detail=exc.detail)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.sessions.set_error(state, "Authentication failed")
            log.exception("oauth login crashed", provider=provider, state=state)

    # ------------------------------------------------------------------ device logins

    async def start_device(self, login: DeviceLogin) -> web.Response:
        ctx = self.context()
        try:
            await login.start(ctx)
        except Exception as exc:  # OAuthHTTPError and anything the answer parsing raised
            log.error("oauth device authorization failed", provider=login.provider, error=str(exc))
            return web.json_response({"error": "failed to generate authorization url"}, status=500)
        self.sessions.register(login.state, login.provider)
        self._spawn(self._run_device(login, ctx), f"proxyd-oauth-{login.provider}")
        log.info("oauth device login started", provider=login.provider, state=login.state)
        return web.json_response({"status": "ok", "url": login.url, "state": login.state})

    async def _run_device(self, login: DeviceLogin, ctx: FlowContext) -> None:
        await self._settle(login.state, login.provider, login.poll(ctx),
                           save_failure="Failed to save authentication tokens",
                           # the reference's Qwen flow leaves the other Qwen sessions alone
                           complete_provider=login.provider == "kimi")


def login_port(endpoints: OAuthEndpoints, provider: str) -> int:
    return int(endpoints.callback_ports[provider])


OAUTH = web.AppKey("proxyd.oauth", OAuthService)


async def oauth_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cancel running logins and stop redirect listeners when the app shuts down."""
    yield
    await app[OAUTH].close()


def setup_oauth(app: web.Application) -> OAuthService:
    """Install the service (``app[OAUTH]``) and its shutdown hook."""
    service = OAuthService(app)
    app[OAUTH] = service
    app.cleanup_ctx.append(oauth_ctx)
    return service
