"""The logs resource of one app: log directory, ring buffer, ``main.log``, request-log writer, cleaners.

Log directory (management.md §6.1, DECISIONS 13): proxyd's own ``log-dir`` key if set (relative to the config
file's directory); else ``$WRITABLE_PATH/logs``; else ``./logs`` when it exists and is writable; else
``<config dir>/logs``. A directory under ``auth-dir`` is never used: it is replaced by
``$XDG_STATE_HOME/proxyd/logs`` (``~/.local/state/proxyd/logs``) with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import structlog
from aiohttp import web

from proxyd.config import ConfigChange, ConfigStore
from proxyd.config.model import Config
from proxyd.keys import CONFIG_STORE
from proxyd.log import add_event_sink, remove_event_sink
from proxyd.logs.app_log import MAIN_LOG, MainLogFile, RingHandler, is_rotated_main_log
from proxyd.logs.request_log import (
    NULL_CAPTURE,
    RequestLogCapture,
    RequestLogSettings,
    RequestLogWriter,
    enforce_retention,
)
from proxyd.logs.ws_session import WebSocketSessionCapture

__all__ = ["LOGS", "LogsService", "begin_capture", "begin_websocket_session", "logs_ctx", "request_logs",
           "resolve_log_dir"]

log = structlog.get_logger(__name__)

CLEAN_EVERY = 60.0


def _inside(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
    except ValueError:
        return False
    return True


def resolve_log_dir(config: Config, config_dir: Path, *, environ: Mapping[str, str] | None = None,
                    cwd: Path | None = None) -> Path:
    """The absolute log directory for this config (never under ``auth-dir``)."""
    env = os.environ if environ is None else environ
    config_dir = Path(config_dir)
    explicit = config.yaml_value("log-dir")
    if isinstance(explicit, str) and explicit.strip():
        path = Path(explicit.strip()).expanduser()
        if not path.is_absolute():
            path = config_dir / path
    elif env.get("WRITABLE_PATH", "").strip():
        path = Path(env["WRITABLE_PATH"].strip()).expanduser() / "logs"
    else:
        here = (cwd or Path.cwd()) / "logs"
        path = here if here.is_dir() and os.access(here, os.W_OK) else config_dir / "logs"
    path = Path(os.path.abspath(path))
    auth_dir = config.resolved_auth_dir(config_dir)
    if _inside(path, auth_dir):
        state = Path(env.get("XDG_STATE_HOME", "").strip() or Path.home() / ".local" / "state")
        fallback = Path(os.path.abspath(state.expanduser() / "proxyd" / "logs"))
        log.warning("log directory is under auth-dir; using another one", wanted=str(path), using=str(fallback))
        path = fallback
    return path


def total_log_size_clean(directory: Path, max_mb: int) -> int:
    """``logs-max-total-size-mb``: delete the oldest ``*.log``/``*.log.gz`` (never ``main.log``) over the limit."""
    if max_mb <= 0:
        return 0
    files: list[tuple[float, int, Path]] = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for entry in entries:
        if not entry.is_file() or not (entry.name.endswith(".log") or entry.name.endswith(".log.gz")):
            continue
        with contextlib.suppress(FileNotFoundError):
            st = entry.stat()
            files.append((st.st_mtime, st.st_size, Path(entry.path)))
    limit = max_mb * 1024 * 1024
    total = sum(size for _, size, _ in files)
    removed = 0
    for _, size, path in sorted(files):
        if total <= limit:
            break
        if path.name == MAIN_LOG:
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
        total -= size
    return removed


class LogsService:
    """Owns the ring buffer, the optional ``main.log`` handler and the request-log writer of one app."""

    def __init__(self, store: ConfigStore, *, ring_lines: int | None = None) -> None:
        self.store = store
        config = store.current
        capacity = (config.yaml_value("log-ring-lines") or 5000) if ring_lines is None else ring_lines
        self.ring = RingHandler(capacity if isinstance(capacity, int) and not isinstance(capacity, bool)
                                and capacity > 0 else 5000)
        self.directory = resolve_log_dir(config, store.config_dir)
        self.file: MainLogFile | None = None
        self.requests = RequestLogWriter(self.directory, RequestLogSettings.from_config(config))
        # `commercial-mode` (read at startup, as the reference) leaves the request-log machinery out entirely:
        # no request logs, not even the forced error logs.
        self.capture_requests = not config.commercial_mode

    @property
    def config(self) -> Config:
        return self.store.current

    def install(self) -> None:
        root = logging.getLogger()
        root.addHandler(self.ring)
        add_event_sink(self.ring.emit_event)
        self.apply(self.config)

    def uninstall(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self.ring)
        remove_event_sink(self.ring.emit_event)
        self._set_file(False)

    def _set_file(self, on: bool) -> None:
        root = logging.getLogger()
        if on and self.file is None:
            self.file = MainLogFile(self.directory)
            try:
                self.file.open()
            except OSError as exc:  # the handler retries on the next line
                log.error("cannot open main.log", directory=str(self.directory),
                          error=exc.strerror or type(exc).__name__)
            root.addHandler(self.file)
            add_event_sink(self.file.emit_event)
        elif not on and self.file is not None:
            root.removeHandler(self.file)
            remove_event_sink(self.file.emit_event)
            self.file.close()
            self.file = None

    def apply(self, config: Config) -> None:
        """Follow the hot settings: ``logging-to-file``, request-log knobs, ``error-logs-max-files``."""
        self._set_file(config.logging_to_file)
        self.requests.settings = RequestLogSettings.from_config(config)

    async def on_config_change(self, change: ConfigChange) -> None:
        self.apply(change.new)
        if change.touches("logs-max-total-size-mb", "logging-to-file") or any(
                key.startswith("request-log") for key in change.changed):
            await self.clean()

    def begin_request(self, request_id: str) -> RequestLogCapture:
        """A capture for one proxied request (see :mod:`proxyd.logs.request_log`)."""
        return self.requests.begin(request_id)

    def clear(self) -> int:
        """``DELETE /logs``: empty ``main.log``, delete rotated main logs; returns how many were deleted."""
        removed = 0
        if self.file is not None:
            self.file.truncate()
        else:
            main = self.directory / MAIN_LOG
            if main.exists():
                main.write_bytes(b"")
        for entry in os.scandir(self.directory):
            if entry.is_file() and is_rotated_main_log(entry.name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
        self.ring.clear()
        return removed

    def _clean_blocking(self) -> None:
        config = self.config
        enforce_retention(self.directory, RequestLogSettings.from_config(config))
        total_log_size_clean(self.directory, config.logs_max_total_size_mb)

    async def clean(self) -> None:
        try:
            await asyncio.to_thread(self._clean_blocking)
        except OSError as exc:
            log.warning("log cleanup failed", directory=str(self.directory), error=exc.strerror or type(exc).__name__)

    async def run(self) -> None:
        while True:
            await self.clean()
            await asyncio.sleep(CLEAN_EVERY)


LOGS = web.AppKey("proxyd.logs", LogsService)


def request_logs(app: web.Application) -> LogsService | None:
    """The app's logs service (``None`` before startup or when the resource is not installed)."""
    return app.get(LOGS)


def begin_capture(request: web.Request, request_id: str) -> RequestLogCapture:
    """The pipeline's entry point: a capture holding the client's method, URL and headers (body follows).

    Returns the shared no-op capture when the app has no logs resource (tests building bare apps).
    """
    try:
        service = request.app[LOGS]
    except KeyError:
        return NULL_CAPTURE
    if not service.capture_requests:
        return NULL_CAPTURE
    capture = service.begin_request(request_id)
    capture.client_request(request.method, request.path_qs, request.headers)
    return capture


def begin_websocket_session(request: web.Request, request_id: str) -> WebSocketSessionCapture | None:
    """The capture of a Responses WebSocket session (one log for the whole socket), or ``None`` when no log will
    be written: ``request-log`` off when the socket opened, commercial mode, no logs resource."""
    service = request.app.get(LOGS)
    if service is None or not service.capture_requests or not service.requests.settings.enabled:
        return None
    capture = WebSocketSessionCapture(service.requests, service.requests.settings, request_id)
    capture.client_request(request.method, request.path_qs, request.headers)
    return capture


async def logs_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: install the ring/file handlers, follow config changes, clean periodically."""
    service = LogsService(app[CONFIG_STORE])
    app[LOGS] = service
    service.install()
    unsubscribe = service.store.subscribe(service.on_config_change)
    task = asyncio.create_task(service.run(), name="proxyd-logs-clean")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    unsubscribe()
    await service.requests.drain()
    service.uninstall()
