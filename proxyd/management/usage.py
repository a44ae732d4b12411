"""``/v0/management/usage*`` handlers (management.md §3.8, §5)."""

from __future__ import annotations

import json

from aiohttp import web

from proxyd.http.body import read_limited
from proxyd.usage.service import USAGE
from proxyd.usage.stats import UnsupportedVersion

MAX_IMPORT_BYTES = 256 * 1024 * 1024


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def get_usage(request: web.Request) -> web.StreamResponse:
    """``GET /usage``: ``{"usage": <snapshot>, "failed_requests": N}``."""
    stats = request.app[USAGE].stats
    return web.json_response({"usage": stats.snapshot(), "failed_requests": stats.totals.failure_count},
                             dumps=_dumps)


async def export_usage(request: web.Request) -> web.StreamResponse:
    """``GET /usage/export``: ``{"version": 1, "exported_at": …, "usage": …}``."""
    return web.json_response(request.app[USAGE].stats.export(), dumps=_dumps)


async def import_usage(request: web.Request) -> web.StreamResponse:
    """``POST /usage/import``: merge an export's details (de-duplicated); works with statistics disabled."""
    service = request.app[USAGE]
    raw = await read_limited(request, MAX_IMPORT_BYTES)
    if raw is None:
        return _error(413, "payload too large")
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return _error(400, "invalid json")
    try:
        result = service.stats.merge(document)
    except UnsupportedVersion:
        return _error(400, "unsupported version")
    except ValueError:
        return _error(400, "invalid json")
    if result.added:
        await service.flush()
    totals = service.stats.totals
    return web.json_response({"added": result.added, "skipped": result.skipped,
                              "total_requests": totals.total_requests, "failed_requests": totals.failure_count})
