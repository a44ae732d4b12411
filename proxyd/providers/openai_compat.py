"""`openai-compatibility` providers: any upstream speaking OpenAI Chat Completions at `{base-url}/chat/completions`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxyd.credentials.model import Credential
from proxyd.protocols.base import WireProtocol
from proxyd.providers.base import LocalCount, UpstreamRequest, custom_headers, json_bytes

USER_AGENT = "cli-proxy-openai-compat"


class OpenAICompatProvider(LocalCount):
    """Chat Completions over HTTP with a Bearer key; streams force `stream_options.include_usage`."""

    kind = "openai-compatibility"
    protocol = WireProtocol.OPENAI_CHAT
    always_streams = False

    def build_request(
        self, credential: Credential, upstream_model: str, body: dict[str, Any], *, stream: bool,
        client_headers: Mapping[str, str],
    ) -> UpstreamRequest:
        payload = dict(body)
        payload["model"] = upstream_model
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if stream:
            payload["stream"] = True
            options = payload.get("stream_options")
            payload["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
            headers["Accept"] = "text/event-stream"
            headers["Cache-Control"] = "no-cache"
        if credential.api_key:
            headers["Authorization"] = f"Bearer {credential.api_key}"
        headers.update(custom_headers(credential.headers, client_headers))
        return UpstreamRequest(
            method="POST",
            url=f"{credential.base_url}/chat/completions",
            headers=headers,
            body=json_bytes(payload),
            proxy_url=credential.proxy_url,
        )
