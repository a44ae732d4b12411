"""Who may call ``/v0/management/*``: the availability guard, the key check (§3.2) and the lockout (DECISIONS 10).

Order, for every request to a management route:

0. no ``secret-key`` and no ``MANAGEMENT_PASSWORD`` → 404, exactly like an unknown route;
1. the client address is banned → 403 ``IP banned due to too many failed attempts. Try again in 29m41s``;
2. a non-local client while remote management is off → 403 ``remote management disabled`` (not a failure);
3. no key configured at all → 403 ``remote management key not set``;
4. no key presented → 401 ``missing management key`` (a failure);
5. ``MANAGEMENT_PASSWORD`` matches → allowed; 6. the bcrypt hash matches → allowed;
   otherwise 401 ``invalid management key`` (a failure).

The client address comes from :func:`proxyd.http.client_address.client_address`. Failures are counted per
address: 5 ban a remote address for 30 minutes, a local one is banned only after 20. A success clears the
count. Everything is read from the live config on each request, so hot reloads apply at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import attrs
import structlog
from aiohttp import web

from proxyd import __version__
from proxyd.config import Config
from proxyd.http.client_address import IPAddress, client_address, is_local
from proxyd.management.secret import SecretVerifier, constant_time_equal

__all__ = [
    "BUILD_COMMIT",
    "BUILD_DATE",
    "Lockout",
    "ManagementAccess",
    "build_headers",
    "extract_key",
    "go_duration",
]

log = structlog.get_logger(__name__)

# proxyd records no commit or build date in the package; these are the reference's own defaults for such builds.
BUILD_COMMIT = "none"
BUILD_DATE = "unknown"

REMOTE_MAX_FAILURES = 5
LOCAL_MAX_FAILURES = 20
BAN_SECONDS = 30 * 60
IDLE_FORGET_SECONDS = 2 * 3600
PRUNE_EVERY_SECONDS = 3600


def build_headers() -> dict[str, str]:
    """The ``X-CPA-*`` headers every management response carries (the panel shows them)."""
    return {"X-CPA-VERSION": __version__, "X-CPA-COMMIT": BUILD_COMMIT, "X-CPA-BUILD-DATE": BUILD_DATE}


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` of a duration rounded to whole seconds (``29m41s``, ``1h0m0s``, ``0s``)."""
    total = max(0, math.floor(seconds + 0.5))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def extract_key(request: web.Request) -> str:
    """The presented key: ``Authorization`` (``Bearer <key>`` or the whole value), else ``X-Management-Key``."""
    provided = ""
    auth = request.headers.get("Authorization", "")
    if auth:
        scheme, sep, value = auth.partition(" ")
        provided = value if sep and scheme.lower() == "bearer" else auth
    if not provided:
        provided = request.headers.get("X-Management-Key", "")
    return provided


@attrs.define
class _Attempts:
    count: int = 0
    blocked_until: float = 0.0
    last_activity: float = 0.0


class Lockout:
    """Failure counts and bans per client address (in memory only)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, remote_limit: int = REMOTE_MAX_FAILURES,
                 local_limit: int = LOCAL_MAX_FAILURES, ban_seconds: float = BAN_SECONDS) -> None:
        self._clock = clock
        self._remote_limit = remote_limit
        self._local_limit = local_limit
        self._ban_seconds = ban_seconds
        self._entries: dict[str, _Attempts] = {}
        self._last_prune = clock()

    @property
    def ban_seconds(self) -> float:
        """How long a ban lasts."""
        return self._ban_seconds

    def banned_for(self, addr: IPAddress) -> float | None:
        """Seconds left on the address's ban, or ``None``; an expired ban also clears the count."""
        entry = self._entries.get(str(addr))
        if entry is None or not entry.blocked_until:
            return None
        left = entry.blocked_until - self._clock()
        if left > 0:
            return left
        entry.blocked_until = 0.0
        entry.count = 0
        return None

    def failure(self, addr: IPAddress) -> tuple[int, bool]:
        """Count one failure; returns (failures so far, whether this one started a ban)."""
        now = self._clock()
        self._prune(now)
        entry = self._entries.setdefault(str(addr), _Attempts())
        entry.count += 1
        entry.last_activity = now
        count = entry.count
        if count >= (self._local_limit if is_local(addr) else self._remote_limit):
            entry.blocked_until = now + self._ban_seconds
            entry.count = 0
            return count, True
        return count, False

    def success(self, addr: IPAddress) -> None:
        """Forget the address's failures."""
        self._entries.pop(str(addr), None)

    def _prune(self, now: float) -> None:
        if now - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = now
        for key, entry in list(self._entries.items()):
            if entry.blocked_until <= now and now - entry.last_activity > IDLE_FORGET_SECONDS:
                del self._entries[key]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class ManagementAccess:
    """The availability guard and the key check; ``env_secret`` is ``MANAGEMENT_PASSWORD`` read at startup."""

    def __init__(self, env_secret: str = "", *, lockout: Lockout | None = None,
                 verifier: SecretVerifier | None = None) -> None:
        self.env_secret = env_secret.strip()
        self.lockout = lockout or Lockout()
        self.verifier = verifier or SecretVerifier()

    def enabled(self, config: Config) -> bool:
        """Whether the management API exists at all (a key is configured somewhere)."""
        return bool(config.remote_management.secret_key or self.env_secret)

    def allow_remote(self, config: Config) -> bool:
        """``remote-management.allow-remote``, forced on by ``MANAGEMENT_PASSWORD``."""
        return config.remote_management.allow_remote or bool(self.env_secret)

    async def check(self, request: web.Request, config: Config) -> web.Response | None:
        """``None`` when the request may proceed, else the refusal to send."""
        addr = client_address(request)
        local = is_local(addr)

        left = self.lockout.banned_for(addr)
        if left is not None:
            log.warning("management request refused", client=str(addr), reason="banned",
                        remaining=go_duration(left))
            return _error(403, f"IP banned due to too many failed attempts. Try again in {go_duration(left)}")
        if not local and not self.allow_remote(config):
            log.warning("management request refused", client=str(addr), reason="remote management disabled")
            return _error(403, "remote management disabled")

        secret_hash = config.remote_management.secret_key
        if not secret_hash and not self.env_secret:
            log.warning("management request refused", client=str(addr), reason="no management key configured")
            return _error(403, "remote management key not set")

        provided = extract_key(request)
        if not provided:
            self._failed(addr, "missing management key")
            return _error(401, "missing management key")
        if self.env_secret and constant_time_equal(provided, self.env_secret):
            self.lockout.success(addr)
            return None
        if secret_hash and await self.verifier.verify(provided, secret_hash):
            self.lockout.success(addr)
            return None
        self._failed(addr, "invalid management key")
        return _error(401, "invalid management key")

    def _failed(self, addr: IPAddress, reason: str) -> None:
        count, banned = self.lockout.failure(addr)
        log.warning("management authentication failed", client=str(addr), reason=reason, failures=count)
        if banned:
            log.warning("management client banned", client=str(addr), failures=count,
                        ban=go_duration(self.lockout.ban_seconds))
