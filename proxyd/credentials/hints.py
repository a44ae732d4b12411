"""Upstream reset hints: how long an upstream asks us to leave a credential alone (DECISIONS 17)."""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_AFTER = re.compile(r"after\s+(\d+(?:\.\d+)?)s\b")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _duration(text: str) -> float | None:
    match = _DURATION.match(text)
    if match is None:
        return None
    return float(match.group(1)) * _UNITS[match.group(2)]


def retry_after_header(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date)."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def _google_hint(error: Mapping[str, Any]) -> float | None:
    details = error.get("details")
    if isinstance(details, list):
        for detail in details:
            if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
                delay = detail.get("retryDelay")
                if isinstance(delay, str) and (seconds := _duration(delay)) is not None:
                    return seconds
        for detail in details:
            if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.ErrorInfo"):
                metadata = detail.get("metadata")
                delay = metadata.get("quotaResetDelay") if isinstance(metadata, dict) else None
                if isinstance(delay, str) and (seconds := _duration(delay)) is not None:
                    return seconds
    message = error.get("message")
    if isinstance(message, str) and (match := _AFTER.search(message)):
        return float(match.group(1))
    return None


def _codex_hint(error: Mapping[str, Any], now: float) -> float | None:
    if error.get("type") != "usage_limit_reached":
        return None
    resets_at = error.get("resets_at")
    if isinstance(resets_at, int | float) and resets_at > now:
        return float(resets_at - now)
    resets_in = error.get("resets_in_seconds")
    if isinstance(resets_in, int | float) and resets_in >= 0:
        return float(resets_in)
    return None


def body_hint(body: bytes, now: float | None = None) -> float | None:
    """Seconds from a 429 body: Google RetryInfo/ErrorInfo/message, or Codex `usage_limit_reached`."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None
    current = now if now is not None else time.time()
    return _codex_hint(error, current) or _google_hint(error)


def reset_hint(headers: Mapping[str, str], body: bytes, now: float | None = None) -> float | None:
    """The upstream's own reset hint for a failed call, header first, then the body."""
    header = retry_after_header(headers, now)
    return header if header is not None else body_hint(body, now)


def error_summary(text: str) -> str:
    """An upstream error as the reference quotes it in cooldown answers: `<code or type>: <message>`.

    The code is taken when it is a string (OpenAI `rate_limit_exceeded`), else the type (Anthropic
    `rate_limit_error`); Google's numeric codes add nothing. Text that is not an error envelope is kept as is.
    """
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return text.strip() if not isinstance(error, str) else error
    message = error.get("message")
    if not isinstance(message, str):
        return text.strip()
    for key in ("code", "type"):
        label = error.get(key)
        if isinstance(label, str) and label:
            return f"{label}: {message}"
    return message
