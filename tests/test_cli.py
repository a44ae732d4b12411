"""The `proxyd` command: version, check-config, and the daemon in a real subprocess on the shipped config."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "etc" / "config.yaml"


def _run(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxyd", *args], capture_output=True, text=True, timeout=60, **kw)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_version() -> None:
    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("proxyd ")


def test_check_config_accepts_shipped_config() -> None:
    result = _run("check-config", str(SHIPPED))
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().endswith(": ok")


def test_check_config_reports_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("port: abc\nrouting:\n  strategy: random\nrequest-retry: many\n")
    result = _run("check-config", str(bad))
    assert result.returncode == 1
    out = result.stdout
    assert "port:" in out
    assert "routing.strategy: must be one of round-robin, fill-first, weighted-round-robin" in out
    assert "request-retry:" in out
    assert "Traceback" not in out + result.stderr


def test_check_config_unreadable_file(tmp_path: Path) -> None:
    result = _run("check-config", str(tmp_path / "missing.yaml"))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr


def test_daemon_refuses_invalid_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("port: abc\n")
    result = _run("--config", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert "port" in result.stdout + result.stderr


async def _get(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.json()


async def test_daemon_runs_reloads_and_stops(tmp_path: Path) -> None:
    port = _free_port()
    config = tmp_path / "config.yaml"
    config.write_text(SHIPPED.read_text().replace("port: 8317", f"port: {port}"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxyd", "-config", str(config), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline:
            try:
                status, body = await _get(f"http://127.0.0.1:{port}/")
                break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
        assert status == 200
        assert body["message"] == "CLI Proxy API Server"
        status, models = await _get(f"http://127.0.0.1:{port}/v1/models")
        assert status == 200 and models == {"object": "list", "data": []}
        proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        raw, _ = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
    output = raw.decode()
    assert proc.returncode == 0, output
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    events = [line["event"] for line in lines]
    assert "listening" in events and "stopped" in events
    assert all("level" in line and "timestamp" in line for line in lines)
    request_lines = [line for line in lines if line["event"] == "request"]
    assert request_lines and all(line.get("request_id") for line in request_lines)


@pytest.mark.parametrize("module_args", [["-m", "proxyd", "--help"]])
def test_help(module_args: list[str]) -> None:
    result = subprocess.run([sys.executable, *module_args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "check-config" in result.stdout
