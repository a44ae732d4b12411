"""Property tests for the Gemini codec: request round trips, stream round trips, fuzzed client bodies.

What a round trip through Gemini cannot keep (and the comparisons below therefore leave out): tool-call
signatures (an unsigned replayed call gets the sentinel), `ToolChoice.parallel`, `ResponseFormat.name/strict`,
several text parts of one tool result (joined by newlines), stop sequences beyond the fifth, thinking parts in
requests (omitted), a reasoning effort without budget (sent as a budget, decoded as budget + effort).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxyd.protocols.canonical import (
    Finish,
    FinishReason,
    Generation,
    ImagePart,
    Message,
    Reasoning,
    Request,
    ResponseFormat,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ThinkingDelta,
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
from proxyd.protocols.codec import CodecError
from proxyd.protocols.gemini import EFFORT_TO_BUDGET, GeminiCodec
from proxyd.protocols.gemini_schema import clean_schema_for_gemini
from proxyd.protocols.sse import SSEParser

PROPS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
codec = GeminiCodec()

names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
ids = st.from_regex(r"call_[A-Za-z0-9]{4,10}", fullmatch=True)
texts = st.text(min_size=1, max_size=30)
json_scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=3)
                           | st.dictionaries(st.text(max_size=5), kids, max_size=3), max_leaves=8)
arg_objects = st.dictionaries(names, json_values, max_size=3)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@st.composite
def conversations(draw: st.DrawFn) -> tuple[Message, ...]:
    messages: list[Message] = [Message("user", (TextPart(draw(texts)),))]
    used_ids: set[str] = set()
    for _ in range(draw(st.integers(0, 3))):
        parts: list[Any] = [TextPart(t) for t in draw(st.lists(texts, max_size=2))]
        calls = []
        for _ in range(draw(st.integers(0 if parts else 1, 3))):
            call_id = draw(ids.filter(lambda i: i not in used_ids))
            used_ids.add(call_id)
            calls.append(ToolCallPart(id=call_id, name=draw(names), arguments=_compact(draw(arg_objects))))
        messages.append(Message("assistant", (*parts, *calls)))
        user_parts: list[Any] = [
            ToolResultPart(tool_call_id=c.id, name=c.name, content=(TextPart(draw(texts)),),
                           is_error=draw(st.booleans())) for c in calls]
        user_parts += [TextPart(t) for t in draw(st.lists(texts, max_size=2))]
        if draw(st.booleans()):
            user_parts.append(ImagePart(media_type="image/png", data=draw(st.from_regex(r"[A-Za-z0-9+/]{4,12}=?",
                                                                                        fullmatch=True))))
        if not user_parts:
            user_parts = [TextPart(draw(texts))]
        messages.append(Message("user", tuple(user_parts)))
    return tuple(messages)


_prop_schemas = st.sampled_from([{"type": "string"}, {"type": "integer"}, {"type": "boolean"},
                                 {"type": "array", "items": {"type": "number"}}])
simple_schemas = st.builds(lambda props: {"type": "object", "properties": props},
                           st.dictionaries(names, _prop_schemas, max_size=3))
# A response schema object without properties comes back without the empty `properties` (not an object root).
response_schemas = st.builds(lambda props: {"type": "object", "properties": props},
                             st.dictionaries(names, _prop_schemas, min_size=1, max_size=3))


@st.composite
def requests(draw: st.DrawFn) -> Request:
    tools = tuple(draw(st.lists(st.builds(Tool, name=names, description=st.text(max_size=10),
                                          parameters=simple_schemas), max_size=3, unique_by=lambda t: t.name)))
    choice = None
    if tools:
        mode = draw(st.sampled_from(["auto", "none", "required", "tool", None]))
        if mode == "tool":
            choice = ToolChoice(mode="tool", name=draw(st.sampled_from([t.name for t in tools])))
        elif mode is not None:
            choice = ToolChoice(mode=mode, parallel=draw(st.none() | st.booleans()))
    floats = st.none() | st.floats(0, 2, allow_nan=False).map(lambda f: round(f, 3))
    ints = st.none() | st.integers(1, 100000)
    fmt = draw(st.none() | st.just(ResponseFormat(type="json_object"))
               | response_schemas.map(lambda s: ResponseFormat(type="json_schema", schema=s)))
    generation = Generation(max_tokens=draw(ints), temperature=draw(floats), top_p=draw(floats), top_k=draw(ints),
                            stop=tuple(draw(st.lists(texts, max_size=5))), seed=draw(ints),
                            presence_penalty=draw(floats), frequency_penalty=draw(floats),
                            candidate_count=draw(st.none() | st.integers(1, 4)), response_format=fmt)
    efforts = st.sampled_from(["none", "minimal", "low", "medium", "high", "xhigh"])
    reasoning = draw(st.none()
                     | st.builds(Reasoning, budget_tokens=st.integers(-1, 32768),
                                 include_thoughts=st.none() | st.booleans())
                     | st.builds(Reasoning, effort=efforts))
    return Request(model="m", messages=draw(conversations()), system=tuple(TextPart(t) for t in draw(
        st.lists(texts, max_size=2))), tools=tools, tool_choice=choice, generation=generation, reasoning=reasoning)


def _message_view(message: Message) -> tuple[Any, ...]:
    out: list[Any] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            out.append(("text", part.text))
        elif isinstance(part, ToolCallPart):
            out.append(("call", part.id, part.name, json.loads(part.arguments)))
        elif isinstance(part, ToolResultPart):
            text = "\n".join(c.text for c in part.content if isinstance(c, TextPart))
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text
            out.append(("result", part.tool_call_id, part.name, parsed if isinstance(parsed, dict) else text,
                        part.is_error))
        elif isinstance(part, ImagePart):
            out.append(("image", part.media_type, part.data))
    # Gemini user turns carry function responses first.
    out.sort(key=lambda item: 0 if item[0] == "result" else 1)
    return (message.role, tuple(out))


@PROPS
@given(requests())
def test_request_round_trip(request: Request) -> None:
    body = json.loads(json.dumps(codec.encode_request(request, model="gemini-2.5-pro")))
    assert "model" not in body
    back = codec.decode_request(body, model="m", stream=False)
    assert [_message_view(m) for m in back.messages] == [_message_view(m) for m in request.messages]
    assert back.system == request.system
    assert [(t.name, t.description, dict(t.parameters)) for t in back.tools] == [
        (t.name, t.description, dict(t.parameters)) for t in request.tools]
    if request.tool_choice is None:
        assert back.tool_choice is None
    else:
        assert back.tool_choice is not None
        assert (back.tool_choice.mode, back.tool_choice.name) == (request.tool_choice.mode, request.tool_choice.name)
    gen, got = request.generation, back.generation
    for field in ("max_tokens", "temperature", "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty",
                  "candidate_count"):
        assert getattr(got, field) == getattr(gen, field), field
    assert got.stop == gen.stop
    if gen.response_format is None:
        assert got.response_format is None
    else:
        assert got.response_format is not None
        assert (got.response_format.type, got.response_format.schema) == (gen.response_format.type,
                                                                          gen.response_format.schema)
    if request.reasoning is None:
        assert back.reasoning is None
    else:
        assert back.reasoning is not None
        budget = request.reasoning.budget_tokens
        if budget is None:
            budget = EFFORT_TO_BUDGET[request.reasoning.effort or ""]
            assert back.reasoning.effort == request.reasoning.effort
        assert back.reasoning.budget_tokens == budget
        include = request.reasoning.include_thoughts
        assert back.reasoning.include_thoughts == (budget != 0 if include is None else include)


# ------------------------------------------------------------------------------------------ streams


@st.composite
def event_sequences(draw: st.DrawFn) -> tuple[list[StreamEvent], dict[str, Any]]:
    events: list[StreamEvent] = []
    if draw(st.booleans()):
        events.append(StreamStart(id="up-1", model="x"))
    calls: list[tuple[int, str, str, dict[str, Any]]] = []
    for index in range(draw(st.integers(0, 3))):
        calls.append((index, f"call_{index}_{draw(names)}", draw(names), draw(arg_objects)))
    pending: list[list[StreamEvent]] = []
    for index, call_id, name, args in calls:
        raw = _compact(args)
        cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=3)))
        pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
        seq: list[StreamEvent] = [ToolCallStart(index, call_id, name), *(ToolCallDelta(index, p) for p in pieces)]
        if draw(st.booleans()):
            seq.append(ToolCallEnd(index))
        pending.append(seq)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from([TextDelta, ThinkingDelta]))
        pending.append([kind(draw(texts))])
    # interleave the sequences while keeping each one's own order
    while any(pending):
        choice = draw(st.sampled_from([i for i, seq in enumerate(pending) if seq]))
        events.append(pending[choice].pop(0))
    usage_before = draw(st.none() | st.builds(_usage, st.integers(0, 50)))
    usage_after = draw(st.none() | st.builds(_usage, st.integers(0, 50)))
    finish = draw(st.none() | st.sampled_from(list(FinishReason)))
    if usage_before is not None:
        events.append(UsageUpdate(usage_before))
    if finish is not None:
        events.append(Finish(finish))
    if usage_after is not None:
        events.append(UsageUpdate(usage_after))
    expected_usage = usage_after if finish is not None and usage_after is not None else (usage_after or usage_before)
    if finish in (FinishReason.LENGTH, FinishReason.CONTENT_FILTER):
        expected_finish = finish
    elif finish is FinishReason.REFUSAL:
        expected_finish = FinishReason.CONTENT_FILTER
    else:  # STOP, TOOL_CALLS, PAUSE, ERROR (→ OTHER → read back as a stop) and a missing Finish
        expected_finish = FinishReason.TOOL_CALLS if calls else FinishReason.STOP
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    thinking = "".join(e.text for e in events if isinstance(e, ThinkingDelta))
    return events, {"text": text, "thinking": thinking, "usage": expected_usage, "finish": expected_finish,
                    "calls": sorted((cid, name, args) for _, cid, name, args in calls)}


def _usage(i: int = 0) -> Usage:
    return Usage(input_tokens=5 + i, output_tokens=7, cached_tokens=2, reasoning_tokens=3)


@PROPS
@given(event_sequences())
def test_stream_round_trip(case: tuple[list[StreamEvent], dict[str, Any]]) -> None:
    events, expected = case
    encoder = codec.stream_encoder(model="alias")
    raw = b"".join(encoder.encode(e) for e in events) + encoder.close()
    decoder = codec.stream_decoder()
    parser = SSEParser()
    out: list[StreamEvent] = [e for ev in [*parser.feed(raw), *parser.close()] for e in decoder.decode(ev)]
    out += decoder.close()
    if not events:
        assert raw == b"" and out == []
        return
    assert isinstance(out[0], StreamStart)
    assert "".join(e.text for e in out if isinstance(e, TextDelta)) == expected["text"]
    assert "".join(e.text for e in out if isinstance(e, ThinkingDelta)) == expected["thinking"]
    starts = {e.index: e for e in out if isinstance(e, ToolCallStart)}
    args = {e.index: json.loads(e.arguments) for e in out if isinstance(e, ToolCallDelta)}
    assert sorted((s.id, s.name, args[i]) for i, s in starts.items()) == expected["calls"]
    finishes = [e for e in out if isinstance(e, Finish)]
    assert len(finishes) == 1 and finishes[0].reason == expected["finish"]
    usages = [e.usage for e in out if isinstance(e, UsageUpdate)]
    if expected["usage"] is None:
        assert usages == []
    else:
        got = usages[-1]
        want = expected["usage"]
        assert (got.input_tokens, got.output_tokens, got.cached_tokens, got.reasoning_tokens) == (
            want.input_tokens, want.output_tokens, want.cached_tokens, want.reasoning_tokens)


# ------------------------------------------------------------------------------------------ fuzz

any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4), max_leaves=20)
field_names = st.sampled_from([
    "contents", "role", "parts", "text", "thought", "thoughtSignature", "functionCall", "functionResponse", "name",
    "args", "id", "response", "inlineData", "mimeType", "data", "fileData", "fileUri", "systemInstruction", "tools",
    "functionDeclarations", "parameters", "parametersJsonSchema", "toolConfig", "functionCallingConfig", "mode",
    "allowedFunctionNames", "generationConfig", "maxOutputTokens", "temperature", "stopSequences", "thinkingConfig",
    "thinkingBudget", "thinkingLevel", "includeThoughts", "responseMimeType", "responseSchema", "request",
    "executableCode", "candidates", "content", "finishReason", "usageMetadata", "promptFeedback", "blockReason"])
shaped_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.sampled_from(
        ["user", "model", "ANY", "AUTO", "application/json", "image/png", "x"]),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(field_names, kids, max_size=4), max_leaves=25)


@PROPS
@given(any_json | shaped_json)
def test_decode_request_fuzz_raises_only_codec_error(body: Any) -> None:
    try:
        result = codec.decode_request(body, model="m", stream=False)
    except CodecError:
        return
    assert isinstance(result, Request)
    codec.encode_request(result, model="m")  # whatever decodes also encodes


@PROPS
@given(shaped_json)
def test_decode_response_and_stream_fuzz(body: Any) -> None:
    with contextlib.suppress(CodecError):
        codec.decode_response(body)
    decoder = codec.stream_decoder()
    for event in SSEParser().feed(b"data: " + json.dumps(body).encode() + b"\n\n"):
        decoder.decode(event)
    decoder.close()


_ALLOWED_KEYS = {"type", "format", "description", "nullable", "enum", "items", "properties", "required", "anyOf",
                 "minItems", "maxItems", "minimum", "maximum"}


def _check_clean(node: Any) -> None:
    assert isinstance(node, dict)
    assert set(node) <= _ALLOWED_KEYS, set(node) - _ALLOWED_KEYS
    if "enum" in node:
        assert node.get("type") == "string" and all(isinstance(v, str) for v in node["enum"])
    if node.get("type") == "array":
        _check_clean(node["items"])
    for sub in node.get("properties", {}).values():
        _check_clean(sub)
    for sub in node.get("anyOf", []):
        _check_clean(sub)
    if "required" in node:
        assert set(node["required"]) <= set(node.get("properties", {}))


schema_keys = st.sampled_from(["type", "properties", "items", "enum", "const", "$ref", "$defs", "anyOf", "oneOf",
                               "allOf", "required", "additionalProperties", "format", "description", "nullable",
                               "default", "title", "$schema", "minimum", "pattern"])
schema_json = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(
        ["string", "object", "array", "null", "integer", "#/$defs/a", "#", "date-time", "uri", "a"]),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(schema_keys | st.sampled_from(["a", "b"]), kids,
                                                              max_size=5), max_leaves=30)


@PROPS
@given(schema_json)
def test_clean_schema_output_is_always_gemini_subset(schema: Any) -> None:
    cleaned = clean_schema_for_gemini(schema)
    assert cleaned["type"] == "object"
    _check_clean(cleaned)
    json.dumps(cleaned)
    _check_clean(clean_schema_for_gemini(schema, object_root=False))
