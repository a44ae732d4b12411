"""Claude (Anthropic) OAuth login: PKCE authorize URL, JSON token exchange, `claude-<email>.json` (routing.md §3.5)."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import attrs

from proxyd.oauth.endpoints import OAuthEndpoints
from proxyd.oauth.flow import FlowContext, FlowError, Messages, TokenFile, file_safe, now_rfc3339, rfc3339_at
from proxyd.oauth.http import OAuthHTTPError
from proxyd.oauth.pkce import PKCE, hex_state

__all__ = ["ClaudeLogin", "token_file"]

SCOPE = "org:create_api_key user:profile user:inference"
MESSAGES = Messages(no_code="Failed to exchange authorization code for tokens")


def token_file(answer: dict[str, object], issued: float) -> TokenFile:
    """The file the reference writes after a Claude exchange (id_token is always empty)."""
    account = answer.get("account") if isinstance(answer.get("account"), dict) else {}
    email = str(account.get("email_address") or "") if isinstance(account, dict) else ""
    expires_in = answer.get("expires_in")
    seconds = int(expires_in) if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) else 0
    data = {
        "id_token": "",
        "access_token": str(answer.get("access_token") or ""),
        "refresh_token": str(answer.get("refresh_token") or ""),
        "last_refresh": now_rfc3339(),
        "email": email,
        "type": "claude",
        "expired": rfc3339_at(issued + seconds),
    }
    return TokenFile(name=f"claude-{file_safe(email)}.json", data=data, email=email)


@attrs.define(repr=False)
class ClaudeLogin:
    """A started Claude login."""

    endpoints: OAuthEndpoints
    state: str = attrs.field(factory=hex_state)
    pkce: PKCE = attrs.field(factory=PKCE.generate)
    provider: str = "anthropic"
    callback_path: str = "anthropic"
    messages: Messages = MESSAGES

    @property
    def url(self) -> str:
        ep = self.endpoints
        query = {
            "code": "true", "client_id": ep.claude_client_id, "response_type": "code",
            "redirect_uri": ep.claude_redirect, "scope": SCOPE, "code_challenge": self.pkce.challenge,
            "code_challenge_method": "S256", "state": self.state,
        }
        return f"{ep.claude_authorize}?{urlencode(query)}"

    async def finish(self, ctx: FlowContext, code: str) -> TokenFile:
        # The code Claude shows may be `code#state`: the part after `#` is the state to send.
        raw_code, _, code_state = code.partition("#")
        ep = ctx.endpoints
        body = {
            "code": raw_code, "state": code_state or self.state, "grant_type": "authorization_code",
            "client_id": ep.claude_client_id, "redirect_uri": ep.claude_redirect,
            "code_verifier": self.pkce.verifier,
        }
        issued = time.time()
        try:
            answer = await ctx.client.json("POST", ep.claude_token, what="claude token exchange", json_body=body)
        except OAuthHTTPError as exc:
            raise FlowError(self.messages.exchange, str(exc)) from None
        if not answer.get("access_token"):
            raise FlowError(self.messages.exchange, "claude token exchange: no access_token")
        return token_file(answer, issued)
