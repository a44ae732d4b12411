"""Device-code logins: Qwen (PKCE, 400 `authorization_pending`) and Kimi (RFC 8628, 200 with `error`).

routing.md §3.5. A device login starts with one request (its verification URL is the auth-url answer) and
then polls the token endpoint in the background; the result is saved like any other login's token file.
"""

from __future__ import annotations

import asyncio
import platform
import socket
import time
import uuid
from typing import Any

import attrs

from proxyd.oauth.flow import FlowContext, FlowError, TokenFile, now_rfc3339, rfc3339_at
from proxyd.oauth.http import OAuthHTTPError
from proxyd.oauth.pkce import PKCE, nanos_state

__all__ = ["FAILED", "KimiLogin", "QwenLogin"]

FAILED = "Authentication failed"
QWEN_SCOPE = "openid profile email model.completion"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def _seconds(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


@attrs.define(repr=False)
class QwenLogin:
    """A Qwen device login; `start` asks for the device code, `poll` waits for the user."""

    provider: str = "qwen"
    state: str = attrs.field(factory=lambda: nanos_state("gem"))  # sic: the reference uses `gem-` here
    pkce: PKCE = attrs.field(factory=lambda: PKCE.generate(32))
    url: str = ""
    device_code: str = ""

    async def start(self, ctx: FlowContext) -> None:
        ep = ctx.endpoints
        form = {"client_id": ep.qwen_client_id, "scope": QWEN_SCOPE, "code_challenge": self.pkce.challenge,
                "code_challenge_method": "S256"}
        answer = await ctx.client.json("POST", ep.qwen_device, what="qwen device authorization", form=form)
        self.device_code = str(answer.get("device_code") or "")
        if not self.device_code:
            raise OAuthHTTPError("qwen device authorization", message="device_code not found in response")
        self.url = str(answer.get("verification_uri_complete") or answer.get("verification_uri") or "")

    async def poll(self, ctx: FlowContext) -> TokenFile:
        ep = ctx.endpoints
        interval = ep.qwen_poll
        form = {"grant_type": DEVICE_GRANT, "client_id": ep.qwen_client_id, "device_code": self.device_code,
                "code_verifier": self.pkce.verifier}
        for _ in range(ep.qwen_max_attempts):
            try:  # the reference polls with Go's default client: no proxy
                reply = await ctx.client.request("POST", ep.qwen_token, what="qwen token", form=form,
                                                 use_proxy=False)
            except OAuthHTTPError:
                await asyncio.sleep(interval)
                continue
            if reply.status == 200:
                answer = reply.json()
                if not isinstance(answer, dict) or not answer.get("access_token"):
                    raise FlowError(FAILED, "qwen token: no access_token")
                return self._file(answer)
            code = reply.error_code()
            if reply.status == 400 and code == "authorization_pending":
                await asyncio.sleep(interval)
                continue
            if reply.status == 400 and code == "slow_down":
                interval = min(interval * 1.5, ep.qwen_poll_max)
                await asyncio.sleep(interval)
                continue
            raise FlowError(FAILED, f"qwen token: status {reply.status} ({code})")
        raise FlowError(FAILED, "qwen token: authentication timeout")

    def _file(self, answer: dict[str, Any]) -> TokenFile:
        now = time.time()
        alias = str(int(now * 1000))  # the management flow has no e-mail: a millisecond timestamp
        data = {
            "access_token": str(answer.get("access_token") or ""),
            "refresh_token": str(answer.get("refresh_token") or ""),
            "last_refresh": now_rfc3339(),
            "resource_url": str(answer.get("resource_url") or ""),
            "email": alias,
            "type": "qwen",
            "expired": rfc3339_at(now + _seconds(answer.get("expires_in"))),
        }
        return TokenFile(name=f"qwen-{alias}.json", data=data, email=alias)


def _device_model() -> str:
    system = platform.system()
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    name = {"Darwin": "macOS", "Windows": "Windows", "Linux": "Linux"}.get(system, system.lower())
    return f"{name} {arch}"


@attrs.define(repr=False)
class KimiLogin:
    """A Kimi device login (one random device id per login, sent as `X-Msh-Device-Id` and saved)."""

    provider: str = "kimi"
    state: str = attrs.field(factory=lambda: nanos_state("kmi"))
    device_id: str = attrs.field(factory=lambda: str(uuid.uuid4()))
    url: str = ""
    device_code: str = ""
    interval: float = 0.0
    expires_in: float = 0.0

    def headers(self) -> dict[str, str]:
        return {"X-Msh-Platform": "cli-proxy-api", "X-Msh-Version": "1.0.0",
                "X-Msh-Device-Name": socket.gethostname() or "unknown", "X-Msh-Device-Model": _device_model(),
                "X-Msh-Device-Id": self.device_id}

    async def start(self, ctx: FlowContext) -> None:
        ep = ctx.endpoints
        answer = await ctx.client.json("POST", ep.kimi_device, what="kimi device authorization",
                                       form={"client_id": ep.kimi_client_id}, headers=self.headers())
        self.device_code = str(answer.get("device_code") or "")
        self.url = str(answer.get("verification_uri_complete") or answer.get("verification_uri") or "")
        self.interval = _seconds(answer.get("interval"))
        self.expires_in = _seconds(answer.get("expires_in"))

    async def poll(self, ctx: FlowContext) -> TokenFile:
        ep = ctx.endpoints
        interval = max(self.interval, ep.kimi_min_interval)
        budget = min(ep.kimi_max_duration, self.expires_in) if self.expires_in > 0 else ep.kimi_max_duration
        deadline = time.monotonic() + budget
        form = {"client_id": ep.kimi_client_id, "device_code": self.device_code, "grant_type": DEVICE_GRANT}
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() > deadline:
                raise FlowError(FAILED, "kimi: device code expired")
            try:
                reply = await ctx.client.request("POST", ep.kimi_token, what="kimi token", form=form,
                                                 headers=self.headers())
            except OAuthHTTPError as exc:
                raise FlowError(FAILED, str(exc)) from None
            answer = reply.json()
            if not isinstance(answer, dict):
                raise FlowError(FAILED, f"kimi token: status {reply.status}, not JSON")
            error = answer.get("error")
            if isinstance(error, str) and error:
                if error in ("authorization_pending", "slow_down"):
                    continue
                raise FlowError(FAILED, f"kimi token: {error}")
            if not answer.get("access_token"):
                raise FlowError(FAILED, "kimi token: empty access token")
            return self._file(answer)

    def _file(self, answer: dict[str, Any]) -> TokenFile:
        now = time.time()
        data: dict[str, Any] = {
            "type": "kimi",
            "access_token": str(answer.get("access_token") or ""),
            "refresh_token": str(answer.get("refresh_token") or ""),
            "token_type": str(answer.get("token_type") or ""),
            "scope": str(answer.get("scope") or ""),
            "timestamp": int(now * 1000),
        }
        expires_in = _seconds(answer.get("expires_in"))
        if expires_in > 0:
            data["expired"] = rfc3339_at(int(now) + int(expires_in))
        if self.device_id:
            data["device_id"] = self.device_id
        return TokenFile(name=f"kimi-{int(now * 1000)}.json", data=data)
