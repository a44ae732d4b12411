"""OAuth logins end to end against the fake OAuth servers (management.md §3.12, routing.md §3.4-3.5).

Each provider: auth-url → callback (main-server route, `POST /oauth-callback`, or the device poll) → token
exchange at the fake → token file in auth-dir (name, fields, mode 0600) → get-auth-status ok. Claude and Codex
files then serve a request through the fake upstream.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import bcrypt
import pytest
from fakes.oauth import FakeOAuthServer, free_port
from test_authdir import claude_call, responses_call, server_config

from proxyd.credentials import authdir
from proxyd.oauth import OAUTH, OAuthService

KEY = "oauth-mgmt-key"
HASH = bcrypt.hashpw(KEY.encode(), bcrypt.gensalt(rounds=4)).decode()
MGMT = "/v0/management"
SECRETS = ("the-code", "sk-ant-oat01-access", "sk-ant-ort01-refresh", "codex-access", "ya29.access",
           "iflow-access", "sk-iflow-key", "qwen-access", "kimi-access")


@pytest.fixture
async def fake_oauth() -> AsyncIterator[FakeOAuthServer]:
    async with FakeOAuthServer() as fake:
        yield fake


@pytest.fixture
def auth(tmp_path: Path) -> Path:
    directory = tmp_path / "auth"
    directory.mkdir()
    return directory


async def start(proxyd_factory: Any, auth: Path, fake: FakeOAuthServer, **overrides: Any) -> tuple[Any, OAuthService]:
    extra = f'remote-management:\n  secret-key: "{HASH}"\n'
    server = await proxyd_factory(server_config(auth, extra))
    service = server.app[OAUTH]
    service.endpoints = fake.endpoints(**overrides)
    return server, service


async def mgmt(server: Any, method: str, path: str, *, body: Any = None, key: str | None = KEY) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as session, session.request(
            method, f"{server.url}{MGMT}{path}", json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def get(url: str, **kwargs: Any) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as session, session.get(url, **kwargs) as resp:
        return resp.status, dict(resp.headers), await resp.text()


async def wait_done(server: Any, state: str, within: float = 5.0) -> dict[str, Any]:
    """Poll get-auth-status until it stops answering `wait`."""
    deadline = time.monotonic() + within
    while True:
        status, body = await mgmt(server, "GET", f"/get-auth-status?state={state}")
        assert status == 200
        if body["status"] != "wait":
            return dict(body)
        if time.monotonic() > deadline:
            pytest.fail(f"login {state} still pending after {within} s")
        await asyncio.sleep(0.05)


def read_token_file(auth: Path, name: str) -> dict[str, Any]:
    path = auth / name
    assert path.exists(), sorted(os.listdir(auth))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def assert_no_handoff_left(auth: Path) -> None:
    assert not [n for n in os.listdir(auth) if n.endswith(".oauth")]


# --------------------------------------------------------------------------------------------- Claude


async def test_claude_login_saves_the_token_file_and_it_serves(
        proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer, fake_claude: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(authdir, "CLAUDE_OAUTH_BASE", fake_claude.base_url)  # where a claude file's calls go
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    status, body = await mgmt(server, "GET", "/anthropic-auth-url")
    assert status == 200 and body["status"] == "ok"
    state = body["state"]
    assert len(state) == 32 and int(state, 16) >= 0
    url = urlsplit(body["url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{fake_oauth.base_url}/claude/oauth/authorize"
    query = query_of(body["url"])
    assert query["code"] == "true" and query["response_type"] == "code"
    assert query["client_id"] == "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
    assert query["redirect_uri"] == "http://localhost:54545/callback"
    assert query["scope"] == "org:create_api_key user:profile user:inference"
    assert query["code_challenge_method"] == "S256" and query["state"] == state
    assert (await mgmt(server, "GET", f"/get-auth-status?state={state}"))[1] == {"status": "wait"}

    status, headers, page = await get(f"{server.url}/anthropic/callback?code=the-code%23{state}&state={state}")
    assert status == 200 and "Authentication successful!" in page
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert await wait_done(server, state) == {"status": "ok"}

    exchange = fake_oauth.last("/claude/v1/oauth/token")
    assert exchange.headers["Content-Type"] == "application/json"
    assert exchange.json["grant_type"] == "authorization_code" and exchange.json["code"] == "the-code"
    assert exchange.json["state"] == state and exchange.json["redirect_uri"] == "http://localhost:54545/callback"
    assert s256(exchange.json["code_verifier"]) == query["code_challenge"]
    assert len(exchange.json["code_verifier"]) == 128  # 96 random bytes, base64url

    data = read_token_file(auth, "claude-bob@example.com.json")
    assert set(data) == {"id_token", "access_token", "refresh_token", "last_refresh", "email", "type", "expired"}
    assert data["type"] == "claude" and data["email"] == "bob@example.com" and data["id_token"] == ""
    assert data["access_token"] == "sk-ant-oat01-access" and data["refresh_token"] == "sk-ant-ort01-refresh"
    assert data["expired"].endswith("Z") and data["expired"] > data["last_refresh"]
    assert_no_handoff_left(auth)

    status, answer = await claude_call(server)
    assert status == 200, answer
    assert fake_claude.last.bearer == "sk-ant-oat01-access"


# --------------------------------------------------------------------------------------------- Codex


async def test_codex_login_via_pasted_redirect_url_and_it_serves(
        proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer, fake_codex: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(authdir, "CODEX_OAUTH_BASE", fake_codex.base_url)
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    status, body = await mgmt(server, "GET", "/codex-auth-url")
    assert status == 200
    state, query = body["state"], query_of(body["url"])
    assert query["client_id"] == "app_EMoamEEZ73f0CkXaXp7hrann"
    assert query["redirect_uri"] == "http://localhost:1455/auth/callback"
    assert query["scope"] == "openid email profile offline_access" and query["prompt"] == "login"
    assert query["id_token_add_organizations"] == "true" and query["codex_cli_simplified_flow"] == "true"

    redirect = f"http://localhost:1455/auth/callback?code=the-code&state={state}"
    status, answer = await mgmt(server, "POST", "/oauth-callback",
                                body={"provider": "openai", "redirect_url": redirect})
    assert (status, answer) == (200, {"status": "ok"})
    assert await wait_done(server, state) == {"status": "ok"}

    exchange = fake_oauth.last("/openai/oauth/token")
    assert exchange.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert exchange.form["grant_type"] == "authorization_code" and exchange.form["code"] == "the-code"
    assert s256(exchange.form["code_verifier"]) == query["code_challenge"]

    data = read_token_file(auth, "codex-bob@example.com-plus.json")
    assert set(data) == {"id_token", "access_token", "refresh_token", "account_id", "last_refresh", "email", "type",
                         "expired"}
    assert data["type"] == "codex" and data["account_id"] == "acc-123" and data["email"] == "bob@example.com"

    status, answer = await responses_call(server)
    assert status == 200, answer
    assert fake_codex.last.bearer == "codex-access" and fake_codex.last.account_id == "acc-123"
    # the saved file reads back through the loader with the plan from the id_token
    status, listing = await mgmt(server, "GET", "/auth-files")
    files = {f["name"]: f for f in listing["files"]}
    assert files["codex-bob@example.com-plus.json"]["status"] == "active"
    assert files["codex-bob@example.com-plus.json"]["id_token"]["chatgpt_plan_type"] == "plus"


async def test_codex_team_plan_file_name(proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    fake_oauth.codex_plan = "team"
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    _, body = await mgmt(server, "GET", "/codex-auth-url")
    await get(f"{server.url}/codex/callback?code=the-code&state={body['state']}")
    assert await wait_done(server, body["state"]) == {"status": "ok"}
    digest = hashlib.sha256(b"acc-123").hexdigest()[:8]
    assert read_token_file(auth, f"codex-{digest}-bob@example.com-team.json")["type"] == "codex"


# ------------------------------------------------------------------------------------------ Gemini CLI


async def test_gemini_cli_login_with_an_explicit_project(
        proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    status, body = await mgmt(server, "GET", "/gemini-cli-auth-url?project_id=my-proj")
    assert status == 200
    state, query = body["state"], query_of(body["url"])
    assert state.startswith("gem-") and state[4:].isdigit()
    assert urlsplit(body["url"]).path == "/google/o/oauth2/auth"
    assert query["access_type"] == "offline" and query["prompt"] == "consent"
    assert query["redirect_uri"] == "http://localhost:8085/oauth2callback"
    assert query["client_id"].startswith("681255809395-")
    assert query["scope"].split() == ["https://www.googleapis.com/auth/cloud-platform",
                                      "https://www.googleapis.com/auth/userinfo.email",
                                      "https://www.googleapis.com/auth/userinfo.profile"]
    await get(f"{server.url}/google/callback?code=the-code&state={state}")
    assert await wait_done(server, state) == {"status": "ok"}

    load = fake_oauth.last("/cloudcode/v1internal:loadCodeAssist")
    assert load.json["cloudaicompanionProject"] == "my-proj"
    assert load.headers["Authorization"] == "Bearer ya29.access"
    assert load.headers["User-Agent"].startswith("GeminiCLI/0.31.0/unknown (")
    onboard = fake_oauth.last("/cloudcode/v1internal:onboardUser")
    assert onboard.json == {"tierId": "free-tier", "cloudaicompanionProject": "my-proj", "metadata": {
        "ideType": "IDE_UNSPECIFIED", "platform": "PLATFORM_UNSPECIFIED", "pluginType": "GEMINI"}}
    assert any(p.startswith("/su/v1/projects/my-proj/services/cloudaicompanion.googleapis.com")
               for p in fake_oauth.paths())

    data = read_token_file(auth, "gemini-bob@example.com-my-proj.json")
    assert data["type"] == "gemini" and data["project_id"] == "my-proj" and data["email"] == "bob@example.com"
    assert data["auto"] is False and data["checked"] is True
    token = data["token"]
    assert token["access_token"] == "ya29.access" and token["refresh_token"] == "1//refresh"
    assert token["token_type"] == "Bearer" and token["expiry"].endswith("Z")
    assert token["client_id"].startswith("681255809395-") and token["client_secret"].startswith("GOCSPX-")
    assert token["universe_domain"] == "googleapis.com" and len(token["scopes"]) == 3
    # the loader reads it as a gemini-cli credential
    _, listing = await mgmt(server, "GET", "/auth-files")
    entry = {f["name"]: f for f in listing["files"]}["gemini-bob@example.com-my-proj.json"]
    assert entry["provider"] == "gemini-cli"


async def test_gemini_cli_auto_project_and_all_projects(
        proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    _, body = await mgmt(server, "GET", "/gemini-cli-auth-url")
    await mgmt(server, "POST", "/oauth-callback", body={"provider": "google", "state": body["state"],
                                                          "code": "the-code"})
    assert await wait_done(server, body["state"]) == {"status": "ok"}
    data = read_token_file(auth, "gemini-bob@example.com-proj-one.json")  # first listed project
    assert data["auto"] is True and data["project_id"] == "proj-one"

    _, body = await mgmt(server, "GET", "/gemini-cli-auth-url?project_id=ALL")
    await get(f"{server.url}/google/callback?code=the-code&state={body['state']}")
    assert await wait_done(server, body["state"]) == {"status": "ok"}
    data = read_token_file(auth, "gemini-bob@example.com-all.json")
    assert data["project_id"] == "proj-one,proj-two" and data["auto"] is False


async def test_gemini_cli_google_one_discovery_polls_onboarding(
        proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    fake_oauth.onboard_pending = 2
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    _, body = await mgmt(server, "GET", "/gemini-cli-auth-url?project_id=GOOGLE_ONE")
    await get(f"{server.url}/google/callback?code=the-code&state={body['state']}")
    assert await wait_done(server, body["state"]) == {"status": "ok"}
    assert read_token_file(auth, "gemini-bob@example.com-auto-proj.json")["project_id"] == "auto-proj"
    assert fake_oauth.paths().count("/cloudcode/v1internal:onboardUser") == 4  # 2 pending + done, then confirm


async def test_gemini_cli_api_not_enabled_is_an_error_status(
        proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    fake_oauth.api_enabled = False
    fake_oauth.fail["/su/v1/projects/p1/services/cloudaicompanion.googleapis.com:enable"] = (
        403, {"error": {"code": 403, "message": "Permission denied", "status": "PERMISSION_DENIED"}})
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    _, body = await mgmt(server, "GET", "/gemini-cli-auth-url?project_id=p1")
    await get(f"{server.url}/google/callback?code=the-code&state={body['state']}")
    assert await wait_done(server, body["state"]) == {"status": "error",
                                                       "error": "Cloud AI API not enabled for project p1"}
    assert not [n for n in os.listdir(auth) if n.endswith(".json")]


# ----------------------------------------------------------------------------------------- Antigravity


async def test_antigravity_login_fetches_the_project(
        proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    _, body = await mgmt(server, "GET", "/antigravity-auth-url")
    state, query = body["state"], query_of(body["url"])
    assert len(state) == 32
    assert urlsplit(body["url"]).path == "/google/o/oauth2/v2/auth"
    assert query["redirect_uri"] == "http://localhost:51121/oauth-callback"
    assert query["client_id"].startswith("1071006060591-")
    assert "https://www.googleapis.com/auth/cclog" in query["scope"].split()
    await get(f"{server.url}/antigravity/callback?code=the-code&state={state}")
    assert await wait_done(server, state) == {"status": "ok"}

    load = fake_oauth.last("/cloudcode/v1internal:loadCodeAssist")
    assert load.json == {"metadata": {"ideType": "ANTIGRAVITY", "platform": "PLATFORM_UNSPECIFIED",
                                      "pluginType": "GEMINI"}}
    assert load.headers["User-Agent"] == "google-api-nodejs-client/9.15.1"
    assert load.headers["X-Goog-Api-Client"] == "google-cloud-sdk vscode_cloudshelleditor/0.1"
    data = read_token_file(auth, "antigravity-bob@example.com.json")
    assert data["type"] == "antigravity" and data["access_token"] == "ya29.access"
    assert data["expires_in"] == 3599 and isinstance(data["timestamp"], int)
    assert data["project_id"] == "auto-proj" and data["email"] == "bob@example.com"


# ---------------------------------------------------------------------------------------------- iFlow


async def test_iflow_oauth_login(proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    _, body = await mgmt(server, "GET", "/iflow-auth-url")
    state, query = body["state"], query_of(body["url"])
    assert state.startswith("ifl-")
    assert query == {"client_id": "10009311001", "loginMethod": "phone", "type": "phone", "state": state,
                     "redirect": "http://localhost:11451/oauth2callback"}
    await get(f"{server.url}/iflow/callback?code=the-code&state={state}")
    assert await wait_done(server, state) == {"status": "ok"}
    assert fake_oauth.last("/iflow/oauth/token").form["client_secret"] == "4Z3YjXycVsQvyGF1etiNlIBB4RsqSDtW"
    data = read_token_file(auth, "iflow-bob@example.com.json")
    assert data["api_key"] == "sk-iflow-key" and data["type"] == "iflow" and data["cookie"] == ""
    assert set(data) == {"access_token", "refresh_token", "last_refresh", "expired", "api_key", "email",
                         "token_type", "scope", "cookie", "type"}


async def test_iflow_cookie_login_and_duplicate(proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    status, body = await mgmt(server, "POST", "/iflow-auth-url", body={"cookie": "  a=1;  BXAuth=xyz; b=2 "})
    assert status == 200, body
    assert body["status"] == "ok" and body["email"] == "bob@example.com" and body["type"] == "iflow"
    assert body["expired"] == "2026-12-31 23:59" and "sk-iflow-key" not in json.dumps(body)
    name = Path(body["saved_path"]).name
    assert name.startswith("iflow-bob@example.com-") and name.endswith(".json")
    data = read_token_file(auth, name)
    assert data["cookie"] == "BXAuth=xyz;" and data["api_key"] == "sk-iflow-key"
    assert fake_oauth.last("/iflow/api/openapi/apikey").json == {"name": "bob@example.com"}

    status, body = await mgmt(server, "POST", "/iflow-auth-url", body={"cookie": "BXAuth=xyz"})
    assert (status, body) == (409, {"status": "error", "error": "duplicate BXAuth found", "existing_file": name})
    assert await mgmt(server, "POST", "/iflow-auth-url", body={}) == (
        400, {"status": "error", "error": "cookie is required"})
    assert await mgmt(server, "POST", "/iflow-auth-url", body={"cookie": "a=1"}) == (
        400, {"status": "error", "error": "cookie missing BXAuth field"})


# --------------------------------------------------------------------------------------- device flows


async def test_qwen_device_flow_pending_then_success(
        proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    status, body = await mgmt(server, "GET", "/qwen-auth-url")
    assert status == 200
    assert body["url"] == "https://chat.qwen.ai/authorize?user_code=ABCD-EFGH"
    assert body["state"].startswith("gem-")  # sic, as the reference
    assert await wait_done(server, body["state"]) == {"status": "ok"}
    polls = [r for r in fake_oauth.requests if r.path == "/qwen/token"]
    assert len(polls) == 3  # two authorization_pending, then the token
    assert polls[0].form["grant_type"] == "urn:ietf:params:oauth:grant-type:device_code"
    device = fake_oauth.last("/qwen/device/code")
    assert device.form["scope"] == "openid profile email model.completion"
    names = [n for n in os.listdir(auth) if n.startswith("qwen-")]
    assert len(names) == 1
    data = read_token_file(auth, names[0])
    assert names[0] == f"qwen-{data['email']}.json" and data["email"].isdigit()
    assert data["type"] == "qwen" and data["resource_url"] == "portal.qwen.ai"


async def test_kimi_device_flow_pending_then_success(
        proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    status, body = await mgmt(server, "GET", "/kimi-auth-url")
    assert status == 200 and body["state"].startswith("kmi-")
    assert "user_code=KIMI-1234" in body["url"]
    assert await wait_done(server, body["state"]) == {"status": "ok"}
    polls = [r for r in fake_oauth.requests if r.path == "/kimi/token"]
    assert len(polls) == 3
    device_id = fake_oauth.last("/kimi/device_authorization").headers["X-Msh-Device-Id"]
    assert all(r.headers["X-Msh-Device-Id"] == device_id for r in polls)
    assert polls[0].headers["X-Msh-Platform"] == "cli-proxy-api"
    names = [n for n in os.listdir(auth) if n.startswith("kimi-")]
    assert len(names) == 1
    data = read_token_file(auth, names[0])
    assert data["type"] == "kimi" and data["device_id"] == device_id and data["access_token"] == "kimi-access"
    assert data["expired"].endswith("Z") and isinstance(data["timestamp"], int)


async def test_device_flow_denied_is_an_error(proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    fake_oauth.pending_polls = 0
    fake_oauth.fail["/qwen/token"] = (400, {"error": "access_denied", "error_description": "denied"})
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    _, body = await mgmt(server, "GET", "/qwen-auth-url")
    assert await wait_done(server, body["state"]) == {"status": "error", "error": "Authentication failed"}


async def test_device_start_failure_is_500(proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    fake_oauth.fail["/kimi/device_authorization"] = (503, {"error": "unavailable"})
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    assert await mgmt(server, "GET", "/kimi-auth-url") == (500, {"error": "failed to generate authorization url"})


# ------------------------------------------------------------------------------------------ is_webui


async def test_is_webui_redirect_listener_forwards_to_the_callback_route(
        proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    port = free_port()
    server, service = await start(proxyd_factory, auth, fake_oauth,
                                  callback_ports={"anthropic": port, "codex": port, "gemini": port,
                                                  "antigravity": port, "iflow": port})
    status, body = await mgmt(server, "GET", "/anthropic-auth-url?is_webui=true")
    assert status == 200
    state = body["state"]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/callback?code=the-code&state={state}",
                               allow_redirects=False) as resp:
            assert resp.status == 302
            assert resp.headers["Location"] == (f"http://127.0.0.1:{server.port}/anthropic/callback"
                                                f"?code=the-code&state={state}")
        async with session.get(f"http://127.0.0.1:{port}/callback?code=the-code&state={state}") as resp:
            assert resp.status == 200 and "Authentication successful!" in await resp.text()
    assert await wait_done(server, state) == {"status": "ok"}
    read_token_file(auth, "claude-bob@example.com.json")
    # the listener stops with the flow
    for _ in range(50):
        if not service._forwarders:
            break
        await asyncio.sleep(0.02)
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(f"http://127.0.0.1:{port}/callback")


async def test_is_webui_port_taken_is_500(proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer) -> None:
    import socket

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        server, service = await start(proxyd_factory, auth, fake_oauth,
                                      callback_ports={"anthropic": port, "codex": port, "gemini": port,
                                                      "antigravity": port, "iflow": port})
        assert await mgmt(server, "GET", "/codex-auth-url?is_webui=1") == (
            500, {"error": "failed to start callback server"})
        assert await mgmt(server, "GET", "/iflow-auth-url?is_webui=on") == (
            500, {"status": "error", "error": "failed to start callback server"})
        assert len(service.sessions) == 0
    finally:
        blocker.close()


# ------------------------------------------------------------------------------------------ secrets


async def test_no_secret_reaches_the_logs_or_answers(
        proxyd_factory: Any, auth: Path, fake_oauth: FakeOAuthServer, capsys: pytest.CaptureFixture[str]) -> None:
    server, _ = await start(proxyd_factory, auth, fake_oauth)
    answers = []
    for path in ("/anthropic-auth-url", "/codex-auth-url"):
        _, body = await mgmt(server, "GET", path)
        answers.append(body)
        await get(f"{server.url}/{'anthropic' if 'anthropic' in path else 'codex'}/callback"
                  f"?code=the-code&state={body['state']}")
        answers.append(await wait_done(server, body["state"]))
    _, logs = await mgmt(server, "GET", "/logs")
    captured = capsys.readouterr()
    text = json.dumps(answers) + json.dumps(logs) + captured.out + captured.err
    for secret in SECRETS:
        assert secret not in text, secret
