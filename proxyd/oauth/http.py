"""The small HTTP client the login flows use: form/JSON requests, JSON answers, timeouts, the global proxy.

Answers are never logged (they carry tokens); errors keep the status and the upstream's `error` code only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
import attrs

from proxyd.providers import base as provider_base

__all__ = ["HttpReply", "OAuthClient", "OAuthHTTPError"]

MAX_ANSWER = 1024 * 1024


class OAuthHTTPError(Exception):
    """An upstream OAuth/token/userinfo call failed (transport error, non-2xx status, or not JSON)."""

    def __init__(self, what: str, status: int = 0, code: str = "", message: str = "") -> None:
        self.what, self.status, self.code, self.message = what, status, code, message
        if status:
            text = f"{what}: status {status}" + (f" ({code})" if code else "")
        else:
            text = f"{what}: {message}" if message else what
        super().__init__(text)


@attrs.frozen
class HttpReply:
    status: int
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def error_code(self) -> str:
        data = self.json()
        if isinstance(data, dict):
            err = data.get("error")
            if isinstance(err, str):
                return err[:64]
            if isinstance(err, dict):
                return str(err.get("status") or err.get("code") or "")[:64]
        return ""

    def error_message(self) -> str:
        data = self.json()
        if isinstance(data, dict):
            err = data.get("error")
            if isinstance(err, dict) and isinstance(err.get("message"), str):
                return str(err["message"])
            if isinstance(data.get("error_description"), str):
                return str(data["error_description"])
        return self.body[:300].decode("utf-8", "replace")


class OAuthClient:
    """Requests through the app's pooled session (or its SOCKS5 sibling), with a per-call timeout."""

    def __init__(self, session: aiohttp.ClientSession, proxy_url: str = "", timeout: float = 30.0) -> None:
        self._session = session
        self._proxy_url = proxy_url.strip()
        self.timeout = timeout

    def _route(self, use_proxy: bool) -> tuple[aiohttp.ClientSession, str | None]:
        proxy = self._proxy_url if use_proxy else ""
        if not proxy or proxy.lower() in ("direct", "none"):
            return self._session, None
        if provider_base.is_socks(proxy):
            return provider_base._socks_session(self._session, proxy), None
        return self._session, proxy

    async def request(self, method: str, url: str, *, what: str, form: Mapping[str, str] | None = None,
                      json_body: Any = None, headers: Mapping[str, str] | None = None,
                      use_proxy: bool = True) -> HttpReply:
        """One call; a transport failure raises OAuthHTTPError(status=0). Any status is returned."""
        session, proxy = self._route(use_proxy)
        hdrs = {"Accept": "application/json", **(headers or {})}
        data: bytes | None = None
        if form is not None:
            data = urlencode(dict(form)).encode()
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif json_body is not None:
            data = json.dumps(json_body, separators=(",", ":")).encode()
            hdrs.setdefault("Content-Type", "application/json")
        try:
            async with session.request(method, url, data=data, headers=hdrs, proxy=proxy, allow_redirects=False,
                                       timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                body = await provider_base.read_capped(resp, MAX_ANSWER, truncate=True)
                return HttpReply(resp.status, body)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise OAuthHTTPError(what, message=f"request failed ({type(exc).__name__})") from None

    async def json(self, method: str, url: str, *, what: str, ok: tuple[int, ...] = (200,),
                   **kwargs: Any) -> dict[str, Any]:
        """A call whose answer must have a status in `ok` and be a JSON object."""
        reply = await self.request(method, url, what=what, **kwargs)
        if reply.status not in ok:
            raise OAuthHTTPError(what, reply.status, reply.error_code(), reply.error_message())
        data = reply.json()
        if not isinstance(data, dict):
            raise OAuthHTTPError(what, reply.status, "invalid_json")
        return data
