"""Property tests for the Claude codec (hypothesis).

1. Request round trip: canonical Request (in the shape Claude can express) → encode_request → decode_request
   keeps messages, tools, tool choice and generation settings. Not expressible, hence not generated: top_p next
   to temperature, temperature > 1, seed/penalties/candidate_count, parallel=True (Claude can only *disable*
   parallel calls), tool `strict`, image `detail`, reasoning efforts (they decode as budgets).
2. Any canonical Request encodes into a body that satisfies Anthropic's structural rules.
3. Random canonical event sequences → stream encoder → stream decoder reproduce text, thinking, Claude
   signatures, tool calls, finish reason and usage; the frames are always a valid Messages event sequence.
4. Fuzz: arbitrary JSON into decode_request raises only CodecError; decode_response / stream decoding never raise.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_codec_claude_support import parse_frames

from proxyd.protocols.base import WireProtocol
from proxyd.protocols.canonical import (
    FilePart,
    Finish,
    FinishReason,
    Generation,
    ImagePart,
    Message,
    Part,
    Reasoning,
    Request,
    StreamError,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    ThinkingSignature,
    Tool,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    ToolChoice,
    ToolResultPart,
    Usage,
    UsageUpdate,
)
from proxyd.protocols.claude import DEFAULT_MAX_TOKENS, ClaudeCodec, claude_user_id
from proxyd.protocols.codec import CodecError
from proxyd.protocols.sse import SSEEvent, SSEParser

CLAUDE = WireProtocol.CLAUDE
PROPS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
codec = ClaudeCodec()

words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
texts = words.filter(lambda s: s.strip() == s and s.strip() != "")
names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,10}", fullmatch=True)
ids = st.from_regex(r"(call_|toolu_)[A-Za-z0-9]{4,10}", fullmatch=True)
json_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | words
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(names, inner, max_size=3), max_leaves=8)
arguments = st.dictionaries(names, json_values, max_size=4).map(
    lambda d: json.dumps(d, ensure_ascii=False, separators=(",", ":")))
b64 = st.from_regex(r"[A-Za-z0-9+/]{4,16}={0,2}", fullmatch=True)
images = st.one_of(
    st.builds(ImagePart, media_type=st.sampled_from(["image/png", "image/jpeg", "image/gif", "image/webp"]),
              data=b64),
    st.builds(ImagePart, url=st.from_regex(r"https://example\.com/[a-z]{1,8}\.png", fullmatch=True)),
)
cache = st.none() | st.just({"type": "ephemeral"})


# --------------------------------------------------------------------------------------------- 1. round trip


@st.composite
def conversations(draw: st.DrawFn) -> tuple[tuple[Message, ...], list[str]]:
    """Alternating user/assistant turns ending with a user turn; results answer the previous turn's calls."""
    messages: list[Message] = []
    pending: list[ToolCallPart] = []
    used: set[str] = set()
    tool_names: list[str] = []
    for turn in range(draw(st.integers(0, 3)) * 2 + 1):
        if turn % 2 == 0:
            parts: list[Part] = []
            for call in pending:
                content = tuple(draw(st.lists(st.builds(TextPart, text=texts) | images, max_size=2)))
                parts.append(ToolResultPart(tool_call_id=call.id, name=call.name, content=content,
                                            is_error=draw(st.booleans())))
            pending = []
            extra = draw(st.lists(st.builds(TextPart, text=texts, cache_control=cache) | images,
                                  min_size=0 if parts else 1, max_size=3))
            messages.append(Message(role="user", parts=(*parts, *extra)))
        else:
            parts = []
            if draw(st.booleans()):
                parts.append(ThinkingPart(text=draw(words), signature=draw(b64), signature_source=CLAUDE))
            parts.extend(draw(st.lists(st.builds(TextPart, text=texts), max_size=2)))
            for _ in range(draw(st.integers(0 if parts else 1, 3))):
                call_id = draw(ids.filter(lambda i: i not in used))
                used.add(call_id)
                name = draw(names)
                tool_names.append(name)
                call = ToolCallPart(id=call_id, name=name, arguments=draw(arguments))
                parts.append(call)
                pending.append(call)
            messages.append(Message(role="assistant", parts=tuple(parts)))
    return tuple(messages), tool_names


@st.composite
def requests(draw: st.DrawFn) -> Request:
    messages, called = draw(conversations())
    declared = draw(st.lists(names, max_size=3))
    tools = tuple(Tool(name=n, description=draw(st.sampled_from(["", "does things"])),
                       parameters={"type": "object", "properties": {"a": {"type": "string"}}})
                  for n in dict.fromkeys([*called, *declared]))
    choice = None
    if tools:
        mode = draw(st.sampled_from(["auto", "none", "required", "tool", None]))
        if mode is not None:
            choice = ToolChoice(mode=mode, name=tools[0].name if mode == "tool" else None,
                                parallel=None if mode == "none" else draw(st.sampled_from([None, False])))
    temperature = draw(st.none() | st.floats(0, 1))
    generation = Generation(
        max_tokens=draw(st.none() | st.integers(1, 100_000)),
        temperature=temperature,
        top_p=draw(st.floats(0, 1)) if temperature is None and draw(st.booleans()) else None,
        top_k=draw(st.none() | st.integers(1, 500)),
        stop=tuple(draw(st.lists(texts, max_size=3))),
    )
    reasoning = draw(st.none() | st.builds(Reasoning, budget_tokens=st.integers(1024, 40_000),
                                           include_thoughts=st.just(True))
                     | st.just(Reasoning(effort="none", budget_tokens=0, include_thoughts=False)))
    return Request(model="alias", messages=messages,
                   system=tuple(draw(st.lists(st.builds(TextPart, text=texts, cache_control=cache), max_size=2))),
                   tools=tools, tool_choice=choice, generation=generation, reasoning=reasoning,
                   stream=draw(st.booleans()), user=draw(st.none() | names))


@PROPS
@given(requests())
def test_request_round_trip(request: Request) -> None:
    body = codec.encode_request(request, model="claude-up")
    back = codec.decode_request(json.loads(json.dumps(body)), model="alias", stream=request.stream)
    assert back.messages == request.messages
    assert back.system == request.system
    assert back.tools == request.tools
    assert back.tool_choice == request.tool_choice
    # metadata.user_id is always sent: the client's user, else a per-conversation hash (claude_user_id)
    assert back.user == claude_user_id(request) and back.stream == request.stream

    gen = request.generation
    thinking = body.get("thinking", {})
    on = thinking.get("type") == "enabled"
    if request.reasoning is None:
        assert back.reasoning is None
    elif on or thinking.get("type") == "disabled":
        assert back.reasoning == request.reasoning
    else:  # left off: a forced tool choice, or a tool loop without a Claude thinking block
        forced = request.tool_choice is not None and request.tool_choice.mode in ("required", "tool")
        last_assistant = next((m for m in reversed(request.messages) if m.role == "assistant"), None)
        assert forced or (last_assistant is not None and not isinstance(last_assistant.parts[0], ThinkingPart))
    max_tokens = gen.max_tokens or DEFAULT_MAX_TOKENS
    if on and thinking["budget_tokens"] >= max_tokens:
        max_tokens += thinking["budget_tokens"]
    assert back.generation == Generation(
        max_tokens=max_tokens,
        temperature=gen.temperature if not on or gen.temperature == 1 else None,
        top_p=gen.top_p if not on or (gen.top_p or 0) >= 0.95 else None,
        top_k=None if on else gen.top_k,
        stop=gen.stop,
    )


# --------------------------------------------------------------------------------------------- 2. structure

any_parts = st.one_of(
    st.builds(TextPart, text=st.text(max_size=5), cache_control=cache), images,
    st.builds(FilePart, media_type=st.sampled_from(["", "application/pdf", "text/plain", "image/png"]),
              data=st.none() | b64, url=st.none() | st.just("https://x/y.pdf"), file_id=st.none() | st.just("f1")),
    st.builds(ToolCallPart, id=st.sampled_from(["", "a", "b", "c d", "a"]), name=st.sampled_from(["f", "g"]),
              arguments=st.sampled_from(["{}", '{"x":1}', "[1]", "oops", ""])),
    st.builds(ToolResultPart, tool_call_id=st.sampled_from(["", "a", "b", "zz"]),
              name=st.none() | st.sampled_from(["f", "g"]),
              content=st.lists(st.builds(TextPart, text=st.text(max_size=4)) | images, max_size=2).map(tuple),
              is_error=st.booleans()),
    st.builds(ThinkingPart, text=st.text(max_size=4), signature=st.none() | b64,
              signature_source=st.none() | st.sampled_from(list(WireProtocol)), redacted=st.booleans()),
)
any_requests = st.builds(
    Request, model=st.just("m"),
    messages=st.lists(st.builds(Message, role=st.sampled_from(["user", "assistant"]),
                                parts=st.lists(any_parts, max_size=4).map(tuple)), max_size=6).map(tuple),
    reasoning=st.none() | st.builds(Reasoning, effort=st.none() | st.sampled_from(["low", "high", "none", "odd"]),
                                    budget_tokens=st.none() | st.integers(-1, 50_000)),
    generation=st.builds(Generation, max_tokens=st.none() | st.integers(-5, 50_000),
                         temperature=st.none() | st.floats(-1, 3), top_k=st.none() | st.integers(-1, 50)),
    tool_choice=st.none() | st.builds(ToolChoice, mode=st.sampled_from(["auto", "none", "required", "tool"]),
                                      name=st.none() | st.just("f"), parallel=st.none() | st.booleans()),
)
TOOL_ID = re.compile(r"^[A-Za-z0-9_-]+$")


@PROPS
@given(any_requests)
def test_encoded_request_satisfies_anthropic_rules(request: Request) -> None:
    body = codec.encode_request(request, model="claude-up")
    json.dumps(body)
    assert body["max_tokens"] >= 1
    if body.get("thinking", {}).get("type") == "enabled":
        assert 1024 <= body["thinking"]["budget_tokens"] < body["max_tokens"]
        assert body.get("tool_choice", {}).get("type") not in ("any", "tool")
        assert not body["messages"] or body["messages"][-1]["role"] == "user", "no prefill with thinking"
    assert 0 <= body.get("temperature", 0) <= 1
    messages = body["messages"]
    seen_ids: set[str] = set()
    for i, message in enumerate(messages):
        assert message["content"], "no empty messages"
        if i:
            assert message["role"] != messages[i - 1]["role"], "roles alternate"
        kinds = [b["type"] for b in message["content"]]
        for block in message["content"]:
            if block["type"] == "text":
                assert block["text"], "no empty text blocks"
            if block["type"] == "tool_use":
                assert message["role"] == "assistant"
                assert TOOL_ID.match(block["id"]) and block["id"] not in seen_ids
                seen_ids.add(block["id"])
                assert isinstance(block["input"], dict)
            if block["type"] in ("thinking", "redacted_thinking"):
                assert message["role"] == "assistant"
            if block["type"] == "tool_result":
                assert message["role"] == "user"
                previous = messages[i - 1]
                assert previous["role"] == "assistant"
                assert block["tool_use_id"] in {b.get("id") for b in previous["content"] if b["type"] == "tool_use"}
        if "tool_result" in kinds:
            first_other = next((k for k, kind in enumerate(kinds) if kind != "tool_result"), len(kinds))
            assert "tool_result" not in kinds[first_other:], "tool_result blocks open the user message"
    if seen_ids:
        assert body.get("tools"), "tool history needs tool definitions"
    if messages and messages[-1]["role"] == "assistant" and messages[-1]["content"][-1]["type"] == "text":
        assert messages[-1]["content"][-1]["text"] == messages[-1]["content"][-1]["text"].rstrip()


# --------------------------------------------------------------------------------------------- 3. streams


@st.composite
def event_sequences(draw: st.DrawFn) -> tuple[list[StreamEvent], dict[str, Any]]:
    events: list[StreamEvent] = []
    expected: dict[str, Any] = {"text": "", "thinking": "", "signatures": [], "tools": []}
    if draw(st.booleans()):
        events.append(StreamStart(id=draw(st.sampled_from(["", "msg_1", "chatcmpl-x"])), model="up"))
    usage = Usage(input_tokens=draw(st.integers(0, 1000)), output_tokens=draw(st.integers(0, 1000)))
    cached = draw(st.integers(0, usage.input_tokens))
    usage = Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, cached_tokens=cached,
                  cache_creation_tokens=draw(st.integers(0, usage.input_tokens - cached)))
    usage_at = draw(st.sampled_from(["before", "after", "none"]))
    if usage_at == "before":
        events.append(UsageUpdate(usage=usage))
    tool_index = 0
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["text", "thinking", "tools"]))
        if kind == "text":
            chunks = draw(st.lists(words, min_size=1, max_size=3))
            events.extend(TextDelta(c) for c in chunks)
            expected["text"] += "".join(chunks)
        elif kind == "thinking":
            chunks = draw(st.lists(words, min_size=1, max_size=3))
            events.extend(ThinkingDelta(c) for c in chunks)
            expected["thinking"] += "".join(chunks)
            source = draw(st.sampled_from([None, CLAUDE, WireProtocol.GEMINI]))
            if source is not None:
                signature = draw(b64)
                events.append(ThinkingSignature(signature=signature, source=source))
                if source is CLAUDE:
                    expected["signatures"].append(signature)
        else:  # a group of (possibly parallel, interleaved) tool calls
            group = []
            for _ in range(draw(st.integers(1, 3))):
                args = draw(arguments)
                cuts = sorted(draw(st.lists(st.integers(0, len(args)), max_size=3)))
                pieces = [args[a:b] for a, b in zip([0, *cuts], [*cuts, len(args)], strict=True)]
                call = (tool_index, draw(ids), draw(names), pieces)
                tool_index += 1
                group.append(call)
                expected["tools"].append((call[1], call[2], args))
            schedule: list[StreamEvent] = [ToolCallStart(index=i, id=cid, name=n) for i, cid, n, _ in group]
            queues = {i: list(pieces) for i, _, _, pieces in group}
            while any(queues.values()):
                i = draw(st.sampled_from([k for k, q in queues.items() if q]))
                schedule.append(ToolCallDelta(index=i, arguments=queues[i].pop(0)))
            if draw(st.booleans()):
                schedule.extend(ToolCallEnd(index=i) for i, *_ in group)
            events.extend(schedule)
    reason = draw(st.none() | st.sampled_from(list(FinishReason)))
    if reason is not None:
        events.append(Finish(reason=reason))
    if usage_at == "after":
        events.append(UsageUpdate(usage=usage))
    if expected["tools"]:
        expected["finish"] = FinishReason.TOOL_CALLS
    elif reason in (FinishReason.LENGTH, FinishReason.PAUSE, FinishReason.REFUSAL):
        expected["finish"] = reason
    else:
        expected["finish"] = FinishReason.STOP
    expected["usage"] = usage if usage_at != "none" else Usage()
    return events, expected


def assert_valid_frames(raw: bytes) -> None:
    frames = parse_frames(raw)
    kinds = [f["event"] for f in frames]
    assert kinds[:2] == ["message_start", "ping"] and kinds[-1] == "message_stop"
    assert frames[0]["data"]["message"]["content"] == []
    open_index, next_index = None, 0
    for f in frames[2:-1]:
        data = f["data"]
        if f["event"] == "content_block_start":
            assert open_index is None and data["index"] == next_index
            open_index, next_index = next_index, next_index + 1
        elif f["event"] in ("content_block_delta", "content_block_stop"):
            assert data["index"] == open_index
            if f["event"] == "content_block_stop":
                open_index = None
        else:
            assert f["event"] == "message_delta" and open_index is None


@PROPS
@given(event_sequences())
def test_stream_encode_then_decode(case: tuple[list[StreamEvent], dict[str, Any]]) -> None:
    events, expected = case
    encoder = codec.stream_encoder(model="claude-client")
    raw = b"".join(encoder.encode(e) for e in events) + encoder.close()
    assert_valid_frames(raw)
    parser = SSEParser()
    decoder = codec.stream_decoder()
    decoded: list[StreamEvent] = []
    for sse in parser.feed(raw) + parser.close():
        decoded.extend(decoder.decode(sse))
    decoded.extend(decoder.close())
    assert isinstance(decoded[0], StreamStart)
    assert "".join(e.text for e in decoded if isinstance(e, TextDelta)) == expected["text"]
    assert "".join(e.text for e in decoded if isinstance(e, ThinkingDelta)) == expected["thinking"]
    assert [e.signature for e in decoded if isinstance(e, ThinkingSignature)] == expected["signatures"]
    starts = [e for e in decoded if isinstance(e, ToolCallStart)]
    assert [s.index for s in starts] == list(range(len(starts)))
    tools = [(s.id, s.name, "".join(d.arguments for d in decoded
                                    if isinstance(d, ToolCallDelta) and d.index == s.index)) for s in starts]
    assert tools == expected["tools"]
    finishes = [e for e in decoded if isinstance(e, Finish)]
    assert len(finishes) == 1 and finishes[0].reason == expected["finish"]
    assert [e for e in decoded if isinstance(e, UsageUpdate)][-1].usage == expected["usage"]


# --------------------------------------------------------------------------------------------- 4. fuzz

BLOCK_TYPES = ["text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking", "other", 3]
KEYS = ["type", "text", "source", "id", "name", "input", "tool_use_id", "content", "is_error", "thinking",
        "signature", "data", "media_type", "url", "cache_control", "title", "file_id"]
fuzz_json = st.recursive(json_scalars | st.floats(allow_nan=False),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS) | words,
                                                                                     inner, max_size=4),
                         max_leaves=12)
blocks = st.fixed_dictionaries({"type": st.sampled_from(BLOCK_TYPES)},
                               optional={k: fuzz_json | st.sampled_from(["base64", "url", "text", "file", "content"])
                                         for k in KEYS[1:]})
blocks = blocks | st.fixed_dictionaries({"type": st.sampled_from(["image", "document"]),
                                         "source": st.fixed_dictionaries(
                                             {"type": st.sampled_from(["base64", "url", "text", "content", "file"])},
                                             optional={k: fuzz_json for k in ("data", "media_type", "url", "file_id",
                                                                              "content")})})
fuzz_messages = st.lists(st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", None])},
    optional={"content": words | st.lists(blocks | fuzz_json, max_size=4) | fuzz_json}), max_size=4)
TOP_KEYS = ["system", "tools", "tool_choice", "max_tokens", "temperature", "top_p", "top_k", "stop_sequences",
            "thinking", "metadata", "output_config", "output_format", "stream"]
fuzz_bodies = st.fixed_dictionaries(
    {}, optional={"messages": fuzz_messages | fuzz_json, **{k: fuzz_json for k in TOP_KEYS}}
) | fuzz_json


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fuzz_bodies)
def test_decode_request_fuzz(body: Any) -> None:
    try:
        request = codec.decode_request(body, model="m", stream=False)
    except CodecError:
        return
    assert isinstance(request, Request)
    codec.encode_request(request, model="up")  # whatever decoded also encodes


@PROPS
@given(fuzz_json | st.fixed_dictionaries({}, optional={"content": st.lists(blocks, max_size=4), "usage": fuzz_json,
                                                      "stop_reason": fuzz_json, "id": fuzz_json}))
def test_decode_response_never_raises(body: Any) -> None:
    response = codec.decode_response(body)
    codec.encode_response(response, model="m")


stream_payloads = st.fixed_dictionaries(
    {"type": st.sampled_from(["message_start", "content_block_start", "content_block_delta", "content_block_stop",
                              "message_delta", "message_stop", "ping", "error", "weird"])},
    optional={"index": st.integers(0, 3) | fuzz_json, "content_block": blocks | fuzz_json,
              "delta": st.fixed_dictionaries({"type": st.sampled_from(["text_delta", "thinking_delta",
                                                                        "signature_delta", "input_json_delta"])},
                                             optional={k: fuzz_json for k in ("text", "thinking", "signature",
                                                                              "partial_json", "stop_reason")}),
              "message": fuzz_json, "usage": fuzz_json, "error": fuzz_json})


@PROPS
@given(st.lists(stream_payloads | fuzz_json, max_size=10))
def test_stream_decoder_never_raises(payloads: list[Any]) -> None:
    decoder = codec.stream_decoder()
    out: list[StreamEvent] = []
    for payload in payloads:
        out.extend(decoder.decode(SSEEvent(data=json.dumps(payload).encode())))
    out.extend(decoder.close())
    if out:  # an error before any content may come first (so the pipeline can still answer with its status)
        assert isinstance(out[0], StreamStart | StreamError)
