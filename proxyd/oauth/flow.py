"""Shared pieces of the login flows: the token file a login produces, step errors, status messages, times."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import attrs

from proxyd.oauth.endpoints import OAuthEndpoints
from proxyd.oauth.http import OAuthClient, OAuthHTTPError

__all__ = ["BrowserLogin", "FlowContext", "FlowError", "Messages", "TokenFile", "exchange_tokens", "expires_seconds",
           "file_safe", "now_rfc3339", "rfc3339_at"]


def rfc3339_at(ts: float) -> str:
    """A Unix time as RFC 3339 in UTC with whole seconds (`2026-03-19T08:00:00Z`), as Go's time.RFC3339."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339() -> str:
    return rfc3339_at(time.time())


def expires_seconds(value: Any) -> int:
    """A token answer's `expires_in` as whole seconds; 0 when it is absent or not a number."""
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def file_safe(part: str) -> str:
    """A file-name part that cannot leave the auth-dir: path separators and NUL become `_`."""
    return part.strip().replace("/", "_").replace("\\", "_").replace("\x00", "_")


@attrs.frozen(repr=False)
class TokenFile:
    """The auth-dir file a finished login saves: its name and JSON object (tokens inside: never repr'd)."""

    name: str
    data: dict[str, Any]
    email: str = ""

    def __repr__(self) -> str:
        return f"TokenFile(name={self.name!r})"


class FlowError(Exception):
    """A login step failed; `status` is what get-auth-status reports, `detail` goes to the log only."""

    def __init__(self, status: str, detail: str = "") -> None:
        super().__init__(status)
        self.status = status
        self.detail = detail


@attrs.frozen
class Messages:
    """The session status a provider's login reports for each failure (they differ per provider upstream)."""

    timeout: str = "Timeout waiting for OAuth callback"
    callback_error: str = "Bad request"
    state_mismatch: str = "State code error"
    no_code: str = "Authentication failed: code not found"
    exchange: str = "Failed to exchange authorization code for tokens"
    save: str = "Failed to save authentication tokens"
    # "strict": the callback's state must equal ours; "present": only a non-empty different state fails
    state_check: Literal["strict", "present"] = "strict"


@attrs.frozen
class FlowContext:
    """What a login step needs: the HTTP client and the (possibly overridden) endpoints."""

    client: OAuthClient
    endpoints: OAuthEndpoints


class BrowserLogin(Protocol):
    """One started browser login: its state and authorize URL, and the step after the callback."""

    endpoints: OAuthEndpoints
    provider: str
    callback_path: str
    messages: Messages
    state: str
    url: str

    async def finish(self, ctx: FlowContext, code: str) -> TokenFile: ...


async def exchange_tokens(ctx: FlowContext, url: str, *, what: str, failure: str,
                          json_body: dict[str, Any] | None = None,
                          form: dict[str, str] | None = None) -> tuple[dict[str, Any], float]:
    """POST an authorization-code exchange: (the answer, the time it was asked).

    A failed call or an answer without an access token raises FlowError(`failure`).
    """
    issued = time.time()
    try:
        answer = await ctx.client.json("POST", url, what=what, json_body=json_body, form=form)
    except OAuthHTTPError as exc:
        raise FlowError(failure, str(exc)) from None
    if not str(answer.get("access_token") or "").strip():
        raise FlowError(failure, f"{what}: no access_token")
    return answer, issued
