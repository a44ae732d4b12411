"""The Gemini CLI / Cloud Code Assist envelope around Gemini bodies (translation.md §0, §3.8).

Requests: `{"model": …, "project": …, "request": <generateContent body>}`; responses (and every stream chunk):
`{"response": <GenerateContentResponse>}` (Code Assist may add `traceId` next to it). The bodies inside are
plain Gemini, so GeminiCodec does the translating; these helpers only add or remove the envelope.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from proxyd.protocols.codec import CodecError, StreamEncoder
from proxyd.protocols.sse import SSEEvent, SSEParser, frame


def wrap_request(body: Mapping[str, Any], *, model: str, project: str) -> dict[str, Any]:
    """A Gemini body → the Code Assist request envelope (a `model` inside the body is moved out)."""
    inner = {k: v for k, v in body.items() if k != "model"}
    return {"model": model, "project": project, "request": inner}


def unwrap_request(envelope: Any) -> dict[str, Any]:
    """The Gemini body inside a CLI request envelope; the envelope's `model` is read with `request_model`."""
    if not isinstance(envelope, Mapping):
        raise CodecError("", "request body must be a JSON object")
    inner = envelope.get("request")
    if not isinstance(inner, Mapping):
        raise CodecError("request", "must be an object holding the Gemini request")
    return dict(inner)


def request_model(envelope: Any) -> str:
    """The envelope's `model` ('' when absent)."""
    model = envelope.get("model") if isinstance(envelope, Mapping) else None
    return model if isinstance(model, str) else ""


def wrap_response(body: Mapping[str, Any]) -> dict[str, Any]:
    """A GenerateContentResponse → `{"response": …}`."""
    return {"response": dict(body)}


def unwrap_response(body: Any) -> Any:
    """`{"response": …}` → the inner GenerateContentResponse; anything else is returned unchanged."""
    if isinstance(body, Mapping) and isinstance(body.get("response"), Mapping) and "candidates" not in body:
        return body["response"]
    return body


def unwrap_event(event: SSEEvent) -> SSEEvent:
    """A CLI stream event with its `data` unwrapped (non-JSON or unwrapped data passes unchanged)."""
    try:
        parsed = json.loads(event.data)
    except ValueError:
        return event
    inner = unwrap_response(parsed)
    if inner is parsed:
        return event
    return SSEEvent(data=json.dumps(inner, ensure_ascii=False, separators=(",", ":")).encode(),
                    event=event.event, id=event.id)


def wrap_sse(data: bytes) -> bytes:
    """Complete Gemini SSE frames → the same frames with every data chunk wrapped as `{"response": …}`.

    Error frames (`event: error`) and non-JSON data are left as they are."""
    if not data:
        return b""
    parser = SSEParser()
    out: list[bytes] = []
    for event in [*parser.feed(data), *parser.close()]:
        payload = event.data
        if event.event != "error":
            try:
                parsed = json.loads(payload)
            except ValueError:
                parsed = None
            if isinstance(parsed, Mapping) and "error" not in parsed:
                payload = json.dumps(wrap_response(parsed), ensure_ascii=False, separators=(",", ":")).encode()
        out.append(frame(payload, event.event))
    return b"".join(out)


class CliStreamEncoder:
    """Wraps a Gemini stream encoder so its chunks come out in the CLI envelope."""

    def __init__(self, inner: StreamEncoder) -> None:
        self.inner = inner

    def encode(self, event: Any) -> bytes:
        return wrap_sse(self.inner.encode(event))

    def close(self) -> bytes:
        return wrap_sse(self.inner.close())

    def error(self, status: int, message: str) -> bytes:
        return self.inner.error(status, message)
