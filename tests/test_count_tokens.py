"""Token counting: forwarded to upstreams that count (Claude, Gemini), estimated locally for the others."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import pytest
from fakes import MATRIX_CLIENT_KEY as KEY
from fakes import matrix_config
from google import genai
from google.genai import types as genai_types

from proxyd.tokens import count_text

PROMPT = "Count the tokens in this sentence, please."


@pytest.fixture
async def server(fake_openai, fake_claude, fake_gemini, fake_codex, proxyd_factory) -> Any:
    fake_claude.count_tokens_result = 321
    return await proxyd_factory(matrix_config(fake_openai, fake_claude, fake_gemini, fake_codex))


async def _claude_count(server: Any, model: str) -> int:
    ac = anthropic.AsyncAnthropic(base_url=server.url, api_key=KEY, max_retries=0)
    try:
        result = await ac.messages.count_tokens(model=model, messages=[{"role": "user", "content": PROMPT}])
    finally:
        await ac.close()
    return result.input_tokens


async def test_claude_count_forwarded_to_claude(server: Any, fake_claude: Any) -> None:
    assert await _claude_count(server, "claude-model") == 321
    seen = fake_claude.last
    assert seen.path == "/v1/messages/count_tokens"
    assert seen.json["model"] == "claude-sonnet-4-5-20250929"
    assert "max_tokens" not in seen.json


async def test_claude_count_forwarded_to_gemini(server: Any, fake_gemini: Any) -> None:
    total = await _claude_count(server, "gemini-model")
    seen = fake_gemini.last
    assert seen.path.endswith("/gemini-2.5-flash:countTokens")
    assert seen.json["model"] == "gemini-2.5-flash" and seen.json["contents"]  # the reference's shape
    assert total > 0


@pytest.mark.parametrize("model", ["compat-model", "codex-model"])
async def test_claude_count_estimated_locally(server: Any, fake_openai: Any, fake_codex: Any, model: str) -> None:
    total = await _claude_count(server, model)
    # Chat-format upstreams count each message's role too (the reference: "user\n" + the text); Responses input
    # items are counted by content only.
    text = f"user\n{PROMPT}" if model == "compat-model" else PROMPT
    assert total == count_text(text, "o200k_base" if model == "compat-model" else "cl100k_base")
    assert fake_openai.requests == [] and fake_codex.requests == []  # nothing was sent upstream


@pytest.mark.parametrize("model", ["gemini-model", "claude-model", "compat-model"])
async def test_gemini_count_tokens_shape(server: Any, model: str) -> None:
    gc = genai.Client(api_key=KEY, http_options=genai_types.HttpOptions(base_url=server.url, api_version="v1beta"))
    result = await gc.aio.models.count_tokens(model=model, contents=PROMPT)
    assert result.total_tokens and result.total_tokens > 0
    async with aiohttp.ClientSession() as http, http.post(
        f"{server.url}/v1beta/models/{model}:countTokens", params={"key": KEY},
        json={"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]},
    ) as resp:
        body = await resp.json()
    n = body["totalTokens"]
    assert body == {"totalTokens": n, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": n}]}
    if model == "claude-model":
        assert n == 321
