"""Run one CPU-heavy call in a forked child and bring its (pickled) result back to the event loop.

A worker thread of the same process competes with the event loop's thread for the GIL: while it parses a big
config, every request in flight waits for the GIL at each system call and takes ten times longer. A forked
child runs the same code (already imported, with the same data) on another core; the loop only unpickles the
answer. Anything that goes wrong (no ``fork`` here, the child crashed, timed out, or returned something that
does not pickle) raises :class:`ChildCallError`, and the caller does the work itself instead.

Objects both processes hold already (``shared``: the parent's, which the child inherited at the fork) travel by
name: only what the child made anew is pickled and unpickled.

:class:`WarmChild` is a child forked once, in advance, that answers one call after another: a fork costs the
loop a few milliseconds of CPU, and on a busy machine the parent often loses its core to the new child for tens
of milliseconds right then.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import os
import pickle
import signal
import socket
from collections.abc import Callable, Hashable, Mapping
from typing import Any, NoReturn, TypeVar

import structlog

__all__ = ["ChildCallError", "WarmChild", "call_in_child"]

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


_HEADER = 8  # bytes of the length that precedes each message between a warm child and its parent


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    """`n` bytes from a blocking socket; None at end of file."""
    chunks: list[bytes] = []
    while n:
        chunk = sock.recv(min(n, _READ_SIZE))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(_HEADER, "big") + payload


# What a warm child's handler returns: the value, and the child's objects that the parent holds under the same
# names (they are sent by name, see `call_in_child`'s `shared`).
Answer = tuple[Any, Mapping[Hashable, object] | None]


def _serve(sock: socket.socket, handler: Callable[..., Answer]) -> NoReturn:
    status = 1
    try:
        gc.disable()  # collected below, between calls: never while the parent waits
        _quiet_child_signals()
        keep = sock.fileno()
        os.closerange(3, keep)  # the parent's sockets: a connection it closes must not stay open in here
        os.closerange(keep + 1, max(keep + 1, os.sysconf("SC_OPEN_MAX")))
        sock.setblocking(True)
        while True:
            header = _recv_exact(sock, _HEADER)
            body = _recv_exact(sock, int.from_bytes(header, "big")) if header is not None else None
            if body is None:  # the parent closed its end (or exited): done
                status = 0
                break
            try:
                value, names = handler(*pickle.loads(body))
                payload = _dumps((True, value), names)
            except Exception as exc:  # reported to the parent, which then does the work another way
                payload = pickle.dumps((False, type(exc).__name__))
            sock.sendall(_frame(payload))
            del payload
            gc.collect()
    finally:
        os._exit(status)


class WarmChild:
    """A child process forked once that runs ``handler(*args)`` for each :meth:`call`, keeping its state (the
    handler is typically a callable object) from one call to the next.

    The handler sees the process as it was at the fork plus what earlier calls left; it must not touch the event
    loop or log. It returns ``(value, names)``: any part of ``value`` that *is* one of ``names``'s objects comes
    back as the parent's object of the same name in the call's ``shared``. One call at a time; a call that fails
    to get an answer (the child died, timed out, or the call was cancelled) closes the child.
    """

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self._sock: socket.socket | None = sock
        self._busy = False

    @classmethod
    def start(cls, handler: Callable[..., Answer]) -> WarmChild:
        """Fork the child; raises :class:`ChildCallError` when that is not possible."""
        if not hasattr(os, "fork"):
            raise ChildCallError("os.fork is not available")
        parent, child = socket.socketpair()
        try:
            pid = os.fork()
        except OSError as exc:
            parent.close()
            child.close()
            raise ChildCallError(f"fork failed: {exc.strerror or type(exc).__name__}") from exc
        if pid == 0:  # pragma: no cover - the child never returns
            parent.close()
            _serve(child, handler)
        child.close()
        parent.setblocking(False)
        return cls(pid, parent)

    @property
    def alive(self) -> bool:
        """False once closed (or once a call found it gone)."""
        return self._sock is not None

    async def call(self, *args: Any, shared: Mapping[Hashable, object] | None = None, wait_s: float = 20.0) -> Any:
        """The handler's value for ``args`` (which must pickle); raises :class:`ChildCallError` when there is
        none (the handler raised, the child is gone or gave no answer within ``wait_s``)."""
        sock = self._sock
        if sock is None or self._busy:
            raise ChildCallError("the warm child is gone" if sock is None else "the warm child is busy")
        loop = asyncio.get_running_loop()
        request = _frame(pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL))
        self._busy = True
        try:
            async with asyncio.timeout(wait_s):
                await loop.sock_sendall(sock, request)
                header = await self._receive(loop, sock, _HEADER)
                body = await self._receive(loop, sock, int.from_bytes(header, "big"))
        except TimeoutError:
            self.close()
            raise ChildCallError(f"the warm child gave no answer within {wait_s:g} s") from None
        except OSError as exc:
            self.close()
            raise ChildCallError(f"the warm child is gone ({exc.strerror or type(exc).__name__})") from None
        except BaseException:  # cancelled mid-call: its answer would be read as the next call's
            self.close()
            raise
        finally:
            self._busy = False
        try:
            ok, value = _loads(body, shared)
        except Exception as exc:
            raise ChildCallError(f"no usable answer from the warm child ({type(exc).__name__})") from None
        if not ok:
            raise ChildCallError(f"the call raised {value} in the warm child")
        return value

    @staticmethod
    async def _receive(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
        chunks: list[bytes] = []
        while n:
            chunk = await loop.sock_recv(sock, min(n, _READ_SIZE))
            if not chunk:
                raise ConnectionResetError("end of file")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        """Stop the child (it is killed and reaped); calls fail from here on."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
            _kill(self.pid)
