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
