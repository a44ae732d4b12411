"""Plain values of a YAML config, built straight from the libyaml parser's events.

ruamel's safe loader composes a node tree, resolves every scalar's tag with a handful of regular expressions
and then constructs the values from the nodes: for a config with a thousand keys that is about 80 ms. The
events alone take a quarter of that. This builder makes the same dicts, lists and scalars from the events,
resolving and constructing each distinct plain scalar once with ruamel's own resolver and constructor, so a
value is exactly what the safe loader would give.

It handles what configs are written with: block and flow mappings and sequences, quoted, block and plain
scalars of the core types (str, int, float, bool, null). Anything else (anchors and aliases, tags, merge keys,
duplicate keys, complex keys, timestamps, several documents, directives) raises :class:`Unsupported`, and the
caller loads the text with ruamel instead (which words errors and handles the rest).
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.events import (
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from ruamel.yaml.nodes import ScalarNode

__all__ = ["Unsupported", "load_plain"]

_CORE_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null"))
_NO_KEY = object()


class Unsupported(Exception):
    """The text uses a YAML feature this builder leaves to ruamel."""


class _Scalars:
    """Plain scalars resolved and constructed by ruamel's safe loader machinery, once per distinct text."""

    def __init__(self, yaml: YAML) -> None:
        self._resolver = yaml.resolver
        self._constructor = yaml.constructor
        self._done: dict[str, Any] = {}

    def plain(self, text: str) -> Any:
        try:
            return self._done[text]
        except KeyError:
            pass
        tag = self._resolver.resolve(ScalarNode, text, (True, False))
        if str(tag) not in _CORE_TAGS:
            raise Unsupported(f"a plain scalar of {tag}")
        value = self._constructor.construct_object(ScalarNode(tag, text), deep=True)
        self._done[text] = value
        return value


def load_plain(text: str) -> Any:
    """The value of the one YAML document in `text`, as ``YAML(typ="safe").load`` gives it.

    Raises :class:`Unsupported` for what it leaves to ruamel, and ruamel's own errors for bad syntax.
    """
    yaml = YAML(typ="safe", pure=False)
    scalars = _Scalars(yaml)
    containers: list[Any] = []  # the open mappings and sequences, innermost last
    keys: list[Any] = []  # for each open container: the key awaiting its value (mappings)
    root: Any = None
    documents = 0
    for event in yaml.parse(text):
        kind = type(event)
        if kind is ScalarEvent:
            if event.anchor is not None or event.tag is not None:
                raise Unsupported("an anchor or a tag")
            node: Any = scalars.plain(event.value) if event.implicit[0] else event.value
            opens = False
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            if event.anchor is not None or event.tag is not None:
                raise Unsupported("an anchor or a tag")
            node = {} if kind is MappingStartEvent else []
            opens = True
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            containers.pop()
            keys.pop()
            continue
        elif kind is DocumentStartEvent:
            documents += 1
            if documents > 1 or event.version is not None or event.tags:
                raise Unsupported("several documents or a directive")
            continue
        elif kind is StreamStartEvent or kind is StreamEndEvent or kind is DocumentEndEvent:
            continue
        else:
            raise Unsupported(kind.__name__)  # aliases
        if not containers:
            root = node
        else:
            parent = containers[-1]
            if type(parent) is list:
                parent.append(node)
            else:
                key = keys[-1]
                if key is _NO_KEY:
                    if opens:
                        raise Unsupported("a complex mapping key")
                    if node in parent:
                        raise Unsupported("a duplicate key")
                    keys[-1] = node
                    continue
                parent[key] = node
                keys[-1] = _NO_KEY
        if opens:
            containers.append(node)
            keys.append(_NO_KEY)
    return root
