"""Identifiers minted where a protocol needs one and the other side gave none."""

from __future__ import annotations

import secrets
import string
import time

_ALPHABET = string.ascii_letters + string.digits


def random_token(length: int = 24) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_id(prefix: str, length: int = 24) -> str:
    """`<prefix><random alphanumerics>`, e.g. `new_id("toolu_")`, `new_id("call_")`, `new_id("msg_")`."""
    return prefix + random_token(length)


def now() -> int:
    """Unix seconds, for `created` fields."""
    return int(time.time())
