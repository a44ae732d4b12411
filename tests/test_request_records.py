"""Every finished request reaches the pipeline's observers with its usage, status and routing facts."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from fakes import MATRIX_CLIENT_KEY, matrix_config

from proxyd.keys import PIPELINE
from proxyd.pipeline.record import RequestRecord, key_fingerprint


@pytest.fixture
async def observed(fake_openai, fake_claude, fake_gemini, fake_codex, proxyd_factory) -> Any:
    server = await proxyd_factory(matrix_config(fake_openai, fake_claude, fake_gemini, fake_codex))
    records: list[RequestRecord] = []
    server.app[PIPELINE].observers.append(records.append)
    return server, records


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", ["compat-model", "claude-model", "gemini-model", "codex-model"])
async def test_usage_recorded_for_every_upstream(observed: Any, model: str, stream: bool) -> None:
    server, records = observed
    client = openai.AsyncOpenAI(base_url=server.v1, api_key=MATRIX_CLIENT_KEY, max_retries=0)
    if stream:
        async for _ in await client.chat.completions.create(model=model, stream=True,
                                                            messages=[{"role": "user", "content": "hi"}]):
            pass
    else:
        await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    await client.close()
    [record] = records
    assert record.model == model and record.status == 200 and not record.failed
    assert record.stream is stream
    assert record.input_tokens == 12 and record.output_tokens == 8 and record.total_tokens == 20
    assert record.client_key_hash == key_fingerprint(MATRIX_CLIENT_KEY)
    assert MATRIX_CLIENT_KEY not in repr(record)
    assert record.credential_id and record.provider and record.upstream_model


async def test_failed_request_recorded(observed: Any, fake_claude: Any) -> None:
    server, records = observed
    fake_claude.enqueue_error(400, {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}})
    client = openai.AsyncOpenAI(base_url=server.v1, api_key=MATRIX_CLIENT_KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="claude-model", messages=[{"role": "user", "content": "hi"}])
    await client.close()
    [record] = records
    assert record.status == 400 and record.failed and record.attempts == 1
