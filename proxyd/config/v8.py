"""Translate the nested ``config-version: 8`` layout of newer CLIProxyAPI releases to the flat one.

proxyd implements the v6.9.0 (flat) surface. Newer reference releases write a nested layout
(``server.host``, ``access.api-keys``, ``routing.retry.request-retry``, ``api-keys.gemini[].keys[]``,
…). Such a file is mapped onto the flat keys before validation so it loads unchanged; the
document on disk keeps its own layout. Settings with no v6.9.0 equivalent are reported as
warnings and ignored. Problem paths of translated keys point back to the nested location.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxyd.config.model import config_yaml_keys

__all__ = ["translate_v8"]

PathT = tuple[str | int, ...]

_FLAT_KEYS = frozenset(config_yaml_keys()) - {"config-version", "api-keys", "routing"}
# Sections whose leaves are flat keys wherever they sit (e.g. routing.retry.request-retry).
_GENERIC_SECTIONS = ("server", "access", "requests", "routing", "observability", "oauth", "logging")
_FAMILIES = {
    "gemini": "gemini-api-key",
    "codex": "codex-api-key",
    "claude": "claude-api-key",
    "vertex": "vertex-api-key",
    "openai-compatibility": "openai-compatibility",
}
_HEADER_DEFAULTS = {"claude": "claude-header-defaults", "codex": "codex-header-defaults"}
_UNSUPPORTED = "not supported by proxyd (config-version 8 layout); ignored"


def translate_v8(root: Mapping[Any, Any]) -> tuple[dict[str, Any], dict[PathT, str], list[tuple[PathT, str]]]:
    """Return ``(flat mapping, path aliases, warnings)`` for a nested-layout document."""
    flat: dict[str, Any] = {}
    aliases: dict[PathT, str] = {}
    notes: list[tuple[PathT, str]] = []

    def put(key: str, value: Any, origin: str) -> None:
        flat[key] = value
        aliases[(key,)] = origin

    def generic(node: Mapping[Any, Any], origin: str, section: str) -> None:
        for k, v in node.items():
            key = str(k)
            where = f"{origin}.{key}"
            if section == "routing" and key == "strategy":
                flat.setdefault("routing", {})["strategy"] = v
                aliases[("routing", "strategy")] = where
            elif key == "api-keys" and section == "access":
                put("api-keys", v, where)
            elif key in _FLAT_KEYS:
                put(key, v, where)
            elif key == "providers" and section == "oauth" and isinstance(v, Mapping):
                upstream(v, where)
            elif isinstance(v, Mapping):
                generic(v, where, section)
            else:
                notes.append(((where,), _UNSUPPORTED))

    def upstream(node: Mapping[Any, Any], origin: str) -> None:
        for provider, settings in node.items():
            where = f"{origin}.{provider}"
            if not isinstance(settings, Mapping):
                notes.append(((where,), _UNSUPPORTED))
                continue
            for k, v in settings.items():
                target = _HEADER_DEFAULTS.get(str(provider))
                if str(k) == "header-defaults" and target is not None:
                    put(target, v, f"{where}.header-defaults")
                else:
                    notes.append(((f"{where}.{k}",), _UNSUPPORTED))

    def provider_lists(node: Mapping[Any, Any], origin: str) -> None:
        for family, entries in node.items():
            where = f"{origin}.{family}"
            target = _FAMILIES.get(str(family))
            if target is None:
                notes.append(((where,), _UNSUPPORTED))
                continue
            if not isinstance(entries, list):
                put(target, entries, where)  # let the validator report the type error
                continue
            out: list[Any] = []
            for i, entry in enumerate(entries):
                if not isinstance(entry, Mapping):
                    aliases[(target, len(out))] = f"{where}[{i}]"
                    out.append(entry)
                    continue
                base = {str(k): v for k, v in entry.items() if str(k) not in ("keys", "name")}
                keys = entry.get("keys")
                if target == "openai-compatibility":
                    item = dict(base)
                    if "name" in entry:
                        item["name"] = entry["name"]
                    if keys is not None:
                        item["api-key-entries"] = keys
                    aliases[(target, len(out))] = f"{where}[{i}]"
                    out.append(item)
                    continue
                key_list = keys if isinstance(keys, list) and keys else [None]
                for j, key in enumerate(key_list):
                    item = dict(base)
                    if isinstance(key, Mapping):
                        item.update({str(k): v for k, v in key.items()})
                        aliases[(target, len(out))] = f"{where}[{i}].keys[{j}]"
                    else:
                        aliases[(target, len(out))] = f"{where}[{i}]"
                    out.append(item)
            flat[target] = out
            aliases[(target,)] = where

    for k, v in root.items():
        key = str(k)
        if key == "config-version":
            continue
        if key == "api-keys" and isinstance(v, Mapping):
            provider_lists(v, key)
        elif key == "management" and isinstance(v, Mapping):
            flat["remote-management"] = v
            aliases[("remote-management",)] = key
        elif key == "upstream" and isinstance(v, Mapping):
            upstream(v, key)
        elif key in _GENERIC_SECTIONS and isinstance(v, Mapping):
            generic(v, key, key)
        else:
            flat[key] = v  # flat keys written at the top level, or unknown sections (→ Config.extra)
    return flat, aliases, notes
