"""Plays a scenario's client steps and records what the client observed, in the golden's ObsBody form (§2)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
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
        # management answers of the newer recordings (FORMAT.md §2)
        "x-cpa-version",
        "x-cpa-commit",
        "x-cpa-build-date",
        "x-cpa-support-plugin",
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


MODEL_LIST_PATHS = {"/v1/models": ("data", "id"), "/v1beta/models": ("models", "name")}


def sort_model_list(request: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """FORMAT.md §2: the recorder sorts GET /v1/models `data` by id and /v1beta/models `models` by name."""
    key = MODEL_LIST_PATHS.get(str(request.get("path", "")).split("?", 1)[0])
    value = body.get("value")
    if request.get("method") == "GET" and key and isinstance(value, dict) and isinstance(value.get(key[0]), list):
        value[key[0]] = sorted(value[key[0]], key=lambda m: str(m.get(key[1], "")) if isinstance(m, dict) else "")
    return body


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
                "body": sort_model_list(request, observe_body(resp.headers.get("Content-Type", ""),
                                                              b"".join(chunks), broken=broken)),
            }
    except TimeoutError:
        return {"status": 0, "headers": {}, "body": {"type": "text", "value": "<client error: timeout>"}}
    except aiohttp.ClientConnectionError:
        return {"status": 0, "headers": {}, "body": {"type": "text", "value": "<client error: connection>"}}


WS_READ_SECONDS = 10.0
WS_TRAILING_SECONDS = 0.25  # after a terminal frame the recorder keeps listening briefly for more frames or a close
_REFUSED: contextvars.ContextVar[dict[str, bytes]] = contextvars.ContextVar("refused_upgrade_body")


class _UpgradeResponse(aiohttp.ClientResponse):
    """Keeps the body of a refused upgrade (aiohttp's handshake error carries only status and headers)."""

    async def start(self, connection: Any) -> aiohttp.ClientResponse:
        resp = await super().start(connection)
        if self.status != 101:
            holder = _REFUSED.get(None)
            body = await self.read()
            if holder is not None:
                holder["body"] = body
        return resp


def _refused_body(raw: bytes) -> dict[str, Any]:
    """A refused upgrade's body as the recorder saw it: JSON, empty or text."""
    text = raw.decode("utf-8", "replace")
    try:
        return {"type": "json", "value": json.loads(text)}
    except ValueError:
        return {"type": "empty"} if not text else {"type": "text", "value": text}


def _ws_headers(request: dict[str, Any]) -> dict[str, str]:
    headers = {"User-Agent": "cpa-e2e/1"}
    for name, value in [*auth_headers(request.get("auth", "None")), *(request.get("headers") or [])]:
        for existing in [k for k in headers if k.lower() == name.lower()]:
            del headers[existing]
        headers[name] = value
    return headers


def _close_text(msg: aiohttp.WSMessage) -> str:
    """How the socket ended: ``<code> <reason>`` for a close frame, ``no-frame`` for an empty one, ``abnormal`` for
    a connection that went away without a close frame (or broke)."""
    if msg.type == aiohttp.WSMsgType.CLOSE:
        code = msg.data
        if not code or code == aiohttp.WSCloseCode.NO_STATUS_RECEIVED:
            return "no-frame"
        return f"{int(code)} {msg.extra or ''}"
    return "abnormal"


async def _close_without_code(ws: aiohttp.ClientWebSocketResponse) -> None:
    """End an open socket as the recorder's client did: a close frame without a status code (the reference's
    request logs read ``websocket: close 1005 (no status)``), then wait briefly for the server's close."""
    with contextlib.suppress(Exception):
        await ws._writer.send_frame(b"", aiohttp.WSMsgType.CLOSE)  # aiohttp's close() always sends a code
        async with asyncio.timeout(2):
            while (await ws.receive()).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                                     aiohttp.WSMsgType.ERROR):
                pass


async def play_ws(session: aiohttp.ClientSession, base: str, request: dict[str, Any]) -> dict[str, Any]:
    """Play one WebSocket step as the recorder did (FORMAT.md §2): connect (a refused upgrade reports its HTTP
    status, kept headers and body), send each frame and read until a terminal frame — then 250 ms more for
    trailing frames or a close —, a close, or 10 s; the 101's kept headers are recorded."""
    url = "ws" + base[len("http") :] + request["path"]
    holder: dict[str, bytes] = {}
    token = _REFUSED.set(holder)
    # the recorder's websocket client sent neither Accept nor Accept-Encoding (its request logs show none)
    ws_session = aiohttp.ClientSession(response_class=_UpgradeResponse,
                                       skip_auto_headers=("Accept", "Accept-Encoding"))
    try:
        try:
            ws = await ws_session.ws_connect(
                url, headers=_ws_headers(request), autoclose=False, autoping=True,
                timeout=aiohttp.ClientWSTimeout(ws_close=2),
            )
        except aiohttp.WSServerHandshakeError as exc:
            return {"status": exc.status, "headers": kept_headers(exc.headers or {}),
                    "body": _refused_body(holder.get("body", b""))}
        headers = kept_headers(ws._response.headers) if ws._response is not None else {}
        frames: list[Any] = []
        close: str | None = None
        async with ws:
            for message in request.get("messages") or []:
                await ws.send_str(json.dumps(message, separators=(",", ":"), ensure_ascii=False))
                terminal = False
                while True:
                    try:
                        msg = await ws.receive(timeout=WS_TRAILING_SECONDS if terminal else WS_READ_SECONDS)
                    except TimeoutError:
                        if not terminal:
                            frames.append({"timeout": True})
                            close = close or ""
                        break
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        try:
                            frame = json.loads(msg.data)
                        except ValueError:
                            frame = msg.data
                        frames.append(frame)
                        terminal = terminal or (isinstance(frame, dict) and frame.get("type") in TERMINAL_FRAMES)
                        continue
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        frames.append({"binary": bytes(msg.data).hex()})
                        continue
                    if msg.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                        continue
                    close = _close_text(msg)
                    break
                if close is not None:
                    break
            if close is None:
                await _close_without_code(ws)
        return {"status": 101, "headers": headers,
                "body": {"type": "ws", "frames": frames, "close": close or None}}
    finally:
        _REFUSED.reset(token)
        await ws_session.close()
