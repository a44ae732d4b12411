"""Build credentials from the provider lists in config.yaml."""

from __future__ import annotations

from collections import Counter

from proxyd.config import Config
from proxyd.credentials.model import Credential, ModelMapping, credential_id
from proxyd.protocols.base import WireProtocol


def _unique(ids: Counter[str], base: str) -> str:
    ids[base] += 1
    n = ids[base] - 1
    return base if n == 0 else f"{base}-{n}"


def openai_compat_credentials(config: Config, seen: Counter[str]) -> list[Credential]:
    """One credential per `api-key-entries` element of each `openai-compatibility` provider (or one keyless)."""
    out: list[Credential] = []
    for index, entry in enumerate(config.openai_compatibility):
        provider = (entry.name or "openai-compatibility").strip().lower()
        kind = f"openai-compatibility:{provider}"
        models = tuple(ModelMapping(upstream=m.name, exposed=m.alias or m.name) for m in entry.models if m.name)
        keys = list(entry.api_key_entries) or [None]
        for key_entry in keys:
            api_key = key_entry.api_key if key_entry is not None else ""
            proxy_url = (key_entry.proxy_url if key_entry is not None else "") or config.proxy_url
            parts = (api_key, entry.base_url, proxy_url) if key_entry is not None else (entry.base_url,)
            out.append(
                Credential(
                    id=_unique(seen, credential_id(kind, *parts)),
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
                )
            )
    return out


def credentials_from_config(config: Config) -> list[Credential]:
    """Every credential the config defines, in config order, with stable ids."""
    seen: Counter[str] = Counter()
    return openai_compat_credentials(config, seen)
