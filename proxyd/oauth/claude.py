"""Claude (Anthropic) OAuth login: PKCE authorize URL, JSON token exchange, `claude-<email>.json` (routing.md §3.5)."""

from __future__ import annotations

from urllib.parse import urlencode

import attrs

from proxyd.oauth.endpoints import OAuthEndpoints
from proxyd.oauth.flow import (
    FlowContext,
    Messages,
    TokenFile,
    exchange_tokens,
    expires_seconds,
    file_safe,
    now_rfc3339,
    rfc3339_at,
)
from proxyd.oauth.pkce import PKCE, hex_state

__all__ = ["ClaudeLogin", "token_file"]

SCOPE = "org:create_api_key user:profile user:inference"
MESSAGES = Messages(no_code="Failed to exchange authorization code for tokens")


def token_file(answer: dict[str, object], issued: float) -> TokenFile:
    """The file the reference writes after a Claude exchange (id_token is always empty)."""
    account = answer.get("account") if isinstance(answer.get("account"), dict) else {}
    email = str(account.get("email_address") or "") if isinstance(account, dict) else ""
    seconds = expires_seconds(answer.get("expires_in"))
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
        answer, issued = await exchange_tokens(ctx, ep.claude_token, what="claude token exchange",
                                               failure=self.messages.exchange, json_body=body)
        return token_file(answer, issued)
