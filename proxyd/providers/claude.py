"""Claude API keys: the Anthropic Messages API (`{base}/v1/messages?beta=true`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from proxyd.credentials.model import Credential
from proxyd.protocols.base import WireProtocol
from proxyd.providers.base import UpstreamRequest, custom_headers, json_bytes

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_BETAS = "claude-code-20250219,interleaved-thinking-2025-05-14"
DEFAULT_USER_AGENT = "claude-cli/2.1.63 (external, cli)"
OAUTH_BETA = "oauth-2025-04-20"
_COUNT_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers")


def drop_unsigned_thinking(messages: Any) -> Any:
    """Remove thinking blocks without a signature from assistant turns (DECISIONS 8).

    Thinking that another provider produced reaches Claude clients unsigned; sent back to Anthropic it would
    be rejected ("Invalid signature in thinking block"), so it is dropped on the way up. Untouched when clean.
    """
    if not isinstance(messages, list):
        return messages
    out, changed = [], False
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(message, dict) and message.get("role") == "assistant" and isinstance(content, list):
            kept = [b for b in content if not (isinstance(b, dict) and b.get("type") == "thinking"
                                               and not b.get("signature"))]
            if len(kept) != len(content):
                changed = True
                message = {**message, "content": kept or [{"type": "text", "text": ""}]}
        out.append(message)
    return out if changed else messages


def is_oauth(credential: Credential) -> bool:
    """A Claude OAuth token from the auth directory (always sent as a Bearer token)."""
    return credential.options.get("auth_kind") == "oauth"


def uses_x_api_key(credential: Credential) -> bool:
    """Anthropic's own API takes `x-api-key`; custom base URLs (proxies, Kimi…) and OAuth tokens take Bearer."""
    if is_oauth(credential):
        return False
    parts = urlsplit(credential.base_url)
    return parts.scheme == "https" and parts.hostname == "api.anthropic.com"


class ClaudeProvider:
    """Messages API over HTTP; `anthropic-version`/`anthropic-beta` from the client are kept."""

    kind = "claude"
    protocol = WireProtocol.CLAUDE
    always_streams = False

    def build_request(
        self, credential: Credential, upstream_model: str, body: dict[str, Any], *, stream: bool,
        client_headers: Mapping[str, str],
    ) -> UpstreamRequest:
        payload = dict(body)
        payload["model"] = upstream_model
        if "messages" in payload:
            payload["messages"] = drop_unsigned_thinking(payload["messages"])
        betas = payload.pop("betas", None)
        if stream:
            payload["stream"] = True
        else:
            payload.pop("stream", None)
        headers = self._headers(credential, client_headers, betas, stream=stream)
        return UpstreamRequest(
            method="POST",
            url=f"{credential.base_url}/v1/messages?beta=true",
            headers=headers,
            body=json_bytes(payload),
            proxy_url=credential.proxy_url,
        )

    def count_request(
        self, credential: Credential, upstream_model: str, body: dict[str, Any], *, client_headers: Mapping[str, str],
    ) -> UpstreamRequest | None:
        payload = {k: v for k, v in body.items() if k in _COUNT_FIELDS}
        payload["model"] = upstream_model
        return UpstreamRequest(
            method="POST",
            url=f"{credential.base_url}/v1/messages/count_tokens?beta=true",
            headers=self._headers(credential, client_headers, body.get("betas"), stream=False),
            body=json_bytes(payload),
            proxy_url=credential.proxy_url,
        )

    def count_total(self, answer: dict[str, Any]) -> int:
        total = answer.get("input_tokens", 0)
        return total if isinstance(total, int) else 0

    @staticmethod
    def _headers(credential: Credential, client_headers: Mapping[str, str], betas: Any, *, stream: bool
                 ) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Anthropic-Version": client_headers.get("anthropic-version") or ANTHROPIC_VERSION,
            "Accept": "text/event-stream" if stream else "application/json",
        }
        beta = client_headers.get("anthropic-beta") or DEFAULT_BETAS
        extra = [betas] if isinstance(betas, str) else [b for b in betas or () if isinstance(b, str)]
        if is_oauth(credential) and "oauth" not in beta:
            extra.insert(0, OAUTH_BETA)
        headers["Anthropic-Beta"] = ",".join([beta, *extra]) if extra else beta
        agent = client_headers.get("user-agent", "")
        headers["User-Agent"] = agent if agent.startswith("claude-cli") else DEFAULT_USER_AGENT
        if uses_x_api_key(credential):
            headers["x-api-key"] = credential.api_key
        elif credential.api_key:
            headers["Authorization"] = f"Bearer {credential.api_key}"
        headers.update(custom_headers(credential.headers, client_headers))
        return headers
