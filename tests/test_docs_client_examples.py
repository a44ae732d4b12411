"""The Python examples of docs/clients/ run against proxyd and the fake upstreams, so the docs stay true.

Every fenced ``python`` block whose first line is ``# doc-example`` is executed with the documented base URL,
client key and model replaced by the test server's, once per upstream kind (OpenAI-compatible, Claude,
Gemini, Codex). The SDK clients are synchronous, as in the docs, so each example runs in a worker thread
while the server keeps serving on the test's event loop.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from fakes import MATRIX_CLIENT_KEY, matrix_config

DOCS = Path(__file__).resolve().parents[1] / "docs" / "clients"
PAGES = ("openai-python.md", "anthropic-python.md", "google-genai-python.md")
MARK = "# doc-example"
DOC_KEY = "my-client-key"
DOC_ROOT = "http://127.0.0.1:8317"
# The model ids the pages use (docs/clients/README.md's example config) → the matrix config's aliases.
DOC_MODELS = {"gpt-4o": "compat-model", "claude-sonnet-4-5": "claude-model", "gemini-2.5-flash": "gemini-model",
              "gpt-5-codex": "codex-model"}
ALIASES = tuple(DOC_MODELS.values())
REPLY = "Hello from fake"

_FENCE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def _examples(page: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return [code for code in _FENCE.findall(text) if code.startswith(MARK + "\n")]


EXAMPLES = [(page, i, code) for page in PAGES for i, code in enumerate(_examples(page))]


def test_every_sdk_page_has_examples() -> None:
    for page in PAGES:
        assert len(_examples(page)) >= 2, page
    for page, _, code in EXAMPLES:
        assert DOC_ROOT in code and f'"{DOC_KEY}"' in code, page
        assert sum(f'"{m}"' in code for m in DOC_MODELS) <= 1, page


def _adapt(code: str, root: str, model: str) -> str:
    code = code.replace(DOC_ROOT, root).replace(f'"{DOC_KEY}"', f'"{MATRIX_CLIENT_KEY}"')
    for doc_model in DOC_MODELS:
        code = code.replace(f'"{doc_model}"', f'"{model}"')
    return code


def _run(code: str) -> list[str]:
    printed: list[str] = []

    def capture(*args: Any, **_: Any) -> None:
        printed.append(" ".join(str(a) for a in args))

    exec(compile(code, "<doc-example>", "exec"), {"__name__": "doc_example", "print": capture})
    return printed


@pytest.mark.parametrize("model", ALIASES)
@pytest.mark.parametrize(("page", "index", "code"), EXAMPLES, ids=[f"{p[:-3]}-{i}" for p, i, _ in EXAMPLES])
async def test_client_example_runs(proxyd_factory: Any, fake_openai: Any, fake_claude: Any, fake_gemini: Any,
                                   fake_codex: Any, page: str, index: int, code: str, model: str) -> None:
    server = await proxyd_factory(matrix_config(fake_openai, fake_claude, fake_gemini, fake_codex))
    printed = await asyncio.wait_for(asyncio.to_thread(_run, _adapt(code, server.url, model)), timeout=60)
    assert printed, f"{page} example {index} printed nothing"
    output = "\n".join(printed)
    if "count_tokens" in code:
        assert int(output) > 0
    elif "models.list" in code:
        assert all(alias in output for alias in ALIASES), output
    else:
        assert REPLY in output, output
