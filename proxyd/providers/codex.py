"""Codex API keys: the OpenAI Responses API at `{base-url}/responses`, always streamed (routing.md §2.6)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxyd.credentials.model import Credential
from proxyd.http.errors import UpstreamError
from proxyd.protocols.base import WireProtocol
from proxyd.providers.base import LocalCount, UpstreamRequest, custom_headers, json_bytes
from proxyd.providers.codex_collab import prepare_request
from proxyd.providers.codex_errors import classify_codex_error
from proxyd.providers.codex_session import ClientOrigin, codex_cache_id

# The recorded reference build (newer than v6.9.0) presents itself as this Codex TUI, whatever the client sent.
DEFAULT_USER_AGENT = "codex-tui/0.154.0 (Mac OS 26.5.2; arm64) iTerm.app/3.6.11 (codex-tui; 0.154.0)"
ORIGINATOR = "codex-tui"
# Client headers the reference forwards as they are (`Version` only when the client sent one).
_FORWARDED_HEADERS = ("Version", "X-Codex-Turn-Metadata")
# Fields the Codex backend rejects (translation.md §3.12, routing.md §2.6).
_DROPPED_FIELDS = ("previous_response_id", "prompt_cache_retention", "safety_identifier", "max_output_tokens",
                   "max_completion_tokens", "temperature", "top_p", "truncation", "context_management", "user")
# The recorded build offers the Codex backend's image tool on every /responses call (never twice).
IMAGE_GENERATION_TOOL = {"type": "image_generation", "output_format": "png"}


def _no_models() -> str:
    return ""


def with_image_tool(tools: Any) -> list[Any]:
    """`tools` with the image-generation tool appended unless one is there already."""
    listed = list(tools) if isinstance(tools, list) else []
    if not any(isinstance(t, dict) and t.get("type") == IMAGE_GENERATION_TOOL["type"] for t in listed):
        listed.append(dict(IMAGE_GENERATION_TOOL))
    return listed


class CodexProvider(LocalCount):
    """Responses API over HTTP with a Bearer key; the upstream only streams, so every call streams.

    `origin` (the client's protocol, body and key) decides the prompt-cache / session id (codex_session.py);
    without it (compact, direct callers) a client `prompt_cache_key` is still honoured.
    """

    kind = "codex"
    protocol = WireProtocol.OPENAI_RESPONSES
    always_streams = True

    @staticmethod
    def classify_error(error: UpstreamError) -> UpstreamError:
        """A non-2xx Codex answer as the recorded build reports it (providers/codex_errors.py)."""
        return classify_codex_error(error)

    def build_request(
        self, credential: Credential, upstream_model: str, body: dict[str, Any], *, stream: bool,
        client_headers: Mapping[str, str], origin: ClientOrigin | None = None,
    ) -> UpstreamRequest:
        overrides = origin.model_overrides if origin is not None and origin.model_overrides else _no_models
        payload = prepare_request(dict(body), client_headers, overrides)
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
            "Connection": "Keep-Alive",
            "Originator": ORIGINATOR,
            "User-Agent": DEFAULT_USER_AGENT,
        }
        for name in _FORWARDED_HEADERS:
            value = client_headers.get(name)
            if value:
                headers[name] = value
        if origin is not None:
            payload["tools"] = with_image_tool(payload.get("tools"))
            cache_key = codex_cache_id(origin, client_headers)
            if cache_key:
                payload["prompt_cache_key"] = cache_key
            else:
                payload.pop("prompt_cache_key", None)
        cache_key = payload.get("prompt_cache_key")
        if isinstance(cache_key, str) and cache_key:
            headers["Session-Id"] = cache_key
        if credential.api_key:
            headers["Authorization"] = f"Bearer {credential.api_key}"
        if credential.options.get("auth_kind") == "oauth":  # ChatGPT-account tokens (auth-dir files)
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
