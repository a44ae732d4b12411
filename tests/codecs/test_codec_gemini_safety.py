"""Default safetySettings on Gemini-bound bodies (the reference adds them; conformance `gemini.gemini.*`)."""

from __future__ import annotations

from proxyd.protocols.gemini import DEFAULT_SAFETY_SETTINGS, with_default_safety


def test_passthrough_body_gets_default_safety_settings() -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    out = with_default_safety(body)
    assert out["safetySettings"] == [dict(s) for s in DEFAULT_SAFETY_SETTINGS]
    assert out["contents"] == body["contents"] and "safetySettings" not in body  # the client body is not mutated


def test_client_safety_settings_are_kept() -> None:
    own = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]
    body = {"contents": [], "safetySettings": own}
    assert with_default_safety(body) is body
