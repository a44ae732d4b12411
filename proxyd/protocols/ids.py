"""Identifiers minted where a protocol needs one and the other side gave none."""

from __future__ import annotations

import secrets
import string
import time

_ALPHABET = string.ascii_letters + string.digits
# A random byte b < 248 (= 4 × 62) maps to _ALPHABET[b % 62], uniformly; bytes 248–255 are dropped (rejection
# sampling), so each character is as uniform as `secrets.choice(_ALPHABET)` at a fraction of the cost.
_KEEP = 4 * len(_ALPHABET)
_TABLE = bytes(ord(_ALPHABET[b % len(_ALPHABET)]) if b < _KEEP else 0 for b in range(256))
_DROP = bytes(range(_KEEP, 256))


def random_token(length: int = 24) -> str:
    """`length` characters drawn uniformly and independently from [A-Za-z0-9] (a CSPRNG)."""
    out = b""
    while len(out) < length:
        out += secrets.token_bytes(length + 8).translate(_TABLE, _DROP)
    return out[:length].decode("ascii")


def new_id(prefix: str, length: int = 24) -> str:
    """`<prefix><random alphanumerics>`, e.g. `new_id("toolu_")`, `new_id("call_")`, `new_id("msg_")`."""
    return prefix + random_token(length)


def now() -> int:
    """Unix seconds, for `created` fields."""
    return int(time.time())
