"""The fast (libyaml safe) loader and the round-trip loader agree on every config they both accept."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxyd.config.load import _parse_round_trip, parse_config_text

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = [
    ROOT / "etc" / "config.yaml",
    ROOT.parent / "shared" / "conformance" / "config.baseline.legacy.yaml",
]
TEXTS = {
    "aliases and pools": """
api-keys: ["k1", "k2"]
debug: true
openai-compatibility:
  - name: "p"
    base-url: "http://127.0.0.1:9/v1"
    api-key-entries: [{api-key: "sk-1"}, {api-key: "sk-2", proxy-url: "socks5://127.0.0.1:1080"}]
    models: [{name: "gpt-4o", alias: "a"}, {name: "gpt-4o-mini", alias: "a"}]
routing: {strategy: fill-first}
""",
    "v8 layout": "config-version: 8\nserver:\n  port: 8400\n",
    "yaml 1.1 bool word": "debug: yes\n",
    "quoted bool word": "debug: 'yes'\n",
    "empty": "",
    "comments only": "# nothing here\n",
}


def _cases() -> list[tuple[str, str]]:
    out = [(name, text) for name, text in TEXTS.items()]
    out += [(path.name, path.read_text(encoding="utf-8")) for path in SAMPLES if path.is_file()]
    return out


@pytest.mark.parametrize(("name", "text"), _cases(), ids=[name for name, _ in _cases()])
def test_fast_and_round_trip_loads_agree(name: str, text: str) -> None:
    fast = parse_config_text(text)
    slow = _parse_round_trip(text, fast.sha256)
    assert fast.config == slow.config, name
    assert [str(p) for p in fast.problems] == [str(p) for p in slow.problems], name
    if fast.ok:
        assert fast.document is not None  # parsed on first use
        assert fast.document.dump() == slow.document.dump()  # type: ignore[union-attr]


def test_problems_still_carry_lines() -> None:
    result = parse_config_text("port: 8317\nrequest-retry: many\n")
    assert not result.ok
    assert [p.line for p in result.problems] == [2]
