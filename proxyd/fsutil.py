"""Small filesystem helpers shared by every component that owns a file on disk."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "fsync_directory"]

_DEFAULT_NEW_FILE_MODE = 0o600


def fsync_directory(directory: Path) -> None:
    """Flush a directory entry to disk (best effort: some filesystems refuse it)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically.

    The data goes to a temporary file in the same directory which is flushed, fsynced and then
    renamed over the target, so readers see either the old or the new content, never a mix.
    ``mode`` defaults to the existing file's permission bits (0600 for a new file). The temporary
    file is removed if anything fails; the directory is fsynced after the rename.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if mode is None:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = _DEFAULT_NEW_FILE_MODE
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    fsync_directory(directory)


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    """Atomically replace ``path`` with ``text`` encoded as UTF-8 (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)
