"""Log endpoints and request logs: line format, ring, main.log rotation, ``/logs`` paging, DELETE, error-log
retention, request-log masking/caps/retention, log directory rules (management.md §3.9, §6; DECISIONS 13).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt

from proxyd.config.load import parse_config_text
from proxyd.logs.app_log import LineFormatter, MainLogFile, RingHandler, line_timestamp, main_log_files, select_lines
from proxyd.logs.request_log import (
    RequestLogSettings,
    RequestLogWriter,
    describe_credential,
    enforce_error_limit,
    enforce_retention,
    file_name,
    mask_headers,
    mask_secret,
    mask_url,
)
from proxyd.logs.service import LOGS, resolve_log_dir, total_log_size_clean

KEY = "logs-mgmt-key"
HASH = bcrypt.hashpw(KEY.encode(), bcrypt.gensalt(rounds=4)).decode()
MGMT = "/v0/management"
LINE = re.compile(r"^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\] \[[^\]]+\] "
                  r"\[(debug|info |warn |error|fatal)\] \[[^\]]+:\d+\] ")


def config(*, to_file: bool = False, request_log: bool = False, extra: str = "") -> str:
    return (f'host: "127.0.0.1"\napi-keys: ["client-key"]\nremote-management:\n  secret-key: "{HASH}"\n'
            f"logging-to-file: {str(to_file).lower()}\nrequest-log: {str(request_log).lower()}\n{extra}")


async def mgmt(server: Any, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.request(method, f"{server.url}{MGMT}{path}",
                                                       headers={"X-Management-Key": KEY}) as r:
        return r.status, dict(r.headers), await r.read()


async def mgmt_json(server: Any, method: str, path: str) -> tuple[int, Any]:
    status, _, body = await mgmt(server, method, path)
    return status, json.loads(body)


def stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def settings(**kw: Any) -> RequestLogSettings:
    return RequestLogSettings(**kw)


# -------------------------------------------------------------------------------------------- line format


def _record(msg: Any, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("proxyd.x", level, "/src/proxyd/server.py", 88, msg, (), None)


def test_line_format_matches_the_reference_prefix() -> None:
    fmt = LineFormatter()
    plain = fmt.format(_record("config successfully reloaded"))
    assert LINE.match(plain)
    assert plain.endswith("[--------] [info ] [server.py:88] config successfully reloaded")
    event = {"event": "upstream attempt failed", "level": "warning", "timestamp": "x", "request_id": "1a2b3c4d",
             "status": 429, "credential": "claude:abc", "note": "two words"}
    line = fmt.format(_record(event, logging.WARNING))
    assert LINE.match(line)
    assert '[1a2b3c4d] [warn ] [server.py:88] upstream attempt failed status=429 credential=claude:abc ' \
           'note="two words"' in line
    assert line_timestamp(line) == int(_record("x").created)
    assert "[error]" in fmt.format(_record("boom", logging.ERROR))
    assert "[fatal]" in fmt.format(_record("boom", logging.CRITICAL))


def test_ring_is_bounded_and_paged() -> None:
    ring = RingHandler(capacity=10)
    for i in range(25):
        ring.emit(_record(f"line {i}"))
    assert len(ring.lines) == 10 and ring.lines[-1][1].endswith("line 24")
    lines, count, _ = select_lines([text for _, text in ring.lines], 0, 3)
    assert [line.rsplit(" ", 1)[1] for line in lines] == ["22", "23", "24"] and count == 10


# -------------------------------------------------------------------------------------------- /logs paging


def test_select_lines_after_limit_and_continuations() -> None:
    t0 = 1_773_972_000
    lines = [
        "orphan continuation",  # leading, no timestamp
        f"[{stamp(t0)}] [--------] [info ] [a.go:1] old",
        "  old stack line",
        f"[{stamp(t0 + 10)}] [--------] [error] [a.go:2] new",
        "  new stack line",
        f"[{stamp(t0 + 20)}] [--------] [info ] [a.go:3] newest",
    ]
    picked, count, latest = select_lines(lines, t0 + 5, None)
    assert picked == lines[3:] and count == 6 and latest == t0 + 20
    picked, _, _ = select_lines(lines, 0, 2)
    assert picked == lines[4:]
    picked, _, latest = select_lines(lines, t0 + 100, None)
    assert picked == [] and latest == t0 + 100


async def test_logs_endpoints_when_file_logging_is_off(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config())
    assert await mgmt_json(server, "GET", "/logs") == (400, {"error": "logging to file disabled"})
    assert await mgmt_json(server, "DELETE", "/logs") == (400, {"error": "logging to file disabled"})
    assert await mgmt_json(server, "GET", "/request-error-logs") == (200, {"files": []})
    assert await mgmt_json(server, "GET", "/request-error-logs/error-nope.log") == (
        404, {"error": "log file not found"})
    assert await mgmt_json(server, "GET", "/request-log-by-id/abcdef12") == (404, {"error": "log directory not found"})
    # proxyd's extension: the in-memory ring works without files
    logging.getLogger("proxyd.test").warning("ring line for the api")
    status, body = await mgmt_json(server, "GET", "/logs?source=memory&limit=50")
    assert status == 200 and any("ring line for the api" in line for line in body["lines"])
    assert all(LINE.match(line) for line in body["lines"] if line.startswith("["))


async def test_logs_reads_rotated_files_with_after_and_limit(proxyd_factory: Any, tmp_path: Path) -> None:
    server = await proxyd_factory(config(to_file=True))
    directory = server.app[LOGS].directory
    assert directory == tmp_path / "logs"
    t0 = 1_773_972_000
    rotated = directory / "main-2026-03-20T01-00-00.000.log"
    rotated.write_text(f"[{stamp(t0)}] [--------] [info ] [a.go:1] rotated one\n"
                       f"[{stamp(t0 + 1)}] [--------] [info ] [a.go:1] rotated two\n")
    os.utime(rotated, (t0, t0))
    main = directory / "main.log"
    main.write_text(main.read_text() + f"[{stamp(t0 + 2)}] [--------] [info ] [a.go:1] main three\n")
    status, body = await mgmt_json(server, "GET", f"/logs?after={t0}")
    assert status == 200
    assert [line for line in body["lines"] if "a.go" in line][:2] == [
        f"[{stamp(t0 + 1)}] [--------] [info ] [a.go:1] rotated two",
        f"[{stamp(t0 + 2)}] [--------] [info ] [a.go:1] main three"]
    assert body["line-count"] >= 3 and body["latest-timestamp"] >= t0 + 2
    status, body = await mgmt_json(server, "GET", "/logs?limit=1")
    assert status == 200 and len(body["lines"]) == 1
    assert await mgmt_json(server, "GET", "/logs?limit=x") == (
        400, {"error": "invalid limit: must be a positive integer"})
    assert await mgmt_json(server, "GET", "/logs?limit=0") == (
        400, {"error": "invalid limit: must be greater than zero"})

    # the daemon's own lines reach main.log in the reference's format
    logging.getLogger("proxyd.test").warning("written to main.log")
    text = (directory / "main.log").read_text()
    [ours] = [line for line in text.splitlines() if "written to main.log" in line]
    assert LINE.match(ours)

    (directory / "v1-chat-completions-2026-03-20T091504-abc.log").write_text("dump")
    status, body = await mgmt_json(server, "DELETE", "/logs")
    assert (status, body) == (200, {"success": True, "message": "Logs cleared successfully", "removed": 1})
    assert not rotated.exists() and "main three" not in main.read_text()  # (later lines may follow)
    assert (directory / "v1-chat-completions-2026-03-20T091504-abc.log").exists()  # request dumps stay


async def test_delete_logs_without_directory_is_404(proxyd_factory: Any, tmp_path: Path) -> None:
    server = await proxyd_factory(config(to_file=False))
    # turn file logging on without ever writing: the directory does not exist yet
    store = server.app[LOGS].store
    server.config_path.write_text(config(to_file=True).replace("logging-to-file: true",
                                                               "logging-to-file: true\nlog-dir: elsewhere"))
    await store.reload("test")
    service = server.app[LOGS]
    service._set_file(False)  # nothing written there yet
    service.directory = tmp_path / "missing"
    assert await mgmt_json(server, "DELETE", "/logs") == (404, {"error": "log directory not found"})


def test_main_log_rotates_by_size(tmp_path: Path) -> None:
    handler = MainLogFile(tmp_path, max_bytes=300)
    try:
        for i in range(20):
            handler.emit(_record(f"message number {i}"))
    finally:
        handler.close()
    files = main_log_files(tmp_path)
    assert files[-1].name == "main.log" and len(files) > 2
    assert all(re.fullmatch(r"main-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}(-\d+)?\.log", f.name)
               for f in files[:-1])
    assert all(f.stat().st_size <= 300 for f in files)
    text = "".join(f.read_text() for f in files)
    assert [int(m) for m in re.findall(r"message number (\d+)", text)] == list(range(20))


def test_total_size_cleaner_never_deletes_main_log(tmp_path: Path) -> None:
    for i, name in enumerate(["main.log", "error-a.log", "v1-x.log", "main-2026.log.gz"]):
        path = tmp_path / name
        path.write_bytes(b"x" * 400_000)
        os.utime(path, (1000 + i, 1000 + i))
    (tmp_path / "keep.txt").write_bytes(b"x" * 2_000_000)
    removed = total_log_size_clean(tmp_path, 1)
    assert removed == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "main-2026.log.gz", "main.log"]


# -------------------------------------------------------------------------------------------- request logs


def _capture(writer: RequestLogWriter, rid: str = "1a2b3c4d", *, status: int = 200) -> Any:
    cap = writer.begin(rid)
    cap.client_request("POST", "/v1beta/models/gemini:generateContent?key=AIzaSecretValue123&alt=sse",
                       {"Authorization": "Bearer client-secret-key-0001", "content-type": "application/json",
                        "X-Goog-Api-Key": "AIzaSecretValue123"}, b'{"contents": []}')

    class Cred:
        provider, id, kind, api_key = "gemini", "gemini:abc", "gemini-api-key", "upstream-secret-9999"

    cap.upstream_request("POST", "https://up.example/v1beta/models/m:generateContent?key=upstream-secret-9999",
                         {"x-goog-api-key": "upstream-secret-9999"}, b'{"up": true}', Cred())
    cap.upstream_response(status, {"Content-Type": "application/json"})
    cap.upstream_body(b'{"answer": 1}')
    cap.client_response(status, {"Content-Type": "application/json"})
    cap.client_body(b'{"client": "answer"}')
    return cap


def test_masking_helpers() -> None:
    assert mask_secret("e2e-client-key") == "e2e-...-key"
    assert mask_secret("short") == "****"
    assert mask_headers({"authorization": "Bearer sk-claude-1", "X-Api-Key": "sk-claude-2",
                         "content-type": "a"}) == [
        "Authorization: Bearer sk-c...de-1", "Content-Type: a", "X-Api-Key: sk-c...de-2"]
    assert mask_url("/v1?key=abcdefghijkl&alt=sse") == "/v1?key=abcd...ijkl&alt=sse"
    assert mask_url("/v1?alt=sse") == "/v1?alt=sse"


def test_request_log_file_masks_secrets(tmp_path: Path) -> None:
    writer = RequestLogWriter(tmp_path, settings(enabled=True))
    cap = _capture(writer)
    cap.finish(200)  # no running loop: written at once
    [path] = list(tmp_path.iterdir())
    assert re.fullmatch(r"v1beta-models-gemini-generateContent-\d{4}-\d{2}-\d{2}T\d{6}-1a2b3c4d\.log", path.name)
    text = path.read_text()
    for secret in ("client-secret-key-0001", "AIzaSecretValue123", "upstream-secret-9999"):
        assert secret not in text
    assert "Authorization: Bearer clie...0001" in text
    assert "URL: /v1beta/models/gemini:generateContent?key=AIza...e123&alt=sse" in text
    headers = ["=== REQUEST INFO ===", "=== HEADERS ===", "=== REQUEST BODY ===", "=== API REQUEST 1 ===",
               "=== API RESPONSE 1 ===", "=== RESPONSE ==="]
    positions = [text.index(h) for h in headers]
    assert positions == sorted(positions)
    assert "Auth: provider=gemini, auth_id=gemini:abc, label=gemini-api-key, type=api_key value=upst...9999" in text
    assert '{"answer": 1}' in text and text.rstrip().endswith('{"client": "answer"}')
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_bodies_are_capped(tmp_path: Path) -> None:
    writer = RequestLogWriter(tmp_path, settings(enabled=True, max_body_bytes=100))
    cap = writer.begin("cap1")
    cap.client_request("POST", "/v1/chat/completions", {}, b"a" * 5000)
    cap.client_response(200, {})
    for _ in range(50):
        cap.client_body(b"b" * 100)
    cap.finish(200)
    [path] = list(tmp_path.iterdir())
    text = path.read_text()
    assert "a" * 100 in text and "a" * 101 not in text
    assert "[proxyd: body truncated: 100 of 5000 bytes kept]" in text
    assert "[proxyd: body truncated: 100 of 5000 bytes kept]" in text.split("=== RESPONSE ===")[1]
    assert path.stat().st_size < 2000


def test_request_log_off_writes_only_failures_as_error_files(tmp_path: Path) -> None:
    writer = RequestLogWriter(tmp_path, settings(enabled=False))
    ok = _capture(writer, "ok000001")
    assert ok.upstream_answers[0].body is None and ok.response_body is None  # nothing collected
    ok.finish(200)
    assert list(tmp_path.iterdir()) == []
    failed = _capture(writer, "bad00001", status=500)
    failed.upstream_error(500, b'{"error": "mock upstream error 500"}')
    failed.finish(500)
    [path] = list(tmp_path.iterdir())
    assert path.name.startswith("error-v1beta-models-") and path.name.endswith("-bad00001.log")
    text = path.read_text()
    assert "=== API RESPONSE ===\nTimestamp: " in text and '{"error": "mock upstream error 500"}' in text
    assert "=== API RESPONSE 1 ===" not in text  # an error-only dump keeps the final upstream error only
    assert '{"client": "answer"}' in text
    recovered = _capture(writer, "retry001")  # a failed attempt followed by success is still dumped
    recovered.upstream_error(503, "overloaded")
    recovered.finish(200)
    assert any(p.name.endswith("-retry001.log") and p.name.startswith("error-") for p in tmp_path.iterdir())


def test_request_log_layout_is_the_references(tmp_path: Path) -> None:
    """Labels, transport headers left out, the final upstream error before the numbered answers, live response
    headers (what prepare hooks add after the capture saw the response)."""
    from multidict import CIMultiDict

    class Key:
        provider, id, kind, api_key, options = "claude", "claude:apikey:2244b81cd9bd", "claude", "sk-claude-1", {}

    class Compat:
        provider, id, kind, api_key, options = ("mockcompat", "openai-compatibility:mockcompat:6d1e6e398c62",
                                                "openai-compatibility", "sk-compat-2", {})

    assert describe_credential(Key()) == (
        "provider=claude, auth_id=claude:apikey:2244b81cd9bd, label=claude-apikey, type=api_key value=sk-c...de-1")
    assert describe_credential(Compat()).startswith(
        "provider=openai-compatible-mockcompat, auth_id=openai-compatibility:mockcompat:6d1e6e398c62, label=mockcompat")
    writer = RequestLogWriter(tmp_path, settings(enabled=True))
    cap = writer.begin("lay00001")
    cap.client_request("POST", "/v1/chat/completions", {"Host": "127.0.0.1:1", "Content-Type": "application/json"},
                       b"{}")
    cap.upstream_request("POST", "http://up/v1", {"Content-Type": "application/json"}, b"{}", Key())
    cap.upstream_error(400, b'{"error":"bad"}', {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    headers: CIMultiDict[str] = CIMultiDict({"Content-Type": "application/json"})
    cap.client_response(400, headers)
    headers["Access-Control-Allow-Origin"] = "*"  # added by the prepare hook, after the pipeline's call
    headers["Content-Length"] = "15"
    cap.finish(400, b'{"error":"bad"}')
    [path] = list(tmp_path.iterdir())
    text = path.read_text()
    titles = [line for line in text.splitlines() if line.startswith("===")]
    assert titles == ["=== REQUEST INFO ===", "=== HEADERS ===", "=== REQUEST BODY ===", "=== API REQUEST 1 ===",
                      "=== API RESPONSE ===", "=== API RESPONSE 1 ===", "=== RESPONSE ==="]
    assert "Upstream Transport: http" in text and "Host:" not in text and "Transfer-Encoding" not in text
    response = text.split("=== RESPONSE ===")[1]
    assert "Access-Control-Allow-Origin: *" in response and "Content-Length" not in response
    assert "Status: 400\nHeaders:\nContent-Type: application/json\n\nBody:\n{\"error\":\"bad\"}" in text

    local = RequestLogWriter(tmp_path / "local", settings(enabled=True)).begin("loc00001")
    local.client_request("POST", "/v1/messages/count_tokens", {}, b"{}")
    assert "Upstream Transport" not in local.render().decode()


async def test_request_log_rendered_after_the_answer_is_prepared(tmp_path: Path) -> None:
    writer = RequestLogWriter(tmp_path, settings(enabled=True))
    cap = writer.begin("late0001")
    cap.client_request("GET", "/v1/models", {}, None)
    headers: dict[str, str] = {"Content-Type": "application/json"}
    cap.client_response(200, headers)
    cap.finish(200, b"{}")
    headers["X-Late"] = "1"  # aiohttp prepares a returned response after the pipeline finished the capture
    await writer.drain()
    [path] = os.listdir(tmp_path)
    assert "X-Late: 1" in (tmp_path / path).read_text()


def test_error_logs_keep_the_newest_n(tmp_path: Path) -> None:
    writer = RequestLogWriter(tmp_path, settings(enabled=False, error_max_files=3))
    for i in range(6):
        cap = writer.begin(f"err{i:05d}")
        cap.client_request("POST", "/v1/messages", {}, b"{}")
        cap.finish(500, b"boom")
        for p in tmp_path.iterdir():  # distinct, increasing mtimes
            if p.name.endswith(f"-err{i:05d}.log"):
                os.utime(p, (1000 + i, 1000 + i))
        enforce_error_limit(tmp_path, 3)
    names = sorted(p.name.rsplit("-", 1)[1] for p in tmp_path.iterdir())
    assert names == ["err00003.log", "err00004.log", "err00005.log"]
    assert enforce_error_limit(tmp_path, 0) == 0  # 0 keeps all


def test_retention_by_age_and_total_size(tmp_path: Path) -> None:
    now = time.time()
    for i in range(10):
        path = tmp_path / f"v1-messages-2026-03-20T0915{i:02d}-id{i}.log"
        path.write_bytes(b"x" * 1000)
        age = (10 - i) * 86400  # id0 is 10 days old … id9 is 1 day old
        os.utime(path, (now - age, now - age))
    (tmp_path / "main.log").write_bytes(b"y" * 50_000)
    os.utime(tmp_path / "main.log", (now - 100 * 86400,) * 2)
    removed = enforce_retention(tmp_path, settings(max_age_seconds=5.5 * 86400, max_total_bytes=3000), now)
    assert removed == 7  # 5 too old, then the 2 oldest of the remaining 5 for size
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["main.log", *[f"v1-messages-2026-03-20T0915{i:02d}-id{i}.log" for i in (7, 8, 9)]]


def test_settings_from_config_defaults_and_overrides() -> None:
    base = parse_config_text("request-log: true\n", "c.yaml").config
    assert base is not None
    s = RequestLogSettings.from_config(base)
    assert s.enabled and s.max_body_bytes == 1024 * 1024 and s.max_age_seconds == 7 * 86400
    assert s.max_total_bytes == 1024 * 1024 * 1024 and s.error_max_files == 10
    custom = parse_config_text("request-log-max-body-kb: 4\nrequest-log-max-age-days: 1\n"
                               "request-log-max-total-size-mb: 2\nerror-logs-max-files: 0\n", "c.yaml").config
    assert custom is not None
    s = RequestLogSettings.from_config(custom)
    assert not s.enabled and s.max_body_bytes == 4096 and s.max_age_seconds == 86400
    assert s.max_total_bytes == 2 * 1024 * 1024 and s.error_max_files == 0


def test_file_name_sanitizes() -> None:
    ts = time.mktime((2026, 3, 20, 9, 15, 4, 0, 0, -1))
    assert file_name("/v1/chat/completions", ts, "1a2b3c4d", error=False) == \
        "v1-chat-completions-2026-03-20T091504-1a2b3c4d.log"
    assert file_name("/", ts, "x:y/z", error=True) == "error-root-2026-03-20T091504-x-y-z.log"


# -------------------------------------------------------------------------------------------- endpoints


async def test_error_log_list_download_and_request_by_id(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config())
    service = server.app[LOGS]
    writer = service.requests
    for i, rid in enumerate(("aaaa1111", "bbbb2222")):
        cap = writer.begin(rid)
        cap.client_request("POST", "/v1/chat/completions", {"Authorization": "Bearer client-key"}, b"{}")
        cap.finish(502, b'{"error": "bad gateway"}')
        await writer.drain()
        for p in service.directory.iterdir():
            if p.name.endswith(f"-{rid}.log"):
                os.utime(p, (1_773_972_000 + i, 1_773_972_000 + i))
    status, body = await mgmt_json(server, "GET", "/request-error-logs")
    assert status == 200
    assert [f["name"].rsplit("-", 1)[1] for f in body["files"]] == ["bbbb2222.log", "aaaa1111.log"]
    first = body["files"][0]
    assert first["modified"] == 1_773_972_001 and first["size"] > 0 and first["name"].startswith("error-")

    status, headers, data = await mgmt(server, "GET", f"/request-error-logs/{first['name']}")
    assert status == 200 and headers["Content-Disposition"] == f'attachment; filename="{first["name"]}"'
    assert b"=== REQUEST INFO ===" in data and b"client-key" not in data.replace(b"Bearer ****", b"")
    assert await mgmt_json(server, "GET", "/request-error-logs/..%5Cx.log") == (
        400, {"error": "invalid log file name"})
    assert await mgmt_json(server, "GET", "/request-error-logs/main.log") == (404, {"error": "log file not found"})

    status, headers, data = await mgmt(server, "GET", "/request-log-by-id/aaaa1111")
    assert status == 200 and "aaaa1111.log" in headers["Content-Disposition"]
    status, _, _ = await mgmt(server, "GET", "/request-log-by-id?id=bbbb2222")
    assert status == 200
    assert await mgmt_json(server, "GET", "/request-log-by-id/zzzz9999") == (
        404, {"error": "log file not found for the given request ID"})
    assert await mgmt_json(server, "GET", "/request-log-by-id") == (400, {"error": "missing request ID"})
    assert await mgmt_json(server, "GET", "/request-log-by-id?id=a%5Cb") == (400, {"error": "invalid request ID"})

    # with request-log on, the error list is empty (as the reference)
    server.config_path.write_text(config(request_log=True))
    await service.store.reload("test")
    assert await mgmt_json(server, "GET", "/request-error-logs") == (200, {"files": []})
    assert service.requests.settings.enabled  # the writer follows the hot toggle


async def test_logs_need_the_management_key(proxyd_factory: Any) -> None:
    server = await proxyd_factory(config(to_file=True))
    async with aiohttp.ClientSession() as s, s.get(f"{server.url}{MGMT}/logs") as r:
        assert r.status == 401


# -------------------------------------------------------------------------------------------- log directory


def _cfg(text: str) -> Any:
    result = parse_config_text(text, "c.yaml")
    assert result.config is not None
    return result.config


def test_log_dir_rules(tmp_path: Path) -> None:
    cfg = _cfg(f"auth-dir: {tmp_path / 'auths'}\n")
    assert resolve_log_dir(cfg, tmp_path, environ={}, cwd=tmp_path / "nowhere") == tmp_path / "logs"
    assert resolve_log_dir(cfg, tmp_path, environ={"WRITABLE_PATH": str(tmp_path / "w")},
                           cwd=tmp_path) == tmp_path / "w" / "logs"
    (tmp_path / "cwd" / "logs").mkdir(parents=True)
    assert resolve_log_dir(cfg, tmp_path, environ={}, cwd=tmp_path / "cwd") == tmp_path / "cwd" / "logs"
    explicit = _cfg(f"auth-dir: {tmp_path / 'auths'}\nlog-dir: mylogs\n")
    assert resolve_log_dir(explicit, tmp_path, environ={}, cwd=tmp_path) == tmp_path / "mylogs"


def test_log_dir_is_never_under_auth_dir(tmp_path: Path) -> None:
    cfg = _cfg(f"auth-dir: {tmp_path}\n")  # config dir == auth dir, as many reference installs have it
    chosen = resolve_log_dir(cfg, tmp_path, environ={"XDG_STATE_HOME": str(tmp_path.parent / "state")},
                             cwd=tmp_path / "nowhere")
    assert chosen == tmp_path.parent / "state" / "proxyd" / "logs"
    inside = _cfg(f"auth-dir: {tmp_path / 'a'}\nlog-dir: {tmp_path / 'a' / 'logs'}\n")
    assert not str(resolve_log_dir(inside, tmp_path, environ={"XDG_STATE_HOME": str(tmp_path / "s")})).startswith(
        str(tmp_path / "a"))


# -------------------------------------------------------------------------------------------- capture API wiring


async def test_request_log_of_a_real_request(fake_openai: Any, proxyd_factory: Any) -> None:
    """The pipeline's capture points produce a downloadable dump with every section, secrets masked."""
    from fakes import compat_config

    fake_openai.chunk_count = 2
    text = compat_config(fake_openai.base_url, upstream_keys=("sk-up-1-long-secret",),
                         extra=f'request-log: true\nremote-management:\n  secret-key: "{HASH}"\n')
    server = await proxyd_factory(text)
    async with aiohttp.ClientSession() as s, s.post(
            f"{server.v1}/chat/completions", headers={"Authorization": "Bearer client-key"},
            json={"model": "my-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}) as r:
        assert r.status == 200
        rid = r.headers["X-Request-Id"]
        streamed = await r.read()
    await server.app[LOGS].requests.drain()
    status, _, data = await mgmt(server, "GET", f"/request-log-by-id/{rid}")
    assert status == 200
    dump = data.decode()
    assert "URL: /v1/chat/completions" in dump and "Authorization: Bearer clie...-key" in dump
    assert '"content": "hi"' in dump or '"content":"hi"' in dump
    assert "=== API REQUEST 1 ===" in dump and "/chat/completions" in dump
    assert "sk-up-1-long-secret" not in dump  # the upstream key is masked
    assert "chat.completion.chunk" in dump  # the upstream stream, teed
    assert "=== RESPONSE ===\nStatus: 200" in dump
    assert streamed.decode().split("\n\n")[0] in dump  # what the client got


def test_null_capture_records_nothing() -> None:
    from proxyd.logs import NULL_CAPTURE

    NULL_CAPTURE.client_request("POST", "/x", {"a": "b"}, b"body")
    NULL_CAPTURE.upstream_error(500, "x")
    NULL_CAPTURE.finish(500)
    assert not hasattr(NULL_CAPTURE, "upstream_errors")


async def test_request_log_of_a_local_token_count(fake_openai: Any, proxyd_factory: Any) -> None:
    """A count answered without an upstream call logs the client's answer and no API sections."""
    from fakes import compat_config

    text = compat_config(fake_openai.base_url, upstream_keys=("sk-up-1-long-secret",),
                         extra=f'request-log: true\nremote-management:\n  secret-key: "{HASH}"\n')
    server = await proxyd_factory(text)
    async with aiohttp.ClientSession() as s, s.post(
            f"{server.url}/v1/messages/count_tokens", headers={"Authorization": "Bearer client-key"},
            json={"model": "my-model", "messages": [{"role": "user", "content": "hi"}]}) as r:
        assert r.status == 200
        rid = r.headers["X-Request-Id"]
        answer = await r.read()
    await server.app[LOGS].requests.drain()
    status, _, data = await mgmt(server, "GET", f"/request-log-by-id/{rid}")
    assert status == 200
    dump = data.decode()
    assert "=== API REQUEST" not in dump and "Upstream Transport" not in dump
    response = dump.split("=== RESPONSE ===\n")[1]
    assert response.startswith("Status: 200\n") and "Content-Type: application/json" in response
    assert answer.decode() in response and b"input_tokens" in answer
