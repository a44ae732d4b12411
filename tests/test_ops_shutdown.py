"""Graceful shutdown: SIGTERM stops accepting, lets in-flight streams finish within shutdown-grace-seconds, exits 0.
Also: the daemon runs under MemoryDenyWriteExecute (the kernel's PR_SET_MDWE, what systemd applies)."""

from __future__ import annotations

import asyncio
import ctypes
import json
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from fakes import FakeOpenAIUpstream, compat_config
from test_ops_helpers import Daemon, client_context, free_port, self_signed

BODY = {"model": "my-model", "stream": True, "messages": [{"role": "user", "content": "tell me a long story"}]}
HEADERS = {"Authorization": "Bearer client-key"}


def _config(tmp_path: Path, upstream: FakeOpenAIUpstream, port: int, extra: str = "") -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(compat_config(upstream.base_url, extra=extra).replace("port: 8317", f"port: {port}"))
    return config


def _leftover_temp_files(directory: Path) -> list[Path]:
    return [*directory.glob(".*.tmp"), *directory.glob("*.tmp")]


def _text(events: list[bytes]) -> str:
    out = []
    for raw in events:
        for line in raw.decode().splitlines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                for choice in chunk.get("choices", []):
                    out.append(choice.get("delta", {}).get("content") or "")
    return "".join(out)


async def test_sigterm_lets_a_slow_stream_finish(tmp_path: Path) -> None:
    async with FakeOpenAIUpstream(reply_text="one two three four five six seven eight", chunk_count=8,
                                  chunk_delay=0.3) as upstream:
        port = free_port()
        daemon = await Daemon(_config(tmp_path, upstream, port, "shutdown-grace-seconds: 20\n")).start()
        try:
            await daemon.wait_http(f"http://127.0.0.1:{port}/healthz")
            async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY, headers=HEADERS
            ) as resp:
                assert resp.status == 200
                received = [await resp.content.readany()]
                daemon.signal(signal.SIGTERM)
                signalled = time.monotonic()
                await asyncio.sleep(0.3)
                # Draining: the listener is closed, so new connections are refused.
                with pytest.raises(ConnectionRefusedError):
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                async for chunk in resp.content.iter_any():
                    received.append(chunk)
            assert b"data: [DONE]" in b"".join(received)
            assert _text(received) == upstream.reply_text
            assert upstream.completed_streams == 1
            assert await daemon.wait(20) == 0
            assert time.monotonic() - signalled < 15
        finally:
            await daemon.kill()
    events = [line["event"] for line in daemon.lines()]
    assert events.index("shutting down") < events.index("stopped")
    assert not _leftover_temp_files(tmp_path)  # nothing half written


async def test_grace_period_bounds_the_drain(tmp_path: Path) -> None:
    async with FakeOpenAIUpstream(chunk_count=40, chunk_delay=0.25) as upstream:
        port = free_port()
        daemon = await Daemon(_config(tmp_path, upstream, port, "shutdown-grace-seconds: 1\n")).start()
        try:
            await daemon.wait_http(f"http://127.0.0.1:{port}/healthz")
            async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY, headers=HEADERS
            ) as resp:
                await resp.content.readany()
                daemon.signal(signal.SIGTERM)
                signalled = time.monotonic()
                with pytest.raises(aiohttp.ClientError):
                    async for _chunk in resp.content.iter_any():
                        pass
            assert await daemon.wait(20) == 0
            assert time.monotonic() - signalled < 6  # 1 s grace, not the stream's 10 s
        finally:
            await daemon.kill()


async def test_sigint_also_stops_cleanly(tmp_path: Path) -> None:
    async with FakeOpenAIUpstream() as upstream:
        port = free_port()
        daemon = await Daemon(_config(tmp_path, upstream, port)).start()
        try:
            await daemon.wait_http(f"http://127.0.0.1:{port}/healthz")
            daemon.signal(signal.SIGINT)
            assert await daemon.wait(20) == 0
        finally:
            await daemon.kill()


# ------------------------------------------------------------------------------ MemoryDenyWriteExecute

PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
MDWE_WRAPPER = f"""\
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:
    sys.exit(99)
os.execv(sys.argv[1], sys.argv[1:])
"""


def _mdwe_supported() -> bool:
    import subprocess

    probe = subprocess.run([sys.executable, "-c", MDWE_WRAPPER, "/bin/true"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not sys.platform.startswith("linux") or not hasattr(ctypes, "CDLL"), reason="Linux only")
async def test_daemon_runs_under_memory_deny_write_execute(tmp_path: Path) -> None:
    if not _mdwe_supported():
        pytest.skip("kernel without PR_SET_MDWE (Linux < 6.3)")
    wrapper = tmp_path / "mdwe.py"
    wrapper.write_text(MDWE_WRAPPER)
    cert, key = self_signed(tmp_path)
    async with FakeOpenAIUpstream(chunk_count=4) as upstream:
        port = free_port()
        extra = (f'tls:\n  enable: true\n  cert: "{cert}"\n  key: "{key}"\n'
                 'remote-management:\n  secret-key: "ops-secret"\n')
        daemon = await Daemon(_config(tmp_path, upstream, port, extra), wrapper=[sys.executable, str(wrapper)]).start()
        trust = client_context(cert)
        try:
            await daemon.wait_http(f"https://127.0.0.1:{port}/healthz", ssl_context=trust)
            async with aiohttp.ClientSession() as http:
                async with http.post(f"https://127.0.0.1:{port}/v1/chat/completions", json=BODY,
                                     headers=HEADERS, ssl=trust) as resp:
                    assert resp.status == 200
                    assert b"[DONE]" in await resp.read()
                # bcrypt (the management key) under MDWE too.
                async with http.get(f"https://127.0.0.1:{port}/metrics", ssl=trust,
                                    headers={"Authorization": "Bearer ops-secret"}) as resp:
                    assert resp.status == 200
            assert await daemon.stop() == 0
        finally:
            await daemon.kill()
    assert "Traceback" not in daemon.output()
