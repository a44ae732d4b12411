"""Shared pytest fixtures for proxyd's test-suite."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from fakes import FakeOpenAIUpstream

# --------------------------------------------------------------------------- fake upstreams


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAIUpstream]:
    """A started FakeOpenAIUpstream; use ``fake_openai.base_url`` as a provider base-url."""
    async with FakeOpenAIUpstream() as upstream:
        yield upstream


# --------------------------------------------------------------------------- config files


@pytest.fixture
def tmp_config(tmp_path: Path) -> Callable[..., Path]:
    """Return ``write(text, name="config.yaml") -> Path`` that writes a config file atomically."""

    def write(text: str, name: str = "config.yaml") -> Path:
        target = tmp_path / name
        fd, tmp = tempfile.mkstemp(dir=tmp_path, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    return write


# --------------------------------------------------------------------------- more fixtures
# Other areas (proxyd app/server fixtures, config helpers, ...) add their fixtures below.


@pytest.fixture
async def fake_claude() -> AsyncIterator[object]:
    """A started FakeClaudeUpstream; ``fake_claude.base_url`` (no ``/v1``) is a claude-api-key base-url."""
    from fakes import FakeClaudeUpstream

    async with FakeClaudeUpstream() as upstream:
        yield upstream


@pytest.fixture
async def fake_codex() -> AsyncIterator[object]:
    """A started FakeCodexUpstream; ``fake_codex.base_url`` is a codex base-url (posts go to ``/responses``)."""
    from fakes import FakeCodexUpstream

    async with FakeCodexUpstream() as upstream:
        yield upstream


@pytest.fixture
async def fake_gemini() -> AsyncIterator[object]:
    """A started FakeGeminiUpstream; ``fake_gemini.base_url`` (no version segment) is a gemini base-url."""
    from fakes import FakeGeminiUpstream

    async with FakeGeminiUpstream() as upstream:
        yield upstream


# --------------------------------------------------------------------------- proxyd servers


class ProxydServer:
    """A running proxyd app on 127.0.0.1 (in this event loop) and the config file behind it."""

    def __init__(self, server: object, config_path: Path) -> None:
        self.server = server
        self.config_path = config_path

    @property
    def port(self) -> int:
        return self.server.port  # type: ignore[attr-defined,no-any-return]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    @property
    def app(self) -> object:
        return self.server.app  # type: ignore[attr-defined]


@pytest.fixture
async def proxyd_factory(tmp_config: Callable[..., Path]) -> AsyncIterator[Callable[..., object]]:
    """Return ``async start(config_text, *, watch=True) -> ProxydServer``; servers stop at teardown."""
    from aiohttp.test_utils import TestServer

    from proxyd.app import create_app

    started: list[TestServer] = []

    async def start(config_text: str, *, watch: bool = True) -> ProxydServer:
        path = tmp_config(config_text)
        server = TestServer(create_app(path, watch=watch), host="127.0.0.1")
        await server.start_server()
        started.append(server)
        return ProxydServer(server, path)

    yield start
    for server in started:
        await server.close()

