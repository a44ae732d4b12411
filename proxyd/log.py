"""Structured logging: JSON lines off a TTY, journald lines under systemd, a readable console format on a TTY.

The ``journal`` format (chosen automatically when ``$JOURNAL_STREAM`` names stdout, or with ``--log-format
journal``) writes one JSON object per line behind a ``<N>`` syslog-priority prefix: journald strips the prefix
and stores it as the entry's ``PRIORITY`` (``journalctl -p err``, ``journalctl PRIORITY=3``), and the JSON
object also carries ``PRIORITY`` plus the request fields first (``request_id``, ``model``, ``provider``,
``credential``, ``status``, ``latency_ms``), so ``journalctl -o cat`` lines read well with ``jq``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, Literal

import structlog

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
        return f"<{priority}>" + json.dumps(ordered, default=str, ensure_ascii=False)


def setup_logging(*, debug: bool = False, fmt: LogFormat = "auto", stream: Any = None) -> LogFormat:
    """Configure structlog and the stdlib root logger once, at process start; returns the format in use."""
    stream = stream or sys.stdout
    fmt = resolve_format(fmt, stream)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _scrub_secrets,
    ]
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    elif fmt == "journal":
        renderer = JournalRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
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
    logging.getLogger().setLevel(logging.DEBUG if debug else logging.INFO)
