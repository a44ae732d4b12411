"""The directory wake-ups of the config and auth-dir pollers (proxyd/fswatch.py)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from proxyd import fswatch
from proxyd.fswatch import DirWatch

needs_inotify = pytest.mark.skipif(fswatch._LIBC is None, reason="no inotify on this platform")


@needs_inotify
async def test_a_write_a_rename_and_a_removal_each_wake_the_waiter(tmp_path: Path) -> None:
    watch = DirWatch(tmp_path)
    try:
        assert watch.ensure() and watch.active
        assert await watch.wait(0.01) is False  # nothing happened
        (tmp_path / "a.json").write_text("{}")
        assert await watch.wait(10) is True
        (tmp_path / "b.tmp").write_text("{}")
        await watch.wait(10)
        os.replace(tmp_path / "b.tmp", tmp_path / "a.json")  # an atomic save
        assert await watch.wait(10) is True
        (tmp_path / "a.json").unlink()
        assert await watch.wait(10) is True
    finally:
        watch.close()
    assert not watch.active


async def test_a_missing_directory_is_not_watched_until_it_exists(tmp_path: Path) -> None:
    directory = tmp_path / "later"
    watch = DirWatch(directory)
    try:
        watch.ensure()
        assert await watch.wait(0.01) is False  # a plain sleep
        directory.mkdir()
        assert watch.ensure() is (fswatch._LIBC is not None)
    finally:
        watch.close()


@needs_inotify
async def test_a_missing_directory_is_waited_for_on_its_ancestor(tmp_path: Path) -> None:
    """The default auth dir often does not exist: its creation (even a few levels deep) wakes the poller, other
    entries of the ancestor do not, and the watch then moves to the directory itself."""
    directory = tmp_path / "a" / "b" / "auths"
    watch = DirWatch(directory)
    try:
        assert watch.ensure() and watch.active  # on tmp_path, for "a"
        (tmp_path / "unrelated.txt").write_text("x")
        assert await watch.wait(0.05) is False
        (tmp_path / "a").mkdir()
        assert await watch.wait(10) is True
        assert watch.ensure()  # now on a, for "b"
        directory.mkdir(parents=True)
        assert await watch.wait(10) is True
        assert watch.ensure()  # now on the directory itself
        assert await watch.wait(0.01) is False
        (directory / "x.json").write_text("{}")
        assert await watch.wait(10) is True
    finally:
        watch.close()
    assert not watch.active


@needs_inotify
async def test_removing_the_directory_falls_back_to_polling(tmp_path: Path) -> None:
    directory = tmp_path / "auths"
    directory.mkdir()
    watch = DirWatch(directory)
    try:
        assert watch.ensure()
        directory.rmdir()
        assert await watch.wait(10) is True
        assert not watch.active  # the pollers use their short interval again
    finally:
        watch.close()


@needs_inotify
async def test_the_config_watcher_sees_an_edit_between_idle_polls(tmp_path: Path) -> None:
    """With an idle poll far longer than the wait, only the directory wake-up can make the reload happen."""
    from proxyd.config import ConfigStore

    path = tmp_path / "config.yaml"
    path.write_text('port: 8317\napi-keys: ["a"]\n')
    store = ConfigStore.open(path)
    reloaded = asyncio.Event()
    store.subscribe(lambda change: reloaded.set())
    task = asyncio.create_task(store.watch(poll_interval=0.05, debounce=0.05, idle_poll=600))
    try:
        await asyncio.sleep(0.1)
        path.write_text('port: 8317\napi-keys: ["b"]\n')
        async with asyncio.timeout(20):
            await reloaded.wait()
        assert list(store.current.api_keys) == ["b"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
