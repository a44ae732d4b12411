"""Local token estimates for upstreams without a count endpoint (OpenAI-compatible, Codex).

Counts the text a request would send: system prompt, message text, tool calls and results, tool definitions
and the response schema, with OpenAI's BPE vocabularies (bundled by `bpe-openai`, no download). Images and
files are not counted. It is an estimate for non-OpenAI tokenizers.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from proxyd.protocols.canonical import (
    FilePart,
    ImagePart,
    Request,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
)

_O200K_PREFIXES = ("gpt-5", "gpt-4.1", "gpt-4o", "o1", "o3", "o4", "gpt-oss")
_CL100K_PREFIXES = ("gpt-4", "gpt-3")


def encoding_name_for(model: str, *, fallback: str = "o200k_base") -> str:
    """The BPE vocabulary for a model name, as the reference chooses it (routing.md §1.6)."""
    name = model.lower().rsplit("/", 1)[-1]
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return fallback


@functools.cache
def _encoding(name: str) -> Any:
    import bpe_openai

    return bpe_openai.get_encoding(name)


def count_text(text: str, encoding: str = "o200k_base") -> int:
    """The number of tokens of `text` as plain text (`encode_ordinary`): special-token text such as
    `<|endoftext|>` in a prompt is counted like any other characters and never refused, as the reference's
    tokenizer counts it."""
    if not text:
        return 0
    return len(_encoding(encoding).encode_ordinary(text))


def request_text(request: Request, *, roles: bool = False) -> str:
    """Everything in a request that becomes prompt tokens, as one string.

    `roles` counts each message's role too, as the reference does for OpenAI chat-format upstreams (their
    messages carry a `role` string; Responses input items are counted by content only)."""
    pieces: list[str] = []
    if roles and request.system:
        pieces.append("system")
    pieces.extend(p.text for p in request.system)
    for message in request.messages:
        if roles:
            pieces.append(message.role)
        for part in message.parts:
            if isinstance(part, TextPart | ThinkingPart):
                pieces.append(part.text)
            elif isinstance(part, ToolCallPart):
                pieces.extend((part.name, part.arguments))
            elif isinstance(part, ToolResultPart):
                pieces.extend(p.text for p in part.content if isinstance(p, TextPart))
            elif isinstance(part, ImagePart | FilePart):
                continue
    for tool in request.tools:
        pieces.extend((tool.name, tool.description, json.dumps(tool.parameters, separators=(",", ":"))))
    response_format = request.generation.response_format
    if response_format is not None and response_format.schema is not None:
        pieces.append(json.dumps(response_format.schema, separators=(",", ":")))
    return "\n".join(p for p in pieces if p)


def estimate_request_tokens(request: Request, model: str, *, fallback: str = "o200k_base", roles: bool = False) -> int:
    return count_text(request_text(request, roles=roles), encoding_name_for(model, fallback=fallback))
