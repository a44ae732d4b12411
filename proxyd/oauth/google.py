"""Google OAuth pieces shared by the Gemini CLI and Antigravity logins: code exchange, userinfo, Code Assist calls."""

from __future__ import annotations

import platform
import sys
from typing import Any

from proxyd.oauth.flow import FlowContext, exchange_tokens
from proxyd.oauth.http import OAuthHTTPError

__all__ = ["code_assist", "exchange_code", "gemini_cli_user_agent", "project_of", "userinfo_email"]

GEMINI_CLI_VERSION = "0.31.0"


def gemini_cli_user_agent(model: str = "") -> str:
    """`GeminiCLI/<version>/<model> (<os>; <arch>)` with Node's os/arch names."""
    os_name = "win32" if sys.platform.startswith("win") else ("darwin" if sys.platform == "darwin" else sys.platform)
    machine = platform.machine().lower()
    arch = {"x86_64": "x64", "amd64": "x64", "i386": "x86", "i686": "x86", "aarch64": "arm64"}.get(machine, machine)
    return f"GeminiCLI/{GEMINI_CLI_VERSION}/{model or 'unknown'} ({os_name}; {arch})"


async def exchange_code(ctx: FlowContext, *, code: str, client_id: str, client_secret: str, redirect_uri: str,
                        what: str, failure: str) -> tuple[dict[str, Any], str, float]:
    """Authorization-code exchange at Google's token endpoint (client credentials in the form body).

    (the answer, its access token, the time it was asked); FlowError(`failure`) when it fails.
    """
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "client_id": client_id, "client_secret": client_secret}
    answer, issued = await exchange_tokens(ctx, ctx.endpoints.google_token, what=what, failure=failure, form=form)
    return answer, str(answer["access_token"]).strip(), issued


async def userinfo_email(ctx: FlowContext, access_token: str, what: str) -> tuple[int, str]:
    """(status, email) of the userinfo endpoint; status 0 when the call itself failed."""
    try:
        reply = await ctx.client.request("GET", ctx.endpoints.google_userinfo, what=what,
                                         headers={"Authorization": f"Bearer {access_token}"})
    except OAuthHTTPError:
        return 0, ""
    data = reply.json()
    email = str(data.get("email") or "").strip() if isinstance(data, dict) else ""
    return reply.status, email


async def code_assist(ctx: FlowContext, method: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    """POST `<cloudcode>/v1internal:<method>`; a non-2xx answer raises OAuthHTTPError."""
    url = f"{ctx.endpoints.cloudcode.rstrip('/')}/v1internal:{method}"
    return await ctx.client.json("POST", url, what=method, json_body=body, headers=headers,
                                 ok=tuple(range(200, 300)))


def project_of(value: Any) -> str:
    """`cloudaicompanionProject` as a string or `{id}`."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"]).strip()
    return ""


def default_tier(load: dict[str, Any]) -> str:
    for tier in load.get("allowedTiers") or ():
        if isinstance(tier, dict) and tier.get("isDefault") is True and isinstance(tier.get("id"), str) \
                and tier["id"].strip():
            return str(tier["id"]).strip()
    return "legacy-tier"
