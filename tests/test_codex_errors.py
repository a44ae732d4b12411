"""Codex error answers normalised as the recorded reference build does (providers/codex_errors.py)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from fakes import MATRIX_CLIENT_KEY, matrix_config

from proxyd.http.errors import UpstreamError
from proxyd.providers.codex_errors import classify_codex_error


def _error(status: int, body: Any) -> UpstreamError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return UpstreamError(status, raw, {"Retry-After": "7"})


@pytest.mark.parametrize(("status", "body", "code", "kind"), [
    (401, {"error": {"message": "bad key", "type": "invalid_request_error", "code": None}}, "auth_unavailable",
     "authentication_error"),
    (403, {"error": {"message": "Your token is invalid or expired token", "type": "x"}}, "auth_unavailable",
     "authentication_error"),
    (400, {"error": {"message": "This model's maximum context length is 8192 tokens", "type": "invalid_request_error"}},
     "context_too_large", "invalid_request_error"),
    (413, {"error": {"message": "too big"}}, "context_too_large", "invalid_request_error"),
    (400, {"error": {"message": "Invalid signature in thinking block", "type": "invalid_request_error"}},
     "thinking_signature_invalid", "invalid_request_error"),
    (400, {"error": {"message": "Previous response 'r1' not found.", "code": "previous_response_not_found"}},
     "previous_response_not_found", "invalid_request_error"),
])
def test_known_failures_get_an_explicit_code(status: int, body: Any, code: str, kind: str) -> None:
    out = classify_codex_error(_error(status, body))
    assert out.status == status
    assert json.loads(out.body) == {"error": {"message": body["error"]["message"], "type": kind, "code": code}}
    assert out.headers == {"Retry-After": "7"}


def test_other_failures_pass_unchanged() -> None:
    error = _error(500, {"error": {"message": "boom", "type": "server_error"}})
    assert classify_codex_error(error) is error
    transport = UpstreamError(0, b"upstream request failed: refused")
    assert classify_codex_error(transport) is transport


def test_capacity_and_usage_limits_count_as_429() -> None:
    capacity = classify_codex_error(_error(500, {"error": {"message": "Selected model is at capacity.", "type": "x"}}))
    assert capacity.status == 429 and json.loads(capacity.body)["error"]["message"] == "Selected model is at capacity."
    usage = classify_codex_error(_error(403, {"error": {"type": "usage_limit_reached", "message": "limit"}}))
    assert usage.status == 429


def test_a_message_less_401_keeps_the_body_text() -> None:
    out = classify_codex_error(UpstreamError(401, b"Unauthorized\n"))
    assert json.loads(out.body)["error"] == {"message": "Unauthorized", "type": "authentication_error",
                                             "code": "auth_unavailable"}


async def test_a_codex_401_reaches_a_responses_client_as_auth_unavailable(
        proxyd_factory: Any, fake_openai: Any, fake_claude: Any, fake_gemini: Any, fake_codex: Any) -> None:
    server = await proxyd_factory(matrix_config(fake_openai, fake_claude, fake_gemini, fake_codex))
    fake_codex.enqueue_error(401)
    async with aiohttp.ClientSession() as http, http.post(
            f"{server.url}/v1/responses", headers={"Authorization": f"Bearer {MATRIX_CLIENT_KEY}"},
            json={"model": "codex-model", "input": "hi"}) as resp:
        assert resp.status == 401
        body = await resp.json()
    assert body["error"]["type"] == "authentication_error" and body["error"]["code"] == "auth_unavailable"
