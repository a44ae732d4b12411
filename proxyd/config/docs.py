"""Generate the key reference of ``docs/configuration.md`` from the attrs models in :mod:`proxyd.config.model`.

Every field carries ``metadata`` made by ``model._doc``: ``doc`` (the meaning), ``reload`` (``hot`` / ``restart``,
inherited from the enclosing key when absent), ``section`` on top-level keys, optional ``type`` / ``default``
display overrides and ``proxyd`` for extensions. Types and defaults come from the models themselves, so the
table cannot drift from the code; ``tests/test_docs_config_reference.py`` fails when the file is stale.

``python -m proxyd.config.docs`` rewrites the section between the markers in place; ``--check`` only compares
(exit 1 when stale); ``--stdout`` prints the generated section.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import attrs

from proxyd.config import model
from proxyd.fsutil import atomic_write_text

__all__ = [
    "BEGIN_MARKER",
    "END_MARKER",
    "SECTIONS",
    "Row",
    "default_doc_path",
    "iter_rows",
    "main",
    "missing_docs",
    "render_reference",
    "splice",
]

BEGIN_MARKER = "<!-- BEGIN GENERATED CONFIG REFERENCE (python -m proxyd.config.docs; do not edit by hand) -->"
END_MARKER = "<!-- END GENERATED CONFIG REFERENCE -->"

# Section titles in document order; each top-level field names one in its metadata.
SECTIONS: tuple[str, ...] = (
    "Server",
    "Management API and control panel",
    "Credentials and client access",
    "Logging and diagnostics",
    "Upstream behaviour",
    "Provider credentials",
    "Other sections",
    "File format",
)

_SKIPPED = frozenset({"extra"})  # Config.extra holds unknown keys; it is not a key itself.


@attrs.frozen
class Row:
    """One documented key: dotted YAML path (``[]`` = each list entry, ``<channel>`` = any map key)."""

    key: str
    type: str
    default: str
    meaning: str
    reload: str
    proxyd: bool = False


def default_doc_path() -> Path:
    """``docs/configuration.md`` of the source tree this package lives in."""
    return Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


# ----------------------------------------------------------------------------------------- type analysis


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(model))


def _entry_class(tp: Any) -> type | None:
    """The attrs class of ``tuple[C, ...]`` (a list of entries, also ``| None``), else ``None``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _entry_class(args[0]) if len(args) == 1 else None
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if args and attrs.has(args[0]):
            return typing.cast(type, args[0])
    return None


def _channel_entry_class(tp: Any) -> type | None:
    """The attrs class of ``dict[str, tuple[C, ...]]`` (a per-channel list of entries), else ``None``."""
    if typing.get_origin(tp) is dict:
        args = typing.get_args(tp)
        if len(args) == 2:
            return _entry_class(args[1])
    return None


def _optional_block(tp: Any) -> type | None:
    """The attrs class of ``C | None``, else ``None``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and attrs.has(args[0]):
            return typing.cast(type, args[0])
    return None


def _type_name(tp: Any) -> str:
    if tp is str:
        return "string"
    if tp is bool:
        return "bool"
    if tp is int:
        return "int"
    if tp is float:
        return "number"
    if tp is Any:
        return "any"
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        return "string"
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or unset" if type(None) in args else "")
    if origin is tuple:
        if args and attrs.has(args[0]):
            return "list of entries"
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        if _channel_entry_class(tp) is not None:
            return "map channel → list of entries"
        return f"map {_type_name(args[0])} → {_type_name(args[1])}" if args else "map"
    if attrs.has(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _default_text(field: attrs.Attribute[Any]) -> str:
    value = field.default
    if isinstance(value, attrs.Factory):  # type: ignore[arg-type]
        value = value.factory()  # type: ignore[attr-defined]
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`' if value == "" else f"`{value}`"
    if isinstance(value, tuple | list):
        return "`[]`" if not value else f"`{list(value)}`"
    if isinstance(value, dict):
        return "`{}`" if not value else f"`{value}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


# ------------------------------------------------------------------------------------------------ walking


def _walk(cls: type, prefix: str, reload: str) -> Iterator[Row]:
    hints = _hints(cls)
    for field in attrs.fields(cls):
        if field.name in _SKIPPED:
            continue
        yield from _field_rows(field, hints[field.name], prefix, reload)


def _field_rows(field: attrs.Attribute[Any], tp: Any, prefix: str, inherited: str) -> Iterator[Row]:
    meta = field.metadata
    key = prefix + model.attr_to_yaml_key(field.name)
    reload = meta.get("reload", inherited)
    entry = _entry_class(tp)
    channel_entry = _channel_entry_class(tp)
    if attrs.has(tp):  # a block: its own keys, dotted
        yield from _walk(tp, key + ".", reload)
        return
    optional_block = _optional_block(tp)
    yield Row(
        key=key,
        type=meta.get("type") or _type_name(tp),
        default=str(meta["default"]) if "default" in meta else _default_text(field),
        meaning=str(meta.get("doc", "")).strip(),
        reload=reload,
        proxyd=bool(meta.get("proxyd")),
    )
    if optional_block is not None:  # a block that may be absent: its own row, then its keys
        yield from _walk(optional_block, key + ".", reload)
    elif entry is not None:
        yield from _walk(entry, key + "[].", reload)
    elif channel_entry is not None:
        yield from _walk(channel_entry, key + ".<channel>[].", reload)


def iter_rows(section: str | None = None) -> Iterator[Row]:
    """Every documented key of :class:`~proxyd.config.model.Config` (of one section when given)."""
    hints = _hints(model.Config)
    for field in attrs.fields(model.Config):
        if field.name in _SKIPPED:
            continue
        if section is not None and field.metadata.get("section") != section:
            continue
        yield from _field_rows(field, hints[field.name], "", str(field.metadata.get("reload", "")))


def missing_docs() -> list[str]:
    """Problems with the models' metadata: fields without a meaning, top-level keys without reload/section."""
    problems: list[str] = []
    for field in attrs.fields(model.Config):
        if field.name in _SKIPPED:
            continue
        key = model.attr_to_yaml_key(field.name)
        if field.metadata.get("reload") not in ("hot", "restart"):
            problems.append(f"{key}: metadata 'reload' must be 'hot' or 'restart'")
        if field.metadata.get("section") not in SECTIONS:
            problems.append(f"{key}: metadata 'section' must be one of {', '.join(SECTIONS)}")
    seen: set[type] = set()

    def visit(cls: type, path: str) -> None:
        if cls in seen:
            return
        seen.add(cls)
        hints = _hints(cls)
        for field in attrs.fields(cls):
            if field.name in _SKIPPED:
                continue
            key = path + model.attr_to_yaml_key(field.name)
            if not str(field.metadata.get("doc", "")).strip():
                problems.append(f"{key}: no metadata 'doc' in {cls.__name__}.{field.name}")
            tp = hints[field.name]
            nested = tp if attrs.has(tp) else _entry_class(tp) or _channel_entry_class(tp) or _optional_block(tp)
            if nested is not None:
                visit(nested, key + ".")

    visit(model.Config, "")
    return problems


# ---------------------------------------------------------------------------------------------- rendering


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def _table(rows: list[Row], *, reload: bool = True) -> list[str]:
    if reload:
        out = ["| Key | Type | Default | Meaning | Reload |", "|---|---|---|---|---|"]
    else:
        out = ["| Field | Type | Default | Meaning |", "|---|---|---|---|"]
    for row in rows:
        key = f"`{row.key}`" + (" **proxyd**" if row.proxyd else "")
        line = f"| {key} | {_cell(row.type)} | {_cell(row.default)} | {_cell(row.meaning)} |"
        out.append(f"{line} {row.reload} |" if reload else line)
    return out


def render_reference() -> str:
    """The generated section (markers excluded), ending with a newline."""
    out: list[str] = []
    hints = _hints(model.Config)
    for section in SECTIONS:
        fields = [f for f in attrs.fields(model.Config) if f.metadata.get("section") == section]
        if not fields:
            continue
        out += [f"## {section}", ""]
        plain: list[Row] = []
        lists: list[attrs.Attribute[Any]] = []
        for field in fields:
            # Top-level lists of entries (the provider lists) get a subsection each.
            if _entry_class(hints[field.name]) is not None and section == "Provider credentials":
                lists.append(field)
            else:
                plain += list(_field_rows(field, hints[field.name], "", str(field.metadata.get("reload", ""))))
        if plain:
            out += [*_table(plain), ""]
        for field in lists:
            key = model.attr_to_yaml_key(field.name)
            reload = str(field.metadata.get("reload", ""))
            entry = _entry_class(hints[field.name])
            assert entry is not None
            out += [f"### `{key}`", "", f"{_cell(str(field.metadata.get('doc', '')))} A list of entries "
                    f"(default `[]`; reload: {reload}) with these fields:", ""]
            out += [*_table(list(_walk(entry, "", reload)), reload=False), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def splice(document: str, generated: str) -> str:
    """``document`` with the text between the markers replaced by ``generated``."""
    start = document.find(BEGIN_MARKER)
    end = document.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"markers not found: {BEGIN_MARKER!r} … {END_MARKER!r}")
    head = document[: start + len(BEGIN_MARKER)]
    return f"{head}\n\n{generated}\n{document[end:]}"


def main(argv: list[str] | None = None) -> int:
    """Command line: regenerate (default), ``--check`` or ``--stdout``."""
    parser = argparse.ArgumentParser(prog="python -m proxyd.config.docs", description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=None, help="default: docs/configuration.md")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when the file differs from the models")
    mode.add_argument("--stdout", action="store_true", help="print the generated section")
    args = parser.parse_args(argv)
    problems = missing_docs()
    if problems:
        sys.stderr.write("undocumented config fields:\n" + "".join(f"  {p}\n" for p in problems))
        return 1
    generated = render_reference()
    if args.stdout:
        sys.stdout.write(generated)
        return 0
    path: Path = args.path or default_doc_path()
    current = path.read_text(encoding="utf-8")
    wanted = splice(current, generated)
    if args.check:
        if wanted != current:
            sys.stderr.write(f"{path}: config reference is stale; run python -m proxyd.config.docs\n")
            return 1
        return 0
    if wanted != current:
        atomic_write_text(path, wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
