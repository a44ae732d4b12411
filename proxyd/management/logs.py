"""``/v0/management`` log endpoints (management.md §3.9): ``/logs``, ``/request-error-logs``, ``/request-log-by-id``."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from aiohttp import web

from proxyd.logs.app_log import read_log_lines, select_lines
from proxyd.logs.service import LOGS, LogsService

_ERROR_LOG = re.compile(r"^error-.+\.log$")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _service(request: web.Request) -> LogsService:
    return request.app[LOGS]


def _attachment(path: Path) -> web.StreamResponse:
    return web.FileResponse(path, headers={
        "Content-Disposition": f'attachment; filename="{path.name}"',
        "Content-Type": "text/plain; charset=utf-8",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    })


async def get_logs(request: web.Request) -> web.StreamResponse:
    """``GET /logs?after=&limit=``: lines of ``main.log`` and its rotations (``source=memory``: the ring)."""
    service = _service(request)
    memory = request.query.get("source", "").strip().lower() == "memory"
    if not memory and not service.config.logging_to_file:
        return _error(400, "logging to file disabled")
    after = 0
    raw_after = request.query.get("after", "").strip()
    if raw_after:
        try:
            after = int(raw_after)
        except ValueError:
            return _error(400, "invalid after: must be a unix timestamp in seconds")
        after = max(after, 0)
    limit: int | None = None
    raw_limit = request.query.get("limit", "").strip()
    if raw_limit:
        try:
            limit = int(raw_limit)
        except ValueError:
            return _error(400, "invalid limit: must be a positive integer")
        if limit <= 0:
            return _error(400, "invalid limit: must be greater than zero")
    if memory:
        lines, count, latest = select_lines(service.ring.texts(), after, limit)
    else:
        try:
            lines, count, latest = await asyncio.to_thread(read_log_lines, service.directory, after, limit)
        except OSError as exc:
            return _error(500, f"failed to read log files: {exc.strerror or type(exc).__name__}")
    return web.json_response({"lines": lines, "line-count": count, "latest-timestamp": latest})


async def delete_logs(request: web.Request) -> web.StreamResponse:
    """``DELETE /logs``: empty ``main.log``, delete the rotated main logs (request dumps stay)."""
    service = _service(request)
    if not service.config.logging_to_file:
        return _error(400, "logging to file disabled")
    if not service.directory.is_dir():
        return _error(404, "log directory not found")
    try:
        removed = await asyncio.to_thread(service.clear)
    except OSError as exc:
        return _error(500, f"failed to clear logs: {exc.strerror or type(exc).__name__}")
    return web.json_response({"success": True, "message": "Logs cleared successfully", "removed": removed})


def _list_error_logs(directory: Path) -> list[dict[str, object]]:
    files: list[dict[str, object]] = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return files
    for entry in entries:
        if not _ERROR_LOG.match(entry.name) or not entry.is_file():
            continue
        try:
            st = entry.stat()
        except FileNotFoundError:
            continue
        files.append({"name": entry.name, "size": st.st_size, "modified": int(st.st_mtime)})
    files.sort(key=lambda item: (item["modified"], item["name"]), reverse=True)
    return files


async def list_error_logs(request: web.Request) -> web.StreamResponse:
    """``GET /request-error-logs``: ``error-*.log`` newest first; empty while ``request-log`` is on."""
    service = _service(request)
    if service.config.request_log:
        return web.json_response({"files": []})
    try:
        files = await asyncio.to_thread(_list_error_logs, service.directory)
    except OSError as exc:
        return _error(500, f"failed to list log files: {exc.strerror or type(exc).__name__}")
    return web.json_response({"files": files})


async def download_error_log(request: web.Request) -> web.StreamResponse:
    """``GET /request-error-logs/{name}``: one ``error-*.log`` as an attachment."""
    name = request.match_info.get("name", "")
    if "/" in name or "\\" in name or name in ("", ".", ".."):
        return _error(400, "invalid log file name")
    if not _ERROR_LOG.match(name):
        return _error(404, "log file not found")
    path = _service(request).directory / name
    if not path.is_file():
        return _error(404, "log file not found")
    return _attachment(path)


def _find_by_id(directory: Path, request_id: str) -> Path | None:
    suffix = f"-{request_id}.log"
    matches = sorted(entry.name for entry in os.scandir(directory)
                     if entry.name.endswith(suffix) and entry.is_file())
    plain = [name for name in matches if not name.startswith("error-")]
    chosen = (plain or matches)[:1]
    return directory / chosen[0] if chosen else None


async def download_request_log(request: web.Request) -> web.StreamResponse:
    """``GET /request-log-by-id/{id}`` (or ``?id=``): the dump whose name ends with ``-<id>.log``."""
    request_id = (request.match_info.get("id") or request.query.get("id", "")).strip()
    if not request_id:
        return _error(400, "missing request ID")
    if "/" in request_id or "\\" in request_id:
        return _error(400, "invalid request ID")
    directory = _service(request).directory
    if not directory.is_dir():
        return _error(404, "log directory not found")
    try:
        path = await asyncio.to_thread(_find_by_id, directory, _ID_UNSAFE.sub("-", request_id))
    except OSError as exc:
        return _error(500, f"failed to search log files: {exc.strerror or type(exc).__name__}")
    if path is None:
        return _error(404, "log file not found for the given request ID")
    return _attachment(path)
