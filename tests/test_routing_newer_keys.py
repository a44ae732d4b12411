"""Routing features of the recorded reference build newer than v6.9.0: credential `auth_index` seeds,
X-Cpa-Trace-Id, `weighted-round-robin` with per-key `weight`, `request-scoped-errors`, `reset-quota`."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
from fakes import FakeOpenAIUpstream
from multidict import CIMultiDict

from proxyd.config import parse_config_text
from proxyd.credentials.from_config import credentials_from_config
from proxyd.credentials.model import Credential, auth_index_of
from proxyd.credentials.selectors import WeightedRoundRobinSelector, make_selector
from proxyd.http.trace_id import format_trace_id
from proxyd.models.registry import Route
from proxyd.protocols.base import WireProtocol

AUTH = {"Authorization": "Bearer client-key"}
MGMT = {"Authorization": "Bearer mgmt-secret"}
BODY = {"model": "my-model", "messages": [{"role": "user", "content": "hi"}]}
TRACE = re.compile(r"^\d{14}-([0-9a-f]{16})-([0-9a-f-]{36})$")


def _config(base_url: str, *, rules: str = "", weights: tuple[int, int] = (1, 1), extra: str = "") -> str:
    return f"""\
host: "127.0.0.1"
api-keys: ["client-key"]
request-retry: 0
remote-management:
  secret-key: "mgmt-secret"
{extra}
openai-compatibility:
  - name: "fake"
    base-url: "{base_url}"
    api-key-entries:
      - api-key: "sk-1"
        weight: {weights[0]}
      - api-key: "sk-2"
        weight: {weights[1]}
    models:
      - name: "gpt-4o"
        alias: "my-model"
{rules}"""


async def _post(server: Any) -> tuple[int, CIMultiDict[str], Any]:
    async with aiohttp.ClientSession() as http, http.post(f"{server.v1}/chat/completions", json=BODY,
                                                          headers=AUTH) as resp:
        return resp.status, CIMultiDict(resp.headers), await resp.json()


def _credentials(text: str) -> list[Credential]:
    return credentials_from_config(parse_config_text(text).config)


def test_config_keys_get_the_recorded_builds_index() -> None:
    text = """\
claude-api-key:
  - api-key: "sk-claude-1"
    base-url: "http://127.0.0.1:38921/anthropic"
    prefix: "team"
openai-compatibility:
  - name: "mockcompat"
    base-url: "http://127.0.0.1:38921/compat"
    api-key-entries:
      - api-key: "sk-compat-1"
vertex-api-key:
  - api-key: "vk"
"""
    by_kind = {c.kind: c for c in _credentials(text)}
    claude, compat, vertex = by_kind["claude"], by_kind["openai-compatibility"], by_kind["vertex"]
    # the values the recorded build reports for these keys (FORMAT.md §9.1): prefix and models play no part
    assert auth_index_of(claude) == "f46ece6b8824823d"
    assert auth_index_of(compat) == "8db9a3c0713f1d8d"
    assert re.fullmatch(r"[0-9a-f]{16}", auth_index_of(vertex)) and auth_index_of(vertex) != auth_index_of(claude)


def test_trace_id_shape() -> None:
    assert re.fullmatch(r"\d{14}-abc-rid", format_trace_id(0.0, "abc", "rid"))
    assert format_trace_id(0.0, "", "rid") == "" and format_trace_id(0.0, "abc", " ") == ""


def test_weighted_round_robin_is_smooth_and_skips_zero_weights() -> None:
    def route(cid: str, weight: int) -> Route:
        cred = Credential(id=cid, kind="k", provider="p", protocol=WireProtocol.OPENAI_CHAT, base_url="http://x",
                          weight=weight)
        return Route(credential=cred, upstream_models=("m",))

    routes = [route("a", 3), route("b", 1), route("c", 0)]
    selector = make_selector("weighted-round-robin")
    assert isinstance(selector, WeightedRoundRobinSelector)
    firsts = []
    for _ in range(8):
        order = selector.order("m", routes)
        assert "c" not in [r.credential.id for r in order] and len(order) == 2
        firsts.append(order[0].credential.id)
    assert firsts == ["a", "a", "b", "a", "a", "a", "b", "a"]
    reweighted = [route("a", 1), route("b", 1)]  # new weights restart the scores
    assert [selector.order("m", reweighted)[0].credential.id for _ in range(4)] == ["a", "b", "a", "b"]


async def test_trace_header_names_the_last_credential_tried(fake_openai: FakeOpenAIUpstream,
                                                            proxyd_factory) -> None:
    server = await proxyd_factory(_config(fake_openai.base_url))
    creds = {c.api_key: auth_index_of(c) for c in _credentials(_config(fake_openai.base_url))}
    fake_openai.enqueue_error(500, {"error": {"message": "boom", "type": "server_error"}})
    status, headers, _ = await _post(server)
    assert status == 200
    match = TRACE.match(headers["X-Cpa-Trace-Id"])
    assert match is not None, headers.get("X-Cpa-Trace-Id")
    assert match.group(1) == creds[fake_openai.requests[-1].bearer or ""]  # the key that answered, after failover
    assert match.group(2) == headers["X-Request-Id"]
    assert "X-CPA-TRACE-ID" in headers["Access-Control-Expose-Headers"]
    async with aiohttp.ClientSession() as http, http.post(f"{server.v1}/chat/completions", headers=AUTH,
                                                          json={**BODY, "model": "nope"}) as resp:
        assert resp.status == 404 and "X-Cpa-Trace-Id" not in resp.headers  # no credential was tried


async def test_weights_steer_requests(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    server = await proxyd_factory(_config(fake_openai.base_url, weights=(3, 1),
                                          extra="routing:\n  strategy: wrr\n"))
    for _ in range(8):
        assert (await _post(server))[0] == 200
    keys = [r.bearer for r in fake_openai.requests]
    assert keys.count("sk-1") == 6 and keys.count("sk-2") == 2


async def test_scoped_stop_answers_at_once_without_cooldown(fake_openai: FakeOpenAIUpstream,
                                                            proxyd_factory) -> None:
    rules = ("    request-scoped-errors:\n"
             "      - status: 429\n        match: [\"per request\"]\n        action: stop\n")
    server = await proxyd_factory(_config(fake_openai.base_url, rules=rules, extra="routing:\n  strategy: ff\n"))
    fake_openai.enqueue_error(429, {"error": {"message": "per request limit", "type": "rate_limit_error"}})
    status, _, body = await _post(server)
    assert status == 429 and body["error"]["message"] == "per request limit"
    assert len(fake_openai.requests) == 1  # no failover to sk-2
    assert (await _post(server))[0] == 200
    first = fake_openai.requests[0].bearer
    assert [r.bearer for r in fake_openai.requests] == [first, first]  # fill-first: the key was not cooled


async def test_scoped_continue_and_cooldown(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    rules = ("    request-scoped-errors:\n"
             "      - status: 400\n        match-regexr: [\"cont[a-z]+ length\"]\n"
             "        action: continue-and-cooldown\n")
    server = await proxyd_factory(_config(fake_openai.base_url, rules=rules, extra="routing:\n  strategy: ff\n"))
    fake_openai.enqueue_error(400, {"error": {"message": "context length", "type": "invalid_request_error"}})
    assert (await _post(server))[0] == 200  # a 400 fails at once without the rule (DECISIONS 16)
    assert (await _post(server))[0] == 200
    first = fake_openai.requests[0].bearer  # fill-first: the lower credential id
    other = "sk-2" if first == "sk-1" else "sk-1"
    assert [r.bearer for r in fake_openai.requests] == [first, other, other]  # the first one cooling down
    config = _config(fake_openai.base_url)
    index = next(auth_index_of(c) for c in _credentials(config) if c.api_key == first)
    async with aiohttp.ClientSession() as http:
        url = f"{server.url}/v0/management/reset-quota"
        async with http.post(url, json={"auth_index": index}, headers=MGMT) as resp:
            assert resp.status == 200
            assert await resp.json() == {"status": "ok", "auth_index": index, "models": ["my-model"]}
        async with http.post(url, json={"auth_index": "0" * 16}, headers=MGMT) as resp:
            assert resp.status == 404 and await resp.json() == {"error": "auth not found"}
        async with http.post(url, json={}, headers=MGMT) as resp:
            assert resp.status == 400 and await resp.json() == {"error": "auth_index is required"}
    assert (await _post(server))[0] == 200
    assert fake_openai.requests[-1].bearer == first  # usable again
