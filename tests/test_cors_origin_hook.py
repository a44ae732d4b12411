"""aiohttp-cors's response hook runs only for requests with `Origin`; the headers are the same either way."""

from __future__ import annotations

from typing import Any

import aiohttp
from fakes import FakeOpenAIUpstream, compat_config

AUTH = {"Authorization": "Bearer client-key"}
BODY = {"model": "my-model", "messages": [{"role": "user", "content": "hi"}]}
NAMES = ("Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
         "Access-Control-Expose-Headers")


def cors_of(headers: Any) -> dict[str, str | None]:
    return {name: headers.get(name) for name in NAMES}


async def test_same_cors_headers_with_and_without_origin(fake_openai: FakeOpenAIUpstream, proxyd_factory: Any) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url))
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.v1}/chat/completions", json=BODY, headers=AUTH) as r:
            assert r.status == 200
            plain = cors_of(r.headers)
        browser = {**AUTH, "Origin": "https://app.example"}
        async with session.post(f"{server.v1}/chat/completions", json=BODY, headers=browser) as r:
            assert r.status == 200
            with_origin = cors_of(r.headers)
        async with session.get(f"{server.v1}/models", headers=browser) as r:
            assert r.status == 200
            models = cors_of(r.headers)
    assert plain["Access-Control-Allow-Origin"] == "*"
    # Browser requests still go through aiohttp-cors, which echoes the origin.
    assert with_origin["Access-Control-Allow-Origin"] == "https://app.example"
    assert models["Access-Control-Allow-Origin"] == "https://app.example"
    for name in NAMES:
        assert plain[name] is not None and with_origin[name] is not None, name
    # aiohttp-cors writes its own expose list for browser requests; the names are the same set.
    assert {h.strip() for h in with_origin["Access-Control-Expose-Headers"].split(",")} == \
        {h.strip() for h in plain["Access-Control-Expose-Headers"].split(",")}


def test_the_aiohttp_cors_hook_runs_only_through_the_edge_hook(tmp_path: Any) -> None:
    from fakes import compat_config as cfg

    from proxyd.app import create_app

    path = tmp_path / "config.yaml"
    path.write_text(cfg("http://127.0.0.1:9/v1"))
    app = create_app(path, watch=False)
    owners = [type(getattr(h, "__self__", None)).__module__ for h in app.on_response_prepare]
    assert "aiohttp_cors.cors_config" not in owners
    assert [getattr(h, "__module__", "") for h in app.on_response_prepare] == ["proxyd.http.edge"]
