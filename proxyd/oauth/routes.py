"""``/v0/management`` OAuth login routes (management.md §3.12): auth-url starters, oauth-callback, get-auth-status,
oauth-session."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog
from aiohttp import web

from proxyd.http.body import read_limited
from proxyd.oauth import iflow
from proxyd.oauth.antigravity import AntigravityLogin
from proxyd.oauth.claude import ClaudeLogin
from proxyd.oauth.codex import CodexLogin
from proxyd.oauth.device import KimiLogin, QwenLogin
from proxyd.oauth.gemini_cli import GeminiLogin
from proxyd.oauth.handoff import normalize_provider, valid_state, write_handoff
from proxyd.oauth.service import OAUTH, OAuthService, SaveError

__all__ = ["route_defs"]

log = structlog.get_logger(__name__)

MAX_BODY = 64 * 1024


def _service(request: web.Request) -> OAuthService:
    return request.app[OAUTH]


def _webui(request: web.Request) -> bool:
    return request.query.get("is_webui", "").strip().lower() in ("1", "true", "yes", "on")


def _fail(status: int, error: str, **extra: Any) -> web.Response:
    return web.json_response({"status": "error", "error": error, **extra}, status=status)


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    """The body as a JSON object; None when it is missing, too large, not JSON or not an object."""
    try:
        raw = await read_limited(request, MAX_BODY)
        data = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


# ------------------------------------------------------------------------------------------ browser flows


async def anthropic_auth_url(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    return await service.start_browser(request, ClaudeLogin(service.endpoints), webui=_webui(request))


async def codex_auth_url(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    return await service.start_browser(request, CodexLogin(service.endpoints), webui=_webui(request))


async def gemini_cli_auth_url(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    login = GeminiLogin(service.endpoints, project_id=request.query.get("project_id", ""))
    return await service.start_browser(request, login, webui=_webui(request))


async def antigravity_auth_url(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    return await service.start_browser(request, AntigravityLogin(service.endpoints), webui=_webui(request))


async def iflow_auth_url(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    return await service.start_browser(request, iflow.IFlowLogin(service.endpoints), webui=_webui(request),
                                       error_body={"status": "error", "error": "failed to start callback server"})


async def iflow_cookie_login(request: web.Request) -> web.StreamResponse:
    """``POST /iflow-auth-url`` ``{"cookie": "..."}``: synchronous login with a browser cookie."""
    service = _service(request)
    body = await _json_object(request)
    cookie = body.get("cookie") if body is not None else None
    if not isinstance(cookie, str) or not cookie.strip():
        return _fail(400, "cookie is required")
    try:
        cookie = iflow.normalize_cookie(cookie)
    except iflow.CookieError as exc:
        return _fail(400, str(exc))
    try:
        existing = await asyncio.to_thread(iflow.duplicate_bxauth, service.auth_dir_path, iflow.extract_bxauth(cookie))
    except OSError:
        return _fail(500, "failed to check duplicate")
    if existing:
        return _fail(409, "duplicate BXAuth found", existing_file=existing)
    try:
        token_file = await iflow.cookie_login(service.context(), cookie)
    except iflow.CookieError as exc:
        return _fail(400, str(exc))
    try:
        path = await service.save(token_file)
    except SaveError as exc:
        log.error("iflow cookie login not saved", error=str(exc))
        return _fail(500, "failed to save authentication tokens")
    log.info("iflow cookie login completed", file=path.name)
    return web.json_response({"status": "ok", "saved_path": str(path), "email": token_file.email,
                              "expired": token_file.data.get("expired", ""), "type": "iflow"})


# ------------------------------------------------------------------------------------------- device flows


async def qwen_auth_url(request: web.Request) -> web.StreamResponse:
    return await _service(request).start_device(QwenLogin())


async def kimi_auth_url(request: web.Request) -> web.StreamResponse:
    return await _service(request).start_device(KimiLogin())


# --------------------------------------------------------------------------------- callback and status


async def post_oauth_callback(request: web.Request) -> web.StreamResponse:
    """``POST /oauth-callback``: hand a pasted redirect URL (or code/state/error) to a pending login."""
    body = await _json_object(request)
    fields = ("provider", "redirect_url", "code", "state", "error")
    if body is None or any(k in body and body[k] is not None and not isinstance(body[k], str) for k in fields):
        return _fail(400, "invalid body")
    state = str(body.get("state") or "").strip()
    code = str(body.get("code") or "").strip()
    error = str(body.get("error") or "").strip()
    redirect = str(body.get("redirect_url") or "").strip()
    if redirect:
        try:
            query = parse_qs(urlsplit(redirect).query)
        except ValueError:
            return _fail(400, "invalid redirect_url")

        def first(name: str) -> str:
            return (query.get(name) or [""])[0].strip()

        state = state or first("state")
        code = code or first("code")
        error = error or first("error") or first("error_description")
    return await _hand_off(request, str(body.get("provider") or ""), state, code, error)


async def get_oauth_callback(request: web.Request) -> web.StreamResponse:
    """``GET /oauth-callback?provider=&state=&code=&error=``: the query form of the POST (recorded build)."""
    query = request.query
    error = query.get("error", "").strip() or query.get("error_description", "").strip()
    return await _hand_off(request, query.get("provider", ""), query.get("state", "").strip(),
                           query.get("code", "").strip(), error)


async def _hand_off(request: web.Request, provider_name: str, state: str, code: str, error: str) -> web.Response:
    """The checks of the recorded build's callback, in its order, then the hand-off file."""
    if not state:
        return _fail(400, "state is required")
    if not valid_state(state):
        return _fail(400, "invalid state")
    if not code and not error:
        return _fail(400, "code or error is required")
    service = _service(request)
    session = service.sessions.get(state)
    if session is None:
        return _fail(404, "unknown or expired state")
    if session.completed:
        return _fail(409, "oauth flow is already completed")
    provider = normalize_provider(provider_name.strip() or session.provider)
    if provider is None:
        return _fail(400, "unsupported provider")
    if session.status:
        return _fail(409, session.status)
    if session.provider != provider:
        return _fail(400, "provider does not match state")
    try:
        await asyncio.to_thread(write_handoff, service.auth_dir_path, provider, state, code, error)
    except OSError as exc:
        log.error("oauth callback not written", provider=provider, error=exc.strerror or type(exc).__name__)
        return _fail(500, "failed to persist oauth callback")
    log.info("oauth callback handed off", provider=provider, state=state, source="management")
    return web.json_response({"status": "ok"})


async def get_auth_status(request: web.Request) -> web.StreamResponse:
    """``GET /get-auth-status?state=``: wait / error / ok (ok also without a state; unknown states are errors)."""
    state = request.query.get("state", "").strip()
    if not state:
        return web.json_response({"status": "ok"})
    if not valid_state(state):
        return _fail(400, "invalid state")
    session = _service(request).sessions.get(state)
    if session is None:
        return _fail(200, "unknown or expired state")
    if session.completed:
        return web.json_response({"status": "ok"})
    if session.status:
        return _fail(200, session.status)
    return web.json_response({"status": "wait"})


async def cancel_oauth_session(request: web.Request) -> web.StreamResponse:
    """``DELETE /oauth-session?state=``: end a pending login; its waiter stops without saving anything."""
    state = request.query.get("state", "").strip()
    if not state:
        return _fail(400, "missing state")
    if not valid_state(state):
        return _fail(400, "invalid state")
    cancelled = _service(request).sessions.cancel(state)
    if cancelled:
        log.info("oauth login cancelled", state=state)
    return web.json_response({"status": "ok", "cancelled": cancelled})


def route_defs(prefix: str, guarded: Callable[[Any], Any], available: Callable[[Any], Any]) -> list[web.RouteDef]:
    """The OAuth routes of §3.4 behind the management guard; ``oauth-callback`` (GET and POST) only behind the
    availability guard, without a key, as the recorded build serves it (the state is the secret)."""
    get = [("anthropic-auth-url", anthropic_auth_url), ("codex-auth-url", codex_auth_url),
           ("gemini-cli-auth-url", gemini_cli_auth_url), ("antigravity-auth-url", antigravity_auth_url),
           ("qwen-auth-url", qwen_auth_url), ("kimi-auth-url", kimi_auth_url), ("iflow-auth-url", iflow_auth_url),
           ("get-auth-status", get_auth_status)]
    defs = [web.get(f"{prefix}/{path}", guarded(handler), allow_head=False) for path, handler in get]
    defs += [web.post(f"{prefix}/iflow-auth-url", guarded(iflow_cookie_login)),
             web.delete(f"{prefix}/oauth-session", guarded(cancel_oauth_session)),
             web.post(f"{prefix}/oauth-callback", available(post_oauth_callback)),
             web.get(f"{prefix}/oauth-callback", available(get_oauth_callback), allow_head=False)]
    return defs
