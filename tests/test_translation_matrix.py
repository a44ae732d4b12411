"""Every client protocol × every upstream protocol, streaming and not, judged by the official SDKs.

One proxyd serves four aliases, one per upstream fake: `compat-model` (OpenAI chat), `claude-model` (Claude
Messages), `gemini-model` (Gemini), `codex-model` (Responses/Codex). Each client SDK calls each alias.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from fakes import MATRIX_CLIENT_KEY as KEY
from fakes import matrix_config
from google import genai
from google.genai import types as genai_types

UPSTREAMS = {
    "compat-model": ("fake_openai", "gpt-4o"),
    "claude-model": ("fake_claude", "claude-sonnet-4-5-20250929"),
    "gemini-model": ("fake_gemini", "gemini-2.5-flash"),
    "codex-model": ("fake_codex", "gpt-5-codex"),
}
CLIENTS = ["openai-chat", "openai-responses", "claude", "gemini"]
REPLY = "Hello from the upstream"


@pytest.fixture
async def matrix(fake_openai, fake_claude, fake_gemini, fake_codex, proxyd_factory) -> dict[str, Any]:
    fakes = {"fake_openai": fake_openai, "fake_claude": fake_claude, "fake_gemini": fake_gemini,
             "fake_codex": fake_codex}
    for fake in fakes.values():
        fake.reply_text = REPLY
    server = await proxyd_factory(matrix_config(fake_openai, fake_claude, fake_gemini, fake_codex))
    return {"server": server, **fakes}


async def call_text(client: str, server: Any, model: str, stream: bool) -> str:
    """Ask `model` through proxyd with the `client` SDK; return the answer text the SDK assembled."""
    prompt = "Say hello"
    if client == "openai-chat":
        oc = openai.AsyncOpenAI(base_url=server.v1, api_key=KEY, max_retries=0)
        try:
            if not stream:
                reply = await oc.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}])
                assert reply.model == model
                assert reply.choices[0].finish_reason == "stop"
                return reply.choices[0].message.content or ""
            chunks = await oc.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                                      stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        finally:
            await oc.close()
    if client == "openai-responses":
        oc = openai.AsyncOpenAI(base_url=server.v1, api_key=KEY, max_retries=0)
        try:
            if not stream:
                response = await oc.responses.create(model=model, input=prompt)
                assert response.status == "completed"
                return response.output_text
            events = await oc.responses.create(model=model, input=prompt, stream=True)
            text, completed = [], False
            async for event in events:
                if event.type == "response.output_text.delta":
                    text.append(event.delta)
                completed = completed or event.type == "response.completed"
            assert completed
            return "".join(text)
        finally:
            await oc.close()
    if client == "claude":
        ac = anthropic.AsyncAnthropic(base_url=server.url, api_key=KEY, max_retries=0)
        try:
            if not stream:
                message = await ac.messages.create(model=model, max_tokens=256,
                                                   messages=[{"role": "user", "content": prompt}])
                assert message.stop_reason == "end_turn"
                return "".join(b.text for b in message.content if b.type == "text")
            async with ac.messages.stream(model=model, max_tokens=256,
                                          messages=[{"role": "user", "content": prompt}]) as s:
                final = await s.get_final_message()
            assert final.stop_reason == "end_turn"
            return "".join(b.text for b in final.content if b.type == "text")
        finally:
            await ac.close()
    gc = genai.Client(api_key=KEY, http_options=genai_types.HttpOptions(base_url=server.url))
    if not stream:
        result = await gc.aio.models.generate_content(model=model, contents=prompt)
        return result.text or ""
    parts = []
    async for chunk in await gc.aio.models.generate_content_stream(model=model, contents=prompt):
        parts.append(chunk.text or "")
    return "".join(parts)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("model", list(UPSTREAMS))
@pytest.mark.parametrize("client", CLIENTS)
async def test_text_through_every_pair(matrix: dict[str, Any], client: str, model: str, stream: bool) -> None:
    text = await call_text(client, matrix["server"], model, stream)
    assert text == REPLY
    fake_name, upstream_model = UPSTREAMS[model]
    fake = matrix[fake_name]
    seen = fake.last
    sent = seen.json or {}
    if fake_name == "fake_gemini":
        assert upstream_model in seen.path
    else:
        assert sent.get("model") == upstream_model
    assert json.dumps(sent).find(KEY) < 0  # the client key never reaches an upstream


# --------------------------------------------------------------------------- tool calls in every direction

CALLS = [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})]
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TIME_SCHEMA = {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}


def script_tool_calls(matrix: dict[str, Any], fake_name: str) -> None:
    fake = matrix[fake_name]
    fake.reply_text = ""
    if fake_name == "fake_gemini":
        fake.reply_function_calls = [{"name": n, "args": a} for n, a in CALLS]
    elif fake_name == "fake_claude":
        fake.reply_tool_calls = [{"name": n, "input": a} for n, a in CALLS]
    else:
        fake.reply_tool_calls = [{"name": n, "arguments": json.dumps(a)} for n, a in CALLS]


async def call_tools(client: str, server: Any, model: str, stream: bool) -> list[tuple[str, dict[str, Any], str]]:
    """Ask with two tools defined; return [(name, parsed args, call id)] as the client SDK assembled them."""
    prompt = "Weather and time in Paris?"
    if client in ("openai-chat", "openai-responses"):
        oc = openai.AsyncOpenAI(base_url=server.v1, api_key=KEY, max_retries=0)
        try:
            if client == "openai-chat":
                tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}},
                         {"type": "function", "function": {"name": "get_time", "parameters": TIME_SCHEMA}}]
                messages = [{"role": "user", "content": prompt}]
                if not stream:
                    reply = await oc.chat.completions.create(model=model, messages=messages, tools=tools)
                    assert reply.choices[0].finish_reason == "tool_calls"
                    calls = reply.choices[0].message.tool_calls or []
                    return [(c.function.name, json.loads(c.function.arguments), c.id) for c in calls]
                acc: dict[int, dict[str, Any]] = {}
                finish = None
                async for chunk in await oc.chat.completions.create(model=model, messages=messages, tools=tools,
                                                                    stream=True):
                    for choice in chunk.choices:
                        finish = choice.finish_reason or finish
                        for tc in choice.delta.tool_calls or []:
                            slot = acc.setdefault(tc.index, {"id": "", "name": "", "args": ""})
                            slot["id"] = tc.id or slot["id"]
                            if tc.function and tc.function.name:
                                slot["name"] = tc.function.name
                            if tc.function and tc.function.arguments:
                                slot["args"] += tc.function.arguments
                assert finish == "tool_calls"
                return [(s["name"], json.loads(s["args"]), s["id"]) for _, s in sorted(acc.items())]
            tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA},
                     {"type": "function", "name": "get_time", "parameters": TIME_SCHEMA}]
            if not stream:
                response = await oc.responses.create(model=model, input=prompt, tools=tools)
            else:
                async with oc.responses.stream(model=model, input=prompt, tools=tools) as s:
                    response = await s.get_final_response()
            return [(i.name, json.loads(i.arguments), i.call_id) for i in response.output if i.type == "function_call"]
        finally:
            await oc.close()
    if client == "claude":
        ac = anthropic.AsyncAnthropic(base_url=server.url, api_key=KEY, max_retries=0)
        tools = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA},
                 {"name": "get_time", "input_schema": TIME_SCHEMA}]
        messages = [{"role": "user", "content": prompt}]
        try:
            if not stream:
                message = await ac.messages.create(model=model, max_tokens=256, messages=messages, tools=tools)
            else:
                async with ac.messages.stream(model=model, max_tokens=256, messages=messages, tools=tools) as s:
                    message = await s.get_final_message()
            assert message.stop_reason == "tool_use"
            return [(b.name, dict(b.input), b.id) for b in message.content if b.type == "tool_use"]
        finally:
            await ac.close()
    gc = genai.Client(api_key=KEY, http_options=genai_types.HttpOptions(base_url=server.url))
    config = genai_types.GenerateContentConfig(tools=[genai_types.Tool(function_declarations=[
        genai_types.FunctionDeclaration(name="get_weather", parameters_json_schema=WEATHER_SCHEMA),
        genai_types.FunctionDeclaration(name="get_time", parameters_json_schema=TIME_SCHEMA),
    ])], automatic_function_calling=genai_types.AutomaticFunctionCallingConfig(disable=True))
    calls = []
    if not stream:
        result = await gc.aio.models.generate_content(model=model, contents=prompt, config=config)
        calls = list(result.function_calls or [])
    else:
        async for chunk in await gc.aio.models.generate_content_stream(model=model, contents=prompt, config=config):
            calls.extend(chunk.function_calls or [])
    return [(c.name or "", dict(c.args or {}), c.id or "") for c in calls]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("model", list(UPSTREAMS))
@pytest.mark.parametrize("client", CLIENTS)
async def test_parallel_tool_calls_through_every_pair(matrix: dict[str, Any], client: str, model: str,
                                                      stream: bool) -> None:
    fake_name, _ = UPSTREAMS[model]
    script_tool_calls(matrix, fake_name)
    calls = await call_tools(client, matrix["server"], model, stream)
    assert [(name, args) for name, args, _ in calls] == CALLS  # both calls, in order, parallel kept
    if client != "gemini":
        ids = [call_id for _, _, call_id in calls]
        assert all(ids) and len(set(ids)) == 2
    sent = json.dumps(matrix[fake_name].last.json)
    assert "get_weather" in sent and "get_time" in sent  # the tool definitions reached the upstream


# --------------------------------------------------------------------------- tool results back to every upstream

RESULT = "18C and sunny"


def second_turn(client: str, model: str) -> tuple[str, dict[str, Any]]:
    """A conversation with one answered tool call, in the client protocol's own request shape."""
    args = {"city": "Paris"}
    if client == "openai-chat":
        return "/v1/chat/completions", {"model": model, "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_abc", "type": "function",
                 "function": {"name": "get_weather", "arguments": json.dumps(args)}}]},
            {"role": "tool", "tool_call_id": "call_abc", "content": RESULT},
        ], "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]}
    if client == "openai-responses":
        return "/v1/responses", {"model": model, "input": [
            {"role": "user", "content": "Weather?"},
            {"type": "function_call", "call_id": "call_abc", "name": "get_weather", "arguments": json.dumps(args)},
            {"type": "function_call_output", "call_id": "call_abc", "output": RESULT},
        ], "tools": [{"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA}]}
    if client == "claude":
        return "/v1/messages", {"model": model, "max_tokens": 256, "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_abc", "name": "get_weather",
                                               "input": args}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_abc", "content": RESULT}]},
        ], "tools": [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]}
    return f"/v1beta/models/{model}:generateContent", {"contents": [
        {"role": "user", "parts": [{"text": "Weather?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": args}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": RESULT}}}]},
    ], "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": WEATHER_SCHEMA}]}]}


def paired_result(fake_name: str, body: dict[str, Any]) -> tuple[str, str]:
    """(call id or name of the tool call, the result text paired with it) as the upstream received them."""
    if fake_name == "fake_openai":
        call = next(m for m in body["messages"] if m.get("tool_calls"))["tool_calls"][0]
        result = next(m for m in body["messages"] if m["role"] == "tool")
        assert result["tool_call_id"] == call["id"]
        assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
        return call["id"], result["content"] if isinstance(result["content"], str) else json.dumps(result["content"])
    if fake_name == "fake_claude":
        blocks = [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]]
        use = next(b for b in blocks if b["type"] == "tool_use")
        result = next(b for b in blocks if b["type"] == "tool_result")
        assert result["tool_use_id"] == use["id"] and use["input"] == {"city": "Paris"}
        content = result["content"]
        return use["id"], content if isinstance(content, str) else "".join(c.get("text", "") for c in content)
    if fake_name == "fake_codex":
        call = next(i for i in body["input"] if i.get("type") == "function_call")
        output = next(i for i in body["input"] if i.get("type") == "function_call_output")
        assert output["call_id"] == call["call_id"] and json.loads(call["arguments"]) == {"city": "Paris"}
        text = output["output"]
        return call["call_id"], text if isinstance(text, str) else json.dumps(text)
    parts = [p for c in body["contents"] for p in c["parts"]]
    call = next(p["functionCall"] for p in parts if "functionCall" in p)
    response = next(p["functionResponse"] for p in parts if "functionResponse" in p)
    assert response["name"] == call["name"] == "get_weather" and call["args"] == {"city": "Paris"}
    return call["name"], json.dumps(response["response"])


@pytest.mark.parametrize("model", list(UPSTREAMS))
@pytest.mark.parametrize("client", CLIENTS)
async def test_tool_results_reach_every_upstream_paired(matrix: dict[str, Any], client: str, model: str) -> None:
    import aiohttp

    path, body = second_turn(client, model)
    async with aiohttp.ClientSession() as http, http.post(
        matrix["server"].url + path, json=body, headers={"Authorization": f"Bearer {KEY}",
                                                         "anthropic-version": "2023-06-01"},
    ) as resp:
        assert resp.status == 200, await resp.text()
    fake_name, _ = UPSTREAMS[model]
    _, result_text = paired_result(fake_name, matrix[fake_name].last.json)
    assert RESULT in result_text
    assert '\\"18C' not in result_text  # not double-encoded (DECISIONS 7)


# --------------------------------------------------------------------------- upstream errors in the client's shape


def upstream_error_body(fake_name: str, message: str) -> dict[str, Any]:
    if fake_name == "fake_claude":
        return {"type": "error", "error": {"type": "rate_limit_error", "message": message}}
    if fake_name == "fake_gemini":
        return {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}}
    return {"error": {"message": message, "type": "rate_limit_error", "code": "rate_limit_exceeded"}}


@pytest.mark.parametrize("model", list(UPSTREAMS))
@pytest.mark.parametrize("client", CLIENTS)
async def test_upstream_error_reaches_client_in_its_own_shape(matrix: dict[str, Any], client: str,
                                                              model: str) -> None:
    fake_name, _ = UPSTREAMS[model]
    message = f"slow down ({fake_name})"
    matrix[fake_name].enqueue_error(429, upstream_error_body(fake_name, message), times=3)
    server = matrix["server"]
    if client in ("openai-chat", "openai-responses"):
        oc = openai.AsyncOpenAI(base_url=server.v1, api_key=KEY, max_retries=0)
        call = (oc.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
                if client == "openai-chat" else oc.responses.create(model=model, input="hi"))
        with pytest.raises(openai.RateLimitError) as info:
            await call
        await oc.close()
        assert info.value.status_code == 429
        assert message in str(info.value.body)
    elif client == "claude":
        ac = anthropic.AsyncAnthropic(base_url=server.url, api_key=KEY, max_retries=0)
        with pytest.raises(anthropic.RateLimitError) as info:
            await ac.messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": "hi"}])
        await ac.close()
        assert info.value.status_code == 429
        assert info.value.body["type"] == "error"
        assert message in info.value.body["error"]["message"]
    else:
        from google.genai import errors as genai_errors

        gc = genai.Client(api_key=KEY, http_options=genai_types.HttpOptions(base_url=server.url))
        with pytest.raises(genai_errors.ClientError) as info:
            await gc.aio.models.generate_content(model=model, contents="hi")
        assert info.value.code == 429
        assert message in (info.value.message or "")


# --------------------------------------------------------------------------- thinking / reasoning

THOUGHT = "Let me think about greetings."
THINKING_UPSTREAMS = ["claude-model", "gemini-model", "codex-model"]


def script_thinking(matrix: dict[str, Any], fake_name: str) -> None:
    fake = matrix[fake_name]
    if fake_name == "fake_claude":
        fake.reply_thinking = (THOUGHT, "sig-from-claude")
    elif fake_name == "fake_gemini":
        fake.reply_thinking = THOUGHT
    else:
        fake.reply_reasoning = THOUGHT


async def call_thinking(client: str, server: Any, model: str, stream: bool) -> tuple[str, str, str | None]:
    """(answer text, thinking text, thinking signature if the client protocol carries one)."""
    prompt = "Say hello"
    if client == "openai-chat":
        oc = openai.AsyncOpenAI(base_url=server.v1, api_key=KEY, max_retries=0)
        try:
            if not stream:
                reply = await oc.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                                         reasoning_effort="low")
                message = reply.choices[0].message
                return message.content or "", (message.model_extra or {}).get("reasoning_content") or "", None
            text, thought = [], []
            async for chunk in await oc.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": prompt}], stream=True, reasoning_effort="low"):
                for choice in chunk.choices:
                    text.append(choice.delta.content or "")
                    thought.append((choice.delta.model_extra or {}).get("reasoning_content") or "")
            return "".join(text), "".join(thought), None
        finally:
            await oc.close()
    if client == "openai-responses":
        oc = openai.AsyncOpenAI(base_url=server.v1, api_key=KEY, max_retries=0)
        try:
            kwargs: dict[str, Any] = {"model": model, "input": prompt,
                                      "reasoning": {"effort": "low", "summary": "auto"}}
            if not stream:
                response = await oc.responses.create(**kwargs)
            else:
                async with oc.responses.stream(**kwargs) as s:
                    response = await s.get_final_response()
            thought = "".join(part.text for item in response.output if item.type == "reasoning"
                              for part in item.summary)
            return response.output_text, thought, None
        finally:
            await oc.close()
    if client == "claude":
        ac = anthropic.AsyncAnthropic(base_url=server.url, api_key=KEY, max_retries=0)
        kwargs = {"model": model, "max_tokens": 4096, "messages": [{"role": "user", "content": prompt}],
                  "thinking": {"type": "enabled", "budget_tokens": 2048}}
        try:
            if not stream:
                message = await ac.messages.create(**kwargs)
            else:
                async with ac.messages.stream(**kwargs) as s:
                    message = await s.get_final_message()
        finally:
            await ac.close()
        text = "".join(b.text for b in message.content if b.type == "text")
        thinking = [b for b in message.content if b.type == "thinking"]
        return text, "".join(b.thinking for b in thinking), (thinking[0].signature if thinking else None)
    gc = genai.Client(api_key=KEY, http_options=genai_types.HttpOptions(base_url=server.url))
    config = genai_types.GenerateContentConfig(thinking_config=genai_types.ThinkingConfig(include_thoughts=True))
    chunks = []
    if not stream:
        chunks.append(await gc.aio.models.generate_content(model=model, contents=prompt, config=config))
    else:
        chunks.extend([c async for c in await gc.aio.models.generate_content_stream(
            model=model, contents=prompt, config=config)])
    parts = [p for c in chunks for cand in c.candidates or [] for p in (cand.content.parts or [])]
    return ("".join(p.text or "" for p in parts if not p.thought),
            "".join(p.text or "" for p in parts if p.thought), None)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("model", THINKING_UPSTREAMS)
@pytest.mark.parametrize("client", CLIENTS)
async def test_thinking_through_every_pair(matrix: dict[str, Any], client: str, model: str, stream: bool) -> None:
    fake_name, _ = UPSTREAMS[model]
    script_thinking(matrix, fake_name)
    text, thought, signature = await call_thinking(client, matrix["server"], model, stream)
    assert text == REPLY
    # Codex reasoning streamed to chat clients: each summary part ends with a "\n\n" delta (the reference's shape).
    codex_chat_stream = (client, model, stream) == ("openai-chat", "codex-model", True)
    assert thought == (THOUGHT + "\n\n" if codex_chat_stream else THOUGHT)
    if client == "claude":
        # A Claude signature passes Claude→Claude untouched; one from another provider never reaches a Claude client.
        if fake_name == "fake_claude":
            assert signature == "sig-from-claude"
        else:
            assert signature in (None, "")
