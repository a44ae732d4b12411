"""Build credentials from the provider lists in config.yaml (routing.md §3.2, §5.2, §3.10)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from proxyd.config import Config, ModelAlias
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


def _api_key_credentials(entries: Sequence[_KeyEntry], *, family: str, kind: str, provider: str,
                         protocol: WireProtocol, section: str, owned_by: str, default_base: str,
                         id_parts: str, config: Config, seen: Counter[str],
                         extra: Mapping[str, Any] | None = None) -> Iterator[Credential]:
    for index, entry in enumerate(entries):
        base = (entry.base_url or default_base).rstrip("/")
        proxy = entry.proxy_url or config.proxy_url
        if id_parts == "key-base-proxy":
            parts = [entry.api_key, entry.base_url, entry.proxy_url]
        else:  # the reference's current form: key, base, proxy, prefix, sorted headers (matches its recordings)
            parts = [entry.api_key, entry.base_url, entry.proxy_url, entry.prefix, _sorted_headers(entry.headers)]
        cid = _unique(seen, credential_id(f"{provider}:apikey", *parts))
        yield Credential(
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


def openai_compat_credentials(config: Config, seen: Counter[str]) -> Iterator[Credential]:
    """One credential per `api-key-entries` element of each `openai-compatibility` provider (or one keyless)."""
    for index, entry in enumerate(config.openai_compatibility):
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
            cid = _unique(seen, credential_id(kind, *parts))
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


def iter_credentials(config: Config) -> Iterator[Credential]:
    """Every credential the config defines, in config order, with the reference's stable ids (one at a time:
    a reload builds thousands in slices between requests)."""
    seen: Counter[str] = Counter()
    yield from _api_key_credentials(
        config.gemini_api_key, family="gemini", kind="gemini", provider="gemini", protocol=WireProtocol.GEMINI,
        section="gemini", owned_by="google", default_base="https://generativelanguage.googleapis.com",
        id_parts="key-base", config=config, seen=seen)
    yield from _api_key_credentials(
        config.vertex_api_key, family="vertex", kind="vertex", provider="vertex", protocol=WireProtocol.GEMINI,
        section="vertex", owned_by="google", default_base="https://aiplatform.googleapis.com",
        id_parts="key-base-proxy", config=config, seen=seen)
    for index, entry in enumerate(config.claude_api_key):
        yield from _api_key_credentials(
            [entry], family="claude", kind="claude", provider="claude", protocol=WireProtocol.CLAUDE,
            section="claude", owned_by="anthropic", default_base="https://api.anthropic.com",
            id_parts="key-base", config=config, seen=seen,
            extra={"cloak": entry.cloak, "index": index})
    for entry in config.codex_api_key:
        yield from _api_key_credentials(
            [entry], family="codex", kind="codex", provider="codex", protocol=WireProtocol.OPENAI_RESPONSES,
            section="codex-pro", owned_by="openai", default_base="", id_parts="key-base", config=config,
            seen=seen, extra={"websockets": entry.websockets})
    yield from openai_compat_credentials(config, seen)


def credentials_from_config(config: Config) -> list[Credential]:
    """Every credential the config defines, in config order, with the reference's stable ids."""
    return list(iter_credentials(config))
