"""The systemd notify protocol spoken directly over ``$NOTIFY_SOCKET`` (sd_notify(3)), the watchdog pinger, and
journald's native protocol (sd_journal_send(3)) for log lines with real journal fields.

Nothing here needs libsystemd: a notification is one datagram of ``KEY=VALUE`` lines sent to the AF_UNIX socket
named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket). Without the variable every call is a
no-op, so the daemon behaves the same outside systemd. A journal entry is one datagram of fields sent to
``/run/systemd/journal/socket`` (values holding a newline use the length-prefixed binary form).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import stat
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from typing import IO, Any

import structlog

__all__ = [
    "JOURNAL_SOCKET",
    "JournalWriter",
    "Notifier",
    "journal_entry",
    "journal_field_name",
    "journal_socket_available",
    "monotonic_usec",
    "watchdog_interval",
]

log = structlog.get_logger(__name__)


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, as ``MONOTONIC_USEC=`` wants it next to ``RELOADING=1``."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``), or ``None`` when no watchdog is asked.

    ``$WATCHDOG_PID``, when set, must be this process: a watchdog meant for a parent is not ours to feed.
    """
    env = os.environ if environ is None else environ
    pid = env.get("WATCHDOG_PID", "").strip()
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", "").strip())
    except ValueError:
        return None
    return usec / 2 / 1_000_000 if usec > 0 else None


def _address(raw: str) -> str | bytes | None:
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()  # abstract namespace
    if raw.startswith("/"):
        return raw
    return None  # vsock: and other transports are not used for services


class Notifier:
    """Sends notifications to the service manager; silently does nothing when not run under systemd."""

    def __init__(self, socket_path: str | None = None) -> None:
        raw = os.environ.get("NOTIFY_SOCKET", "") if socket_path is None else socket_path
        self._address = _address(raw) if raw else None
        self._sock: socket.socket | None = None
        self._watchdog: asyncio.Task[None] | None = None
        if raw and self._address is None:
            log.warning("NOTIFY_SOCKET not understood; systemd notifications disabled", notify_socket=raw)

    @property
    def enabled(self) -> bool:
        """Whether a service manager is listening."""
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` assignments in one datagram; True when it was sent."""
        if self._address is None:
            return False
        message = "\n".join(a.replace("\n", " ") for a in assignments).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message, socket.MSG_DONTWAIT, self._address)
        except OSError as exc:
            log.warning("systemd notification failed", error=str(exc), message=message.decode(errors="replace"))
            return False
        return True

    def ready(self, status: str) -> bool:
        """Startup finished (or a reload did): ``READY=1``."""
        return self.notify("READY=1", f"STATUS={status}")

    def reloading(self, status: str = "reloading") -> bool:
        """A reload started: ``RELOADING=1`` stamped with the monotonic clock; follow with :meth:`ready`."""
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}", f"STATUS={status}")

    def stopping(self, status: str = "stopping") -> bool:
        """Shutdown started: ``STOPPING=1``."""
        return self.notify("STOPPING=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        """A free-form status line for ``systemctl status``."""
        return self.notify(f"STATUS={status}")

    def start_watchdog(self) -> float | None:
        """Ping ``WATCHDOG=1`` from the running event loop (a stuck loop stops the pings); returns the interval."""
        interval = watchdog_interval()
        if interval is None or not self.enabled or self._watchdog is not None:
            return None
        self._watchdog = asyncio.get_running_loop().create_task(self._ping(interval), name="proxyd-watchdog")
        return interval

    async def _ping(self, interval: float) -> None:
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def close(self) -> None:
        """Stop the watchdog and close the socket."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None


# ------------------------------------------------------------------------------------------ journald, native

JOURNAL_SOCKET = "/run/systemd/journal/socket"
# Fields journald or journalctl give a meaning of their own: a log key with one of these names is sent as
# PROXYD_<NAME> instead, so `message=` in a log call can never replace MESSAGE.
_RESERVED_FIELDS = frozenset({
    "MESSAGE", "MESSAGE_ID", "PRIORITY", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "ERRNO", "INVOCATION_ID",
    "USER_INVOCATION_ID", "SYSLOG_FACILITY", "SYSLOG_IDENTIFIER", "SYSLOG_PID", "SYSLOG_TIMESTAMP", "SYSLOG_RAW",
    "DOCUMENTATION", "TID", "UNIT", "USER_UNIT",
})
_RESERVED_PREFIXES = ("OBJECT_", "COREDUMP_")
_NOT_FIELD_CHARS = re.compile(r"[^A-Z0-9_]")
_PRIORITY_PREFIX = re.compile(r"<([0-7])>")


def journal_socket_available(path: str = JOURNAL_SOCKET) -> bool:
    """Whether journald's native socket exists (it does wherever journald runs)."""
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def journal_field_name(key: str) -> str:
    """A log key as a journal field name: upper case, ``[A-Z0-9_]``, at most 64 characters, not reserved."""
    name = _NOT_FIELD_CHARS.sub("_", key.upper()).lstrip("_")
    if not name or name[0].isdigit():
        name = "PROXYD_" + name
    if name in _RESERVED_FIELDS or name.startswith(_RESERVED_PREFIXES):
        name = "PROXYD_" + name
    return name[:64]


def _field_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, default=str, ensure_ascii=False)


def journal_entry(fields: Iterable[tuple[str, Any]]) -> bytes:
    """Serialize ``(NAME, value)`` pairs in journald's native format (``NAME=value``, binary form for newlines)."""
    out = bytearray()
    for name, value in fields:
        data = _field_value(value).encode("utf-8", "replace")
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalWriter:
    """A text stream that sends each journal-format line (``<N>{json}``) to journald natively, one field per key.

    Used in place of stdout when stdout is the journal: ``MESSAGE`` is the JSON object as before (``journalctl
    -o cat`` and ``jq`` read it unchanged), ``PRIORITY`` comes from the ``<N>`` prefix, and every top-level key
    becomes a field of its own (``request_id`` → ``REQUEST_ID``, ``status`` → ``STATUS``), so ``journalctl -u
    proxyd REQUEST_ID=…`` and ``-o json`` work. A line the socket refuses (journald gone, entry too large for a
    datagram) is written to ``fallback`` unchanged, where journald's stream reader still files it.
    """

    def __init__(self, fallback: IO[str], socket_path: str = JOURNAL_SOCKET, identifier: str = "proxyd") -> None:
        self._fallback = fallback
        self._path = socket_path
        self._identifier = identifier
        self._sock: socket.socket | None = None
        self._partial = ""
        self._lock = threading.Lock()

    def fields(self, line: str) -> list[tuple[str, Any]]:
        """The journal fields for one rendered line."""
        priority = "6"
        match = _PRIORITY_PREFIX.match(line)
        if match:
            priority, line = match.group(1), line[match.end():]
        fields: list[tuple[str, Any]] = [("MESSAGE", line), ("PRIORITY", priority),
                                         ("SYSLOG_IDENTIFIER", self._identifier)]
        try:
            event = json.loads(line)
        except ValueError:
            return fields
        if isinstance(event, dict):
            seen = {"MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER"}
            for key, value in event.items():
                name = journal_field_name(str(key))
                if key == "PRIORITY" or value is None or name in seen:
                    continue
                seen.add(name)
                fields.append((name, value))
        return fields

    def send_line(self, line: str) -> bool:
        """Send one line as a journal entry; False (nothing sent) when the socket refuses it."""
        data = journal_entry(self.fields(line))
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.settimeout(1.0)  # journald stalled: fall back rather than hold the event loop
            self._sock.sendto(data, self._path)
        except OSError:
            return False
        return True

    def write(self, text: str) -> int:
        """Send every complete line in ``text``; a trailing partial line waits for its newline."""
        with self._lock:
            *lines, self._partial = (self._partial + text).split("\n")
            for line in lines:
                if line and not self.send_line(line):
                    self._fallback.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self._fallback.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fallback.fileno()

    def close(self) -> None:
        """Close the socket (the fallback stream stays open: it is not ours)."""
        with self._lock:
            if self._partial:
                line, self._partial = self._partial, ""
                if not self.send_line(line):
                    self._fallback.write(line + "\n")
            if self._sock is not None:
                self._sock.close()
                self._sock = None
