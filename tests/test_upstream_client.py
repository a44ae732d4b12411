"""The lean upstream client (proxyd.upstream) against raw asyncio servers on 127.0.0.1: request heads identical to
aiohttp's, every body framing, keep-alive reuse and its limits, stale connections, timeouts, TLS, decoding,
flow control, and `providers.base.send` answering exactly as over aiohttp's ClientSession."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import ssl
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from proxyd.http.body import read_stream
from proxyd.http.errors import UpstreamError
from proxyd.providers.base import Timeouts, UpstreamRequest, send
from proxyd.upstream import LeanResponse, UpstreamPool, attach_pool, target_of
from proxyd.upstream.connect import Connector, tls_context

Handler = Callable[["Exchange"], Awaitable[None]]


class Exchange:
    """One request as the raw server read it, and the stream to answer on."""

    def __init__(self, head: bytes, body: bytes, writer: asyncio.StreamWriter, reader: asyncio.StreamReader,
                 connection: int) -> None:
        self.head, self.body, self.writer, self.reader, self.connection = head, body, writer, reader, connection

    async def answer(self, raw: bytes) -> None:
        self.writer.write(raw)
        await self.writer.drain()


class RawServer:
    """An HTTP/1.1 server made of asyncio streams: it reads each request head and Content-Length body and
    hands it to `handler`; it keeps the connection for the next request unless the handler closed it."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.exchanges: list[Exchange] = []
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connection = self.connections
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                exchange = Exchange(head, body, writer, reader, connection)
                self.exchanges.append(exchange)
                await self.handler(exchange)
                if writer.is_closing():
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def response(body: bytes = b"{}", *, status: str = "200 OK", extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            .encode() + body)


def ok(body: bytes = b"{}") -> Handler:
    async def handler(exchange: Exchange) -> None:
        await exchange.answer(response(body))
    return handler


def url(server: RawServer, path: str = "/v1/chat/completions", scheme: str = "http", host: str = "127.0.0.1") -> str:
    return f"{scheme}://{host}:{server.port}{path}"


async def lean(pool: UpstreamPool, address: str, body: bytes = b"{}", headers: dict[str, str] | None = None,
               method: str = "POST", idle: float = 30.0, first_byte: float = 30.0) -> LeanResponse:
    target = target_of(address)
    assert target is not None
    return await pool.request(method, target, headers if headers is not None else {}, body,
                              connect_timeout=5, first_byte_timeout=first_byte, idle_timeout=idle, url=address)


async def read_all(resp: LeanResponse | aiohttp.ClientResponse) -> bytes:
    data = await read_stream(resp.content, 1 << 30)
    assert data is not None
    return data


@pytest.fixture
async def pool() -> Any:
    created = UpstreamPool()
    yield created
    await created.close()


def app_session() -> aiohttp.ClientSession:
    """A session configured as app.py's."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, limit_per_host=0), auto_decompress=True,
                                 headers={}, skip_auto_headers=("User-Agent",))


# -- request heads -------------------------------------------------------------------------------------------
HEADER_CASES = [
    {"Content-Type": "application/json", "Authorization": "Bearer k", "User-Agent": "proxyd-test/1"},
    {"content-type": "application/json", "x-api-key": "k", "anthropic-version": "2023-06-01",
     "Accept": "text/event-stream"},
    {"Accept-Encoding": "identity", "Connection": "Keep-Alive", "Host": "upstream.example:8443"},
    {},
    {"X-Goog-Api-Key": "k", "Accept": "application/json", "accept-encoding": "gzip"},
]


@pytest.mark.parametrize("headers", HEADER_CASES)
@pytest.mark.parametrize("body", [b'{"model":"m"}', b""])
async def test_request_head_is_byte_identical_to_aiohttp(pool: UpstreamPool, headers: dict[str, str],
                                                         body: bytes) -> None:
    async with RawServer(ok()) as server:
        address = url(server, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&x=a%20b")
        async with app_session() as session:
            async with session.request("POST", address, data=body, headers=dict(headers),
                                       allow_redirects=False) as resp:
                await resp.read()
        resp2 = await lean(pool, address, body, headers)
        await read_all(resp2)
        assert len(server.exchanges) == 2
        sent_by_aiohttp, sent_by_lean = server.exchanges
        assert sent_by_lean.head == sent_by_aiohttp.head
        assert sent_by_lean.body == sent_by_aiohttp.body == body


async def test_header_injection_is_refused_as_aiohttp_does(pool: UpstreamPool) -> None:
    async with RawServer(ok()) as server:
        with pytest.raises(ValueError, match="Forbidden control character"):
            await lean(pool, url(server), headers={"X-Evil": "a\r\nInjected: 1"})
        assert server.exchanges == []


async def test_cached_heads_carry_each_body_length(pool: UpstreamPool) -> None:
    async with RawServer(ok()) as server:
        for body in (b"{}", b'{"a":1}', b"", b"x" * 1000):
            await read_all(await lean(pool, url(server), body, {"Content-Type": "application/json"}))
        lengths = [line for e in server.exchanges for line in e.head.split(b"\r\n") if line.startswith(b"Content-L")]
        assert lengths == [b"Content-Length: 2", b"Content-Length: 7", b"Content-Length: 0", b"Content-Length: 1000"]
        assert [e.body for e in server.exchanges] == [b"{}", b'{"a":1}', b"", b"x" * 1000]
        # a caller's own Content-Length is kept as given
        await read_all(await lean(pool, url(server), b"{}", {"Content-Length": "2"}))
        assert b"Content-Length: 2\r\n" in server.exchanges[-1].head


def test_target_parsing() -> None:
    target = target_of("https://api.example.com/v1/chat?x=1")
    assert target is not None
    assert (target.tls, target.host, target.port, target.host_header, target.path, target.ip) == (
        True, "api.example.com", 443, "api.example.com", "/v1/chat?x=1", False)
    v6 = target_of("http://[::1]:8080/a")
    assert v6 is not None and (v6.host, v6.host_header, v6.ip) == ("::1", "[::1]:8080", True)
    # left to aiohttp: credentials in the URL, other schemes, legacy numeric hosts, no host
    assert target_of("http://user:pw@example.com/") is None
    assert target_of("ws://example.com/") is None
    assert target_of("http://127.1/") is None
    assert target_of("/relative") is None


# -- framing -------------------------------------------------------------------------------------------------
async def test_content_length_body_and_reuse(pool: UpstreamPool) -> None:
    async with RawServer(ok(b'{"answer":1}')) as server:
        for _ in range(3):
            resp = await lean(pool, url(server))
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/json"
            assert await read_all(resp) == b'{"answer":1}'
        assert server.connections == 1
        assert pool.idle_count() == 1


async def test_chunked_body_is_reassembled_and_the_connection_reused(pool: UpstreamPool) -> None:
    async def chunked(exchange: Exchange) -> None:
        await exchange.answer(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n")
        for part in (b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"):
            await exchange.answer(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            await asyncio.sleep(0.01)
        await exchange.answer(b"0\r\n\r\n")

    async with RawServer(chunked) as server:
        for _ in range(2):
            resp = await lean(pool, url(server))
            chunks = [chunk async for chunk in resp.content.iter_any()]
            assert b"".join(chunks) == b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
            assert len(chunks) >= 2  # delivered as they came, not at the end
        assert server.connections == 1


async def test_close_delimited_body_is_read_to_eof_and_not_reused(pool: UpstreamPool) -> None:
    async def until_close(exchange: Exchange) -> None:
        await exchange.answer(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst part, ")
        await asyncio.sleep(0.01)
        await exchange.answer(b"second part")
        exchange.writer.close()

    async with RawServer(until_close) as server:
        for _ in range(2):
            resp = await lean(pool, url(server))
            assert await read_all(resp) == b"first part, second part"
        assert server.connections == 2
        assert pool.idle_count() == 0


async def test_body_cut_short_raises_client_payload_error(pool: UpstreamPool) -> None:
    async def short(exchange: Exchange) -> None:
        await exchange.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        exchange.writer.close()

    async with RawServer(short) as server:
        resp = await lean(pool, url(server))
        with pytest.raises(aiohttp.ClientPayloadError):
            await read_all(resp)


async def test_informational_answers_are_skipped(pool: UpstreamPool) -> None:
    async def continued(exchange: Exchange) -> None:
        await exchange.answer(b"HTTP/1.1 100 Continue\r\n\r\n" + response(b"done"))

    async with RawServer(continued) as server:
        resp = await lean(pool, url(server))
        assert resp.status == 200
        assert await read_all(resp) == b"done"


async def test_malformed_answer_is_a_client_response_error(pool: UpstreamPool) -> None:
    async def garbage(exchange: Exchange) -> None:
        await exchange.answer(b"NOT HTTP AT ALL\r\n\r\n")

    async with RawServer(garbage) as server:
        with pytest.raises(aiohttp.ClientResponseError):
            await lean(pool, url(server))


# -- keep-alive limits ---------------------------------------------------------------------------------------
async def test_unread_body_is_never_reused(pool: UpstreamPool) -> None:
    async def big(exchange: Exchange) -> None:
        await exchange.answer(response(b"x" * 300_000))

    async with RawServer(big) as server:
        resp = await lean(pool, url(server))
        await resp.content.readany()
        resp.release()  # before the body was read whole: the connection is closed, not pooled
        with pytest.raises(aiohttp.ClientConnectionError):
            await read_all(resp)
        resp = await lean(pool, url(server))
        assert len(await read_all(resp)) == 300_000
        assert server.connections == 2


async def test_connection_close_answer_is_not_reused(pool: UpstreamPool) -> None:
    async def closing(exchange: Exchange) -> None:
        await exchange.answer(response(b"{}", extra="Connection: close\r\n"))

    async with RawServer(closing) as server:
        for _ in range(2):
            assert await read_all(await lean(pool, url(server))) == b"{}"
        assert server.connections == 2


async def test_peer_closing_an_idle_connection_is_noticed(pool: UpstreamPool) -> None:
    async def answer_then_hang_up(exchange: Exchange) -> None:
        await exchange.answer(response(b"{}"))
        await asyncio.sleep(0.02)
        exchange.writer.close()

    async with RawServer(answer_then_hang_up) as server:
        assert await read_all(await lean(pool, url(server))) == b"{}"
        await asyncio.sleep(0.2)
        assert pool.idle_count() == 0  # asyncio reported the close; the pool does not count it as usable
        assert await read_all(await lean(pool, url(server))) == b"{}"
        assert server.connections == 2


async def test_stale_connection_retries_an_idempotent_request_once(pool: UpstreamPool) -> None:
    seen: dict[int, int] = {}

    async def handler(exchange: Exchange) -> None:
        seen[exchange.connection] = seen.get(exchange.connection, 0) + 1
        if seen[exchange.connection] > 1:
            exchange.writer.close()  # drops the reused connection without answering
            return
        await exchange.answer(response(b"{}"))

    async with RawServer(handler) as server:
        assert await read_all(await lean(pool, url(server), method="GET", body=b"")) == b"{}"
        resp = await lean(pool, url(server), method="GET", body=b"")  # reused, dropped, sent again on a fresh one
        assert await read_all(resp) == b"{}"
        assert server.connections == 2
        assert len(server.exchanges) == 3


async def test_stale_connection_does_not_repeat_a_post_that_was_sent(pool: UpstreamPool) -> None:
    seen: dict[int, int] = {}

    async def handler(exchange: Exchange) -> None:
        seen[exchange.connection] = seen.get(exchange.connection, 0) + 1
        if seen[exchange.connection] > 1:
            exchange.writer.close()
            return
        await exchange.answer(response(b"{}"))

    async with RawServer(handler) as server:
        assert await read_all(await lean(pool, url(server))) == b"{}"
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await lean(pool, url(server))
        assert len(server.exchanges) == 2  # the upstream saw the POST once


async def test_pool_close_closes_idle_and_busy_connections() -> None:
    pool = UpstreamPool()
    release = asyncio.Event()

    async def slow(exchange: Exchange) -> None:
        await exchange.answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await release.wait()

    async with RawServer(slow) as server:
        resp = await lean(pool, url(server))
        await pool.close()
        with pytest.raises(RuntimeError, match="Connection closed"):  # as after ClientSession.close()
            await read_all(resp)
        with pytest.raises(aiohttp.ClientConnectionError):
            await lean(pool, url(server))
        release.set()


# -- timeouts ------------------------------------------------------------------------------------------------
async def test_idle_timeout_between_chunks(pool: UpstreamPool) -> None:
    async def stall(exchange: Exchange) -> None:
        await exchange.answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await asyncio.sleep(2)

    async with RawServer(stall) as server:
        resp = await lean(pool, url(server), idle=0.2)
        assert await resp.content.readany() == b"hello"
        with pytest.raises(aiohttp.ServerTimeoutError) as caught:
            await resp.content.readany()
        assert isinstance(caught.value, TimeoutError)
        assert str(caught.value) == "Timeout on reading data from socket"
        resp.close()


async def test_a_paused_reader_is_not_timed_out(pool: UpstreamPool) -> None:
    """The idle timeout measures the upstream: while a slow client holds the body back, it does not run."""
    async def big(exchange: Exchange) -> None:
        await exchange.answer(response(b"y" * 2_000_000))

    async with RawServer(big) as server:
        resp = await lean(pool, url(server), idle=0.2)
        await asyncio.sleep(0.5)
        assert len(await read_all(resp)) == 2_000_000


async def test_first_byte_timeout_on_a_reused_connection(pool: UpstreamPool) -> None:
    calls = 0

    async def second_is_silent(exchange: Exchange) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await exchange.answer(response(b"{}"))

    async with RawServer(second_is_silent) as server:
        await read_all(await lean(pool, url(server)))
        with pytest.raises(TimeoutError):
            await lean(pool, url(server), first_byte=0.2)
        assert pool.idle_count() == 0  # the connection that timed out is closed, not pooled


# -- send(): the same answers as over aiohttp ----------------------------------------------------------------
async def both(address: str, timeouts: Timeouts = Timeouts(), method: str = "POST") -> list[Any]:
    """What send() gives for one request over aiohttp's session and over the lean client."""
    outcomes: list[Any] = []
    for use_pool in (False, True):
        async with app_session() as session:
            pool = UpstreamPool()
            if use_pool:
                attach_pool(session, pool)
            request = UpstreamRequest(method, address, {"Content-Type": "application/json"}, b"{}")
            try:
                reply = await send(session, request, timeouts)
                try:
                    outcomes.append(("ok", reply.status, await read_all(reply.response)))
                except aiohttp.ClientError as exc:
                    outcomes.append(("cut", type(exc).__name__))
                finally:
                    reply.response.close()
            except UpstreamError as exc:
                outcomes.append(("error", exc.status, exc.body, exc.headers.get("X-Why")))
            finally:
                await pool.close()
    return outcomes


async def test_send_answers_equal_aiohttp_for_success_errors_and_cuts() -> None:
    async def varied(exchange: Exchange) -> None:
        path = exchange.head.split(b" ")[1]
        if path == b"/ok":
            await exchange.answer(response(b'{"ok":true}'))
        elif path == b"/err":
            await exchange.answer(response(b'{"error":"nope"}', status="429 Too Many Requests", extra="X-Why: q\r\n"))
        elif path == b"/cut":
            await exchange.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\npartial")
            exchange.writer.close()
        else:
            exchange.writer.close()

    async with RawServer(varied) as server:
        for path in ("/ok", "/err", "/cut", "/hangup"):
            aio, mine = await both(url(server, path))
            assert mine == aio, path


async def test_send_connection_refused_and_first_byte_timeout_equal_aiohttp() -> None:
    async with RawServer(ok()) as server:
        port = server.port
    aio, mine = await both(f"http://127.0.0.1:{port}/v1/chat/completions")
    assert mine == aio
    assert mine[0] == "error" and mine[1] == 0 and mine[2].startswith(b"upstream request failed: Cannot connect")

    async def silent(exchange: Exchange) -> None:
        await asyncio.sleep(5)

    async with RawServer(silent) as server:
        aio, mine = await both(url(server), Timeouts(connect=5, first_byte=0.2, idle=30))
        assert mine == aio == ("error", 504, b"upstream did not answer within the first-byte timeout", None)


async def test_connect_timeout_is_the_first_byte_504(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiohappyeyeballs

    async def never(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(5)

    monkeypatch.setattr(aiohappyeyeballs, "start_connection", never)
    async with app_session() as session:
        pool = UpstreamPool()
        attach_pool(session, pool)
        with pytest.raises(UpstreamError) as caught:
            await send(session, UpstreamRequest("POST", "http://127.0.0.1:9/x", {}, b"{}"),
                       Timeouts(connect=0.1, first_byte=10, idle=10))
        await pool.close()
    assert (caught.value.status, caught.value.body) == (504, b"upstream did not answer within the first-byte timeout")


# -- decoding ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_bodies_are_decoded_as_aiohttp_does(pool: UpstreamPool, coding: str) -> None:
    text = b'{"text":"' + b"abc" * 5000 + b'"}'
    if coding == "gzip":
        packed = gzip.compress(text)
    elif coding == "deflate":
        packed = zlib.compress(text)
    else:
        squeeze = zlib.compressobj(wbits=-15)
        packed = squeeze.compress(text) + squeeze.flush()
    name = "gzip" if coding == "gzip" else "deflate"

    async def compressed(exchange: Exchange) -> None:
        await exchange.answer(response(packed, extra=f"Content-Encoding: {name}\r\n"))

    async with RawServer(compressed) as server:
        resp = await lean(pool, url(server))
        assert await read_all(resp) == text
        assert resp.headers["Content-Encoding"] == name  # headers as received, as aiohttp leaves them
        raw_pool = UpstreamPool(auto_decompress=False)
        try:
            assert await read_all(await lean(raw_pool, url(server))) == packed
        finally:
            await raw_pool.close()


# -- flow control ----------------------------------------------------------------------------------------------
async def test_a_slow_reader_pauses_the_upstream_socket(pool: UpstreamPool) -> None:
    size = 8_000_000
    sent = 0

    async def flood(exchange: Exchange) -> None:
        nonlocal sent
        await exchange.answer(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        block = b"z" * 65536
        while sent < size:
            exchange.writer.write(block[: size - sent])
            sent += min(len(block), size - sent)
            await exchange.writer.drain()

    async with RawServer(flood) as server:
        resp = await lean(pool, url(server))
        await asyncio.sleep(0.5)
        buffered = resp.content.total_bytes
        assert buffered < 1_000_000  # the client side buffers at most a few read sizes
        assert sent < size  # the server is held back by TCP once the kernel buffers are full
        assert len(await read_all(resp)) == size


# -- TLS -----------------------------------------------------------------------------------------------------
def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_context_verifies_as_aiohttp_does() -> None:
    context = tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context is tls_context()  # made once: loading the CA bundle is slow


async def test_tls_with_sni_host_header_and_verification(tmp_path: Path) -> None:
    cert_path, key_path = self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_path, key_path)
    server_names: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: server_names.append(name)  # type: ignore[assignment]

    async with RawServer(ok(b'{"tls":true}'), ssl_context=server_ctx) as server:
        address = url(server, scheme="https", host="localhost")
        # verification is on: a self-signed certificate fails with aiohttp's error text
        async with app_session() as session:
            with pytest.raises(aiohttp.ClientConnectorCertificateError) as aio_error:
                await session.post(address, data=b"{}")
        default_pool = UpstreamPool()
        try:
            with pytest.raises(aiohttp.ClientConnectorCertificateError) as lean_error:
                await lean(default_pool, address)
        finally:
            await default_pool.close()
        assert str(lean_error.value).split(" [")[0] == str(aio_error.value).split(" [")[0]
        # trusting the certificate: the answer comes back over TLS, SNI names the host, connections are reused
        trusting = ssl.create_default_context(cafile=str(cert_path))
        trusting.set_alpn_protocols(("http/1.1",))
        pool = UpstreamPool(connector=Connector(trusting))
        try:
            for _ in range(2):
                assert await read_all(await lean(pool, address)) == b'{"tls":true}'
        finally:
            await pool.close()
        assert server_names[-1] == "localhost"
        assert server.exchanges[-1].head.split(b"\r\n")[1] == f"Host: localhost:{server.port}".encode()
        assert server.exchanges[-1].connection == server.exchanges[-2].connection
