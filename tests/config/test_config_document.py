"""Round-trip editing of config.yaml: comments, order, quoting and unknown keys survive."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from proxyd.config import ConfigDocument, load_config, parse_config_text, to_plain

REALISTIC = """\
# Production gateway
# (edited by hand, keep the comments!)

host: ""   # all interfaces
port: 8317

tls:
  enable: false
  cert: ''
  key: ''

remote-management:
  allow-remote: false
  secret-key: "$2a$10$abcdefghijklmnopqrstuv"  # bcrypt
  disable-control-panel: false

auth-dir: "~/.cli-proxy-api"

# client keys
api-keys:
  - "client-key-alpha"
  - 'client-key-beta'
  - client-key-gamma

request-retry: 3
routing:
  strategy: fill-first # sticky

my-team-notes:
  owner: ops
  tags: [a, b]

openai-compatibility:
  # OpenRouter
  - name: "openrouter"
    base-url: "https://openrouter.ai/api/v1"
    api-key-entries:
      - api-key: "sk-or-1"
    models:
      - name: "vendor/model-x"
        alias: "mx"

payload:
  filter:
    - models: [{name: "*"}]
      params: ["metadata"]
# trailing comment
"""


def test_parse_and_dump_is_identity() -> None:
    assert ConfigDocument.parse(REALISTIC).dump() == REALISTIC


def test_set_scalar_changes_only_that_value_and_keeps_quotes() -> None:
    doc = ConfigDocument.parse(REALISTIC)
    doc.set(("routing", "strategy"), "round-robin")
    doc.set(("port",), 9000)
    doc.set(("api-keys", 1), "client-key-delta")
    doc.set(("openai-compatibility", 0, "base-url"), "https://example.com/v1")
    expected = (
        REALISTIC.replace("strategy: fill-first # sticky", "strategy: round-robin # sticky")
        .replace("port: 8317", "port: 9000")
        .replace("'client-key-beta'", "'client-key-delta'")
        .replace('base-url: "https://openrouter.ai/api/v1"', 'base-url: "https://example.com/v1"')
    )
    assert doc.dump() == expected


def test_save_preserves_comments_unknown_keys_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(REALISTIC)
    os.chmod(path, 0o640)
    result = load_config(path)
    assert result.ok and result.document is not None
    assert result.config is not None and "my-team-notes" in result.config.extra
    result.document.set(("request-retry",), 5)
    result.document.save(path)
    saved = path.read_text()
    assert saved == REALISTIC.replace("request-retry: 3", "request-retry: 5")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]
    reloaded = load_config(path)
    assert reloaded.config is not None
    assert reloaded.config.request_retry == 5
    assert reloaded.config.extra["my-team-notes"] == {"owner": "ops", "tags": ["a", "b"]}


def test_set_creates_intermediate_mappings_and_appends() -> None:
    doc = ConfigDocument.parse("host: h\n")
    doc.set(("streaming", "keepalive-seconds"), 15)
    doc.set(("api-keys",), ["k1"])
    doc.set(("api-keys", 1), "k2")
    doc.set(("gemini-api-key",), [{"api-key": "g", "models": [{"name": "a", "alias": "b"}]}])
    assert doc.dump() == (
        "host: h\n"
        "streaming:\n"
        "  keepalive-seconds: 15\n"
        "api-keys:\n"
        "  - k1\n"
        "  - k2\n"
        "gemini-api-key:\n"
        "  - api-key: g\n"
        "    models:\n"
        "      - name: a\n"
        "        alias: b\n"
    )
    result = parse_config_text(doc.dump())
    assert result.config is not None and result.config.api_keys == ("k1", "k2")


def test_set_into_comment_only_document_keeps_the_comments() -> None:
    doc = ConfigDocument.parse("# header comment\n")
    assert doc.dump() == "# header comment\n"
    doc.set(("port",), 1234)
    assert doc.dump() == "# header comment\nport: 1234\n"


def test_get_has_delete() -> None:
    doc = ConfigDocument.parse(REALISTIC)
    assert doc.get(("openai-compatibility", 0, "models", 0, "alias")) == "mx"
    assert doc.get(("nope", "deeper")) is None
    assert doc.get(("api-keys", 9), "dflt") == "dflt"
    assert doc.has(("tls", "cert"))
    assert to_plain(doc.get(("my-team-notes",))) == {"owner": "ops", "tags": ["a", "b"]}
    assert doc.delete(("my-team-notes",)) is True
    assert doc.delete(("my-team-notes",)) is False
    assert doc.delete(("api-keys", 0)) is True
    text = doc.dump()
    assert "my-team-notes" not in text and "client-key-alpha" not in text
    assert "# client keys" in text and "# trailing comment" in text
    with pytest.raises(ValueError, match="empty path"):
        doc.set((), 1)


def test_indentation_style_of_the_file_is_kept() -> None:
    text = "api-keys:\n- a\n- b\nrouting:\n    strategy: ff\n"
    doc = ConfigDocument.parse(text)
    assert doc.dump() == text
    doc.set(("api-keys", 2), "c")
    assert doc.dump() == "api-keys:\n- a\n- b\n- c\nrouting:\n    strategy: ff\n"


def test_copy_is_independent() -> None:
    doc = ConfigDocument.parse(REALISTIC)
    clone = doc.copy()
    clone.set(("port",), 1)
    assert doc.get(("port",)) == 8317
    assert clone.get(("port",)) == 1


def test_legacy_baseline_round_trips() -> None:
    path = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "config.baseline.legacy.yaml"
    if not path.exists():
        pytest.skip("baseline not available")
    text = path.read_text()
    doc = ConfigDocument.parse(text)
    assert doc.dump() == text
    doc.set(("request-retry",), 4)
    assert doc.dump() == text.replace("request-retry: 2", "request-retry: 4")
