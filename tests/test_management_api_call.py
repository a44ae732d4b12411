"""`POST /v0/management/api-call`: provider calls with a stored credential, fenced per DECISIONS 11."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web
from fakes import compat_config

from proxyd.keys import RUNTIME
from proxyd.management.api_call import auth_index_of

MGMT = "mgmt-secret"
AUTH = {"Authorization": f"Bearer {MGMT}"}


async def _server(fake_openai: Any, proxyd_factory: Any) -> Any:
    extra = f'remote-management:\n  secret-key: "{MGMT}"\n'
    return await proxyd_factory(compat_config(fake_openai.base_url, upstream_keys=("sk-up-secret-1",), extra=extra))


async def _call(server: Any, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(f"{server.url}/v0/management/api-call", json=body,
                                                          headers=AUTH) as resp:
        return resp.status, await resp.json()


async def test_call_with_stored_token_reaches_a_configured_host(fake_openai: Any, proxyd_factory: Any) -> None:
    server = await _server(fake_openai, proxyd_factory)
    [cred] = server.app[RUNTIME].current.credentials
    status, body = await _call(server, {"auth_index": auth_index_of(cred), "method": "get",
                                        "url": f"{fake_openai.base_url}/models",
                                        "header": {"Authorization": "Bearer $TOKEN$"}})
    assert status == 200
    assert body["status_code"] == 200 and "gpt-4o" in body["body"]
    assert isinstance(body["header"]["Content-Type"], list)
    assert fake_openai.last.headers["Authorization"] == "Bearer sk-up-secret-1"
    assert "sk-up-secret-1" not in str(body)


async def test_token_echoed_by_the_upstream_is_masked(proxyd_factory: Any, fake_openai: Any) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=f"you sent {request.headers.get('Authorization')}")

    app = web.Application()
    app.router.add_get("/echo", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        extra = f'remote-management:\n  secret-key: "{MGMT}"\n'
        server = await proxyd_factory(compat_config(f"http://127.0.0.1:{port}/v1", upstream_keys=("sk-echoed-99",),
                                                    extra=extra))
        [cred] = server.app[RUNTIME].current.credentials
        status, body = await _call(server, {"authIndex": auth_index_of(cred), "method": "GET",
                                            "url": f"http://127.0.0.1:{port}/echo",
                                            "header": {"Authorization": "Bearer $TOKEN$"}})
        assert status == 200
        assert body["body"] == "you sent Bearer ***"
    finally:
        await runner.cleanup()


async def test_refusals(fake_openai: Any, proxyd_factory: Any) -> None:
    server = await _server(fake_openai, proxyd_factory)
    assert await _call(server, {"url": "https://api.openai.com/v1/models"}) == (400, {"error": "missing method"})
    assert await _call(server, {"method": "GET"}) == (400, {"error": "missing url"})
    assert await _call(server, {"method": "GET", "url": "not a url"}) == (400, {"error": "invalid url"})
    assert await _call(server, ["not", "an", "object"]) == (400, {"error": "invalid body"})
    # Not a configured or public provider host: refused before any connection.
    assert await _call(server, {"method": "GET", "url": "http://example.internal/x"}) == (
        403, {"error": "host not allowed"})
    # Loopback on another port of a host that is not configured as such is refused too (only 127.0.0.1 is
    # configured here, so use the IPv6 loopback name).
    assert (await _call(server, {"method": "GET", "url": "http://[::1]:9/x"}))[0] == 403
    [cred] = server.app[RUNTIME].current.credentials
    assert cred.api_key == "sk-up-secret-1"


async def test_redirects_are_not_followed(proxyd_factory: Any) -> None:
    async def moved(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "http://169.254.169.254/latest/meta-data"})

    app = web.Application()
    app.router.add_get("/moved", moved)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        extra = f'remote-management:\n  secret-key: "{MGMT}"\n'
        server = await proxyd_factory(compat_config(f"http://127.0.0.1:{port}/v1", extra=extra))
        status, body = await _call(server, {"method": "GET", "url": f"http://127.0.0.1:{port}/moved"})
        assert status == 200 and body["status_code"] == 302
    finally:
        await runner.cleanup()


async def test_resolver_refuses_special_addresses_of_untrusted_hosts() -> None:
    import pytest

    from proxyd.management.api_call import CheckingResolver

    resolver = CheckingResolver(["127.0.0.1"])
    with pytest.raises(OSError, match="non-public"):
        await resolver.resolve("localhost", 80)
    assert await resolver.resolve("127.0.0.1", 80)  # a configured base-url host may be local
    await resolver.close()
