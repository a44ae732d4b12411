"""Gemini API keys (Generative Language API) and Vertex API keys (express mode): generateContent over HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from proxyd.credentials.model import Credential
from proxyd.protocols.base import WireProtocol
from proxyd.providers.base import UpstreamRequest, custom_headers, json_bytes


def _gemini_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The request body: `model` set to the upstream name (as the reference does; it is in the URL too)."""
    payload = dict(body)
    payload.pop("session_id", None)
    payload["model"] = model
    return payload


class GeminiProvider:
    """`gemini-api-key`: `{base}/v1beta/models/{model}:generateContent` / `:streamGenerateContent?alt=sse`."""

    kind = "gemini"
    protocol = WireProtocol.GEMINI
    always_streams = False
    version_path = "/v1beta/models"

    def url(self, credential: Credential, model: str, *, stream: bool) -> str:
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{credential.base_url}{self.version_path}/{quote(model, safe='')}:{action}"

    def build_request(
        self, credential: Credential, upstream_model: str, body: dict[str, Any], *, stream: bool,
        client_headers: Mapping[str, str],
    ) -> UpstreamRequest:
        headers = {"Content-Type": "application/json", "x-goog-api-key": credential.api_key}
        headers.update(custom_headers(credential.headers, client_headers))
        return UpstreamRequest(
            method="POST",
            url=self.url(credential, upstream_model, stream=stream),
            headers=headers,
            body=json_bytes(_gemini_body(body, upstream_model)),
            proxy_url=credential.proxy_url,
        )


    def count_request(
        self, credential: Credential, upstream_model: str, body: dict[str, Any], *, client_headers: Mapping[str, str],
    ) -> UpstreamRequest | None:
        """`:countTokens` with the request's contents (and system instruction); tools and settings removed."""
        inner = _gemini_body(body, upstream_model)
        for name in ("tools", "generationConfig", "safetySettings", "toolConfig", "cachedContent"):
            inner.pop(name, None)
        headers = {"Content-Type": "application/json", "x-goog-api-key": credential.api_key}
        headers.update(custom_headers(credential.headers, client_headers))
        return UpstreamRequest(
            method="POST",
            url=f"{credential.base_url}{self.version_path}/{quote(upstream_model, safe='')}:countTokens",
            headers=headers,
            body=json_bytes(inner),
            proxy_url=credential.proxy_url,
        )

    def count_total(self, answer: dict[str, Any]) -> int:
        total = answer.get("totalTokens", 0)
        return total if isinstance(total, int) else 0


class VertexProvider(GeminiProvider):
    """`vertex-api-key`: `{base}/v1/publishers/google/models/{model}:{action}` with `x-goog-api-key`."""

    kind = "vertex"
    version_path = "/v1/publishers/google/models"
