"""Codex prompt-cache / session ids: the recorded reference build's derivation (providers/codex_session.py)."""

from __future__ import annotations

import json
import uuid

import pytest

from proxyd.credentials.model import Credential
from proxyd.protocols.base import WireProtocol
from proxyd.providers.codex import CodexProvider
from proxyd.providers.codex_session import ClientOrigin, codex_cache_id

KEY = "e2e-client-key"
PROMPT = "What is the weather in Paris?"


@pytest.mark.parametrize(("protocol", "body", "expected"), [
    # Values recorded from the reference (conformance goldens responses/chat/claude/gemini.codex.*).
    (WireProtocol.OPENAI_RESPONSES, {"input": PROMPT}, "71f2b058-574d-5062-947c-562c511cf85d"),
    (WireProtocol.OPENAI_CHAT, {"messages": [{"role": "user", "content": PROMPT}]},
     "21e58078-e35b-56a5-90c8-532d647c353d"),
    (WireProtocol.CLAUDE, {"messages": [{"role": "user", "content": PROMPT}]},
     "0125194a-61ab-5bc6-9f59-dcfcdcbe2a31"),
    (WireProtocol.GEMINI, {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]},
     "adf1044d-b029-5ce7-80fd-8cb194f3cf8e"),
])
def test_derived_ids_match_the_recordings(protocol: WireProtocol, body: dict, expected: str) -> None:
    assert codex_cache_id(ClientOrigin(protocol, body, KEY), {}) == expected


def test_instructions_and_images_are_part_of_the_root() -> None:
    body = {"instructions": "You are a terse weather bot.", "input": [{"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "What does this look like and what is the weather in Paris?"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAAD"
                                             "UlEQVR4nGP4z8DwHwAFAAH/q842iQAAAABJRU5ErkJggg=="}]}]}
    assert codex_cache_id(ClientOrigin(WireProtocol.OPENAI_RESPONSES, body, KEY), {}) == \
        "fa87935e-57e6-50d1-91a0-5d889fcb6b86"


def test_other_keys_and_prompts_get_other_ids() -> None:
    base = codex_cache_id(ClientOrigin(WireProtocol.OPENAI_RESPONSES, {"input": PROMPT}, KEY), {})
    assert codex_cache_id(ClientOrigin(WireProtocol.OPENAI_RESPONSES, {"input": PROMPT}, "other"), {}) != base
    assert codex_cache_id(ClientOrigin(WireProtocol.OPENAI_RESPONSES, {"input": "hi"}, KEY), {}) != base


def test_client_given_sessions_win_or_suppress_the_derivation() -> None:
    given = {"input": PROMPT, "prompt_cache_key": "mine"}
    assert codex_cache_id(ClientOrigin(WireProtocol.OPENAI_RESPONSES, given, KEY), {}) == "mine"
    origin = ClientOrigin(WireProtocol.OPENAI_RESPONSES, {"input": PROMPT}, KEY)
    assert codex_cache_id(origin, {"Session_id": "11111111-2222-3333-4444-555555555555"}) == ""
    claude = ClientOrigin(WireProtocol.CLAUDE, {"messages": [{"role": "user", "content": "x"}],
                                                "metadata": {"user_id": "user-1"}}, KEY)
    assert codex_cache_id(claude, {}) == ""
    # A Chat client naming its own session still gets the client key's own id.
    chat = ClientOrigin(WireProtocol.OPENAI_CHAT, {"messages": [{"role": "user", "content": "x"}]}, KEY)
    assert codex_cache_id(chat, {"X-Session-ID": "s"}) == str(
        uuid.uuid5(uuid.NAMESPACE_OID, f"cli-proxy-api:codex:prompt-cache:{KEY}"))


def test_provider_writes_the_id_twice_and_offers_the_image_tool() -> None:
    credential = Credential(id="codex:x", kind="codex", provider="codex", protocol=WireProtocol.OPENAI_RESPONSES,
                            base_url="http://127.0.0.1:1", api_key="sk")
    body = {"model": "m", "input": PROMPT, "tools": [{"type": "image_generation", "output_format": "webp"}]}
    origin = ClientOrigin(WireProtocol.OPENAI_RESPONSES, body, KEY)
    request = CodexProvider().build_request(credential, "m", body, stream=False, client_headers={}, origin=origin)
    sent = json.loads(request.body)
    assert sent["prompt_cache_key"] == request.headers["Session-Id"] == "71f2b058-574d-5062-947c-562c511cf85d"
    assert sent["tools"] == [{"type": "image_generation", "output_format": "webp"}]  # never twice
    plain = CodexProvider().build_request(credential, "m", {"input": PROMPT}, stream=False, client_headers={},
                                          origin=origin)
    assert json.loads(plain.body)["tools"] == [{"type": "image_generation", "output_format": "png"}]
