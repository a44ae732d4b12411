"""Wake-ups for the pollers of the config file and the auth directory when their directory changes.

On Linux a `DirWatch` holds an inotify watch (through ctypes: no dependency) on one directory and wakes its
poller when any entry there is created, written, renamed, removed or has its attributes changed. The pollers
still decide what changed by comparing stats, exactly as without it; the watch only tells them when to look,
so they can poll rarely while idle (a safety poll for file systems that send no events, such as some network
mounts) instead of every 50 ms. A directory that does not exist yet (the default auth dir often does not)
is waited for by watching its nearest existing ancestor for the next path component to appear; the watch
moves down as the path is created. Where inotify is unavailable, `DirWatch.active` is false and the pollers
keep their usual interval (each poll retries the watch).
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
        self.directory = Path(directory).absolute()
        self._fd = -1
        self._watched = self.directory  # the directory itself, or the ancestor waited on while it is missing
        self._next = b""  # while waiting on an ancestor: the name of the next path component, else b""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()

    @property
    def active(self) -> bool:
        return self._fd >= 0

    def ensure(self) -> bool:
        """Start watching if not yet watching, or move the watch down to the directory (or a deeper ancestor)
        when it has appeared since; whether a watch is held."""
        if _LIBC is None:
            return False
        target = self._deepest_existing()
        if self._fd >= 0:
            if target == self._watched:
                return True
            self.close()
        fd = _LIBC.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            return False
        while _LIBC.inotify_add_watch(fd, os.fsencode(target), _MASK) < 0:
            if target == target.parent:
                os.close(fd)
                return False
            target = target.parent  # removed between the look and the watch
        self._loop = asyncio.get_running_loop()
        try:
            self._loop.add_reader(fd, self._on_readable)
        except (NotImplementedError, RuntimeError):  # a loop without add_reader
            os.close(fd)
            return False
        self._fd, self._watched = fd, target
        self._next = b"" if target == self.directory else \
            os.fsencode(self.directory.relative_to(target).parts[0])
        if self._next and os.path.exists(target / os.fsdecode(self._next)):
            self._changed.set()  # created between the look and the watch: let the poller look again
        return True

    def _deepest_existing(self) -> Path:
        """The directory if it exists, else its nearest existing ancestor."""
        path = self.directory
        while not path.is_dir() and path != path.parent:
            path = path.parent
        return path

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 64 * 1024)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        gone = not data
        relevant = not self._next
        offset = 0
        while offset + _EVENT.size <= len(data):
            _wd, mask, _cookie, size = _EVENT.unpack_from(data, offset)
            if not relevant:  # waiting on an ancestor: only the next path component matters
                start = offset + _EVENT.size
                relevant = data[start:start + size].rstrip(b"\0") == self._next
            offset += _EVENT.size + size
            gone = gone or bool(mask & _GONE)
        if gone:  # the watched directory was removed or renamed: the next ensure() watches what is left
            self.close()
        if gone or relevant:
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
