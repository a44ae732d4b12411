"""Management key checks: bcrypt verification off the event loop, cached, and the ``MANAGEMENT_PASSWORD`` extra key.

Hashing a plain-text ``remote-management.secret-key`` and writing it back is done by the config store on every
load (§1.1). A key that is still plain text here (write-back impossible, too long for bcrypt) is compared in
constant time instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from collections import OrderedDict

import bcrypt

from proxyd.config.store import BCRYPT_PREFIXES, bcrypt_input

__all__ = ["BCRYPT_PREFIXES", "ENV_PASSWORD", "SecretVerifier", "constant_time_equal", "env_password",
           "is_bcrypt_hash"]

ENV_PASSWORD = "MANAGEMENT_PASSWORD"


def is_bcrypt_hash(value: str) -> bool:
    """True when ``value`` looks like a bcrypt hash (``$2a$``, ``$2b$`` or ``$2y$``)."""
    return value.startswith(BCRYPT_PREFIXES)


def env_password() -> str:
    """``MANAGEMENT_PASSWORD`` from the environment, trimmed (empty when unset)."""
    return os.environ.get(ENV_PASSWORD, "").strip()


def constant_time_equal(a: str, b: str) -> bool:
    """Compare two strings without leaking where they differ."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _checkpw(key: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(bcrypt_input(key), hashed.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return False


class SecretVerifier:
    """Check a presented key against the configured secret.

    bcrypt runs in a worker thread (at most ``concurrency`` at a time). Successful checks are remembered per
    (hash, sha256(key)) so the control panel's bursts of requests cost one bcrypt run; failures never are.
    """

    def __init__(self, *, max_entries: int = 256, concurrency: int = 4) -> None:
        self._ok: OrderedDict[tuple[str, bytes], None] = OrderedDict()
        self._max_entries = max_entries
        self._limit = asyncio.Semaphore(concurrency)

    async def verify(self, key: str, secret: str) -> bool:
        """True when ``key`` matches ``secret`` (a bcrypt hash, or plain text not yet hashed)."""
        if not key or not secret:
            return False
        if not is_bcrypt_hash(secret):
            return constant_time_equal(key, secret)
        entry = (secret, hashlib.sha256(key.encode("utf-8")).digest())
        if entry in self._ok:
            self._ok.move_to_end(entry)
            return True
        async with self._limit:
            ok = await asyncio.to_thread(_checkpw, key, secret)
        if ok:
            self._ok[entry] = None
            while len(self._ok) > self._max_entries:
                self._ok.popitem(last=False)
        return ok

    def clear(self) -> None:
        """Forget every cached verification."""
        self._ok.clear()
