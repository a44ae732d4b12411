"""Antigravity (Google) OAuth login: `antigravity-<email>.json` with a Code Assist project (routing.md §3.5)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import attrs
import structlog

from proxyd.oauth import google
from proxyd.oauth.endpoints import ANTIGRAVITY_SCOPES, OAuthEndpoints
from proxyd.oauth.flow import FlowContext, FlowError, Messages, TokenFile, expires_seconds, file_safe, rfc3339_at
from proxyd.oauth.http import OAuthHTTPError
from proxyd.oauth.pkce import hex_state

__all__ = ["AntigravityLogin", "file_name"]

log = structlog.get_logger(__name__)

MESSAGES = Messages(
    timeout="OAuth flow timed out", callback_error="Authentication failed",
    state_mismatch="Authentication failed: state mismatch", exchange="Failed to exchange token",
    save="Failed to save token to file", state_check="present",
)
METADATA = {"ideType": "ANTIGRAVITY", "platform": "PLATFORM_UNSPECIFIED", "pluginType": "GEMINI"}
HEADERS = {
    "User-Agent": "google-api-nodejs-client/9.15.1",
    "X-Goog-Api-Client": "google-cloud-sdk vscode_cloudshelleditor/0.1",
    "Client-Metadata": '{"ideType":"IDE_UNSPECIFIED","platform":"PLATFORM_UNSPECIFIED","pluginType":"GEMINI"}',
}
ONBOARD_ATTEMPTS = 5


def file_name(email: str) -> str:
    return f"antigravity-{file_safe(email)}.json" if email.strip() else "antigravity.json"


async def fetch_project(ctx: FlowContext, access_token: str) -> str:
    """loadCodeAssist, then onboardUser (up to 5 attempts) when no project is assigned yet."""
    headers = {**HEADERS, "Authorization": f"Bearer {access_token}"}
    load = await google.code_assist(ctx, "loadCodeAssist", {"metadata": METADATA}, headers)
    project = google.project_of(load.get("cloudaicompanionProject"))
    if project:
        return project
    request = {"tierId": google.default_tier(load), "metadata": METADATA}
    for attempt in range(ONBOARD_ATTEMPTS):
        answer = await google.code_assist(ctx, "onboardUser", request, headers)
        if answer.get("done") is True:
            response = answer.get("response") if isinstance(answer.get("response"), dict) else {}
            project = google.project_of(response.get("cloudaicompanionProject"))
            if not project:
                raise OAuthHTTPError("onboardUser", message="no project_id in response")
            return project
        if attempt + 1 < ONBOARD_ATTEMPTS:
            await asyncio.sleep(ctx.endpoints.auto_onboard_poll)
    return ""


@attrs.define(repr=False)
class AntigravityLogin:
    """A started Antigravity login."""

    endpoints: OAuthEndpoints
    state: str = attrs.field(factory=hex_state)
    provider: str = "antigravity"
    callback_path: str = "antigravity"
    messages: Messages = MESSAGES

    @property
    def url(self) -> str:
        ep = self.endpoints
        query = {
            "access_type": "offline", "client_id": ep.antigravity_client_id, "prompt": "consent",
            "redirect_uri": ep.redirect_for("antigravity"), "response_type": "code",
            "scope": " ".join(ANTIGRAVITY_SCOPES), "state": self.state,
        }
        return f"{ep.antigravity_authorize}?{urlencode(query)}"

    async def finish(self, ctx: FlowContext, code: str) -> TokenFile:
        ep = ctx.endpoints
        answer, access, issued = await google.exchange_code(
            ctx, code=code, client_id=ep.antigravity_client_id, client_secret=ep.antigravity_client_secret,
            redirect_uri=ep.redirect_for("antigravity"), what="antigravity token exchange",
            failure=self.messages.exchange)
        status, email = await google.userinfo_email(ctx, access, "antigravity userinfo")
        if not 200 <= status < 300 or not email:
            raise FlowError("Failed to fetch user info", f"userinfo status {status}")
        project = ""
        try:
            project = await fetch_project(ctx, access)
        except OAuthHTTPError as exc:  # the reference goes on without a project (fetched again on load)
            log.warning("antigravity project fetch failed", error=str(exc))
        seconds = expires_seconds(answer.get("expires_in"))
        data: dict[str, Any] = {
            "type": "antigravity",
            "access_token": access,
            "refresh_token": str(answer.get("refresh_token") or ""),
            "expires_in": seconds,
            "timestamp": int(issued * 1000),
            "expired": rfc3339_at(issued + seconds),
            "email": email,
        }
        if project:
            data["project_id"] = project
        data["disabled"] = False  # the reference's metadata-only save adds it
        return TokenFile(name=file_name(email), data=data, email=email)

