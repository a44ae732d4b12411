"""The official openai SDK judges what the chat and legacy completions encoders produce (served by ReplayServer)."""

from __future__ import annotations

import json
import re
from typing import Any

import attrs
import openai
import pytest
from fakes.replay import ReplayServer

from proxyd.protocols.base import WireProtocol
from proxyd.protocols.canonical import (
    Finish,
    FinishReason,
    Response,
    StreamError,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    ThinkingSignature,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from proxyd.protocols.codec import NO_CONTEXT, AnswerContext
from proxyd.protocols.openai_chat import OpenAIChatCodec
from proxyd.protocols.openai_completions_codec import OpenAICompletionsCodec

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@attrs.frozen
class Scenario:
    name: str
    events: tuple[StreamEvent, ...]
    text: str = ""
    thinking: str = ""
    tools: tuple[tuple[str, str, Any], ...] = ()  # (id, name, parsed arguments) in index order
    finish: str = "stop"
    usage: tuple[int, int, int] | None = None  # prompt, completion, total


USAGE = Usage(input_tokens=11, output_tokens=7, cached_tokens=3, reasoning_tokens=2)
SCENARIOS = [
    Scenario("text", (StreamStart(id="chatcmpl-abc", model="up", created=1700000000), TextDelta("Hel"),
                      TextDelta("lo"), Finish(FinishReason.STOP), UsageUpdate(USAGE)),
             text="Hello", usage=(11, 7, 18)),
    Scenario("thinking_then_text", (StreamStart(id="msg_01"), ThinkingDelta("Let me "), ThinkingDelta("think."),
                                    ThinkingSignature("sig", WireProtocol.CLAUDE), TextDelta("Answer: 4"),
                                    Finish(FinishReason.STOP)),
             text="Answer: 4", thinking="Let me think."),
    Scenario("parallel_tool_calls", (
        StreamStart(), TextDelta("Checking."), ToolCallStart(0, "toolu_a", "read"), ToolCallStart(1, "toolu_b", "grep"),
        ToolCallDelta(1, '{"pattern":'), ToolCallDelta(0, '{"path":"a.txt"}'), ToolCallDelta(1, '"TODO"}'),
        ToolCallEnd(0), ToolCallEnd(1), Finish(FinishReason.TOOL_CALLS), UsageUpdate(USAGE)),
             text="Checking.", tools=(("toolu_a", "read", {"path": "a.txt"}), ("toolu_b", "grep", {"pattern": "TODO"})),
             finish="tool_calls", usage=(11, 7, 18)),
    Scenario("tool_call_then_usage", (
        StreamStart(), ToolCallStart(0, "call_1", "get_weather"), ToolCallDelta(0, '{"city":'),
        ToolCallDelta(0, '"Paris"}'), ToolCallEnd(0), Finish(FinishReason.STOP),
        UsageUpdate(Usage(input_tokens=5, output_tokens=9, total_tokens=14))),
             tools=(("call_1", "get_weather", {"city": "Paris"}),), finish="tool_calls", usage=(5, 9, 14)),
    Scenario("missing_start_end_finish", (TextDelta("partial "), ToolCallStart(0, "call_x", "f"),
                                          ToolCallDelta(0, '{"a":1}')),
             text="partial ", tools=(("call_x", "f", {"a": 1}),), finish="tool_calls"),
    Scenario("missing_finish_text_only", (StreamStart(), TextDelta("just text")), text="just text"),
    Scenario("usage_before_finish", (StreamStart(), TextDelta("x"), UsageUpdate(Usage(input_tokens=1, output_tokens=1)),
                                     UsageUpdate(USAGE), Finish(FinishReason.LENGTH)),
             text="x", finish="length", usage=(11, 7, 18)),
]


# The upstream protocols whose answer shapes differ (None: the default, full OpenAI shape).
SOURCES = [None, WireProtocol.CLAUDE, WireProtocol.OPENAI_RESPONSES, WireProtocol.GEMINI]
SOURCE_IDS = ["default", "from_claude", "from_codex", "from_gemini"]


def _context(source: WireProtocol | None) -> AnswerContext:
    return AnswerContext(source=source) if source is not None else NO_CONTEXT


def _encode(events: tuple[StreamEvent, ...], codec: Any = None, source: WireProtocol | None = None) -> list[bytes]:
    encoder = (codec or OpenAIChatCodec()).stream_encoder(model="client-model", context=_context(source))
    chunks = []
    for event in events:  # each canonical event as its own upstream event (flushed)
        chunks.append(encoder.encode(event) + encoder.flush())
    chunks.append(encoder.close())
    return [c for c in chunks if c]


def _expected_thinking(thinking: str, source: WireProtocol | None) -> str:
    """Codex reasoning reaches chat streams with a closing "\\n\\n" delta (the reference's shape)."""
    return thinking + "\n\n" if thinking and source is WireProtocol.OPENAI_RESPONSES else thinking


def _same_tools(got: tuple[tuple[str, str, Any], ...], want: tuple[tuple[str, str, Any], ...],
                source: WireProtocol | None) -> bool:
    """Tool calls equal; ids the upstream never gave (`call_…`) are `<name>-<nanos>-<n>` from Gemini."""
    if len(got) != len(want):
        return False
    for n, ((gid, gname, gargs), (wid, wname, wargs)) in enumerate(zip(got, want, strict=True), 1):
        if (gname, gargs) != (wname, wargs):
            return False
        if source is WireProtocol.GEMINI and wid.startswith("call_"):
            if not re.fullmatch(rf"{re.escape(wname)}-\d{{19}}-{n}", gid):
                return False
        elif gid != wid:
            return False
    return True


def _client(srv: ReplayServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)


@pytest.mark.parametrize("source", SOURCES, ids=SOURCE_IDS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_sdk_create_stream(scenario: Scenario, source: WireProtocol | None) -> None:
    async with ReplayServer(_encode(scenario.events, source=source)) as srv:
        client = _client(srv)
        stream = await client.chat.completions.create(model="client-model", messages=MESSAGES, stream=True)
        text, thinking, finish, usage = "", "", None, None
        ids: set[str] = set()
        tools: dict[int, dict[str, str]] = {}
        async for chunk in stream:
            ids.add(chunk.id)
            assert chunk.model == "client-model"
            assert chunk.object == "chat.completion.chunk"
            if chunk.usage is not None:
                usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens, chunk.usage.total_tokens)
            for choice in chunk.choices:
                delta = choice.delta
                text += delta.content or ""
                thinking += getattr(delta, "reasoning_content", None) or ""
                for call in delta.tool_calls or []:
                    slot = tools.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                    if call.id:
                        slot["id"] = call.id
                    if call.function and call.function.name:
                        slot["name"] = call.function.name
                    if call.function and call.function.arguments:
                        slot["arguments"] += call.function.arguments
                if choice.finish_reason is not None:
                    assert finish is None, "finish_reason sent twice"
                    finish = choice.finish_reason
        await client.close()
    assert len(ids) == 1 and next(iter(ids))  # one id, the upstream's when it gave one
    assert text == scenario.text
    assert thinking == _expected_thinking(scenario.thinking, source)
    got_tools = tuple((t["id"], t["name"], json.loads(t["arguments"])) for _, t in sorted(tools.items()))
    assert _same_tools(got_tools, scenario.tools, source), got_tools
    assert finish == scenario.finish
    assert usage == scenario.usage


@pytest.mark.parametrize("source", SOURCES, ids=SOURCE_IDS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_sdk_stream_helper_final_completion(scenario: Scenario, source: WireProtocol | None) -> None:
    async with ReplayServer(_encode(scenario.events, source=source)) as srv:
        client = _client(srv)
        async with client.chat.completions.stream(model="client-model", messages=MESSAGES) as stream:
            async for _ in stream:
                pass
            try:
                final: Any = await stream.get_final_completion()
            except openai.LengthFinishReasonError as exc:  # the helper refuses to "parse" a truncated answer
                assert scenario.finish == "length"
                final = exc.completion
        await client.close()
    choice = final.choices[0]
    assert (choice.message.content or "") == scenario.text
    assert choice.finish_reason == scenario.finish
    calls = tuple((c.id, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls or [])
    assert _same_tools(calls, scenario.tools, source), calls
    if scenario.usage is None:
        assert final.usage is None
    else:
        assert final.usage is not None
        assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.total_tokens) == scenario.usage


async def test_sdk_stream_error_frame_raises_api_error() -> None:
    encoder = OpenAIChatCodec().stream_encoder(model="client-model")
    body = [encoder.encode(StreamStart()), encoder.encode(TextDelta("par")), encoder.error(429, "slow down")]
    assert encoder.close() == b""
    async with ReplayServer(body) as srv:
        client = _client(srv)
        stream = await client.chat.completions.create(model="client-model", messages=MESSAGES, stream=True)
        seen: list[str] = []

        async def drain() -> None:
            async for chunk in stream:
                seen.extend(choice.delta.content or "" for choice in chunk.choices)

        with pytest.raises(openai.APIError, match="slow down"):
            await drain()
        await client.close()
    assert "".join(seen) == "par"


async def test_sdk_stream_error_event_raises_api_error() -> None:
    events = (StreamStart(), TextDelta("a"), StreamError(status=500, message="upstream exploded"))
    async with ReplayServer(_encode(events)) as srv:
        client = _client(srv)
        stream = await client.chat.completions.create(model="client-model", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError, match="upstream exploded"):
            async for _ in stream:
                pass
        await client.close()


RESPONSES = [
    (Response(id="chatcmpl-1", model="up", created=1700000000, content=(TextPart("Hello "), TextPart("there")),
              usage=USAGE), "Hello there", None, (), "stop"),
    (Response(id="msg_01", model="up", content=(ThinkingPart("pondering", signature="s",
                                                             signature_source=WireProtocol.CLAUDE),
                                                TextPart("Sure."),
                                                ToolCallPart("toolu_1", "ls", '{"path":"."}'),
                                                ToolCallPart("toolu_2", "cat", '{"file":"a"}')),
              finish_reason=FinishReason.STOP),
     "Sure.", "pondering", (("toolu_1", "ls", {"path": "."}), ("toolu_2", "cat", {"file": "a"})), "tool_calls"),
    (Response(id="", model="up", content=(ToolCallPart("call_9", "f", "{}"),), finish_reason=FinishReason.TOOL_CALLS),
     None, None, (("call_9", "f", {}),), "tool_calls"),
    (Response(id="x", model="up", content=(TextPart("cut"),), finish_reason=FinishReason.LENGTH), "cut", None, (),
     "length"),
]


@pytest.mark.parametrize("source", SOURCES, ids=SOURCE_IDS)
@pytest.mark.parametrize(("response", "text", "thinking", "tools", "finish"), RESPONSES,
                         ids=["text", "thinking_tools", "tools_only", "length"])
async def test_sdk_non_stream(response: Response, text: str | None, thinking: str | None,
                              tools: tuple[Any, ...], finish: str, source: WireProtocol | None) -> None:
    body = json.dumps(OpenAIChatCodec().encode_response(response, model="client-model",
                                                        context=_context(source))).encode()
    if text is None and source is WireProtocol.CLAUDE:
        text = ""  # from Claude, a tool-calls-only message has `content: ""`
    async with ReplayServer(body, content_type="application/json") as srv:
        client = _client(srv)
        completion = await client.chat.completions.create(model="client-model", messages=MESSAGES)
        await client.close()
    assert completion.id == (response.id or completion.id) and completion.id  # the upstream id as is
    assert completion.object == "chat.completion"
    assert completion.model == "client-model"
    message = completion.choices[0].message
    assert message.role == "assistant"
    assert message.content == text
    assert getattr(message, "reasoning_content", None) == thinking
    calls = tuple((c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or [])
    assert _same_tools(calls, tools, source), calls
    assert completion.choices[0].finish_reason == finish
    if response.usage is not None:
        assert completion.usage is not None
        assert completion.usage.prompt_tokens == 11 and completion.usage.total_tokens == 18
        assert completion.usage.prompt_tokens_details is not None
        assert completion.usage.prompt_tokens_details.cached_tokens == 3
        if source is not WireProtocol.CLAUDE:  # Claude reports no reasoning tokens
            assert completion.usage.completion_tokens_details is not None
            assert completion.usage.completion_tokens_details.reasoning_tokens == 2


# ---------------------------------------------------------------------------------------- legacy completions

@pytest.mark.parametrize("source", SOURCES, ids=SOURCE_IDS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_sdk_completions_stream(scenario: Scenario, source: WireProtocol | None) -> None:
    async with ReplayServer(_encode(scenario.events, OpenAICompletionsCodec(), source)) as srv:
        client = _client(srv)
        stream = await client.completions.create(model="client-model", prompt="hi", stream=True)
        text, finish, usage = "", None, None
        async for chunk in stream:
            assert chunk.object == "text_completion"
            assert chunk.model == "client-model"
            if chunk.usage is not None:
                usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens, chunk.usage.total_tokens)
            for choice in chunk.choices:
                text += choice.text
                if choice.finish_reason is not None:
                    finish = choice.finish_reason
        await client.close()
    assert text == scenario.text
    assert finish == ("stop" if scenario.finish == "tool_calls" else scenario.finish)
    assert usage == scenario.usage


async def test_sdk_completions_non_stream() -> None:
    response = Response(id="chatcmpl-91", model="up", created=1742450000, content=(TextPart("Hi!"),), usage=USAGE)
    body = json.dumps(OpenAICompletionsCodec().encode_response(response, model="client-model")).encode()
    async with ReplayServer(body, content_type="application/json") as srv:
        client = _client(srv)
        completion = await client.completions.create(model="client-model", prompt="Say hi")
        await client.close()
    assert completion.object == "text_completion"
    assert completion.id == "chatcmpl-91"
    assert completion.choices[0].text == "Hi!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 18
