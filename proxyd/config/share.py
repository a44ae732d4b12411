"""Carry the unchanged parts of one config snapshot over to the next: the same objects, not equal copies.

A reload that renames one alias among 1,000 keys parses the whole file again. When the new snapshot holds the
previous one's objects wherever nothing changed, whatever is derived from them (credentials, the diff, the
manager's unchanged check) can tell what changed by identity, and a forked child sends back only what is new
(the rest by name, see :func:`shared_parts` and :func:`proxyd.childcall.call_in_child`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable
from typing import Any

import attrs

from proxyd.config.model import Config

__all__ = ["identical", "share_unchanged", "shared_parts"]

_SCALARS = frozenset({str, int, float, bool, type(None), bytes})
_getters: dict[type, Callable[[Any], tuple[Any, ...]] | None] = {}


def _fields_of(kind: type) -> Callable[[Any], tuple[Any, ...]] | None:
    """A getter of every attrs field of `kind` as one tuple (None when `kind` is not an attrs class)."""
    try:
        return _getters[kind]
    except KeyError:
        pass
    getter = None
    if attrs.has(kind):
        names = [f.name for f in attrs.fields(kind)]
        if len(names) == 1:
            one = operator.attrgetter(names[0])
            getter = lambda obj: (one(obj),)  # noqa: E731 - attrgetter of one name returns the bare value
        elif names:
            getter = operator.attrgetter(*names)
        else:
            getter = lambda obj: ()  # noqa: E731
    _getters[kind] = getter
    return getter


def identical(a: Any, b: Any) -> bool:
    """Equal and indistinguishable: the same types throughout (``1``, ``1.0`` and ``True`` differ) and the same
    key order in every dict. Plain ``==`` would let a reload keep ``temperature: 1`` where the file now says
    ``1.0``, or an old header order."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind in _SCALARS:
        return a == b
    if kind is tuple or kind is list:
        return len(a) == len(b) and all(map(identical, a, b))
    if kind is dict:
        return (len(a) == len(b) and all(map(identical, a.keys(), b.keys()))
                and all(map(identical, a.values(), b.values())))
    getter = _fields_of(kind)
    if getter is None:  # enums, frozensets, …: their own equality
        return bool(a == b)
    return identical(getter(a), getter(b))


def _shareable(value: Any) -> bool:
    return type(value) not in _SCALARS


def share_unchanged(old: Config, new: Config) -> Config:
    """`new` holding `old`'s objects wherever they are :func:`identical`: whole top-level values, and the
    entries (at the same position) of a top-level list that changed."""
    replace: dict[str, Any] = {}
    for field in attrs.fields(Config):
        before, after = getattr(old, field.name), getattr(new, field.name)
        if before is after or not _shareable(after):
            continue
        if identical(before, after):
            replace[field.name] = before
        elif type(before) is tuple and type(after) is tuple:
            merged = tuple(b if identical(b, a) else a for b, a in zip(before, after, strict=False))
            merged += after[len(merged):]
            if any(m is not a for m, a in zip(merged, after, strict=True)):
                replace[field.name] = merged
    return attrs.evolve(new, **replace) if replace else new


def shared_parts(config: Config) -> dict[Hashable, object]:
    """Names for the parts of `config` a later snapshot may hold (see :func:`share_unchanged`): its top-level
    values and the entries of its top-level lists."""
    out: dict[Hashable, object] = {}
    for field in attrs.fields(Config):
        value = getattr(config, field.name)
        if not _shareable(value):
            continue
        out[field.name] = value
        if type(value) is tuple:
            for i, item in enumerate(value):
                if _shareable(item):
                    out[(field.name, i)] = item
    return out
