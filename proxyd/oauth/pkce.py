"""PKCE (RFC 7636, S256) and the random states of the login flows (routing.md §3.4)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time

import attrs

__all__ = ["PKCE", "challenge_of", "hex_state", "nanos_state"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def challenge_of(verifier: str) -> str:
    """The S256 code challenge of a verifier: base64url(sha256(verifier)) without padding."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


@attrs.frozen(repr=False)
class PKCE:
    """A code verifier and its S256 challenge (the verifier never appears in a repr or a log)."""

    verifier: str
    challenge: str

    @classmethod
    def generate(cls, nbytes: int = 96) -> PKCE:
        """Claude and Codex use 96 random bytes, Qwen 32."""
        verifier = _b64url(secrets.token_bytes(nbytes))
        return cls(verifier, challenge_of(verifier))

    def __repr__(self) -> str:
        return "PKCE(<redacted>)"


def hex_state() -> str:
    """32 hex characters (16 random bytes): Claude, Codex and Antigravity states."""
    return secrets.token_hex(16)


def nanos_state(prefix: str) -> str:
    """`<prefix>-<unix nanos>`: Gemini (`gem`), iFlow (`ifl`), Qwen (`gem`, sic) and Kimi (`kmi`) states."""
    return f"{prefix}-{time.time_ns()}"
