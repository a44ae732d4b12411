"""The wire protocols proxyd speaks to clients and to upstreams."""

from __future__ import annotations

import enum


class WireProtocol(enum.StrEnum):
    """A request/response dialect; clients and providers each speak one."""

    OPENAI_CHAT = "openai-chat"
    OPENAI_COMPLETIONS = "openai-completions"
    OPENAI_RESPONSES = "openai-responses"
    CLAUDE = "claude"
    GEMINI = "gemini"
