"""Structured logging: JSON lines off a TTY, journald lines under systemd, a readable console format on a TTY.

The ``journal`` format (chosen automatically when ``$JOURNAL_STREAM`` names stdout, or with ``--log-format
journal``) writes one JSON object per line behind a ``<N>`` syslog-priority prefix: journald strips the prefix
and stores it as the entry's ``PRIORITY`` (``journalctl -p err``, ``journalctl PRIORITY=3``), and the JSON
object also carries ``PRIORITY`` plus the request fields first (``request_id``, ``model``, ``provider``,
``credential``, ``status``, ``latency_ms``), so ``journalctl -o cat`` lines read well with ``jq``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, Literal

import orjson
import structlog

from proxyd.systemd import JournalWriter, journal_socket_available

LogFormat = Literal["auto", "json", "console", "journal"]

# syslog(3) priorities journald understands; unknown levels are "info".
PRIORITIES = {"critical": 2, "fatal": 2, "exception": 3, "error": 3, "warning": 4, "warn": 4, "notice": 5,
              "info": 6, "debug": 7}
# Fields a journal reader filters on, written first in this order.
JOURNAL_FIELDS = ("request_id", "model", "provider", "credential", "status", "latency_ms")

_SECRET_KEYS = frozenset(
    {"api_key", "api-key", "authorization", "x-api-key", "x-goog-api-key", "token", "secret", "secret_key", "key"}
)


def redact(secret: str | None) -> str:
    """Return a loggable stand-in for a secret: its length and last four characters at most."""
    if not secret:
        return ""
    if len(secret) <= 8:
        return "***"
    return f"***{secret[-4:]}"


def _scrub_secrets(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if key.lower() in _SECRET_KEYS and isinstance(event[key], str):
            event[key] = redact(event[key])
    return event


def journal_stream_matches(stream: Any, environ: dict[str, str] | None = None) -> bool:
    """True when ``$JOURNAL_STREAM`` (``device:inode``) names the file behind ``stream``: journald reads it."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep:
        return False
    try:
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (AttributeError, OSError, ValueError):
        return False


def resolve_format(fmt: LogFormat, stream: Any) -> LogFormat:
    """``auto`` becomes ``journal`` under journald, ``console`` on a TTY, ``json`` otherwise."""
    if fmt != "auto":
        return fmt
    if journal_stream_matches(stream):
        return "journal"
    return "console" if stream.isatty() else "json"


def priority_of(level: str) -> int:
    """The syslog priority for a structlog level name."""
    return PRIORITIES.get(level.lower(), 6)


class JournalRenderer:
    """Render an event as ``<N>{json}``: syslog prefix for journald, ``PRIORITY`` and request fields first."""

    def __call__(self, _logger: Any, _name: str, event: dict[str, Any]) -> str:
        priority = priority_of(str(event.get("level", "info")))
        ordered: dict[str, Any] = {"PRIORITY": str(priority)}
        for key in ("timestamp", "level", "event", *JOURNAL_FIELDS):
            if key in event:
                ordered[key] = event.pop(key)
        ordered.update(event)
        return f"<{priority}>" + orjson.dumps(ordered, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


class ProxydLogger(structlog.BoundLoggerBase):
    """proxyd's bound logger: the level test is one comparison, and events never become stdlib LogRecords.

    Events run the shared processors, then :func:`_emit` hands them to the registered event sinks (the log
    ring, ``main.log``) and writes the rendered line to the stream: no ``logging.LogRecord``, no formatter
    objects, one ``write`` per line. Libraries' stdlib log records still reach the root logger's handlers.
    """

    def debug(self, event: str | None = None, **kw: Any) -> Any:
        if _STATE.level > logging.DEBUG:
            return None
        return self._proxy_to_logger("debug", event, **kw)

    def info(self, event: str | None = None, **kw: Any) -> Any:
        if _STATE.level > logging.INFO:
            return None
        return self._proxy_to_logger("info", event, **kw)

    def warning(self, event: str | None = None, **kw: Any) -> Any:
        return self._proxy_to_logger("warning", event, **kw)

    warn = warning

    def error(self, event: str | None = None, **kw: Any) -> Any:
        return self._proxy_to_logger("error", event, **kw)

    def exception(self, event: str | None = None, **kw: Any) -> Any:
        kw.setdefault("exc_info", True)
        return self._proxy_to_logger("error", event, **kw)

    def critical(self, event: str | None = None, **kw: Any) -> Any:
        return self._proxy_to_logger("critical", event, **kw)

    fatal = critical


EventSink = Callable[[float, str, dict[str, Any], str, int], None]


class _LogState:
    """What :func:`setup_logging` chose: level, output stream, renderer, and the event sinks."""

    def __init__(self) -> None:
        self.level = logging.INFO
        self.stream: Any = None
        self.renderer: Any = None
        self.sinks: list[EventSink] = []
        self.flush_pending = False


_STATE = _LogState()
_INTERNAL = ("structlog", __name__)


def add_event_sink(sink: EventSink) -> None:
    """Also hand every structlog event to ``sink(created, level, event, filename, lineno)`` (the log ring)."""
    if sink not in _STATE.sinks:
        _STATE.sinks.append(sink)


def remove_event_sink(sink: EventSink) -> None:
    with contextlib.suppress(ValueError):
        _STATE.sinks.remove(sink)


def _callsite() -> tuple[str, int]:
    # _emit ← _process_event ← _proxy_to_logger ← ProxydLogger.<level> ← the caller.
    frame: Any = sys._getframe(4)
    while frame is not None and frame.f_globals.get("__name__", "").startswith(_INTERNAL):
        frame = frame.f_back
    if frame is None:
        return "?", 0
    return os.path.basename(frame.f_code.co_filename), frame.f_lineno


_FLUSH_DELAY = 0.05  # info/debug lines reach the stream within 50 ms; warnings and errors at once


def _flush() -> None:
    _STATE.flush_pending = False
    with contextlib.suppress(OSError, ValueError, AttributeError):
        _STATE.stream.flush()


def _emit(_logger: Any, method_name: str, event: dict[str, Any]) -> Any:
    """The last processor: sinks first (they copy what they keep), then one rendered line on the stream."""
    if _STATE.sinks:
        created = time.time()
        filename, lineno = _callsite()
        for sink in _STATE.sinks:
            with contextlib.suppress(Exception):  # a broken sink must not break logging
                sink(created, method_name, event, filename, lineno)
    stream = _STATE.stream
    if stream is not None:
        line = _STATE.renderer(_logger, method_name, event)
        try:
            stream.write(line + "\n")
            if method_name in ("info", "debug"):
                _schedule_flush()
            else:
                _flush()
        except (OSError, ValueError):  # closed or broken stdout: nothing sensible to do
            pass
    raise structlog.DropEvent


_SECOND: list[Any] = [-1, ""]  # the last whole UTC second stamped, and its ISO text


def utc_timestamp(now_ns: int | None = None) -> str:
    """What structlog's `TimeStamper(fmt="iso", utc=True)` writes (`2026-12-02T01:17:03.123456Z`; no fraction
    on a whole second), at a fraction of its cost: the date part is formatted once per second."""
    ns = time.time_ns() if now_ns is None else now_ns
    second, micro = divmod(ns // 1000, 1_000_000)
    if second != _SECOND[0]:
        _SECOND[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _SECOND[0] = second
    return f"{_SECOND[1]}.{micro:06d}Z" if micro else f"{_SECOND[1]}Z"


_ACCESS = structlog.get_logger("proxyd.access")
_CONTEXT_PREFIX = "structlog_"


def line_enabled(level: int = logging.INFO) -> bool:
    """Whether a line at `level` would be written (cheaper than building its fields first)."""
    return _STATE.level <= level


def emit_line(method_name: str, name: str, event: dict[str, Any], filename: str, lineno: int) -> None:
    """Write one hot, fixed-shape line (the access line) without the structlog chain, with the same output.

    `event` holds the caller's fields (it is completed in place, `name` becoming its `event`); no field may be
    a secret (nothing is scrubbed) and nothing needs exception formatting. The bound context variables
    (`request_id`), `level` and `timestamp` are added as the chain's processors add them, then the event sinks
    and the stream get it as :func:`_emit` hands them over. The caller checks :func:`line_enabled` first.
    """
    processors = structlog.get_config()["processors"]
    if not processors or processors[-1] is not _emit:  # structlog reconfigured (tests' capture_logs)
        _ACCESS.info(name, **event)
        return
    event["event"] = name
    for var, value in contextvars.copy_context().items():
        key = var.name
        if key.startswith(_CONTEXT_PREFIX) and value is not Ellipsis:
            event.setdefault(key[len(_CONTEXT_PREFIX):], value)
    event["level"] = method_name
    event["timestamp"] = utc_timestamp()
    if _STATE.sinks:
        created = time.time()
        for sink in _STATE.sinks:
            with contextlib.suppress(Exception):  # a broken sink must not break logging
                sink(created, method_name, event, filename, lineno)
    stream = _STATE.stream
    if stream is not None:
        try:
            stream.write(_STATE.renderer(None, method_name, event) + "\n")
            _schedule_flush()
        except (OSError, ValueError):
            pass


def _schedule_flush() -> None:
    """Batch the flushes of routine lines: one write(2) per 50 ms under load instead of one per line."""
    if _STATE.flush_pending:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _flush()
        return
    _STATE.flush_pending = True
    loop.call_later(_FLUSH_DELAY, _flush)


def _json_default(value: Any) -> Any:
    return str(value)


def _json_renderer(_logger: Any, _name: str, event: dict[str, Any]) -> str:
    return orjson.dumps(event, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


def setup_logging(*, debug: bool = False, fmt: LogFormat = "auto", stream: Any = None) -> LogFormat:
    """Configure structlog and the stdlib root logger once, at process start; returns the format in use."""
    stream = stream or sys.stdout
    fmt = resolve_format(fmt, stream)
    if fmt == "journal" and journal_stream_matches(stream) and journal_socket_available():
        stream = JournalWriter(stream)  # journal fields of their own: REQUEST_ID=…, STATUS=…
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _scrub_secrets,
        structlog.processors.format_exc_info,
    ]
    renderer: Any
    if fmt == "json":
        renderer = _json_renderer
    elif fmt == "journal":
        renderer = JournalRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    _STATE.stream = stream
    _STATE.renderer = renderer
    atexit.register(_flush)
    structlog.configure(
        processors=[*shared, _emit],
        logger_factory=structlog.ReturnLoggerFactory(),
        wrapper_class=ProxydLogger,
        cache_logger_on_first_use=True,
    )
    # Libraries' stdlib records (aiohttp, asyncio) take the classic path through the root logger's handlers.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_debug(debug)
    # aiohttp's own access log duplicates ours.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return fmt


def set_debug(debug: bool) -> None:
    """Switch the log level at run time (the `debug` config key is hot)."""
    _STATE.level = logging.DEBUG if debug else logging.INFO
    logging.getLogger().setLevel(_STATE.level)
