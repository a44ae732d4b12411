"""Pending OAuth logins: state → provider and status, in memory, 10-minute TTL, bounded (management.md §3.12)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

import attrs

__all__ = ["DEFAULT_TTL", "MAX_SESSIONS", "Session", "SessionStore"]

DEFAULT_TTL = 600.0
MAX_SESSIONS = 512


@attrs.frozen
class Session:
    """One login: its canonical provider, status (`""` while pending, else the error message) and expiry."""

    provider: str
    status: str
    created: float
    expires: float

    @property
    def pending(self) -> bool:
        return self.status == ""


class SessionStore:
    """The sessions of one app. Expired entries are dropped on every access; the oldest go first when full."""

    def __init__(self, ttl: float = DEFAULT_TTL, *, limit: int = MAX_SESSIONS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.limit = limit
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        self._purge()
        return len(self._sessions)

    def _purge(self) -> None:
        now = self._clock()
        for state in [s for s, v in self._sessions.items() if v.expires < now]:
            del self._sessions[state]

    def register(self, state: str, provider: str) -> None:
        self._purge()
        now = self._clock()
        self._sessions.pop(state, None)
        while len(self._sessions) >= self.limit:
            self._sessions.popitem(last=False)
        self._sessions[state] = Session(provider=provider, status="", created=now, expires=now + self.ttl)

    def get(self, state: str) -> Session | None:
        self._purge()
        return self._sessions.get(state)

    def is_pending(self, state: str, provider: str | None = None) -> bool:
        session = self.get(state)
        if session is None or not session.pending:
            return False
        return provider is None or session.provider == provider

    def set_error(self, state: str, message: str) -> None:
        """Mark a login failed; the message stays visible to get-auth-status for another TTL."""
        self._purge()
        session = self._sessions.get(state)
        if session is None:
            return
        self._sessions[state] = attrs.evolve(session, status=message.strip() or "Authentication failed",
                                             expires=self._clock() + self.ttl)

    def complete(self, state: str) -> None:
        self._purge()
        self._sessions.pop(state, None)

    def complete_provider(self, provider: str) -> int:
        """Remove every session of `provider` (a finished login ends the others started for it)."""
        self._purge()
        states = [s for s, v in self._sessions.items() if v.provider == provider]
        for state in states:
            del self._sessions[state]
        return len(states)
