"""Plays a scenario's client steps and records what the client observed, in the golden's ObsBody form (§2)."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp

CLIENT_KEY = "e2e-client-key"
MGMT_KEY = "e2e-mgmt-secret"
KEPT_HEADERS = frozenset(
    {
        "content-type",
        "cache-control",
        "retry-after",
        "www-authenticate",
        "location",
        "content-disposition",
        "x-cpa-safe-mode",
        "x-codex-turn-state",
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-expose-headers",
        "x-accel-buffering",
        "connection",
        "x-content-type-options",
        "x-cpa-trace-id",
        "upgrade",
    }
)
_AUTH_RE = re.compile(r'^(\w+)\("(.*)"\)$', re.S)
TERMINAL_FRAMES = frozenset({"response.completed", "response.done", "response.failed", "response.incomplete", "error"})


def auth_headers(auth: str) -> list[tuple[str, str]]:
    """The header a golden ``auth`` mode stands for."""
    if auth == "Client":
        return [("Authorization", f"Bearer {CLIENT_KEY}")]
    if auth == "Mgmt":
        return [("Authorization", f"Bearer {MGMT_KEY}")]
    if auth == "None":
        return []
    m = _AUTH_RE.match(auth)
    if m is None:
        raise ValueError(f"unknown auth mode {auth!r}")
    kind, value = m.group(1), json.loads(f'"{m.group(2)}"')
    return {
        "Bearer": [("Authorization", f"Bearer {value}")],
        "RawAuthorization": [("Authorization", value)],
        "XApiKey": [("x-api-key", value)],
        "GoogKey": [("x-goog-api-key", value)],
    }[kind]


def kept_headers(headers: aiohttp.typedefs.LooseHeaders) -> dict[str, str]:
    """Response headers the recorder keeps (lower-cased; repeated ones joined with ``, ``)."""
    out: dict[str, str] = {}
    for name, value in headers.items():  # type: ignore[union-attr]
        key = name.lower()
        if key in KEPT_HEADERS or key.startswith("x-e2e-"):
            out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def parse_sse(text: str, *, broken: bool) -> list[dict[str, Any]]:
    """Parse an SSE body into the recorder's event list (comments, residue and breaks included)."""
    text = text.replace("\r\n", "\n")
    events: list[dict[str, Any]] = []
    pos = 0
    while True:
        end = text.find("\n\n", pos)
        if end == -1:
            residue = text[pos:]
            break
        _parse_block(text[pos:end], events, unterminated=False)
        pos = end + 2
    if residue:
        if residue.strip():
            _parse_block(residue, events, unterminated=True)
        else:
            events.append({"trailing_whitespace": residue})
    if broken:
        events.append({"transport_error": True})
    return events


def _parse_block(block: str, events: list[dict[str, Any]], *, unterminated: bool) -> None:
    event: dict[str, Any] = {}
    data: list[str] = []
    for line in block.split("\n"):
        if not line:
            continue
        if line.startswith(":"):
            comment = line[1:]
            events.append({"comment": comment[1:] if comment.startswith(" ") else comment})
            continue
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        else:
            event[name] = value
    if data:
        joined = "\n".join(data)
        try:
            event["data"] = json.loads(joined)
        except ValueError:
            event["data"] = joined
    if not event:
        return
    if unterminated:
        event["unterminated"] = True
    events.append(event)


def observe_body(content_type: str, raw: bytes, *, broken: bool) -> dict[str, Any]:
    """The ObsBody of a response body."""
    text = raw.decode("utf-8", "replace")
    if "text/event-stream" in content_type:
        return {"type": "sse", "events": parse_sse(text, broken=broken)}
    if not raw and not broken:
        return {"type": "empty"}
    if not broken:
        stripped = text.lstrip("\n")
        try:
            value = json.loads(stripped)
        except ValueError:
            pass
        else:
            body: dict[str, Any] = {"type": "json", "value": value}
            lead = len(text) - len(stripped)
            if lead:
                body["lead_newlines"] = lead
            return body
    return {"type": "text", "value": text + ("<transport error>" if broken else "")}


async def play_http(session: aiohttp.ClientSession, base: str, request: dict[str, Any], work: str) -> dict[str, Any]:
    """Send one HTTP step and return the observed ``{status, headers, body}``."""
    headers: dict[str, str] = {"User-Agent": "cpa-e2e/1"}
    body = request.get("body")
    data: bytes | None = None
    if body is not None:
        text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        data = text.replace("{{AUTH_DIR}}", f"{work}/auth").encode()
        headers["Content-Type"] = "application/json"
    for name, value in auth_headers(request.get("auth", "None")):
        headers[name] = value
    for name, value in request.get("headers") or []:
        for existing in [k for k in headers if k.lower() == name.lower()]:
            del headers[existing]
        headers[name] = value
    try:
        async with session.request(
            request["method"],
            base + request["path"],
            headers=headers,
            data=data,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=30),
        ) as resp:
            chunks: list[bytes] = []
            broken = False
            try:
                async for chunk in resp.content.iter_any():
                    chunks.append(chunk)
            except (TimeoutError, aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
                broken = True
            return {
                "status": resp.status,
                "headers": kept_headers(resp.headers),
                "body": observe_body(resp.headers.get("Content-Type", ""), b"".join(chunks), broken=broken),
            }
    except TimeoutError:
        return {"status": 0, "headers": {}, "body": {"type": "text", "value": "<client error: timeout>"}}
    except aiohttp.ClientConnectionError:
        return {"status": 0, "headers": {}, "body": {"type": "text", "value": "<client error: connection>"}}


async def play_ws(session: aiohttp.ClientSession, base: str, request: dict[str, Any]) -> dict[str, Any]:
    """Play one WebSocket step: connect, send each frame, read until a terminal frame, close or 10 s."""
    headers = {"User-Agent": "cpa-e2e/1"}
    headers.update(dict(auth_headers(request.get("auth", "None"))))
    for name, value in request.get("headers") or []:
        headers[name] = value
    url = "ws" + base[len("http") :] + request["path"]
    try:
        ws = await session.ws_connect(
            url, headers=headers, autoclose=False, timeout=aiohttp.ClientWSTimeout(ws_close=2)
        )
    except aiohttp.WSServerHandshakeError as exc:
        return {"status": exc.status, "headers": kept_headers(exc.headers or {}), "body": {"type": "empty"}}
    frames: list[Any] = []
    close: str | None = None
    async with ws:
        for message in request.get("messages") or []:
            await ws.send_str(json.dumps(message, separators=(",", ":")))
            while True:
                try:
                    msg = await ws.receive(timeout=10)
                except TimeoutError:
                    frames.append({"timeout": True})
                    break
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        frame = json.loads(msg.data)
                    except ValueError:
                        frame = msg.data
                    frames.append(frame)
                    if isinstance(frame, dict) and frame.get("type") in TERMINAL_FRAMES:
                        break
                    continue
                closed = msg.type == aiohttp.WSMsgType.CLOSE
                close = f"{msg.data} {msg.extra or ''}".strip() if closed else "abnormal"
                break
            if close is not None:
                break
    return {"status": 101, "headers": {}, "body": {"type": "ws", "frames": frames, "close": close}}
