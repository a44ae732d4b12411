"""The credential manager: live state of every credential (cooldowns per model, counts, last error).

State is kept per credential and per client-visible base model. Bookkeeping is plain dict updates on the
event loop (no locks, no I/O), so recording a result never delays a response.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from proxyd.credentials.activity import QuotaSignals, RecentRequests
from proxyd.credentials.model import Credential

# Cooldowns of the reference's table (routing.md §4.3), in seconds.
AUTH_COOLDOWN = 30 * 60.0
NOT_FOUND_COOLDOWN = 12 * 3600.0
QUOTA_BACKOFF_CAP = 30 * 60.0
# Transient failures (408, 5xx): exponential from 1 s, capped at the reference's 1 minute. Transport failures
# (status 0: refused, reset, a body cut short) cool nothing down, as in the reference: the request's retry rounds
# try the credential again at once.
TRANSIENT_BACKOFF_CAP = 60.0


@attrs.define
class ModelState:
    """One credential's standing for one model."""

    blocked_until: float = 0.0
    reason: str = ""
    quota: bool = False
    quota_level: int = 0
    transient_level: int = 0
    last_status: int = 0
    last_error: str = ""
    failed_at: float = 0.0


@attrs.define
class CredentialState:
    """The live record of one credential."""

    credential: Credential
    models: dict[str, ModelState] = attrs.Factory(dict)
    in_flight: int = 0
    successes: int = 0
    failures: int = 0
    last_status: int = 0
    last_error: str = ""
    last_used: float = 0.0
    disabled: bool = False
    recent: RecentRequests = attrs.Factory(RecentRequests)
    quota: QuotaSignals = attrs.Factory(QuotaSignals)


class CredentialManager:
    """Owns every credential's live state; `sync` keeps the state of credentials that did not change."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._states: dict[str, CredentialState] = {}

    # ----------------------------------------------------------------------------------- membership

    def unchanged(self, credentials: Iterable[Credential]) -> frozenset[str]:
        """Ids whose credential is equal to the one held now (read-only: may run in a worker thread)."""
        states = self._states
        same: set[str] = set()
        for credential in credentials:
            old = states.get(credential.id)
            if old is not None and (old.credential is credential or old.credential == credential):
                same.add(credential.id)
        return frozenset(same)

    def sync(self, credentials: Iterable[Credential], unchanged: frozenset[str] | None = None) -> None:
        """Adopt a new credential set: unchanged ids keep their state, new ones start fresh, gone ones go.

        `unchanged` is :meth:`unchanged` computed beforehand (off the loop) for these credentials."""
        fresh: dict[str, CredentialState] = {}
        for credential in credentials:
            old = self._states.get(credential.id)
            if old is not None and (credential.id in unchanged if unchanged is not None
                                    else old.credential is credential or old.credential == credential):
                fresh[credential.id] = old
            else:
                fresh[credential.id] = CredentialState(credential=credential)
        self._states = fresh

    def get(self, credential_id: str) -> CredentialState | None:
        return self._states.get(credential_id)

    def _state(self, credential: Credential) -> CredentialState:
        state = self._states.get(credential.id)
        if state is None:  # a request that started before a reload may still use a dropped credential
            state = CredentialState(credential=credential)
        return state

    # ----------------------------------------------------------------------------------- selection

    def blocked_until(self, credential: Credential, model: str) -> float | None:
        """When `credential` becomes usable for `model` again, or None when it is usable now."""
        state = self._states.get(credential.id)
        if state is None:
            return None
        if state.disabled:
            return float("inf")
        model_state = state.models.get(model)
        if model_state is None or model_state.blocked_until <= self.clock():
            return None
        return model_state.blocked_until

    def blocking_state(self, credential: Credential, model: str) -> ModelState | None:
        """The model state that blocks `credential` for `model` now (None when usable or disabled)."""
        state = self._states.get(credential.id)
        if state is None or state.disabled:
            return None
        model_state = state.models.get(model)
        if model_state is None or model_state.blocked_until <= self.clock():
            return None
        return model_state

    def acquire(self, credential: Credential) -> None:
        state = self._state(credential)
        state.in_flight += 1
        state.last_used = self.clock()

    def release(self, credential: Credential) -> None:
        state = self._states.get(credential.id)
        if state is not None and state.in_flight > 0:
            state.in_flight -= 1

    # ----------------------------------------------------------------------------------- results

    def mark_success(self, credential: Credential, model: str) -> None:
        state = self._states.get(credential.id)
        if state is None:
            return
        state.successes += 1
        state.recent.record(self.clock(), success=True)
        state.models.pop(model, None)

    def mark_failure(self, credential: Credential, model: str, status: int, message: str, *,
                     hint: float | None = None, disable_cooling: bool = False, max_cooldown: float = 1800.0,
                     force_cooldown: float = 0.0) -> float:
        """Record a failed call; returns the cooldown applied in seconds (0 = none). ``force_cooldown`` is the
        cooldown of a status that would not cool the credential otherwise (a `*-and-cooldown` scoped rule)."""
        state = self._states.get(credential.id)
        if state is None:
            return 0.0
        state.failures += 1
        state.recent.record(self.clock(), success=False)
        state.last_status, state.last_error = status, message[:500]
        model_state = state.models.setdefault(model, ModelState())
        model_state.last_status, model_state.last_error = status, message[:500]
        model_state.failed_at = self.clock()
        cooldown, reason = self._cooldown(model_state, status, hint, disable_cooling)
        if cooldown <= 0 and force_cooldown > 0:
            cooldown, reason = force_cooldown, "request_scoped"
        if hint is not None and cooldown > 0:
            cooldown = min(cooldown, max_cooldown)
        if cooldown > 0:
            model_state.blocked_until = self.clock() + cooldown
            model_state.reason = reason
            model_state.quota = status == 429
        return cooldown

    def observe_quota(self, credential: Credential, headers: Any) -> None:
        """Keep the quota headers of an upstream answer (any status) as the credential's quota signals."""
        state = self._states.get(credential.id)
        if state is not None and headers:
            state.quota.observe(headers, self.clock())

    @staticmethod
    def _cooldown(model_state: ModelState, status: int, hint: float | None, disable_cooling: bool
                  ) -> tuple[float, str]:
        if status == 401:
            return AUTH_COOLDOWN, "unauthorized"
        if status in (402, 403):
            return AUTH_COOLDOWN, "payment_required" if status == 402 else "forbidden"
        if status == 404:
            return NOT_FOUND_COOLDOWN, "not_found"
        if status == 429:
            if hint is not None:
                return hint, "quota"
            if disable_cooling:
                return 0.0, ""
            delay = min(QUOTA_BACKOFF_CAP, 2.0 ** model_state.quota_level)
            if delay < QUOTA_BACKOFF_CAP:
                model_state.quota_level += 1
            return delay, "quota"
        if status == 408 or status >= 500:
            if hint is not None:
                return hint, "unavailable"
            if disable_cooling:
                return 0.0, ""
            delay = min(TRANSIENT_BACKOFF_CAP, 2.0 ** model_state.transient_level)
            if delay < TRANSIENT_BACKOFF_CAP:
                model_state.transient_level += 1
            return delay, "unavailable"
        return 0.0, ""

    def model_states(self, credential_id: str) -> list[str]:
        """The models a credential has a cooldown state for (a failure was recorded since the last reset)."""
        state = self._states.get(credential_id)
        return list(state.models) if state is not None else []

    def clear_cooldown(self, credential_id: str, model: str | None = None) -> bool:
        """Lift a credential's cooldowns (one model, or all); False when the id is unknown."""
        state = self._states.get(credential_id)
        if state is None:
            return False
        if model is None:
            state.models.clear()
        else:
            state.models.pop(model, None)
        return True

    # ----------------------------------------------------------------------------------- read model

    def snapshot(self) -> list[dict[str, Any]]:
        """Every credential's live state, secret-free, for the management API and metrics."""
        now = self.clock()
        out = []
        for state in self._states.values():
            cred = state.credential
            cooling = {
                model: {
                    "until": ms.blocked_until,
                    "seconds_left": round(ms.blocked_until - now, 3),
                    "reason": ms.reason,
                    "quota": ms.quota,
                    "last_status": ms.last_status,
                    "last_error": ms.last_error,
                }
                for model, ms in state.models.items()
                if ms.blocked_until > now
            }
            status = "disabled" if state.disabled else ("cooling" if cooling else "ok")
            out.append({
                "id": cred.id,
                "provider": cred.provider,
                "kind": cred.kind,
                "source": cred.source,
                "prefix": cred.prefix,
                "priority": cred.priority,
                "status": status,
                "cooldowns": cooling,
                "in_flight": state.in_flight,
                "successes": state.successes,
                "failures": state.failures,
                "last_status": state.last_status,
                "last_error": state.last_error,
                "last_used": state.last_used,
            })
        return out
