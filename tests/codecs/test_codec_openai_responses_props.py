"""Property tests for the Responses codec: request round trips, stream round trips, and fuzzing.

What a Responses body cannot express, and so is not generated here: `stop`, `seed`, `top_k`, penalties,
candidate count; images/files in assistant turns; thinking issued by other protocols (dropped on encode) and
the ids of reasoning items (not replayed with store=false); several system parts (they join into `instructions`);
a tool result split in several text parts (joined into one output string); `strict=None` on tools and
`parallel=None` on the tool choice (encoded as false / true); metadata keys starting with `_` (internal, never
sent) and non-string metadata values (OpenAI metadata values are strings).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxyd.protocols.base import WireProtocol
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
from proxyd.protocols.codec import CodecError
from proxyd.protocols.openai_responses import EXTRAS_KEY, OpenAIResponsesCodec
from proxyd.protocols.sse import SSEParser

codec = OpenAIResponsesCodec()
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(min_size=1, max_size=12)
ident = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=10)
json_scalar = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8)
args_json = st.dictionaries(ident, json_scalar, max_size=3).map(
    lambda d: json.dumps(d, separators=(",", ":")))


# --------------------------------------------------------------------------------------------- requests


@st.composite
def requests(draw: st.DrawFn) -> Request:
    tool_names = draw(st.lists(ident, min_size=0, max_size=3, unique=True))
    tools = tuple(Tool(name=n, description=draw(st.text(max_size=10)),
                       parameters={"type": "object", "properties": {"a": {"type": "string"}}},
                       strict=draw(st.booleans())) for n in tool_names)
    messages: list[Message] = []
    pending: list[tuple[str, str]] = []  # calls of the last assistant turn awaiting results
    counter = 0
    for turn in range(draw(st.integers(1, 5))):
        if turn % 2 == 0:
            parts: list[Part] = [ToolResultPart(tool_call_id=cid, name=name,
                                                content=(TextPart(draw(text)),)) for cid, name in pending]
            pending = []
            for _ in range(draw(st.integers(0 if parts else 1, 3))):
                parts.append(draw(st.one_of(
                    text.map(TextPart),
                    st.builds(lambda d: ImagePart(media_type="image/png", data=d),
                              st.text(alphabet="ABCDabcd0123+/", min_size=4, max_size=8)),
                    st.builds(lambda p: ImagePart(url=f"https://example.com/{p}.png"), ident),
                )))
            draw(st.randoms()).shuffle(parts)
            messages.append(Message(role="user", parts=tuple(parts)))
        else:
            parts = []
            for _ in range(draw(st.integers(1, 4))):
                kind = draw(st.sampled_from(["text", "thinking", "call"] if tool_names else ["text", "thinking"]))
                if kind == "text":
                    parts.append(TextPart(draw(text)))
                elif kind == "thinking":
                    parts.append(ThinkingPart(text=draw(st.text(max_size=8)), encrypted=draw(ident),
                                              signature_source=WireProtocol.OPENAI_RESPONSES))
                else:
                    counter += 1
                    name = draw(st.sampled_from(tool_names))
                    call_id = f"call_{counter}"
                    parts.append(ToolCallPart(id=call_id, name=name, arguments=draw(args_json)))
                    pending.append((call_id, name))
            messages.append(Message(role="assistant", parts=tuple(parts)))
    choice = None
    if tools and draw(st.booleans()):
        mode = draw(st.sampled_from(["auto", "none", "required", "tool"]))
        choice = ToolChoice(mode=mode, name=draw(st.sampled_from(tool_names)) if mode == "tool" else None,
                            parallel=draw(st.booleans()))
    fmt = draw(st.none() | st.sampled_from([ResponseFormat(type="text"), ResponseFormat(type="json_object"),
                                            ResponseFormat(type="json_schema", name="out", strict=True,
                                                           schema={"type": "object"})]))
    generation = Generation(
        max_tokens=draw(st.none() | st.integers(1, 100_000)),
        temperature=draw(st.none() | st.floats(0, 2)),
        top_p=draw(st.none() | st.floats(0, 1)),
        response_format=fmt,
    )
    reasoning = draw(st.none() | st.builds(
        lambda e, s: Reasoning(effort=e, summary=s, include_thoughts=None if s is None else s != "none"),
        st.sampled_from(["minimal", "low", "medium", "high", "xhigh"]),
        st.sampled_from(["auto", "concise", "detailed"])))
    return Request(
        model="m",
        messages=tuple(messages),
        system=tuple(TextPart(t) for t in draw(st.lists(text.filter(lambda t: not t.startswith("x-")),
                                                         max_size=1))),
        tools=tools,
        tool_choice=choice,
        generation=generation,
        reasoning=reasoning,
        stream=draw(st.booleans()),
        user=draw(st.none() | ident),
        metadata=draw(st.dictionaries(ident.filter(lambda k: not k.startswith("_")), st.text(max_size=5),
                                      max_size=2)),
    )


def merged(messages: tuple[Message, ...]) -> list[tuple[str, list[Part]]]:
    """Messages with consecutive same-role turns merged and thinking ids cleared (not replayed)."""
    out: list[tuple[str, list[Part]]] = []
    for message in messages:
        parts = [ThinkingPart(text=p.text, encrypted=p.encrypted, signature_source=p.signature_source)
                 if isinstance(p, ThinkingPart) else p for p in message.parts]
        if out and out[-1][0] == message.role:
            out[-1][1].extend(parts)
        else:
            out.append((message.role, parts))
    return out


@SETTINGS
@given(requests())
def test_request_round_trip(request: Request) -> None:
    body = codec.encode_request(request, model="upstream")
    json.dumps(body)  # a JSON body
    back = codec.decode_request(body, model="m", stream=request.stream)
    assert merged(back.messages) == merged(request.messages)
    assert [p.text for p in back.system] == [p.text for p in request.system]
    assert back.tools == tuple(Tool(name=t.name, description=t.description, parameters=t.parameters,
                                    strict=bool(t.strict)) for t in request.tools)
    if request.tool_choice is None:
        assert back.tool_choice is None or back.tool_choice.mode == "auto"
    else:
        assert back.tool_choice == request.tool_choice
    assert back.generation == request.generation
    # No thinking settings → the recorded build's default medium effort; a budget maps to its effort alone.
    if request.reasoning is None:
        assert back.reasoning == Reasoning(effort="medium")
    elif request.reasoning.effort is not None and request.reasoning.effort not in ("auto", "max"):
        assert back.reasoning is not None and back.reasoning.effort == request.reasoning.effort
    assert back.user == request.user and back.stream == request.stream
    # Client metadata is not sent to the Codex upstream (the recorded build's requests carry none).
    assert {k: v for k, v in back.metadata.items() if k != EXTRAS_KEY} == {}
    assert back.metadata[EXTRAS_KEY] == {"store": False, "include": ["reasoning.encrypted_content"]}
    # every function_call_output has its function_call earlier in the input
    seen: set[str] = set()
    for item in body["input"]:
        if item["type"] == "function_call":
            seen.add(item["call_id"])
        if item["type"] == "function_call_output":
            assert item["call_id"] in seen


# --------------------------------------------------------------------------------------------- streams


@st.composite
def event_sequences(draw: st.DrawFn) -> tuple[list[StreamEvent], dict[str, Any]]:
    events: list[StreamEvent] = []
    if draw(st.booleans()):
        events.append(StreamStart(id=draw(ident), model="up", created=draw(st.integers(1, 2_000_000_000))))
    usage = Usage(input_tokens=draw(st.integers(0, 1000)), output_tokens=draw(st.integers(0, 1000)))
    usage_at = draw(st.sampled_from(["none", "early", "late"]))
    if usage_at == "early":
        events.append(UsageUpdate(usage))
    want_text, want_thinking, calls = "", "", []
    next_index = 0
    segments = draw(st.lists(st.sampled_from(["text", "thinking", "tools"]), min_size=0, max_size=5))
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        if segment == "text":
            for piece in draw(st.lists(st.text(max_size=6), min_size=1, max_size=3)):
                events.append(TextDelta(piece))
                want_text += piece
        elif segment == "thinking":
            for piece in draw(st.lists(st.text(max_size=6), min_size=1, max_size=3)):
                events.append(ThinkingDelta(piece))
                want_thinking += piece
            if draw(st.booleans()):
                events.append(ThinkingSignature("s", draw(st.sampled_from(list(WireProtocol))), encrypted="e"))
        else:
            block = []
            for _ in range(draw(st.integers(1, 3))):
                block.append({"index": next_index, "id": f"call_{next_index}", "name": draw(ident),
                              "pieces": draw(st.lists(st.text(max_size=5), max_size=3))})
                next_index += 1
            # starts in order, then the argument fragments of all calls interleaved at random
            for call in block:
                events.append(ToolCallStart(call["index"], call["id"], call["name"]))
            fragments = [(c["index"], p) for c in block for p in c["pieces"]]
            order = draw(st.permutations(range(len(fragments))))
            per_call: dict[int, list[str]] = {c["index"]: [] for c in block}
            for i in sorted(range(len(fragments)), key=lambda k: order[k]):
                index, piece = fragments[i]
                per_call[index].append(piece)
            for index, pieces in per_call.items():
                for piece in pieces:
                    events.append(ToolCallDelta(index, piece))
            if not last or draw(st.booleans()):
                for call in draw(st.permutations(block)):
                    events.append(ToolCallEnd(call["index"]))
            calls += [(c["id"], c["name"], "".join(per_call[c["index"]]) or "{}") for c in block]
    finish = draw(st.none() | st.sampled_from([FinishReason.STOP, FinishReason.LENGTH, FinishReason.TOOL_CALLS,
                                               FinishReason.CONTENT_FILTER]))
    if finish is not None:
        events.append(Finish(finish))
    if usage_at == "late":
        events.append(UsageUpdate(usage))
    if finish in (FinishReason.LENGTH, FinishReason.CONTENT_FILTER):
        want_finish = finish
    else:
        want_finish = FinishReason.TOOL_CALLS if calls else FinishReason.STOP
    return events, {"text": want_text, "thinking": want_thinking, "calls": calls, "finish": want_finish,
                    "usage": None if usage_at == "none" else usage}


def decode_all(raw: bytes) -> list[StreamEvent]:
    parser = SSEParser()
    decoder = codec.stream_decoder()
    out: list[StreamEvent] = []
    for i in range(0, len(raw), 13):
        for sse in parser.feed(raw[i:i + 13]):
            out += decoder.decode(sse)
    for sse in parser.close():
        out += decoder.decode(sse)
    return out + decoder.close()


@SETTINGS
@given(event_sequences())
def test_stream_round_trip(case: tuple[list[StreamEvent], dict[str, Any]]) -> None:
    events, want = case
    encoder = codec.stream_encoder(model="client")
    raw = b"".join(encoder.encode(e) for e in events) + encoder.close()
    decoded = decode_all(raw)
    assert isinstance(decoded[0], StreamStart)
    assert not any(isinstance(e, StreamError) for e in decoded)
    assert "".join(e.text for e in decoded if isinstance(e, TextDelta)) == want["text"]
    assert "".join(e.text for e in decoded if isinstance(e, ThinkingDelta)) == want["thinking"]
    starts = {e.index: e for e in decoded if isinstance(e, ToolCallStart)}
    args: dict[int, str] = {}
    for e in decoded:
        if isinstance(e, ToolCallDelta):
            assert e.index in starts  # a call starts before its deltas
            args[e.index] = args.get(e.index, "") + e.arguments
    assert [(starts[i].id, starts[i].name, args.get(i, "")) for i in sorted(starts)] == want["calls"]
    assert sorted(e.index for e in decoded if isinstance(e, ToolCallEnd)) == sorted(starts)
    finishes = [e for e in decoded if isinstance(e, Finish)]
    assert [f.reason for f in finishes] == [want["finish"]]
    usages = [e.usage for e in decoded if isinstance(e, UsageUpdate)]
    # Without usage the final response carries none (as the reference's translated streams).
    expected_usage = want["usage"]
    assert [(u.input_tokens, u.output_tokens, u.total) for u in usages] == (
        [] if expected_usage is None else
        [(expected_usage.input_tokens, expected_usage.output_tokens, expected_usage.total)])


# --------------------------------------------------------------------------------------------- fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=25,
)
FIELDS = ["model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens",
          "temperature", "top_p", "text", "reasoning", "user", "metadata", "stream", "store", "include"]
ITEM_KEYS = ["type", "role", "content", "call_id", "name", "arguments", "output", "summary", "id",
             "encrypted_content", "input", "text", "image_url", "file_data", "file_id", "file_url"]
items = st.dictionaries(st.sampled_from(ITEM_KEYS), json_values | st.sampled_from(
    ["message", "function_call", "function_call_output", "reasoning", "custom_tool_call", "input_text",
     "output_text", "input_image", "input_file", "user", "assistant", "developer", "system"]), max_size=6)
bodies = st.dictionaries(st.sampled_from(FIELDS), json_values | st.lists(items, max_size=4), max_size=8)


def _decodes_or_codec_error(body: Any) -> None:
    try:
        result = codec.decode_request(body, model="m", stream=False)
    except CodecError:
        return
    assert isinstance(result, Request)
    codec.encode_request(result, model="u")  # whatever decodes can be encoded


@SETTINGS
@given(json_values)
def test_fuzz_decode_request_arbitrary_json(body: Any) -> None:
    _decodes_or_codec_error(body)


@SETTINGS
@given(bodies)
def test_fuzz_decode_request_shaped_bodies(body: dict[str, Any]) -> None:
    _decodes_or_codec_error(body)


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from([
    "response.created", "response.output_item.added", "response.output_item.done", "response.output_text.delta",
    "response.function_call_arguments.delta", "response.function_call_arguments.done", "response.completed",
    "response.incomplete", "response.failed", "response.reasoning_summary_part.added", "error", "other"]),
    st.dictionaries(st.sampled_from(["item", "response", "delta", "item_id", "output_index", "arguments", "text"]),
                    json_values | items, max_size=4)), max_size=8))
def test_fuzz_stream_decoder_and_decode_response(events: list[tuple[str, dict[str, Any]]]) -> None:
    from proxyd.protocols.sse import SSEEvent

    decoder = codec.stream_decoder()
    for kind, data in events:
        decoder.decode(SSEEvent(data=json.dumps({"type": kind, **data}).encode(), event=kind))
        codec.decode_response({"type": kind, **data})
        codec.decode_response(data)
    decoder.close()
