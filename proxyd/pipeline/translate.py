"""translate stage: the client body encoded for each upstream protocol a candidate speaks (memoised).

Until the canonical representation lands, the pairs served are same-protocol passthrough and legacy
completions → chat; any other pair is refused with 501 naming both protocols.
"""

from __future__ import annotations

from typing import Any

from proxyd.http.errors import ProxyError
from proxyd.pipeline.exchange import Exchange
from proxyd.protocols import openai_completions
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.rewrite import CompletionsFromChat, OpenAIChatPassthrough, ResponseRewriter


class Translation:
    """One client request, ready to be encoded for any upstream protocol it can be translated to."""

    def __init__(self, client: WireProtocol, body: dict[str, Any], client_model: str) -> None:
        self.client = client
        self.body = body
        self.client_model = client_model
        self._encoded: dict[WireProtocol, dict[str, Any]] = {}

    def supports(self, upstream: WireProtocol) -> bool:
        return upstream is self.client or (
            self.client is WireProtocol.OPENAI_COMPLETIONS and upstream is WireProtocol.OPENAI_CHAT
        )

    def request_for(self, upstream: WireProtocol) -> dict[str, Any]:
        """The request body for an upstream speaking `upstream` (the model is set later by the provider)."""
        if upstream not in self._encoded:
            if not self.supports(upstream):
                raise ProxyError(501, f"translation from {self.client} to {upstream} is not supported yet",
                                 type="invalid_request_error", code="translation_unsupported")
            if upstream is self.client:
                self._encoded[upstream] = self.body
            else:
                self._encoded[upstream] = openai_completions.completions_request_to_chat(self.body)
        return self._encoded[upstream]

    def rewriter_for(self, upstream: WireProtocol) -> ResponseRewriter:
        if self.client is WireProtocol.OPENAI_COMPLETIONS:
            return CompletionsFromChat(self.client_model)
        if self.client is WireProtocol.OPENAI_CHAT and upstream is WireProtocol.OPENAI_CHAT:
            return OpenAIChatPassthrough(self.client_model)
        raise ProxyError(501, f"translation from {upstream} to {self.client} is not supported yet",
                         type="invalid_request_error", code="translation_unsupported")


class TranslateStage:
    """Prepares the Translation and drops candidates whose protocol cannot be reached from the client's."""

    name = "translate"

    async def run(self, exchange: Exchange) -> None:
        translation = Translation(exchange.protocol, await exchange.json_body(), exchange.model)
        exchange.translation = translation
        reachable = [c for c in exchange.candidates if translation.supports(c.provider.protocol)]
        if not reachable and exchange.candidates:
            # Raises the 501 that names the pair.
            translation.request_for(exchange.candidates[0].provider.protocol)
        exchange.candidates = reachable
