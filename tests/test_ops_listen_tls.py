"""Listening as the seed says (`host: ""` = every interface, both families; loopback names stay loopback) and TLS
(certificates generated here with `cryptography`, clear exit-2 errors, reload on SIGHUP)."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import aiohttp
import openai
import pytest
from fakes import FakeOpenAIUpstream, compat_config
from test_ops_helpers import (
    Daemon,
    client_context,
    eventually,
    free_port,
    ipv6_available,
    peer_common_name,
    run_daemon,
    self_signed,
)

from proxyd.cli import listen_sockets

needs_ipv6 = pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback here")


def _names(sockets: list[socket.socket]) -> set[tuple[int, str]]:
    try:
        return {(s.family, s.getsockname()[0]) for s in sockets}
    finally:
        for s in sockets:
            s.close()


# ------------------------------------------------------------------------------------------- listening


@needs_ipv6
def test_empty_host_binds_both_families() -> None:
    sockets = listen_sockets("", 0)
    ports = {s.getsockname()[1] for s in sockets}
    v6 = [s for s in sockets if s.family == socket.AF_INET6]
    assert v6 and v6[0].getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
    assert len(ports) == 1  # port 0: one ephemeral port for both
    assert _names(sockets) == {(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")}


def test_loopback_hosts_stay_loopback() -> None:
    assert _names(listen_sockets("127.0.0.1", 0)) == {(socket.AF_INET, "127.0.0.1")}
    names = _names(listen_sockets("localhost", 0))
    assert names and all(addr in ("127.0.0.1", "::1") for _family, addr in names)


def test_unresolvable_host_is_a_startup_error() -> None:
    from proxyd.cli import StartupError

    with pytest.raises(StartupError, match="cannot resolve"):
        listen_sockets("no-such-host.invalid", 0)


@needs_ipv6
async def test_daemon_with_empty_host_answers_on_ipv4_and_ipv6(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f'host: ""\nport: {port}\napi-keys: ["k-ops-test"]\n')
    daemon = await Daemon(config).start()
    try:
        assert await daemon.wait_http(f"http://127.0.0.1:{port}/healthz") == 200
        assert await daemon.wait_http(f"http://[::1]:{port}/healthz") == 200
        assert await daemon.stop() == 0
    finally:
        await daemon.kill()
    listening = next(line for line in daemon.lines() if line["event"] == "listening")
    assert set(listening["addresses"]) == {f"[::]:{port}", f"0.0.0.0:{port}"}


@needs_ipv6
async def test_daemon_on_127_0_0_1_does_not_answer_on_ipv6(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f'host: "127.0.0.1"\nport: {port}\napi-keys: ["k-ops-test"]\n')
    daemon = await Daemon(config).start()
    try:
        assert await daemon.wait_http(f"http://127.0.0.1:{port}/healthz") == 200
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("::1", port), timeout=2).close()
        assert await daemon.stop() == 0
    finally:
        await daemon.kill()


async def test_port_in_use_exits_2_without_traceback(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "config.yaml"
        config.write_text(f'host: "127.0.0.1"\nport: {port}\napi-keys: ["k-ops-test"]\n')
        status, output = await run_daemon(config)
    assert status == 2
    assert "Traceback" not in output
    assert f"cannot listen on 127.0.0.1:{port}" in output


# ------------------------------------------------------------------------------------------------- TLS


def _tls_config(tmp_path: Path, port: int, cert: Path | str, key: Path | str, base: str = "") -> Path:
    config = tmp_path / "config.yaml"
    body = base or f'host: "127.0.0.1"\nport: {port}\napi-keys: ["k-ops-test"]\n'
    config.write_text(body + f'tls:\n  enable: true\n  cert: "{cert}"\n  key: "{key}"\n')
    return config


async def test_tls_serves_the_openai_sdk(tmp_path: Path, fake_openai: FakeOpenAIUpstream) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    base = compat_config(fake_openai.base_url).replace("port: 8317", f"port: {port}")
    daemon = await Daemon(_tls_config(tmp_path, port, cert, key, base)).start()
    trust = client_context(cert)
    try:
        assert await daemon.wait_http(f"https://127.0.0.1:{port}/healthz", ssl_context=trust) == 200
        make_http = getattr(openai, "DefaultAsyncHttpx2Client", None) or openai.DefaultAsyncHttpxClient
        async with make_http(verify=trust) as http:
            client = openai.AsyncOpenAI(base_url=f"https://localhost:{port}/v1", api_key="client-key",
                                        http_client=http, max_retries=0)
            reply = await client.chat.completions.create(model="my-model",
                                                         messages=[{"role": "user", "content": "hi"}])
            assert reply.choices[0].message.content == fake_openai.reply_text
            chunks = [c async for c in await client.chat.completions.create(
                model="my-model", messages=[{"role": "user", "content": "hi"}], stream=True)]
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == fake_openai.reply_text
        # Plain HTTP on the TLS port is not served.
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    await resp.read()
        assert await daemon.stop() == 0
    finally:
        await daemon.kill()
    listening = next(line for line in daemon.lines() if line["event"] == "listening")
    assert listening["scheme"] == "https"


async def test_tls_certificate_reloads_on_sighup(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, common_name="first")
    port = free_port()
    daemon = await Daemon(_tls_config(tmp_path, port, cert, key)).start()
    try:
        first_trust = client_context(cert)
        await daemon.wait_http(f"https://127.0.0.1:{port}/healthz", ssl_context=first_trust)
        assert await peer_common_name("127.0.0.1", port, first_trust) == "first"

        new_cert, new_key = self_signed(tmp_path, common_name="second", name="renewed")
        cert.write_bytes(new_cert.read_bytes())
        key.write_bytes(new_key.read_bytes())
        daemon.signal(signal.SIGHUP)
        second_trust = client_context(new_cert)

        async def renewed() -> bool:
            try:
                return await peer_common_name("127.0.0.1", port, second_trust) == "second"
            except OSError:
                return False

        await eventually(renewed)

        # A broken renewal keeps the working certificate.
        key.write_text("not a key\n")
        daemon.signal(signal.SIGHUP)
        await eventually(lambda: "TLS certificate reload failed" in daemon.output())
        assert await peer_common_name("127.0.0.1", port, second_trust) == "second"
        assert await daemon.stop() == 0
    finally:
        await daemon.kill()


@pytest.mark.parametrize("problem", ["missing cert", "missing key", "directory", "empty", "mismatch", "garbage"])
async def test_unusable_tls_files_exit_2_with_a_clear_message(tmp_path: Path, problem: str) -> None:
    cert, key = self_signed(tmp_path)
    other_cert, other_key = self_signed(tmp_path, name="other")
    expected = {
        "missing cert": (tmp_path / "nope.crt", key, "tls.cert: cannot read"),
        "missing key": (cert, tmp_path / "nope.key", "tls.key: cannot read"),
        "directory": (tmp_path, key, "tls.cert: cannot read"),
        "empty": ("", key, "cert and key are required when enable is true"),
        "mismatch": (cert, other_key, "cannot use certificate"),
        "garbage": (cert, tmp_path / "garbage.key", "cannot use certificate"),
    }
    (tmp_path / "garbage.key").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    cert_path, key_path, message = expected[problem]
    config = _tls_config(tmp_path, free_port(), cert_path, key_path)
    status, output = await run_daemon(config)
    assert status == 2, output
    assert message in output
    assert "Traceback" not in output
    assert "cannot start" in output
    del other_cert


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root reads any file")
async def test_unreadable_key_exits_2(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    key.chmod(0)
    status, output = await run_daemon(_tls_config(tmp_path, free_port(), cert, key))
    assert status == 2
    assert "tls.key: cannot read" in output and "Permission denied" in output
    assert "Traceback" not in output
