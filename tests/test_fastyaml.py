"""The event-built plain loader gives exactly what ruamel's safe loader gives, or leaves the text to it."""

from __future__ import annotations

import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from proxyd.config import load as load_module
from proxyd.config.fastyaml import Unsupported, load_plain
from proxyd.config.load import parse_config_text


def _safe(text: str) -> Any:
    return YAML(typ="safe", pure=False).load(text)


def _typed(value: Any) -> Any:
    """A comparable form that tells 1, 1.0 and True apart."""
    if isinstance(value, dict):
        return ("map", [(_typed(k), _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("seq", [_typed(v) for v in value])
    return (type(value).__name__, repr(value))


def _same_or_left(text: str) -> None:
    try:
        expected: Any = ("value", _typed(_safe(text)))
    except Exception as exc:
        expected = ("error", type(exc).__name__)
    try:
        got: Any = ("value", _typed(load_plain(text)))
    except Unsupported:
        return  # left to ruamel
    except Exception as exc:
        got = ("error", type(exc).__name__)
    assert got == expected


_WORDS = ["", " ", "a", "yes", "No", "on", "true", "False", "TRUE", "null", "Null", "~", "0", "-1", "+2", "0x1F",
          "0o17", "017", "1_000", "1e3", "1.5", ".inf", "-.Inf", ".nan", "2024-01-01", "12:30", "<<", "=", "*", "&a",
          "!x", "a: b", "a #b", "# c", "'q'", '"d"', "-", "- x", "[1]", "{a}", "http://h:1/v1", "gpt-*", "é", "\t",
          "multi\nline", "trailing "]
_scalars = st.one_of(st.sampled_from(_WORDS), st.text(max_size=8), st.integers(), st.floats(allow_nan=False),
                     st.booleans(), st.none())
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(_WORDS[:30]) | st.integers(0, 3), inner,
                                                 max_size=4)), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_values, st.sampled_from([None, True, False]), st.sampled_from([None, '"', "'"]))
def test_dumped_values_load_alike(value: Any, flow: bool | None, style: str | None) -> None:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = flow
    yaml.default_style = style
    out = io.StringIO()
    yaml.dump(value, out)
    _same_or_left(out.getvalue())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a:", " b", "- ", "c: 1", "  d: x", "\n", "#x", ":", "'", '"', "[", "]", "{",
                                 "}", ",", "? ", "&k ", "*k", "!!str ", "<<: ", "---", "...", "%YAML 1.1", "|",
                                 ">", "yes", "0x1", "~", "\t", "2001-12-14"]), max_size=14))
def test_fragments_load_alike_or_are_left_to_ruamel(parts: list[str]) -> None:
    _same_or_left("".join(parts))


@pytest.mark.parametrize("text", [
    "a: &x 1\nb: *x\n",  # anchors and aliases
    "a: !!str 3\n",  # tags
    "base: &b {x: 1}\nc:\n  <<: *b\n",  # merge keys
    "<<: {x: 1}\n",
    "a: 1\na: 2\n",  # duplicate keys (ruamel raises)
    "? [k]\n: v\n",  # complex keys
    "a: 2024-01-01\n",  # timestamps
    "a: 1\n---\nb: 2\n",  # several documents
    "%YAML 1.1\n---\na: yes\n",  # a directive
])
def test_what_it_leaves_to_ruamel(text: str) -> None:
    with pytest.raises(Unsupported):
        load_plain(text)


def test_a_config_parses_to_the_same_snapshot_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    text = """\
port: 8317
debug: yes   # a YAML 1.1 word: a string here, a warning in the config
api-keys: ["k1", k2]
routing: {strategy: fill-first}
gemini-api-key:
  - api-key: "g"
    excluded-models: ["gemini-*", '*-preview']
    models:
      - {name: gemini-2.5-pro, alias: gp}
payload:
  default:
    - models: [{name: "gpt-*"}]
      params: {"temperature": 0.5, "max": 1e3, "n": 0x10, "stop": null}
"""
    assert _typed(load_plain(text)) == _typed(_safe(text))
    fast = parse_config_text(text)

    def refuse(text: str) -> Any:
        raise Unsupported("test")

    monkeypatch.setattr(load_module, "load_plain", refuse)
    slow = parse_config_text(text)
    assert fast.config is not None and fast.config == slow.config
    assert [(str(p), p.line) for p in fast.problems] == [(str(p), p.line) for p in slow.problems]
