"""Property tests for the OpenAI chat codec: request round trips, stream round trips, fuzzed client input.

What the request round trip (encode_request → decode_request) cannot keep, so the strategy does not generate it:
thinking parts (never sent upstream), `is_error` on tool results, images/files inside tool results (re-sent in a
user message), images in assistant turns, `cache_control`, metadata (needs `store`), foreign built-in tools,
`budget_tokens` (becomes an effort level), and conversations where two user turns follow each other (tool
messages merge with the next user message).
"""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxyd.protocols.canonical import (
    Finish,
    FinishReason,
    Generation,
    ImagePart,
    Message,
    Part,
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
from proxyd.protocols.openai_chat import OpenAIChatCodec
from proxyd.protocols.openai_completions_codec import OpenAICompletionsCodec
from proxyd.protocols.sse import SSEParser

CODEC = OpenAIChatCodec()
PROPS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.text(min_size=1, max_size=20)
names = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=16)
json_scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=10)
arguments = st.dictionaries(names, json_scalars, max_size=3).map(lambda d: json.dumps(d, separators=(",", ":")))
floats = st.floats(min_value=-2, max_value=2, allow_nan=False)
images = st.one_of(
    st.builds(ImagePart, media_type=st.sampled_from(["image/png", "image/jpeg"]),
              data=st.text(alphabet=string.ascii_letters + string.digits + "+/", min_size=4, max_size=12),
              detail=st.none() | st.sampled_from(["low", "high", "auto"])),
    st.builds(ImagePart, url=names.map(lambda n: f"https://example.com/{n}.png"),
              detail=st.none() | st.sampled_from(["low", "high"])),
)


@st.composite
def conversations(draw: st.DrawFn) -> tuple[Message, ...]:
    messages: list[Message] = []
    pending_calls: list[ToolCallPart] = []
    role = draw(st.sampled_from(["user", "assistant"]))
    counter = 0
    for _ in range(draw(st.integers(1, 6))):
        if role == "assistant":
            parts: list[Part] = [TextPart(t) for t in draw(st.lists(texts, max_size=2))]
            calls = []
            for _ in range(draw(st.integers(0 if parts else 1, 3))):
                counter += 1
                calls.append(ToolCallPart(id=f"call_{counter}", name=draw(names), arguments=draw(arguments)))
            messages.append(Message("assistant", tuple(parts + calls)))
            pending_calls = calls
            role = "user"
        else:
            results: list[Part] = [
                ToolResultPart(tool_call_id=c.id, name=c.name,
                               content=tuple(TextPart(t) for t in draw(st.lists(texts, max_size=2))))
                for c in pending_calls if draw(st.booleans())]
            others = draw(st.lists(texts.map(TextPart) | images, min_size=0 if results else 1, max_size=3))
            messages.append(Message("user", tuple(results + others)))
            pending_calls = []
            role = "assistant"
    return tuple(messages)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    tools = tuple(draw(st.lists(st.builds(Tool, name=names, description=st.text(max_size=10),
                                          parameters=st.just(schema), strict=st.none() | st.booleans()),
                                max_size=3, unique_by=lambda t: t.name)))
    choice = None
    if tools and draw(st.booleans()):
        mode = draw(st.sampled_from(["auto", "none", "required", "tool"]))
        choice = ToolChoice(mode=mode, name=draw(st.sampled_from([t.name for t in tools])) if mode == "tool" else None,
                            parallel=draw(st.none() | st.booleans()))
    response_format = draw(st.none() | st.sampled_from([ResponseFormat("text"), ResponseFormat("json_object"),
                                                        ResponseFormat("json_schema", schema={"type": "object"},
                                                                       name="out", strict=True)]))
    generation = Generation(
        max_tokens=draw(st.none() | st.integers(1, 100000)), temperature=draw(st.none() | floats),
        top_p=draw(st.none() | floats), top_k=draw(st.none() | st.integers(1, 100)),
        stop=tuple(draw(st.lists(texts, max_size=3))), seed=draw(st.none() | st.integers(0, 2**31)),
        presence_penalty=draw(st.none() | floats), frequency_penalty=draw(st.none() | floats),
        candidate_count=draw(st.none() | st.integers(1, 4)), response_format=response_format)
    reasoning = draw(st.none() | st.sampled_from(["none", "minimal", "low", "medium", "high", "xhigh"])
                     .map(lambda e: Reasoning(effort=e)))
    return Request(model="alias", messages=draw(conversations()),
                   system=tuple(TextPart(t) for t in draw(st.lists(texts, max_size=3))),
                   tools=tools, tool_choice=choice, generation=generation, reasoning=reasoning,
                   stream=draw(st.booleans()), user=draw(st.none() | names))


@PROPS
@given(requests())
def test_request_round_trip(request: Request) -> None:
    body = CODEC.encode_request(request, model="upstream")
    json.dumps(body)  # a real JSON body
    decoded = CODEC.decode_request(body, model="alias", stream=request.stream)
    assert decoded == request


# ------------------------------------------------------------------------------------------------ streams


@st.composite
def event_sequences(draw: st.DrawFn) -> tuple[list[StreamEvent], dict[str, Any]]:
    tool_count = draw(st.integers(0, 3))
    tools = [(f"call_{i}", draw(names)) for i in range(tool_count)]
    ops = draw(st.lists(st.one_of(st.tuples(st.just("text"), texts), st.tuples(st.just("think"), texts),
                                  st.tuples(st.just("args"), st.integers(0, max(tool_count - 1, 0)), texts)),
                        max_size=12))
    events: list[StreamEvent] = []
    if draw(st.booleans()):
        events.append(StreamStart(id=draw(st.sampled_from(["", "chatcmpl-x1", "msg_01"])), model="up"))
    started: set[int] = set()
    text, thinking, args = "", "", {i: "" for i in range(tool_count)}
    for op in ops:
        if op[0] == "text":
            events.append(TextDelta(op[1]))
            text += op[1]
        elif op[0] == "think":
            events.append(ThinkingDelta(op[1]))
            thinking += op[1]
        elif tool_count:
            index = op[1]
            if index not in started:
                started.add(index)
                events.append(ToolCallStart(index, *tools[index]))
            events.append(ToolCallDelta(index, op[2]))
            args[index] += op[2]
    for index in range(tool_count):
        if index not in started:
            events.append(ToolCallStart(index, *tools[index]))
    if draw(st.booleans()):
        events.extend(ToolCallEnd(i) for i in range(tool_count))
    usage = draw(st.none() | st.builds(Usage, input_tokens=st.integers(0, 999), output_tokens=st.integers(0, 999),
                                       cached_tokens=st.integers(0, 9), reasoning_tokens=st.integers(0, 9)))
    reason = draw(st.none() | st.sampled_from([FinishReason.STOP, FinishReason.LENGTH, FinishReason.TOOL_CALLS,
                                               FinishReason.CONTENT_FILTER]))
    tail: list[StreamEvent] = []
    if reason is not None:
        tail.append(Finish(reason))
    if usage is not None:
        tail.insert(draw(st.integers(0, len(tail))), UsageUpdate(usage))
    events.extend(tail)
    if tool_count:
        finish = FinishReason.TOOL_CALLS
    elif reason in (None, FinishReason.TOOL_CALLS):
        finish = FinishReason.STOP
    else:
        finish = reason
    expected = {"text": text, "thinking": thinking, "finish": finish, "usage": usage,
                "tools": [(tools[i][0], tools[i][1], args[i]) for i in range(tool_count)]}
    return events, expected


@PROPS
@given(event_sequences())
def test_stream_round_trip(case: tuple[list[StreamEvent], dict[str, Any]]) -> None:
    events, expected = case
    encoder = CODEC.stream_encoder(model="alias")
    raw = b"".join(encoder.encode(e) for e in events) + encoder.close()
    assert raw.endswith(b"data: [DONE]\n\n")
    parser = SSEParser()
    decoder = CODEC.stream_decoder()
    out: list[StreamEvent] = []
    for sse in parser.feed(raw) + parser.close():
        out.extend(decoder.decode(sse))
    out.extend(decoder.close())
    if not events:
        assert out == []  # nothing but `data: [DONE]`
        return
    assert isinstance(out[0], StreamStart)
    text = "".join(e.text for e in out if isinstance(e, TextDelta))
    thinking = "".join(e.text for e in out if isinstance(e, ThinkingDelta))
    starts = [e for e in out if isinstance(e, ToolCallStart)]
    tools = [(s.id, s.name, "".join(e.arguments for e in out if isinstance(e, ToolCallDelta) and e.index == s.index))
             for s in starts]
    finishes = [e for e in out if isinstance(e, Finish)]
    usages = [e.usage for e in out if isinstance(e, UsageUpdate)]
    assert text == expected["text"]
    assert thinking == expected["thinking"]
    assert sorted(tools) == sorted(expected["tools"])  # OpenAI indexes count calls in order of appearance
    assert [f.reason for f in finishes] == [expected["finish"]]
    if expected["usage"] is None:
        assert usages == []
    else:
        u = expected["usage"]
        assert [(x.input_tokens, x.output_tokens, x.cached_tokens, x.reasoning_tokens) for x in usages] == [
            (u.input_tokens, u.output_tokens, u.cached_tokens, u.reasoning_tokens)]
    # every ToolCallDelta follows its ToolCallStart, every call is ended before Finish
    seen: set[int] = set()
    for e in out:
        if isinstance(e, ToolCallStart):
            seen.add(e.index)
        elif isinstance(e, ToolCallDelta):
            assert e.index in seen
    ends = {e.index for e in out if isinstance(e, ToolCallEnd)}
    assert ends == {s.index for s in starts}


# ------------------------------------------------------------------------------------------------ fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25)
roles = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "other"])
keys = st.sampled_from(["content", "tool_calls", "tool_call_id", "name", "reasoning_content", "refusal",
                        "function_call", "type", "text", "image_url", "url", "file", "input_audio", "function",
                        "arguments", "id"])
shaped = st.recursive(json_values, lambda c: st.dictionaries(keys, c, max_size=5) | st.lists(c, max_size=3),
                      max_leaves=20)
messages = st.lists(st.fixed_dictionaries({"role": roles}, optional={"content": shaped, "tool_calls": shaped,
                                                                     "tool_call_id": shaped, "name": shaped,
                                                                     "function_call": shaped,
                                                                     "reasoning_content": shaped}), max_size=5)
top_keys = st.sampled_from(["tools", "tool_choice", "functions", "function_call", "stop", "max_tokens",
                            "response_format", "reasoning_effort", "temperature", "n", "metadata", "user",
                            "parallel_tool_calls", "prompt", "seed"])
bodies = json_values | st.builds(lambda m, extra: {"messages": m, **extra}, messages,
                                 st.dictionaries(top_keys, shaped, max_size=4))


@PROPS
@given(bodies)
def test_fuzz_decode_request_only_codec_errors(body: Any) -> None:
    for codec in (CODEC, OpenAICompletionsCodec()):
        try:
            result = codec.decode_request(body, model="alias", stream=False)
        except CodecError:
            continue
        assert isinstance(result, Request)


@PROPS
@given(json_values | st.fixed_dictionaries({"choices": st.lists(st.dictionaries(
    st.sampled_from(["message", "delta", "finish_reason", "index"]), shaped, max_size=3), max_size=2)},
    optional={"usage": shaped, "error": shaped, "id": json_values}))
def test_fuzz_upstream_side_never_raises(body: Any) -> None:
    CODEC.decode_response(body)
    decoder = CODEC.stream_decoder()
    from proxyd.protocols.sse import SSEEvent

    decoder.decode(SSEEvent(data=json.dumps(body).encode()))
    decoder.close()
