"""Hot reload end to end: edits to the watched config file change what a running proxyd serves."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest
from fakes import FakeOpenAIUpstream, compat_config

from proxyd.keys import CONFIG_STORE

MESSAGES = [{"role": "user", "content": "hi"}]
NEW_ALIAS = '      - name: "gpt-4.1"\n        alias: "fresh-model"\n'


async def _models(client: openai.AsyncOpenAI) -> set[str]:
    return {m.id async for m in client.models.list()}


async def _wait_for(predicate, within: float = 3.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await predicate():
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_added_alias_works_within_two_seconds(fake_openai: FakeOpenAIUpstream, proxyd_factory,
                                                    tmp_config) -> None:
    text = compat_config(fake_openai.base_url)
    server = await proxyd_factory(text)
    client = openai.AsyncOpenAI(base_url=server.v1, api_key="client-key", max_retries=0)
    assert "fresh-model" not in await _models(client)

    tmp_config(text.replace('    models:\n', '    models:\n' + NEW_ALIAS))

    async def has_alias() -> bool:
        return "fresh-model" in await _models(client)

    elapsed = await _wait_for(has_alias)
    assert elapsed < 2.0
    reply = await client.chat.completions.create(model="fresh-model", messages=MESSAGES)
    assert reply.model == "fresh-model"
    assert fake_openai.last.json["model"] == "gpt-4.1"
    await client.close()


@pytest.mark.parametrize(
    "broken",
    [
        "port: [unclosed\n",  # YAML syntax error
        "port: not-a-number\n",  # type error
        "routing:\n  strategy: random\n",  # invalid value
    ],
)
async def test_broken_edit_changes_nothing(fake_openai: FakeOpenAIUpstream, proxyd_factory, tmp_config,
                                           broken: str) -> None:
    text = compat_config(fake_openai.base_url)
    server = await proxyd_factory(text)
    store = server.app[CONFIG_STORE]
    before = store.current
    client = openai.AsyncOpenAI(base_url=server.v1, api_key="client-key", max_retries=0)

    # A broken edit that would also add an alias and drop the client key: none of it may apply.
    edited = text.replace('    models:\n', '    models:\n' + NEW_ALIAS).replace('  - "client-key"', '  - "other"')
    tmp_config(edited + broken)
    assert await store.reload("test") is False
    await asyncio.sleep(0.6)  # let the watcher see it too
    assert store.current is before
    assert "fresh-model" not in await _models(client)
    reply = await client.chat.completions.create(model="my-model", messages=MESSAGES)
    assert reply.model == "my-model"

    # Fixing the file afterwards applies the edit.
    tmp_config(edited)

    async def applied() -> bool:
        return store.current is not before

    await _wait_for(applied)
    with pytest.raises(openai.AuthenticationError):
        await client.chat.completions.create(model="my-model", messages=MESSAGES)
    await client.close()


async def test_in_flight_stream_survives_reload(fake_openai: FakeOpenAIUpstream, proxyd_factory, tmp_config) -> None:
    fake_openai.chunk_count = 5
    fake_openai.chunk_delay = 0.15
    text = compat_config(fake_openai.base_url)
    server = await proxyd_factory(text)
    store = server.app[CONFIG_STORE]
    client = openai.AsyncOpenAI(base_url=server.v1, api_key="client-key", max_retries=0)
    stream = await client.chat.completions.create(model="my-model", messages=MESSAGES, stream=True)
    texts: list[str] = []
    reloaded = False
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            texts.append(chunk.choices[0].delta.content)
            if not reloaded:
                # Remove the provider entirely while the stream is running.
                tmp_config('host: "127.0.0.1"\napi-keys:\n  - "client-key"\n')
                assert await store.reload("test") is True
                reloaded = True
    assert "".join(texts) == fake_openai.reply_text
    assert await _models(client) == set()
    await client.close()
