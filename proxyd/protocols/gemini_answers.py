"""How a Gemini answer translated from another upstream protocol is shaped (the reference translates per pair).

The reference builds a Gemini client's answer differently for each upstream (translation.md §4.6, §4.9, §4.12 and
the recorded conformance goldens): Claude and Codex answers carry `usageMetadata.trafficType`, a `createTime`
and the upstream id as `responseId` and never `candidates[].index`; OpenAI-compatible answers carry `index: 0`,
name the model in `model` (not `modelVersion`) and report usage in a chunk of its own. Each upstream protocol
has one `AnswerStyle`; `style_for(None)` is proxyd's own shape for callers without an exchange context.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from proxyd.protocols.base import WireProtocol
from proxyd.protocols.canonical import Usage

TRAFFIC_TYPE = "PROVISIONED_THROUGHPUT"
CODEX_DELTA_TIME = "2025-08-15T02:52:03.884209Z"
"""The reference's Codex→Gemini chunk template keeps this fixed `createTime` on every content chunk (only the
first and the last chunk get the response's own time); clients see it, so it is reproduced."""

FRACTIONAL_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"
SECONDS_TIME = "%Y-%m-%dT%H:%M:%SZ"


def usage_gemini_convention(usage: Usage) -> dict[str, Any]:
    """Canonical Usage → `usageMetadata` in Gemini's own convention (candidates exclude thoughts)."""
    out: dict[str, Any] = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": max(usage.output_tokens - usage.reasoning_tokens, 0),
        "totalTokenCount": usage.total,
    }
    if usage.reasoning_tokens:
        out["thoughtsTokenCount"] = usage.reasoning_tokens
    if usage.cached_tokens:
        out["cachedContentTokenCount"] = usage.cached_tokens
    return out


def usage_from_claude_counts(usage: Usage) -> dict[str, Any]:
    """Claude's counts as the reference reports them: prompt = Claude's uncached input, candidates = output,
    total = their sum, cached = cache reads + cache writes."""
    cached = usage.cached_tokens + usage.cache_creation_tokens
    prompt = max(usage.input_tokens - cached, 0)
    out: dict[str, Any] = {"promptTokenCount": prompt, "candidatesTokenCount": usage.output_tokens,
                           "totalTokenCount": prompt + usage.output_tokens}
    if cached:
        out["cachedContentTokenCount"] = cached
    return out


def usage_from_codex_counts(usage: Usage) -> dict[str, Any]:
    """Codex counts: prompt = input, candidates = all output (reasoning included), total; nothing else."""
    return {"promptTokenCount": usage.input_tokens, "candidatesTokenCount": usage.output_tokens,
            "totalTokenCount": usage.total}


def usage_from_chat_counts(usage: Usage) -> dict[str, Any]:
    """OpenAI chat counts: prompt = prompt_tokens, candidates = completion_tokens (reasoning included), total,
    thoughts = reasoning tokens and cached = cached prompt tokens when present."""
    out: dict[str, Any] = {"promptTokenCount": usage.input_tokens, "candidatesTokenCount": usage.output_tokens,
                           "totalTokenCount": usage.total}
    if usage.reasoning_tokens:
        out["thoughtsTokenCount"] = usage.reasoning_tokens
    if usage.cached_tokens:
        out["cachedContentTokenCount"] = usage.cached_tokens
    return out


@attrs.frozen
class AnswerStyle:
    """The pair-specific details of a Gemini answer (JSON body and stream chunks) for one upstream protocol."""

    index: bool = False
    """`candidates[].index: 0` on every candidate."""
    model_key: str = "modelVersion"
    """The key naming the model (`model` for OpenAI-compatible upstreams)."""
    response_id: bool = True
    """`responseId` = the upstream's id."""
    json_time: bool = True
    """`createTime` on non-streaming answers (when the answer has a time)."""
    stream_time: bool = False
    """`createTime` on every stream chunk (the upstream's creation time)."""
    time_format: str = FRACTIONAL_TIME
    traffic_type: bool = False
    """`usageMetadata.trafficType` on every answer and chunk (alone on chunks without counts)."""
    usage: Callable[[Usage], dict[str, Any]] = usage_gemini_convention
    foreign_thought_sentinel: bool = False
    """A thought signed by another provider carries `skip_thought_signature_validator` (the foreign signature
    itself is never forwarded)."""
    # ------------------------------------------------------------------ streams
    start_chunk: bool = False
    """An empty-parts chunk when the upstream stream starts."""
    delta_time: str | None = None
    """A fixed `createTime` on content chunks instead of the response's time."""
    signature_chunk: bool = False
    """A foreign thinking signature becomes a chunk `{"thought": true, "thoughtSignature": <sentinel>}`."""
    calls_at_finish: bool = False
    """Function calls are held until the upstream finishes and sent together in one chunk."""
    call_finish_reason: bool = False
    """Chunks holding function calls carry `finishReason: "STOP"`."""
    final_parts_empty: bool = False
    """The final chunk has `parts: []` (proxyd's own default: one empty text part)."""
    final_omits_stop: bool = False
    """The final chunk names a finish reason only when it is not STOP."""
    usage_chunk: bool = False
    """The finish reason closes the candidate in one chunk, usage follows in `{"candidates": [], …}`."""
    synthesize_final: bool = True
    """A stream that ends without the upstream's finish still gets a final chunk."""


DEFAULT_STYLE = AnswerStyle()

STYLES: dict[WireProtocol, AnswerStyle] = {
    WireProtocol.CLAUDE: AnswerStyle(
        stream_time=True, time_format=SECONDS_TIME, traffic_type=True, usage=usage_from_claude_counts,
        foreign_thought_sentinel=True, signature_chunk=True, call_finish_reason=True, final_parts_empty=True,
        synthesize_final=False,
    ),
    WireProtocol.OPENAI_RESPONSES: AnswerStyle(
        stream_time=True, time_format=SECONDS_TIME, traffic_type=True, usage=usage_from_codex_counts,
        start_chunk=True, delta_time=CODEX_DELTA_TIME, calls_at_finish=True, call_finish_reason=True,
        final_parts_empty=True, final_omits_stop=True, synthesize_final=False,
    ),
    WireProtocol.OPENAI_CHAT: AnswerStyle(
        index=True, model_key="model", response_id=False, json_time=False, usage=usage_from_chat_counts,
        calls_at_finish=True, final_parts_empty=True, usage_chunk=True, synthesize_final=False,
    ),
}


def style_for(source: WireProtocol | None) -> AnswerStyle:
    """The answer style for an upstream protocol (proxyd's default for None or an unlisted protocol)."""
    return STYLES.get(source, DEFAULT_STYLE) if source is not None else DEFAULT_STYLE
