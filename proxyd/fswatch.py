"""Wake-ups for the pollers of the config file and the auth directory when their directory changes.

On Linux a `DirWatch` holds an inotify watch (through ctypes: no dependency) on one directory and wakes its
poller when any entry there is created, written, renamed, removed or has its attributes changed. The pollers
still decide what changed by comparing stats, exactly as without it; the watch only tells them when to look,
so they can poll rarely while idle (a safety poll for file systems that send no events, such as some network
mounts) instead of every 50 ms. Where inotify is unavailable, or the directory does not exist yet,
`DirWatch.active` is false and the pollers keep their usual interval (each poll retries the watch).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import struct
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

_IN_MODIFY, _IN_ATTRIB, _IN_CLOSE_WRITE = 0x002, 0x004, 0x008
_IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x040, 0x080, 0x100, 0x200
_IN_DELETE_SELF, _IN_MOVE_SELF, _IN_Q_OVERFLOW, _IN_IGNORED = 0x400, 0x800, 0x4000, 0x8000
_MASK = (_IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
         | _IN_DELETE_SELF | _IN_MOVE_SELF)
_GONE = _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_IGNORED  # the watched directory itself went away
_IN_NONBLOCK, _IN_CLOEXEC = os.O_NONBLOCK, 0o2000000
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then len bytes of name)


def _libc() -> ctypes.CDLL | None:
    """The C library already loaded in this process (no `ctypes.util.find_library`: it runs ldconfig)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1  # noqa: B018 - missing on non-Linux libcs
        libc.inotify_add_watch  # noqa: B018
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


class DirWatch:
    """An inotify watch on one directory, read on the running event loop; `wait()` returns early on a change."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()

    @property
    def active(self) -> bool:
        return self._fd >= 0

    def ensure(self) -> bool:
        """Start watching if not yet watching (the directory may have appeared since); whether it watches."""
        if self._fd >= 0 or _LIBC is None:
            return self._fd >= 0
        fd = _LIBC.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            return False
        if _LIBC.inotify_add_watch(fd, os.fsencode(self.directory), _MASK) < 0:
            os.close(fd)
            return False
        self._loop = asyncio.get_running_loop()
        try:
            self._loop.add_reader(fd, self._on_readable)
        except (NotImplementedError, RuntimeError):  # a loop without add_reader
            os.close(fd)
            return False
        self._fd = fd
        return True

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 64 * 1024)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        gone = not data
        offset = 0
        while offset + _EVENT.size <= len(data):
            _wd, mask, _cookie, size = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size + size
            gone = gone or bool(mask & _GONE)
        if gone:  # the directory was removed or renamed: back to plain polling until it exists again
            self.close()
        self._changed.set()

    async def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, less when the directory changes; whether a change was seen."""
        if not self._changed.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._changed.wait()
        changed = self._changed.is_set()
        self._changed.clear()
        return changed

    def close(self) -> None:
        if self._fd < 0:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._fd = -1
