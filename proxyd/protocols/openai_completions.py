"""Legacy `/v1/completions`: mapped onto Chat Completions and back, as the reference does."""

from __future__ import annotations

import json
import math
from typing import Any

DEFAULT_PROMPT = "Complete this:"
_FLOAT_FIELDS = ("temperature", "top_p", "frequency_penalty", "presence_penalty")


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt or DEFAULT_PROMPT
    if prompt is None:
        return DEFAULT_PROMPT
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0] or DEFAULT_PROMPT
    return json.dumps(prompt, separators=(",", ":"))


def completions_request_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat request for a legacy completion request; only the fields the reference keeps survive."""
    chat: dict[str, Any] = {
        "model": body.get("model", ""),
        "messages": [{"role": "user", "content": _prompt_text(body.get("prompt"))}],
    }
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int | float) and not isinstance(max_tokens, bool) and math.isfinite(max_tokens):
        chat["max_tokens"] = int(max_tokens)
    for name in _FLOAT_FIELDS:
        value = body.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            chat[name] = float(value)
    if "stop" in body and body["stop"] is not None:
        chat["stop"] = body["stop"]
    if isinstance(body.get("stream"), bool):
        chat["stream"] = body["stream"]
    if "stream_options" in body and isinstance(body["stream_options"], dict):
        chat["stream_options"] = body["stream_options"]
    logprobs = body.get("logprobs")
    if logprobs not in (None, False, 0):
        chat["logprobs"] = True
    if isinstance(body.get("top_logprobs"), int) and not isinstance(body.get("top_logprobs"), bool):
        chat["top_logprobs"] = body["top_logprobs"]
    if isinstance(body.get("echo"), bool):
        chat["echo"] = body["echo"]
    return chat


def _choice_from_chat(choice: dict[str, Any], text: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"index": choice.get("index", 0)}
    if text is not None:
        out["text"] = text
    out["finish_reason"] = choice.get("finish_reason")
    if choice.get("logprobs") is not None:
        out["logprobs"] = choice["logprobs"]
    return out


def chat_response_to_completion(chat: dict[str, Any]) -> dict[str, Any]:
    """A `text_completion` object from a non-streaming chat completion."""
    choices = []
    for choice in chat.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message") or {}
        choices.append(_choice_from_chat(choice, message.get("content") if isinstance(message, dict) else None))
    out: dict[str, Any] = {
        "id": chat.get("id", ""),
        "object": "text_completion",
        "created": chat.get("created", 0),
        "model": chat.get("model", ""),
        "choices": choices,
    }
    if chat.get("usage") is not None:
        out["usage"] = chat["usage"]
    return out


def chat_chunk_to_completion(chunk: dict[str, Any]) -> dict[str, Any] | None:
    """A streamed `text_completion` chunk, or None when the chat chunk carries nothing a legacy client sees."""
    choices = []
    for choice in chunk.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta") or {}
        text = delta.get("content") if isinstance(delta, dict) else None
        if not text and choice.get("finish_reason") is None:
            continue
        mapped = _choice_from_chat(choice, text or "")
        if mapped["finish_reason"] is None:
            mapped["finish_reason"] = ""  # the reference's mid-stream value
        choices.append(mapped)
    usage = chunk.get("usage")
    if not choices and usage is None:
        return None
    out: dict[str, Any] = {
        "id": chunk.get("id", ""),
        "object": "text_completion",
        "created": chunk.get("created", 0),
        "model": chunk.get("model", ""),
        "choices": choices,
    }
    if usage is not None:
        out["usage"] = usage
    return out
