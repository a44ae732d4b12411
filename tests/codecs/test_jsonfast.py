"""protocols/jsonfast gives exactly what the stdlib `json` calls it replaces give (values, bytes and errors)."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from proxyd.protocols import jsonfast

_SCALARS = (
    st.none() | st.booleans() | st.text()
    | st.integers() | st.integers(min_value=-(2**70), max_value=2**70) | st.just(2**64) | st.just(-(2**63) - 1)
    | st.floats(allow_nan=True, allow_infinity=True) | st.floats(min_value=-1e-3, max_value=1e-3)
)
VALUES = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN and -0.0 told apart from 0.0 (types too: 1 is not 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args)
    except Exception as exc:
        return "error", type(exc)


@settings(max_examples=600)
@given(VALUES, st.sampled_from([None, (",", ":"), (", ", ": ")]))
def test_loads_matches_the_stdlib_on_json_texts(value: Any, separators: tuple[str, str] | None) -> None:
    for ensure_ascii in (True, False):
        text = json.dumps(value, ensure_ascii=ensure_ascii, separators=separators)
        try:
            data = text.encode()
        except UnicodeEncodeError:  # a lone surrogate: the stdlib's bytes are surrogatepass-encoded
            data = text.encode("utf-8", "surrogatepass")
        assert _same(jsonfast.loads(data), json.loads(data))


@settings(max_examples=600)
@given(st.binary(max_size=40) | st.text(alphabet='{}[]",:0123456789.eE+-tnrufalsNIy\\ u', max_size=30).map(str.encode))
def test_loads_matches_the_stdlib_on_any_bytes(data: bytes) -> None:
    ours, theirs = _outcome(jsonfast.loads, data), _outcome(json.loads, data)
    assert ours[0] == theirs[0]
    if ours[0] == "ok":
        assert _same(ours[1], theirs[1])
    else:
        assert issubclass(ours[1], ValueError) and ours[1] is theirs[1]


def test_loads_keeps_integers_beyond_64_bits() -> None:
    assert jsonfast.loads(b'{"seed": 123456789012345678901234567890}') == {"seed": 123456789012345678901234567890}
    assert jsonfast.loads(b"[-9223372036854775809]") == [-9223372036854775809]


@settings(max_examples=600)
@given(VALUES | st.tuples(VALUES, VALUES) | st.dictionaries(st.integers() | st.booleans() | st.none(), _SCALARS))
def test_dumps_match_the_stdlib(value: Any) -> None:
    assert jsonfast.dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert jsonfast.dumps_spaced(value) == json.dumps(value, ensure_ascii=False)


def test_dumps_refuse_what_the_stdlib_refuses() -> None:
    for bad in ({"x": object()}, [b"bytes"], {(1, 2): 3}):
        assert _outcome(jsonfast.dumps, bad) == _outcome(json.dumps, bad)


@settings(max_examples=1000)
@given(st.text() | st.text(alphabet=st.characters(max_codepoint=0x80)) | st.text(alphabet="\ud800\udfff\x00\x7f\"\\a"))
def test_string_matches_the_stdlib(text: str) -> None:
    assert _outcome(jsonfast.string, text) == _outcome(lambda t: json.dumps(t, ensure_ascii=False).encode(), text)
