"""Token usage as each protocol reports it, read from answers that pass through untranslated."""

from __future__ import annotations

import json
from typing import Any

import orjson

from proxyd.protocols.base import WireProtocol
from proxyd.protocols.canonical import Usage
from proxyd.protocols.claude import usage_from_claude
from proxyd.protocols.gemini import usage_from_gemini
from proxyd.protocols.openai_chat import usage_from_openai
from proxyd.protocols.openai_responses import _usage_from as usage_from_responses

_MARKER = b'"usage'  # matches "usage" and "usageMetadata"


def _nested(data: dict[str, Any], outer: str, inner: str) -> Any:
    value = data.get(outer)
    return value.get(inner) if isinstance(value, dict) else None


def usage_in(protocol: WireProtocol, data: Any) -> Usage | None:
    """The usage an answer object (or one stream event's JSON) of `protocol` carries, if any."""
    if not isinstance(data, dict):
        return None
    if protocol is WireProtocol.CLAUDE:
        return usage_from_claude(data.get("usage") or _nested(data, "message", "usage"))
    if protocol is WireProtocol.GEMINI:
        return usage_from_gemini(data.get("usageMetadata") or _nested(data, "response", "usageMetadata"))
    if protocol is WireProtocol.OPENAI_RESPONSES:
        return usage_from_responses(data.get("usage") or _nested(data, "response", "usage"))
    return usage_from_openai(data.get("usage"))


def merge(old: Usage | None, new: Usage | None) -> Usage | None:
    """Combine partial reports (Claude splits input and output over two events): the larger of each count."""
    if old is None or new is None:
        return new or old
    total = new.total_tokens if new.total_tokens is not None else old.total_tokens
    return Usage(
        input_tokens=max(old.input_tokens, new.input_tokens),
        output_tokens=max(old.output_tokens, new.output_tokens),
        cached_tokens=max(old.cached_tokens, new.cached_tokens),
        cache_creation_tokens=max(old.cache_creation_tokens, new.cache_creation_tokens),
        reasoning_tokens=max(old.reasoning_tokens, new.reasoning_tokens),
        total_tokens=total,
    )


class UsageTap:
    """Watches raw JSON texts going by and keeps the usage they report (cheap: only texts that mention it)."""

    def __init__(self, protocol: WireProtocol) -> None:
        self.protocol = protocol
        self.usage: Usage | None = None

    def feed(self, payload: bytes) -> None:
        if payload.find(_MARKER) < 0:
            return
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            try:
                data = json.loads(payload)
            except ValueError:
                return
        self.usage = merge(self.usage, usage_in(self.protocol, data))
