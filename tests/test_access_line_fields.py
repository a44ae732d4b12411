"""The one access line per proxied request names the model, provider and credential (journald fields)."""

from __future__ import annotations

from typing import Any

import aiohttp
import structlog
from fakes import FakeOpenAIUpstream, compat_config

AUTH = {"Authorization": "Bearer client-key"}


async def test_access_line_carries_model_provider_and_credential(fake_openai: FakeOpenAIUpstream,
                                                                 proxyd_factory: Any) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url))
    with structlog.testing.capture_logs() as logs:
        async with aiohttp.ClientSession() as session:
            body = {"model": "my-model", "messages": [{"role": "user", "content": "hi"}]}
            async with session.post(f"{server.v1}/chat/completions", json=body, headers=AUTH) as r:
                assert r.status == 200
            async with session.get(f"{server.url}/healthz") as r:
                assert r.status == 200
    lines = [e for e in logs if e.get("event") == "request"]
    proxied = [e for e in lines if e["path"] == "/v1/chat/completions"]
    assert len(proxied) == 1
    line = proxied[0]
    assert line["model"] == "my-model" and line["status"] == 200
    assert line["provider"] and line["credential"]
    assert "client-key" not in repr(line)
    health = [e for e in lines if e["path"] == "/healthz"]
    assert health and "model" not in health[0]
