"""Build credentials from the provider lists in config.yaml (routing.md §3.2, §5.2, §3.10)."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import attrs

from proxyd.config import Config, ModelAlias, OpenAICompatibility
from proxyd.credentials.index import config_key_index
from proxyd.credentials.model import Credential, ModelMapping, credential_id
from proxyd.models import catalog
from proxyd.protocols.base import WireProtocol


class _KeyEntry(Protocol):
    api_key: str
    priority: int
    prefix: str
    base_url: str
    proxy_url: str
    headers: dict[str, str]
    models: tuple[ModelAlias, ...] | None
    excluded_models: tuple[str, ...]
    weight: int


def wildcard_match(value: str, pattern: str) -> bool:
    """`*` matches any run of characters (including none); every other character is literal."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return value == pattern
    head, tail = parts[0], parts[-1]
    start, end = len(head), len(value) - len(tail)
    if end < start or not value.startswith(head) or not value.endswith(tail):
        return False
    for middle in parts[1:-1]:
        found = value.find(middle, start, end)
        if found < 0:
            return False
        start = found + len(middle)
    return True


def is_excluded(model_id: str, patterns: Iterable[str]) -> bool:
    """Case-insensitive match against `excluded-models` patterns (already lower-cased by the config loader)."""
    lowered = model_id.lower()
    return any(wildcard_match(lowered, pattern) for pattern in patterns)


def _sorted_headers(headers: Mapping[str, str]) -> str:
    """The reference's id form of custom headers: `name NUL value NUL` per header, names sorted."""
    return "".join(f"{k}\x00{v}\x00" for k, v in sorted(headers.items()))


def _unique(seen: Counter[str], base: str) -> str:
    seen[base] += 1
    n = seen[base] - 1
    return base if n == 0 else f"{base}-{n}"


def _mappings(configured: Sequence[ModelAlias] | None, default_section: str, excluded: Iterable[str],
              owned_by: str, kind_type: str) -> tuple[ModelMapping, ...]:
    patterns = tuple(excluded)
    out: list[ModelMapping] = []
    if configured:
        for m in configured:
            if not m.name or is_excluded(m.name, patterns):
                continue
            info = dict(catalog.find(m.name) or {})
            info.update({"owned_by": owned_by, "type": kind_type})
            out.append(ModelMapping(upstream=m.name, exposed=m.alias or m.name, info=info, user_defined=True))
        return tuple(out)
    for entry in catalog.section(default_section):
        model_id = str(entry["id"])
        if not is_excluded(model_id, patterns):
            out.append(ModelMapping(upstream=model_id, exposed=model_id, info=entry))
    return tuple(out)


# Makes a credential id unique among those built so far (the reference's `-1`, `-2`… suffixes).
Unique = Callable[[str], str]


def _api_key_credential(entry: _KeyEntry, index: int, *, family: str, kind: str, provider: str,
                        protocol: WireProtocol, section: str, owned_by: str, default_base: str, id_parts: str,
                        config: Config, unique: Unique, extra: Mapping[str, Any] | None = None) -> Credential:
    base = (entry.base_url or default_base).rstrip("/")
    proxy = entry.proxy_url or config.proxy_url
    if id_parts == "key-base-proxy":
        parts = [entry.api_key, entry.base_url, entry.proxy_url]
    else:  # the reference's current form: key, base, proxy, prefix, sorted headers (matches its recordings)
        parts = [entry.api_key, entry.base_url, entry.proxy_url, entry.prefix, _sorted_headers(entry.headers)]
    cid = unique(credential_id(f"{provider}:apikey", *parts))
    return Credential(
        id=cid,
        kind=kind,
        provider=provider,
        protocol=protocol,
        base_url=base,
        api_key=entry.api_key,
        proxy_url=proxy,
        headers=dict(entry.headers),
        prefix=entry.prefix,
        priority=entry.priority,
        models=_mappings(entry.models, section, entry.excluded_models, owned_by, provider),
        owned_by=owned_by,
        source=f"config:{family}[{index}]",
        options=dict(extra or {}),
        auth_index=config_key_index(family, entry.base_url, entry.api_key, cid),
        weight=entry.weight,
        scoped_errors=tuple(getattr(entry, "request_scoped_errors", ())),  # vertex keys have none
    )


def _openai_compat_credentials(entry: OpenAICompatibility, index: int, config: Config,
                               unique: Unique) -> Iterator[Credential]:
    """One credential per `api-key-entries` element of an `openai-compatibility` provider (or one keyless)."""
    provider = (entry.name or "openai-compatibility").strip().lower()
    kind = f"openai-compatibility:{provider}"
    models = tuple(
        ModelMapping(upstream=m.name, exposed=m.alias or m.name, user_defined=True,
                     info={"owned_by": entry.name or provider, "type": "openai-compatibility"})
        for m in entry.models or () if m.name
    )
    keys = list(entry.api_key_entries) or [None]
    for key_entry in keys:
        api_key = key_entry.api_key if key_entry is not None else ""
        proxy_url = (key_entry.proxy_url if key_entry is not None else "") or config.proxy_url
        parts = (api_key, entry.base_url, proxy_url) if key_entry is not None else (entry.base_url,)
        cid = unique(credential_id(kind, *parts))
        yield Credential(
            id=cid,
            kind="openai-compatibility",
            provider=provider,
            protocol=WireProtocol.OPENAI_CHAT,
            base_url=entry.base_url.rstrip("/"),
            api_key=api_key,
            proxy_url=proxy_url,
            headers=dict(entry.headers),
            prefix=entry.prefix,
            priority=entry.priority,
            models=models,
            owned_by=entry.name or provider,
            source=f"config:openai-compatibility[{index}]",
            auth_index=config_key_index("openai-compatibility", entry.base_url, api_key, cid),
            weight=key_entry.weight if key_entry is not None else 1,
            scoped_errors=entry.request_scoped_errors,
        )


# The credentials of one config entry: (list, position) → a function of the id-uniquing callback.
_EntryBuild = Callable[[Unique], Iterator[Credential]]


def _entries(config: Config) -> Iterator[tuple[tuple[str, int], object, _EntryBuild]]:
    """Every provider entry of the config in credential order: its place, the entry and its credential build."""
    for family, entries, spec in (
        ("gemini", config.gemini_api_key, {
            "kind": "gemini", "provider": "gemini", "protocol": WireProtocol.GEMINI, "section": "gemini",
            "owned_by": "google", "default_base": "https://generativelanguage.googleapis.com",
            "id_parts": "key-base"}),
        ("vertex", config.vertex_api_key, {
            "kind": "vertex", "provider": "vertex", "protocol": WireProtocol.GEMINI, "section": "vertex",
            "owned_by": "google", "default_base": "https://aiplatform.googleapis.com",
            "id_parts": "key-base-proxy"}),
    ):
        for index, entry in enumerate(entries):
            yield (family, index), entry, functools.partial(_one, entry, index, family, spec, config)
    for index, claude in enumerate(config.claude_api_key):  # the reference numbers each as the only one (`[0]`)
        spec = {"kind": "claude", "provider": "claude", "protocol": WireProtocol.CLAUDE, "section": "claude",
                "owned_by": "anthropic", "default_base": "https://api.anthropic.com", "id_parts": "key-base",
                "extra": {"cloak": claude.cloak, "index": index}}
        yield ("claude", index), claude, functools.partial(_one, claude, 0, "claude", spec, config)
    for index, codex in enumerate(config.codex_api_key):
        spec = {"kind": "codex", "provider": "codex", "protocol": WireProtocol.OPENAI_RESPONSES,
                "section": "codex-pro", "owned_by": "openai", "default_base": "", "id_parts": "key-base",
                "extra": {"websockets": codex.websockets}}
        yield ("codex", index), codex, functools.partial(_one, codex, 0, "codex", spec, config)
    for index, compat in enumerate(config.openai_compatibility):
        yield (("openai-compatibility", index), compat,
               functools.partial(_openai_compat_credentials, compat, index, config))


def _one(entry: _KeyEntry, index: int, family: str, spec: dict[str, Any], config: Config,
         unique: Unique) -> Iterator[Credential]:
    yield _api_key_credential(entry, index, family=family, config=config, unique=unique, **spec)


@attrs.frozen
class EntryCredentials:
    """The credentials one config entry made, with what they were made from (reused while it is unchanged)."""

    entry: object
    proxy_url: str  # the config's global proxy, a fallback of every entry's
    base_ids: tuple[str, ...]  # the ids before `_unique`
    credentials: tuple[Credential, ...]


# (list, position) → what that entry made; kept by the runtime for the next reload.
EntryCache = Mapping[tuple[str, int], EntryCredentials]


def _reusable(seen: Counter[str], made: EntryCredentials) -> bool:
    """Give `made`'s base ids their suffixes in this build; True when they come out as before (else undone)."""
    ids = [_unique(seen, base) for base in made.base_ids]
    if all(i == c.id for i, c in zip(ids, made.credentials, strict=True)):
        return True
    for base in made.base_ids:
        seen[base] -= 1
    return False


def iter_credentials(config: Config, previous: EntryCache | None = None,
                     record: dict[tuple[str, int], EntryCredentials] | None = None) -> Iterator[Credential]:
    """Every credential the config defines, in config order, with the reference's stable ids (one at a time:
    a reload builds thousands in slices between requests).

    `previous` is a former build's `record`: an entry that is the very same object at the same place (a reload
    carries unchanged entries over, proxyd/config/share.py) gives its former credentials again, the same
    objects. `record` receives this build's entries.
    """
    seen: Counter[str] = Counter()
    for place, entry, build in _entries(config):
        made = previous.get(place) if previous else None
        if made is not None and made.entry is entry and made.proxy_url == config.proxy_url \
                and _reusable(seen, made):
            if record is not None:
                record[place] = made
            yield from made.credentials
            continue
        bases: list[str] = []

        def unique(base: str, bases: list[str] = bases) -> str:
            bases.append(base)
            return _unique(seen, base)

        built: list[Credential] = []
        for credential in build(unique):  # one at a time: the caller may pause between two
            built.append(credential)
            yield credential
        if record is not None:
            record[place] = EntryCredentials(entry, config.proxy_url, tuple(bases), tuple(built))


def credentials_from_config(config: Config) -> list[Credential]:
    """Every credential the config defines, in config order, with the reference's stable ids."""
    return list(iter_credentials(config))
