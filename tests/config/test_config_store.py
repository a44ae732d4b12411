"""ConfigStore: reload, subscribers, edits and the polling watcher."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from proxyd.config import ConfigChange, ConfigLoadError, ConfigStore, diff_configs, parse_config_text

BASE = """\
# my gateway
host: "127.0.0.1"
port: 8317
api-keys:
  - "secret-client-key-1"
routing:
  strategy: round-robin
gemini-api-key:
  - api-key: "AIza-secret-gemini"
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(BASE)
    return path


@pytest.fixture
def store(config_path: Path) -> ConfigStore:
    return ConfigStore.open(config_path)


class Recorder:
    def __init__(self) -> None:
        self.changes: list[ConfigChange] = []
        self.event = asyncio.Event()

    def __call__(self, change: ConfigChange) -> None:
        self.changes.append(change)
        self.event.set()


def write(path: Path, text: str) -> None:
    path.write_text(text)


def read(path: Path) -> str:
    return path.read_text()


def remove(path: Path) -> None:
    path.unlink()


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


# ------------------------------------------------------------------------------------------- basics


def test_open_exposes_current_snapshot(store: ConfigStore, config_path: Path) -> None:
    assert store.path == config_path
    assert store.config_dir == config_path.parent
    assert store.current.api_keys == ("secret-client-key-1",)
    assert store.document.get(("routing", "strategy")) == "round-robin"
    assert len(store.sha256) == 64


def test_open_invalid_raises_with_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("port: x\nrouting: {strategy: zigzag}\ndebug: maybe\n")
    with pytest.raises(ConfigLoadError) as info:
        ConfigStore.open(path)
    text = str(info.value)
    assert "port: must be an integer" in text
    assert "routing.strategy: must be one of round-robin, fill-first, weighted-round-robin" in text
    assert "debug: must be a boolean (true or false)" in text
    assert len(info.value.problems) == 3


def test_store_needs_a_valid_initial_result(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="successfully loaded"):
        ConfigStore(tmp_path / "c.yaml", parse_config_text("port: x\n"))


def test_diff_and_touches() -> None:
    a = parse_config_text(BASE).config
    b = parse_config_text(BASE.replace("round-robin", "ff") + "extra-thing: 1\n").config
    assert a is not None and b is not None
    changed = diff_configs(a, b)
    assert changed == frozenset({"routing", "extra-thing"})
    change = ConfigChange(old=a, new=b, changed=changed)
    assert change.touches("api-keys", "routing")
    assert not change.touches("api-keys", "port")


# ------------------------------------------------------------------------------------------- reload


async def test_valid_edit_swaps_and_notifies_with_exact_changed_keys(store: ConfigStore,
                                                                       config_path: Path) -> None:
    recorder = Recorder()
    store.subscribe(recorder)
    old = store.current
    write(config_path,
        BASE.replace("strategy: round-robin", "strategy: fill-first")
        + '  - api-key: "AIza-secret-gemini-2"\n'
        + 'api-keys-extra-note: "x"\n'
    )
    write(config_path, read(config_path).replace(
        '  - "secret-client-key-1"\n', '  - "secret-client-key-1"\n  - "secret-client-key-2"\n'))
    with capture_logs() as logs:
        assert await store.reload("test") is True
    (change,) = recorder.changes
    assert change.changed == frozenset({"routing", "api-keys", "gemini-api-key", "api-keys-extra-note"})
    assert change.old is old
    assert change.new is store.current
    assert store.current.routing.strategy == "fill-first"
    assert old.routing.strategy == "round-robin"  # the old snapshot is untouched
    assert "api-keys count: 1 -> 2" in change.summary
    assert "routing.strategy: 'round-robin' -> 'fill-first'" in change.summary
    (reloaded,) = events(logs, "config reloaded")
    assert reloaded["changed"] == sorted(change.changed)
    assert reloaded["reason"] == "test"
    assert "secret" not in repr(reloaded["changes"])


async def test_same_count_key_change_is_redacted(store: ConfigStore, config_path: Path) -> None:
    recorder = Recorder()
    store.subscribe(recorder)
    write(config_path, BASE.replace("secret-client-key-1", "secret-client-key-9")
                           .replace("AIza-secret-gemini", "AIza-secret-other"))
    assert await store.reload() is True
    (change,) = recorder.changes
    assert change.changed == {"api-keys", "gemini-api-key"}
    assert "api-keys: values updated (count unchanged, redacted)" in change.summary
    assert "gemini-api-key[0].api-key: updated (redacted)" in change.summary
    assert "secret" not in " ".join(change.summary)


async def test_invalid_edit_keeps_old_config_and_logs_every_problem(store: ConfigStore,
                                                                    config_path: Path) -> None:
    recorder = Recorder()
    store.subscribe(recorder)
    before = store.current
    before_hash = store.sha256
    write(config_path, BASE.replace("port: 8317", "port: eighty") + "request-body-limit-mb: 0\n"
                           + 'proxy-url: "ftp://user:pw-secret@h"\n')
    with capture_logs() as logs:
        assert await store.reload() is False
    assert store.current is before
    assert store.sha256 == before_hash
    assert recorder.changes == []
    (failed,) = events(logs, "config reload failed")
    assert failed["log_level"] == "error"
    assert set(failed["problems"]) == {
        "port: must be an integer",
        "request-body-limit-mb: must be an integer >= 1",
        'proxy-url: must be empty, "direct", "none", or a socks5/http/https URL with a host',
    }
    assert "secret" not in repr(failed)
    # fixing the file afterwards is picked up
    write(config_path, BASE.replace("port: 8317", "port: 8318"))
    assert await store.reload() is True
    assert store.current.port == 8318
    assert recorder.changes[-1].changed == {"port"}


async def test_hash_equal_rewrite_does_not_notify(store: ConfigStore, config_path: Path) -> None:
    recorder = Recorder()
    store.subscribe(recorder)
    write(config_path, BASE)
    with capture_logs() as logs:
        assert await store.reload() is False
    assert recorder.changes == []
    assert events(logs, "config reloaded") == []


async def test_comment_only_edit_swaps_without_notifying(store: ConfigStore, config_path: Path) -> None:
    recorder = Recorder()
    store.subscribe(recorder)
    write(config_path, BASE.replace("# my gateway", "# my gateway, now documented"))
    assert await store.reload() is True
    assert recorder.changes == []
    assert store.document.dump().startswith("# my gateway, now documented")


async def test_empty_file_is_ignored(store: ConfigStore, config_path: Path) -> None:
    before = store.current
    write(config_path, "")
    with capture_logs() as logs:
        assert await store.reload() is False
    assert store.current is before
    assert events(logs, "ignoring empty config file")


async def test_missing_file_on_reload_keeps_config(store: ConfigStore, config_path: Path) -> None:
    before = store.current
    remove(config_path)
    with capture_logs() as logs:
        assert await store.reload() is False
    assert store.current is before
    assert events(logs, "config reload failed")


async def test_subscriber_errors_are_logged_and_do_not_stop_others(store: ConfigStore,
                                                                   config_path: Path) -> None:
    order: list[str] = []

    def first(change: ConfigChange) -> None:
        order.append("first")
        raise RuntimeError("subscriber bug")

    async def second(change: ConfigChange) -> None:
        await asyncio.sleep(0)
        order.append("second")

    def third(change: ConfigChange) -> None:
        order.append("third")

    store.subscribe(first)
    store.subscribe(second)
    unsubscribe = store.subscribe(third)
    unsubscribe()
    unsubscribe()  # idempotent
    write(config_path, BASE.replace("8317", "9999"))
    with capture_logs() as logs:
        assert await store.reload() is True
    assert order == ["first", "second"]
    assert store.current.port == 9999
    (failure,) = events(logs, "config subscriber failed")
    assert failure["exc_info"] is True
    assert "first" in failure["subscriber"]


async def test_concurrent_reloads_are_serialized(store: ConfigStore, config_path: Path) -> None:
    recorder = Recorder()
    store.subscribe(recorder)
    write(config_path, BASE.replace("8317", "8400"))
    results = await asyncio.gather(*(store.reload() for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    assert len(recorder.changes) == 1


# -------------------------------------------------------------------------------------------- edits


async def test_edit_writes_file_and_swaps(store: ConfigStore, config_path: Path) -> None:
    recorder = Recorder()
    store.subscribe(recorder)
    result = await store.edit(lambda doc: doc.set(("request-retry",), 7))
    assert result.ok
    assert store.current.request_retry == 7
    assert recorder.changes[0].changed == {"request-retry"}
    assert read(config_path) == BASE + "request-retry: 7\n"
    assert await store.reload() is False  # the watcher's follow-up reload is a no-op


async def test_invalid_edit_is_not_written(store: ConfigStore, config_path: Path) -> None:
    result = await store.edit(lambda doc: doc.set(("routing", "strategy"), "zigzag"))
    assert not result.ok
    assert [str(p) for p in result.errors] == [
        "routing.strategy: must be one of round-robin, fill-first, weighted-round-robin"]
    assert read(config_path) == BASE
    assert store.current.routing.strategy == "round-robin"


async def test_write_text_replaces_whole_file(store: ConfigStore, config_path: Path) -> None:
    result = await store.write_text("port: 1234\n")
    assert result.ok
    assert read(config_path) == "port: 1234\n"
    assert store.current.port == 1234
    bad = await store.write_text("port: [\n")
    assert not bad.ok
    assert read(config_path) == "port: 1234\n"


# ------------------------------------------------------------------------------------------ watcher


@pytest.fixture
async def watching(store: ConfigStore) -> AsyncIterator[Callable[[], Recorder]]:
    recorder = Recorder()
    store.subscribe(recorder)
    task = asyncio.create_task(store.watch(poll_interval=0.05, debounce=0.1))
    await asyncio.sleep(0.1)
    try:
        yield lambda: recorder
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def wait_for_change(recorder: Recorder, within: float = 2.0) -> ConfigChange:
    await asyncio.wait_for(recorder.event.wait(), within)
    recorder.event.clear()
    return recorder.changes[-1]


@pytest.mark.slow
async def test_watch_picks_up_in_place_edit(watching: Callable[[], Recorder], store: ConfigStore,
                                            config_path: Path) -> None:
    write(config_path, BASE.replace("round-robin", "fill-first"))
    change = await wait_for_change(watching())
    assert change.changed == {"routing"}
    assert store.current.routing.strategy == "fill-first"


@pytest.mark.slow
async def test_watch_picks_up_atomic_rename(watching: Callable[[], Recorder], store: ConfigStore,
                                            config_path: Path) -> None:
    tmp = config_path.with_name(".config.yaml.tmp")
    write(tmp, BASE.replace("port: 8317", "port: 8319"))
    os.replace(tmp, config_path)
    change = await wait_for_change(watching())
    assert change.changed == {"port"}
    assert store.current.port == 8319


@pytest.mark.slow
async def test_watch_survives_delete_then_write(watching: Callable[[], Recorder], store: ConfigStore,
                                                config_path: Path) -> None:
    with capture_logs() as logs:
        remove(config_path)
        await asyncio.sleep(0.3)
        write(config_path, BASE.replace("127.0.0.1", "0.0.0.0"))
        change = await wait_for_change(watching())
    assert change.changed == {"host"}
    assert len(events(logs, "config file missing; waiting for it to reappear")) == 1


@pytest.mark.slow
async def test_watch_ignores_invalid_then_applies_fix(watching: Callable[[], Recorder], store: ConfigStore,
                                                      config_path: Path) -> None:
    with capture_logs() as logs:
        write(config_path, "port: [broken\n")
        await asyncio.sleep(0.5)
        assert events(logs, "config reload failed")
    assert store.current.port == 8317
    assert watching().changes == []
    write(config_path, BASE.replace("8317", "8320"))
    change = await wait_for_change(watching())
    assert change.new.port == 8320


@pytest.mark.slow
async def test_watch_default_intervals_apply_within_two_seconds(store: ConfigStore, config_path: Path) -> None:
    recorder = Recorder()
    store.subscribe(recorder)
    task = asyncio.create_task(store.watch())
    try:
        await asyncio.sleep(0.3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        write(config_path, BASE.replace("8317", "8321"))
        await wait_for_change(recorder)
        assert loop.time() - started < 2.0
        assert store.current.port == 8321
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# ------------------------------------------------------------------------------------ secret hashing

SECRET_CONFIG = """\
# management
remote-management:
  allow-remote: false
  secret-key: "plain-mgmt-secret"  # will be hashed
port: 8317
"""


def test_plaintext_secret_is_hashed_and_written_back(tmp_path: Path) -> None:
    import bcrypt

    path = tmp_path / "config.yaml"
    path.write_text(SECRET_CONFIG)
    store = ConfigStore.open(path)
    hashed = store.current.remote_management.secret_key
    assert hashed.startswith("$2")
    assert bcrypt.checkpw(b"plain-mgmt-secret", hashed.encode())
    text = path.read_text()
    # only the secret line changes (its trailing comment may move by a column)
    expected = SECRET_CONFIG.replace("plain-mgmt-secret", hashed).splitlines()
    actual = text.splitlines()
    assert [ln for ln in actual if "secret-key" not in ln] == [ln for ln in expected if "secret-key" not in ln]
    (secret_line,) = [ln for ln in actual if "secret-key" in ln]
    assert secret_line.startswith(f'  secret-key: "{hashed}"') and secret_line.endswith("# will be hashed")
    assert store.sha256 == __import__("hashlib").sha256(text.encode()).hexdigest()
    # an already-hashed key is left alone
    again = ConfigStore.open(path)
    assert again.current.remote_management.secret_key == hashed
    assert path.read_text() == text


def test_hashing_can_be_disabled(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(SECRET_CONFIG)
    store = ConfigStore.open(path, hash_secret=False)
    assert store.current.remote_management.secret_key == "plain-mgmt-secret"
    assert path.read_text() == SECRET_CONFIG


async def test_reload_hashes_a_new_plaintext_secret(store: ConfigStore, config_path: Path) -> None:
    recorder = Recorder()
    store.subscribe(recorder)
    write(config_path, BASE + 'remote-management:\n  secret-key: "new-plain"\n')
    assert await store.reload() is True
    secret = store.current.remote_management.secret_key
    assert secret.startswith("$2")
    assert "new-plain" not in read(config_path)
    assert recorder.changes[-1].changed == {"remote-management"}
    assert "remote-management.secret-key: updated (redacted)" in recorder.changes[-1].summary
    assert await store.reload() is False  # our own write-back is not a new change


def test_failed_write_back_keeps_hash_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from proxyd.config import store as store_module

    def refuse(path: Path, text: str, mode: int | None = None) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(store_module, "atomic_write_text", refuse)
    path = tmp_path / "config.yaml"
    path.write_text(SECRET_CONFIG)
    store = ConfigStore.open(path)
    assert store.current.remote_management.secret_key.startswith("$2")
    assert path.read_text() == SECRET_CONFIG


def test_v8_layout_secret_written_at_nested_path(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("config-version: 8\nmanagement:\n  secret-key: plain\n")
    store = ConfigStore.open(path)
    assert store.document.get(("management", "secret-key")) == store.current.remote_management.secret_key
    assert "remote-management" not in path.read_text()


async def test_long_plaintext_secret_is_hashed_not_fatal(tmp_path) -> None:
    """bcrypt 5 refuses > 72-byte input; the store truncates like Go's compare does, so start-up survives."""
    import bcrypt

    from proxyd.config import ConfigStore
    from proxyd.config.store import bcrypt_input

    secret = "s" * 100
    path = tmp_path / "config.yaml"
    path.write_text(f'remote-management:\n  secret-key: "{secret}"\n')
    store = ConfigStore.open(path)
    hashed = store.current.remote_management.secret_key
    assert hashed.startswith("$2")
    assert bcrypt.checkpw(bcrypt_input(secret), hashed.encode())
    assert secret not in path.read_text()
