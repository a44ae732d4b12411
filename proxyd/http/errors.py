"""Errors raised inside proxyd and how each client protocol family shapes them."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web


class ErrorFamily(enum.Enum):
    """Which error envelope a client understands."""

    OPENAI = "openai"
    CLAUDE = "claude"
    GEMINI = "gemini"


def family_for_path(path: str) -> ErrorFamily:
    """The error envelope for a request path (Claude and Gemini routes have their own)."""
    if path.startswith("/v1/messages"):
        return ErrorFamily.CLAUDE
    if path.startswith(("/v1beta", "/v1internal")) or (path.startswith("/v1/models/") and ":" in path):
        return ErrorFamily.GEMINI
    return ErrorFamily.OPENAI


# status -> (OpenAI type, OpenAI code); the reference's table for wrapped errors.
_OPENAI_BY_STATUS: dict[int, tuple[str, str | None]] = {
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "insufficient_quota"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}

_CLAUDE_BY_STATUS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}

_GEMINI_BY_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def openai_type_code(status: int) -> tuple[str, str | None]:
    """The OpenAI error `type` and `code` the reference derives from an HTTP status."""
    if status in _OPENAI_BY_STATUS:
        return _OPENAI_BY_STATUS[status]
    if status >= 500:
        return "server_error", "internal_server_error"
    return "invalid_request_error", None


class ProxyError(Exception):
    """An error proxyd itself answers with; rendered in the calling protocol's envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
        from_upstream: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        default_type, default_code = openai_type_code(status)
        self.type = type or default_type
        self.code = code if code is not None else default_code
        self.param = param
        self.headers = dict(headers or {})
        self.details = dict(details or {})  # extra fields of the OpenAI envelope (cooldown answers)
        self.from_upstream = from_upstream  # an upstream's error re-shaped: Claude's envelope gets no `code`
        self.native_type: str | None = None  # that upstream error's own `type`, kept in Claude's envelope

    def body(self, family: ErrorFamily) -> dict[str, Any]:
        """The JSON body for this error in `family`'s envelope."""
        if family is ErrorFamily.CLAUDE:
            native = self.native_type if self.from_upstream else None
            inner: dict[str, Any] = {"type": native or _CLAUDE_BY_STATUS.get(self.status, _claude_default(self.status))}
            inner["message"] = self.message
            if self.code and not self.from_upstream:
                inner["code"] = self.code
            return {"type": "error", "error": inner}
        if family is ErrorFamily.GEMINI:
            return {
                "error": {
                    "code": self.status,
                    "message": self.message,
                    "status": _GEMINI_BY_STATUS.get(self.status, "UNKNOWN"),
                }
            }
        error: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.param:
            error["param"] = self.param
        if self.code:
            error["code"] = self.code
        error.update(self.details)
        return {"error": error}

    def response(self, family: ErrorFamily) -> web.Response:
        """An aiohttp response carrying this error."""
        return web.Response(
            status=self.status,
            body=json.dumps(self.body(family)).encode(),
            content_type="application/json",
            headers=self.headers,
        )


def reason_phrase(status: int) -> str:
    """The standard reason phrase for a status, or a generic one for non-standard codes."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Upstream Error"


def _claude_default(status: int) -> str:
    return "api_error" if status >= 500 else "invalid_request_error"


class UpstreamError(Exception):
    """A non-2xx answer (or a transport failure, status 0) from an upstream provider."""

    def __init__(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"upstream answered {status}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace").strip()

    def is_json(self) -> bool:
        try:
            json.loads(self.body)
        except ValueError:
            return False
        return True

    def passthrough_response(self, family: ErrorFamily = ErrorFamily.OPENAI) -> web.Response:
        """Same-protocol answer: the upstream JSON body verbatim, or the text wrapped in `family`'s envelope.

        Transport failures (status 0) answer 500, as the reference does for errors without a status."""
        status = self.status or 500
        if self.body and self.is_json():
            return web.Response(status=status, body=self.body.strip(), content_type="application/json")
        text = self.text or reason_phrase(status)
        return ProxyError(status, text, from_upstream=True).response(family)

    def to_proxy_error(self) -> ProxyError:
        """Cross-protocol answer: keep the status and the upstream message, lose the foreign envelope."""
        status = self.status or 500
        message = self.text
        try:
            data = json.loads(self.body)
        except ValueError:
            data = None
        native: str | None = None
        if isinstance(data, dict):
            err = data.get("error")
            if isinstance(err, dict) and isinstance(err.get("message"), str):
                message = err["message"]
                native = err.get("type") if isinstance(err.get("type"), str) and err.get("type") else None
            elif isinstance(err, str):
                message = err
            elif isinstance(data.get("message"), str):
                message = data["message"]
        error = ProxyError(status, message or reason_phrase(status), from_upstream=True)
        error.native_type = native
        return error
