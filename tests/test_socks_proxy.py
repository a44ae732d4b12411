"""SOCKS5 proxies for upstream calls (routing.md §6.1): per credential, global, `direct`/`none` bypass."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_authdir import write

from proxyd.providers import base as provider_base

CLIENT_KEY = "client-key"


class TinySocks5:
    """A minimal SOCKS5 server (RFC 1928/1929, CONNECT only) that tunnels to the requested target."""

    def __init__(self, *, username: str | None = None, password: str | None = None) -> None:
        self.username, self.password = username, password
        self.connections: list[tuple[str, int]] = []
        self.auth_seen: list[tuple[str, str]] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, credentials: str = "") -> str:
        return f"socks5://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}"

    async def __aenter__(self) -> TinySocks5:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        assert version == 5
        wanted = 2 if self.username is not None else 0
        if wanted not in methods:
            writer.write(b"\x05\xff")
            return
        writer.write(bytes([5, wanted]))
        if wanted == 2:
            _, ulen = await reader.readexactly(2)
            user = (await reader.readexactly(ulen)).decode()
            (plen,) = await reader.readexactly(1)
            password = (await reader.readexactly(plen)).decode()
            self.auth_seen.append((user, password))
            ok = (user, password) == (self.username, self.password)
            writer.write(b"\x01\x00" if ok else b"\x01\x01")
            if not ok:
                return
        _, command, _, atyp = await reader.readexactly(4)
        if atyp == 1:
            host = ".".join(str(b) for b in await reader.readexactly(4))
        elif atyp == 3:
            (length,) = await reader.readexactly(1)
            host = (await reader.readexactly(length)).decode()
        else:
            writer.write(b"\x05\x08\x00\x01" + b"\x00" * 6)
            return
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        if command != 1:
            writer.write(b"\x05\x07\x00\x01" + b"\x00" * 6)
            return
        self.connections.append((host, port))
        up_reader, up_writer = await asyncio.open_connection(host, port)
        writer.write(b"\x05\x00\x00\x01" + bytes(4) + b"\x00\x00")
        await writer.drain()

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(OSError):
                dst.write_eof()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            up_writer.close()


@pytest.fixture
async def socks() -> AsyncIterator[TinySocks5]:
    async with TinySocks5() as server:
        yield server


def claude_config(base_url: str, *, global_proxy: str = "", key_proxy: str = "", auth_dir: Path | None = None) -> str:
    lines = ['host: "127.0.0.1"', "request-retry: 0", "api-keys:", f'  - "{CLIENT_KEY}"']
    if global_proxy:
        lines.append(f'proxy-url: "{global_proxy}"')
    if auth_dir is not None:
        lines.append(f'auth-dir: "{auth_dir}"')
    else:
        lines += ["claude-api-key:", '  - api-key: "sk-claude"', f'    base-url: "{base_url}"']
        if key_proxy:
            lines.append(f'    proxy-url: "{key_proxy}"')
    return "\n".join(lines) + "\n"


async def ask(server: Any, *, stream: bool = False) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.post(
        f"{server.v1}/messages", headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"},
        json={"model": "claude-sonnet-4-5-20250929", "max_tokens": 16, "stream": stream,
              "messages": [{"role": "user", "content": "hi"}]},
    ) as resp:
        return resp.status, await resp.read()


async def test_per_credential_socks5_proxy_tunnels_the_upstream_call(
        proxyd_factory: Any, fake_claude: Any, socks: TinySocks5) -> None:
    server = await proxyd_factory(claude_config(fake_claude.base_url, key_proxy=socks.url()))
    status, body = await ask(server)
    assert status == 200, body
    assert socks.connections == [("127.0.0.1", fake_claude.port)]
    assert fake_claude.last.api_key == "sk-claude"
    status, body = await ask(server, stream=True)  # streams go through the same pooled connector
    assert status == 200 and b"message_stop" in body
    assert len(fake_claude.requests) == 2


async def test_global_socks5_proxy_and_direct_bypass(proxyd_factory: Any, fake_claude: Any,
                                                     socks: TinySocks5) -> None:
    server = await proxyd_factory(claude_config(fake_claude.base_url, global_proxy=socks.url()))
    assert (await ask(server))[0] == 200
    assert len(socks.connections) == 1
    bypass = await proxyd_factory(claude_config(fake_claude.base_url, global_proxy=socks.url(), key_proxy="direct"))
    assert (await ask(bypass))[0] == 200
    assert len(socks.connections) == 1  # `direct` ignored the global proxy
    none = await proxyd_factory(claude_config(fake_claude.base_url, global_proxy=socks.url(), key_proxy="NONE"))
    assert (await ask(none))[0] == 200
    assert len(socks.connections) == 1


async def test_auth_file_proxy_url_with_credentials(proxyd_factory: Any, fake_claude: Any, tmp_path: Path) -> None:
    async with TinySocks5(username="us er", password="p@ss") as socks:
        write(tmp_path, "c.json", {"type": "claude", "access_token": "oat", "base_url": fake_claude.base_url,
                                   "proxy_url": socks.url("us%20er:p%40ss")})
        server = await proxyd_factory(claude_config(fake_claude.base_url, auth_dir=tmp_path))
        status, body = await ask(server)
        assert status == 200, body
        assert socks.auth_seen == [("us er", "p@ss")]
        assert socks.connections == [("127.0.0.1", fake_claude.port)]
        assert fake_claude.last.bearer == "oat"


async def test_unreachable_socks_proxy_is_a_transport_failure(proxyd_factory: Any, fake_claude: Any) -> None:
    async with TinySocks5() as dead:
        url = dead.url()
    server = await proxyd_factory(claude_config(fake_claude.base_url, key_proxy=url))
    status, body = await ask(server)
    assert status == 500, body  # a transport failure (no upstream status), as the reference answers
    assert fake_claude.requests == []


async def test_refused_socks_auth_is_a_transport_failure(proxyd_factory: Any, fake_claude: Any) -> None:
    async with TinySocks5(username="u", password="right") as socks:
        server = await proxyd_factory(claude_config(fake_claude.base_url, key_proxy=socks.url("u:wrong")))
        status, _ = await ask(server)
        assert status == 500
        assert fake_claude.requests == []


async def test_one_cached_session_per_proxy_url_closed_with_the_main_session(socks: TinySocks5) -> None:
    main = aiohttp.ClientSession()
    first = provider_base._socks_session(main, socks.url())
    assert provider_base._socks_session(main, socks.url()) is first
    other = provider_base._socks_session(main, socks.url("a:b"))
    assert other is not first
    await main.close()
    await provider_base.close_proxy_sessions(main)
    assert first.closed and other.closed
    assert main not in provider_base._SOCKS
