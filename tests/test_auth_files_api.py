"""Management auth-files routes (management.md §3.11): list, models, download, upload, delete, status, fields."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
from test_authdir import codex_token, write

from proxyd.keys import RUNTIME

KEY = "auth-files-mgmt-key"
HASH = bcrypt.hashpw(KEY.encode(), bcrypt.gensalt(rounds=4)).decode()
MGMT = "/v0/management"


def config_text(auth_dir: Path) -> str:
    return f"""\
host: "127.0.0.1"
auth-dir: "{auth_dir}"
api-keys:
  - "client-key"
remote-management:
  secret-key: "{HASH}"
"""


async def call(server: Any, method: str, path: str, *, json_body: Any = None, data: Any = None,
               key: str | None = KEY) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as session, session.request(
        method, f"{server.url}{MGMT}{path}", json=json_body, data=data, headers=headers,
    ) as resp:
        return resp.status, dict(resp.headers), await resp.read()


@pytest.fixture
def auth(tmp_path: Path) -> Path:
    directory = tmp_path / "auth"
    directory.mkdir()
    return directory


async def start(proxyd_factory: Any, auth: Path) -> Any:
    return await proxyd_factory(config_text(auth))


async def test_routes_need_the_management_key(proxyd_factory: Any, auth: Path) -> None:
    server = await start(proxyd_factory, auth)
    status, _, _ = await call(server, "GET", "/auth-files", key=None)
    assert status == 401


async def test_list_shapes_and_order(proxyd_factory: Any, auth: Path) -> None:
    write(auth, "codex-alice@example.com-plus.json", {
        "type": "codex", "email": "alice@example.com", "access_token": "at", "account_id": "acc-1",
        "id_token": codex_token("plus", "acc-1"), "priority": 5, "note": "team laptop"})
    write(auth, "Beta.json", {"type": "claude", "access_token": "t", "disabled": True})
    write(auth, "qwen-1.json", {"type": "qwen", "access_token": "t", "email": "q@x"})
    write(auth, "broken.json", "{nope")
    server = await start(proxyd_factory, auth)
    status, headers, raw = await call(server, "GET", "/auth-files")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    body = json.loads(raw)
    assert "observed_at" in body
    names = [f["name"] for f in body["files"]]
    assert names == ["Beta.json", "broken.json", "codex-alice@example.com-plus.json", "qwen-1.json"]
    by_name = {f["name"]: f for f in body["files"]}

    codex = by_name["codex-alice@example.com-plus.json"]
    assert codex["id"] == codex["name"]
    assert len(codex["auth_index"]) == 16
    assert (codex["type"], codex["provider"], codex["label"]) == ("codex", "codex", "alice@example.com")
    assert (codex["status"], codex["status_message"], codex["disabled"]) == ("active", "", False)
    assert (codex["unavailable"], codex["runtime_only"], codex["source"]) == (False, False, "file")
    assert codex["path"] == str(auth / "codex-alice@example.com-plus.json")
    assert codex["size"] == (auth / "codex-alice@example.com-plus.json").stat().st_size
    assert (codex["email"], codex["account_type"], codex["account"]) == (
        "alice@example.com", "oauth", "alice@example.com")
    assert codex["id_token"] == {"chatgpt_plan_type": "plus", "chatgpt_account_id": "acc-1"}
    assert (codex["priority"], codex["note"]) == (5, "team laptop")
    assert (codex["success"], codex["failed"], codex["cooldowns"]) == (0, 0, [])
    for key in ("modtime", "created_at", "updated_at", "last_refresh"):
        assert codex[key].endswith("Z")
    assert "access_token" not in json.dumps(body)  # no secrets
    assert "at" not in codex.values()

    assert by_name["Beta.json"]["status"] == "disabled" and by_name["Beta.json"]["disabled"] is True
    assert "email" not in by_name["Beta.json"] and "priority" not in by_name["Beta.json"]
    assert (by_name["qwen-1.json"]["status"], by_name["qwen-1.json"]["status_message"]) == (
        "error", "unsupported provider")
    assert by_name["broken.json"]["status"] == "error"
    assert by_name["broken.json"]["status_message"].startswith("invalid auth file: invalid JSON")


async def test_list_filters_and_pagination(proxyd_factory: Any, auth: Path) -> None:
    for i in range(5):
        write(auth, f"c{i}.json", {"type": "claude", "access_token": f"t{i}"})
    server = await start(proxyd_factory, auth)
    body = json.loads((await call(server, "GET", "/auth-files?page=2&page_size=2"))[2])
    assert [f["name"] for f in body["files"]] == ["c2.json", "c3.json"]
    assert (body["page"], body["page_size"], body["total"], body["has_more"]) == (2, 2, 5, True)
    status, _, raw = await call(server, "GET", "/auth-files?page=0")
    assert (status, json.loads(raw)) == (400, {"error": "page must be a positive integer"})
    status, _, raw = await call(server, "GET", "/auth-files?page_size=x")
    assert (status, json.loads(raw)) == (400, {"error": "page_size must be a positive integer"})
    one = json.loads((await call(server, "GET", "/auth-files?name=c1.json"))[2])["files"]
    assert [f["name"] for f in one] == ["c1.json"]
    index = one[0]["auth_index"]
    by_index = json.loads((await call(server, "GET", f"/auth-files?auth_index={index}"))[2])["files"]
    assert [f["name"] for f in by_index] == ["c1.json"]


async def test_gemini_multi_project_file_lists_primary_and_runtime_children(proxyd_factory: Any, auth: Path) -> None:
    write(auth, "gemini-bob-all.json", {"type": "gemini", "email": "bob@x", "project_id": "p1,p2"})
    server = await start(proxyd_factory, auth)
    files = json.loads((await call(server, "GET", "/auth-files"))[2])["files"]
    ids = {f["id"]: f for f in files}
    assert set(ids) == {"gemini-bob-all.json", "gemini-bob-all.json::p1", "gemini-bob-all.json::p2"}
    assert ids["gemini-bob-all.json"]["disabled"] is True
    child = ids["gemini-bob-all.json::p1"]
    assert (child["runtime_only"], child["source"], child["account"]) == (True, "memory", "bob@x (p1)")
    assert child["provider"] == "gemini-cli" and "path" not in child


async def test_models_of_a_credential(proxyd_factory: Any, auth: Path) -> None:
    write(auth, "c.json", {"type": "claude", "access_token": "t", "prefix": "team", "excluded_models": ["*haiku*"]})
    write(auth, "q.json", {"type": "qwen", "access_token": "t"})
    server = await start(proxyd_factory, auth)
    models = json.loads((await call(server, "GET", "/auth-files/models?name=c.json"))[2])["models"]
    ids = [m["id"] for m in models]
    assert "team/claude-sonnet-4-5-20250929" in ids and "claude-sonnet-4-5-20250929" in ids
    assert not any("haiku" in i for i in ids)
    sonnet = next(m for m in models if m["id"] == "claude-sonnet-4-5-20250929")
    assert sonnet["owned_by"] == "anthropic" and sonnet["type"] == "claude" and sonnet["display_name"]
    assert json.loads((await call(server, "GET", "/auth-files/models?name=q.json"))[2]) == {"models": []}
    status, _, raw = await call(server, "GET", "/auth-files/models")
    assert (status, json.loads(raw)) == (400, {"error": "name is required"})


async def test_download_and_name_rules(proxyd_factory: Any, auth: Path) -> None:
    content = b'{"type":"claude","access_token":"t"}'
    (auth / "c.json").write_bytes(content)
    server = await start(proxyd_factory, auth)
    status, headers, raw = await call(server, "GET", "/auth-files/download?name=c.json")
    assert (status, raw) == (200, content)
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Disposition"] == 'attachment; filename="c.json"'
    for query, expected in [("name=", (400, "invalid name")), ("name=..%2Fx.json", (400, "invalid name")),
                            ("name=c.txt", (400, "name must end with .json")),
                            ("name=missing.json", (404, "file not found"))]:
        status, _, raw = await call(server, "GET", f"/auth-files/download?{query}")
        assert (status, json.loads(raw)["error"]) == expected, query


async def test_upload_raw_is_atomic_0600_and_served_at_once(proxyd_factory: Any, auth: Path,
                                                             fake_claude: Any) -> None:
    server = await start(proxyd_factory, auth)
    body = json.dumps({"type": "claude", "email": "e2e@example.com", "access_token": "sk-ant-oat-up",
                       "base_url": fake_claude.base_url, "priority": 3}).encode()
    status, _, raw = await call(server, "POST", "/auth-files?name=up.json", data=body)
    assert (status, json.loads(raw)) == (200, {"status": "ok"})
    path = auth / "up.json"
    assert path.read_bytes() == body
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not [p for p in os.listdir(auth) if p.endswith(".tmp")]  # temp file renamed away
    runtime = server.app[RUNTIME].current
    assert runtime.registry.routes("claude-sonnet-4-5-20250929")  # registered without waiting for the watcher
    listed = json.loads((await call(server, "GET", "/auth-files?name=up.json"))[2])["files"]
    assert listed[0]["priority"] == 3 and listed[0]["status"] == "active"


async def test_upload_multipart_and_errors(proxyd_factory: Any, tmp_path: Path) -> None:
    auth = tmp_path / "not-yet-created"
    server = await start(proxyd_factory, auth)
    form = aiohttp.FormData()
    form.add_field("file", b'{"type":"codex","access_token":"a"}', filename="dir/codex-x.json",
                   content_type="application/json")
    status, _, raw = await call(server, "POST", "/auth-files", data=form)
    assert (status, json.loads(raw)) == (200, {"status": "ok"})
    assert os.listdir(auth) == ["codex-x.json"]  # the directory is created on first write
    assert stat.S_IMODE(os.stat(auth).st_mode) == 0o700
    form = aiohttp.FormData()
    form.add_field("file", b"{}", filename="x.txt", content_type="text/plain")
    status, _, raw = await call(server, "POST", "/auth-files", data=form)
    assert (status, json.loads(raw)) == (400, {"error": "file must be .json"})
    status, _, raw = await call(server, "POST", "/auth-files?name=bad.json", data=b"{broken")
    assert status == 500 and json.loads(raw)["error"].startswith("invalid auth file: invalid JSON")
    assert (auth / "bad.json").exists()  # kept on disk, as the reference does
    status, _, raw = await call(server, "POST", "/auth-files?name=x.txt", data=b"{}")
    assert (status, json.loads(raw)) == (400, {"error": "name must end with .json"})


async def test_status_patch_persists_disabled_and_takes_effect(proxyd_factory: Any, auth: Path) -> None:
    write(auth, "c.json", {"type": "claude", "access_token": "t", "email": "e@x"})
    server = await start(proxyd_factory, auth)
    status, _, raw = await call(server, "PATCH", "/auth-files/status", json_body={"name": "c.json", "disabled": True})
    assert (status, json.loads(raw)) == (200, {"status": "ok", "disabled": True})
    assert json.loads((auth / "c.json").read_text())["disabled"] is True
    assert not server.app[RUNTIME].current.registry.routes("claude-sonnet-4-5-20250929")
    entry = json.loads((await call(server, "GET", "/auth-files"))[2])["files"][0]
    assert entry["status"] == "disabled"
    status, _, raw = await call(server, "PATCH", "/auth-files/status", json_body={"name": "c.json", "disabled": False})
    assert (status, json.loads(raw)) == (200, {"status": "ok", "disabled": False})
    assert json.loads((auth / "c.json").read_text())["disabled"] is False
    assert server.app[RUNTIME].current.registry.routes("claude-sonnet-4-5-20250929")
    for body, expected in [(b"[", (400, "invalid request body")), ({"disabled": True}, (400, "name is required")),
                           ({"name": "c.json"}, (400, "disabled is required")),
                           ({"name": "zz.json", "disabled": True}, (404, "auth file not found"))]:
        kwargs = {"data": body} if isinstance(body, bytes) else {"json_body": body}
        status, _, raw = await call(server, "PATCH", "/auth-files/status", **kwargs)
        assert (status, json.loads(raw)["error"]) == expected


async def test_fields_patch_writes_every_field(proxyd_factory: Any, auth: Path) -> None:
    write(auth, "c.json", {"type": "claude", "access_token": "t", "priority": 3})
    server = await start(proxyd_factory, auth)
    status, _, raw = await call(server, "PATCH", "/auth-files/fields", json_body={
        "name": "c.json", "note": "hello", "priority": 7, "prefix": "team1", "proxy_url": "socks5://127.0.0.1:1080"})
    assert (status, json.loads(raw)) == (200, {"status": "ok"})
    data = json.loads((auth / "c.json").read_text())
    assert data == {"type": "claude", "access_token": "t", "priority": 7, "note": "hello", "prefix": "team1",
                    "proxy_url": "socks5://127.0.0.1:1080"}
    credential = server.app[RUNTIME].current.manager.get("c.json").credential
    assert (credential.prefix, credential.priority, credential.proxy_url) == ("team1", 7, "socks5://127.0.0.1:1080")
    status, _, _ = await call(server, "PATCH", "/auth-files/fields",
                              json_body={"name": "c.json", "note": "", "priority": 0})
    assert status == 200
    data = json.loads((auth / "c.json").read_text())
    assert "note" not in data and "priority" not in data
    for body, expected in [({"name": "c.json"}, (400, "no fields to update")),
                           ({"note": "x"}, (400, "name is required")),
                           ({"name": "c.json", "proxy_url": "ftp://x"}, (400, "invalid proxy_url")),
                           ({"name": "c.json", "priority": "high"}, (400, "invalid request body")),
                           ({"name": "zz.json", "note": "x"}, (404, "auth file not found"))]:
        status, _, raw = await call(server, "PATCH", "/auth-files/fields", json_body=body)
        assert (status, json.loads(raw)["error"]) == expected, body


async def test_delete_one_and_all(proxyd_factory: Any, auth: Path) -> None:
    for name in ("a.json", "b.json", "c.json"):
        write(auth, name, {"type": "claude", "access_token": name})
    write(auth, "notes.txt", "keep me")
    server = await start(proxyd_factory, auth)
    status, _, raw = await call(server, "DELETE", "/auth-files?name=a.json")
    assert (status, json.loads(raw)) == (200, {"status": "ok"})
    assert not (auth / "a.json").exists()
    assert "a.json" not in {c.id for c in server.app[RUNTIME].current.credentials}
    status, _, raw = await call(server, "DELETE", "/auth-files?name=a.json")
    assert (status, json.loads(raw)) == (404, {"error": "file not found"})
    status, _, raw = await call(server, "DELETE", "/auth-files?name=..%2Fx.json")
    assert status == 400
    status, _, raw = await call(server, "DELETE", "/auth-files?all=true")
    assert (status, json.loads(raw)) == (200, {"status": "ok", "deleted": 2})
    assert sorted(os.listdir(auth)) == ["notes.txt"]
    assert json.loads((await call(server, "GET", "/auth-files"))[2])["files"] == []


async def test_lifecycle_like_the_reference_golden(proxyd_factory: Any, auth: Path) -> None:
    """mgmt.auth_files.lifecycle: upload disabled, inspect, download, patch fields and status, delete."""
    server = await start(proxyd_factory, auth)
    upload = {"type": "claude", "email": "e2e@example.com", "disabled": True, "access_token": "sk-ant-oat-fake",
              "priority": 3}
    raw_upload = json.dumps(upload, separators=(",", ":")).encode()
    assert (await call(server, "POST", "/auth-files?name=e2e-claude.json", data=raw_upload))[0] == 200
    (entry,) = json.loads((await call(server, "GET", "/auth-files?name=e2e-claude.json"))[2])["files"]
    assert {k: entry[k] for k in ("account", "account_type", "disabled", "email", "id", "label", "name", "priority",
                                  "provider", "runtime_only", "size", "source", "status", "status_message",
                                  "type", "unavailable", "success", "failed", "cooldowns")} == {
        "account": "e2e@example.com", "account_type": "oauth", "disabled": True, "email": "e2e@example.com",
        "id": "e2e-claude.json", "label": "e2e@example.com", "name": "e2e-claude.json", "priority": 3,
        "provider": "claude", "runtime_only": False, "size": 105, "source": "file", "status": "disabled",
        "status_message": "", "type": "claude", "unavailable": False, "success": 0, "failed": 0, "cooldowns": []}
    assert json.loads((await call(server, "GET", "/auth-files/download?name=e2e-claude.json"))[2]) == upload
    assert (await call(server, "PATCH", "/auth-files/fields",
                       json_body={"name": "e2e-claude.json", "note": "hello", "priority": 7}))[0] == 200
    assert json.loads((await call(server, "GET", "/auth-files/download?name=e2e-claude.json"))[2]) == {
        **upload, "note": "hello", "priority": 7}
    status, _, raw = await call(server, "PATCH", "/auth-files/status",
                                json_body={"name": "e2e-claude.json", "disabled": False})
    assert (status, json.loads(raw)) == (200, {"status": "ok", "disabled": False})
    assert (await call(server, "DELETE", "/auth-files?name=e2e-claude.json"))[0] == 200
    assert json.loads((await call(server, "GET", "/auth-files?name=e2e-claude.json"))[2])["files"] == []
