"""Auth-dir credentials: loading, provider formats, models, watching (management.md §2.4, §4; routing.md §3.2)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest

from proxyd.config import Config, OAuthModelAlias
from proxyd.credentials.authdir import (
    CODEX_OAUTH_BASE,
    UNSUPPORTED_MESSAGE,
    AuthDir,
    auth_index,
    build_file,
    codex_section,
    provider_of,
)
from proxyd.fsutil import atomic_write_text
from proxyd.keys import RUNTIME
from proxyd.runtime import Runtime

CLIENT_KEY = "client-key"


def jwt(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


def codex_token(plan: str = "plus", account: str = "acc-123") -> str:
    return jwt({"email": "alice@example.com", "https://api.openai.com/auth": {
        "chatgpt_plan_type": plan, "chatgpt_account_id": account}})


def load(data: Any, name: str = "f.json", config: Config | None = None):
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return build_file(Path("/tmp/auth") / name, name, raw, time.time(), config or Config())


def write(directory: Path, name: str, data: Any) -> Path:
    path = directory / name
    atomic_write_text(path, data if isinstance(data, str) else json.dumps(data))
    return path


# ------------------------------------------------------------------------------------------ unit: formats


def test_claude_oauth_file_becomes_a_bearer_credential_with_the_claude_catalogue() -> None:
    file = load({"type": "claude", "email": "bob@example.com", "access_token": "sk-ant-oat-1",
                 "refresh_token": "r", "priority": "4", "prefix": "/team/", "proxy_url": "socks5://127.0.0.1:1"})
    assert not file.error
    (entry,) = file.entries
    cred = entry.credential
    assert (cred.id, cred.kind, cred.provider, cred.base_url) == ("f.json", "claude", "claude",
                                                                  "https://api.anthropic.com")
    assert cred.api_key == "sk-ant-oat-1"
    assert cred.options["auth_kind"] == "oauth"
    assert (cred.priority, cred.prefix, cred.proxy_url) == (4, "team", "socks5://127.0.0.1:1")
    assert "claude-sonnet-4-5-20250929" in {m.exposed for m in cred.models}
    assert (entry.status, entry.label, entry.email) == ("active", "bob@example.com", "bob@example.com")


def test_base_url_override_and_global_proxy_fallback() -> None:
    config = Config(proxy_url="http://proxy.local:3128")
    file = load({"type": "claude", "access_token": "t", "base_url": "http://127.0.0.1:9/"}, config=config)
    cred = file.entries[0].credential
    assert cred.base_url == "http://127.0.0.1:9"
    assert cred.proxy_url == "http://proxy.local:3128"
    direct = load({"type": "claude", "access_token": "t", "proxy_url": "direct"}, config=config)
    assert direct.entries[0].credential.proxy_url == "direct"


@pytest.mark.parametrize(("plan", "section"), [
    ("plus", "codex-plus"), ("pro", "codex-pro"), ("team", "codex-team"), ("business", "codex-team"),
    ("go", "codex-team"), ("free", "codex-free"), ("", "codex-pro"), ("enterprise", "codex-pro"),
])
def test_codex_plan_picks_the_catalogue_section(plan: str, section: str) -> None:
    assert codex_section(plan) == section


def test_codex_oauth_file_websockets_flag() -> None:
    on = load({"type": "codex", "access_token": "at", "id_token": codex_token(), "websockets": True})
    off = load({"type": "codex", "access_token": "at", "id_token": codex_token(), "websockets": "yes"})
    assert on.entries[0].credential.options["websockets"] is True
    assert off.entries[0].credential.options["websockets"] is False  # only a JSON true turns it on


def test_codex_oauth_file_reads_plan_and_account_from_the_id_token() -> None:
    free = load({"type": "codex", "access_token": "at", "id_token": codex_token("free", "acc-9"),
                 "email": "a@b.c"})
    cred = free.entries[0].credential
    assert cred.base_url == CODEX_OAUTH_BASE
    assert cred.options["account_id"] == "acc-9"
    assert cred.options["plan_type"] == "free"
    free_models = {m.exposed for m in cred.models}
    plus = load({"type": "codex", "access_token": "at", "id_token": codex_token("plus"), "account_id": "acc-x"})
    plus_models = {m.exposed for m in plus.entries[0].credential.models}
    assert "gpt-5.3-codex-spark" in plus_models and "gpt-5.3-codex-spark" not in free_models
    assert plus.entries[0].credential.options["account_id"] == "acc-x"  # the file's account_id wins
    assert plus.entries[0].id_token is not None and plus.entries[0].id_token["chatgpt_plan_type"] == "plus"


def test_excluded_models_from_file_and_config_and_oauth_aliases() -> None:
    config = Config(
        oauth_excluded_models={"claude": ("claude-3-*",)},
        oauth_model_alias={"claude": (OAuthModelAlias(name="claude-sonnet-4-5-20250929", alias="sonnet"),
                                      OAuthModelAlias(name="claude-opus-4-6", alias="opus", fork=True))},
    )
    file = load({"type": "claude", "access_token": "t", "excluded_models": ["*haiku*"]}, config=config)
    exposed = {m.exposed: m.upstream for m in file.entries[0].credential.models}
    assert not any("haiku" in m for m in exposed)
    assert not any(m.startswith("claude-3-") for m in exposed)
    assert exposed["sonnet"] == "claude-sonnet-4-5-20250929"
    assert "claude-sonnet-4-5-20250929" not in exposed  # replaced by its alias
    assert exposed["opus"] == "claude-opus-4-6" and exposed["claude-opus-4-6"] == "claude-opus-4-6"  # fork


def test_disabled_file_registers_no_models() -> None:
    file = load({"type": "claude", "access_token": "t", "disabled": True})
    (entry,) = file.entries
    assert entry.disabled and entry.status == "disabled"
    assert entry.credential.models == ()


@pytest.mark.parametrize("kind", ["gemini", "qwen", "iflow", "antigravity", "vertex", "kimi", "my-compat"])
def test_kinds_without_a_provider_are_listed_but_not_servable(kind: str) -> None:
    file = load({"type": kind, "email": "x@y.z", "access_token": "t", "project_id": "p1"})
    (entry,) = file.entries
    assert not entry.servable
    assert (entry.status, entry.status_message) == ("error", UNSUPPORTED_MESSAGE)
    assert entry.credential.models == ()
    assert entry.provider == provider_of(kind)


def test_gemini_is_gemini_cli_and_multi_project_files_yield_virtual_children() -> None:
    assert provider_of("Gemini") == "gemini-cli"
    file = load({"type": "gemini", "email": "bob@example.com", "project_id": "p-one, p two"}, name="g.json")
    primary, one, two = file.entries
    assert primary.disabled and not primary.runtime_only
    assert (one.id, one.label, one.runtime_only) == ("g.json::p-one", "bob@example.com [p-one]", True)
    assert two.id == "g.json::p_two"
    assert one.account == "bob@example.com (p-one)"


@pytest.mark.parametrize(("raw", "reason"), [
    (b"{not json", "invalid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"email": "x"}', "missing string field 'type'"),
    (b"   ", "empty file"),
    (b"\xff\xfe", "not UTF-8"),
])
def test_broken_files_carry_the_reason(raw: bytes, reason: str) -> None:
    file = load(raw)
    assert reason in file.error
    assert file.entries == ()


def test_auth_index_is_the_first_8_bytes_of_sha256_of_the_seed() -> None:
    assert auth_index("file:a.json") == __import__("hashlib").sha256(b"file:a.json").hexdigest()[:16]


# ------------------------------------------------------------------------------------------ AuthDir


def test_load_skips_broken_and_non_json_files_and_subdirectories(tmp_path: Path) -> None:
    write(tmp_path, "good.json", {"type": "claude", "access_token": "t"})
    write(tmp_path, "bad.json", "{oops")
    write(tmp_path, "notes.txt", "x")
    write(tmp_path, "x.cookie", "x")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "nested.json", {"type": "claude", "access_token": "t"})
    auth_dir = AuthDir(tmp_path, Config())
    auth_dir.load()
    assert sorted(auth_dir.files) == ["bad.json", "good.json"]
    assert [c.id for c in auth_dir.credentials()] == ["good.json"]
    assert "invalid JSON" in auth_dir.problems()["bad.json"]


def test_missing_directory_is_empty(tmp_path: Path) -> None:
    auth_dir = AuthDir(tmp_path / "nope", Config())
    auth_dir.load()
    assert auth_dir.credentials() == ()


async def test_refresh_detects_changes_and_skips_unchanged_hashes(tmp_path: Path) -> None:
    write(tmp_path, "a.json", {"type": "claude", "access_token": "t1"})
    auth_dir = AuthDir(tmp_path, Config())
    auth_dir.load()
    calls: list[int] = []
    auth_dir.subscribe(lambda: calls.append(1))
    assert not await auth_dir.refresh(["a.json"])  # same content: hash match, no notification
    write(tmp_path, "a.json", {"type": "claude", "access_token": "t2"})
    assert await auth_dir.refresh(["a.json"])
    assert auth_dir.credentials()[0].api_key == "t2"
    (tmp_path / "a.json").unlink()
    assert await auth_dir.refresh(["a.json"])
    assert auth_dir.credentials() == ()
    assert len(calls) == 2


def test_runtime_keeps_state_of_unchanged_file_credentials(tmp_path: Path) -> None:
    write(tmp_path, "a.json", {"type": "claude", "access_token": "t1"})
    write(tmp_path, "b.json", {"type": "claude", "access_token": "t2"})
    auth_dir = AuthDir(tmp_path, Config())
    auth_dir.load()
    runtime = Runtime.build(Config(), file_credentials=auth_dir.credentials())
    state = runtime.manager.get("a.json")
    assert state is not None
    state.successes = 5
    write(tmp_path, "b.json", {"type": "claude", "access_token": "t3"})
    asyncio.run(auth_dir.refresh(["b.json"]))
    runtime = runtime.with_file_credentials(auth_dir.credentials())
    assert runtime.manager.get("a.json").successes == 5  # type: ignore[union-attr]
    assert runtime.registry.routes("claude-sonnet-4-5-20250929")


def test_disabled_files_are_marked_disabled_in_the_manager(tmp_path: Path) -> None:
    write(tmp_path, "a.json", {"type": "claude", "access_token": "t1", "disabled": True})
    auth_dir = AuthDir(tmp_path, Config())
    auth_dir.load()
    runtime = Runtime.build(Config(), file_credentials=auth_dir.credentials())
    assert runtime.manager.get("a.json").disabled  # type: ignore[union-attr]
    assert not runtime.registry.routes("claude-sonnet-4-5-20250929")


# ------------------------------------------------------------------------------------------ end to end


def server_config(auth_dir: Path, extra: str = "") -> str:
    return f"""\
host: "127.0.0.1"
request-retry: 0
auth-dir: "{auth_dir}"
api-keys:
  - "{CLIENT_KEY}"
{extra}"""


async def claude_call(server: Any, model: str = "claude-sonnet-4-5-20250929") -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(
        f"{server.v1}/messages", headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"},
        json={"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
    ) as resp:
        return resp.status, await resp.json(content_type=None)


async def responses_call(server: Any, model: str = "gpt-5") -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(
        f"{server.v1}/responses", headers={"Authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": model, "input": "hi"},
    ) as resp:
        return resp.status, await resp.json(content_type=None)


async def wait_until(predicate: Any, within: float = 2.0) -> float:
    """Poll `predicate` (async) until true; returns the seconds it took, fails after `within`."""
    start = time.monotonic()
    while True:
        if await predicate():
            return time.monotonic() - start
        if time.monotonic() - start > within:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(0.05)


async def test_claude_oauth_file_routes_to_the_upstream_with_a_bearer_token(
        tmp_path: Path, proxyd_factory: Any, fake_claude: Any) -> None:
    auth = tmp_path / "auth"
    auth.mkdir()
    write(auth, "claude-bob@example.com.json", {"type": "claude", "email": "bob@example.com",
                                                "access_token": "sk-ant-oat01-bob", "base_url": fake_claude.base_url})
    server = await proxyd_factory(server_config(auth))
    status, body = await claude_call(server)
    assert status == 200, body
    last = fake_claude.last
    assert last.auth_scheme == "bearer" and last.bearer == "sk-ant-oat01-bob"
    assert "oauth-2025-04-20" in last.anthropic_beta


async def test_codex_oauth_file_sends_account_and_originator_headers(
        tmp_path: Path, proxyd_factory: Any, fake_codex: Any) -> None:
    auth = tmp_path / "auth"
    auth.mkdir()
    write(auth, "codex-alice@example.com-plus.json", {
        "type": "codex", "email": "alice@example.com", "access_token": "codex-at", "account_id": "acc-123",
        "id_token": codex_token("plus", "acc-123"), "base_url": fake_codex.base_url})
    server = await proxyd_factory(server_config(auth))
    status, body = await responses_call(server)
    assert status == 200, body
    last = fake_codex.last
    assert last.bearer == "codex-at"
    assert last.account_id == "acc-123"
    assert last.originator == "codex-tui"


async def test_files_added_changed_and_removed_take_effect_within_2s(
        tmp_path: Path, proxyd_factory: Any, fake_claude: Any) -> None:
    auth = tmp_path / "auth"
    auth.mkdir()
    server = await proxyd_factory(server_config(auth))
    status, _ = await claude_call(server)
    assert status == 404  # no credential yet

    write(auth, "c.json", {"type": "claude", "access_token": "tok-1", "base_url": fake_claude.base_url})

    async def served() -> bool:
        return (await claude_call(server))[0] == 200

    assert await wait_until(served) < 2.0
    assert fake_claude.last.bearer == "tok-1"

    write(auth, "c.json", {"type": "claude", "access_token": "tok-2", "base_url": fake_claude.base_url})

    async def new_token() -> bool:
        status, _ = await claude_call(server)
        return status == 200 and fake_claude.last.bearer == "tok-2"

    assert await wait_until(new_token) < 2.0

    (auth / "c.json").unlink()

    async def gone() -> bool:
        return (await claude_call(server))[0] == 404

    assert await wait_until(gone) < 2.0
    assert server.app[RUNTIME].auth_dir.files == {}


async def test_a_broken_file_is_skipped_and_reported_never_fatal(
        tmp_path: Path, proxyd_factory: Any, fake_claude: Any) -> None:
    auth = tmp_path / "auth"
    auth.mkdir()
    write(auth, "broken.json", "{ definitely not json")
    write(auth, "ok.json", {"type": "claude", "access_token": "tok", "base_url": fake_claude.base_url})
    server = await proxyd_factory(server_config(auth))
    assert (await claude_call(server))[0] == 200
    holder = server.app[RUNTIME]
    assert "invalid JSON" in holder.auth_dir.problems()["broken.json"]
    # a good file turning bad is dropped, the others keep serving
    write(auth, "ok.json", "{ half written")

    async def dropped() -> bool:
        return "ok.json" in holder.auth_dir.problems()

    await wait_until(dropped)

    # the problem is recorded by the scan thread; the credential set is swapped by the listeners right after
    async def unrouted() -> bool:
        return (await claude_call(server))[0] == 404

    await wait_until(unrouted)


async def test_config_exclusions_apply_to_auth_files_on_reload(
        tmp_path: Path, proxyd_factory: Any, fake_claude: Any) -> None:
    auth = tmp_path / "auth"
    auth.mkdir()
    write(auth, "c.json", {"type": "claude", "access_token": "tok", "base_url": fake_claude.base_url})
    server = await proxyd_factory(server_config(auth))
    assert (await claude_call(server))[0] == 200
    atomic_write_text(server.config_path, server_config(auth, 'oauth-excluded-models:\n  claude: ["*sonnet-4-5*"]\n'))

    async def excluded() -> bool:
        return (await claude_call(server))[0] == 404

    await wait_until(excluded, within=3.0)
    registry = server.app[RUNTIME].current.registry
    assert registry.routes("claude-opus-4-6")


def test_file_credentials_stay_out_of_the_config_id_space() -> None:
    file = load({"type": "claude", "access_token": "t"}, name="claude-a.json")
    cred = file.entries[0].credential
    assert cred.source == "file:claude-a.json"
    assert attrs.evolve(cred).id == "claude-a.json"
