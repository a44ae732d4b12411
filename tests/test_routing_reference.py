"""Routing details matched to the recorded reference: retry rounds, cooldown answers, round-robin cursor,
passthrough headers, local token estimates, error summaries (conformance route.* / err.* families)."""

from __future__ import annotations

from typing import Any

import aiohttp
from fakes import FakeOpenAIUpstream, compat_config
from multidict import CIMultiDict

from proxyd.credentials.hints import error_summary
from proxyd.credentials.manager import CredentialManager
from proxyd.credentials.model import Credential
from proxyd.credentials.selectors import RoundRobinSelector
from proxyd.models.registry import Route
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.canonical import Message, Request, TextPart
from proxyd.tokens import estimate_request_tokens

AUTH = {"Authorization": "Bearer client-key"}
BODY = {"model": "my-model", "messages": [{"role": "user", "content": "hi"}]}


def keys(n: int) -> tuple[str, ...]:
    return tuple(f"sk-{i}" for i in range(n))


async def post(server: Any, body: dict[str, Any] | None = None) -> tuple[int, CIMultiDict[str], Any]:
    async with aiohttp.ClientSession() as http, http.post(f"{server.v1}/chat/completions", json=body or BODY,
                                                          headers=AUTH) as resp:
        return resp.status, CIMultiDict(resp.headers), await resp.json()


def test_error_summary_quotes_code_or_type() -> None:
    openai = '{"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limit_exceeded"}}'
    claude = '{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'
    google = '{"error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED"}}'
    assert error_summary(openai) == "rate_limit_exceeded: slow down"
    assert error_summary(claude) == "rate_limit_error: slow down"
    assert error_summary(google) == "slow down"
    assert error_summary("<html>bad gateway</html>") == "<html>bad gateway</html>"


def test_transport_failures_cool_nothing_down() -> None:
    manager = CredentialManager(clock=lambda: 1000.0)
    cred = Credential(id="c1", kind="openai-compatibility", provider="p", protocol=WireProtocol.OPENAI_CHAT,
                      base_url="http://x")
    manager.sync([cred])
    assert manager.mark_failure(cred, "m", 0, "unexpected EOF") == 0.0
    assert manager.blocked_until(cred, "m") is None
    assert manager.mark_failure(cred, "m", 500, "boom") == 1.0
    state = manager.blocking_state(cred, "m")
    assert state is not None and state.last_status == 500 and state.failed_at == 1000.0


def test_round_robin_cursor_moves_past_every_credential_tried() -> None:
    creds = [Credential(id=f"c{i}", kind="k", provider="p", protocol=WireProtocol.OPENAI_CHAT, base_url="http://x")
             for i in range(2)]
    routes = [Route(credential=c, upstream_models=("m",)) for c in creds]
    selector = RoundRobinSelector()
    first = selector.order("m", routes)
    assert [r.credential.id for r in first] == ["c0", "c1"]
    for route in first:  # the request tried both keys
        selector.picked("m", route)
    assert [r.credential.id for r in selector.order("m", routes)] == ["c0", "c1"]  # rotation continues from c0
    assert [r.credential.id for r in selector.order("m", routes)] == ["c1", "c0"]


def test_chat_format_estimates_count_roles() -> None:
    text = TextPart(text="What is the weather in Paris?")
    request = Request(model="m", messages=(Message(role="user", parts=(text,)),))
    assert estimate_request_tokens(request, "mock-gpt-4o") == 7
    assert estimate_request_tokens(request, "mock-gpt-4o", roles=True) == 9  # "user\n" + the text, as the reference


async def test_transport_failures_run_request_retry_rounds(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url, upstream_keys=keys(2),
                                                extra="request-retry: 2\n"))
    fake_openai.enqueue_stream_failure(0, times=5)  # connection closed without an answer, five times
    status, _, body = await post(server)
    assert status == 200 and body["choices"][0]["message"]["content"] == fake_openai.reply_text
    assert len(fake_openai.requests) == 6  # rounds 1 and 2 over both keys, then round 3 succeeds on its second try


async def test_cooldown_answers_quote_the_last_upstream_error(fake_openai: FakeOpenAIUpstream,
                                                              proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url, upstream_keys=keys(2),
                                                extra="request-retry: 0\nmax-retry-interval: 0\n"))
    error = {"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}
    fake_openai.enqueue_error(429, error, {"Retry-After": "120"}, times=2)
    assert (await post(server))[0] == 429
    status, headers, body = await post(server)
    assert status == 429 and 100 <= int(headers["Retry-After"]) <= 120
    assert body["error"]["code"] == "model_cooldown"
    assert body["error"]["message"] == ("All credentials for model my-model are cooling down via provider "
                                        "openai-compatible-fake (last error: rate_limit_exceeded: slow down)")
    assert body["error"]["last_upstream_error"] == "rate_limit_exceeded: slow down"
    assert body["error"]["provider"] == "openai-compatible-fake" and body["error"]["model"] == "my-model"
    assert len(fake_openai.requests) == 2


async def test_non_quota_cooldowns_answer_auth_unavailable(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url, upstream_keys=keys(2),
                                                extra="request-retry: 0\nmax-retry-interval: 0\n"))
    fake_openai.enqueue_error(401, {"error": {"message": "bad key", "type": "authentication_error"}}, times=2)
    assert (await post(server))[0] == 401  # a 401 fails at once (DECISIONS 16)…
    assert (await post(server))[0] == 401  # …the next request tries the other key
    status, headers, body = await post(server)
    assert status == 503 and 1790 <= int(headers["Retry-After"]) <= 1800
    assert body["error"]["message"].startswith(
        "auth_unavailable: no auth available (providers=openai-compatible-fake, model=my-model; "
        "last upstream error: authentication_error: bad key)")
    assert body["error"]["type"] == "server_error"
    assert len(fake_openai.requests) == 2


async def test_passthrough_headers_copy_upstream_headers_on_success(fake_openai: FakeOpenAIUpstream,
                                                                    proxyd_factory) -> None:
    fake_openai.response_headers = {"X-Upstream-Tag": "u1", "Set-Cookie": "a=b"}
    server = await proxyd_factory(compat_config(fake_openai.base_url, extra="passthrough-headers: true\n"))
    status, headers, _ = await post(server)
    assert status == 200
    assert headers["X-Upstream-Tag"] == "u1"
    assert "Set-Cookie" not in headers and headers["Content-Type"] == "application/json"
    off = await proxyd_factory(compat_config(fake_openai.base_url))
    assert "X-Upstream-Tag" not in (await post(off))[1]
