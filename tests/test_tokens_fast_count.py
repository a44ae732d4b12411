"""count_text counts text as plain text: `len(encoding.encode(text, disallowed_special=()))`, so prompt text that
spells a special token (`<|endoftext|>`) is counted character by character and never refused."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from proxyd.tokens import _encoding, count_text

TEXTS = st.text(max_size=60) | st.text(alphabet="<|>endoftxprm fi_ \n\u00e9😀1", max_size=40)


@settings(max_examples=300, deadline=None)
@given(TEXTS, st.sampled_from(["o200k_base", "cl100k_base"]))
def test_count_text_is_the_plain_text_count(text: str, name: str) -> None:
    assert count_text(text, name) == len(_encoding(name).encode(text, disallowed_special=()))


def test_special_token_text_counts_as_plain_text() -> None:
    encoding = _encoding("o200k_base")
    for text in ("say <|endoftext|> now", "<|endoftext|><|endofprompt|>"):
        count = count_text(text)
        assert count == len(encoding.encode_ordinary(text))
        assert count > len(encoding.encode(text, allowed_special="all"))  # not collapsed into one special token
    assert count_text("say <| not special |> now") == len(encoding.encode("say <| not special |> now"))
