"""The Codex prompt-cache / session identity of a client request (the recorded reference build's derivation).

Codex upstream calls carry one id twice: body `prompt_cache_key` and header `Session-Id`. The client's own
`prompt_cache_key` wins. Otherwise, unless the client named a session itself (a session header, `session_id`,
`conversation_id`, Claude `metadata.user_id`…), the id is derived from the conversation's *root*: the
client protocol, a hash of the client key, the leading instructions (each cut to 50 characters) and the parts
of the first user message. The root is serialised as compact JSON, hashed (SHA-256, `ctx:v1:<hex>`), and
scoped to the provider with a UUIDv5 in the OID namespace. The same conversation therefore keeps its id across
turns and requests, and two client keys never share one. Chat clients without a derivable root fall back to a
UUIDv5 of the client key alone. A spawned Codex sub-agent (`X-Openai-Subagent: collab_spawn`) derives nothing;
on a Responses WebSocket it is keyed by the connection's own id.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from proxyd.protocols.base import WireProtocol
from proxyd.providers.codex_collab import is_collab_spawn

_ROOT_VERSION = "cpa-session-root-v1"
_INSTRUCTION_LIMIT = 50
_MAX_EXPLICIT = 256
# Client headers and body fields by which a client names its session itself (then nothing is derived).
_SESSION_HEADERS = ("X-Claude-Code-Session-Id", "X-Session-ID", "Session-Id", "Session_id", "X-Opencode-Session",
                    "X-Session-Affinity", "X-Client-Request-Id")
_SESSION_FIELDS = ("session_id", "sessionId", "conversation_id", "prompt_cache_key")
# The reference's source-format names (they are part of the hashed root).
_FORMAT_NAMES = {
    WireProtocol.OPENAI_RESPONSES: "openai-response",
    WireProtocol.OPENAI_CHAT: "openai",
    WireProtocol.OPENAI_COMPLETIONS: "openai",
    WireProtocol.CLAUDE: "claude",
    WireProtocol.GEMINI: "gemini",
}


@attrs.frozen
class ClientOrigin:
    """What the Codex provider needs to know about the client side: its protocol, raw body and API key, and
    (for Codex clients' collaboration tools, codex_collab.py) the list of models proxyd offers as overrides."""

    protocol: WireProtocol
    body: Mapping[str, Any]
    client_key: str | None = None
    model_overrides: Callable[[], str] | None = None
    connection_session: str | None = None
    """the client connection's own session id (a Responses WebSocket): used when nothing is derived."""


def _explicit(value: Any) -> str:
    """A client-given id as the reference accepts it: printable, trimmed, at most 256 bytes; else ''."""
    if not isinstance(value, str) or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
        return ""
    value = value.strip()
    return value if value and len(value.encode()) <= _MAX_EXPLICIT else ""


def names_own_session(headers: Mapping[str, str], body: Mapping[str, Any]) -> bool:
    """True when the client identified its session itself (header or body field)."""
    if any(_explicit(headers.get(name)) for name in _SESSION_HEADERS):
        return True
    if any(_explicit(body.get(name)) for name in _SESSION_FIELDS):
        return True
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping) and _explicit(metadata.get("user_id")):
        return True
    conversation = body.get("conversation")
    if isinstance(conversation, Mapping):
        return bool(_explicit(conversation.get("id")))
    return bool(_explicit(conversation))


# ------------------------------------------------------------------------------------------------ the root

def _go_json(value: Any) -> str:
    """Compact JSON as Go's encoding/json writes it (HTML characters escaped, map keys sorted)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _without_cache_control(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_cache_control(v) for k, v in sorted(value.items())
                if k.strip().lower() != "cache_control"}
    if isinstance(value, list):
        return [_without_cache_control(v) for v in value]
    return value


def _first(obj: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in obj:
            return obj[name]
    return None


def _media(out: list[dict[str, str]], kind: str, value: Any, mime: str = "") -> None:
    kind = kind.strip() or "media"
    if isinstance(value, str):
        if value:
            out.append(_part(kind, value, mime))
    elif isinstance(value, Mapping):
        found_mime = _first_str(value, "mimeType", "mime_type", "media_type") or mime
        data = _first_str(value, "url", "uri", "fileUri", "file_uri", "data")
        if data:
            out.append(_part(kind, data, found_mime))
    else:
        _parts_into(out, value)


def _first_str(obj: Mapping[str, Any], *names: str) -> str:
    for name in names:
        value = obj.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _part(kind: str, value: str, mime: str = "") -> dict[str, str]:
    return {"kind": kind, "mime": mime, "value": value} if mime else {"kind": kind, "value": value}


def _parts_into(out: list[dict[str, str]], value: Any) -> None:
    """The content of one message as the root's parts: texts, media references, anything else as JSON."""
    if value is None:
        return
    if isinstance(value, str):
        if value:
            out.append(_part("text", value))
    elif isinstance(value, list):
        for child in value:
            _parts_into(out, child)
    elif isinstance(value, Mapping):
        if isinstance(value.get("text"), str):
            _parts_into(out, value["text"])
        elif "content" in value:
            _parts_into(out, value["content"])
        elif "parts" in value:
            _parts_into(out, value["parts"])
        elif "image_url" in value:
            _media(out, "image", value["image_url"])
        elif _first(value, "inlineData", "inline_data") is not None:
            _media(out, "inline_data", _first(value, "inlineData", "inline_data"))
        elif _first(value, "fileData", "file_data") is not None:
            _media(out, "file", _first(value, "fileData", "file_data"))
        elif "source" in value:
            _media(out, _lower(value.get("type")), value["source"], _lower(value.get("media_type")))
        else:
            out.append(_part("json", _go_json(_without_cache_control(value))))
    else:
        out.append(_part("json", _go_json(value)))


def _parts(value: Any) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    _parts_into(out, value)
    return out


def _lower(value: Any) -> str:
    return value.strip().lower() if isinstance(value, str) else ""


def _add_instruction(instructions: list[str], value: Any) -> None:
    text = "\n".join(p["value"] for p in _parts(value) if p["kind"] == "text" and p["value"])
    if text:
        instructions.append(text[:_INSTRUCTION_LIMIT])


def _content_of(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    for name in ("content", "parts", "text"):
        if name in value:
            return value[name]
    return value


def _messages_root(body: Mapping[str, Any], instructions: list[str], *, top_system: bool) -> Any:
    if top_system and "system" in body:
        _add_instruction(instructions, body["system"])
    for message in _list(body.get("messages")):
        if not isinstance(message, Mapping):
            continue
        role = _lower(message.get("role"))
        if role in ("system", "developer"):
            _add_instruction(instructions, message.get("content"))
        elif role == "user":
            return message.get("content")
    return None


def _responses_root(body: Mapping[str, Any], instructions: list[str]) -> Any:
    if "instructions" in body:
        _add_instruction(instructions, body["instructions"])
    items = body.get("input")
    if isinstance(items, str):
        return items
    for item in _list(items):
        if not isinstance(item, Mapping):
            continue
        role = _lower(item.get("role"))
        if role in ("system", "developer"):
            _add_instruction(instructions, item.get("content"))
        elif role == "user":
            return item.get("content")
    return None


def _gemini_root(body: Mapping[str, Any], instructions: list[str]) -> Any:
    system = _first(body, "systemInstruction", "system_instruction")
    if system is not None:
        _add_instruction(instructions, _content_of(system))
    for content in _list(body.get("contents")):
        if isinstance(content, Mapping) and _lower(content.get("role")) == "user":
            return _content_of(content)
    return None


def _list(value: Any) -> Iterable[Any]:
    return value if isinstance(value, list) else ()


def caller_scope(client_key: str | None) -> str:
    """An irreversible namespace for the client's API key ('' without one)."""
    key = (client_key or "").strip()
    if not key:
        return ""
    return hashlib.sha256(f"cli-proxy-api:caller-scope:v1\x00{key}".encode()).hexdigest()


def derived_identity(protocol: WireProtocol, body: Mapping[str, Any], client_key: str | None) -> str:
    """`ctx:v1:<sha256>` of the conversation root, or '' when the body has no user message."""
    fmt = _FORMAT_NAMES.get(protocol)
    if fmt is None:
        return ""
    instructions: list[str] = []
    if protocol is WireProtocol.OPENAI_RESPONSES:
        user = _responses_root(body, instructions)
    elif protocol is WireProtocol.GEMINI:
        user = _gemini_root(body, instructions)
    else:
        user = _messages_root(body, instructions, top_system=protocol is WireProtocol.CLAUDE)
    parts = _parts(user)
    if not parts:
        return ""
    root: dict[str, Any] = {"version": _ROOT_VERSION, "format": fmt, "caller_scope": caller_scope(client_key)}
    if instructions:
        root["instructions"] = instructions
    root["user"] = parts
    if protocol is WireProtocol.GEMINI:
        resource = _first_str(body, "cachedContent", "cached_content")
        if resource:
            root["resource"] = resource
    return "ctx:v1:" + hashlib.sha256(_go_json(root).encode()).hexdigest()


def provider_session_uuid(provider: str, identity: str) -> str:
    """A provider-scoped stable UUID (v5, OID namespace) for a derived identity."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, "\x00".join(("cli-proxy-api", provider, "derived-session", identity))))


def codex_cache_id(origin: ClientOrigin, client_headers: Mapping[str, str]) -> str:
    """The prompt-cache id of a Codex call ('' = none): the client's key, the derived session, or (Chat
    clients) the client key's own UUIDv5."""
    body = origin.body
    given = body.get("prompt_cache_key")
    chat_or_responses = origin.protocol in (WireProtocol.OPENAI_RESPONSES, WireProtocol.OPENAI_CHAT)
    if chat_or_responses and isinstance(given, str) and given.strip():
        return given.strip() if origin.protocol is WireProtocol.OPENAI_CHAT else given
    # A spawned sub-agent (X-Openai-Subagent: collab_spawn) is not its parent's conversation: nothing derived.
    if not names_own_session(client_headers, body) and not is_collab_spawn(client_headers):
        identity = derived_identity(origin.protocol, body, origin.client_key)
        if identity:
            return provider_session_uuid("codex", identity)
    if origin.connection_session and is_collab_spawn(client_headers):
        return origin.connection_session
    if origin.protocol is WireProtocol.OPENAI_CHAT and origin.client_key and origin.client_key.strip():
        return str(uuid.uuid5(uuid.NAMESPACE_OID, f"cli-proxy-api:codex:prompt-cache:{origin.client_key.strip()}"))
    return ""
