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


_THINKING_ON = frozenset(("enabled", "adaptive", "auto"))


def normalise_sampling(payload: dict[str, Any]) -> None:
    """Drop only the sampling settings Anthropic rejects, keeping the rest as the client sent them.

    With thinking on: temperature unless 1, top_p below 0.95, top_k. Otherwise temperature and top_p together
    (Claude 4.x accepts one of them): top_p gives way. The recorded reference build strips temperature and
    top_p from every request instead (conformance divergence, DECISIONS 7: the client's settings reach the
    upstream).
    """
    thinking = payload.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if isinstance(kind, str) and kind.lower() in _THINKING_ON:
        if "temperature" in payload and payload["temperature"] != 1:
            del payload["temperature"]
        top_p = payload.get("top_p")
        if "top_p" in payload and not (isinstance(top_p, int | float) and top_p >= 0.95):
            del payload["top_p"]
        payload.pop("top_k", None)
    elif payload.get("temperature") is not None and payload.get("top_p") is not None:
        del payload["top_p"]


_EPHEMERAL = {"type": "ephemeral"}
_UNCACHEABLE = frozenset(("thinking", "redacted_thinking"))


def _mentions_cache_control(value: Any) -> bool:
    if isinstance(value, dict):
        return "cache_control" in value or any(_mentions_cache_control(v) for v in value.values())
    if isinstance(value, list):
        return any(_mentions_cache_control(v) for v in value)
    return False


def _cache_last_block(blocks: list[Any]) -> list[Any] | None:
    """A copy of `blocks` whose last cacheable block carries an ephemeral breakpoint, or None."""
    for i in range(len(blocks) - 1, -1, -1):
        block = blocks[i]
        if isinstance(block, dict) and block.get("type") not in _UNCACHEABLE:
            if block.get("type") == "text" and not block.get("text"):
                return None
            return [*blocks[:i], {**block, "cache_control": dict(_EPHEMERAL)}, *blocks[i + 1:]]
    return None


def add_cache_breakpoints(payload: dict[str, Any]) -> None:
    """Prompt caching as the recorded reference build does it, when the client marked nothing itself.

    Breakpoints go on the last system block (else on the last tool) and on the last block of the last user
    message (string content becomes one text block). A request with any `cache_control` is left alone.
    """
    if any(_mentions_cache_control(payload.get(k)) for k in ("system", "messages", "tools")):
        return
    system = payload.get("system")
    if isinstance(system, str) and system:
        payload["system"] = [{"type": "text", "text": system, "cache_control": dict(_EPHEMERAL)}]
    elif isinstance(system, list) and system and (cached := _cache_last_block(system)) is not None:
        payload["system"] = cached
    else:
        tools = payload.get("tools")
        if isinstance(tools, list) and tools and isinstance(tools[-1], dict):
            payload["tools"] = [*tools[:-1], {**tools[-1], "cache_control": dict(_EPHEMERAL)}]
    messages = payload.get("messages")
    if not isinstance(messages, list):
        return
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if not (isinstance(message, dict) and message.get("role") == "user"):
            continue
        content = message.get("content")
        if isinstance(content, str):
            blocks: list[Any] | None = ([{"type": "text", "text": content, "cache_control": dict(_EPHEMERAL)}]
                                        if content else None)
        else:
            blocks = _cache_last_block(content) if isinstance(content, list) else None
        if blocks is not None:
            payload["messages"] = [*messages[:i], {**message, "content": blocks}, *messages[i + 1:]]
        return


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
    """Messages API over HTTP; `anthropic-version`/`anthropic-beta` and the client's identity headers are kept."""

    kind = "claude"
    protocol = WireProtocol.CLAUDE
    always_streams = False
    streams_translated = True  # translated non-stream calls stream upstream and are aggregated (routing.md §2.5)

    def build_request(
        self, credential: Credential, upstream_model: str, body: dict[str, Any], *, stream: bool,
        client_headers: Mapping[str, str],
    ) -> UpstreamRequest:
        payload = dict(body)
        payload["model"] = upstream_model
        if "messages" in payload:
            payload["messages"] = drop_unsigned_thinking(payload["messages"])
        add_cache_breakpoints(payload)
        normalise_sampling(payload)
        betas = payload.pop("betas", None)
        if stream:
            payload["stream"] = True
        elif "stream" in payload:
            payload["stream"] = False  # kept as the client wrote it, as the reference does
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
        """API keys carry the client's own headers as the reference does (User-Agent, Accept, Anthropic-Beta,
        X-Stainless-*; no default betas); OAuth tokens look like Claude Code (its User-Agent and betas)."""
        oauth = is_oauth(credential)
        headers = {
            "Content-Type": "application/json",
            "Anthropic-Version": client_headers.get("anthropic-version") or ANTHROPIC_VERSION,
        }
        accept = client_headers.get("accept")
        if accept:
            headers["Accept"] = accept
        for name, value in client_headers.items():
            if name.lower().startswith("x-stainless-"):
                headers[name] = value
        beta = client_headers.get("anthropic-beta") or (DEFAULT_BETAS if oauth else "")
        extra = [betas] if isinstance(betas, str) else [b for b in betas or () if isinstance(b, str)]
        if oauth and "oauth" not in beta:
            extra.insert(0, OAUTH_BETA)
        joined = ",".join(b for b in (beta, *extra) if b)
        if joined:
            headers["Anthropic-Beta"] = joined
        agent = client_headers.get("user-agent", "")
        if oauth:
            headers["User-Agent"] = agent if agent.startswith("claude-cli") else DEFAULT_USER_AGENT
        else:
            headers["User-Agent"] = agent or DEFAULT_USER_AGENT
        if uses_x_api_key(credential):
            headers["x-api-key"] = credential.api_key
        elif credential.api_key:
            headers["Authorization"] = f"Bearer {credential.api_key}"
        headers.update(custom_headers(credential.headers, client_headers))
        return headers
