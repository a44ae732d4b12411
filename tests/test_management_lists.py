"""Management API list editors (management.md §3.7, odd corners of §10 item 6).

curl-level: an aiohttp client against a running proxyd; every mutation is checked on disk and in effect.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import bcrypt
import pytest
from fakes import FakeOpenAIUpstream

from proxyd.credentials.index import stable_index
from proxyd.keys import CONFIG_STORE, RUNTIME

KEY = "lists-management-key"
HASH = bcrypt.hashpw(KEY.encode(), bcrypt.gensalt(rounds=4)).decode()
MGMT = "/v0/management"


def config(extra: str = "", *, api_keys: str = '  - "key-one"  # first client\n  - "key-two"\n') -> str:
    return f"""\
# lists test config
host: "127.0.0.1"
port: 8317
remote-management:
  secret-key: "{HASH}"
api-keys:
{api_keys}# upstream providers below
{extra}"""


GEMINI = """\
gemini-api-key:
  - api-key: "AIza-one"   # primary
    prefix: "team"
  - api-key: "AIza-two"
    base-url: "https://generativelanguage.example"
debug: false
"""


async def call(server: Any, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
               key: str | None = KEY) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    async with aiohttp.ClientSession() as s, s.request(method, f"{server.url}{MGMT}{path}", data=data,
                                                       headers=headers) as r:
        text = await r.text()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text


OK = (200, {"status": "ok"})


def current(server: Any) -> Any:
    return server.app[CONFIG_STORE].current


async def models_status(server: Any, client_key: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(f"{server.v1}/models",
                                                   headers={"Authorization": f"Bearer {client_key}"}) as r:
        return r.status


# ------------------------------------------------------------------------------------------- api-keys


async def test_api_keys_get(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config())
    assert (await call(server, "GET", "/api-keys")) == (200, {"api-keys": ["key-one", "key-two"]})
    empty = await proxyd_factory(config(api_keys="  []\n").replace("api-keys:\n  []", "api-keys: []"))
    assert (await call(empty, "GET", "/api-keys")) == (200, {"api-keys": None})


async def test_api_keys_put_takes_effect_at_once(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config())
    assert await models_status(server, "key-new") == 401
    assert (await call(server, "PUT", "/api-keys", ["key-one", "key-new"])) == OK
    assert await models_status(server, "key-new") == 200
    assert await models_status(server, "key-two") == 401
    text = server.config_path.read_text()
    assert '  - "key-one"  # first client\n  - "key-new"\n# upstream providers below\n' in text
    assert (await call(server, "PUT", "/api-keys", {"items": ["key-three"]})) == OK
    assert current(server).api_keys == ("key-three",)


async def test_api_keys_put_empty_array_clears_but_empty_items_is_refused(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config())
    before = server.config_path.read_bytes()
    assert (await call(server, "PUT", "/api-keys", {"items": []})) == (400, {"error": "invalid body"})
    assert (await call(server, "PUT", "/api-keys", [1, 2])) == (400, {"error": "invalid body"})
    assert (await call(server, "PUT", "/api-keys", raw=b"[oops")) == (400, {"error": "invalid body"})
    assert server.config_path.read_bytes() == before
    assert (await call(server, "PUT", "/api-keys", [])) == OK
    assert current(server).api_keys == ()
    text = server.config_path.read_text()
    assert "api-keys: []\n# upstream providers below\n" in text
    assert await models_status(server, "anything") == 200  # empty list = open access, as the reference


async def test_api_keys_patch_by_index_keeps_quoting_and_comment(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config())
    assert (await call(server, "PATCH", "/api-keys", {"index": 0, "value": "key-uno"})) == OK
    assert '  - "key-uno"  # first client\n  - "key-two"\n' in server.config_path.read_text()
    assert current(server).api_keys == ("key-uno", "key-two")


async def test_api_keys_patch_old_new_replaces_or_appends(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config())
    assert (await call(server, "PATCH", "/api-keys", {"old": "key-two", "new": "key-2"})) == OK
    assert current(server).api_keys == ("key-one", "key-2")
    # the odd corner: an `old` that matches nothing appends `new`
    assert (await call(server, "PATCH", "/api-keys", {"old": "nope", "new": "key-3"})) == OK
    assert current(server).api_keys == ("key-one", "key-2", "key-3")
    assert await models_status(server, "key-3") == 200


@pytest.mark.parametrize(("body", "error"), [
    ({"index": 9, "value": "x"}, "missing fields"),
    ({"value": "x"}, "missing fields"),
    ({"old": "key-one"}, "missing fields"),
    ({"index": "0", "value": "x"}, "invalid body"),
    ([1], "invalid body"),
])
async def test_api_keys_patch_errors(proxyd_factory: Any, body: Any, error: str) -> None:
    server = await proxyd_factory(config())
    before = server.config_path.read_bytes()
    assert (await call(server, "PATCH", "/api-keys", body)) == (400, {"error": error})
    assert server.config_path.read_bytes() == before


async def test_api_keys_delete_by_index_and_value(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config(api_keys='  - "a-key"\n  - "b-key"  # bee\n  - "c-key"\n'))
    assert (await call(server, "DELETE", "/api-keys?index=0")) == OK
    assert current(server).api_keys == ("b-key", "c-key")
    assert (await call(server, "DELETE", "/api-keys?value=%20c-key%20")) == OK
    assert current(server).api_keys == ("b-key",)
    assert (await call(server, "DELETE", "/api-keys?value=never-there")) == OK
    assert (await call(server, "DELETE", "/api-keys?index=7")) == (400, {"error": "missing index or value"})
    assert (await call(server, "DELETE", "/api-keys")) == (400, {"error": "missing index or value"})
    text = server.config_path.read_text()
    assert 'api-keys:\n  - "b-key"  # bee\n# upstream providers below\n' in text
    assert await models_status(server, "a-key") == 401


async def test_api_keys_sample_key_refused_with_file_unchanged(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config())
    before = server.config_path.read_bytes()
    status, body = await call(server, "PUT", "/api-keys", ["your-api-key-1"])
    assert status == 422
    assert body == {"error": "invalid_config",
                    "message": "api-keys[0]: this is the example config's sample key; replace it"}
    assert server.config_path.read_bytes() == before


# --------------------------------------------------------------------------------------- gemini keys


async def test_gemini_get_put(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config(GEMINI))
    status, body = await call(server, "GET", "/gemini-api-key")
    assert status == 200
    assert body == {"gemini-api-key": [  # each with the recorded reference build's auth-index seed
        {"api-key": "AIza-one", "prefix": "team", "auth-index": stable_index("gemini-api-key:+AIza-one")},
        {"api-key": "AIza-two", "base-url": "https://generativelanguage.example",
         "auth-index": stable_index("gemini-api-key:https://generativelanguage.example+AIza-two")},
    ]}
    new = [{"api-key": "AIza-one", "prefix": "team"}, {"api-key": "AIza-one"},  # duplicate: dropped
           {"api-key": " AIza-three ", "excluded-models": ["Gemini-2.5-*", "gemini-2.5-*"], "unknown": 1}]
    assert (await call(server, "PUT", "/gemini-api-key", {"items": new})) == OK
    keys = current(server).gemini_api_key
    assert [k.api_key for k in keys] == ["AIza-one", "AIza-three"]
    assert keys[1].excluded_models == ("gemini-2.5-*",)
    text = server.config_path.read_text()
    assert '  - api-key: "AIza-one"   # primary\n    prefix: "team"\n' in text
    assert "AIza-two" not in text
    assert "unknown" not in text
    assert text.endswith("debug: false\n")


async def test_gemini_patch_by_index_and_match(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config(GEMINI))
    assert (await call(server, "PATCH", "/gemini-api-key", {"index": 1, "value": {"prefix": " blue "}})) == OK
    assert current(server).gemini_api_key[1].prefix == "blue"
    body = {"match": " AIza-one ", "value": {"proxy-url": "socks5://127.0.0.1:1080", "headers": {"X-A": " 1 "},
                                             "models": [{"name": "ignored", "alias": "x"}], "priority": 5}}
    assert (await call(server, "PATCH", "/gemini-api-key", body)) == OK
    first = current(server).gemini_api_key[0]
    assert first.proxy_url == "socks5://127.0.0.1:1080"
    assert first.headers == {"X-A": "1"}
    assert first.models == () and first.priority == 0  # not PATCH-able for gemini
    text = server.config_path.read_text()
    assert '  - api-key: "AIza-one"   # primary\n    prefix: "team"\n    proxy-url: "socks5://127.0.0.1:1080"\n' in text


async def test_gemini_patch_errors(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config(GEMINI))
    before = server.config_path.read_bytes()
    assert (await call(server, "PATCH", "/gemini-api-key", {"match": "nope", "value": {"prefix": "x"}})) == (
        404, {"error": "item not found"})
    assert (await call(server, "PATCH", "/gemini-api-key", {"index": 5, "value": {}})) == (
        404, {"error": "item not found"})
    assert (await call(server, "PATCH", "/gemini-api-key", {"index": 0})) == (400, {"error": "invalid body"})
    assert (await call(server, "PATCH", "/gemini-api-key", {"index": 0, "value": {"prefix": 3}})) == (
        400, {"error": "invalid body"})
    status, body = await call(server, "PATCH", "/gemini-api-key", {"index": 0, "value": {"proxy-url": "ftp://x"}})
    assert status == 422
    assert body["message"].startswith("gemini-api-key[0].proxy-url: must be empty")
    assert server.config_path.read_bytes() == before


async def test_gemini_patch_blank_key_deletes_the_entry(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config(GEMINI))
    assert (await call(server, "PATCH", "/gemini-api-key", {"index": 0, "value": {"api-key": " "}})) == OK
    assert [k.api_key for k in current(server).gemini_api_key] == ["AIza-two"]


async def test_gemini_delete(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config(GEMINI))
    # the odd corner: gemini answers 404 when a delete by key matched nothing
    assert (await call(server, "DELETE", "/gemini-api-key?api-key=nope")) == (404, {"error": "item not found"})
    assert (await call(server, "DELETE", "/gemini-api-key")) == (400, {"error": "missing api-key or index"})
    assert (await call(server, "DELETE", "/gemini-api-key?index=4")) == (400, {"error": "missing api-key or index"})
    assert (await call(server, "DELETE", "/gemini-api-key?api-key=AIza-one")) == OK
    assert [k.api_key for k in current(server).gemini_api_key] == ["AIza-two"]
    assert (await call(server, "DELETE", "/gemini-api-key?index=0")) == OK
    assert current(server).gemini_api_key == ()
    text = server.config_path.read_text()
    assert "gemini-api-key: []\ndebug: false\n" in text


# ------------------------------------------------------------------------------- claude / codex / vertex


CLAUDE = """\
claude-api-key:
  - api-key: "sk-ant-1"
    cloak:
      mode: always   # disguise
  - api-key: "sk-ant-1"
    base-url: "https://claude.example"
"""


async def test_claude_put_patch_delete(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config(CLAUDE))
    status, body = await call(server, "GET", "/claude-api-key")
    assert status == 200
    assert body["claude-api-key"][0] == {"api-key": "sk-ant-1", "base-url": "", "proxy-url": "", "models": None,
                                         "cloak": {"mode": "always"},
                                         "auth-index": stable_index("claude-api-key:+sk-ant-1")}
    # claude is not de-duplicated; models with neither name nor alias are dropped
    patch = {"index": 1, "value": {"models": [{"name": "claude-x", "alias": "cx"}, {"name": "", "alias": ""}]}}
    assert (await call(server, "PATCH", "/claude-api-key", patch)) == OK
    assert [m.alias for m in current(server).claude_api_key[1].models] == ["cx"]
    assert current(server).claude_api_key[0].cloak is not None  # untouched entry keeps its cloak
    assert "      mode: always   # disguise\n" in server.config_path.read_text()
    # claude never deletes on PATCH, and DELETE by an unknown key is a no-op ok
    assert (await call(server, "PATCH", "/claude-api-key", {"index": 0, "value": {"api-key": ""}})) == OK
    assert len(current(server).claude_api_key) == 2
    assert (await call(server, "DELETE", "/claude-api-key?api-key=nope")) == OK
    assert (await call(server, "DELETE", "/claude-api-key?api-key=sk-ant-1")) == OK
    assert len(current(server).claude_api_key) == 1


async def test_new_entries_are_written_with_their_models_list(proxyd_factory: Any) -> None:
    """As the reference writes a new list node whole: a key new to the list reads back with `models: []`, a key
    already in the file keeps its absent `models` (`null`)."""
    server = await proxyd_factory(config(CLAUDE))
    items = [{"api-key": "sk-ant-1", "cloak": {"mode": "always"}}, {"api-key": "sk-new", "base-url": "http://x"}]
    assert (await call(server, "PUT", "/claude-api-key", items)) == OK
    status, body = await call(server, "GET", "/claude-api-key")
    assert status == 200
    assert [e["models"] for e in body["claude-api-key"]] == [None, []]
    assert current(server).claude_api_key[1].models == ()
    assert "    models: []\n" in server.config_path.read_text()


CODEX = """\
codex-api-key:
  - api-key: "cx-1"
    base-url: "https://codex.example/v1"
"""


async def test_codex_rules(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config(CODEX))
    items = [{"api-key": "cx-1", "base-url": "https://codex.example/v1"}, {"api-key": "cx-nobase"}]
    assert (await call(server, "PUT", "/codex-api-key", items)) == OK
    assert [k.api_key for k in current(server).codex_api_key] == ["cx-1"]  # no base-url: dropped
    assert (await call(server, "DELETE", "/codex-api-key?api-key=nope")) == OK
    assert (await call(server, "PATCH", "/codex-api-key", {"match": "cx-1", "value": {"base-url": ""}})) == OK
    assert current(server).codex_api_key == ()


async def test_vertex_rules(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config())
    before = server.config_path.read_bytes()
    assert (await call(server, "PUT", "/vertex-api-key", [{"api-key": "v1"}, {"api-key": " "}])) == (
        400, {"error": "vertex-api-key[1].api-key is required"})
    assert server.config_path.read_bytes() == before
    items = [{"api-key": "v1", "base-url": "https://vertex.example",
              "models": [{"name": "gemini-2.5-pro", "alias": "vp"}, {"name": "half"}]}]
    assert (await call(server, "PUT", "/vertex-api-key", items)) == OK
    assert [m.alias for m in current(server).vertex_api_key[0].models] == ["vp"]
    assert (await call(server, "DELETE", "/vertex-api-key?api-key=nope")) == OK
    assert (await call(server, "PATCH", "/vertex-api-key", {"index": 0, "value": {"base-url": ""}})) == OK
    assert current(server).vertex_api_key == ()


# ------------------------------------------------------------------------------- openai-compatibility


async def test_openai_compatibility_new_entry_routes(proxyd_factory: Any, fake_openai: FakeOpenAIUpstream) -> None:
    server = await proxyd_factory(config())
    entry = {"name": "fresh", "base-url": fake_openai.base_url, "api-key-entries": [{"api-key": " sk-up-9 "}],
             "models": [{"name": "gpt-4o", "alias": "fresh-model"}]}
    assert (await call(server, "PUT", "/openai-compatibility", [entry])) == OK
    status, body = await call(server, "GET", "/openai-compatibility")
    assert status == 200
    assert body["openai-compatibility"] == [{"name": "fresh", "base-url": fake_openai.base_url,
                                             "api-key-entries": [{"api-key": "sk-up-9", "auth-index": stable_index(
                                                 f"openai-compatibility:{fake_openai.base_url}+sk-up-9")}],
                                             "models": [{"name": "gpt-4o", "alias": "fresh-model"}]}]
    async with aiohttp.ClientSession() as s, s.post(
            f"{server.v1}/chat/completions", headers={"Authorization": "Bearer key-one"},
            json={"model": "fresh-model", "messages": [{"role": "user", "content": "hi"}]}) as r:
        assert r.status == 200
    assert fake_openai.last.json["model"] == "gpt-4o"
    assert fake_openai.last.headers["Authorization"] == "Bearer sk-up-9"


COMPAT = """\
openai-compatibility:
  - name: "alpha"   # first provider
    base-url: "https://alpha.example/v1"
    api-keys: ["legacy-key"]
    models:
      - name: "m1"
        alias: "a1"
  - name: "beta"
    base-url: "https://beta.example/v1"
generative-language-api-key: ["legacy"]
"""


async def test_openai_compatibility_patch_delete(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config(COMPAT))
    patch = {"name": "beta", "value": {"prefix": "b", "models": [{"name": "m2", "alias": "b2"}],
                                       "headers": {"X-Team": "t"}}}
    assert (await call(server, "PATCH", "/openai-compatibility", patch)) == OK
    beta = current(server).openai_compatibility[1]
    assert beta.prefix == "b" and beta.headers == {"X-Team": "t"} and beta.models[0].alias == "b2"
    text = server.config_path.read_text()
    assert '  - name: "alpha"   # first provider\n' in text
    assert "legacy" not in text  # legacy keys are removed on persist (§1.1)
    assert (await call(server, "PATCH", "/openai-compatibility", {"name": "gamma", "value": {"prefix": "g"}})) == (
        404, {"error": "item not found"})
    assert (await call(server, "DELETE", "/openai-compatibility")) == (400, {"error": "missing name or index"})
    assert (await call(server, "DELETE", "/openai-compatibility?name=nope")) == OK
    assert (await call(server, "PATCH", "/openai-compatibility", {"index": 0, "value": {"base-url": ""}})) == OK
    assert [p.name for p in current(server).openai_compatibility] == ["beta"]
    assert (await call(server, "DELETE", "/openai-compatibility?index=0")) == OK
    assert current(server).openai_compatibility == ()


# ------------------------------------------------------------------------------ oauth-excluded-models


async def test_oauth_excluded_models(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config("oauth-excluded-models:\n  codex:   # codex exclusions\n    - gpt-5-mini\n"))
    assert (await call(server, "GET", "/oauth-excluded-models")) == (
        200, {"oauth-excluded-models": {"codex": ["gpt-5-mini"]}})
    assert (await call(server, "PATCH", "/oauth-excluded-models",
                       {"provider": " Claude ", "models": ["Claude-3-*", "claude-3-*"]})) == OK
    assert current(server).oauth_excluded_models == {"codex": ("gpt-5-mini",), "claude": ("claude-3-*",)}
    assert (await call(server, "PATCH", "/oauth-excluded-models", {"provider": "kimi", "models": []})) == (
        404, {"error": "provider not found"})
    assert (await call(server, "PATCH", "/oauth-excluded-models", {"models": []})) == (400, {"error": "invalid body"})
    assert (await call(server, "PATCH", "/oauth-excluded-models", {"provider": " "})) == (
        400, {"error": "invalid provider"})
    assert (await call(server, "PATCH", "/oauth-excluded-models", {"provider": "claude", "models": [" "]})) == OK
    assert "claude" not in current(server).oauth_excluded_models
    assert (await call(server, "DELETE", "/oauth-excluded-models")) == (400, {"error": "missing provider"})
    assert (await call(server, "DELETE", "/oauth-excluded-models?provider=iflow")) == (
        404, {"error": "provider not found"})
    assert (await call(server, "PUT", "/oauth-excluded-models", {"items": {"gemini-cli": ["g-*"]}})) == OK
    assert current(server).oauth_excluded_models == {"gemini-cli": ("g-*",)}
    assert (await call(server, "DELETE", "/oauth-excluded-models?provider=gemini-cli")) == OK
    assert "oauth-excluded-models" not in server.config_path.read_text()  # an empty map is removed
    assert (await call(server, "GET", "/oauth-excluded-models")) == (200, {"oauth-excluded-models": None})


async def test_oauth_excluded_models_put_raw_and_invalid(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config())
    assert (await call(server, "PUT", "/oauth-excluded-models", {"claude": ["A"], "codex": ["b"]})) == OK
    assert current(server).oauth_excluded_models == {"claude": ("a",), "codex": ("b",)}
    assert (await call(server, "PUT", "/oauth-excluded-models", {"claude": "a"})) == (400, {"error": "invalid body"})
    assert (await call(server, "PUT", "/oauth-excluded-models", {})) == OK
    assert current(server).oauth_excluded_models == {}


# ---------------------------------------------------------------------------------- oauth-model-alias


async def test_oauth_model_alias(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config("oauth-model-alias:\n  codex:\n    - name: gpt-5   # upstream id\n"
                                         "      alias: g5\n"))
    assert (await call(server, "GET", "/oauth-model-alias")) == (
        200, {"oauth-model-alias": {"codex": [{"name": "gpt-5", "alias": "g5"}]}})
    aliases = [{"name": "gemini-2.5-pro", "alias": "g25p", "fork": True}, {"name": "x", "alias": "X"},
               {"name": "y", "alias": "G25P"}]
    assert (await call(server, "PATCH", "/oauth-model-alias", {"provider": "Gemini-CLI", "aliases": aliases})) == OK
    assert current(server).oauth_model_alias["gemini-cli"][0].fork is True
    assert len(current(server).oauth_model_alias["gemini-cli"]) == 1  # name==alias and duplicate alias dropped
    assert "    - name: gpt-5   # upstream id\n" in server.config_path.read_text()
    assert (await call(server, "PATCH", "/oauth-model-alias", {"channel": " ", "aliases": []})) == (
        400, {"error": "invalid channel"})
    assert (await call(server, "PATCH", "/oauth-model-alias", {"channel": "kimi", "aliases": []})) == (
        404, {"error": "channel not found"})
    assert (await call(server, "DELETE", "/oauth-model-alias")) == (400, {"error": "missing channel"})
    assert (await call(server, "DELETE", "/oauth-model-alias?channel=qwen")) == (404, {"error": "channel not found"})
    assert (await call(server, "DELETE", "/oauth-model-alias?provider=gemini-cli")) == OK
    assert (await call(server, "DELETE", "/oauth-model-alias?channel=codex")) == OK
    assert current(server).oauth_model_alias == {}
    assert "oauth-model-alias: {}" in server.config_path.read_text()  # written as an explicit empty map


async def test_oauth_model_alias_put(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config())
    assert (await call(server, "PUT", "/oauth-model-alias", {"items": {"claude": [{"name": "a", "alias": "b"}]}})) == OK
    assert current(server).oauth_model_alias["claude"][0].alias == "b"
    assert (await call(server, "PUT", "/oauth-model-alias", {"claude": [{"name": 1}]})) == (
        400, {"error": "invalid body"})
    runtime_config = server.app[RUNTIME].current.config
    assert runtime_config.oauth_model_alias["claude"][0].name == "a"
