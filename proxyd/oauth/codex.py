"""Codex (OpenAI) OAuth login: PKCE, form token exchange, `codex-<email>[-<plan>].json` (routing.md §3.5)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any
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

__all__ = ["CodexLogin", "file_name", "jwt_claims", "token_file"]

SCOPE = "openid email profile offline_access"
MESSAGES = Messages(callback_error="Bad Request", no_code="Failed to exchange authorization code for tokens")
AUTH_CLAIM = "https://api.openai.com/auth"


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, decoded without verification ({} when it is not one)."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return {}
    return payload if isinstance(payload, dict) else {}


def _plan_for_name(plan: str) -> str:
    """Letters/digits runs of the plan, lower-cased and joined with `-` (`Team Plan` → `team-plan`)."""
    return "-".join(p.lower() for p in re.split(r"[^\w]|_", plan.strip()) if p)


def file_name(email: str, plan: str, account_id: str) -> str:
    """`codex-<email>.json`, `codex-<email>-<plan>.json`, team: `codex-<8 hex sha256(account)>-<email>-team.json`."""
    email = file_safe(email)
    plan = _plan_for_name(plan)
    if not plan:
        return f"codex-{email}.json"
    if plan == "team":
        digest = hashlib.sha256(account_id.encode()).hexdigest()[:8] if account_id else ""
        return f"codex-{digest}-{email}-team.json"
    return f"codex-{email}-{plan}.json"


def token_file(answer: dict[str, Any], issued: float) -> TokenFile:
    id_token = str(answer.get("id_token") or "")
    claims = jwt_claims(id_token)
    auth = claims.get(AUTH_CLAIM) if isinstance(claims.get(AUTH_CLAIM), dict) else {}
    account_id = str(auth.get("chatgpt_account_id") or "")
    plan = str(auth.get("chatgpt_plan_type") or "")
    email = str(claims.get("email") or "")
    seconds = expires_seconds(answer.get("expires_in"))
    data = {
        "id_token": id_token,
        "access_token": str(answer.get("access_token") or ""),
        "refresh_token": str(answer.get("refresh_token") or ""),
        "account_id": account_id,
        "last_refresh": now_rfc3339(),
        "email": email,
        "type": "codex",
        "expired": rfc3339_at(issued + seconds),
    }
    return TokenFile(name=file_name(email, plan, account_id), data=data, email=email)


@attrs.define(repr=False)
class CodexLogin:
    """A started Codex login."""

    endpoints: OAuthEndpoints
    state: str = attrs.field(factory=hex_state)
    pkce: PKCE = attrs.field(factory=PKCE.generate)
    provider: str = "codex"
    callback_path: str = "codex"
    messages: Messages = MESSAGES

    @property
    def url(self) -> str:
        ep = self.endpoints
        query = {
            "client_id": ep.codex_client_id, "response_type": "code", "redirect_uri": ep.codex_redirect,
            "scope": SCOPE, "state": self.state, "code_challenge": self.pkce.challenge,
            "code_challenge_method": "S256", "prompt": "login", "id_token_add_organizations": "true",
            "codex_cli_simplified_flow": "true",
        }
        return f"{ep.codex_authorize}?{urlencode(query)}"

    async def finish(self, ctx: FlowContext, code: str) -> TokenFile:
        ep = ctx.endpoints
        form = {
            "grant_type": "authorization_code", "client_id": ep.codex_client_id, "code": code,
            "redirect_uri": ep.codex_redirect, "code_verifier": self.pkce.verifier,
        }
        answer, issued = await exchange_tokens(ctx, ep.codex_token, what="codex token exchange",
                                               failure=self.messages.exchange, form=form)
        return token_file(answer, issued)
