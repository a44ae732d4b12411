"""``/v0/management/*`` route table (first slice: the config document endpoints of §3.6).

Every handler is wrapped by :func:`guarded`: the availability guard and the key check of
:mod:`proxyd.management.access` run only for routed paths (unknown paths and wrong methods fall through to
the app's plain 404, as the reference's router does), after the CORS preflight.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from proxyd.config.load import parse_config_text
from proxyd.config.yaml_errors import go_yaml_syntax_message
from proxyd.http.body import read_limited
from proxyd.keys import CONFIG_STORE
from proxyd.management import api_call, auth_files, credentials, lists, settings
from proxyd.management import logs as logs_api
from proxyd.management import usage as usage_api
from proxyd.management.access import ManagementAccess, build_headers
from proxyd.management.config_view import config_json
from proxyd.management.secret import env_password
from proxyd.oauth import routes as oauth_routes

__all__ = ["MANAGEMENT_ACCESS", "PREFIX", "add_management_routes", "available", "guarded"]

log = structlog.get_logger(__name__)

PREFIX = "/v0/management"
MANAGEMENT_ACCESS = web.AppKey("proxyd.management_access", ManagementAccess)
MAX_CONFIG_BYTES = 16 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, error: str, message: str | None = None) -> web.Response:
    body = {"error": error} if message is None else {"error": error, "message": message}
    return web.json_response(body, status=status)


def _wrap(handler: Handler, *, key_check: bool) -> Handler:
    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        access = request.app[MANAGEMENT_ACCESS]
        config = request.app[CONFIG_STORE].current
        if not access.enabled(config):
            raise web.HTTPNotFound()
        headers = build_headers()
        refusal = await access.check(request, config) if key_check else None
        if refusal is not None:
            refusal.headers.update(headers)
            return refusal
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers.update(headers)
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            log.exception("management handler failed", path=request.path)
            response = _error(500, "internal server error")
        if not response.prepared:
            response.headers.update(headers)
        return response

    return wrapper


def guarded(handler: Handler) -> Handler:
    """Wrap a management handler with the availability guard, the key check and the ``X-CPA-*`` headers."""
    return _wrap(handler, key_check=True)


def available(handler: Handler) -> Handler:
    """Like :func:`guarded` without the key check (routes the recorded build serves to anyone while the
    management API exists: ``oauth-callback``)."""
    return _wrap(handler, key_check=False)


# --------------------------------------------------------------------------------------------- handlers


async def get_config(request: web.Request) -> web.StreamResponse:
    """``GET /config``: the config as JSON (§1.8)."""
    return web.json_response(config_json(request.app[CONFIG_STORE].current))


async def get_config_yaml(request: web.Request) -> web.StreamResponse:
    """``GET /config.yaml``: the file's bytes exactly as on disk."""
    path = request.app[CONFIG_STORE].path
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:
        return _error(404, "not_found", "config file not found")
    except OSError as exc:
        return _error(500, "read_failed", f"failed to read config: {exc.strerror or type(exc).__name__}")
    return web.Response(body=data, content_type="application/yaml", charset="utf-8",
                        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


async def put_config_yaml(request: web.Request) -> web.StreamResponse:
    """``PUT /config.yaml``: validate the body with the config loader, write it verbatim, reload."""
    store = request.app[CONFIG_STORE]
    try:
        data = await read_limited(request, MAX_CONFIG_BYTES)
    except Exception:
        return _error(400, "invalid_yaml", "cannot read request body")
    if data is None:
        return _error(413, "invalid_yaml", f"config larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return _error(400, "invalid_yaml", f"body is not valid UTF-8 (byte {exc.start})")
    if not text.strip():
        return _error(400, "invalid_yaml", "empty config")

    checked = await asyncio.to_thread(parse_config_text, text, str(store.path))
    if checked.document is None:  # not YAML, or not a mapping at the top
        message = await asyncio.to_thread(go_yaml_syntax_message, text)  # the reference's wording where it maps
        return _error(400, "invalid_yaml", message or "\n".join(str(p) for p in checked.errors))
    if not checked.ok:
        log.info("management config upload rejected", problems=[str(p) for p in checked.errors])
        return _error(422, "invalid_config", "\n".join(str(p) for p in checked.errors))

    try:
        result = await store.write_text(text, reason="management")
    except OSError as exc:
        log.error("management config upload not written", path=str(store.path),
                  error=exc.strerror or type(exc).__name__)
        return _error(500, "write_failed", "failed to write config")
    if not result.ok:
        return _error(422, "invalid_config", "\n".join(str(p) for p in result.errors))
    try:
        await store.reload("management")
    except Exception as exc:
        log.exception("reload after management config upload failed", path=str(store.path))
        return _error(500, "reload_failed", f"failed to reload config: {type(exc).__name__}")
    log.info("config replaced through the management API", path=str(store.path))
    return web.json_response({"ok": True, "changed": ["config"]})


# -------------------------------------------------------------------------------------------- the table


def add_management_routes(app: web.Application, *, env_secret: str | None = None) -> None:
    """Register the management routes; ``MANAGEMENT_PASSWORD`` is read now (startup) unless given."""
    secret = env_password() if env_secret is None else env_secret.strip()
    app[MANAGEMENT_ACCESS] = ManagementAccess(secret)
    if secret:
        log.info("management password from the environment enabled; remote management forced on")
    routes = [
        web.get(f"{PREFIX}/config", guarded(get_config), allow_head=False),
        web.post(f"{PREFIX}/api-call", guarded(api_call.api_call)),
        web.get(f"{PREFIX}/config.yaml", guarded(get_config_yaml), allow_head=False),
        web.put(f"{PREFIX}/config.yaml", guarded(put_config_yaml)),
        web.get(f"{PREFIX}/credentials", guarded(credentials.list_credentials), allow_head=False),
        web.post(f"{PREFIX}/credentials/reset", guarded(credentials.reset_cooldown)),
        web.post(f"{PREFIX}/reset-quota", guarded(credentials.reset_quota)),
        web.post("/v8/management/routing/cooldown/reset", guarded(credentials.reset_quota)),  # the newer tree
        # auth-files (§3.11)
        web.get(f"{PREFIX}/auth-files", guarded(auth_files.list_auth_files), allow_head=False),
        web.get(f"{PREFIX}/auth-files/models", guarded(auth_files.models_of_auth_file), allow_head=False),
        web.get(f"{PREFIX}/auth-files/download", guarded(auth_files.download_auth_file), allow_head=False),
        web.post(f"{PREFIX}/auth-files", guarded(auth_files.upload_auth_file)),
        web.delete(f"{PREFIX}/auth-files", guarded(auth_files.delete_auth_file)),
        web.patch(f"{PREFIX}/auth-files/status", guarded(auth_files.patch_auth_file_status)),
        web.patch(f"{PREFIX}/auth-files/fields", guarded(auth_files.patch_auth_file_fields)),
        # usage statistics (§3.8) and logs (§3.9)
        web.get(f"{PREFIX}/usage", guarded(usage_api.get_usage), allow_head=False),
        web.get(f"{PREFIX}/usage/export", guarded(usage_api.export_usage), allow_head=False),
        web.post(f"{PREFIX}/usage/import", guarded(usage_api.import_usage)),
        web.get(f"{PREFIX}/logs", guarded(logs_api.get_logs), allow_head=False),
        web.delete(f"{PREFIX}/logs", guarded(logs_api.delete_logs)),
        web.get(f"{PREFIX}/request-error-logs", guarded(logs_api.list_error_logs), allow_head=False),
        web.get(f"{PREFIX}/request-error-logs/{{name}}", guarded(logs_api.download_error_log), allow_head=False),
        web.get(f"{PREFIX}/request-log-by-id", guarded(logs_api.download_request_log), allow_head=False),
        web.get(f"{PREFIX}/request-log-by-id/{{id}}", guarded(logs_api.download_request_log), allow_head=False),
        # scalar settings (§3.5), latest-version (§3.6), model-definitions; list editors (§3.7)
        *settings.route_defs(PREFIX, guarded),
        *lists.route_defs(PREFIX, guarded),
        *oauth_routes.route_defs(PREFIX, guarded, available),  # OAuth logins (§3.12)
    ]
    app.add_routes(routes)
