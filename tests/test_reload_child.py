"""Reload work away from the event loop: the forked-child call, the config store's child parse and its
fallback to a worker thread, and the runtime index built in slices."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import openai
import pytest
from fakes import FakeOpenAIUpstream, compat_config

from proxyd.childcall import ChildCallError, call_in_child
from proxyd.config import store as store_module
from proxyd.config.load import parse_config_text
from proxyd.credentials.manager import CredentialManager
from proxyd.keys import CONFIG_STORE, RUNTIME
from proxyd.runtime import build_index, build_index_sliced

MESSAGES = [{"role": "user", "content": "hi"}]


def _pid_and_square(n: int) -> tuple[int, list[int]]:
    return os.getpid(), [i * i for i in range(n)]


def _raise() -> None:
    raise KeyError("never shown")


def _die() -> None:
    os._exit(3)


def _sleep_after_writing_pid(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(30)


def _unpicklable() -> object:
    return lambda: None


def _listed(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()  # zombies too: gone means exited and reaped


async def _gone(pid: int, within: float = 5.0) -> bool:
    """True once `pid` no longer exists (exited and reaped)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _listed(pid):
            return True
        await asyncio.sleep(0.02)
    return False


async def test_call_runs_in_another_process_and_returns_the_value() -> None:
    pid, squares = await call_in_child(_pid_and_square, 100_000)
    assert pid != os.getpid()
    assert squares == [i * i for i in range(100_000)]  # several pipe buffers' worth
    assert await _gone(pid)


@pytest.mark.parametrize(("fn", "message"), [
    (_raise, "raised KeyError"),
    (_die, "no complete answer"),
    (_unpicklable, "raised"),
])
async def test_failures_in_the_child_raise_child_call_error(fn, message: str) -> None:
    with pytest.raises(ChildCallError, match=message) as caught:
        await call_in_child(fn)
    assert "never shown" not in str(caught.value)


async def test_a_child_that_does_not_answer_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(ChildCallError, match="no answer within"):
        await call_in_child(_sleep_after_writing_pid, str(pid_file), wait_s=0.5)
    assert time.monotonic() - started < 5
    assert await _gone(int(pid_file.read_text()))


async def test_without_fork_the_call_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "fork")
    with pytest.raises(ChildCallError, match="not available"):
        await call_in_child(_pid_and_square, 1)


def _big_config(base_url: str, alias: str, keys: int = 500, extra: str = "") -> str:
    entries = "".join(f'      - api-key: "sk-pool-{k:04d}"\n' for k in range(keys))
    models = "".join(f'      - name: "gpt-4o"\n        alias: "pool-{a}"\n' for a in range(40))
    text = compat_config(base_url, extra=f"""\
  - name: "pool"
    base-url: "{base_url}"
    api-key-entries:
{entries}    models:
      - name: "gpt-4o"
        alias: "{alias}"
{models}{extra}""")
    assert len(text.encode()) >= store_module.CHILD_PARSE_MIN_BYTES
    return text


@pytest.fixture
def child_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records how each config parse of a reload went: "child" or "failed"."""
    outcomes: list[str] = []

    async def spy(fn, *args, **kwargs):
        try:
            value = await call_in_child(fn, *args, **kwargs)
        except ChildCallError:
            outcomes.append("failed")
            raise
        outcomes.append("child")
        return value

    monkeypatch.setattr(store_module, "call_in_child", spy)
    return outcomes


async def test_big_reload_is_parsed_in_a_child(fake_openai: FakeOpenAIUpstream, proxyd_factory, tmp_config,
                                               child_calls: list[str]) -> None:
    fake_openai.chunk_count = 5
    fake_openai.chunk_delay = 0.1
    server = await proxyd_factory(_big_config(fake_openai.base_url, "first"), watch=False)
    store = server.app[CONFIG_STORE]
    client = openai.AsyncOpenAI(base_url=server.v1, api_key="client-key", max_retries=0)
    stream = await client.chat.completions.create(model="my-model", messages=MESSAGES, stream=True)
    texts: list[str] = []
    edited = _big_config(fake_openai.base_url, "second", extra="request-retry: -2\n")  # and a warning
    async for chunk in stream:  # the reload happens while a stream is open (the child closes its copy)
        if chunk.choices and chunk.choices[0].delta.content:
            texts.append(chunk.choices[0].delta.content)
            if len(texts) == 1:
                tmp_config(edited)
                assert await store.reload("test") is True
    assert "".join(texts) == fake_openai.reply_text
    assert child_calls == ["child"]

    expected = parse_config_text(edited)
    assert store.current == expected.config
    assert store.sha256 == expected.sha256
    assert [str(p) for p in store.result.warnings] == [str(p) for p in expected.warnings] != []
    assert store.document.dump() == edited  # the round-trip document, parsed again on first use

    runtime = server.app[RUNTIME].current
    assert "second" in runtime.registry and "first" not in runtime.registry
    assert len(runtime.registry.routes("second")) == 500
    reply = await client.chat.completions.create(model="second", messages=MESSAGES)
    assert reply.model == "second"
    await client.close()


async def test_broken_big_reload_changes_nothing(fake_openai: FakeOpenAIUpstream, proxyd_factory, tmp_config,
                                                 child_calls: list[str]) -> None:
    server = await proxyd_factory(_big_config(fake_openai.base_url, "first"), watch=False)
    store = server.app[CONFIG_STORE]
    before = store.current
    tmp_config(_big_config(fake_openai.base_url, "second") + "port: [unclosed\n")
    assert await store.reload("test") is False
    assert child_calls == ["child"] and store.current is before


async def test_child_failure_falls_back_to_a_thread(fake_openai: FakeOpenAIUpstream, proxyd_factory, tmp_config,
                                                    child_calls: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    server = await proxyd_factory(_big_config(fake_openai.base_url, "first"), watch=False)
    store = server.app[CONFIG_STORE]
    monkeypatch.delattr(os, "fork")
    tmp_config(_big_config(fake_openai.base_url, "second"))
    assert await store.reload("test") is True
    assert child_calls == ["failed"]
    assert "second" in server.app[RUNTIME].current.registry


async def test_small_reload_stays_in_process(fake_openai: FakeOpenAIUpstream, proxyd_factory, tmp_config,
                                             child_calls: list[str]) -> None:
    text = compat_config(fake_openai.base_url)
    server = await proxyd_factory(text, watch=False)
    tmp_config(text.replace('alias: "mini"', 'alias: "tiny"'))
    assert await server.app[CONFIG_STORE].reload("test") is True
    assert child_calls == []
    assert "tiny" in server.app[RUNTIME].current.registry


async def test_sliced_index_matches_the_plain_build() -> None:
    config = parse_config_text(_big_config("http://127.0.0.1:9/v1", "x", keys=500)).config
    assert config is not None
    manager = CredentialManager()
    plain = build_index(config, ())
    manager.sync(plain.credentials)
    sliced = await build_index_sliced(manager, config, ())
    assert sliced.credentials == plain.credentials
    assert sliced.unchanged == frozenset(c.id for c in plain.credentials)
    assert [m.id for m in sliced.registry.list_models()] == [m.id for m in plain.registry.list_models()]
    assert sliced.registry.routes("pool-3") == plain.registry.routes("pool-3")
