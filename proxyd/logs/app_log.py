"""The daemon's own log lines for the management API: reference line format, a bounded ring, ``main.log``.

Every record the root logger sees (structlog events included, see :mod:`proxyd.log`) is also rendered as the
reference's line (management.md §6.2)::

    [2026-03-20 09:15:04] [1a2b3c4d] [info ] [app.py:96] app created version=0.1.0

into a bounded in-memory ring (always) and, with ``logging-to-file: true``, into ``<log dir>/main.log``, which
rotates at 10 MB to ``main-<UTC YYYY-MM-DDTHH-MM-SS.mmm>.log``. The panel's log viewer relies on the
``[YYYY-MM-DD HH:MM:SS]`` prefix.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "MAIN_LOG",
    "ROTATE_BYTES",
    "LineFormatter",
    "MainLogFile",
    "RingHandler",
    "line_timestamp",
    "main_log_files",
    "read_log_lines",
]

MAIN_LOG = "main.log"
ROTATE_BYTES = 10 * 1024 * 1024
DEFAULT_RING_LINES = 5000
_NO_REQUEST = "--------"
_LEVELS = {"warning": "warn", "critical": "fatal", "exception": "error", "notset": "debug"}
_SKIP_FIELDS = frozenset({"event", "level", "timestamp", "logger", "request_id", "exc_info", "stack_info",
                          "_record", "_from_structlog", "_logger", "_name", "exception", "stack"})
_ROTATED = re.compile(r"^main(?:\.log\.\d+|-\d{4}-\d{2}-\d{2}T[0-9.\-]+\.log(?:\.gz)?)$")
_BARE = re.compile(r"^[^\s\"=]+$")


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value) if not isinstance(value, int | float | bool) else str(value)
    return text if _BARE.match(text) else '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def event_line(created: float, level: str, event: dict[str, Any], filename: str, lineno: int) -> str:
    """The reference's line for a structlog event (see :class:`LineFormatter`)."""
    message = str(event.get("event", ""))
    fields = [(k, v) for k, v in event.items() if k not in _SKIP_FIELDS]
    line = _line(created, level, event.get("request_id"), filename, lineno, message, fields)
    exc_text = event.get("exception")
    return line + "\n" + str(exc_text).rstrip("\n") if exc_text else line


def _line(created: float, level: str, request_id: Any, filename: str, lineno: int, message: str,
          fields: list[tuple[str, Any]]) -> str:
    level = _LEVELS.get(level, level)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
    rid = str(request_id) if request_id else _NO_REQUEST
    line = f"[{stamp}] [{rid}] [{level:<5}] [{filename}:{lineno}] {message}"
    if fields:
        line += " " + " ".join(f"{key}={_value(value)}" for key, value in fields)
    return line


class LineFormatter(logging.Formatter):
    """``[YYYY-MM-DD HH:MM:SS] [<request id>] [<level:5>] [<file>:<line>] <message>[ key=value…]`` (local time)."""

    def format(self, record: logging.LogRecord) -> str:
        event = record.msg if isinstance(record.msg, dict) else None
        if event is not None:  # a structlog event wrapped for stdlib (proxyd.log)
            return event_line(record.created, record.levelname.lower(), event, record.filename, record.lineno)
        line = _line(record.created, record.levelname.lower(), getattr(record, "request_id", None),
                     record.filename, record.lineno, record.getMessage(), [])
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info).rstrip("\n")
        return line


class _EventLine:
    """A ring entry rendered only when read (most lines are never read)."""

    __slots__ = ("args",)

    def __init__(self, *args: Any) -> None:
        self.args = args

    def __str__(self) -> str:
        return event_line(*self.args)


class RingHandler(logging.Handler):
    """Keeps the last ``capacity`` rendered lines in memory, each with its creation time."""

    def __init__(self, capacity: int = DEFAULT_RING_LINES) -> None:
        super().__init__(logging.DEBUG)
        self.lines: deque[tuple[float, str]] = deque(maxlen=max(1, capacity))
        self.scanned = 0
        self.setFormatter(LineFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return
        for part in text.split("\n"):
            self.lines.append((record.created, part))
            self.scanned += 1

    def emit_event(self, created: float, level: str, event: dict[str, Any], filename: str, lineno: int) -> None:
        """A structlog event (proxyd.log event sink): kept as is, rendered when the ring is read."""
        if event.get("exception"):
            for part in event_line(created, level, event, filename, lineno).split("\n"):
                self.lines.append((created, part))
                self.scanned += 1
            return
        self.lines.append((created, _EventLine(created, level, dict(event), filename, lineno)))
        self.scanned += 1

    def texts(self) -> list[str]:
        """Every kept line, rendered."""
        return [str(line) for _, line in list(self.lines)]

    def clear(self) -> None:
        self.lines.clear()


class MainLogFile(logging.Handler):
    """Appends lines to ``<dir>/main.log``; rotates at ``max_bytes`` to ``main-<UTC timestamp>.log``."""

    def __init__(self, directory: Path, max_bytes: int = ROTATE_BYTES) -> None:
        super().__init__(logging.DEBUG)
        self.directory = Path(directory)
        self.path = self.directory / MAIN_LOG
        self.max_bytes = max_bytes
        self._stream: Any = None
        self._size = 0
        self._io_lock = threading.Lock()
        self.setFormatter(LineFormatter())

    def open(self) -> None:
        """Create the directory and open ``main.log`` now (the reference opens it at start-up)."""
        with self._io_lock:
            if self._stream is None:
                self._open()

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._stream = os.fdopen(fd, "ab", buffering=0)
        self._size = os.fstat(fd).st_size

    def _rotate(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}"
        target = self.directory / f"main-{stamp}.log"
        suffix = 1
        while target.exists():
            target = self.directory / f"main-{stamp}-{suffix}.log"
            suffix += 1
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.path, target)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write(self.format(record))
        except Exception:
            self.handleError(record)

    def emit_event(self, created: float, level: str, event: dict[str, Any], filename: str, lineno: int) -> None:
        """A structlog event (proxyd.log event sink)."""
        self._write(event_line(created, level, event, filename, lineno))

    def _write(self, text: str) -> None:
        data = (text + "\n").encode("utf-8", "replace")
        with self._io_lock:
            if self._stream is None or not self.path.exists():
                if self._stream is not None:
                    self._stream.close()
                self._open()
            if self._size and self._size + len(data) > self.max_bytes:
                self._rotate()
                self._open()
            self._stream.write(data)
            self._size += len(data)

    def truncate(self) -> None:
        """Empty ``main.log`` in place (``DELETE /logs``)."""
        with self._io_lock:
            if self._stream is not None:
                self._stream.close()
                self._stream = None
            if self.path.exists():
                with open(self.path, "wb"):
                    pass
            self._size = 0

    def close(self) -> None:
        with self._io_lock:
            if self._stream is not None:
                self._stream.close()
                self._stream = None
        super().close()


def is_rotated_main_log(name: str) -> bool:
    """``main.log.<N>`` or ``main-<timestamp>.log[.gz]``."""
    return bool(_ROTATED.match(name))


def main_log_files(directory: Path) -> list[Path]:
    """Rotated main logs oldest first (by modification time), then ``main.log``."""
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    rotated: list[tuple[float, str, Path]] = []
    main: Path | None = None
    for entry in entries:
        if not entry.is_file():
            continue
        if entry.name == MAIN_LOG:
            main = Path(entry.path)
        elif is_rotated_main_log(entry.name):
            rotated.append((entry.stat().st_mtime, entry.name, Path(entry.path)))
    files = [path for _, _, path in sorted(rotated)]
    if main is not None:
        files.append(main)
    return files


def line_timestamp(line: str) -> int | None:
    """Unix seconds of a line's ``[YYYY-MM-DD HH:MM:SS]`` prefix (local time), ``None`` without one."""
    text = line[1:] if line.startswith("[") else line
    if len(text) < 19:
        return None
    try:
        return int(time.mktime(time.strptime(text[:19], "%Y-%m-%d %H:%M:%S")))
    except (ValueError, OverflowError):
        return None


def _file_lines(paths: Iterable[Path]) -> Iterator[str]:
    for path in paths:
        try:
            with open(path, "rb") as fh:
                for raw in fh:
                    yield raw.decode("utf-8", "replace").rstrip("\r\n")
        except FileNotFoundError:
            continue


def select_lines(lines: Iterable[str], after: int, limit: int | None) -> tuple[list[str], int, int]:
    """The ``GET /logs`` selection: ``(lines, line-count, latest-timestamp)`` (management.md §3.9)."""
    selected: deque[str] | list[str] = deque(maxlen=limit) if limit else []
    scanned = 0
    latest = after
    keep = after <= 0  # with `after`, leading lines without a timestamp are dropped
    for line in lines:
        scanned += 1
        ts = line_timestamp(line)
        if ts is not None:
            latest = max(latest, ts)
            keep = after <= 0 or ts > after
        if keep:
            selected.append(line)
    return list(selected), scanned, latest


def read_log_lines(directory: Path, after: int, limit: int | None) -> tuple[list[str], int, int]:
    """Select from the files in ``directory`` (blocking: run in a thread)."""
    return select_lines(_file_lines(main_log_files(directory)), after, limit)
