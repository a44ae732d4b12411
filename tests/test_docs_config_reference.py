"""The config key reference in docs/configuration.md is generated from the attrs models and must stay in sync."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import attrs
import pytest
from ruamel.yaml import YAML

from proxyd.config import docs, model

ROOT = Path(__file__).resolve().parents[1]
CONFIG_MD = ROOT / "docs" / "configuration.md"
EXAMPLE = ROOT / "etc" / "config.yaml"


def test_every_field_is_documented() -> None:
    assert docs.missing_docs() == [], "add metadata=_doc(...) to these fields in proxyd/config/model.py"


def test_generated_reference_matches_the_file() -> None:
    current = CONFIG_MD.read_text(encoding="utf-8")
    assert docs.BEGIN_MARKER in current and docs.END_MARKER in current
    wanted = docs.splice(current, docs.render_reference())
    assert wanted == current, "docs/configuration.md is stale: run `python -m proxyd.config.docs`"


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(f"# Title\n\n{docs.BEGIN_MARKER}\n\nold table\n{docs.END_MARKER}\n\n## Kept\n", encoding="utf-8")
    assert docs.main(["--check", str(stale)]) == 1
    assert docs.main([str(stale)]) == 0
    text = stale.read_text(encoding="utf-8")
    assert "old table" not in text and text.startswith("# Title\n") and text.endswith("## Kept\n")
    assert "| `port` | int 1–65535 | `8317` |" in text
    assert docs.main(["--check", str(stale)]) == 0


def test_splice_needs_markers() -> None:
    with pytest.raises(ValueError, match="markers"):
        docs.splice("no markers here", "x")


def test_every_config_key_has_a_row() -> None:
    keys = {row.key for row in docs.iter_rows()}
    for name in model.config_yaml_keys():
        assert name in keys or any(k.startswith(f"{name}.") for k in keys), name
    document = CONFIG_MD.read_text(encoding="utf-8")
    for key in ("tls.cert", "routing.strategy", "upstream-timeouts.idle-seconds", "payload.filter[].params",
                "oauth-model-alias.<channel>[].fork", "config-version"):
        assert f"| `{key}`" in document, key
    for section in docs.SECTIONS:
        assert f"\n## {section}\n" in document, section


def test_rest_of_the_document_is_kept() -> None:
    document = CONFIG_MD.read_text(encoding="utf-8")
    for heading in ("## Reading the tables", "## Legacy keys", "## Validation errors", "## Hot reload",
                    "## Nested `config-version: 8` layout"):
        assert heading in document, heading


# ------------------------------------------------------------------------------ etc/config.yaml vs the model


def _unknown_keys(value: Any, cls: type, path: str) -> list[str]:
    """Keys of a parsed YAML mapping that ``cls`` (an attrs model) has no field for, recursively."""
    if not isinstance(value, dict):
        return []
    hints = typing.get_type_hints(cls, vars(model))
    fields = {f.name: f for f in attrs.fields(cls)}
    problems: list[str] = []
    for key, item in value.items():
        attr = str(key).replace("-", "_")
        attr = attr + "_" if attr == "from" else attr
        if attr not in fields or attr == "extra":
            problems.append(f"{path}{key}")
            continue
        tp = hints[attr]
        if typing.get_origin(tp) in (typing.Union, typing.get_origin(int | None)):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if attrs.has(tp):
            problems += _unknown_keys(item, tp, f"{path}{key}.")
        elif origin is tuple and args and attrs.has(args[0]):
            for i, entry in enumerate(item or []):
                problems += _unknown_keys(entry, args[0], f"{path}{key}[{i}].")
        elif origin is dict and len(args) == 2 and typing.get_origin(args[1]) is tuple:
            inner = typing.get_args(args[1])
            if inner and attrs.has(inner[0]):
                for channel, entries in (item or {}).items():
                    for i, entry in enumerate(entries or []):
                        problems += _unknown_keys(entry, inner[0], f"{path}{key}.{channel}[{i}].")
    return problems


def _commented_blocks(text: str) -> list[str]:
    """The commented-out example blocks of the shipped config (``# key:`` followed by indented ``#   `` lines)."""
    blocks: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if re.match(r"^# [a-z][a-z0-9-]*:( |$)", line):
            current = [line[2:]]
            blocks.append("")
        elif current is not None and line.startswith("#   "):
            current.append(line[2:])
        else:
            current = None
        if current is not None:
            blocks[-1] = "\n".join(current)
    return blocks


def _load(text: str) -> Any:
    return YAML(typ="safe").load(text)


def test_every_key_of_the_shipped_config_is_in_the_model() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert _unknown_keys(_load(text), model.Config, "") == []


def test_every_key_of_the_shipped_config_examples_is_in_the_model() -> None:
    blocks = _commented_blocks(EXAMPLE.read_text(encoding="utf-8"))
    names = [block.split(":", 1)[0] for block in blocks]
    # The commented examples cover the provider lists and the other sections.
    for expected in ("gemini-api-key", "claude-api-key", "codex-api-key", "openai-compatibility", "vertex-api-key",
                     "ampcode", "oauth-model-alias", "oauth-excluded-models", "payload"):
        assert expected in names, expected
    for block in blocks:
        assert _unknown_keys(_load(block), model.Config, "") == [], block
