"""OAuth logins: state → provider and status, in memory, 10-minute TTL, bounded (management.md §3.12).

A finished login stays known for another minute as *completed* (the recorded build: get-auth-status answers
``ok`` for it and ``unknown or expired state`` once it is gone); a cancelled or never-started one is unknown.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

import attrs

__all__ = ["COMPLETED_TTL", "DEFAULT_TTL", "MAX_SESSIONS", "Session", "SessionStore"]

DEFAULT_TTL = 600.0
COMPLETED_TTL = 60.0
MAX_SESSIONS = 512


@attrs.frozen
class Session:
    """One login: its canonical provider, status (`""` unless failed, else the error message), whether it
    finished successfully, and its expiry."""

    provider: str
    status: str
    created: float
    expires: float
    completed: bool = False

    @property
    def pending(self) -> bool:
        return self.status == "" and not self.completed


class SessionStore:
    """The sessions of one app. Expired entries are dropped on every access; the oldest go first when full."""

    def __init__(self, ttl: float = DEFAULT_TTL, *, limit: int = MAX_SESSIONS,
                 clock: Callable[[], float] = time.monotonic, completed_ttl: float = COMPLETED_TTL) -> None:
        self.ttl = ttl
        self.completed_ttl = min(completed_ttl, ttl)
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
        if session is None or session.completed:
            return
        self._sessions[state] = attrs.evolve(session, status=message.strip() or "Authentication failed",
                                             expires=self._clock() + self.ttl)

    def _finish(self, state: str, session: Session) -> None:
        self._sessions[state] = attrs.evolve(session, status="", completed=True,
                                             expires=self._clock() + self.completed_ttl)

    def complete(self, state: str) -> None:
        """Mark a login finished; it stays known (as completed) for ``completed_ttl``."""
        self._purge()
        session = self._sessions.get(state)
        if session is not None and not session.completed:
            self._finish(state, session)

    def complete_provider(self, provider: str) -> int:
        """Finish every unfinished session of `provider` (a finished login ends the others started for it)."""
        self._purge()
        states = [s for s, v in self._sessions.items() if v.provider == provider and not v.completed]
        for state in states:
            self._finish(state, self._sessions[state])
        return len(states)

    def cancel(self, state: str) -> bool:
        """Forget a pending login (its waiter then stops without saving); False when it was not pending."""
        self._purge()
        session = self._sessions.get(state)
        if session is None or not session.pending:
            return False
        del self._sessions[state]
        return True

    def discard(self, state: str) -> None:
        """Forget a login whatever its status (it never really started)."""
        self._sessions.pop(state, None)
