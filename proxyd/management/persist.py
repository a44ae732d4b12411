"""Writing management edits back into ``config.yaml`` (management.md §1.9, ``persist``).

A mutating endpoint describes its change as an *operation*: a function that receives the configuration as
it is on disk right now and returns the new values of the settings it touches (flat v6.9.0 key paths →
plain YAML values, already sanitized by the config loader). :func:`commit` runs the operation under the
config store's lock (:meth:`ConfigStore.edit`), merges the values into the file's round-trip tree, and lets
the store validate the whole result with the loader before anything is written (atomically). The new
configuration takes effect through the store's normal swap and subscribers, as any reload does.

The merge keeps what a person wrote: comments, key order, quoting, flow/block style and unknown keys.

- A key already in the file is updated in place (a string keeps its quote style); a key not in the file is
  added only when its value differs from the default (so ``PUT /debug false`` on a file without ``debug``
  leaves the file alone).
- Sequences are matched by element identity (the first of ``id``, ``name``, ``alias``, ``api-key``, …, else
  the first scalar field), then position; matched elements are merged, new ones appended in the new order,
  vanished ones dropped. Inside list elements, known keys that no longer carry a value are removed; keys
  proxyd does not know are kept (the reference drops them).
- Comment lines that sit between two top-level keys stay where they are even when the list above them loses
  its last element or the key above them is removed.
- Legacy keys (§1.1) are removed, as the reference does on every persist.
- Files in the nested ``config-version: 8`` layout keep that layout: a setting is written where the file
  already has it (``routing.retry.request-retry``); provider key lists kept under ``api-keys.<provider>`` in
  that layout are refused (409) rather than rewritten in a different shape.

Unlike the reference (§1.9), only the touched settings are serialized: values of untouched keys are left
byte-for-byte as they are (the reference rewrites ``auth-dir`` to an absolute path, for instance).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import structlog
from aiohttp import web
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.scalarstring import ScalarString
from ruamel.yaml.tokens import CommentToken

from proxyd.config import Config
from proxyd.config.document import ConfigDocument, to_plain
from proxyd.config.load import LEGACY_KEYS, format_path, parse_config_text
from proxyd.config.model import attr_to_yaml_key
from proxyd.config.v8 import translate_v8
from proxyd.http.body import read_stream
from proxyd.keys import CONFIG_STORE

__all__ = [
    "REMOVE",
    "BadBody",
    "Changes",
    "Operation",
    "Refusal",
    "commit",
    "default_at",
    "identity",
    "merge_changes",
    "read_json",
    "sanitized",
    "yaml_plain",
]

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024

# Sentinel value: remove the key from the file.
REMOVE: Any = object()

FlatPath = tuple[str, ...]
Changes = Mapping[FlatPath, Any]
Operation = Callable[[Config], Changes]

_IDENTITY_KEYS = ("id", "name", "alias", "api-key", "api_key", "apikey", "key", "provider", "model")
_PROVIDER_LISTS = frozenset({"gemini-api-key", "codex-api-key", "claude-api-key", "vertex-api-key",
                             "openai-compatibility"})
# Fields that identify a list element: written even when empty so the element keeps its identity.
_ALWAYS = frozenset({"api_key", "name"})


class Refusal(Exception):
    """An edit refused before anything was written; ``body`` is the JSON answer."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        super().__init__(body.get("error", ""))

    def response(self) -> web.Response:
        """The JSON response for this refusal."""
        return web.json_response(self.body, status=self.status)


class BadBody(Refusal):
    """A request body that is not what the endpoint expects: ``400 {"error": ...}``."""

    def __init__(self, error: str = "invalid body") -> None:
        super().__init__(400, {"error": error})


# ------------------------------------------------------------------------------------------ requests


async def read_json(request: web.Request, *, unreadable: str = "invalid body") -> Any:
    """The request body decoded as JSON; ``BadBody`` for unreadable, oversized or malformed bodies."""
    try:
        raw = await read_stream(request.content, MAX_BODY_BYTES)
    except Exception as exc:
        raise BadBody(unreadable) from exc
    if raw is None:
        raise BadBody(unreadable)
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except ValueError as exc:
        raise BadBody() from exc


# ---------------------------------------------------------------------------------- serialization


def _field_default(field: attrs.Attribute) -> Any:  # type: ignore[type-arg]
    default = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        return default.factory()  # type: ignore[attr-defined]
    return default


def yaml_plain(value: Any) -> Any:
    """A snapshot value as plain YAML data: attrs objects → mappings (fields at their default left out)."""
    if attrs.has(type(value)):
        out: dict[str, Any] = {}
        for field in attrs.fields(type(value)):
            item = getattr(value, field.name)
            if item == _field_default(field) and field.name not in _ALWAYS:
                continue
            out[attr_to_yaml_key(field.name)] = yaml_plain(item)
        return out
    if isinstance(value, tuple | list):
        return [yaml_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): yaml_plain(v) for k, v in value.items()}
    return value


def default_at(path: Sequence[str]) -> Any:
    """The default (absent-key) value of a flat key path, as plain YAML data (``None`` if unknown)."""
    node: Any = Config()
    for key in path:
        if not attrs.has(type(node)):
            return None
        name = {attr_to_yaml_key(f.name): f.name for f in attrs.fields(type(node))}.get(key)
        if name is None:
            return None
        node = getattr(node, name)
    if attrs.has(type(node)):
        return {attr_to_yaml_key(f.name): yaml_plain(getattr(node, f.name)) for f in attrs.fields(type(node))}
    return yaml_plain(node)


def sanitized(values: Mapping[str, Any]) -> Config:
    """Run top-level ``values`` through the config loader; the loaded (normalized) snapshot.

    Entries the loader drops (a codex key without ``base-url``, a duplicate gemini key…) are dropped; any
    error refuses the edit: ``422 {"error": "invalid_config", "message": "<path>: <problem>"}``.
    """
    document = ConfigDocument(CommentedMap())
    for key, value in values.items():
        document.set((key,), value)
    result = parse_config_text(document.dump(), "<management edit>")
    if not result.ok or result.config is None:
        raise Refusal(422, {"error": "invalid_config", "message": "\n".join(str(p) for p in result.errors)})
    return result.config


# -------------------------------------------------------------------------------------------- merge


def _is_zero(value: Any) -> bool:
    return value is None or value is False or value == 0 or value == "" or value == [] or value == {}


def identity(value: Any) -> tuple[str, str] | None:
    """Element identity for sequence matching: the first identity key present, else the first scalar field."""
    if isinstance(value, Mapping):
        for key in _IDENTITY_KEYS:
            if key in value and not isinstance(value[key], Mapping | list):
                return key, str(to_plain(value[key])).strip()
        for key, item in value.items():
            if not isinstance(item, Mapping | list):
                return str(key), str(to_plain(item)).strip()
        return None
    if isinstance(value, list):
        return None
    return "", str(to_plain(value)).strip()


def _known_element_keys() -> frozenset[str]:
    from proxyd.config import model

    keys: set[str] = set()
    for obj in vars(model).values():
        if isinstance(obj, type) and attrs.has(obj) and obj is not Config:
            keys.update(attr_to_yaml_key(f.name) for f in attrs.fields(obj))
    keys.add("api-keys")  # openai-compatibility[].api-keys: legacy, never read
    return frozenset(keys)


_KNOWN_ELEMENT_KEYS = _known_element_keys()


def _to_node(value: Any) -> Any:
    if isinstance(value, Mapping):
        out = CommentedMap()
        for k, v in value.items():
            out[k] = _to_node(v)
        return out
    if isinstance(value, list):
        seq = CommentedSeq()
        seq.extend(_to_node(v) for v in value)
        return seq
    return value


def _scalar(old: Any, new: Any) -> Any:
    if isinstance(new, str) and isinstance(old, ScalarString):
        return type(old)(new)
    return _to_node(new)


def _merge(old: Any, new: Any, *, prune: str = "none") -> Any:
    """Merge plain ``new`` into the node ``old``; returns the node to store (``old`` itself when merged)."""
    if isinstance(new, Mapping) and isinstance(old, CommentedMap):
        _merge_map(old, new, prune=prune)
        return old
    if isinstance(new, list) and isinstance(old, CommentedSeq):
        _merge_seq(old, new)
        return old
    return _scalar(old, new)


def _merge_map(old: CommentedMap, new: Mapping[str, Any], *, prune: str) -> None:
    """``prune``: ``none`` keeps keys missing from ``new``; ``known`` drops known keys that still carry a value;
    ``all`` drops every key missing from ``new``."""
    if not old and new and old.fa.flow_style():
        old.fa.set_block_style()
    quoted = next((type(v) for v in old.values() if isinstance(v, ScalarString)), None)
    for key, value in new.items():
        if key in old:
            old[key] = _merge(old[key], value)
        elif not _is_zero(value):  # a new string takes the quote style of its siblings
            old[key] = quoted(value) if quoted is not None and isinstance(value, str) else _to_node(value)
    if prune == "none":
        return
    for key in list(old):
        if str(key) in new:
            continue
        if prune == "all" or (str(key) in _KNOWN_ELEMENT_KEYS and not _is_zero(to_plain(old[key]))):
            _delete_key(old, key)


def _merge_seq(old: CommentedSeq, new: list[Any]) -> None:
    old_items = list(old)
    old_ids = [identity(to_plain(item)) for item in old_items]
    assigned: list[int | None] = [None] * len(new)
    used: set[int] = set()
    for i, value in enumerate(new):
        ident = identity(value)
        if ident is None:
            continue
        for j, old_ident in enumerate(old_ids):
            if j not in used and old_ident == ident:
                assigned[i] = j
                used.add(j)
                break
    for i, value in enumerate(new):
        # a mapping with an identity that matched nothing is a new element, written whole (as the reference
        # does: its `models: []` then reads back as an empty list); others fall back to their position
        if isinstance(value, Mapping) and identity(value) is not None:
            continue
        if assigned[i] is None and i < len(old_items) and i not in used:
            assigned[i] = i
            used.add(i)

    quoted = next((type(item) for item in old_items if isinstance(item, ScalarString)), None)
    nodes: list[Any] = []
    for i, value in enumerate(new):
        j = assigned[i]
        if j is None:  # a new element; a string takes the quote style of its siblings
            nodes.append(quoted(value) if quoted is not None and isinstance(value, str) else _to_node(value))
        elif isinstance(value, Mapping) and isinstance(old_items[j], CommentedMap):
            _merge_map(old_items[j], value, prune="known")
            nodes.append(old_items[j])
        else:
            nodes.append(_merge(old_items[j], value))
    comments = dict(old.ca.items)
    old.ca.items.clear()
    if not old_items and nodes and old.fa.flow_style():
        old.fa.set_block_style()
    old[:] = nodes
    for i, j in enumerate(assigned):
        if j is not None and j in comments:
            old.ca.items[i] = comments[j]


# ---------------------------------------------------------------------------- comments between keys


def _holder(container: Any, key: Any) -> tuple[Any, Any, int]:
    """Where the comment after ``container[key]`` lives: the deepest last scalar of a non-empty value."""
    value = container[key]
    if isinstance(value, CommentedMap) and len(value) and not value.fa.flow_style():
        return _holder(value, list(value)[-1])
    if isinstance(value, CommentedSeq) and len(value) and not value.fa.flow_style():
        return _holder(value, len(value) - 1)
    return container, key, 2 if isinstance(container, CommentedMap) else 0


def _take_tail(node: CommentedMap | CommentedSeq) -> str | None:
    """Detach the comment lines that follow the last element of ``node`` (keeping its end-of-line comment)."""
    if not len(node) or node.fa.flow_style():
        return None
    last = list(node)[-1] if isinstance(node, CommentedMap) else len(node) - 1
    container, key, pos = _holder(node, last)
    entry = container.ca.items.get(key)
    if not entry or len(entry) <= pos or entry[pos] is None:
        return None
    token = entry[pos]
    text: str = token.value
    newline = text.find("\n")
    if newline < 0 or (newline == len(text) - 1 and text.startswith("#")):
        return None
    if text.startswith("#"):
        keep, tail = text[: newline + 1], text[newline + 1:]
    else:
        keep, tail = "", text[1:] if text.startswith("\n") else text
    if keep:
        token.value = keep
    else:
        entry[pos] = None
    return tail or None


def _attach(container: Any, key: Any, pos: int, tail: str) -> None:
    entry = container.ca.items.setdefault(key, [None, None, None, None])
    while len(entry) <= pos:
        entry.append(None)
    token = entry[pos]
    if token is None:
        token = entry[pos] = CommentToken("\n" + tail, CommentMark(0), None)
    else:
        token.value = (token.value if token.value.endswith("\n") else token.value + "\n") + tail
    value = container[key]
    if isinstance(value, CommentedMap | CommentedSeq):  # an empty or flow collection: the comment follows it
        if not len(value):
            value.fa.set_flow_style()
        value.ca.comment = [token, None]


def _put_tail(node: CommentedMap | CommentedSeq, tail: str) -> None:
    last = list(node)[-1] if isinstance(node, CommentedMap) else len(node) - 1
    _attach(*_holder(node, last), tail)


def _delete_key(mapping: CommentedMap, key: Any) -> None:
    """Remove ``key``; the comment lines after it move to the previous key so they keep their place."""
    keys = list(mapping)
    index = keys.index(key)
    value = mapping[key]
    tail = None
    if isinstance(value, CommentedMap | CommentedSeq) and len(value) and not value.fa.flow_style():
        tail = _take_tail(value)
    else:
        entry = mapping.ca.items.get(key)
        if entry and len(entry) > 2 and entry[2] is not None:
            text = entry[2].value
            newline = text.find("\n")
            tail = text[newline + 1:] if newline >= 0 else None
    del mapping[key]
    mapping.ca.items.pop(key, None)
    if tail and index > 0:
        _attach(*_holder(mapping, keys[index - 1]), tail)


# ------------------------------------------------------------------------------------------ locate


def _locate(root: CommentedMap, path: FlatPath) -> FlatPath:
    """Where a flat setting lives in this file (the nested spot for a config-version 8 file)."""
    try:
        version = int(to_plain(root.get("config-version", 0)) or 0)
    except (TypeError, ValueError):
        version = 0
    if version < 8:
        return path
    _flat, aliases, _notes = translate_v8(root)
    for n in range(len(path), 0, -1):
        alias = aliases.get(path[:n])
        if alias is None:
            continue
        if path[0] in _PROVIDER_LISTS and alias != path[0]:
            raise Refusal(409, {
                "error": "nested_layout",
                "message": f"{path[0]} is kept as {alias} in this config-version 8 file; "
                           "edit it with PUT /v0/management/config.yaml",
            })
        if "[" in alias:
            raise Refusal(409, {"error": "nested_layout",
                                "message": f"{format_path(path)} cannot be edited here in a config-version 8 file"})
        return (*alias.split("."), *path[n:])
    if path[0] == "api-keys":
        return ("access", "api-keys", *path[1:])
    return path


def _set_key(root: CommentedMap, path: FlatPath, where: FlatPath, value: Any) -> None:
    parent: Any = root
    for key in where[:-1]:
        child = parent.get(key) if isinstance(parent, CommentedMap) else None
        if not isinstance(child, CommentedMap):
            if value is REMOVE or value == default_at(path):
                return  # nothing to remove / the default needs no key
            child = CommentedMap()
            if key in parent:
                parent[key] = child
            else:
                _insert_key(parent, key, child)
        parent = child
    last = where[-1]
    if value is REMOVE:
        if last in parent:
            _delete_key(parent, last)
        return
    if last in parent:
        prune = "all" if path[0] in ("oauth-excluded-models", "oauth-model-alias") and len(path) == 1 else "none"
        old = parent[last]
        tail = _take_tail(old) if isinstance(old, CommentedMap | CommentedSeq) else None
        node = _merge(old, value, prune=prune)
        parent[last] = node
        if tail:
            if isinstance(node, CommentedMap | CommentedSeq) and len(node) and not node.fa.flow_style():
                _put_tail(node, tail)
            else:
                _attach(parent, last, 2, tail)
    elif value != default_at(path) and not (_is_zero(value) and default_at(path) is None):
        _insert_key(parent, last, _to_node(value))


def _insert_key(parent: CommentedMap, key: str, node: Any) -> None:
    """Append ``key`` at the end of ``parent``, keeping the comment lines that close the mapping below it."""
    tail = _take_tail(parent) if len(parent) else None
    parent[key] = node
    if tail:
        _put_tail(parent, tail)


def merge_changes(document: ConfigDocument, changes: Changes) -> list[str]:
    """Apply ``changes`` (flat path → plain value or :data:`REMOVE`) to the tree; returns legacy keys removed."""
    root = document.root
    for path, value in changes.items():
        _set_key(root, path, _locate(root, path), value)
    removed = [key for key in LEGACY_KEYS if key in root]
    for key in removed:
        _delete_key(root, key)
    compat = root.get("openai-compatibility")
    if isinstance(compat, CommentedSeq):
        for entry in compat:
            if isinstance(entry, CommentedMap) and "api-keys" in entry:
                _delete_key(entry, "api-keys")
                removed.append("openai-compatibility[].api-keys")
    return removed


# ------------------------------------------------------------------------------------------- commit


def _snapshot_of(document: ConfigDocument) -> Config | None:
    result = parse_config_text(document.dump(), "<config on disk>")
    return result.config


async def commit(request: web.Request, operation: Operation, setting: str) -> web.Response:
    """Run ``operation`` against the config on disk, persist its changes, answer ``{"status":"ok"}``.

    Refusals raised by the operation (404 item not found, 400, 422 from :func:`sanitized`) are answered as
    they are, with nothing written. An edit the loader rejects as a whole is ``422 invalid_config`` with
    every problem; a failed write is ``500 {"error": "failed to save config: ..."}``.
    """
    store = request.app[CONFIG_STORE]
    removed: list[str] = []

    def mutate(document: ConfigDocument) -> None:
        snapshot = _snapshot_of(document) or store.current
        changes = operation(snapshot)
        removed.extend(merge_changes(document, changes))

    try:
        result = await store.edit(mutate, reason=f"management {setting}")
    except Refusal as refusal:
        return refusal.response()
    except OSError as exc:
        detail = exc.strerror or type(exc).__name__
        log.error("management edit not saved", setting=setting, path=str(store.path), error=detail)
        return web.json_response({"error": f"failed to save config: {detail}"}, status=500)
    if not result.ok:
        problems = [str(p) for p in result.errors]
        log.info("management edit rejected by the config loader", setting=setting, problems=problems)
        return web.json_response({"error": "invalid_config", "message": "\n".join(problems)}, status=422)
    if removed:
        log.warning("legacy config keys removed while saving", keys=removed)
    log.info("config changed through the management API", setting=setting)
    return web.json_response({"status": "ok"})
