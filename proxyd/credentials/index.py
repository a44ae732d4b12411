"""The stable `auth_index` of a credential: the 16-hex id the management API, usage details and the
`X-Cpa-Trace-Id` response header name a credential by.

Config API keys hash their family, base URL and key the way the recorded reference build does
(`claude-api-key:<base-url>+<api-key>`, so one key keeps its index whatever its prefix, priority or models);
auth files keep management.md §4.6's `file:<name>`; anything else hashes its id.
"""

from __future__ import annotations

import hashlib

# Config list → the seed prefix of its keys. Vertex keys (no prefix in the reference) hash their id.
_KEY_SEED_PREFIXES = {
    "gemini": "gemini-api-key",
    "claude": "claude-api-key",
    "codex": "codex-api-key",
    "openai-compatibility": "openai-compatibility",
}


def stable_index(seed: str) -> str:
    """First 8 bytes of sha256(seed) as hex; `""` for an empty seed."""
    seed = seed.strip()
    if not seed:
        return ""
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


def config_key_index(family: str, base_url: str, api_key: str, credential_id: str) -> str:
    """The index of a config API-key credential: `base_url` is the entry's own (trimmed, not defaulted)."""
    prefix = _KEY_SEED_PREFIXES.get(family, "")
    if prefix and api_key.strip():
        return stable_index(f"{prefix}:{base_url.strip()}+{api_key.strip()}")
    return stable_index(f"id:{credential_id}")


def file_index(name: str) -> str:
    """The index of an auth-dir file credential (management.md §4.6)."""
    return stable_index(f"file:{name}")


__all__ = ["config_key_index", "file_index", "stable_index"]
