"""Helpers for the operations tests: the daemon in a subprocess, a fake NOTIFY_SOCKET, self-signed certificates.

(No tests here; the other ``test_ops_*`` modules import from it.)
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Never inherited from the test runner's own environment (the suite may itself run under systemd).
SYSTEMD_VARS = frozenset({"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "MANAGEMENT_PASSWORD"})


def free_port() -> int:
    """A TCP port free on both 127.0.0.1 and ::1 right now."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        try:
            with socket.socket(socket.AF_INET6) as sock6:
                sock6.bind(("::1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


class NotifySocket:
    """A datagram socket standing in for systemd's notify socket (a path, or abstract with ``abstract=True``)."""

    def __init__(self, directory: Path, *, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"proxyd-test-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            path = directory / "notify.sock"
            self.sock.bind(str(path))
            self.address = str(path)
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []

    @property
    def env(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.address}

    async def expect(self, key: str, value: str | None = None, *, within: float = 15.0,
                     after: int = 0) -> dict[str, str]:
        """The first message (from index ``after``) holding ``key`` (with ``value``), waiting up to ``within``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        index = after
        while True:
            while index < len(self.messages):
                message = self.messages[index]
                index += 1
                if key in message and (value is None or message[key] == value):
                    return message
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"no {key}={value or '*'} notification; got {self.messages}")
            try:
                data = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), left)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append(fields)

    def count(self, key: str) -> int:
        return sum(1 for m in self.messages if key in m)

    def close(self) -> None:
        self.sock.close()


class Daemon:
    """``python -m proxyd`` in a subprocess; stdout and stderr go to a file read back at the end."""

    def __init__(self, config: Path, *, env: dict[str, str] | None = None, args: Sequence[str] = (),
                 wrapper: Sequence[str] = ()) -> None:
        self.config = config
        inherited = {k: v for k, v in os.environ.items() if k not in SYSTEMD_VARS}
        # HOME next to the config: the default auth-dir (~/.cli-proxy-api) is the test's own, empty one.
        self.env = {**inherited, "PYTHONUNBUFFERED": "1", "HOME": str(config.parent), **(env or {})}
        self.args = list(args)
        self.wrapper = list(wrapper)
        self.log_path = config.parent / f"{config.stem}.out"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Daemon:
        with self.log_path.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.wrapper, sys.executable, "-m", "proxyd", "--config", str(self.config), *self.args,
                stdout=out, stderr=asyncio.subprocess.STDOUT, env=self.env,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_http(self, url: str, *, within: float = 20.0, ssl_context: ssl.SSLContext | None = None) -> int:
        """Poll ``url`` until it answers; returns the status."""
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as http:
            while True:
                assert self.proc is not None
                if self.proc.returncode is not None:
                    raise AssertionError(f"daemon exited {self.proc.returncode}: {self.output()}")
                try:
                    async with http.get(url, ssl=ssl_context if ssl_context is not None else True) as resp:
                        return resp.status
                except aiohttp.ClientConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)

    async def wait(self, within: float = 30.0) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), within)

    async def stop(self, within: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await self.wait(within)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def lines(self) -> list[dict[str, Any]]:
        """The JSON log lines (a journald ``<N>`` prefix is stripped)."""
        out = []
        for line in self.output().splitlines():
            if line.startswith("<") and ">" in line[:4]:
                line = line[line.index(">") + 1:]
            if line.startswith("{"):
                out.append(json.loads(line))
        return out


async def run_daemon(config: Path, **kw: Any) -> tuple[int, str]:
    """Run a daemon that is expected to exit on its own; returns (status, output)."""
    daemon = await Daemon(config, **kw).start()
    try:
        status = await daemon.wait(30)
    finally:
        await daemon.kill()
    return status, daemon.output()


def self_signed(directory: Path, *, common_name: str = "proxyd test", name: str = "server") -> tuple[Path, Path]:
    """Write ``<name>.crt`` / ``<name>.key``: a self-signed certificate for localhost, 127.0.0.1 and ::1."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def client_context(*cas: Path) -> ssl.SSLContext:
    """A client context trusting only ``cas``."""
    context = ssl.create_default_context()
    for ca in cas:
        context.load_verify_locations(cafile=str(ca))
    return context


async def peer_common_name(host: str, port: int, context: ssl.SSLContext) -> str:
    """The CN of the certificate a fresh TLS connection is served."""
    _reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname="localhost")
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        await writer.wait_closed()
    cert = x509.load_der_x509_certificate(der)
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


async def eventually(check: Callable[[], Any], *, within: float = 10.0, interval: float = 0.05) -> Any:
    """Await ``check()`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)
