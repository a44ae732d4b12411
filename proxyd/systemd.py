"""The systemd notify protocol spoken directly over ``$NOTIFY_SOCKET`` (sd_notify(3)), and the watchdog pinger.

Nothing here needs libsystemd: a notification is one datagram of ``KEY=VALUE`` lines sent to the AF_UNIX socket
named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket). Without the variable every call is a
no-op, so the daemon behaves the same outside systemd.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Mapping

import structlog

__all__ = ["Notifier", "monotonic_usec", "watchdog_interval"]

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
