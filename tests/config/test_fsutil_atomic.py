"""proxyd.fsutil: atomic replacement of files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from proxyd import fsutil
from proxyd.fsutil import atomic_write_bytes, atomic_write_text


def test_new_file_written_private_and_no_temp_left(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    atomic_write_bytes(path, b"{}")
    assert path.read_bytes() == b"{}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["state.json"]


def test_existing_mode_kept_and_content_replaced(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("old\n")
    os.chmod(path, 0o644)
    inode = path.stat().st_ino
    atomic_write_text(path, "new ✓\n")
    assert path.read_text(encoding="utf-8") == "new ✓\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert os.listdir(tmp_path) == ["config.yaml"]


def test_explicit_mode_wins(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_text("a")
    os.chmod(path, 0o644)
    atomic_write_text(path, "b", mode=0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_failure_keeps_old_file_and_removes_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("original\n")

    def boom(src: str, dst: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(fsutil.os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_text(path, "half-written")
    assert path.read_text() == "original\n"
    assert os.listdir(tmp_path) == ["config.yaml"]


def test_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write_text(tmp_path / "nope" / "f", "x")
