"""The warm child (proxyd/childcall.py WarmChild) and the config store's parse worker built on it: reloads
parsed by a process forked in advance, which keeps the snapshots it made."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from fakes import FakeOpenAIUpstream, compat_config

from proxyd.childcall import ChildCallError, WarmChild
from proxyd.config import store as store_module
from proxyd.config.load import parse_config_text
from proxyd.keys import CONFIG_STORE, RUNTIME


class _Counter:
    """Keeps a total across calls; `kept` comes back by name."""

    def __init__(self) -> None:
        self.total = 0
        self.kept = {"big": list(range(100))}

    def __call__(self, n: int, fail: bool = False, sleep: float = 0.0) -> tuple[object, dict[str, object]]:
        if fail:
            raise KeyError("never shown")
        time.sleep(sleep)
        self.total += n
        return (os.getpid(), self.total, self.kept), {"kept": self.kept}


def _listed(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()  # zombies too: gone means exited and reaped


async def _gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _listed(pid):
            return True
        await asyncio.sleep(0.02)
    return False


async def test_a_warm_child_keeps_its_state_between_calls() -> None:
    counter = _Counter()
    child = WarmChild.start(counter)
    try:
        pid, total, kept = await child.call(2, shared={"kept": counter.kept})
        assert pid == child.pid != os.getpid()
        assert total == 2 and kept is counter.kept
        shared = {"kept": counter.kept}
        assert (await child.call(3, shared=shared))[1] == 5  # the child's own total; the parent's never ran
        assert counter.total == 0
        with pytest.raises(ChildCallError, match="raised KeyError") as caught:
            await child.call(1, True)
        assert "never shown" not in str(caught.value)
        assert child.alive and (await child.call(1, shared=shared))[1] == 6  # a failed call leaves it serving
        with pytest.raises(ChildCallError, match="no usable answer"):  # names the parent does not hold
            await child.call(1)
    finally:
        child.close()
    assert not child.alive and await _gone(child.pid)
    with pytest.raises(ChildCallError, match="gone"):
        await child.call(1)


async def test_a_dead_or_silent_warm_child_fails_the_call_and_is_closed() -> None:
    child = WarmChild.start(_Counter())
    os.kill(child.pid, signal.SIGKILL)
    with pytest.raises(ChildCallError, match="gone"):
        await child.call(1)
    assert not child.alive and await _gone(child.pid)

    slow = WarmChild.start(_Counter())
    with pytest.raises(ChildCallError, match="no answer within"):
        await slow.call(1, False, 30.0, wait_s=0.3)
    assert not slow.alive and await _gone(slow.pid)


def _big(base_url: str, alias: str) -> str:
    pools = []
    for p in range(5):
        keys = "".join(f'      - api-key: "sk-{p}-{k:03d}"\n' for k in range(150))
        pools.append(f'  - name: "pool-{p}"\n    base-url: "{base_url}"\n    api-key-entries:\n{keys}'
                     f'    models:\n      - name: "gpt-4o"\n        alias: "{alias if p == 0 else f"a-{p}"}"\n')
    text = 'host: "127.0.0.1"\napi-keys: ["client-key"]\nopenai-compatibility:\n' + "".join(pools)
    assert len(text.encode()) >= store_module.CHILD_PARSE_MIN_BYTES
    return text


async def test_reloads_go_to_the_parse_worker(fake_openai: FakeOpenAIUpstream, proxyd_factory, tmp_config,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    forked: list[str] = []

    async def no_fork(*args, **kwargs):
        forked.append("fork")
        raise ChildCallError("not in this test")

    monkeypatch.setattr(store_module, "call_in_child", no_fork)
    server = await proxyd_factory(_big(fake_openai.base_url, "first"), watch=False)
    store, holder = server.app[CONFIG_STORE], server.app[RUNTIME]
    assert store.start_parse_worker()
    try:
        worker = store._worker
        assert worker is not None
        for alias in ("second", "third"):
            old = store.current
            tmp_config(_big(fake_openai.base_url, alias))
            assert await store.reload("test") is True
            assert store.current == parse_config_text(_big(fake_openai.base_url, alias)).config
            assert [a is b for a, b in zip(store.current.openai_compatibility, old.openai_compatibility,
                                           strict=True)] == [False, True, True, True, True]
            assert alias in holder.current.registry
        assert forked == [] and store._worker is worker  # no fork for any of them

        # A snapshot the worker did not make (a write whose result the store changes afterwards): the next
        # reload is parsed another way, and a new worker comes back with the snapshot then in effect.
        store._result = parse_config_text(_big(fake_openai.base_url, "elsewhere"))
        tmp_config(_big(fake_openai.base_url, "fourth"))
        assert await store.reload("test") is True
        assert forked == ["fork"] and "fourth" in holder.current.registry  # the worker thread fallback
        assert not worker.alive and await _gone(worker.pid)
        assert store._worker is not None and store._worker.alive  # forked once that reload was over
        tmp_config(_big(fake_openai.base_url, "fifth"))
        assert await store.reload("test") is True
        assert forked == ["fork"] and "fifth" in holder.current.registry
    finally:
        store.stop_parse_worker()
    assert store._worker is None


async def test_a_small_config_gets_a_worker_once_a_big_one_is_loaded(
        fake_openai: FakeOpenAIUpstream, proxyd_factory, tmp_config) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url), watch=False)
    store = server.app[CONFIG_STORE]
    assert store.start_parse_worker() is False and store._worker is None  # a small file: a thread parses it
    try:
        tmp_config(compat_config(fake_openai.base_url).replace('alias: "mini"', 'alias: "tiny"'))
        assert await store.reload("test") is True
        assert store._worker is None
        tmp_config(_big(fake_openai.base_url, "big"))
        assert await store.reload("test") is True  # forked for this one, then the worker is there
        worker = store._worker
        assert worker is not None and worker.alive
        tmp_config(_big(fake_openai.base_url, "bigger"))
        assert await store.reload("test") is True
        assert store._worker is worker and "bigger" in server.app[RUNTIME].current.registry
        tmp_config(compat_config(fake_openai.base_url))  # small again: the worker parses it too
        assert await store.reload("test") is True
        assert store._worker is worker and "mini" in server.app[RUNTIME].current.registry
    finally:
        store.stop_parse_worker()
    assert not worker.alive and await _gone(worker.pid)
