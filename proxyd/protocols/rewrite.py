"""Response rewriters: upstream body or SSE events → what the client protocol expects."""

from __future__ import annotations

import json
import re
from typing import Protocol

from proxyd.http.errors import ProxyError, UpstreamError
from proxyd.protocols import openai_completions
from proxyd.protocols.sse import SSEEvent, frame

_MODEL_FIELD = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*"')
DONE = b"[DONE]"
DONE_FRAME = b"data: [DONE]\n\n"


def rename_model(payload: bytes, model: bytes) -> bytes:
    """Replace the first `"model": "..."` of a JSON text (the top-level one in OpenAI objects)."""
    return _MODEL_FIELD.sub(b'"model":' + model, payload, count=1)


class ResponseRewriter(Protocol):
    """Turns one upstream protocol's answer into the client protocol's, piece by piece."""

    def body(self, upstream: bytes) -> bytes: ...

    def event(self, event: SSEEvent) -> bytes: ...

    def done(self) -> bytes: ...

    def error_frame(self, error: ProxyError | UpstreamError) -> bytes: ...


def _openai_error_frame(error: ProxyError | UpstreamError) -> bytes:
    if isinstance(error, UpstreamError):
        if error.body and error.is_json():
            return frame(error.body.strip())
        error = error.to_proxy_error()
    from proxyd.http.errors import ErrorFamily

    return frame(json.dumps(error.body(ErrorFamily.OPENAI)).encode())


class OpenAIChatPassthrough:
    """Chat → chat: bytes kept as they are except the model name, which becomes the client's alias."""

    def __init__(self, client_model: str) -> None:
        self._model = json.dumps(client_model).encode()

    def body(self, upstream: bytes) -> bytes:
        return rename_model(upstream, self._model)

    def event(self, event: SSEEvent) -> bytes:
        if event.data.strip() == DONE:
            return b""  # re-emitted once at the clean end
        return frame(rename_model(event.data, self._model))

    def done(self) -> bytes:
        return DONE_FRAME

    def error_frame(self, error: ProxyError | UpstreamError) -> bytes:
        return _openai_error_frame(error)


class CompletionsFromChat:
    """Chat answers → legacy `text_completion` objects (empty chunks skipped)."""

    def __init__(self, client_model: str) -> None:
        self._model = client_model

    def body(self, upstream: bytes) -> bytes:
        chat = json.loads(upstream)
        out = openai_completions.chat_response_to_completion(chat)
        out["model"] = self._model
        return json.dumps(out, ensure_ascii=False).encode()

    def event(self, event: SSEEvent) -> bytes:
        if event.data.strip() == DONE:
            return b""
        chunk = json.loads(event.data)
        if not isinstance(chunk, dict):
            return b""
        out = openai_completions.chat_chunk_to_completion(chunk)
        if out is None:
            return b""
        out["model"] = self._model
        return frame(json.dumps(out, ensure_ascii=False).encode())

    def done(self) -> bytes:
        return DONE_FRAME

    def error_frame(self, error: ProxyError | UpstreamError) -> bytes:
        return _openai_error_frame(error)
