"""Sampling settings on Claude upstream requests: only what Anthropic rejects is dropped (providers/claude.py)."""

from __future__ import annotations

from typing import Any

import pytest

from proxyd.providers.claude import normalise_sampling


@pytest.mark.parametrize(("body", "kept"), [
    ({"temperature": 0.2, "top_p": 0.9}, {"temperature": 0.2}),
    ({"temperature": 0.5}, {"temperature": 0.5}),
    ({"top_p": 0.9, "top_k": 5}, {"top_p": 0.9, "top_k": 5}),
    ({"temperature": 0.2, "top_p": 0.9, "top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 2048}},
     {"thinking": {"type": "enabled", "budget_tokens": 2048}}),
    ({"temperature": 1, "top_p": 0.95, "thinking": {"type": "adaptive"}},
     {"temperature": 1, "top_p": 0.95, "thinking": {"type": "adaptive"}}),
    ({"temperature": 0.3, "top_p": 0.9, "thinking": {"type": "disabled"}},
     {"temperature": 0.3, "thinking": {"type": "disabled"}}),
    ({"temperature": None, "top_p": 0.9}, {"temperature": None, "top_p": 0.9}),
])
def test_normalise_sampling(body: dict[str, Any], kept: dict[str, Any]) -> None:
    payload = {"model": "m", **body}
    normalise_sampling(payload)
    assert payload == {"model": "m", **kept}
