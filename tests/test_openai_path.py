"""The first full path: official openai SDK → proxyd → openai-compatibility upstream (the fake)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
import pytest
from fakes import FakeOpenAIUpstream, compat_config

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]


def sdk(server, key: str = "client-key") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.v1, api_key=key, max_retries=0)


async def test_non_streaming_chat_resolves_alias_both_ways(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url))
    client = sdk(server)
    reply = await client.chat.completions.create(model="my-model", messages=MESSAGES)
    assert reply.choices[0].message.content == fake_openai.reply_text
    assert reply.model == "my-model"
    assert reply.usage is not None and reply.usage.total_tokens == 20
    seen = fake_openai.last
    assert seen.path == "/v1/chat/completions"
    assert seen.json["model"] == "gpt-4o"
    assert seen.json["messages"] == MESSAGES
    assert seen.headers["Authorization"] == "Bearer sk-up-1"
    assert seen.headers["User-Agent"] == "cli-proxy-openai-compat"
    await client.close()


async def test_streaming_chat_relays_chunks_with_alias(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    fake_openai.reply_text = "Hello from the streaming fake"
    fake_openai.chunk_count = 4
    server = await proxyd_factory(compat_config(fake_openai.base_url))
    client = sdk(server)
    stream = await client.chat.completions.create(model="my-model", messages=MESSAGES, stream=True)
    texts, models, finish, usage = [], set(), None, None
    async for chunk in stream:
        models.add(chunk.model)
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                texts.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert "".join(texts) == fake_openai.reply_text
    assert len(texts) == 4
    assert models == {"my-model"}
    assert finish == "stop"
    assert usage is not None and usage.total_tokens == 20  # include_usage is forced upstream
    seen = fake_openai.last
    assert seen.json["model"] == "gpt-4o"
    assert seen.json["stream"] is True
    assert seen.json["stream_options"] == {"include_usage": True}
    assert seen.headers["Accept"] == "text/event-stream"
    await client.close()


async def test_stream_wire_format_has_one_done(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url))
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.v1}/chat/completions", headers={"Authorization": "Bearer client-key"},
                             json={"model": "my-model", "messages": MESSAGES, "stream": True}) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/event-stream"
            assert resp.headers["Cache-Control"] == "no-cache"
            assert resp.headers["X-Request-Id"]
            raw = (await resp.read()).decode()
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert raw.count("[DONE]") == 1
    for event in events[:-1]:
        assert json.loads(event[len("data: "):])["model"] == "my-model"


async def test_streaming_is_incremental(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    fake_openai.chunk_count = 3
    fake_openai.chunk_delay = 0.3
    server = await proxyd_factory(compat_config(fake_openai.base_url))
    client = sdk(server)
    loop = asyncio.get_running_loop()
    started = loop.time()
    stream = await client.chat.completions.create(model="my-model", messages=MESSAGES, stream=True)
    first_at = None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and first_at is None:
            first_at = loop.time() - started
    total = loop.time() - started
    assert first_at is not None
    assert total - first_at > 0.4  # later chunks arrived after the first one, not all at once
    await client.close()


async def test_legacy_completions(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url))
    client = sdk(server)
    reply = await client.completions.create(model="mini", prompt="Say hi", max_tokens=16, temperature=0.2,
                                            logprobs=3)
    assert reply.object == "text_completion"
    assert reply.model == "mini"
    assert reply.choices[0].text == fake_openai.reply_text
    seen = fake_openai.last
    assert seen.path == "/v1/chat/completions"
    assert seen.json == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi"}],
                         "max_tokens": 16, "temperature": 0.2, "logprobs": True}

    stream = await client.completions.create(model="mini", prompt="Say hi", stream=True)
    texts = []
    async for chunk in stream:
        assert chunk.object == "text_completion"
        texts.extend(c.text for c in chunk.choices)
    assert "".join(texts) == fake_openai.reply_text
    await client.close()


async def test_models_list_shows_aliases(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url))
    client = sdk(server)
    models = [m async for m in client.models.list()]
    ids = {m.id for m in models}
    assert ids == {"my-model", "mini"}
    assert {m.owned_by for m in models} == {"fake"}
    await client.close()


async def test_prefix_and_force_model_prefix(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    config = compat_config(fake_openai.base_url).replace('    base-url:', '    prefix: "team"\n    base-url:')
    server = await proxyd_factory(config)
    client = sdk(server)
    assert {m.id async for m in client.models.list()} == {"my-model", "mini", "team/my-model", "team/mini"}
    reply = await client.chat.completions.create(model="team/my-model", messages=MESSAGES)
    assert reply.model == "team/my-model"
    assert fake_openai.last.json["model"] == "gpt-4o"
    await client.close()

    forced = await proxyd_factory(config + "force-model-prefix: true\n")
    client = sdk(forced)
    assert {m.id async for m in client.models.list()} == {"team/my-model", "team/mini"}
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="my-model", messages=MESSAGES)
    await client.close()


async def test_pool_alias_spreads_over_upstream_names(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    config = compat_config(fake_openai.base_url).replace(
        '      - name: "gpt-4o-mini"\n        alias: "mini"',
        '      - name: "gpt-4o-mini"\n        alias: "my-model"',
    )
    server = await proxyd_factory(config)
    client = sdk(server)
    fake_openai.enqueue_error(503, {"error": {"message": "busy", "type": "server_error"}})
    reply = await client.chat.completions.create(model="my-model", messages=MESSAGES)
    assert reply.model == "my-model"
    assert [r.json["model"] for r in fake_openai.requests] == ["gpt-4o", "gpt-4o-mini"]
    await client.close()


async def test_retry_moves_to_next_credential(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url, upstream_keys=("sk-a", "sk-b")))
    client = sdk(server)
    fake_openai.enqueue_error(500, {"error": {"message": "boom", "type": "server_error"}})
    reply = await client.chat.completions.create(model="my-model", messages=MESSAGES)
    assert reply.choices[0].message.content == fake_openai.reply_text
    keys = [r.bearer for r in fake_openai.requests]
    assert len(keys) == 2 and set(keys) == {"sk-a", "sk-b"}
    await client.close()


async def test_non_retryable_upstream_error_passes_through(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url, upstream_keys=("sk-a", "sk-b")))
    client = sdk(server)
    body = {"error": {"message": "maximum context length exceeded", "type": "invalid_request_error",
                      "param": "messages", "code": "context_length_exceeded"}}
    fake_openai.enqueue_error(400, body)
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="my-model", messages=MESSAGES)
    assert info.value.status_code == 400
    assert info.value.body == body["error"]
    assert len(fake_openai.requests) == 1  # a 400 is not retried elsewhere
    await client.close()


async def test_round_robin_rotates_credentials(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url, upstream_keys=("sk-a", "sk-b")))
    client = sdk(server)
    for _ in range(4):
        await client.chat.completions.create(model="my-model", messages=MESSAGES)
    keys = [r.bearer for r in fake_openai.requests]
    assert keys[0] != keys[1] and keys[0] == keys[2] and keys[1] == keys[3]
    await client.close()


async def test_stream_failure_before_first_event_is_retried(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url, upstream_keys=("sk-a", "sk-b")))
    client = sdk(server)
    fake_openai.enqueue_stream_failure(0)
    stream = await client.chat.completions.create(model="my-model", messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == fake_openai.reply_text
    assert len(fake_openai.requests) == 2
    await client.close()


async def test_mid_stream_failure_ends_with_error_event(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    server = await proxyd_factory(compat_config(fake_openai.base_url))
    fake_openai.enqueue_stream_failure(2)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.v1}/chat/completions", headers={"Authorization": "Bearer client-key"},
                             json={"model": "my-model", "messages": MESSAGES, "stream": True}) as resp:
            assert resp.status == 200
            raw = (await resp.read()).decode()
    events = [e for e in raw.split("\n\n") if e]
    assert "[DONE]" not in raw
    last = json.loads(events[-1][len("data: "):])
    assert last["error"]["type"] == "server_error"
    assert len(events) == 3  # two relayed chunks, then the error


async def test_client_disconnect_cancels_upstream(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    fake_openai.chunk_count = 10
    fake_openai.chunk_delay = 0.2
    server = await proxyd_factory(compat_config(fake_openai.base_url))
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{server.v1}/chat/completions", headers={"Authorization": "Bearer client-key"},
                               json={"model": "my-model", "messages": MESSAGES, "stream": True})
        assert resp.status == 200
        await resp.content.readline()
        resp.close()
    await asyncio.wait_for(fake_openai.client_disconnected.wait(), 2.0)
    assert fake_openai.completed_streams == 0


async def test_pool_rotates_across_requests(fake_openai: FakeOpenAIUpstream, proxyd_factory) -> None:
    config = compat_config(fake_openai.base_url).replace(
        '      - name: "gpt-4o-mini"\n        alias: "mini"',
        '      - name: "gpt-4o-mini"\n        alias: "my-model"',
    )
    server = await proxyd_factory(config)
    client = sdk(server)
    for _ in range(4):
        await client.chat.completions.create(model="my-model", messages=MESSAGES)
    assert [r.json["model"] for r in fake_openai.requests] == ["gpt-4o", "gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]
    await client.close()


async def test_excluded_models_hidden_and_refused(fake_gemini, proxyd_factory) -> None:
    config = f"""\
api-keys: ["client-key"]
gemini-api-key:
  - api-key: "g1"
    base-url: "{fake_gemini.base_url}"
    excluded-models: ["gemini-2.5-*", "*image*"]
"""
    server = await proxyd_factory(config)
    client = sdk(server)
    ids = {m.id async for m in client.models.list()}
    assert "gemini-3-pro-preview" in ids
    assert not any(i.startswith("gemini-2.5-") or "image" in i for i in ids)
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="gemini-2.5-pro", messages=MESSAGES)
    reply = await client.chat.completions.create(model="gemini-3-pro-preview", messages=MESSAGES)
    assert reply.choices[0].message.content == fake_gemini.reply_text
    await client.close()


@pytest.mark.parametrize("suffix", ["", "/"])
async def test_gemini_base_url_with_and_without_slash(fake_gemini, proxyd_factory, suffix: str) -> None:
    base = fake_gemini.base_url + suffix
    server = await proxyd_factory(
        f'api-keys: ["client-key"]\ngemini-api-key:\n  - api-key: "g"\n    base-url: "{base}"\n')
    client = sdk(server)
    await client.chat.completions.create(model="gemini-2.5-flash", messages=MESSAGES)
    assert fake_gemini.last.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    await client.close()


async def test_vertex_api_key_path(fake_gemini, proxyd_factory) -> None:
    server = await proxyd_factory(
        f'api-keys: ["client-key"]\nvertex-api-key:\n  - api-key: "v"\n    base-url: "{fake_gemini.base_url}"\n'
        '    models:\n      - name: "gemini-2.5-pro"\n        alias: "vx"\n')
    client = sdk(server)
    stream = await client.chat.completions.create(model="vx", messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == fake_gemini.reply_text
    assert fake_gemini.last.path == "/v1/publishers/google/models/gemini-2.5-pro:streamGenerateContent"
    assert fake_gemini.last.headers["x-goog-api-key"] == "v"
    await client.close()


async def test_thinking_suffix_reaches_gemini_as_budget(fake_gemini, proxyd_factory) -> None:
    server = await proxyd_factory(f'api-keys: ["client-key"]\ngemini-api-key:\n  - api-key: "g"\n'
                                  f'    base-url: "{fake_gemini.base_url}"\n')
    client = sdk(server)
    reply = await client.chat.completions.create(model="gemini-2.5-pro(high)", messages=MESSAGES)
    assert reply.model == "gemini-2.5-pro(high)"
    sent = fake_gemini.last.json["generationConfig"]["thinkingConfig"]
    # The suffix sets the amount only; whether thoughts come back is the client's switch (reasoning_effort).
    assert sent == {"thinkingBudget": 24576}
    await client.close()
    # Same family, budget out of the model's range: a 400 in Gemini's own error shape (translation.md §6.6).
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"thinkingConfig": {"thinkingBudget": 100000}}}
    async with aiohttp.ClientSession() as http, http.post(
            f"{server.url}/v1beta/models/gemini-2.5-pro:generateContent", json=body,
            headers={"x-goog-api-key": "client-key"}) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == "budget 100000 out of range [128,32768]"
