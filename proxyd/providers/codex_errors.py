"""Codex error answers normalised as the recorded reference build does (newer than v6.9.0).

Known Codex failures get an explicit code in an OpenAI-shaped body `{"error": {"message", "type", "code"}}`:
`context_too_large`, `thinking_signature_invalid`, `previous_response_not_found` and `auth_unavailable`; a
"model at capacity" or `usage_limit_reached` answer counts as a 429 whatever its status. Other bodies pass as
they are.
"""

from __future__ import annotations

import json
from typing import Any

from proxyd.http.errors import UpstreamError, reason_phrase

_CONTEXT_WORDS = ("context length", "context_length", "maximum context", "too many tokens")
_CAPACITY_WORDS = ("selected model is at capacity", "model is at capacity. please try a different model")


def _error_object(data: Any) -> dict[str, Any]:
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _message(data: Any) -> str:
    """`error.message`, else a top-level `message` (the reference's lookup order)."""
    message = _text(_error_object(data).get("message"))
    if not message and isinstance(data, dict):
        message = _text(data.get("message"))
    return message


def _classify(status: int, data: Any, raw: str) -> tuple[str, str] | None:
    """(code, type) for a known Codex failure, else None."""
    error = _error_object(data)
    message = _message(data).lower()
    lower = raw.lower()
    code = _text(error.get("code")).lower() if isinstance(error.get("code"), str) else ""
    kind = _text(error.get("type")).lower()
    invalid_request = kind in ("", "invalid_request_error")
    if (status == 413 or code in ("context_length_exceeded", "context_too_large")
            or (invalid_request and any(word in message for word in _CONTEXT_WORDS))):
        return "context_too_large", "invalid_request_error"
    if "invalid signature in thinking block" in lower or "invalid_encrypted_content" in lower:
        return "thinking_signature_invalid", "invalid_request_error"
    if (code == "previous_response_not_found" or "previous_response_not_found" in lower
            or ("previous_response_id" in lower and "not found" in lower)):
        return "previous_response_not_found", "invalid_request_error"
    if (status == 401 or kind == "authentication_error" or code == "invalid_api_key"
            or "invalid or expired token" in lower or "refresh_token_reused" in lower):
        return "auth_unavailable", "authentication_error"
    return None


def _quota_like(data: Any, raw: str) -> bool:
    """A Codex answer the reference treats as a 429: the model at capacity, or the plan's usage limit."""
    candidates = [_message(data), raw]
    if any(word in c.lower() for c in candidates for word in _CAPACITY_WORDS):
        return True
    kinds = [_error_object(data).get("type"), data.get("type") if isinstance(data, dict) else None]
    return any(_text(k).lower() == "usage_limit_reached" for k in kinds)


def classify_codex_error(error: UpstreamError) -> UpstreamError:
    """A non-2xx Codex answer with the recorded build's status and body normalisation applied."""
    if error.status < 400:
        return error
    raw = error.body.decode("utf-8", "replace").strip()
    try:
        data: Any = json.loads(raw)
    except ValueError:
        data = None
    status = 429 if _quota_like(data, raw) else error.status
    known = _classify(status, data, raw)
    if known is None:
        if status == error.status:
            return error
        return UpstreamError(status, error.body, error.headers)
    code, kind = known
    message = _message(data) or raw or reason_phrase(status)
    body = json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()
    return UpstreamError(status, body, error.headers)
