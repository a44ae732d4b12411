"""The uniform credential record every provider kind is turned into."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from proxyd.credentials.index import stable_index
from proxyd.protocols.base import WireProtocol

if TYPE_CHECKING:
    from proxyd.config import RequestScopedErrorRule


@attrs.frozen
class ModelMapping:
    """One upstream model a credential serves, the id clients use for it, and its catalogue metadata."""

    upstream: str
    exposed: str
    info: Mapping[str, Any] | None = attrs.field(default=None, eq=False, repr=False)
    user_defined: bool = False  # listed in the config's `models:` rather than taken from the catalogue


@attrs.frozen
class Credential:
    """One upstream account/key with everything needed to call it. Secrets stay out of repr."""

    id: str
    kind: str
    provider: str
    protocol: WireProtocol
    base_url: str
    api_key: str = attrs.field(default="", repr=False)
    proxy_url: str = ""
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    prefix: str = ""
    priority: int = 0
    models: tuple[ModelMapping, ...] = ()
    owned_by: str = ""
    source: str = ""
    options: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)  # kind-specific extras
    auth_index: str = ""  # the stable 16-hex id of proxyd/credentials/index.py ("" = derived from `id`)
    weight: int = 1  # share under `routing.strategy: weighted-round-robin`; 0 leaves it out there
    scoped_errors: tuple[RequestScopedErrorRule, ...] = attrs.field(default=(), eq=False, repr=False)


def auth_index_of(credential: Credential) -> str:
    """The credential's `auth_index` (management API, usage details, `X-Cpa-Trace-Id`)."""
    return credential.auth_index or stable_index(f"id:{credential.id}")


def credential_id(kind: str, *parts: str) -> str:
    """The reference's stable id: `<kind>:<first 12 hex of sha256(kind, NUL-prefixed trimmed parts)>`."""
    digest = hashlib.sha256(kind.encode())
    for part in parts:
        digest.update(b"\x00" + part.strip().encode())
    return f"{kind}:{digest.hexdigest()[:12]}"
