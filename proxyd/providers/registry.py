"""Which Provider handles a credential kind."""

from __future__ import annotations

from proxyd.providers.base import Provider
from proxyd.providers.openai_compat import OpenAICompatProvider

PROVIDERS: dict[str, Provider] = {
    OpenAICompatProvider.kind: OpenAICompatProvider(),
}


def provider_for(kind: str) -> Provider:
    return PROVIDERS[kind]
