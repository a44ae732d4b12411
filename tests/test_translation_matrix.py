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
KEY = "client-key"


def matrix_config(fake_openai: Any, fake_claude: Any, fake_gemini: Any, fake_codex: Any) -> str:
    return f"""\
host: "127.0.0.1"
api-keys:
  - "{KEY}"
openai-compatibility:
  - name: "fake"
    base-url: "{fake_openai.base_url}"
    api-key-entries:
      - api-key: "sk-compat"
    models:
      - name: "gpt-4o"
        alias: "compat-model"
claude-api-key:
  - api-key: "sk-claude"
    base-url: "{fake_claude.base_url}"
    models:
      - name: "claude-sonnet-4-5-20250929"
        alias: "claude-model"
gemini-api-key:
  - api-key: "sk-gemini"
    base-url: "{fake_gemini.base_url}"
    models:
      - name: "gemini-2.5-flash"
        alias: "gemini-model"
codex-api-key:
  - api-key: "sk-codex"
    base-url: "{fake_codex.base_url}"
    models:
      - name: "gpt-5-codex"
        alias: "codex-model"
"""


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
