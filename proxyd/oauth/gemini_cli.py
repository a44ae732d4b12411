"""Gemini CLI (Google) OAuth login with Code Assist onboarding: `gemini-<email>-<project>.json` (routing.md §3.5).

`project_id` query: empty → the first project of the account's Cloud project list (`auto: true`); `ALL` → every
project onboarded (comma-joined, `gemini-<email>-all.json`); `GOOGLE_ONE` → backend auto-discovery; anything else
→ that project. Every chosen project must have the Cloud AI companion API enabled (enabled on the fly).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import attrs

from proxyd.oauth import google
from proxyd.oauth.endpoints import GEMINI_SCOPES, OAuthEndpoints
from proxyd.oauth.flow import FlowContext, FlowError, Messages, TokenFile, file_safe
from proxyd.oauth.http import OAuthHTTPError
from proxyd.oauth.pkce import nanos_state

__all__ = ["GeminiLogin", "file_name"]

MESSAGES = Messages(
    timeout="OAuth flow timed out", callback_error="Authentication failed",
    state_mismatch="Authentication failed: state mismatch", exchange="Failed to exchange token",
    save="Failed to save token to file", state_check="present",
)
SETUP_METADATA = {"ideType": "IDE_UNSPECIFIED", "platform": "PLATFORM_UNSPECIFIED", "pluginType": "GEMINI"}
SERVICE = "cloudaicompanion.googleapis.com"


def file_name(email: str, project: str) -> str:
    email = file_safe(email)
    if project.strip().lower() == "all" or "," in project:
        return f"gemini-{email}-all.json"
    return f"gemini-{email}-{file_safe(project)}.json"


def _expiry(issued: float, expires_in: Any) -> str:
    seconds = expires_in if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) else 0
    return datetime.fromtimestamp(issued + seconds, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class _Setup:
    """Project selection and onboarding against Code Assist (a reduced port of the reference's steps)."""

    def __init__(self, ctx: FlowContext, access_token: str) -> None:
        self.ctx = ctx
        self.auth = {"Authorization": f"Bearer {access_token}"}
        self.headers = {**self.auth, "User-Agent": google.gemini_cli_user_agent()}

    async def projects(self) -> list[str]:
        url = f"{self.ctx.endpoints.resource_manager.rstrip('/')}/v1/projects"
        try:
            data = await self.ctx.client.json("GET", url, what="project list", headers=self.auth,
                                              ok=tuple(range(200, 300)))
        except OAuthHTTPError as exc:
            raise FlowError(f"Failed to complete Gemini CLI onboarding: fetch project list: {exc}") from None
        out: list[str] = []
        for item in data.get("projects") or ():
            if isinstance(item, dict) and isinstance(item.get("projectId"), str) and item["projectId"].strip():
                out.append(item["projectId"].strip())
        return out

    async def onboard(self, requested: str) -> str:
        """loadCodeAssist then onboardUser; the project to use (raises FlowError)."""
        ep = self.ctx.endpoints
        explicit = bool(requested)
        body: dict[str, Any] = {"metadata": SETUP_METADATA}
        if explicit:
            body["cloudaicompanionProject"] = requested
        load = await google.code_assist(self.ctx, "loadCodeAssist", body, self.headers)
        tier = google.default_tier(load)
        project = requested or google.project_of(load.get("cloudaicompanionProject"))
        if not project:  # auto-discovery: let the backend provision one
            deadline = time.monotonic() + ep.auto_onboard_timeout
            while True:
                answer = await google.code_assist(self.ctx, "onboardUser",
                                                  {"tierId": tier, "metadata": SETUP_METADATA}, self.headers)
                if answer.get("done") is True:
                    response = answer.get("response") if isinstance(answer.get("response"), dict) else {}
                    project = google.project_of(response.get("cloudaicompanionProject"))
                    break
                if time.monotonic() + ep.auto_onboard_poll > deadline:
                    break
                await asyncio.sleep(ep.auto_onboard_poll)
            if not project:
                raise OAuthHTTPError("gemini cli: project selection required")
        request = {"tierId": tier, "metadata": SETUP_METADATA, "cloudaicompanionProject": project}
        deadline = time.monotonic() + ep.onboard_timeout
        while True:
            answer = await google.code_assist(self.ctx, "onboardUser", request, self.headers)
            if answer.get("done") is True:
                response = answer.get("response") if isinstance(answer.get("response"), dict) else {}
                returned = google.project_of(response.get("cloudaicompanionProject"))
                if returned and explicit and returned.lower() != project.lower():
                    free = project.startswith("gen-lang-client-") or tier.upper() in ("FREE", "LEGACY")
                    return returned if free else project
                return returned or project
            if time.monotonic() > deadline:
                raise OAuthHTTPError("onboard user: not done in time")
            await asyncio.sleep(ep.onboard_poll)

    async def ensure_enabled(self, project: str) -> None:
        """The Cloud AI companion API must be enabled on `project` (enabled when it is not)."""
        root = self.ctx.endpoints.service_usage.rstrip("/")
        base = f"{root}/v1/projects/{quote(project, safe='')}/services/{SERVICE}"
        headers = {**self.headers, "Content-Type": "application/json"}
        try:
            reply = await self.ctx.client.request("GET", base, what="service usage", headers=headers)
            data = reply.json()
            if reply.status == 200 and isinstance(data, dict) and data.get("state") == "ENABLED":
                return
            reply = await self.ctx.client.request("POST", f"{base}:enable", what="service enable", json_body={},
                                                  headers=headers)
        except OAuthHTTPError as exc:
            raise FlowError(f"Failed to verify Cloud AI API status: {exc}") from None
        if reply.status in (200, 201):
            return
        message = reply.error_message()
        if reply.status == 400 and "already enabled" in message.lower():
            return
        raise FlowError(f"Cloud AI API not enabled for project {project}", message[:200])


@attrs.define(repr=False)
class GeminiLogin:
    """A started Gemini CLI login; `project_id` is the query value (empty, `ALL`, `GOOGLE_ONE` or an id)."""

    endpoints: OAuthEndpoints
    project_id: str = ""
    state: str = attrs.field(factory=lambda: nanos_state("gem"))
    provider: str = "gemini"
    callback_path: str = "google"
    messages: Messages = MESSAGES

    @property
    def url(self) -> str:
        ep = self.endpoints
        query = {
            "access_type": "offline", "client_id": ep.gemini_client_id, "prompt": "consent",
            "redirect_uri": ep.redirect_for("gemini"), "response_type": "code", "scope": " ".join(GEMINI_SCOPES),
            "state": self.state,
        }
        return f"{ep.gemini_authorize}?{urlencode(query)}"

    async def finish(self, ctx: FlowContext, code: str) -> TokenFile:
        ep = ctx.endpoints
        answer, access, issued = await google.exchange_code(
            ctx, code=code, client_id=ep.gemini_client_id, client_secret=ep.gemini_client_secret,
            redirect_uri=ep.redirect_for("gemini"), what="google token exchange", failure=self.messages.exchange)
        status, email = await google.userinfo_email(ctx, access, "google userinfo")
        if status == 0:
            raise FlowError("Failed to execute request")
        if not 200 <= status < 300:
            raise FlowError(f"Get user info request failed with status {status}")

        token: dict[str, Any] = {"access_token": access, "token_type": str(answer.get("token_type") or "Bearer")}
        if answer.get("refresh_token"):
            token["refresh_token"] = str(answer["refresh_token"])
        token["expiry"] = _expiry(issued, answer.get("expires_in"))
        if isinstance(answer.get("expires_in"), int) and answer["expires_in"] > 0:
            token["expires_in"] = answer["expires_in"]
        token.update(token_uri=ep.google_token, client_id=ep.gemini_client_id,
                     client_secret=ep.gemini_client_secret, scopes=list(GEMINI_SCOPES),
                     universe_domain="googleapis.com")

        requested = self.project_id.strip()
        setup = _Setup(ctx, access)
        auto = requested == ""
        try:
            if requested.upper() == "ALL":
                auto = False
                projects: list[str] = []
                for candidate in dict.fromkeys(await setup.projects()):
                    projects.append(await setup.onboard(candidate) or candidate)
                if not projects:
                    raise OAuthHTTPError("no Google Cloud projects available for this account")
                for project in projects:
                    await setup.ensure_enabled(project)
                project_id = ",".join(projects)
            elif requested.upper() == "GOOGLE_ONE":
                auto = False
                project_id = await setup.onboard("")
                await setup.ensure_enabled(project_id)
            else:
                if not requested:
                    listed = await setup.projects()
                    if not listed:
                        raise OAuthHTTPError("no Google Cloud projects available for this account")
                    requested = listed[0]
                project_id = await setup.onboard(requested) or requested
                await setup.ensure_enabled(project_id)
        except OAuthHTTPError as exc:
            raise FlowError(f"Failed to complete Gemini CLI onboarding: {exc}") from None

        data = {"token": token, "project_id": project_id, "email": email, "auto": auto, "checked": True,
                "type": "gemini"}
        return TokenFile(name=file_name(email, project_id), data=data, email=email)
