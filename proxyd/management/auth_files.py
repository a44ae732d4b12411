"""``/v0/management/auth-files*``: list, models, download, upload, delete, status and fields (management.md §3.11).

The auth directory (:class:`proxyd.credentials.authdir.AuthDir`) owns the files; every write here goes through
it, so it is atomic and takes effect at once (the watcher would pick it up anyway). Errors are
``{"error": "..."}`` with the reference's messages.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import unquote

import structlog
from aiohttp import BodyPartReader, web

from proxyd.config.load import normalize_prefix, validate_proxy_url
from proxyd.credentials.activity import RecentRequests
from proxyd.credentials.authdir import MAX_FILE_BYTES, AuthDir, AuthEntry, AuthFile, auth_index, rfc3339, valid_name
from proxyd.credentials.manager import CredentialManager
from proxyd.http.body import read_limited
from proxyd.keys import RUNTIME

__all__ = [
    "delete_auth_file",
    "download_auth_file",
    "list_auth_files",
    "models_of_auth_file",
    "patch_auth_file_fields",
    "patch_auth_file_status",
    "upload_auth_file",
]

log = structlog.get_logger(__name__)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _auth_dir(request: web.Request) -> AuthDir | None:
    return request.app[RUNTIME].auth_dir


def _unavailable() -> web.Response:
    return _error(503, "core auth manager unavailable")


# --------------------------------------------------------------------------------------------- list


def _idle(now: float) -> dict[str, Any]:
    """The live fields of a credential nothing happened to yet."""
    return {"success": 0, "failed": 0, "cooldowns": [], "quota": {"signals": {}},
            "recent_requests": RecentRequests().snapshot(now)}


def _live(manager: CredentialManager, credential_id: str) -> dict[str, Any]:
    """Counts, recent request buckets, quota signals and cooldowns from the credential manager."""
    state = manager.get(credential_id)
    now = manager.clock()
    out = _idle(now)
    if state is None:
        return out
    quota: dict[str, Any] = {"signals": dict(state.quota.signals)}
    if state.quota.signals:
        quota["observed_at"] = rfc3339(state.quota.observed_at)
    out.update(quota=quota, recent_requests=state.recent.snapshot(now))
    cooldowns = [
        {"model": model, "until": rfc3339(ms.blocked_until), "reason": ms.reason,
         **({"last_status": ms.last_status} if ms.last_status else {}),
         **({"last_error": ms.last_error} if ms.last_error else {})}
        for model, ms in sorted(state.models.items()) if ms.blocked_until > now
    ]
    out.update(success=state.successes, failed=state.failures, cooldowns=cooldowns)
    if cooldowns:
        out["next_retry_after"] = rfc3339(min(ms.blocked_until for ms in state.models.values()
                                              if ms.blocked_until > now))
    return out


def _file_fields(auth_dir: AuthDir, file: AuthFile) -> dict[str, Any]:
    first = auth_dir.first_seen.get(file.name, file.loaded_at)
    fields: dict[str, Any] = {
        "source": "file", "path": str(file.path), "size": file.size, "created_at": rfc3339(first),
        "updated_at": rfc3339(file.loaded_at), "auth_index": auth_index(f"file:{file.name}"),
    }
    if file.mtime:
        fields["modtime"] = rfc3339(file.mtime)
    return fields


def entry_json(auth_dir: AuthDir, file: AuthFile, entry: AuthEntry, manager: CredentialManager) -> dict[str, Any]:
    """One `/auth-files` list entry (management.md §3.11); optional keys only when non-empty."""
    out: dict[str, Any] = {
        "id": entry.id, "name": entry.id if entry.runtime_only else file.name, "type": entry.type,
        "provider": entry.provider, "label": entry.label, "status": entry.status,
        "status_message": entry.status_message, "disabled": entry.disabled,
        "unavailable": entry.status == "error", "runtime_only": entry.runtime_only,
    }
    if entry.runtime_only:
        out.update(source="memory", auth_index=auth_index(f"id:{entry.id}"))
    else:
        out.update(_file_fields(auth_dir, file))
    if entry.email:
        out.update(email=entry.email, account_type="oauth", account=entry.account or entry.email)
    out["last_refresh"] = entry.last_refresh or out.get("created_at") or rfc3339(file.loaded_at)
    if entry.id_token:
        out["id_token"] = dict(entry.id_token)
    if entry.priority:
        out["priority"] = entry.priority
    if entry.note:
        out["note"] = entry.note
    out.update(_live(manager, entry.id))
    return out


def _broken_json(auth_dir: AuthDir, file: AuthFile) -> dict[str, Any]:
    """A file that could not be loaded: listed with the reason so the operator sees it (proxyd addition)."""
    return {
        "id": file.name, "name": file.name, "type": "unknown", "provider": "unknown", "label": file.name,
        "status": "error", "status_message": f"invalid auth file: {file.error}", "disabled": False,
        "unavailable": True, "runtime_only": False, **_file_fields(auth_dir, file), **_idle(time.time()),
    }


def _positive(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        return 0
    return value if value > 0 else 0


async def list_auth_files(request: web.Request) -> web.StreamResponse:
    """``GET /auth-files[?name=][&auth_index=][&page=&page_size=]`` ⇒ ``{"files": [...], "observed_at"}``."""
    auth_dir = _auth_dir(request)
    if auth_dir is None:
        return _unavailable()
    page, page_size = _positive(request.query.get("page")), _positive(request.query.get("page_size"))
    if page == 0:
        return _error(400, "page must be a positive integer")
    if page_size == 0:
        return _error(400, "page_size must be a positive integer")
    manager = request.app[RUNTIME].current.manager
    files: list[dict[str, Any]] = []
    for name in sorted(auth_dir.files):
        file = auth_dir.files[name]
        if file.error:
            files.append(_broken_json(auth_dir, file))
        for entry in file.entries:
            files.append(entry_json(auth_dir, file, entry, manager))
    wanted_name, wanted_index = request.query.get("name"), request.query.get("auth_index")
    if wanted_name:
        files = [f for f in files if wanted_name in (f["id"], f["name"])]
    if wanted_index:
        files = [f for f in files if f.get("auth_index") == wanted_index]
    files.sort(key=lambda f: str(f["name"]).lower())
    body: dict[str, Any] = {"files": files, "observed_at": rfc3339(time.time())}
    if page is not None or page_size is not None:
        page, page_size = page or 1, page_size or 50
        total = len(files)
        start = (page - 1) * page_size
        body.update(files=files[start:start + page_size], page=page, page_size=page_size, total=total,
                    has_more=start + page_size < total)
    return web.json_response(body)


async def models_of_auth_file(request: web.Request) -> web.StreamResponse:
    """``GET /auth-files/models?name=`` ⇒ the models registered for that credential."""
    auth_dir = _auth_dir(request)
    if auth_dir is None:
        return _unavailable()
    name = request.query.get("name", "").strip()
    if not name:
        return _error(400, "name is required")
    found = auth_dir.find(name)
    models: list[dict[str, Any]] = []
    if found is not None and found[1] is not None:
        credential = found[1].credential
        force = request.app[RUNTIME].current.config.force_model_prefix
        seen: set[str] = set()
        for mapping in credential.models:
            ids = [f"{credential.prefix}/{mapping.exposed}"] if credential.prefix else []
            if not credential.prefix or not force or mapping.exposed == credential.prefix:
                ids.append(mapping.exposed)
            info = mapping.info or {}
            for model_id in ids:
                if model_id in seen:
                    continue
                seen.add(model_id)
                item: dict[str, Any] = {"id": model_id}
                for key, value in (("display_name", info.get("display_name")),
                                   ("type", info.get("type") or credential.provider),
                                   ("owned_by", info.get("owned_by") or credential.owned_by)):
                    if value:
                        item[key] = value
                models.append(item)
    return web.json_response({"models": models})


# ----------------------------------------------------------------------------------- download / upload


def _check_name(name: str) -> web.Response | None:
    if not valid_name(name):
        return _error(400, "invalid name")
    if not name.lower().endswith(".json"):
        return _error(400, "name must end with .json")
    return None


async def download_auth_file(request: web.Request) -> web.StreamResponse:
    """``GET /auth-files/download?name=x.json`` ⇒ the raw file as an attachment."""
    auth_dir = _auth_dir(request)
    if auth_dir is None:
        return _unavailable()
    name = request.query.get("name", "")
    refusal = _check_name(name)
    if refusal is not None:
        return refusal
    def read() -> bytes:
        with open(auth_dir.path_of(name), "rb") as fh:
            return fh.read(MAX_FILE_BYTES + 1)

    try:
        data = await asyncio.to_thread(read)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return _error(404, "file not found")
    except OSError as exc:
        return _error(500, f"failed to read file: {exc.strerror or type(exc).__name__}")
    return web.Response(body=data, content_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


class _TooLarge(Exception):
    pass


async def _read_limited(reader: Any) -> bytes:
    buf = bytearray()
    while True:
        chunk = await reader.read_chunk(64 * 1024) if isinstance(reader, BodyPartReader) else \
            await reader.read(64 * 1024)
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > MAX_FILE_BYTES:
            raise _TooLarge


async def upload_auth_file(request: web.Request) -> web.StreamResponse:
    """``POST /auth-files``: multipart field ``file``, or a raw body with ``?name=x.json``; written 0600."""
    auth_dir = _auth_dir(request)
    if auth_dir is None:
        return _unavailable()
    try:
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            part = None
            while True:
                candidate = await reader.next()
                if candidate is None:
                    break
                if isinstance(candidate, BodyPartReader) and candidate.name == "file":
                    part = candidate
                    break
                await candidate.release()
            if part is None:
                return _error(400, "no file uploaded")
            name = unquote(part.filename or "").replace("\\", "/").rsplit("/", 1)[-1]  # the base name
            if not name.lower().endswith(".json") or not valid_name(name):
                return _error(400, "file must be .json")
            data = await _read_limited(part)
        else:
            name = request.query.get("name", "")
            refusal = _check_name(name)
            if refusal is not None:
                return refusal
            data = await _read_limited(request.content)
    except _TooLarge:
        return _error(413, f"auth file larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    except ValueError:
        return _error(400, "invalid request body")
    try:
        file = await auth_dir.write(name, data)
    except OSError as exc:
        log.error("auth file upload not written", file=name, error=exc.strerror or type(exc).__name__)
        return _error(500, f"failed to save file: {exc.strerror or type(exc).__name__}")
    if file is not None and file.error:
        return _error(500, f"invalid auth file: {file.error}")
    log.info("auth file uploaded through the management API", file=name, size=len(data))
    return web.json_response({"status": "ok"})


# ------------------------------------------------------------------------------------------- delete


async def delete_auth_file(request: web.Request) -> web.StreamResponse:
    """``DELETE /auth-files?name=x.json`` (file name or credential id) or ``?all=true``."""
    auth_dir = _auth_dir(request)
    if auth_dir is None:
        return _unavailable()
    if request.query.get("all", "").strip().lower() in ("true", "1", "*"):
        deleted = 0
        for name in sorted(auth_dir.files):
            if await auth_dir.delete(name):
                deleted += 1
        log.info("every auth file deleted through the management API", deleted=deleted)
        return web.json_response({"status": "ok", "deleted": deleted})
    name = request.query.get("name", "").strip()
    found = auth_dir.find(name) if name else None
    if found is not None:
        name = found[0].name
    refusal = _check_name(name)
    if refusal is not None:
        return refusal
    try:
        existed = await auth_dir.delete(name)
    except OSError as exc:
        return _error(500, f"failed to remove file: {exc.strerror or type(exc).__name__}")
    if not existed:
        return _error(404, "file not found")
    log.info("auth file removed via management API", file=name)
    return web.json_response({"status": "ok"})


# -------------------------------------------------------------------------------------------- patch


MAX_PATCH_BYTES = 64 * 1024  # a name and a flag


async def _json_body(request: web.Request) -> dict[str, Any] | None:
    """The JSON object body, None when it is not one; ``_TooLarge`` past ``MAX_PATCH_BYTES``."""
    raw = await read_limited(request, MAX_PATCH_BYTES)
    if raw is None:
        raise _TooLarge
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def patch_auth_file_status(request: web.Request) -> web.StreamResponse:
    """``PATCH /auth-files/status`` ``{"name", "disabled"}``: writes ``disabled`` into the file."""
    auth_dir = _auth_dir(request)
    if auth_dir is None:
        return _unavailable()
    try:
        body = await _json_body(request)
    except _TooLarge:
        return _error(413, "request body too large")
    if body is None:
        return _error(400, "invalid request body")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        return _error(400, "name is required")
    disabled = body.get("disabled")
    if not isinstance(disabled, bool):
        return _error(400, "disabled is required")
    found = auth_dir.find(name.strip())
    if found is None or found[0].data is None:
        return _error(404, "auth file not found")

    def mutate(data: dict[str, Any]) -> None:
        data["disabled"] = disabled

    try:
        await auth_dir.update_json(found[0].name, mutate)
    except (OSError, ValueError) as exc:
        return _error(500, f"failed to update auth: {exc}")
    log.info("auth file status changed via management API", file=found[0].name, disabled=disabled)
    return web.json_response({"status": "ok", "disabled": disabled})


async def patch_auth_file_fields(request: web.Request) -> web.StreamResponse:
    """``PATCH /auth-files/fields`` ``{"name", "prefix"?, "proxy_url"?, "priority"?, "note"?}``.

    All four are written into the file (the reference keeps prefix/proxy_url in memory only, so a reload loses
    them); ``priority: 0``, an empty ``note``/``prefix``/``proxy_url`` remove the key.
    """
    auth_dir = _auth_dir(request)
    if auth_dir is None:
        return _unavailable()
    try:
        body = await _json_body(request)
    except _TooLarge:
        return _error(413, "request body too large")
    if body is None:
        return _error(400, "invalid request body")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        return _error(400, "name is required")
    updates: dict[str, Any] = {}
    for key in ("prefix", "proxy_url", "note"):
        if key in body and body[key] is not None:
            if not isinstance(body[key], str):
                return _error(400, "invalid request body")
            updates[key] = body[key].strip()
    if "prefix" in updates:
        updates["prefix"] = normalize_prefix(updates["prefix"])
    if updates.get("proxy_url") and not validate_proxy_url(updates["proxy_url"]):
        return _error(400, "invalid proxy_url")
    if "priority" in body and body["priority"] is not None:
        priority = body["priority"]
        if isinstance(priority, float) and priority.is_integer():
            priority = int(priority)
        if isinstance(priority, bool) or not isinstance(priority, int):
            return _error(400, "invalid request body")
        updates["priority"] = priority
    if not updates:
        return _error(400, "no fields to update")
    found = auth_dir.find(name.strip())
    if found is None or found[0].data is None:
        return _error(404, "auth file not found")

    def mutate(data: dict[str, Any]) -> None:
        for key, value in updates.items():
            if value in ("", 0):
                data.pop(key, None)
            else:
                data[key] = value

    try:
        await auth_dir.update_json(found[0].name, mutate)
    except (OSError, ValueError) as exc:
        return _error(500, f"failed to update auth: {exc}")
    log.info("auth file fields changed via management API", file=found[0].name, fields=sorted(updates))
    return web.json_response({"status": "ok"})
