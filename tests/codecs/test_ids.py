"""Minted ids: the prefix, then `length` characters of [A-Za-z0-9], every one of the 62 in use."""

from __future__ import annotations

import string

from proxyd.protocols.ids import new_id, random_token


def test_new_id_shape() -> None:
    for length in (1, 5, 24, 100):
        token = new_id("toolu_", length)
        assert token.startswith("toolu_") and len(token) == 6 + length
        assert set(token[6:]) <= set(string.ascii_letters + string.digits)


def test_random_tokens_use_the_whole_alphabet_and_differ() -> None:
    tokens = [random_token() for _ in range(1000)]
    assert len(set(tokens)) == 1000
    assert set("".join(tokens)) == set(string.ascii_letters + string.digits)
