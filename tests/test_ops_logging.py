"""journald-friendly logging: `<N>` priority prefix + one JSON object per line under $JOURNAL_STREAM or
`--log-format journal`; plain JSON lines and the console format otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
from fakes import FakeOpenAIUpstream, compat_config, openai_error
from test_ops_helpers import Daemon, free_port

from proxyd.log import JournalRenderer, journal_stream_matches, priority_of, resolve_format


def _journal_stream_of(path: Path) -> str:
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def _parse_journal(line: str) -> tuple[int, dict]:
    assert line.startswith("<") and line[2] == ">", line
    return int(line[1]), json.loads(line[3:])


def test_priorities_follow_syslog() -> None:
    assert [priority_of(level) for level in ("critical", "error", "exception", "warning", "info", "debug")] == [
        2, 3, 3, 4, 6, 7]
    assert priority_of("whatever") == 6


def test_journal_stream_detection(tmp_path: Path) -> None:
    target = tmp_path / "out.log"
    other = tmp_path / "other.log"
    target.write_text("")
    other.write_text("")
    with target.open("w") as fh:
        assert journal_stream_matches(fh, {"JOURNAL_STREAM": _journal_stream_of(target)})
        assert not journal_stream_matches(fh, {"JOURNAL_STREAM": _journal_stream_of(other)})
        assert not journal_stream_matches(fh, {"JOURNAL_STREAM": "garbage"})
        assert not journal_stream_matches(fh, {})
        assert resolve_format("console", fh) == "console"
        assert resolve_format("auto", fh) == "json"  # not a TTY, not the journal (this process's env)


def test_journal_renderer_puts_priority_and_request_fields_first() -> None:
    line = JournalRenderer()(None, "error", {
        "event": "upstream attempt failed", "level": "error", "timestamp": "t", "extra": 1, "latency_ms": 5.0,
        "status": 502, "credential": "openai-compatibility:abc", "provider": "fake", "model": "m",
        "request_id": "r1",
    })
    priority, body = _parse_journal(line)
    assert priority == 3
    assert list(body) == ["PRIORITY", "timestamp", "level", "event", "request_id", "model", "provider",
                          "credential", "status", "latency_ms", "extra"]
    assert body["PRIORITY"] == "3"
    assert "\n" not in line


def _run_logging(tmp_path: Path, code: str, env: dict[str, str] | None = None, args: str = "") -> list[str]:
    out = tmp_path / "stdout.log"
    out.write_text("")
    script = ("import structlog, sys\nfrom proxyd.log import setup_logging\n"
              f"print_fmt = setup_logging({args})\nlog = structlog.get_logger('t')\n{code}\n"
              "sys.stderr.write(print_fmt)\n")
    full_env = {**{k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}, **(env or {})}
    with out.open("a") as fh:
        result = subprocess.run([sys.executable, "-c", script], stdout=fh, stderr=subprocess.PIPE, text=True,
                                env=full_env, timeout=60)
    assert result.returncode == 0, result.stderr
    return [*out.read_text().splitlines(), f"format={result.stderr.strip().splitlines()[-1]}"]


def test_journal_format_is_chosen_when_stdout_is_the_journal_stream(tmp_path: Path) -> None:
    out = tmp_path / "stdout.log"
    out.write_text("")
    code = ("log.error('boom', request_id='r9', status=500)\nlog.warning('careful')\n"
            "log.info('fine', api_key='sk-secret-value-1234')\n"
            "try:\n    1/0\nexcept ZeroDivisionError:\n    log.exception('crashed')\n")
    lines = _run_logging(tmp_path, code, env={"JOURNAL_STREAM": _journal_stream_of(out)})
    assert lines[-1] == "format=journal"
    parsed = [_parse_journal(line) for line in lines[:-1]]
    assert [p for p, _ in parsed] == [3, 4, 6, 3]
    assert parsed[0][1]["request_id"] == "r9" and parsed[0][1]["status"] == 500
    assert parsed[2][1]["api_key"] == "***1234"
    assert "ZeroDivisionError" in parsed[3][1]["exception"]


def test_plain_json_lines_stay_the_default_off_a_tty(tmp_path: Path) -> None:
    lines = _run_logging(tmp_path, "log.info('hello', status=200)")
    assert lines[-1] == "format=json"
    body = json.loads(lines[0])
    assert body["event"] == "hello" and "PRIORITY" not in body


def test_forced_journal_format(tmp_path: Path) -> None:
    lines = _run_logging(tmp_path, "log.debug('hidden')\nlog.info('shown')", args="fmt='journal'")
    assert lines[-1] == "format=journal"
    assert len(lines) == 2 and _parse_journal(lines[0])[1]["event"] == "shown"


async def test_daemon_logs_for_journald(tmp_path: Path) -> None:
    async with FakeOpenAIUpstream() as upstream:
        upstream.enqueue_error(503, openai_error("overloaded", "server_error"))
        port = free_port()
        config = tmp_path / "config.yaml"
        config.write_text(compat_config(upstream.base_url, upstream_keys=("sk-a", "sk-b"))
                          .replace("port: 8317", f"port: {port}"))
        daemon = Daemon(config, args=["--log-format", "journal"])
        await daemon.start()
        try:
            await daemon.wait_http(f"http://127.0.0.1:{port}/healthz")
            async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{port}/v1/chat/completions", headers={"Authorization": "Bearer client-key"},
                json={"model": "my-model", "messages": [{"role": "user", "content": "hi"}]},
            ) as resp:
                assert resp.status == 200
                rid = resp.headers["X-Request-Id"]
            assert await daemon.stop() == 0
        finally:
            await daemon.kill()
    raw = [line for line in daemon.output().splitlines() if line.strip()]
    parsed = [_parse_journal(line) for line in raw]
    assert all(str(p) == body["PRIORITY"] for p, body in parsed)
    retry = next(body for _p, body in parsed if body["event"] == "upstream attempt failed")
    assert retry["PRIORITY"] == "4"
    assert retry["request_id"] == rid and retry["model"] == "my-model" and retry["status"] == 503
    assert retry["credential"].startswith("openai-compatibility:")
    access = next(body for _p, body in parsed if body["event"] == "request" and body["path"].startswith("/v1/"))
    assert access["request_id"] == rid and access["status"] == 200 and "latency_ms" in access
    assert "sk-a" not in daemon.output() and "client-key" not in daemon.output()
