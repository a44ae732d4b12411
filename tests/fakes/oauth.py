"""A fake of every OAuth / token / userinfo / onboarding server the login flows talk to, on 127.0.0.1.

Wire formats follow the real services (routing.md §3.5, §7.2): Claude's token endpoint takes and answers JSON;
OpenAI, Google, iFlow, Qwen and Kimi take form bodies and answer JSON; Qwen's device polling answers
``400 {"error": "authorization_pending"}`` and Kimi's ``200 {"error": "authorization_pending"}`` until the
scripted number of pending polls is used up; errors use the services' ``{"error", "error_description"}`` bodies.

Usage::

    async with FakeOAuthServer() as fake:
        service.endpoints = fake.endpoints(callback_timeout=2)
        ...
        assert fake.requests[-1].path == "/claude/v1/oauth/token"
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from dataclasses import dataclass, field
from typing import Any

import attrs
from aiohttp import web

from proxyd.oauth.endpoints import OAuthEndpoints

__all__ = ["FakeOAuthServer", "OAuthRequest", "free_port", "jwt"]


def jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.sig"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class OAuthRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]
    json: Any


@dataclass
class FakeOAuthServer:
    """Scriptable: set the public attributes before the flow reaches the endpoint."""

    code: str = "the-code"  # the only authorization code the token endpoints accept
    email: str = "bob@example.com"
    # Claude
    claude_expires_in: int = 28800
    # Codex
    codex_plan: str = "plus"
    codex_account: str = "acc-123"
    # Google / Gemini CLI
    google_projects: list[str] = field(default_factory=lambda: ["proj-one", "proj-two"])
    assigned_project: str = ""  # loadCodeAssist's cloudaicompanionProject ("" = none assigned)
    onboard_project: str = "auto-proj"  # what onboardUser answers when it picks the project
    onboard_pending: int = 0  # onboardUser answers done:false this many times first
    api_enabled: bool = True
    # iFlow
    iflow_api_key: str = "sk-iflow-key"
    # device flows
    pending_polls: int = 2
    qwen_expires_in: int = 3600
    kimi_interval: int = 0
    # failures: path -> (status, JSON body), used once
    fail: dict[str, tuple[int, Any]] = field(default_factory=dict)

    requests: list[OAuthRequest] = field(default_factory=list)
    _polls: dict[str, int] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def endpoints(self, **overrides: Any) -> OAuthEndpoints:
        """Endpoints pointing every flow here, with fast timings (overrides win)."""
        b = self.base_url
        values: dict[str, Any] = dict(
            claude_authorize=f"{b}/claude/oauth/authorize", claude_token=f"{b}/claude/v1/oauth/token",
            codex_authorize=f"{b}/openai/oauth/authorize", codex_token=f"{b}/openai/oauth/token",
            gemini_authorize=f"{b}/google/o/oauth2/auth", antigravity_authorize=f"{b}/google/o/oauth2/v2/auth",
            google_token=f"{b}/google/token", google_userinfo=f"{b}/google/userinfo?alt=json",
            cloudcode=f"{b}/cloudcode", resource_manager=f"{b}/crm", service_usage=f"{b}/su",
            iflow_authorize=f"{b}/iflow/oauth", iflow_token=f"{b}/iflow/oauth/token",
            iflow_userinfo=f"{b}/iflow/api/oauth/getUserInfo", iflow_apikey=f"{b}/iflow/api/openapi/apikey",
            qwen_device=f"{b}/qwen/device/code", qwen_token=f"{b}/qwen/token",
            kimi_device=f"{b}/kimi/device_authorization", kimi_token=f"{b}/kimi/token",
            callback_poll=0.05, qwen_poll=0.05, kimi_min_interval=0.05, onboard_poll=0.05, auto_onboard_poll=0.05,
            http_timeout=5.0,
        )
        values.update(overrides)
        return attrs.evolve(OAuthEndpoints(), **values)

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def last(self, path: str) -> OAuthRequest:
        return [r for r in self.requests if r.path == path][-1]

    # ------------------------------------------------------------------ server

    async def __aenter__(self) -> FakeOAuthServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        form: dict[str, str] = {}
        body: Any = None
        if request.content_type == "application/x-www-form-urlencoded":
            form = dict((await request.post()).items())  # type: ignore[arg-type]
        elif raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        self.requests.append(OAuthRequest(request.method, request.path, dict(request.query), dict(request.headers),
                                          form, body))
        if request.path in self.fail:
            status, answer = self.fail.pop(request.path)
            return web.json_response(answer, status=status)
        route = ROUTES.get((request.method, request.path))
        if route is None:
            for (method, prefix), handler in PREFIX_ROUTES.items():
                if request.method == method and request.path.startswith(prefix):
                    route = handler
                    break
        if route is None:
            return web.json_response({"error": "not_found"}, status=404)
        return await route(self, request, form, body)

    # ------------------------------------------------------------------ Claude and OpenAI

    async def claude_token(self, request: web.Request, form: dict[str, str], body: Any) -> web.StreamResponse:
        if not isinstance(body, dict) or body.get("grant_type") != "authorization_code" \
                or body.get("code") != self.code or not body.get("code_verifier"):
            return web.json_response({"error": "invalid_grant", "error_description": "bad code"}, status=400)
        return web.json_response({
            "access_token": "sk-ant-oat01-access", "refresh_token": "sk-ant-ort01-refresh", "token_type": "Bearer",
            "expires_in": self.claude_expires_in, "organization": {"uuid": "org-1", "name": "Org"},
            "account": {"uuid": "acct-1", "email_address": self.email}})

    async def openai_token(self, request: web.Request, form: dict[str, str], body: Any) -> web.StreamResponse:
        if form.get("grant_type") != "authorization_code" or form.get("code") != self.code \
                or not form.get("code_verifier"):
            return web.json_response({"error": "invalid_grant", "error_description": "bad code"}, status=400)
        claims = {"email": self.email, "https://api.openai.com/auth": {
            "chatgpt_account_id": self.codex_account, "chatgpt_plan_type": self.codex_plan}}
        return web.json_response({"access_token": "codex-access", "refresh_token": "codex-refresh",
                                  "id_token": jwt(claims), "token_type": "Bearer", "expires_in": 864000})

    # ------------------------------------------------------------------ Google

    async def google_token(self, request: web.Request, form: dict[str, str], body: Any) -> web.StreamResponse:
        if form.get("grant_type") != "authorization_code" or form.get("code") != self.code \
                or not form.get("client_secret"):
            return web.json_response({"error": "invalid_grant", "error_description": "Bad Request"}, status=400)
        return web.json_response({"access_token": "ya29.access", "refresh_token": "1//refresh",
                                  "token_type": "Bearer", "expires_in": 3599, "scope": "x"})

    async def google_userinfo(self, request: web.Request, form: dict[str, str], body: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Bearer ya29.access":
            return web.json_response({"error": {"code": 401, "message": "no"}}, status=401)
        return web.json_response({"id": "1", "email": self.email, "verified_email": True})

    async def load_code_assist(self, request: web.Request, form: dict[str, str], body: Any) -> web.StreamResponse:
        answer: dict[str, Any] = {"allowedTiers": [{"id": "free-tier", "isDefault": True}],
                                  "currentTier": {"id": "free-tier"}}
        if self.assigned_project:
            answer["cloudaicompanionProject"] = self.assigned_project
        return web.json_response(answer)

    async def onboard_user(self, request: web.Request, form: dict[str, str], body: Any) -> web.StreamResponse:
        if self.onboard_pending > 0:
            self.onboard_pending -= 1
            return web.json_response({"name": "operations/1", "done": False})
        requested = body.get("cloudaicompanionProject") if isinstance(body, dict) else None
        project = requested or self.onboard_project
        return web.json_response({"name": "operations/1", "done": True,
                                  "response": {"cloudaicompanionProject": {"id": project, "name": project}}})

    async def projects(self, request: web.Request, form: dict[str, str], body: Any) -> web.StreamResponse:
        return web.json_response({"projects": [{"projectId": p, "name": p} for p in self.google_projects]})

    async def service_usage(self, request: web.Request, form: dict[str, str], body: Any) -> web.StreamResponse:
        if request.method == "POST":
            return web.json_response({"name": "operations/enable", "done": True})
        return web.json_response({"state": "ENABLED" if self.api_enabled else "DISABLED"})

    # ------------------------------------------------------------------ iFlow

    async def iflow_token(self, request: web.Request, form: dict[str, str], body: Any) -> web.StreamResponse:
        expected = "Basic " + base64.b64encode(b"10009311001:4Z3YjXycVsQvyGF1etiNlIBB4RsqSDtW").decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("code") != self.code:
            return web.json_response({"error": "invalid_grant"}, status=400)
        return web.json_response({"access_token": "iflow-access", "refresh_token": "iflow-refresh",
                                  "expires_in": 7200, "token_type": "bearer", "scope": "read"})

    async def iflow_userinfo(self, request: web.Request, form: dict[str, str], body: Any) -> web.StreamResponse:
        if request.query.get("accessToken") != "iflow-access":
            return web.json_response({"success": False, "message": "bad token"})
        return web.json_response({"success": True, "data": {"apiKey": self.iflow_api_key, "email": self.email,
                                                            "phone": "13800000000"}})

    async def iflow_apikey(self, request: web.Request, form: dict[str, str], body: Any) -> web.StreamResponse:
        if "BXAuth=" not in request.headers.get("Cookie", ""):
            return web.json_response({"success": False, "message": "not logged in"})
        data = {"hasExpired": False, "expireTime": "2026-12-31 23:59", "name": self.email,
                "apiKeyMask": "sk-***"}
        if request.method == "POST":
            data["apiKey"] = self.iflow_api_key
        return web.json_response({"success": True, "code": "200", "message": "ok", "data": data})

    # ------------------------------------------------------------------ device flows

    async def qwen_device(self, request: web.Request, form: dict[str, str], body: Any) -> web.StreamResponse:
        if form.get("code_challenge_method") != "S256" or not form.get("code_challenge"):
            return web.json_response({"error": "invalid_request"}, status=400)
        self._polls["qwen"] = self.pending_polls
        self._qwen_challenge = form["code_challenge"]
        return web.json_response({"device_code": "qwen-device", "user_code": "ABCD-EFGH",
                                  "verification_uri": "https://chat.qwen.ai/authorize",
                                  "verification_uri_complete": "https://chat.qwen.ai/authorize?user_code=ABCD-EFGH",
                                  "expires_in": 600, "interval": 5})

    async def qwen_token(self, request: web.Request, form: dict[str, str], body: Any) -> web.StreamResponse:
        if form.get("device_code") != "qwen-device" or s256(form.get("code_verifier", "")) != self._qwen_challenge:
            return web.json_response({"error": "invalid_grant", "error_description": "bad device code"}, status=400)
        if self._polls.get("qwen", 0) > 0:
            self._polls["qwen"] -= 1
            return web.json_response({"error": "authorization_pending",
                                      "error_description": "The authorization request is still pending"}, status=400)
        return web.json_response({"access_token": "qwen-access", "refresh_token": "qwen-refresh",
                                  "token_type": "Bearer", "resource_url": "portal.qwen.ai",
                                  "expires_in": self.qwen_expires_in})

    async def kimi_device(self, request: web.Request, form: dict[str, str], body: Any) -> web.StreamResponse:
        if not request.headers.get("X-Msh-Device-Id"):
            return web.json_response({"error": "invalid_request"}, status=400)
        self._polls["kimi"] = self.pending_polls
        return web.json_response({"device_code": "kimi-device", "user_code": "KIMI-1234",
                                  "verification_uri": "https://www.kimi.com/code/authorize_device",
                                  "verification_uri_complete": "https://www.kimi.com/code/authorize_device?user_code=KIMI-1234",
                                  "expires_in": 600, "interval": self.kimi_interval})

    async def kimi_token(self, request: web.Request, form: dict[str, str], body: Any) -> web.StreamResponse:
        if form.get("device_code") != "kimi-device":
            return web.json_response({"error": "invalid_grant", "error_description": "bad device code"})
        if self._polls.get("kimi", 0) > 0:
            self._polls["kimi"] -= 1
            return web.json_response({"error": "authorization_pending", "error_description": "pending"})
        return web.json_response({"access_token": "kimi-access", "refresh_token": "kimi-refresh",
                                  "token_type": "Bearer", "expires_in": 3600, "scope": "kimi-code"})

    _qwen_challenge: str = ""


ROUTES = {
    ("POST", "/claude/v1/oauth/token"): FakeOAuthServer.claude_token,
    ("POST", "/openai/oauth/token"): FakeOAuthServer.openai_token,
    ("POST", "/google/token"): FakeOAuthServer.google_token,
    ("GET", "/google/userinfo"): FakeOAuthServer.google_userinfo,
    ("POST", "/cloudcode/v1internal:loadCodeAssist"): FakeOAuthServer.load_code_assist,
    ("POST", "/cloudcode/v1internal:onboardUser"): FakeOAuthServer.onboard_user,
    ("GET", "/crm/v1/projects"): FakeOAuthServer.projects,
    ("POST", "/iflow/oauth/token"): FakeOAuthServer.iflow_token,
    ("GET", "/iflow/api/oauth/getUserInfo"): FakeOAuthServer.iflow_userinfo,
    ("GET", "/iflow/api/openapi/apikey"): FakeOAuthServer.iflow_apikey,
    ("POST", "/iflow/api/openapi/apikey"): FakeOAuthServer.iflow_apikey,
    ("POST", "/qwen/device/code"): FakeOAuthServer.qwen_device,
    ("POST", "/qwen/token"): FakeOAuthServer.qwen_token,
    ("POST", "/kimi/device_authorization"): FakeOAuthServer.kimi_device,
    ("POST", "/kimi/token"): FakeOAuthServer.kimi_token,
}
PREFIX_ROUTES = {
    ("GET", "/su/v1/projects/"): FakeOAuthServer.service_usage,
    ("POST", "/su/v1/projects/"): FakeOAuthServer.service_usage,
}
