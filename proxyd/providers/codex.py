"""Codex API keys: the OpenAI Responses API at `{base-url}/responses`, always streamed (routing.md §2.6)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from proxyd.credentials.model import Credential
from proxyd.protocols.base import WireProtocol
from proxyd.providers.base import LocalCount, UpstreamRequest, custom_headers, json_bytes

CODEX_VERSION = "0.101.0"
DEFAULT_USER_AGENT = "codex_cli_rs/0.101.0 (Mac OS 26.0.1; arm64) Apple_Terminal/464"
# Fields the Codex backend rejects (translation.md §3.12, routing.md §2.6).
_DROPPED_FIELDS = ("previous_response_id", "prompt_cache_retention", "safety_identifier", "max_output_tokens",
                   "max_completion_tokens", "temperature", "top_p", "truncation", "context_management", "user")


class CodexProvider(LocalCount):
    """Responses API over HTTP with a Bearer key; the upstream only streams, so every call streams."""

    kind = "codex"
    protocol = WireProtocol.OPENAI_RESPONSES
    always_streams = True

    def build_request(
        self, credential: Credential, upstream_model: str, body: dict[str, Any], *, stream: bool,
        client_headers: Mapping[str, str],
    ) -> UpstreamRequest:
        payload = dict(body)
        payload["model"] = upstream_model
        payload["stream"] = True
        for name in _DROPPED_FIELDS:
            payload.pop(name, None)
        if payload.get("service_tier") != "priority":
            payload.pop("service_tier", None)
        payload.setdefault("instructions", "")
        payload["store"] = False
        payload.setdefault("parallel_tool_calls", True)
        include = payload.get("include")
        include = [i for i in include if isinstance(i, str)] if isinstance(include, list) else []
        if "reasoning.encrypted_content" not in include:
            include.append("reasoning.encrypted_content")
        payload["include"] = include
        if isinstance(payload.get("input"), str):
            payload["input"] = [{"type": "message", "role": "user",
                                 "content": [{"type": "input_text", "text": payload["input"]}]}]
        if isinstance(payload.get("input"), list):
            payload["input"] = [
                {**item, "role": "developer"} if isinstance(item, dict) and item.get("role") == "system" else item
                for item in payload["input"]
            ]
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "Version": CODEX_VERSION,
            "Session_id": client_headers.get("session_id") or str(uuid.uuid4()),
            "User-Agent": client_headers.get("user-agent") or DEFAULT_USER_AGENT,
        }
        if credential.api_key:
            headers["Authorization"] = f"Bearer {credential.api_key}"
        if credential.options.get("auth_kind") == "oauth":  # ChatGPT-account tokens (auth-dir files)
            headers["Originator"] = "codex_cli_rs"
            account = credential.options.get("account_id")
            if account:
                headers["Chatgpt-Account-Id"] = str(account)
        headers.update(custom_headers(credential.headers, client_headers))
        return UpstreamRequest(
            method="POST",
            url=f"{credential.base_url}/responses",
            headers=headers,
            body=json_bytes(payload),
            proxy_url=credential.proxy_url,
        )
