"""translate stage: the client body encoded for each upstream protocol a candidate speaks (memoised).

Same protocol: the body passes through (the provider sets the upstream model). Legacy completions reach chat
upstreams by the reference's field mapping. Every other pair goes through the canonical representation: the
client codec decodes once, each upstream codec encodes on demand.
"""

from __future__ import annotations

from typing import Any

from proxyd.http.errors import ProxyError
from proxyd.pipeline.exchange import Exchange
from proxyd.protocols import openai_completions
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.canonical import Request
from proxyd.protocols.codec import AnswerContext, CodecError, RequestContext
from proxyd.protocols.gemini_passthrough import normalise_passthrough
from proxyd.protocols.registry import codec_for
from proxyd.protocols.rewrite import CanonicalRewriter, CompletionsFromChat, ResponseRewriter, SSEPassthrough
from proxyd.providers.codex_collab import restore_text, restores_namespace


class Translation:
    """One client request, ready to be encoded for any upstream protocol it can be translated to."""

    def __init__(self, client: WireProtocol, body: dict[str, Any], client_model: str, stream: bool) -> None:
        self.client = client
        self.body = body
        self.client_model = client_model
        self.stream = stream
        self._canonical: Request | None = None
        self._encoded: dict[tuple[WireProtocol, str], dict[str, Any]] = {}

    def _legacy_to_chat(self, upstream: WireProtocol) -> bool:
        return self.client is WireProtocol.OPENAI_COMPLETIONS and upstream is WireProtocol.OPENAI_CHAT

    def supports(self, upstream: WireProtocol) -> bool:
        if upstream is self.client or self._legacy_to_chat(upstream):
            return True
        return codec_for(self.client) is not None and codec_for(upstream) is not None

    def canonical(self) -> Request:
        """The client request in canonical form (decoded once; malformed input → 400 naming the field)."""
        if self._canonical is None:
            codec = codec_for(self.client)
            if codec is None:
                raise self._unsupported(self.client)
            try:
                self._canonical = codec.decode_request(self.body, model=self.client_model, stream=self.stream)
            except CodecError as exc:
                raise ProxyError(400, str(exc), type="invalid_request_error", param=exc.field or None) from None
        return self._canonical

    def validate(self) -> None:
        """Decode now, so a malformed body fails before any upstream is called."""
        if self.client is not WireProtocol.OPENAI_COMPLETIONS and codec_for(self.client) is not None:
            self.canonical()

    def request_for(self, upstream: WireProtocol, upstream_model: str) -> dict[str, Any]:
        """The request body for an upstream speaking `upstream` (providers still set the model)."""
        if upstream is self.client:
            # Gemini passthrough is still normalised as the reference does (translation §2.1, §3.8).
            return normalise_passthrough(self.body) if upstream is WireProtocol.GEMINI else self.body
        # client and body are fixed for this Translation, so (upstream, model) still identifies the encoding.
        key = (upstream, upstream_model)
        if key not in self._encoded:
            if self._legacy_to_chat(upstream):
                self._encoded[key] = openai_completions.completions_request_to_chat(self.body)
            else:
                codec = codec_for(upstream)
                if codec is None:
                    raise self._unsupported(upstream)
                context = RequestContext(client=self.client, client_body=self.body)
                self._encoded[key] = codec.encode_request(self.canonical(), model=upstream_model, context=context)
        return self._encoded[key]

    def rewriter_for(self, upstream: WireProtocol) -> ResponseRewriter:
        if upstream is self.client:
            # Codex collaboration namespaces renamed on the way up are renamed back (providers/codex_collab.py).
            restore = restore_text if upstream is WireProtocol.OPENAI_RESPONSES and restores_namespace(self.body) \
                else None
            return SSEPassthrough(upstream, self.client_model, codec_for(upstream), restore)
        if self._legacy_to_chat(upstream):
            return CompletionsFromChat(self.client_model)
        upstream_codec, client_codec = codec_for(upstream), codec_for(self.client)
        if upstream_codec is None or client_codec is None:
            raise self._unsupported(upstream)
        context = AnswerContext(source=upstream, request=self.canonical(), client_body=self.body)
        return CanonicalRewriter(upstream_codec, client_codec, self.client_model, context)

    def _unsupported(self, upstream: WireProtocol) -> ProxyError:
        return ProxyError(501, f"translation between {self.client} and {upstream} is not available",
                          type="invalid_request_error", code="translation_unsupported")


class TranslateStage:
    """Prepares the Translation, validates the client body, and drops unreachable candidates."""

    name = "translate"

    async def run(self, exchange: Exchange) -> None:
        body = await exchange.json_body()
        if exchange.count and exchange.protocol is WireProtocol.GEMINI:
            wrapped = body.get("generateContentRequest")
            body = wrapped if isinstance(wrapped, dict) else body  # countTokens may wrap a full request
        translation = Translation(exchange.protocol, body, exchange.model, exchange.stream)
        exchange.translation = translation
        reachable = [c for c in exchange.candidates if translation.supports(c.provider.protocol)]
        if not reachable and exchange.candidates:
            raise translation._unsupported(exchange.candidates[0].provider.protocol)
        if any(c.provider.protocol is not exchange.protocol for c in reachable):
            translation.validate()
        exchange.candidates = reachable
