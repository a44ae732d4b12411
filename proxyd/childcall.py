"""Run one CPU-heavy call in a forked child and bring its (pickled) result back to the event loop.

A worker thread of the same process competes with the event loop's thread for the GIL: while it parses a big
config, every request in flight waits for the GIL at each system call and takes ten times longer. A forked
child runs the same code (already imported, with the same data) on another core; the loop only unpickles the
answer. Anything that goes wrong (no ``fork`` here, the child crashed, timed out, or returned something that
does not pickle) raises :class:`ChildCallError`, and the caller does the work itself instead.

Objects both processes hold already (``shared``: the parent's, which the child inherited at the fork) travel by
name: only what the child made anew is pickled and unpickled.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import os
import pickle
import signal
from collections.abc import Callable, Hashable, Mapping
from typing import Any, NoReturn, TypeVar

import structlog

__all__ = ["ChildCallError", "call_in_child"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

_READ_SIZE = 1 << 20
_REAP_POLL_S = 0.005
_REAP_WAIT_S = 5.0
_reapers: set[asyncio.Task[None]] = set()  # background waits for children that are still exiting


class ChildCallError(Exception):
    """The call could not be run in a child, or the child gave no usable result."""


def _quiet_child_signals() -> None:
    """The child shares the parent's signal wake-up fd: a signal meant for the group must not wake the
    parent's loop a second time, and a second SIGHUP must not stop the child."""
    with contextlib.suppress(ValueError, OSError):  # ValueError: not the main thread
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_DFL)


class _Pickler(pickle.Pickler):
    """Pickles an object of ``names`` (by ``id``) as its name."""

    def __init__(self, file: io.BytesIO, names: dict[int, Hashable]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._names = names

    def persistent_id(self, obj: Any) -> Hashable | None:
        return self._names.get(id(obj))


class _Unpickler(pickle.Unpickler):
    """Loads a name pickled by :class:`_Pickler` as the parent's object of that name."""

    def __init__(self, file: io.BytesIO, shared: Mapping[Hashable, object]) -> None:
        super().__init__(file)
        self._shared = shared

    def persistent_load(self, pid: Any) -> object:
        try:
            return self._shared[pid]
        except (KeyError, TypeError):
            raise pickle.UnpicklingError("unknown shared object") from None


def _dumps(value: Any, shared: Mapping[Hashable, object] | None) -> bytes:
    if not shared:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    buffer = io.BytesIO()
    _Pickler(buffer, {id(obj): name for name, obj in shared.items()}).dump(value)
    return buffer.getvalue()


def _loads(data: bytes, shared: Mapping[Hashable, object] | None) -> Any:
    if not shared:
        return pickle.loads(data)
    return _Unpickler(io.BytesIO(data), shared).load()


def _child(read_fd: int, write_fd: int, fn: Callable[..., Any], args: tuple[Any, ...],
           shared: Mapping[Hashable, object] | None) -> NoReturn:
    status = 1
    try:
        gc.disable()  # a collection would touch (and so copy) every page shared with the parent
        _quiet_child_signals()
        os.close(read_fd)
        # The parent's sockets: a connection it closes meanwhile must not stay open in here.
        os.closerange(3, write_fd)
        os.closerange(write_fd + 1, max(write_fd + 1, os.sysconf("SC_OPEN_MAX")))
        try:
            payload = _dumps((True, fn(*args)), shared)
        except BaseException as exc:  # reported to the parent, which then does the work itself
            payload = pickle.dumps((False, type(exc).__name__))
        view = memoryview(payload)
        while view:
            view = view[os.write(write_fd, view):]
        os.close(write_fd)
        status = 0
    finally:
        os._exit(status)  # no atexit handlers, no buffered output of the parent flushed twice


def _reaped(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored)
        return True
    return done != 0


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


async def _reap(pid: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _REAP_WAIT_S
    while not _reaped(pid):
        if loop.time() > deadline:
            _kill(pid)
            return
        await asyncio.sleep(_REAP_POLL_S)


def _reap_soon(pid: int) -> None:
    if _reaped(pid):
        return
    task = asyncio.get_running_loop().create_task(_reap(pid), name="proxyd-child-reap")
    _reapers.add(task)
    task.add_done_callback(_reapers.discard)


async def call_in_child(fn: Callable[..., T], *args: Any, wait_s: float = 20.0,
                        shared: Mapping[Hashable, object] | None = None) -> T:
    """``fn(*args)`` computed in a forked child; its return value must pickle.

    Any part of the value that *is* (by identity, in the child) one of ``shared``'s objects comes back as the
    parent's object of the same name instead of a copy.

    ``fn`` sees the process as it was at the fork (modules, configuration, caches) and must not touch the event
    loop, log, or hold locks other threads might have held. Raises :class:`ChildCallError` when the result
    cannot be had that way (the caller then calls ``fn`` itself).
    """
    if not hasattr(os, "fork"):
        raise ChildCallError("os.fork is not available")
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        raise ChildCallError(f"fork failed: {exc.strerror or type(exc).__name__}") from exc
    if pid == 0:  # pragma: no cover - the child never returns (coverage does not follow it either)
        _child(read_fd, write_fd, fn, args, shared)
    os.close(write_fd)
    os.set_blocking(read_fd, False)
    chunks: list[bytes] = []
    eof = loop.create_future()

    def readable() -> None:
        try:
            chunk = os.read(read_fd, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            chunk = b""
            chunks.clear()
            log.debug("reading from the child failed", error=exc.strerror or type(exc).__name__)
        if chunk:
            chunks.append(chunk)
        elif not eof.done():
            eof.set_result(None)

    loop.add_reader(read_fd, readable)
    finished = False
    try:
        async with asyncio.timeout(wait_s):
            await eof
        finished = True
    except TimeoutError:
        raise ChildCallError(f"the child gave no answer within {wait_s:g} s") from None
    finally:
        loop.remove_reader(read_fd)
        os.close(read_fd)
        if finished:
            _reap_soon(pid)
        else:  # timed out or cancelled
            _kill(pid)
    try:
        ok, value = _loads(b"".join(chunks), shared)
    except Exception as exc:  # truncated: the child died before it finished writing
        raise ChildCallError(f"no complete answer from the child ({type(exc).__name__})") from None
    if not ok:
        raise ChildCallError(f"the call raised {value} in the child")
    return value
