"""OAuth login error paths (management.md §3.12): oauth-callback validation order and bodies, get-auth-status,
per-provider failure statuses (callback error, state mismatch, timeout, exchange failure), TTL expiry, the
callback routes' hand-off rules, shutdown, and the building blocks (sessions, hand-off file, PKCE, file names).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from fakes.oauth import FakeOAuthServer
from test_authdir import server_config
from test_oauth_flows import HASH, get, mgmt, start, wait_done

from proxyd.app import create_app
from proxyd.keys import RUNTIME
from proxyd.oauth import OAUTH
from proxyd.oauth.codex import file_name as codex_file_name
from proxyd.oauth.handoff import handoff_path, normalize_provider, read_handoff, valid_state, write_handoff
from proxyd.oauth.pkce import PKCE, challenge_of
from proxyd.oauth.sessions import SessionStore


@pytest.fixture
async def fake_oauth() -> AsyncIterator[FakeOAuthServer]:
    async with FakeOAuthServer() as fake:
        yield fake


@pytest.fixture
def auth(tmp_path: Path) -> Path:
    directory = tmp_path / "auth"
    directory.mkdir()
    return directory


def err(message: str) -> dict[str, str]:
    return {"status": "error", "error": message}


# ------------------------------------------------------------------------------------ oauth-callback


async def test_routes_need_the_management_key(proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    for method, path in (("GET", "/anthropic-auth-url"), ("GET", "/get-auth-status"), ("POST", "/iflow-auth-url"),
                         ("GET", "/kimi-auth-url"), ("DELETE", "/oauth-session?state=abc")):
        status, _ = await mgmt(server, method, path, key=None, body={})
        assert status == 401, path
    # oauth-callback is served without the key (the recorded build), the pending state being the secret
    assert await mgmt(server, "POST", "/oauth-callback", key=None, body={"provider": "codex"}) == (
        400, err("state is required"))
    assert await mgmt(server, "GET", "/oauth-callback?state=unknown-state&code=x&provider=codex", key=None) == (
        404, err("unknown or expired state"))


async def test_oauth_callback_is_404_without_a_management_api(
        proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server = await proxyd_factory(server_config(auth, ""))  # no secret-key: no management API at all
    for method in ("GET", "POST"):
        async with aiohttp.ClientSession() as session, session.request(
                method, f"{server.url}/v0/management/oauth-callback?state=s&code=c", json={"state": "s"}) as resp:
            assert resp.status == 404, method


async def test_oauth_callback_validation_order(proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, service = await start(proxyd_factory, auth, fake_oauth)
    _, started = await mgmt(server, "GET", "/anthropic-auth-url")
    state = started["state"]

    async def post(body: Any) -> tuple[int, Any]:
        return await mgmt(server, "POST", "/oauth-callback", body=body)

    assert await post(["not", "an", "object"]) == (400, err("invalid body"))
    assert await post({"provider": 5}) == (400, err("invalid body"))
    assert await post({"provider": "kimi", "state": state, "code": "c"}) == (400, err("unsupported provider"))
    assert await post({"provider": "nope", "state": state, "code": "c"}) == (400, err("unsupported provider"))
    assert await post({"provider": "nope"}) == (400, err("state is required"))
    for bad in ("bad/state", "a..b", "x" * 129, "sp ace"):
        assert await post({"provider": "claude", "state": bad, "code": "c"}) == (400, err("invalid state")), bad
    assert await post({"provider": "claude", "state": state}) == (400, err("code or error is required"))
    assert await post({"provider": "claude", "state": "unknown-state", "code": "c"}) == (
        404, err("unknown or expired state"))
    assert await post({"provider": "codex", "state": state, "code": "c"}) == (
        400, err("provider does not match state"))
    # explicit fields win over the redirect URL; error falls back to error_description
    redirect = "http://localhost:54545/callback?state=other&error_description=denied+by+user"
    assert await post({"provider": "anthropic", "state": state, "redirect_url": redirect}) == (200, {"status": "ok"})
    assert await wait_done(server, state) == err("Bad request")
    assert await post({"provider": "claude", "state": state, "code": "c"}) == (409, err("Bad request"))
    assert service.sessions.get(state) is not None


async def test_oauth_callback_provider_defaults_to_the_sessions(
        proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    _, started = await mgmt(server, "GET", "/anthropic-auth-url")
    state = started["state"]
    assert await mgmt(server, "GET", f"/oauth-callback?state={state}&code=the-code", key=None) == (
        200, {"status": "ok"})
    assert await wait_done(server, state) == {"status": "ok"}
    assert (auth / f"claude-{fake_oauth.email}.json").exists()
    # a completed login stays known for a minute: a second callback is refused as such
    assert await mgmt(server, "POST", "/oauth-callback", body={"state": state, "code": "again"}) == (
        409, err("oauth flow is already completed"))


async def test_oauth_callback_writes_the_hand_off_file(
        proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, _ = await start(proxyd_factory, auth, fake_oauth, callback_timeout=30, callback_poll=10)
    _, started = await mgmt(server, "GET", "/codex-auth-url")
    state = started["state"]
    await asyncio.sleep(0.05)  # the task made its first (empty) check and sleeps for 10 s
    redirect = f"http://localhost:1455/auth/callback?code=abc&state={state}"
    assert await mgmt(server, "POST", "/oauth-callback", body={"provider": "codex", "redirect_url": redirect}) == (
        200, {"status": "ok"})
    path = auth / f".oauth-codex-{state}.oauth"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"code": "abc", "state": state, "error": ""}
    # the hand-off file is not an auth file
    _, listing = await mgmt(server, "GET", "/auth-files")
    assert listing["files"] == []


# ------------------------------------------------------------------------------------ get-auth-status


async def test_get_auth_status_answers(proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    assert await mgmt(server, "GET", "/get-auth-status") == (200, {"status": "ok"})
    assert await mgmt(server, "GET", "/get-auth-status?state=unknown-state") == (
        200, err("unknown or expired state"))
    assert await mgmt(server, "GET", "/get-auth-status?state=bad/state") == (400, err("invalid state"))
    _, started = await mgmt(server, "GET", "/iflow-auth-url")
    assert await mgmt(server, "GET", f"/get-auth-status?state={started['state']}") == (200, {"status": "wait"})


async def test_cancel_oauth_session(proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, service = await start(proxyd_factory, auth, fake_oauth)
    assert await mgmt(server, "DELETE", "/oauth-session") == (400, err("missing state"))
    assert await mgmt(server, "DELETE", "/oauth-session?state=bad/state") == (400, err("invalid state"))
    assert await mgmt(server, "DELETE", "/oauth-session?state=unknown-state") == (
        200, {"status": "ok", "cancelled": False})
    _, started = await mgmt(server, "GET", "/anthropic-auth-url")
    state = started["state"]
    assert await mgmt(server, "DELETE", f"/oauth-session?state={state}") == (200, {"status": "ok", "cancelled": True})
    assert await mgmt(server, "GET", f"/get-auth-status?state={state}") == (200, err("unknown or expired state"))
    # a callback arriving afterwards finds no login, and the waiting task ends without saving anything
    await get(f"{server.url}/anthropic/callback?code=the-code&state={state}")
    assert not (auth / f".oauth-anthropic-{state}.oauth").exists()
    for _ in range(100):
        if not service.tasks:
            break
        await asyncio.sleep(0.05)
    assert not service.tasks
    assert not list(auth.glob("*.json"))  # noqa: ASYNC240 - a tmp dir listing
    assert await mgmt(server, "DELETE", f"/oauth-session?state={state}") == (
        200, {"status": "ok", "cancelled": False})


async def test_expired_sessions_read_as_ok_and_unknown(
        proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, service = await start(proxyd_factory, auth, fake_oauth)
    service.sessions.ttl = 0.2
    _, started = await mgmt(server, "GET", "/anthropic-auth-url")
    state = started["state"]
    await asyncio.sleep(0.3)
    assert await mgmt(server, "GET", f"/get-auth-status?state={state}") == (200, err("unknown or expired state"))
    assert await mgmt(server, "POST", "/oauth-callback", body={"provider": "claude", "state": state, "code": "x"}) == (
        404, err("unknown or expired state"))
    await asyncio.sleep(0.2)
    assert not service.tasks  # the waiting task noticed and ended


# ------------------------------------------------------------------------------------ failure statuses


@pytest.mark.parametrize(("auth_path", "callback", "message"), [
    ("/anthropic-auth-url", "anthropic", "Timeout waiting for OAuth callback"),
    ("/codex-auth-url", "codex", "Timeout waiting for OAuth callback"),
    ("/gemini-cli-auth-url", "google", "OAuth flow timed out"),
    ("/antigravity-auth-url", "antigravity", "OAuth flow timed out"),
    ("/iflow-auth-url", "iflow", "Authentication failed"),
])
async def test_timeout_status(proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer, auth_path: str,
                              callback: str, message: str) -> None:
    server, _ = await start(proxyd_factory, auth, fake_oauth, callback_timeout=0.2)
    _, started = await mgmt(server, "GET", auth_path)
    assert await wait_done(server, started["state"]) == err(message)
    # a late callback finds no pending session: nothing is written, the page is still shown
    status, _, page = await get(f"{server.url}/{callback}/callback?code=the-code&state={started['state']}")
    assert status == 200 and "Authentication successful!" in page
    assert not os.listdir(auth)


@pytest.mark.parametrize(("auth_path", "provider", "message"), [
    ("/anthropic-auth-url", "anthropic", "Bad request"),
    ("/codex-auth-url", "codex", "Bad Request"),
    ("/gemini-cli-auth-url", "gemini", "Authentication failed"),
    ("/antigravity-auth-url", "antigravity", "Authentication failed"),
])
async def test_provider_error_status(proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer, auth_path: str,
                                     provider: str, message: str) -> None:
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    _, started = await mgmt(server, "GET", auth_path)
    path = {"anthropic": "anthropic", "codex": "codex", "gemini": "google", "antigravity": "antigravity"}[provider]
    await get(f"{server.url}/{path}/callback?error=access_denied&state={started['state']}")
    assert await wait_done(server, started["state"]) == err(message)


async def test_state_mismatch_in_the_hand_off_file(
        proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    _, started = await mgmt(server, "GET", "/anthropic-auth-url")
    state = started["state"]
    path = handoff_path(auth, "anthropic", state)
    path.write_text(json.dumps({"code": "the-code", "state": "someone-else", "error": ""}))
    assert await wait_done(server, state) == err("State code error")
    assert not path.exists()
    assert "/claude/v1/oauth/token" not in fake_oauth.paths()


async def test_exchange_failure_status(proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    _, started = await mgmt(server, "GET", "/anthropic-auth-url")
    await get(f"{server.url}/anthropic/callback?code=wrong-code&state={started['state']}")
    assert await wait_done(server, started["state"]) == err("Failed to exchange authorization code for tokens")
    _, started = await mgmt(server, "GET", "/gemini-cli-auth-url?project_id=p")
    await get(f"{server.url}/google/callback?code=wrong-code&state={started['state']}")
    assert await wait_done(server, started["state"]) == err("Failed to exchange token")
    assert not [n for n in os.listdir(auth) if n.endswith(".json")]


async def test_save_failure_status(proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, _ = await start(proxyd_factory, auth, fake_oauth)

    async def refuse(*_: Any, **__: Any) -> None:
        raise PermissionError(13, "Permission denied")

    auth_dir = server.app[RUNTIME].auth_dir
    auth_dir.write = refuse  # type: ignore[method-assign]
    _, started = await mgmt(server, "GET", "/codex-auth-url")
    await get(f"{server.url}/codex/callback?code=the-code&state={started['state']}")
    assert await wait_done(server, started["state"]) == err("Failed to save authentication tokens")


async def test_a_finished_login_ends_the_other_sessions_of_its_provider(
        proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, service = await start(proxyd_factory, auth, fake_oauth)
    _, first = await mgmt(server, "GET", "/anthropic-auth-url")
    _, second = await mgmt(server, "GET", "/anthropic-auth-url")
    _, other = await mgmt(server, "GET", "/codex-auth-url")
    await get(f"{server.url}/anthropic/callback?code=the-code&state={second['state']}")
    assert await wait_done(server, second["state"]) == {"status": "ok"}
    ended = service.sessions.get(first["state"])
    assert ended is not None and ended.completed and not ended.pending
    assert await mgmt(server, "GET", f"/get-auth-status?state={first['state']}") == (200, {"status": "ok"})
    assert service.sessions.is_pending(other["state"], "codex")


# ------------------------------------------------------------------------------------ callback routes


async def test_callback_routes_only_hand_off_to_their_own_pending_provider(
        proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, _ = await start(proxyd_factory, auth, fake_oauth, callback_timeout=30, callback_poll=10)
    _, started = await mgmt(server, "GET", "/codex-auth-url")
    state = started["state"]
    await asyncio.sleep(0.05)
    for url in (f"/anthropic/callback?code=x&state={state}", "/codex/callback?code=x&state=nostate",
                "/codex/callback?code=x&state=..", "/codex/callback?error=access_denied"):
        status, headers, _ = await get(f"{server.url}{url}")
        assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8", url
    assert not os.listdir(auth)
    await get(f"{server.url}/codex/callback?code=x&state={state}")
    assert (auth / f".oauth-codex-{state}.oauth").exists()


async def test_generic_callback_route(proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    status, headers, body = await get(f"{server.url}/callback")
    assert (status, json.loads(body)) == (400, {"error": "code or error is required"})
    assert headers["Cache-Control"] == "no-store"
    status, _, body = await get(f"{server.url}/callback?code=abc&state=nostate")
    assert (status, json.loads(body)) == (400, {"error": "invalid or expired OAuth callback"})
    _, started = await mgmt(server, "GET", "/antigravity-auth-url")
    status, _, page = await get(f"{server.url}/callback?code=the-code&state={started['state']}")
    assert status == 200 and "Authentication successful!" in page
    assert await wait_done(server, started["state"]) == {"status": "ok"}
    assert (auth / "antigravity-bob@example.com.json").exists()


# ------------------------------------------------------------------------------------ shutdown


async def test_shutdown_cancels_running_logins(tmp_config: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    path = tmp_config(server_config(auth, f'remote-management:\n  secret-key: "{HASH}"\n'))
    server = TestServer(create_app(path, watch=False), host="127.0.0.1")
    await server.start_server()
    service = server.app[OAUTH]
    service.endpoints = fake_oauth.endpoints()
    try:
        for route in ("/anthropic-auth-url", "/qwen-auth-url"):
            status, _ = await mgmt(server_like(server), "GET", route)
            assert status == 200
        fake_oauth.pending_polls = 10_000
        tasks = service.tasks
        assert len(tasks) == 2
    finally:
        await server.close()
    assert all(t.done() for t in tasks)
    assert not service.tasks


class server_like:  # the shape mgmt() expects
    def __init__(self, server: TestServer) -> None:
        self.url = f"http://127.0.0.1:{server.port}"


# ------------------------------------------------------------------------------------ building blocks


def test_session_store_ttl_error_and_bound() -> None:
    now = [0.0]
    store = SessionStore(ttl=10, limit=3, clock=lambda: now[0])
    store.register("a", "codex")
    assert store.is_pending("a") and store.is_pending("a", "codex") and not store.is_pending("a", "gemini")
    now[0] = 9
    store.set_error("a", "")
    assert store.get("a").status == "Authentication failed" and not store.is_pending("a")  # type: ignore[union-attr]
    now[0] = 18  # the error stays visible for another TTL from when it was set
    assert store.get("a") is not None
    now[0] = 19.5
    assert store.get("a") is None
    for state in ("s1", "s2", "s3", "s4"):
        store.register(state, "qwen")
    assert len(store) == 3 and store.get("s1") is None  # the oldest went first
    store.set_error("s2", "denied")
    assert store.complete_provider("qwen") == 3 and not any(store.is_pending(s) for s in ("s2", "s3", "s4"))
    done = store.get("s2")
    assert done is not None and done.completed and done.status == ""
    store.set_error("s2", "late")  # a completed login keeps its result
    assert store.get("s2").status == ""  # type: ignore[union-attr]
    assert not store.cancel("s3")  # only pending logins can be cancelled
    now[0] += 10.5  # completed sessions are forgotten after completed_ttl (here capped by the TTL)
    assert len(store) == 0


def test_session_store_completed_ttl_and_cancel() -> None:
    now = [0.0]
    store = SessionStore(ttl=600, clock=lambda: now[0])
    assert store.completed_ttl == 60
    store.register("a", "codex")
    store.register("b", "codex")
    store.complete("a")
    assert store.get("a").completed  # type: ignore[union-attr]
    assert store.cancel("b") and store.get("b") is None and not store.cancel("b")
    now[0] = 59
    assert store.get("a") is not None
    now[0] = 61
    assert store.get("a") is None


def test_hand_off_file_and_names(tmp_path: Path) -> None:
    assert normalize_provider(" Claude ") == "anthropic" and normalize_provider("google") == "gemini"
    assert normalize_provider("anti-gravity") == "antigravity" and normalize_provider("kimi") is None
    assert valid_state("gem-123.abc_X") and not valid_state("") and not valid_state("a..b")
    assert not valid_state("x" * 129) and valid_state("x" * 128) and not valid_state("a/b")
    path = write_handoff(tmp_path / "new-dir", "gemini", "gem-1", " c ", "")
    assert path.name == ".oauth-gemini-gem-1.oauth" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_handoff(path) == {"code": "c", "state": "gem-1", "error": ""}
    assert not path.exists() and read_handoff(path) is None
    path.write_text("[1]")
    assert read_handoff(path) == {"code": "", "state": "", "error": ""}
    with pytest.raises(ValueError, match="invalid state"):
        write_handoff(tmp_path, "codex", "../x", "c", "")


def test_pkce_and_codex_file_names() -> None:
    pkce = PKCE.generate()
    assert len(pkce.verifier) == 128 and pkce.challenge == challenge_of(pkce.verifier)
    assert "=" not in pkce.challenge and pkce.verifier not in repr(pkce)
    assert len(PKCE.generate(32).verifier) == 43
    # RFC 7636 appendix B
    assert challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert codex_file_name("a@b.c", "", "") == "codex-a@b.c.json"
    assert codex_file_name("a@b.c", "Pro Plan", "") == "codex-a@b.c-pro-plan.json"
    assert codex_file_name("a/b@c", "plus", "") == "codex-a_b@c-plus.json"
