"""Writing management edits back into config.yaml (management.md §1.9): the merge and the commit."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from proxyd.config import ConfigStore
from proxyd.config import store as store_module
from proxyd.config.document import ConfigDocument
from proxyd.keys import CONFIG_STORE
from proxyd.management.persist import REMOVE, commit, identity, merge_changes

KEY = "persist-management-key"
HASH = bcrypt.hashpw(KEY.encode(), bcrypt.gensalt(rounds=4)).decode()

FILE = """\
# Top comment
host: ''   # single-quoted
port: 8317
unknown-top: {a: 1}   # not a proxyd key
api-keys:
  - "k1"  # one
  - "k2"
# --- providers ---
claude-api-key:
  - api-key: "c1"   # first claude
    base-url: ""
    custom-field: keep
    models:
      - name: "m"
        alias: "a"
  - api-key: "c2"
    prefix: "p2"
# --- tail section ---
debug: true
"""


def merged(changes: dict[tuple[str, ...], Any], text: str = FILE) -> str:
    document = ConfigDocument.parse(text)
    merge_changes(document, changes)
    return document.dump()


def test_scalar_in_place_keeps_everything_else() -> None:
    out = merged({("host",): "0.0.0.0"})
    assert out == FILE.replace("host: ''   # single-quoted", "host: '0.0.0.0' # single-quoted")  # comment column kept


def test_default_values_are_not_added_but_non_defaults_are() -> None:
    assert merged({("ws-auth",): False, ("error-logs-max-files",): 10, ("routing", "strategy"): "round-robin",
                   ("request-retry",): 3, ("api-keys",): ["k1", "k2"]}) == FILE
    out = merged({("request-retry",): 0, ("quota-exceeded", "switch-project"): True})
    assert out.endswith("debug: true\nrequest-retry: 0\nquota-exceeded:\n  switch-project: true\n")


def test_sequence_matched_by_identity_keeps_comments_and_unknown_element_keys() -> None:
    new = [{"api-key": "c2", "prefix": "p2"},
           {"api-key": "c1", "models": [{"name": "m", "alias": "a"}]},
           {"api-key": "c3"}]
    out = merged({("claude-api-key",): new})
    assert out.index('api-key: "c2"') < out.index('api-key: "c1"') < out.index("api-key: c3")
    assert '  - api-key: "c1"   # first claude\n    base-url: ""\n    custom-field: keep\n' in out
    assert "# --- tail section ---\ndebug: true\n" in out
    assert out.startswith("# Top comment\nhost: ''   # single-quoted\n")


def test_vanished_element_keys_are_pruned_and_elements_truncated() -> None:
    out = merged({("claude-api-key",): [{"api-key": "c2"}]})
    assert '"c1"' not in out
    assert "prefix" not in out  # known key without a value any more
    assert 'claude-api-key:\n  - api-key: "c2"\n# --- tail section ---\ndebug: true\n' in out


def test_comment_after_a_list_survives_losing_its_last_element() -> None:
    out = merged({("api-keys",): ["k1"]})
    assert 'api-keys:\n  - "k1"  # one\n# --- providers ---\nclaude-api-key:' in out
    out = merged({("api-keys",): []})
    assert "api-keys: []\n# --- providers ---\nclaude-api-key:" in out


def test_new_strings_take_the_quote_style_of_their_siblings() -> None:
    out = merged({("api-keys",): ["k1", "k2", "k3"]})
    assert '  - "k2"\n  - "k3"\n# --- providers ---' in out


def test_removed_key_hands_its_following_comment_to_the_previous_key() -> None:
    out = merged({("claude-api-key",): REMOVE})
    assert "claude-api-key" not in out
    assert '  - "k2"\n# --- providers ---\n# --- tail section ---\ndebug: true\n' in out


def test_legacy_keys_are_removed() -> None:
    text = FILE + ("generative-language-api-key: [x]\namp-upstream-url: http://amp\n"
                   "openai-compatibility:\n  - name: o\n    base-url: https://o.example\n    api-keys: [old]\n")
    document = ConfigDocument.parse(text)
    removed = merge_changes(document, {("debug",): False})
    out = document.dump()
    assert set(removed) == {"generative-language-api-key", "amp-upstream-url", "openai-compatibility[].api-keys"}
    assert "generative-language-api-key" not in out and "amp-upstream-url" not in out and "old" not in out
    assert "unknown-top: {a: 1}   # not a proxyd key" in out


def test_flow_style_lists_stay_flow() -> None:
    out = merged({("api-keys",): ["a", "b", "c"]}, "api-keys: [a, b]\n")
    assert out == "api-keys: [a, b, c]\n"
    out = merged({("api-keys",): ["a"]}, "api-keys: []\nport: 8317\n")
    assert out == "api-keys:\n  - a\nport: 8317\n"


def test_identity_rules() -> None:
    assert identity({"prefix": "p", "api-key": " k "}) == ("api-key", "k")
    assert identity({"name": "n", "api-key": "k"}) == ("name", "n")
    assert identity({"from": "x", "to": "y"}) == ("from", "x")
    assert identity("plain") == ("", "plain")


# --------------------------------------------------------------------------------- v8 nested layout

V8 = f"""\
config-version: 8
server:
  host: "127.0.0.1"
  port: 8317
management:
  secret-key: "{HASH}"
access:
  api-keys: ["client-1"]   # clients
routing:
  retry:
    request-retry: 2   # nested
api-keys:
  gemini:
    - keys:
        - api-key: "AIza-v8"
"""


def test_v8_layout_settings_go_where_the_file_keeps_them() -> None:
    out = merged({("request-retry",): 5, ("api-keys",): ["client-1", "client-2"], ("debug",): True}, V8)
    assert "    request-retry: 5   # nested\n" in out
    assert 'access:\n  api-keys: ["client-1", "client-2"] # clients\n' in out
    assert out.endswith("debug: true\n")
    assert "api-keys:\n  gemini:\n" in out


def test_v8_new_client_keys_go_under_access() -> None:
    text = "config-version: 8\nserver:\n  port: 8317\n"
    assert merged({("api-keys",): ["c"]}, text) == text + "access:\n  api-keys:\n    - c\n"


async def call(server: Any, method: str, path: str, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.request(
            method, f"{server.url}/v0/management{path}", data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {KEY}"}) as r:
        return r.status, await r.json()


async def test_v8_file_through_the_api(proxyd_factory: Any) -> None:
    server = await proxyd_factory(V8)
    assert (await call(server, "PUT", "/request-retry", {"value": 4})) == (200, {"status": "ok"})
    assert server.app[CONFIG_STORE].current.request_retry == 4
    assert (await call(server, "PUT", "/api-keys", ["client-9"])) == (200, {"status": "ok"})
    assert server.app[CONFIG_STORE].current.api_keys == ("client-9",)
    before = server.config_path.read_bytes()
    status, body = await call(server, "PUT", "/gemini-api-key", [{"api-key": "AIza-new"}])
    assert status == 409
    assert body["error"] == "nested_layout" and "api-keys.gemini" in body["message"]
    assert server.config_path.read_bytes() == before
    assert b"config-version: 8" in before and b"    request-retry: 4   # nested" in before


# ------------------------------------------------------------------------------------------- commit


def _request(store: ConfigStore) -> web.Request:
    app = web.Application()
    app[CONFIG_STORE] = store
    return make_mocked_request("PUT", "/v0/management/x", app=app)


async def test_commit_is_atomic_and_swaps_the_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(FILE)
    store = ConfigStore.open(path, hash_secret=False)
    inode = os.stat(path).st_ino
    response = await commit(_request(store), lambda _c: {("debug",): False}, "debug")
    assert response.status == 200 and json.loads(response.body) == {"status": "ok"}
    assert os.stat(path).st_ino != inode  # replaced by rename, never rewritten in place
    assert sorted(os.listdir(tmp_path)) == ["config.yaml"]
    assert store.current.debug is False
    assert path.read_text() == FILE.replace("debug: true", "debug: false")


async def test_commit_refuses_an_edit_that_makes_the_config_invalid(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(FILE)
    store = ConfigStore.open(path, hash_secret=False)
    response = await commit(_request(store), lambda _c: {("port",): 70000}, "port")
    assert response.status == 422
    assert json.loads(response.body) == {"error": "invalid_config", "message": "port: must be between 1 and 65535"}
    assert path.read_text() == FILE
    assert store.current.port == 8317


async def test_commit_reports_a_failed_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(FILE)
    store = ConfigStore.open(path, hash_secret=False)

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(store_module, "atomic_write_text", refuse)
    response = await commit(_request(store), lambda _c: {("debug",): False}, "debug")
    assert response.status == 500
    assert json.loads(response.body) == {"error": "failed to save config: Permission denied"}
    assert path.read_text() == FILE
    assert store.current.debug is True
