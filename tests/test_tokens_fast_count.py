"""count_text is `len(encoding.encode(text))` exactly: the same counts, and the same refusal of special tokens."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxyd.tokens import _encoding, count_text

TEXTS = st.text(max_size=60) | st.text(alphabet="<|>endoftxprm fi_ \n\u00e9😀1", max_size=40)


@settings(max_examples=300, deadline=None)
@given(TEXTS, st.sampled_from(["o200k_base", "cl100k_base"]))
def test_count_text_matches_encode(text: str, name: str) -> None:
    encoding = _encoding(name)
    try:
        expected: int | type[Exception] = len(encoding.encode(text))
    except ValueError:
        expected = ValueError
    if expected is ValueError:
        with pytest.raises(ValueError, match="disallowed special token"):
            count_text(text, name)
    else:
        assert count_text(text, name) == expected


def test_special_tokens_are_still_refused() -> None:
    with pytest.raises(ValueError, match="disallowed special token"):
        count_text("say <|endoftext|> now")
    assert count_text("say <| not special |> now") == len(_encoding("o200k_base").encode("say <| not special |> now"))
