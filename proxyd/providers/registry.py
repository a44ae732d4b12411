"""Which Provider handles a credential kind."""

from __future__ import annotations

from proxyd.providers.base import Provider
from proxyd.providers.claude import ClaudeProvider
from proxyd.providers.codex import CodexProvider
from proxyd.providers.gemini import GeminiProvider, VertexProvider
from proxyd.providers.openai_compat import OpenAICompatProvider

PROVIDERS: dict[str, Provider] = {
    provider.kind: provider
    for provider in (OpenAICompatProvider(), GeminiProvider(), VertexProvider(), ClaudeProvider(), CodexProvider())
}


def provider_for(kind: str) -> Provider:
    return PROVIDERS[kind]
