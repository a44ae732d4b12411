"""iFlow logins (routing.md §3.5): OAuth code flow (`iflow-<email>.json`) and the browser-cookie login."""

from __future__ import annotations

import base64
import json
import os
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import attrs

from proxyd.oauth.endpoints import OAuthEndpoints
from proxyd.oauth.flow import (
    FlowContext,
    FlowError,
    Messages,
    TokenFile,
    expires_seconds,
    file_safe,
    now_rfc3339,
    rfc3339_at,
)
from proxyd.oauth.http import OAuthHTTPError
from proxyd.oauth.pkce import nanos_state

__all__ = ["CookieError", "IFlowLogin", "cookie_login", "duplicate_bxauth", "extract_bxauth", "normalize_cookie",
           "sanitize_name"]

MESSAGES = Messages(
    timeout="Authentication failed", callback_error="Authentication failed", state_mismatch="Authentication failed",
    no_code="Authentication failed", exchange="Authentication failed",
)
BROWSER_HEADERS = {
    "Accept": "application/json, text/plain, */*",
    "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/91.0.4472.124 Safari/537.36",
    "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8",
    "Sec-Fetch-Dest": "empty",
    "Sec-Fetch-Mode": "cors",
    "Sec-Fetch-Site": "same-origin",
}


def _basic(ep: OAuthEndpoints) -> str:
    return "Basic " + base64.b64encode(f"{ep.iflow_client_id}:{ep.iflow_client_secret}".encode()).decode()


@attrs.define(repr=False)
class IFlowLogin:
    """A started iFlow OAuth login."""

    endpoints: OAuthEndpoints
    state: str = attrs.field(factory=lambda: nanos_state("ifl"))
    provider: str = "iflow"
    callback_path: str = "iflow"
    messages: Messages = MESSAGES

    @property
    def url(self) -> str:
        ep = self.endpoints
        query = {"client_id": ep.iflow_client_id, "loginMethod": "phone", "redirect": ep.redirect_for("iflow"),
                 "state": self.state, "type": "phone"}
        return f"{ep.iflow_authorize}?{urlencode(query)}"

    async def finish(self, ctx: FlowContext, code: str) -> TokenFile:
        ep = ctx.endpoints
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": ep.redirect_for("iflow"),
                "client_id": ep.iflow_client_id, "client_secret": ep.iflow_client_secret}
        issued = time.time()
        try:
            answer = await ctx.client.json("POST", ep.iflow_token, what="iflow token", form=form,
                                           headers={"Authorization": _basic(ep)})
            access = str(answer.get("access_token") or "")
            if not access:
                raise OAuthHTTPError("iflow token", message="missing access token in response")
            info = await ctx.client.json("GET", f"{ep.iflow_userinfo}?{urlencode({'accessToken': access})}",
                                         what="iflow user info")
        except OAuthHTTPError as exc:
            raise FlowError(self.messages.exchange, str(exc)) from None
        user = info.get("data") if isinstance(info.get("data"), dict) else {}
        api_key = str(user.get("apiKey") or "").strip()
        if info.get("success") is not True or not api_key:
            raise FlowError(self.messages.exchange, "iflow user info: no api key")
        email = str(user.get("email") or "").strip() or str(user.get("phone") or "").strip()
        if not email:
            raise FlowError(self.messages.exchange, "iflow user info: no email or phone")
        seconds = expires_seconds(answer.get("expires_in"))
        data = {
            "access_token": access,
            "refresh_token": str(answer.get("refresh_token") or ""),
            "last_refresh": now_rfc3339(),
            "expired": rfc3339_at(issued + seconds),
            "api_key": api_key,
            "email": email,
            "token_type": str(answer.get("token_type") or ""),
            "scope": str(answer.get("scope") or ""),
            "cookie": "",
            "type": "iflow",
        }
        return TokenFile(name=f"iflow-{file_safe(email)}.json", data=data, email=email)


# ------------------------------------------------------------------------------------------- cookie login


class CookieError(Exception):
    """The cookie login failed; the message is the answer's `error`."""


def normalize_cookie(raw: str) -> str:
    """Whitespace collapsed, a trailing `;`, and a `BXAuth=` field required."""
    combined = " ".join(raw.split())
    if not combined:
        raise CookieError("cookie cannot be empty")
    if not combined.endswith(";"):
        combined += ";"
    if "BXAuth=" not in combined:
        raise CookieError("cookie missing BXAuth field")
    return combined


def extract_bxauth(cookie: str) -> str:
    for part in cookie.split(";"):
        part = part.strip()
        if part.startswith("BXAuth="):
            return part[len("BXAuth="):]
    return ""


def sanitize_name(raw: str) -> str:
    """Keep `[A-Za-z0-9_@.-]` (`*` becomes `x`), as the reference names cookie-login files."""
    return re.sub(r"[^A-Za-z0-9_@.\-]", "", raw.replace("*", "x")).strip()


def duplicate_bxauth(auth_dir: Path, bxauth: str) -> str:
    """The name of an `iflow-*.json` already holding this BXAuth ("" when none; blocking)."""
    if not bxauth:
        return ""
    try:
        names = sorted(os.listdir(auth_dir))
    except FileNotFoundError:
        return ""
    for name in names:
        if not (name.startswith("iflow-") and name.endswith(".json")):
            continue
        path = Path(auth_dir) / name
        try:
            data: Any = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("cookie"), str) and extract_bxauth(data["cookie"]) == bxauth:
            return name
    return ""


async def cookie_login(ctx: FlowContext, cookie: str) -> TokenFile:
    """GET the platform's API key info with the cookie, then POST its name to refresh the key."""
    ep = ctx.endpoints
    headers = {**BROWSER_HEADERS, "Cookie": cookie}
    try:
        info = await ctx.client.json("GET", ep.iflow_apikey, what="iflow cookie: GET request", headers=headers)
    except OAuthHTTPError as exc:
        raise CookieError(f"iflow cookie authentication: fetch initial API key info failed: {exc}") from None
    if info.get("success") is not True:
        raise CookieError("iflow cookie authentication: fetch initial API key info failed: "
                          f"GET request not successful: {info.get('message') or ''}")
    name = str((info.get("data") or {}).get("name") or "") if isinstance(info.get("data"), dict) else ""
    if not name.strip():
        raise CookieError("iflow cookie authentication: refresh API key failed: name is empty")
    post_headers = {**headers, "Content-Type": "application/json", "Origin": "https://platform.iflow.cn",
                    "Referer": "https://platform.iflow.cn/"}
    try:
        refreshed = await ctx.client.json("POST", ep.iflow_apikey, what="iflow cookie refresh: POST request",
                                          json_body={"name": name}, headers=post_headers)
    except OAuthHTTPError as exc:
        raise CookieError(f"iflow cookie authentication: refresh API key failed: {exc}") from None
    if refreshed.get("success") is not True:
        raise CookieError("iflow cookie authentication: refresh API key failed: "
                          f"POST request not successful: {refreshed.get('message') or ''}")
    key = refreshed.get("data") if isinstance(refreshed.get("data"), dict) else {}
    email = str(key.get("name") or "").strip()
    if not email:
        raise CookieError("failed to extract email from token")
    bx = extract_bxauth(cookie)
    data = {
        "access_token": "",
        "refresh_token": "",
        "last_refresh": now_rfc3339(),
        "expired": str(key.get("expireTime") or ""),
        "api_key": str(key.get("apiKey") or ""),
        "email": email,
        "token_type": "",
        "scope": "",
        "cookie": f"BXAuth={bx};" if bx else "",
        "type": "iflow",
    }
    base = sanitize_name(email)
    stem = f"iflow-{base}" if base else f"iflow-{int(time.time() * 1000)}"
    return TokenFile(name=f"{stem}-{int(time.time())}.json", data=data, email=email)
