"""Comment-preserving view of ``config.yaml`` for edits that are written back to disk."""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.scalarfloat import ScalarFloat
from ruamel.yaml.scalarint import ScalarInt
from ruamel.yaml.scalarstring import ScalarString

from proxyd.fsutil import atomic_write_text

__all__ = ["ConfigDocument", "PathElem", "to_plain"]

PathElem = str | int

_KEY_LINE = re.compile(r"^(?P<indent> *)(?:- +)?[^\s#][^#]*?:\s*(?:#.*)?$")
_ANY_LINE = re.compile(r"^(?P<indent> *)(?P<dash>- +)?\S")


def to_plain(value: Any) -> Any:
    """Convert a ruamel round-trip node (maps, sequences, styled scalars) to plain Python values."""
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, ScalarString):
        return str(value)
    if isinstance(value, ScalarBoolean):
        return bool(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, ScalarInt):
        return int(value)
    if isinstance(value, ScalarFloat):
        return float(value)
    return value


def _detect_indent(text: str) -> tuple[int, int, int]:
    """Guess (mapping indent, sequence indent, dash offset) from how the file is written."""
    mapping: int | None = None
    offset: int | None = None
    lines = [ln.rstrip() for ln in text.splitlines()]
    significant = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    for cur, nxt in itertools.pairwise(significant):
        opener = _KEY_LINE.match(cur)
        if opener is None:
            continue
        follower = _ANY_LINE.match(nxt)
        if follower is None:
            continue
        cur_indent = len(opener.group("indent"))
        dash_prefix = re.match(r"^ *- +", cur)
        if dash_prefix is not None:
            cur_indent = len(dash_prefix.group(0))
        delta = len(follower.group("indent")) - cur_indent
        if follower.group("dash"):
            if offset is None and delta >= 0:
                offset = delta
        elif mapping is None and delta > 0:
            mapping = delta
        if mapping is not None and offset is not None:
            break
    mapping = mapping or 2
    offset = 2 if offset is None else offset
    return mapping, offset + 2, offset


class ConfigDocument:
    """The ruamel.yaml round-trip tree of one config file.

    Comments, key order, quoting and unknown keys survive :meth:`set` / :meth:`delete` /
    :meth:`save`; only the touched values change. Paths are tuples of mapping keys and list
    indexes, e.g. ``("openai-compatibility", 0, "base-url")``.
    """

    def __init__(self, root: CommentedMap, *, indent: tuple[int, int, int] = (2, 4, 2),
                 explicit_start: bool = False, preamble: str = "") -> None:
        self._root = root
        self._indent = indent
        self._explicit_start = explicit_start
        self._preamble = preamble

    # ------------------------------------------------------------------ construction

    @staticmethod
    def make_yaml(indent: tuple[int, int, int] = (2, 4, 2), explicit_start: bool = False) -> YAML:
        """A round-trip YAML instance configured like every document here."""
        yaml = YAML(typ="rt")
        yaml.preserve_quotes = True
        yaml.width = 4096
        yaml.brace_single_entry_mapping_in_flow_sequence = True
        yaml.indent(mapping=indent[0], sequence=indent[1], offset=indent[2])
        yaml.explicit_start = explicit_start
        return yaml

    @classmethod
    def parse(cls, text: str) -> ConfigDocument:
        """Parse YAML text. Raises ruamel's errors on bad syntax, ``TypeError`` for a non-mapping top."""
        indent = _detect_indent(text)
        yaml = cls.make_yaml(indent)
        data = yaml.load(text)
        explicit_start = text.lstrip().startswith("---")
        if data is None:
            # Empty or comment-only file: keep its text so new keys are appended below it.
            return cls(CommentedMap(), indent=indent, explicit_start=explicit_start, preamble=text)
        if not isinstance(data, CommentedMap):
            raise TypeError("top level must be a mapping")
        return cls(data, indent=indent, explicit_start=explicit_start)

    @classmethod
    def load(cls, path: Path) -> ConfigDocument:
        """Read and parse a file (UTF-8, optional BOM)."""
        return cls.parse(Path(path).read_bytes().decode("utf-8-sig"))

    def copy(self) -> ConfigDocument:
        """An independent deep copy (via a dump/parse round trip)."""
        return ConfigDocument.parse(self.dump())

    # ------------------------------------------------------------------ access

    @property
    def root(self) -> CommentedMap:
        """The top-level mapping (live ruamel node)."""
        return self._root

    def to_plain(self) -> dict[str, Any]:
        """The whole document as plain Python values."""
        return to_plain(self._root)

    def _walk(self, path: Sequence[PathElem]) -> Any:
        node: Any = self._root
        for elem in path:
            is_index = isinstance(elem, int) and not isinstance(elem, bool)
            if isinstance(node, Mapping) or (isinstance(node, list) and is_index):
                node = node[elem]
            else:
                raise KeyError(elem)
        return node

    def get(self, path: Sequence[PathElem], default: Any = None) -> Any:
        """The node at ``path`` (ruamel node; use :func:`to_plain` for plain values) or ``default``."""
        try:
            return self._walk(path)
        except (KeyError, IndexError, TypeError):
            return default

    def has(self, path: Sequence[PathElem]) -> bool:
        """Whether ``path`` exists."""
        sentinel = object()
        return self.get(path, sentinel) is not sentinel

    def set(self, path: Sequence[PathElem], value: Any) -> None:
        """Set ``path`` to ``value``, creating missing intermediate mappings.

        A string replacing a quoted string keeps the quote style; mappings and lists are converted
        to block-style nodes. An index equal to a list's length appends.
        """
        if not path:
            raise ValueError("empty path")
        node: Any = self._root
        for i, elem in enumerate(path[:-1]):
            nxt_elem = path[i + 1]
            child: Any
            if isinstance(node, Mapping):
                child = node.get(elem)
                if not isinstance(child, (Mapping, list)):
                    child = CommentedSeq() if isinstance(nxt_elem, int) else CommentedMap()
                    node[elem] = child
            elif isinstance(node, list) and isinstance(elem, int):
                if elem == len(node):
                    node.append(CommentedSeq() if isinstance(nxt_elem, int) else CommentedMap())
                child = node[elem]
                if not isinstance(child, (Mapping, list)):
                    child = CommentedSeq() if isinstance(nxt_elem, int) else CommentedMap()
                    node[elem] = child
            else:
                raise KeyError(elem)
            node = child
        last = path[-1]
        if isinstance(node, Mapping):
            node[last] = self._styled(node.get(last), value)
        elif isinstance(node, list) and isinstance(last, int):
            if last == len(node):
                node.append(self._styled(None, value))
            else:
                node[last] = self._styled(node[last], value)
        else:
            raise KeyError(last)

    def delete(self, path: Sequence[PathElem]) -> bool:
        """Remove ``path``; returns False when it did not exist."""
        if not path:
            raise ValueError("empty path")
        parent = self.get(path[:-1]) if len(path) > 1 else self._root
        last = path[-1]
        if isinstance(parent, Mapping) and last in parent:
            del parent[last]
            return True
        if isinstance(parent, list) and isinstance(last, int) and -len(parent) <= last < len(parent):
            del parent[last]
            return True
        return False

    @staticmethod
    def _styled(old: Any, value: Any) -> Any:
        if isinstance(value, str) and not isinstance(value, ScalarString) and isinstance(old, ScalarString):
            return type(old)(value)
        return _to_node(value)

    # ------------------------------------------------------------------ output

    def dump(self) -> str:
        """Serialize back to YAML text."""
        if not self._root and self._preamble:
            return self._preamble
        buf = io.StringIO()
        self.make_yaml(self._indent, self._explicit_start).dump(self._root, buf)
        text = buf.getvalue()
        if self._preamble:
            pre = self._preamble if self._preamble.endswith("\n") else self._preamble + "\n"
            text = pre + text
        return text

    def save(self, path: Path) -> None:
        """Write atomically (see :func:`proxyd.fsutil.atomic_write_text`), keeping the file's mode."""
        atomic_write_text(Path(path), self.dump())


def _to_node(value: Any) -> Any:
    if isinstance(value, (CommentedMap, CommentedSeq)):
        return value
    if isinstance(value, Mapping):
        out = CommentedMap()
        for k, v in value.items():
            out[k] = _to_node(v)
        return out
    if isinstance(value, (list, tuple)):
        seq = CommentedSeq()
        seq.extend(_to_node(v) for v in value)
        return seq
    return value
