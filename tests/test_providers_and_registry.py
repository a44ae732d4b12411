"""Provider request building (URLs, auth headers, bodies) and credentials/model registry built from config."""

from __future__ import annotations

import json

from multidict import CIMultiDict

from proxyd.config import parse_config_text
from proxyd.credentials.from_config import credentials_from_config, is_excluded, wildcard_match
from proxyd.credentials.model import Credential, credential_id
from proxyd.models.registry import ModelRegistry
from proxyd.protocols.base import WireProtocol
from proxyd.providers.registry import provider_for

NO_HEADERS: CIMultiDict[str] = CIMultiDict()


def _config(text: str):
    result = parse_config_text(text)
    assert result.ok, result.problems
    assert result.config is not None
    return result.config


def _cred(kind: str, base: str, key: str = "k", headers: dict[str, str] | None = None) -> Credential:
    return Credential(id=f"{kind}:x", kind=kind, provider=kind, protocol=provider_for(kind).protocol,
                      base_url=base, api_key=key, headers=headers or {})


def test_gemini_urls_and_key_header() -> None:
    gemini = provider_for("gemini")
    cred = _cred("gemini", "http://127.0.0.1:9/g")
    req = gemini.build_request(cred, "gemini-2.5-pro", {"model": "x", "contents": []}, stream=False,
                               client_headers=NO_HEADERS)
    assert req.url == "http://127.0.0.1:9/g/v1beta/models/gemini-2.5-pro:generateContent"
    assert req.headers["x-goog-api-key"] == "k"
    assert json.loads(req.body)["model"] == "gemini-2.5-pro"  # the reference writes the upstream name in the body
    stream = gemini.build_request(cred, "gemini-2.5-pro", {}, stream=True, client_headers=NO_HEADERS)
    assert stream.url.endswith(":streamGenerateContent?alt=sse")
    assert "Accept" not in stream.headers and "User-Agent" not in stream.headers
    vertex = provider_for("vertex").build_request(_cred("vertex", "https://v.example"), "gemini-2.5-pro", {},
                                                  stream=False, client_headers=NO_HEADERS)
    assert vertex.url == "https://v.example/v1/publishers/google/models/gemini-2.5-pro:generateContent"


def test_claude_auth_header_depends_on_host() -> None:
    claude = provider_for("claude")
    official = claude.build_request(_cred("claude", "https://api.anthropic.com"), "claude-sonnet-4-5", {},
                                    stream=False, client_headers=NO_HEADERS)
    assert official.headers["x-api-key"] == "k" and "Authorization" not in official.headers
    assert official.url == "https://api.anthropic.com/v1/messages?beta=true"
    custom = claude.build_request(_cred("claude", "http://127.0.0.1:9"), "m", {"betas": ["b-1"]}, stream=True,
                                  client_headers=CIMultiDict({"Anthropic-Beta": "client-beta",
                                                              "User-Agent": "claude-cli/2.0 (external, cli)"}))
    assert custom.headers["Authorization"] == "Bearer k" and "x-api-key" not in custom.headers
    assert custom.headers["Anthropic-Beta"] == "client-beta,b-1"
    assert custom.headers["User-Agent"] == "claude-cli/2.0 (external, cli)"
    body = json.loads(custom.body)
    assert body["model"] == "m" and body["stream"] is True and "betas" not in body


def test_codex_always_streams_and_drops_fields() -> None:
    codex = provider_for("codex")
    assert codex.always_streams
    req = codex.build_request(_cred("codex", "http://127.0.0.1:9/v1"), "gpt-5",
                              {"input": "hi", "previous_response_id": "r", "stream": False}, stream=False,
                              client_headers=NO_HEADERS)
    body = json.loads(req.body)
    assert req.url == "http://127.0.0.1:9/v1/responses"
    assert body["stream"] is True and body["instructions"] == "" and "previous_response_id" not in body
    assert body["store"] is False and body["include"] == ["reasoning.encrypted_content"]
    assert body["input"] == [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]
    tuned = codex.build_request(_cred("codex", "http://x"), "gpt-5", {"input": [{"role": "system", "content": "s"}],
                                "temperature": 0.2, "max_output_tokens": 9, "service_tier": "flex"},
                                stream=True, client_headers=NO_HEADERS)
    tuned_body = json.loads(tuned.body)
    assert tuned_body["input"][0]["role"] == "developer"
    assert not {"temperature", "max_output_tokens", "service_tier"} & set(tuned_body)
    assert req.headers["Authorization"] == "Bearer k"


def test_dollar_header_copies_client_header() -> None:
    compat = provider_for("openai-compatibility")
    cred = _cred("openai-compatibility", "http://127.0.0.1:9/v1",
                 headers={"X-Tenant": "$X-Client-Tenant", "X-Fixed": "v", "X-Absent": "$Nope"})
    req = compat.build_request(cred, "m", {}, stream=False, client_headers=CIMultiDict({"x-client-tenant": "t1"}))
    assert req.headers["X-Tenant"] == "t1"
    assert req.headers["X-Fixed"] == "v"
    assert "X-Absent" not in req.headers


def test_wildcards() -> None:
    assert wildcard_match("gemini-2.5-pro", "gemini-2.5-*")
    assert wildcard_match("gpt-5-mini", "*-mini")
    assert wildcard_match("gemini-2.5-flash-lite", "*flash*")
    assert not wildcard_match("a", "*b*")
    assert not wildcard_match("a", "a*a")
    assert is_excluded("Gemini-2.5-PRO", ["gemini-2.5-*"])


def test_api_key_ids_are_the_recorded_references() -> None:
    """Config key ids as the recorded build's request logs show them: key, base, proxy, prefix and the custom
    headers as `name NUL value NUL` (sorted), Codex keys included."""
    config = _config("""
codex-api-key:
  - api-key: "sk-codex-2"
    base-url: "http://127.0.0.1:38921/codex"
  - api-key: "sk-codex-1"
    base-url: "http://127.0.0.1:38921/codex"
    headers: {"X-E2E-Static": "static-value", "X-E2E-Copied": "$X-Client-Tag"}
""")
    plain, with_headers = credentials_from_config(config)
    assert plain.id == "codex:apikey:39ddf5b44282"
    assert with_headers.id == credential_id("codex:apikey", "sk-codex-1", "http://127.0.0.1:38921/codex", "", "",
                                            "X-E2E-Copied\x00$X-Client-Tag\x00X-E2E-Static\x00static-value\x00")


def test_credentials_and_registry_from_config() -> None:
    config = _config("""
gemini-api-key:
  - api-key: "g1"
    excluded-models: ["gemini-2.5-*", "*image*"]
  - api-key: "g2"
    prefix: "team"
    models:
      - name: "gemini-2.5-pro"
        alias: "gp"
claude-api-key:
  - api-key: "c1"
codex-api-key:
  - api-key: "x1"
    base-url: "http://127.0.0.1:9/v1"
    models:
      - name: "gpt-5-codex"
        alias: "codex"
""")
    creds = credentials_from_config(config)
    assert [c.kind for c in creds] == ["gemini", "gemini", "claude", "codex"]
    assert creds[0].id == credential_id("gemini:apikey", "g1", "", "", "", "")
    assert creds[0].base_url == "https://generativelanguage.googleapis.com"
    assert creds[2].protocol is WireProtocol.CLAUDE and creds[3].protocol is WireProtocol.OPENAI_RESPONSES
    registry = ModelRegistry(creds)
    ids = {m.id for m in registry.list_models()}
    assert "gemini-3-pro-preview" in ids  # g1's catalogue minus exclusions
    assert "gemini-2.5-flash" not in ids and "gemini-3-pro-image-preview" not in ids
    assert {"gp", "team/gp", "codex", "claude-sonnet-4-6"} <= ids
    [route] = registry.routes("team/gp")
    assert route.credential.api_key == "g2" and route.upstream_models == ("gemini-2.5-pro",)
    info = next(m for m in registry.list_models() if m.id == "claude-sonnet-4-6")
    assert info.owned_by == "anthropic" and info.display_name == "Claude 4.6 Sonnet" and info.created == 1771372800


def test_claude_upstream_never_receives_unsigned_thinking() -> None:
    claude = provider_for("claude")
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "from gemini", "signature": ""},
                                          {"type": "thinking", "thinking": "real", "signature": "sig"},
                                          {"type": "text", "text": "hello"}]},
        {"role": "user", "content": "again"},
    ]
    req = claude.build_request(_cred("claude", "http://127.0.0.1:9"), "m", {"messages": messages}, stream=False,
                               client_headers=NO_HEADERS)
    sent = json.loads(req.body)["messages"][1]["content"]
    assert [b.get("signature") for b in sent if b["type"] == "thinking"] == ["sig"]
    assert messages[1]["content"][0]["signature"] == ""  # the client's body is not mutated
