"""List-edit endpoints (management.md §3.7): ``api-keys``, the provider key lists, ``openai-compatibility``,
``oauth-excluded-models`` and ``oauth-model-alias``.

Every edit is computed against the configuration as it is on disk at that moment (under the config store's
lock), run through the config loader (so entries are trimmed, normalized and de-duplicated exactly as a reload
would, and invalid values are refused with the loader's message before anything is written), then merged into
the file by :mod:`proxyd.management.persist`. Indexes refer to the lists as ``GET`` shows them (after the
loader dropped invalid entries). The reference's odd corners are kept: ``PATCH /api-keys`` with ``old``/``new``
appends when nothing matches; ``{"items": []}`` is refused; ``DELETE /gemini-api-key?api-key=`` answers 404 when
nothing matched while the other key lists answer ``ok``.

The ``ampcode`` lists (§3.7.6) are not served.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
from aiohttp import web

from proxyd.config import Config
from proxyd.config.load import normalize_excluded
from proxyd.credentials.from_config import credentials_from_config
from proxyd.credentials.model import auth_index_of
from proxyd.keys import CONFIG_STORE
from proxyd.management.config_view import config_json
from proxyd.management.persist import REMOVE, BadBody, Changes, Refusal, commit, read_json, sanitized, yaml_plain

__all__ = ["OBJECT_LISTS", "ObjectList", "route_defs"]

Handler = Callable[[web.Request], Any]
Wrap = Callable[[Handler], Handler]

# ------------------------------------------------------------------------------------ body decoding

# A field spec: "str", "int", "bool", "strlist", "headers", a dict (an object's fields) or ("list", spec).
Spec = Any

_MODEL: Spec = {"name": "str", "alias": "str"}
_SCOPED: Spec = ("list", {"status": "int", "match": "strlist", "match-regexr": "strlist", "action": "str"})
_COMMON: dict[str, Spec] = {
    "api-key": "str", "priority": "int", "prefix": "str", "base-url": "str", "proxy-url": "str",
    "headers": "headers", "models": ("list", _MODEL), "excluded-models": "strlist", "weight": "int",
}
_RULED: dict[str, Spec] = {**_COMMON, "request-scoped-errors": _SCOPED}
_CLOAK: Spec = {"mode": "str", "strict-mode": "bool", "sensitive-words": "strlist", "cache-user-id": "bool"}
_OPENAI: dict[str, Spec] = {
    "name": "str", "priority": "int", "prefix": "str", "base-url": "str",
    "api-key-entries": ("list", {"api-key": "str", "proxy-url": "str", "weight": "int"}),
    "models": ("list", _MODEL), "headers": "headers", "request-scoped-errors": _SCOPED,
}


def _coerce(spec: Spec, value: Any) -> Any:
    """Check a JSON value against ``spec`` (strings trimmed, unknown object fields ignored); BadBody if it fails."""
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise BadBody()
        return {k: _coerce(spec[k], v) for k, v in value.items() if k in spec and v is not None}
    if isinstance(spec, tuple):
        if not isinstance(value, list):
            raise BadBody()
        return [_coerce(spec[1], v) for v in value if v is not None]
    if spec == "str":
        if not isinstance(value, str):
            raise BadBody()
        return value.strip()
    if spec == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise BadBody()
        return value
    if spec == "bool":
        if not isinstance(value, bool):
            raise BadBody()
        return value
    if spec == "strlist":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BadBody()
        return list(value)
    if spec == "headers":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise BadBody()
        return {k: v for k, v in value.items()}
    raise AssertionError(spec)


def _items(body: Any, kind: type = list) -> Any:
    """A PUT body: the raw collection, or ``{"items": <collection>}`` (an empty ``items`` list is refused)."""
    if isinstance(body, kind) and not (kind is dict and set(body) == {"items"} and isinstance(body["items"], dict)):
        return body
    if isinstance(body, dict) and isinstance(body.get("items"), kind):
        items = body["items"]
        if kind is list and not items:
            raise BadBody()
        return items
    raise BadBody()


def _optional(body: Mapping[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadBody()
    return value


def _query_index(request: web.Request, length: int) -> int | None:
    raw = request.query.get("index", "").strip()
    try:
        index = int(raw)
    except ValueError:
        return None
    return index if 0 <= index < length else None


# ------------------------------------------------------------------------------------------ api-keys


async def get_api_keys(request: web.Request) -> web.StreamResponse:
    """``GET /api-keys``."""
    return web.json_response({"api-keys": list(request.app[CONFIG_STORE].current.api_keys) or None})


def _api_keys_change(keys: list[str]) -> Changes:
    return {("api-keys",): list(sanitized({"api-keys": keys}).api_keys)}


async def put_api_keys(request: web.Request) -> web.StreamResponse:
    """``PUT /api-keys``: a raw array (``[]`` clears) or ``{"items": [...]}`` (non-empty)."""
    try:
        keys = _items(await read_json(request, unreadable="failed to read body"))
        if not all(isinstance(k, str) for k in keys):
            raise BadBody()
        change = _api_keys_change(keys)
    except Refusal as refusal:
        return refusal.response()
    return await commit(request, lambda _config: change, "api-keys")


async def patch_api_keys(request: web.Request) -> web.StreamResponse:
    """``PATCH /api-keys``: ``{"index", "value"}`` replaces; ``{"old", "new"}`` replaces the first match or appends."""
    try:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadBody()
        index = _optional(body, "index", int)
        value = _optional(body, "value", str)
        old = _optional(body, "old", str)
        new = _optional(body, "new", str)
    except Refusal as refusal:
        return refusal.response()

    def operation(config: Config) -> Changes:
        keys = list(config.api_keys)
        if index is not None and value is not None and 0 <= index < len(keys):
            keys[index] = value
        elif old is not None and new is not None:
            if old in keys:
                keys[keys.index(old)] = new
            else:
                keys.append(new)
        else:
            raise BadBody("missing fields")
        return _api_keys_change(keys)

    return await commit(request, operation, "api-keys")


async def delete_api_keys(request: web.Request) -> web.StreamResponse:
    """``DELETE /api-keys?index=N`` or ``?value=k`` (removes every match; ok when none)."""
    value = request.query.get("value", "").strip()

    def operation(config: Config) -> Changes:
        keys = list(config.api_keys)
        index = _query_index(request, len(keys))
        if index is not None:
            del keys[index]
        elif value:
            keys = [k for k in keys if k.strip() != value]
        else:
            raise BadBody("missing index or value")
        return _api_keys_change(keys)

    return await commit(request, operation, "api-keys")


# -------------------------------------------------------------------------------------- object lists


@attrs.frozen
class ObjectList:
    """One list of objects: its key, entry spec, PATCH-able fields and the reference's per-list rules."""

    name: str
    spec: dict[str, Spec]
    patchable: tuple[str, ...]
    delete_when_blank: tuple[str, ...] = ()
    match_field: str = "api-key"
    match_param: str = "match"
    delete_param: str = "api-key"
    missing_delete_404: bool = False
    drop_blank_models: bool = False
    require_api_key: bool = False

    @property
    def attr(self) -> str:
        """The :class:`Config` attribute."""
        return self.name.replace("-", "_")


_PATCH_COMMON = ("api-key", "prefix", "base-url", "proxy-url", "headers", "excluded-models", "weight")
_PATCH_RULED = (*_PATCH_COMMON, "request-scoped-errors")

OBJECT_LISTS: tuple[ObjectList, ...] = (
    ObjectList("gemini-api-key", _RULED, _PATCH_RULED, delete_when_blank=("api-key",), missing_delete_404=True),
    ObjectList("claude-api-key", {**_RULED, "cloak": _CLOAK}, (*_PATCH_RULED, "models"), drop_blank_models=True),
    ObjectList("codex-api-key", {**_RULED, "websockets": "bool"}, (*_PATCH_RULED, "models"),
               delete_when_blank=("base-url",)),
    ObjectList("vertex-api-key", _COMMON, (*_PATCH_COMMON, "models"), delete_when_blank=("api-key", "base-url"),
               require_api_key=True),
    ObjectList("openai-compatibility", _OPENAI,
               ("name", "prefix", "base-url", "api-key-entries", "models", "headers", "request-scoped-errors"),
               delete_when_blank=("base-url",), match_field="name", match_param="name", delete_param="name"),
)


_LISTED_MODELS = ("claude-api-key", "codex-api-key", "openai-compatibility")  # `models` written even when empty


def _identity(kind: ObjectList, entry: Mapping[str, Any]) -> str:
    return str(entry.get(kind.match_field, "")).strip()


def _entries_change(kind: ObjectList, entries: list[dict[str, Any]], config: Config | None = None) -> Changes:
    """The list written back. An entry new to the list (by key, or name for compat providers) of a claude,
    codex or compat list is written whole, `models: []` included, as the reference writes a new list node
    (so its `models` reads back as `[]`, while entries already in the file keep an absent `models`)."""
    if config is not None and kind.name in _LISTED_MODELS:
        known = {_identity(kind, e) for e in _current(kind, config)}
        for entry in entries:
            if "models" not in entry and _identity(kind, entry) not in known:
                entry["models"] = []
    if kind.drop_blank_models:
        for entry in entries:
            if "models" in entry:
                entry["models"] = [m for m in entry["models"] if m.get("name") or m.get("alias")]
    loaded = sanitized({kind.name: entries})
    return {(kind.name,): [yaml_plain(e) for e in getattr(loaded, kind.attr)]}


def _current(kind: ObjectList, config: Config) -> list[dict[str, Any]]:
    return [yaml_plain(e) for e in getattr(config, kind.attr)]


_CREDENTIAL_KINDS = {"gemini-api-key": "gemini", "claude-api-key": "claude", "codex-api-key": "codex",
                     "vertex-api-key": "vertex"}


def _with_auth_index(kind: ObjectList, config: Config, entries: list[dict[str, Any]] | None) -> Any:
    """The list as the recorded reference build shows it: each key with its `auth-index` (the stable index of
    the credential it makes, proxyd/credentials/index.py); an OpenAI-compatible provider per key entry, or on
    the provider itself when it has no key entries."""
    if not entries:
        return entries
    credentials = credentials_from_config(config)
    if kind.name == "openai-compatibility":
        compat = iter(c for c in credentials if c.kind == "openai-compatibility")
        for provider, entry in zip(config.openai_compatibility, entries, strict=False):
            if provider.api_key_entries:
                for key_entry in entry.get("api-key-entries") or []:
                    key_entry["auth-index"] = auth_index_of(next(compat))
            else:
                entry["auth-index"] = auth_index_of(next(compat))
        return entries
    made = [c for c in credentials if c.kind == _CREDENTIAL_KINDS[kind.name]]
    for entry, credential in zip(entries, made, strict=False):
        entry["auth-index"] = auth_index_of(credential)
    return entries


def _object_get(kind: ObjectList) -> Handler:
    async def get(request: web.Request) -> web.StreamResponse:
        config = request.app[CONFIG_STORE].current
        return web.json_response({kind.name: _with_auth_index(kind, config, config_json(config)[kind.name])})

    return get


def _object_put(kind: ObjectList) -> Handler:
    async def put(request: web.Request) -> web.StreamResponse:
        try:
            items = _items(await read_json(request, unreadable="failed to read body"))
            entries = [_coerce(kind.spec, item) for item in items]
            if kind.require_api_key:
                for i, entry in enumerate(entries):
                    if not entry.get("api-key"):
                        raise BadBody(f"{kind.name}[{i}].api-key is required")
            _entries_change(kind, [dict(e) for e in entries])  # refuse a bad list before taking the lock
        except Refusal as refusal:
            return refusal.response()
        return await commit(request, lambda config: _entries_change(kind, entries, config), kind.name)

    return put


def _object_patch(kind: ObjectList) -> Handler:
    patch_spec = {k: kind.spec[k] for k in kind.patchable}

    async def patch(request: web.Request) -> web.StreamResponse:
        try:
            body = await read_json(request)
            if not isinstance(body, dict) or not isinstance(body.get("value"), dict):
                raise BadBody()
            index = _optional(body, "index", int)
            match = _optional(body, kind.match_param, str)
            changes = _coerce(patch_spec, body["value"])
        except Refusal as refusal:
            return refusal.response()

        def operation(config: Config) -> Changes:
            entries = _current(kind, config)
            target: int | None = None
            if index is not None and 0 <= index < len(entries):
                target = index
            elif match is not None:
                wanted = match.strip()
                target = next((i for i, e in enumerate(entries)
                               if str(e.get(kind.match_field, "")).strip() == wanted), None)
            if target is None:
                raise Refusal(404, {"error": "item not found"})
            entry = {**entries[target], **changes}
            if any(not entry.get(field) for field in kind.delete_when_blank):
                del entries[target]
            else:
                entries[target] = entry
            return _entries_change(kind, entries, config)

        return await commit(request, operation, kind.name)

    return patch


def _object_delete(kind: ObjectList) -> Handler:
    async def delete(request: web.Request) -> web.StreamResponse:
        wanted = request.query.get(kind.delete_param, "").strip()

        def operation(config: Config) -> Changes:
            entries = _current(kind, config)
            if wanted:
                kept = [e for e in entries if str(e.get(kind.match_field, "")) != wanted]
                if len(kept) == len(entries) and kind.missing_delete_404:
                    raise Refusal(404, {"error": "item not found"})
                return _entries_change(kind, kept)
            index = _query_index(request, len(entries))
            if index is None:
                raise BadBody(f"missing {kind.delete_param} or index")
            del entries[index]
            return _entries_change(kind, entries)

        return await commit(request, operation, kind.name)

    return delete


# ----------------------------------------------------------------------------- oauth-excluded-models


def _excluded_change(mapping: Mapping[str, list[str]]) -> Changes:
    loaded = sanitized({"oauth-excluded-models": dict(mapping)})
    value = {k: list(v) for k, v in loaded.oauth_excluded_models.items()}
    return {("oauth-excluded-models",): value or REMOVE}


def _excluded_map(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise BadBody()
    out: dict[str, list[str]] = {}
    for channel, models in value.items():
        if models is None:
            continue
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise BadBody()
        out[channel] = models
    return out


async def get_excluded(request: web.Request) -> web.StreamResponse:
    """``GET /oauth-excluded-models``."""
    current = request.app[CONFIG_STORE].current.oauth_excluded_models
    return web.json_response({"oauth-excluded-models": {k: list(v) for k, v in sorted(current.items())} or None})


async def put_excluded(request: web.Request) -> web.StreamResponse:
    """``PUT /oauth-excluded-models``: the whole map (raw or ``{"items": {...}}``); ``{}`` clears."""
    try:
        change = _excluded_change(_excluded_map(_items(await read_json(request), dict)))
    except Refusal as refusal:
        return refusal.response()
    return await commit(request, lambda _config: change, "oauth-excluded-models")


async def patch_excluded(request: web.Request) -> web.StreamResponse:
    """``PATCH /oauth-excluded-models`` ``{"provider": "claude", "models": [...]}``; an empty list removes it."""
    try:
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("provider"), str):
            raise BadBody()
        provider = body["provider"].strip().lower()
        if not provider:
            raise BadBody("invalid provider")
        models = _optional(body, "models", list) or []
        if not all(isinstance(m, str) for m in models):
            raise BadBody()
    except Refusal as refusal:
        return refusal.response()

    def operation(config: Config) -> Changes:
        mapping = {k: list(v) for k, v in config.oauth_excluded_models.items()}
        normalized = list(normalize_excluded(models))
        if normalized:
            mapping[provider] = normalized
        elif provider in mapping:
            del mapping[provider]
        else:
            raise Refusal(404, {"error": "provider not found"})
        return _excluded_change(mapping)

    return await commit(request, operation, "oauth-excluded-models")


async def delete_excluded(request: web.Request) -> web.StreamResponse:
    """``DELETE /oauth-excluded-models?provider=claude``."""
    provider = request.query.get("provider", "").strip().lower()
    if not provider:
        return web.json_response({"error": "missing provider"}, status=400)

    def operation(config: Config) -> Changes:
        mapping = {k: list(v) for k, v in config.oauth_excluded_models.items()}
        if provider not in mapping:
            raise Refusal(404, {"error": "provider not found"})
        del mapping[provider]
        return _excluded_change(mapping)

    return await commit(request, operation, "oauth-excluded-models")


# --------------------------------------------------------------------------------- oauth-model-alias

_ALIAS: Spec = {"name": "str", "alias": "str", "fork": "bool"}


def _alias_change(mapping: Mapping[str, list[dict[str, Any]]]) -> Changes:
    loaded = sanitized({"oauth-model-alias": dict(mapping)})
    return {("oauth-model-alias",): {k: [yaml_plain(a) for a in v] for k, v in loaded.oauth_model_alias.items()}}


def _alias_map(value: Any) -> dict[str, list[dict[str, Any]]]:
    if not isinstance(value, dict):
        raise BadBody()
    return {str(k): _coerce(("list", _ALIAS), v) for k, v in value.items() if v is not None}


def _current_aliases(config: Config) -> dict[str, list[dict[str, Any]]]:
    return {k: [yaml_plain(a) for a in v] for k, v in config.oauth_model_alias.items()}


async def get_aliases(request: web.Request) -> web.StreamResponse:
    """``GET /oauth-model-alias``."""
    view = config_json(request.app[CONFIG_STORE].current).get("oauth-model-alias")
    return web.json_response({"oauth-model-alias": view or None})


async def put_aliases(request: web.Request) -> web.StreamResponse:
    """``PUT /oauth-model-alias``: the whole map (raw or ``{"items": {...}}``), sanitized as on load."""
    try:
        change = _alias_change(_alias_map(_items(await read_json(request), dict)))
    except Refusal as refusal:
        return refusal.response()
    return await commit(request, lambda _config: change, "oauth-model-alias")


async def patch_aliases(request: web.Request) -> web.StreamResponse:
    """``PATCH /oauth-model-alias`` ``{"channel": "codex", "aliases": [...]}`` (``provider`` = ``channel``)."""
    try:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadBody()
        raw_channel = body.get("channel") if body.get("channel") is not None else body.get("provider")
        if raw_channel is not None and not isinstance(raw_channel, str):
            raise BadBody()
        channel = (raw_channel or "").strip().lower()
        if not channel:
            raise BadBody("invalid channel")
        aliases = _coerce(("list", _ALIAS), body.get("aliases") or [])
    except Refusal as refusal:
        return refusal.response()

    def operation(config: Config) -> Changes:
        mapping = _current_aliases(config)
        kept = sanitized({"oauth-model-alias": {channel: aliases}}).oauth_model_alias.get(channel, ())
        if kept:
            mapping[channel] = [yaml_plain(a) for a in kept]
        elif channel in mapping:
            del mapping[channel]
        else:
            raise Refusal(404, {"error": "channel not found"})
        return _alias_change(mapping)

    return await commit(request, operation, "oauth-model-alias")


async def delete_aliases(request: web.Request) -> web.StreamResponse:
    """``DELETE /oauth-model-alias?channel=codex`` (or ``?provider=``)."""
    channel = (request.query.get("channel") or request.query.get("provider") or "").strip().lower()
    if not channel:
        return web.json_response({"error": "missing channel"}, status=400)

    def operation(config: Config) -> Changes:
        mapping = _current_aliases(config)
        if channel not in mapping:
            raise Refusal(404, {"error": "channel not found"})
        del mapping[channel]
        return _alias_change(mapping)

    return await commit(request, operation, "oauth-model-alias")


# -------------------------------------------------------------------------------------------- routes


def route_defs(prefix: str, wrap: Wrap) -> list[web.AbstractRouteDef]:
    """The route definitions of this module, each handler wrapped by ``wrap`` (the management guard)."""

    def crud(path: str, get: Handler, put: Handler, patch: Handler, delete: Handler) -> list[web.AbstractRouteDef]:
        url = f"{prefix}/{path}"
        return [web.get(url, wrap(get), allow_head=False), web.put(url, wrap(put)), web.patch(url, wrap(patch)),
                web.delete(url, wrap(delete))]

    defs = crud("api-keys", get_api_keys, put_api_keys, patch_api_keys, delete_api_keys)
    for kind in OBJECT_LISTS:
        defs += crud(kind.name, _object_get(kind), _object_put(kind), _object_patch(kind), _object_delete(kind))
    defs += crud("oauth-excluded-models", get_excluded, put_excluded, patch_excluded, delete_excluded)
    defs += crud("oauth-model-alias", get_aliases, put_aliases, patch_aliases, delete_aliases)
    return defs
