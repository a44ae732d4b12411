"""Structured logging: JSON lines off a TTY (journald friendly), a readable console format on one."""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import structlog

LogFormat = Literal["auto", "json", "console"]

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


def setup_logging(*, debug: bool = False, fmt: LogFormat = "auto", stream: Any = None) -> None:
    """Configure structlog and the stdlib root logger once, at process start."""
    stream = stream or sys.stdout
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _scrub_secrets,
    ]
    renderer: Any
    if use_json:
        renderer = structlog.processors.JSONRenderer()
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


def set_debug(debug: bool) -> None:
    """Switch the log level at run time (the `debug` config key is hot)."""
    logging.getLogger().setLevel(logging.DEBUG if debug else logging.INFO)
