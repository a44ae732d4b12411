"""The usage-statistics resource: pipeline observer, snapshot file next to the config, periodic flush.

Settings (proxyd's own keys, read from the live config; DECISIONS 12):

- ``usage-statistics-enabled`` (reference key, hot): record new requests or not. Stored counts are always
  served, and imports always merge.
- ``usage-statistics-file``: the snapshot file, relative to the config file's directory
  (default ``usage-statistics.json``; ``""`` keeps statistics in memory only).
- ``usage-statistics-max-details``: size of the per-request details ring (default 10000).
- ``usage-statistics-flush-seconds``: how often a changed store is written (default 5).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from proxyd.config import ConfigStore
from proxyd.config.model import Config
from proxyd.fsutil import atomic_write_bytes
from proxyd.keys import CONFIG_STORE, PIPELINE
from proxyd.pipeline.record import RequestRecord
from proxyd.usage.stats import DEFAULT_MAX_DETAILS, UsageStats, go_time

__all__ = ["USAGE", "UsageService", "usage_ctx"]

log = structlog.get_logger(__name__)

DEFAULT_FILE = "usage-statistics.json"
DEFAULT_FLUSH_SECONDS = 5.0
SNAPSHOT_KIND = "proxyd-usage-snapshot"


def _setting(config: Config, key: str, default: Any) -> Any:
    value = config.yaml_value(key)  # proxyd's own keys: `extra` today, typed fields if the model adds them
    return default if value is None else value


def snapshot_path(config: Config, config_dir: Path) -> Path | None:
    """Where the snapshot lives (``None``: memory only)."""
    raw = _setting(config, "usage-statistics-file", DEFAULT_FILE)
    if not isinstance(raw, str) or not raw.strip():
        return None
    path = Path(raw.strip()).expanduser()
    return path if path.is_absolute() else Path(config_dir) / path


def _positive(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return default
    return float(value)


class UsageService:
    """Owns the :class:`UsageStats` of one app: records, persists, restores."""

    def __init__(self, store: ConfigStore) -> None:
        self.store = store
        config = store.current
        max_details = _setting(config, "usage-statistics-max-details", DEFAULT_MAX_DETAILS)
        if isinstance(max_details, bool) or not isinstance(max_details, int) or max_details < 0:
            max_details = DEFAULT_MAX_DETAILS
        self.stats = UsageStats(max_details)
        self.path = snapshot_path(config, store.config_dir)
        self.flush_seconds = _positive(_setting(config, "usage-statistics-flush-seconds", DEFAULT_FLUSH_SECONDS),
                                       DEFAULT_FLUSH_SECONDS)
        self._written = 0
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ observer

    def observe(self, record: RequestRecord) -> None:
        """Pipeline observer: count the request when ``usage-statistics-enabled`` is on (hot)."""
        if self.store.current.usage_statistics_enabled:
            self.stats.record(record)

    # ------------------------------------------------------------------ persistence

    def load(self) -> None:
        """Restore the snapshot file; a damaged one is reported, set aside and never fatal."""
        if self.path is None:
            return
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("usage statistics snapshot unreadable; starting empty", path=str(self.path),
                      error=exc.strerror or type(exc).__name__)
            return
        try:
            self.stats.restore(json.loads(data))
        except (ValueError, TypeError, RecursionError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
            try:
                self.path.replace(aside)
            except OSError:
                aside = self.path
            log.error("usage statistics snapshot is damaged; ignored and starting empty",
                      path=str(self.path), kept_as=str(aside), error=str(exc)[:200])
            return
        self._written = self.stats.revision
        log.info("usage statistics restored", path=str(self.path), requests=self.stats.totals.total_requests,
                 details=self.stats.details_count)

    def _document(self) -> bytes:
        document = {"version": 1, "kind": SNAPSHOT_KIND, "exported_at": go_time(time.time(), utc=True),
                    "usage": self.stats.snapshot()}
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()

    async def flush(self) -> bool:
        """Write the snapshot atomically if anything changed since the last write; True if written."""
        if self.path is None:
            return False
        async with self._lock:
            revision = self.stats.revision
            if revision == self._written:
                return False
            data = self._document()  # built on the loop: the store is not thread-safe
            path = self.path
            try:
                await asyncio.to_thread(self._write, path, data)
            except OSError as exc:
                log.error("usage statistics not saved", path=str(path), error=exc.strerror or type(exc).__name__)
                return False
            self._written = revision
            return True

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)

    async def run(self) -> None:
        """Flush every ``flush_seconds`` while the app runs."""
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception:  # never let the flusher die
                log.exception("usage statistics flush failed")


USAGE = web.AppKey("proxyd.usage", UsageService)


async def usage_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: restore the snapshot, observe the pipeline, flush periodically and at shutdown."""
    service = UsageService(app[CONFIG_STORE])
    await asyncio.to_thread(service.load)
    app[USAGE] = service
    pipeline = app[PIPELINE]
    pipeline.observers.append(service.observe)
    task = asyncio.create_task(service.run(), name="proxyd-usage-flush")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with contextlib.suppress(ValueError):
        pipeline.observers.remove(service.observe)
    await service.flush()
