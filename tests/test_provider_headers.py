"""Upstream headers and body tweaks per provider, as the recorded reference build sends them (conformance goldens)."""

from __future__ import annotations

import json

from multidict import CIMultiDict

from proxyd.credentials.model import Credential
from proxyd.providers.claude import DEFAULT_USER_AGENT as CLAUDE_CLI_UA
from proxyd.providers.claude import add_cache_breakpoints
from proxyd.providers.codex import DEFAULT_USER_AGENT as CODEX_UA
from proxyd.providers.registry import provider_for

EPHEMERAL = {"type": "ephemeral"}
CLIENT = CIMultiDict({
    "User-Agent": "e2e-sdk/9.9", "Accept": "*/*", "X-Stainless-Lang": "js", "X-Request-Id": "client-req-1",
    "Idempotency-Key": "idem-1", "Version": "0.99.0", "Session_id": "11111111-2222-3333-4444-555555555555",
    "X-Codex-Turn-Metadata": '{"session_id":"abc"}', "Originator": "codex_cli_rs", "OpenAI-Beta": "assistants=v2",
})


def _cred(kind: str, options: dict[str, str] | None = None) -> Credential:
    return Credential(id=f"{kind}:x", kind=kind, provider=kind, protocol=provider_for(kind).protocol,
                      base_url="http://127.0.0.1:9/up", api_key="k", options=options or {})


def test_claude_api_key_passes_the_clients_identity_headers() -> None:
    req = provider_for("claude").build_request(_cred("claude"), "m", {"messages": []}, stream=True,
                                               client_headers=CLIENT)
    assert req.headers["User-Agent"] == "e2e-sdk/9.9"
    assert req.headers["Accept"] == "*/*"
    assert req.headers["X-Stainless-Lang"] == "js"
    assert req.headers["Anthropic-Version"] == "2023-06-01"
    assert "Anthropic-Beta" not in req.headers  # no default betas for API keys
    assert "X-Request-Id" not in req.headers and "Idempotency-Key" not in req.headers
    bare = provider_for("claude").build_request(_cred("claude"), "m", {}, stream=False,
                                                client_headers=CIMultiDict())
    assert "Accept" not in bare.headers and bare.headers["User-Agent"] == CLAUDE_CLI_UA


def test_claude_oauth_keeps_the_claude_code_identity() -> None:
    req = provider_for("claude").build_request(_cred("claude", {"auth_kind": "oauth"}), "m", {}, stream=False,
                                               client_headers=CLIENT)
    assert req.headers["User-Agent"] == CLAUDE_CLI_UA
    assert req.headers["Anthropic-Beta"].startswith("claude-code-20250219")
    assert "oauth-2025-04-20" in req.headers["Anthropic-Beta"]


def test_claude_non_stream_keeps_the_clients_stream_false() -> None:
    provider = provider_for("claude")
    kept = json.loads(provider.build_request(_cred("claude"), "m", {"stream": False}, stream=False,
                                             client_headers=CIMultiDict()).body)
    assert kept["stream"] is False
    absent = json.loads(provider.build_request(_cred("claude"), "m", {}, stream=False,
                                               client_headers=CIMultiDict()).body)
    assert "stream" not in absent


def test_cache_breakpoints_on_last_user_block_and_system_or_tools() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "tools": [{"name": "a"}, {"name": "b"}]}
    add_cache_breakpoints(body)
    assert body["messages"][0]["content"] == [{"type": "text", "text": "hi", "cache_control": EPHEMERAL}]
    assert "cache_control" not in body["tools"][0] and body["tools"][1]["cache_control"] == EPHEMERAL

    body = {"system": [{"type": "text", "text": "s"}], "tools": [{"name": "a"}],
            "messages": [{"role": "user", "content": "first"},
                         {"role": "assistant", "content": [{"type": "text", "text": "x"}]},
                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"},
                                                      {"type": "text", "text": "more"}]}]}
    add_cache_breakpoints(body)
    assert body["system"][0]["cache_control"] == EPHEMERAL
    assert "cache_control" not in body["tools"][0]  # the system prompt takes the breakpoint
    assert body["messages"][0]["content"] == "first"
    assert body["messages"][2]["content"][1]["cache_control"] == EPHEMERAL
    assert "cache_control" not in body["messages"][2]["content"][0]


def test_cache_breakpoints_leave_client_marked_requests_alone() -> None:
    body = {"system": [{"type": "text", "text": "s", "cache_control": EPHEMERAL}],
            "messages": [{"role": "user", "content": "hi"}], "tools": [{"name": "a"}]}
    before = json.dumps(body)
    add_cache_breakpoints(body)
    assert json.dumps(body) == before
    empty = {"messages": [{"role": "user", "content": ""}]}
    add_cache_breakpoints(empty)
    assert empty["messages"][0]["content"] == ""


def test_codex_headers_of_the_recorded_build() -> None:
    req = provider_for("codex").build_request(_cred("codex"), "gpt-5", {"input": "hi"}, stream=False,
                                              client_headers=CLIENT)
    h = req.headers
    assert h["User-Agent"] == CODEX_UA and h["Originator"] == "codex-tui"
    assert h["Connection"] == "Keep-Alive" and h["Accept"] == "text/event-stream"
    assert h["Version"] == "0.99.0" and h["X-Codex-Turn-Metadata"] == '{"session_id":"abc"}'
    assert "Session-Id" not in h and "Session_id" not in h  # the client's Session_id is not forwarded
    bare = provider_for("codex").build_request(_cred("codex"), "gpt-5", {"input": "hi", "prompt_cache_key": "pc-1"},
                                               stream=True, client_headers=CIMultiDict())
    assert "Version" not in bare.headers and bare.headers["Session-Id"] == "pc-1"


def test_compat_and_gemini_send_no_accept_on_json_calls() -> None:
    compat = provider_for("openai-compatibility")
    plain = compat.build_request(_cred("openai-compatibility"), "m", {}, stream=False, client_headers=CLIENT)
    assert "Accept" not in plain.headers and plain.headers["User-Agent"] == "cli-proxy-openai-compat"
    streamed = compat.build_request(_cred("openai-compatibility"), "m", {}, stream=True, client_headers=CLIENT)
    assert streamed.headers["Accept"] == "text/event-stream" and streamed.headers["Cache-Control"] == "no-cache"
    gemini = provider_for("gemini").build_request(_cred("gemini"), "g", {}, stream=True, client_headers=CLIENT)
    assert set(gemini.headers) == {"Content-Type", "x-goog-api-key"}


def test_gemini_count_body_is_the_trimmed_request_with_model() -> None:
    req = provider_for("gemini").count_request(
        _cred("gemini"), "gemini-2.5-flash",
        {"contents": [{"parts": [{"text": "hi"}]}], "tools": [{}], "generationConfig": {}, "safetySettings": []},
        client_headers=CIMultiDict())
    assert req is not None and req.url.endswith("/v1beta/models/gemini-2.5-flash:countTokens")
    assert json.loads(req.body) == {"contents": [{"parts": [{"text": "hi"}]}], "model": "gemini-2.5-flash"}
