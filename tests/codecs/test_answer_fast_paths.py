"""The answer-side fast paths give exactly what the straightforward code gives.

Stream encoders: Chat text chunks framed from templates, Claude deltas assembled from constant pieces — checked
against the same encoders with the fast paths off (chunk objects through the JSON encoder), for every answer
shape, over random event sequences. Stream decoders: the Gemini and Chat decoders' shortcuts for parsed JSON —
checked against the previous implementations, kept here as oracles, over random upstream chunks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxyd.protocols import claude, gemini, openai_chat
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.canonical import (
    Finish,
    FinishReason,
    StreamError,
    StreamEvent,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ThinkingSignature,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from proxyd.protocols.codec import AnswerContext
from proxyd.protocols.sse import SSEEvent

TEXT = st.text(max_size=6) | st.sampled_from(["", "word ", "é😀", '"\\\n\t', "\x00\x7f\u2028"])
SOURCES = [None, *WireProtocol]
EVENTS = st.one_of(
    st.builds(StreamStart, id=st.sampled_from(["", "chatcmpl-x", "resp_1"]), model=st.just("m"),
              created=st.sampled_from([0, 1_700_000_000])),
    st.builds(TextDelta, TEXT),
    st.builds(TextDelta, TEXT),
    st.builds(ThinkingDelta, TEXT),
    st.builds(ThinkingSignature, st.sampled_from(["", "sig"]), st.sampled_from(list(WireProtocol))),
    st.builds(ToolCallStart, index=st.integers(0, 2), id=st.sampled_from(["t1", "t2", "toolu_x"]),
              name=st.sampled_from(["f", "g"])),
    st.builds(ToolCallDelta, index=st.integers(0, 2), arguments=st.sampled_from(["", "{", '"a":1', "}"])),
    st.builds(ToolCallEnd, index=st.integers(0, 2)),
    st.builds(UsageUpdate, st.builds(Usage, input_tokens=st.integers(0, 50), output_tokens=st.integers(0, 50),
                                     cached_tokens=st.integers(0, 3))),
    st.builds(Finish, st.sampled_from(list(FinishReason)), native=st.sampled_from([None, "stop", "STOP"])),
    st.builds(StreamError, status=st.sampled_from([429, 500]), message=st.just("boom")),
)
# Upstream events: each a group of canonical events, flushed together (as CanonicalRewriter does).
GROUPS = st.lists(st.lists(EVENTS, max_size=4), max_size=12)


def _run(encoder: Any, groups: list[list[StreamEvent]]) -> bytes:
    out = []
    flush = getattr(encoder, "flush", None)
    for group in groups:
        out.extend(encoder.encode(event) for event in group)
        if flush is not None:
            out.append(flush())
    out.append(encoder.close())
    return b"".join(out)


class _SlowChat(openai_chat.ChatStreamEncoder):
    """Fast paths off: a subclass framing chunk objects itself (as the legacy completions encoder does)."""

    def _frame(self, chunks: list[dict[str, Any]]) -> bytes:  # type: ignore[override]
        return openai_chat.ChatStreamEncoder._frame(chunks)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(GROUPS, st.sampled_from(SOURCES))
def test_chat_text_templates_match_the_chunk_objects(groups: list[list[StreamEvent]],
                                                      source: WireProtocol | None) -> None:
    context = AnswerContext(source=source)
    with mock.patch.object(openai_chat, "now", return_value=1_700_000_001), \
            mock.patch.object(openai_chat, "new_id", side_effect=lambda prefix: prefix + "fixed"), \
            mock.patch.object(openai_chat, "named_tool_id", side_effect=lambda name, n: f"{name}-1-{n}"):
        fast = openai_chat.ChatStreamEncoder(model="client-model", context=context)
        slow = _SlowChat(model="client-model", context=context)
        assert fast._fast and not slow._fast
        assert _run(fast, groups) == _run(slow, groups)


class _DictClaude(claude.ClaudeStreamEncoder):
    """The delta frames as the encoder built them before: a payload object through _event."""

    def _delta(self, segment: Any, text: str, out: list[bytes]) -> None:
        if segment.kind == "text":
            delta = {"type": "text_delta", "text": text}
        elif segment.kind == "thinking":
            delta = {"type": "thinking_delta", "thinking": text}
        else:
            delta = {"type": "input_json_delta", "partial_json": text}
        out.append(self._event("content_block_delta", {"index": segment.index, "delta": delta}))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(GROUPS, st.sampled_from(SOURCES))
def test_claude_delta_frames_match_the_payload_objects(groups: list[list[StreamEvent]],
                                                       source: WireProtocol | None) -> None:
    context = AnswerContext(source=source)
    fast = claude.ClaudeStreamEncoder(model="client-model", context=context)
    slow = _DictClaude(model="client-model", context=context)
    events = [e for group in groups for e in group]
    with mock.patch.object(claude, "new_id", side_effect=lambda prefix: prefix + "fixed"):
        assert _run(fast, [events]) == _run(slow, [events])


# ------------------------------------------------------------------------------------------- decoders


class _OldGemini(gemini.GeminiStreamDecoder):
    """The Gemini chunk decoding before the parsed-JSON shortcuts."""

    def _chunk(self, chunk: Any, name: str | None) -> list[StreamEvent]:
        if isinstance(chunk, Mapping) and isinstance(chunk.get("error"), Mapping):
            return self._error(chunk["error"])
        chunk = gemini._unwrap_envelope(chunk)
        if not isinstance(chunk, Mapping):
            return []
        if name == "error" or isinstance(chunk.get("error"), Mapping):
            return self._error(chunk.get("error") if isinstance(chunk.get("error"), Mapping) else chunk)
        out: list[StreamEvent] = []
        if not self.started:
            self.started = True
            response_id = chunk.get("responseId")
            model = chunk.get("modelVersion")
            out.append(StreamStart(id=response_id if isinstance(response_id, str) else "",
                                   model=model if isinstance(model, str) else "",
                                   created=gemini._parse_time(chunk.get("createTime")) or gemini.now()))
        candidates = chunk.get("candidates")
        candidate = candidates[0] if isinstance(candidates, list) and candidates else None
        native: str | None = None
        if isinstance(candidate, Mapping):
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, Mapping) else None
            for part in parts if isinstance(parts, list) else ():
                if isinstance(part, Mapping):
                    out.extend(self._part(part))
            reason = gemini._get(candidate, "finishReason", "finish_reason")
            native = reason if isinstance(reason, str) and reason else None
        feedback = gemini._get(chunk, "promptFeedback", "prompt_feedback")
        blocked = (candidate is None and isinstance(feedback, Mapping) and feedback.get("blockReason"))
        usage = gemini.usage_from_gemini(gemini._get(chunk, "usageMetadata", "usage_metadata"))
        if native is not None and not self.finished:
            self.finished = True
            out.append(Finish(reason=gemini._canonical_finish(native, self.tool_index > 0), native=native))
        elif blocked and not self.finished:
            self.finished = True
            out.append(Finish(reason=FinishReason.CONTENT_FILTER, native=str(feedback["blockReason"])))
        if usage is not None and usage != self.last_usage:
            self.last_usage = usage
            out.append(UsageUpdate(usage))
        return out


class _OldChat(openai_chat.ChatStreamDecoder):
    """The Chat chunk decoding before the parsed-JSON shortcuts."""

    def decode(self, event: SSEEvent) -> list[StreamEvent]:
        data = event.data.strip()
        if data.startswith(b"data:"):
            data = data[5:].strip()
        if not data or data == b"[DONE]":
            return []
        try:
            chunk = json.loads(data)
        except ValueError:
            return []
        if not isinstance(chunk, Mapping):
            return []
        out: list[StreamEvent] = []
        error = chunk.get("error")
        if error is not None:
            out.extend(self._start(chunk))
            out.append(self._error(error))
            self._finished = True
            return out
        out.extend(self._start(chunk))
        choices = chunk.get("choices")
        if isinstance(choices, list):
            choice = next((c for c in choices if isinstance(c, Mapping) and c.get("index", 0) == 0), None)
            if choice is None:
                choice = next((c for c in choices if isinstance(c, Mapping)), None)
            if choice is not None:
                out.extend(self._old_choice(choice))
        usage = openai_chat.usage_from_openai(chunk.get("usage"))
        if usage is not None:
            out.append(UsageUpdate(usage))
        return out

    def _old_choice(self, choice: Mapping[str, Any]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        delta = choice.get("delta")
        if isinstance(delta, Mapping):
            reasoning = delta.get("reasoning_content")
            if reasoning is None:
                reasoning = delta.get("reasoning")
            text = openai_chat._chunks_of(reasoning)
            if text:
                out.append(ThinkingDelta(text))
            text = openai_chat._chunks_of(delta.get("content"))
            if text:
                out.append(TextDelta(text))
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                out.append(TextDelta(refusal))
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                for position, call in enumerate(calls):
                    if isinstance(call, Mapping):
                        out.extend(self._tool_delta(call, position))
            legacy = delta.get("function_call")
            if isinstance(legacy, Mapping):
                out.extend(self._tool_delta({"index": "legacy", "function": legacy}, 0))
        native = choice.get("finish_reason")
        if native is not None and not self._finished:
            out.extend(self._end_tools())
            out.append(Finish(openai_chat.finish_from_openai(native, self._saw_tool),
                              native=native if isinstance(native, str) else None))
            self._finished = True
        return out


JUNK = st.none() | st.booleans() | st.integers(-2, 3) | st.text(max_size=3) | st.just([]) | st.just({})


def _maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return value | JUNK


GEMINI_PART = _maybe(st.fixed_dictionaries({}, optional={
    "text": _maybe(TEXT), "thought": st.booleans(), "thoughtSignature": _maybe(st.just("sig")),
    "functionCall": _maybe(st.fixed_dictionaries({"id": _maybe(st.just("c1")), "name": _maybe(st.just("f")),
                                                  "args": _maybe(st.just({"a": 1}))})),
}))
GEMINI_CHUNK = _maybe(st.fixed_dictionaries({}, optional={
    "candidates": _maybe(st.lists(_maybe(st.fixed_dictionaries({}, optional={
        "content": _maybe(st.fixed_dictionaries({}, optional={"parts": _maybe(st.lists(GEMINI_PART, max_size=3))})),
        "finishReason": _maybe(st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY", ""])),
        "finish_reason": _maybe(st.just("STOP")),
    })), max_size=2)),
    "usageMetadata": _maybe(st.fixed_dictionaries({"promptTokenCount": st.integers(0, 9)},
                                                  optional={"candidatesTokenCount": st.integers(0, 9)})),
    "promptFeedback": _maybe(st.fixed_dictionaries({"blockReason": _maybe(st.just("SAFETY"))})),
    "responseId": _maybe(st.just("r1")), "modelVersion": _maybe(st.just("g")),
    "error": _maybe(st.fixed_dictionaries({"code": _maybe(st.just(429)), "message": _maybe(st.just("m"))})),
    "response": _maybe(st.fixed_dictionaries({}, optional={"candidates": st.just([]),
                                                           "error": _maybe(st.just({"code": 500}))})),
}))
CHAT_DELTA = _maybe(st.fixed_dictionaries({}, optional={
    "role": st.just("assistant"), "content": _maybe(TEXT | st.lists(_maybe(st.just({"text": "t"})), max_size=2)),
    "reasoning_content": _maybe(TEXT), "reasoning": _maybe(TEXT), "refusal": _maybe(TEXT),
    "tool_calls": _maybe(st.lists(_maybe(st.fixed_dictionaries({}, optional={
        "index": _maybe(st.integers(0, 1)), "id": _maybe(st.sampled_from(["a", "b"])),
        "function": _maybe(st.fixed_dictionaries({}, optional={"name": _maybe(st.just("f")),
                                                              "arguments": _maybe(st.just("{}"))}))})), max_size=2)),
    "function_call": _maybe(st.just({"name": "legacy", "arguments": "{}"})),
}))
CHAT_CHUNK = _maybe(st.fixed_dictionaries({}, optional={
    "id": _maybe(st.just("chatcmpl-1")), "model": _maybe(st.just("m")), "created": _maybe(st.just(1_700_000_000)),
    "choices": _maybe(st.lists(_maybe(st.fixed_dictionaries({}, optional={
        "index": _maybe(st.integers(0, 1)), "delta": CHAT_DELTA,
        "finish_reason": _maybe(st.sampled_from(["stop", "length", "tool_calls"]))})), max_size=2)),
    "usage": _maybe(st.fixed_dictionaries({"prompt_tokens": st.integers(0, 9)})),
    "error": _maybe(st.just({"message": "m", "code": 429})),
}))


def _decode_all(decoder: Any, chunks: list[Any]) -> list[StreamEvent]:
    out: list[StreamEvent] = []
    for chunk in chunks:
        out.extend(decoder.decode(SSEEvent(data=json.dumps(chunk).encode())))
    out.extend(decoder.close())
    return out


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(GEMINI_CHUNK | st.lists(GEMINI_CHUNK, max_size=2), max_size=6))
def test_gemini_decoder_matches_the_previous_decoding(chunks: list[Any]) -> None:
    with mock.patch.object(gemini, "now", return_value=1_700_000_000), \
            mock.patch.object(gemini, "new_id", side_effect=lambda prefix: prefix + "fixed"):
        assert _decode_all(gemini.GeminiStreamDecoder(), chunks) == _decode_all(_OldGemini(), chunks)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(CHAT_CHUNK, max_size=6))
def test_chat_decoder_matches_the_previous_decoding(chunks: list[Any]) -> None:
    with mock.patch.object(openai_chat, "new_id", side_effect=lambda prefix: prefix + "fixed"):
        assert _decode_all(openai_chat.ChatStreamDecoder(), chunks) == _decode_all(_OldChat(), chunks)
