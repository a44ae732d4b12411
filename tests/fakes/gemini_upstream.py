"""A scriptable fake Google Gemini upstream speaking the real REST wire format.

One server answers the three Google surfaces proxyd talks to:

* Gemini API (AI Studio): ``/v1beta/models/{model}:generateContent``, ``:streamGenerateContent``
  (``?alt=sse`` → SSE frames ``data: <json>\\r\\n\\r\\n``; without it a streamed JSON array),
  ``:countTokens``, ``GET /v1beta/models`` and ``GET /v1beta/models/{model}``;
* Vertex AI: ``/v1/publishers/google/models/{model}:{action}`` (express mode) and
  ``/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:{action}`` (``v1beta1`` too),
  plus ``:predict`` for imagen models;
* Gemini CLI / Cloud Code Assist: ``/v1internal:{generateContent,streamGenerateContent,countTokens,
  loadCodeAssist,onboardUser}`` with the ``{"model","project","request"}`` envelope, answered as
  ``{"response": {...}, "traceId": "..."}``.

Usage::

    async with FakeGeminiUpstream() as up:
        up.reply_text = "Hello from fake"
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=up.base_url))
        ...
        assert up.last.model == "gemini-2.5-flash"
"""

from __future__ import annotations

import asyncio
import base64
import collections
import datetime as dt
import json as jsonlib
import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from .openai_upstream import RecordedRequest, split_text

__all__ = [
    "GOOGLE_STATUS",
    "FakeGeminiUpstream",
    "FunctionCallSpec",
    "GeminiRecordedRequest",
    "Surface",
    "gemini_error",
    "google_status",
]

FunctionCallSpec = dict[str, Any]
"""A scripted function call: ``{"name": str, "args": dict (optional), "id": str (optional),
"thoughtSignature": str (optional; ``thought_signature`` also accepted)}``."""

Surface = Literal["gemini", "vertex", "cli"]
"""Which Google API a request addressed: Gemini API, Vertex AI or Cloud Code Assist (Gemini CLI)."""

_POLL = 0.01  # seconds between disconnect checks while the fake waits

GOOGLE_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
"""HTTP status → ``google.rpc.Code`` name as Google's REST front-ends report it."""

_TYPE_PREFIX = "type.googleapis.com/"
_RATE_LIMIT_URL = "https://ai.google.dev/gemini-api/docs/rate-limits"
_DEFAULT_SIGNATURE = base64.b64encode(b"fake-thought-signature:0001").decode()
_PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="
_DATA_KEYS = frozenset(
    {
        "text",
        "inlineData",
        "inline_data",
        "fileData",
        "file_data",
        "functionCall",
        "function_call",
        "functionResponse",
        "function_response",
        "executableCode",
        "executable_code",
        "codeExecutionResult",
        "code_execution_result",
    }
)
_VALID_ROLES = frozenset({"user", "model", "function"})
_NOT_FOUND_HTML = (
    "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n"
    "  <p><b>404.</b> <ins>That’s an error.</ins>\n"
    "  <p>The requested URL <code>{path}</code> was not found on this server.  <ins>That’s all we know.</ins>\n"
)


def google_status(code: int) -> str:
    """The ``google.rpc`` status name Google sends with HTTP status ``code``."""
    if code in GOOGLE_STATUS:
        return GOOGLE_STATUS[code]
    if code >= 500:
        return "INTERNAL"
    if code >= 400:
        return "FAILED_PRECONDITION"
    return "UNKNOWN"


def gemini_error(
    code: int,
    message: str,
    status: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build a Google error body: ``{"error": {"code", "message", "status", "details"?}}``."""
    err: dict[str, Any] = {"code": code, "message": message, "status": status or google_status(code)}
    if details:
        err["details"] = details
    return {"error": err}


def _camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _response_id() -> str:
    return secrets.token_urlsafe(18).replace("-", "a").replace("_", "b")[:22]


@dataclass(slots=True)
class GeminiRecordedRequest(RecordedRequest):
    """One request as the fake received it, with Gemini-specific accessors."""

    surface: Surface | None = None
    model: str | None = None
    action: str | None = None

    @property
    def api_key(self) -> str | None:
        """The key from ``x-goog-api-key``, else from ``?key=``, or None."""
        return self.headers.get("x-goog-api-key") or self.query.get("key") or None

    @property
    def credential(self) -> str | None:
        """Whatever credential the request carried: API key first, then the Bearer token."""
        return self.api_key or self.bearer

    @property
    def stream(self) -> bool:
        """True for ``streamGenerateContent`` calls."""
        return self.action == "streamGenerateContent"

    @property
    def sse(self) -> bool:
        """True when ``alt=sse`` (or ``$alt=sse``) asked for Server-Sent Events."""
        alt = self.query.get("alt") or self.query.get("$alt") or ""
        return alt.split(";")[0].lower() == "sse"

    @property
    def request(self) -> dict[str, Any] | None:
        """The GenerateContentRequest: the body, or ``body["request"]`` for the Code Assist envelope."""
        if not isinstance(self.json, dict):
            return None
        if self.surface == "cli":
            inner = self.json.get("request")
            return inner if isinstance(inner, dict) else None
        return self.json


@dataclass(slots=True)
class _Error:
    status: int
    body: dict[str, Any] | str | None
    headers: dict[str, str]


@dataclass(slots=True)
class _StreamFailure:
    after_chunks: int
    mode: Literal["close", "event"]
    body: dict[str, Any] | None = None


@dataclass(slots=True)
class _Reply:
    text: str | None
    thinking: str | None
    function_calls: list[FunctionCallSpec] | None
    finish_reason: str | None
    parts: list[dict[str, Any]] | None


_Action = _Error | _StreamFailure | _Reply


class _ClientGone(Exception):
    """The client closed the connection before the response finished."""


class _Stopping(Exception):
    """The fake is shutting down."""


@dataclass
class _Generation:
    """What one generate request should produce."""

    text: str
    thinking: str
    function_calls: list[FunctionCallSpec]
    finish_reason: str
    parts: list[dict[str, Any]] | None
    failure: _StreamFailure | None = None


@dataclass
class _Call:
    """A parsed model call: which surface, model and action, and the GenerateContentRequest."""

    surface: Surface
    model: str
    action: str
    version: str
    body: dict[str, Any] | None
    extra: dict[str, Any] = field(default_factory=dict)


class FakeGeminiUpstream:
    """Fake Gemini / Vertex / Code Assist HTTP server on 127.0.0.1 with a random free port.

    Scripting attributes may be changed at any time, including while the server runs.
    """

    REJECTED_SCHEMA_KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "$schema",
            "$id",
            "$ref",
            "$defs",
            "ref",
            "defs",
            "$comment",
            "$anchor",
            "definitions",
            "additionalProperties",
            "additionalItems",
            "unevaluatedProperties",
            "patternProperties",
            "propertyNames",
            "dependentRequired",
            "dependentSchemas",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "multipleOf",
            "uniqueItems",
            "const",
            "allOf",
            "oneOf",
            "not",
            "if",
            "then",
            "else",
            "prefixItems",
            "contains",
            "minContains",
            "maxContains",
            "examples",
            "deprecated",
            "readOnly",
            "writeOnly",
            "contentEncoding",
            "contentMediaType",
            "enumTitles",
            "prefill",
        }
    )
    """JSON-Schema keywords that Gemini's OpenAPI-subset ``Schema`` message does not have.

    A tool's ``parameters`` / ``response`` schema or ``generationConfig.responseSchema`` containing
    any of them (in camelCase or the proto snake_case spelling the google-genai SDK sends, e.g.
    ``additional_properties``; or any ``x-*`` extension key) anywhere — except as a *property name* — is refused
    with 400 INVALID_ARGUMENT ``Unknown name "<key>" at '<path>': Cannot find field.`` as Google does.
    ``type`` given as a list and non-string ``enum`` values are refused too. ``parametersJsonSchema``
    / ``responseJsonSchema`` take full JSON Schema at Google and are only checked when
    :attr:`validate_json_schema` is True. Subclasses or tests may override this set.
    """

    def __init__(
        self,
        *,
        reply_text: str = "Hello from fake",
        models: list[str] | None = None,
        chunk_count: int = 3,
        chunk_delay: float = 0.0,
    ) -> None:
        # replies
        self.reply_text: str = reply_text
        self.reply_thinking: str | None = None
        self.reply_function_calls: list[FunctionCallSpec] | None = None
        self.reply_parts: list[dict[str, Any]] | None = None
        self.thought_signature: str | None = _DEFAULT_SIGNATURE
        self.finish_reason: str | None = None
        self.block_reason: str | None = None
        self.response_model: str | None = None
        # streaming
        self.chunk_count: int = chunk_count
        self.chunk_delay: float = chunk_delay
        self.usage_on_every_chunk: bool = False
        # usage
        self.prompt_tokens: int = 12
        self.candidates_tokens: int = 8
        self.thoughts_tokens: int | None = None
        self.cached_tokens: int | None = None
        self.count_tokens: int | None = None
        # models, auth, validation
        self.models: list[str] = list(models) if models is not None else ["gemini-2.5-flash", "gemini-2.5-pro"]
        self.reject_unknown_models: bool = False
        self.expected_keys: set[str] | None = None
        self.validate_requests: bool = True
        self.validate_json_schema: bool = False
        self.retry_delay: str = "7s"
        # Code Assist
        self.code_assist_project: str | None = "fake-project-123"
        self.code_assist_tiers: list[dict[str, Any]] = [
            {
                "id": "free-tier",
                "name": "Gemini Code Assist for individuals",
                "description": "Gemini Code Assist for individuals, at no cost.",
                "userDefinedCloudaicompanionProject": False,
                "isDefault": True,
            },
            {
                "id": "standard-tier",
                "name": "Gemini Code Assist",
                "description": "Unlimited coding assistant with the most powerful Gemini models",
                "userDefinedCloudaicompanionProject": True,
            },
        ]
        self.onboard_project: str = "fake-onboarded-project"
        self.onboard_pending_polls: int = 1
        # transport
        self.response_headers: dict[str, str] = {}
        self.hang_before_headers: bool = False
        self.hang_seconds: float | None = None

        self.requests: list[GeminiRecordedRequest] = []
        self.disconnects: int = 0
        self.client_disconnected: asyncio.Event = asyncio.Event()
        self.completed_streams: int = 0
        self.onboard_calls: int = 0

        self._script: collections.deque[_Action] = collections.deque()
        self._release = asyncio.Event()
        self._stopping = asyncio.Event()
        self._request_seen = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        """The bound TCP port (only valid while started)."""
        if self._port is None:
            raise RuntimeError("FakeGeminiUpstream is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` — the value for a provider's base-url (no version segment)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        """Same as :attr:`base_url` (kept for symmetry with the OpenAI fake)."""
        return self.base_url

    async def start(self) -> None:
        """Bind and start serving."""
        app = web.Application()
        gemini = "/{version:v1beta|v1|v1alpha}/models"
        app.router.add_get(gemini, self._list_models)
        app.router.add_get(gemini + "/{target}", self._get_model)
        app.router.add_post(gemini + "/{target}", self._gemini)
        vertex = "/{version:v1|v1beta1}"
        app.router.add_post(vertex + "/publishers/google/models/{target}", self._vertex)
        app.router.add_post(
            vertex + "/projects/{project}/locations/{location}/publishers/google/models/{target}", self._vertex
        )
        app.router.add_post("/v1internal:{method}", self._code_assist)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()

    async def stop(self) -> None:
        """Stop serving; hung or sleeping handlers are released first."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeGeminiUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------- scripting

    def enqueue_error(
        self,
        status: int,
        body: dict[str, Any] | str | None = None,
        headers: dict[str, str] | None = None,
        *,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests with this error.

        ``body`` None → Google's default body for ``status`` (429 carries ``google.rpc.QuotaFailure``,
        ``Help`` and ``RetryInfo`` with :attr:`retry_delay`; on Code Assist also an ``ErrorInfo`` with
        ``quotaResetDelay``); a dict is sent as JSON, a str as text/plain.
        """
        for _ in range(times):
            self._script.append(_Error(status, body, dict(headers or {})))

    def enqueue_stream_failure(self, after_chunks: int, *, times: int = 1) -> None:
        """Break the connection after ``after_chunks`` chunks of the next stream(s).

        A non-streaming request consuming this is answered by closing the connection without a response.
        """
        for _ in range(times):
            self._script.append(_StreamFailure(after_chunks, "close"))

    def enqueue_stream_error_event(self, after_chunks: int, body: dict[str, Any] | None = None) -> None:
        """After ``after_chunks`` chunks send an ``{"error": ...}`` chunk and end the stream cleanly."""
        body = body or gemini_error(
            500,
            "An internal error has occurred. Please retry or report in "
            "https://developers.generativeai.google/guide/troubleshooting",
        )
        self._script.append(_StreamFailure(after_chunks, "event", body))

    def enqueue_reply(
        self,
        text: str | None = None,
        *,
        thinking: str | None = None,
        function_calls: list[FunctionCallSpec] | None = None,
        finish_reason: str | None = None,
        parts: list[dict[str, Any]] | None = None,
    ) -> None:
        """Override the reply for the next generate request only (unset values fall back to the attributes)."""
        self._script.append(_Reply(text, thinking, function_calls, finish_reason, parts))

    def release_hang(self) -> None:
        """Let requests held by ``hang_before_headers`` continue normally."""
        self._release.set()

    def reset(self) -> None:
        """Clear recorded requests, disconnect state, onboarding progress and pending scripted actions."""
        self.requests.clear()
        self._script.clear()
        self.disconnects = 0
        self.completed_streams = 0
        self.onboard_calls = 0
        self.client_disconnected.clear()
        self._release.clear()

    @property
    def pending_actions(self) -> int:
        """How many scripted actions are still queued."""
        return len(self._script)

    @property
    def last(self) -> GeminiRecordedRequest:
        """The most recent request."""
        if not self.requests:
            raise LookupError("FakeGeminiUpstream received no requests")
        return self.requests[-1]

    async def wait_for_requests(self, count: int = 1, within: float = 2.0) -> list[GeminiRecordedRequest]:
        """Wait up to ``within`` seconds until at least ``count`` requests were recorded."""
        async with asyncio.timeout(within), self._request_seen:
            await self._request_seen.wait_for(lambda: len(self.requests) >= count)
        return self.requests

    # ----------------------------------------------------------------- plumbing

    async def _record(self, request: web.Request, surface: Surface | None) -> GeminiRecordedRequest:
        body = await request.read()
        parsed: Any = None
        if body:
            try:
                parsed = jsonlib.loads(body)
            except ValueError:
                parsed = None
        rec = GeminiRecordedRequest(
            method=request.method,
            path=request.path,
            query=MultiDictProxy(MultiDict(request.query)),
            headers=CIMultiDictProxy(CIMultiDict(request.headers)),
            body=body,
            json=parsed,
            time=time.time(),
            surface=surface,
        )
        self.requests.append(rec)
        async with self._request_seen:
            self._request_seen.notify_all()
        return rec

    def _client_gone(self) -> None:
        self.disconnects += 1
        self.client_disconnected.set()

    @staticmethod
    def _is_gone(request: web.Request) -> bool:
        transport = request.transport
        return transport is None or transport.is_closing()

    async def _pause(self, request: web.Request, seconds: float | None, *, until_release: bool = False) -> None:
        """Sleep while watching for client disconnect and shutdown."""
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        while True:
            if self._is_gone(request):
                raise _ClientGone
            if self._stopping.is_set():
                raise _Stopping
            if until_release and self._release.is_set():
                return
            remaining = _POLL if deadline is None else deadline - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(_POLL, remaining))

    def _headers(self, content_type: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {
            "Content-Type": content_type,
            "Vary": "Origin, X-Origin, Referer",
            "Server": "scaffolding on HTTPServer2",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "SAMEORIGIN",
            "X-XSS-Protection": "0",
            **self.response_headers,
            **(extra or {}),
        }

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
        text = jsonlib.dumps(body, indent=2, ensure_ascii=False) + "\n"
        return web.Response(status=status, text=text, headers=self._headers("application/json; charset=UTF-8", headers))

    def _error(self, code: int, message: str, details: list[dict[str, Any]] | None = None) -> web.Response:
        return self._json(code, gemini_error(code, message, details=details))

    def _default_error_body(self, status: int, call: _Call | None) -> dict[str, Any]:
        model = call.model if call else "gemini-2.5-flash"
        surface = call.surface if call else "gemini"
        service = {
            "gemini": "generativelanguage.googleapis.com",
            "vertex": "aiplatform.googleapis.com",
            "cli": "cloudcode-pa.googleapis.com",
        }[surface]
        if status == 400:
            return gemini_error(400, "Request contains an invalid argument.")
        if status == 401:
            return gemini_error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                "or other valid authentication credential. See "
                "https://developers.google.com/identity/sign-in/web/devconsole-project.",
                details=[
                    {
                        "@type": _TYPE_PREFIX + "google.rpc.ErrorInfo",
                        "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED",
                        "metadata": {"service": service},
                    }
                ],
            )
        if status == 403:
            return gemini_error(403, "The caller does not have permission")
        if status == 404:
            return gemini_error(
                404,
                f"models/{model} is not found for API version v1beta, or is not supported for generateContent. "
                "Call ListModels to see the list of available models and their supported methods.",
            )
        if status == 429:
            seconds = self.retry_delay.removesuffix("s")
            quota = {
                "@type": _TYPE_PREFIX + "google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": f"{service}/generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": model},
                        "quotaValue": "10",
                    }
                ],
            }
            retry = {"@type": _TYPE_PREFIX + "google.rpc.RetryInfo", "retryDelay": self.retry_delay}
            if surface == "cli":
                info = {
                    "@type": _TYPE_PREFIX + "google.rpc.ErrorInfo",
                    "reason": "RATE_LIMIT_EXCEEDED",
                    "domain": service,
                    "metadata": {"uiMessage": "true", "model": model, "quotaResetDelay": self.retry_delay},
                }
                return gemini_error(
                    429,
                    f"You have exhausted your capacity on this model. Your quota will reset after {seconds}s.",
                    details=[info, quota, retry],
                )
            help_ = {
                "@type": _TYPE_PREFIX + "google.rpc.Help",
                "links": [{"description": "Learn more about Gemini API quotas", "url": _RATE_LIMIT_URL}],
            }
            return gemini_error(
                429,
                "You exceeded your current quota, please check your plan and billing details. For more "
                f"information on this error, head to: {_RATE_LIMIT_URL}.\n* Quota exceeded for metric: "
                f"{service}/generate_content_free_tier_requests, limit: 10, model: {model}\n"
                f"Please retry in {seconds}s.",
                details=[quota, help_, retry],
            )
        if status == 500:
            return gemini_error(
                500,
                "An internal error has occurred. Please retry or report in "
                "https://developers.generativeai.google/guide/troubleshooting",
            )
        if status == 503:
            return gemini_error(503, "The model is overloaded. Please try again later.")
        if status == 504:
            return gemini_error(504, "The request timed out. Please try again.")
        return gemini_error(status, f"Error {status}")

    def _error_response(self, err: _Error, call: _Call | None) -> web.Response:
        if isinstance(err.body, str):
            headers = self._headers("text/plain; charset=utf-8", err.headers)
            return web.Response(status=err.status, text=err.body, headers=headers)
        body = err.body if err.body is not None else self._default_error_body(err.status, call)
        return self._json(err.status, body, err.headers)

    def _check_auth(self, rec: GeminiRecordedRequest, surface: Surface | None) -> web.Response | None:
        if self.expected_keys is None:
            return None
        api_key, bearer = rec.api_key, rec.bearer
        if api_key is not None:
            if api_key in self.expected_keys:
                return None
            message = "API key not valid. Please pass a valid API key."
            return self._error(
                400,
                message,
                [
                    {
                        "@type": _TYPE_PREFIX + "google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    },
                    {"@type": _TYPE_PREFIX + "google.rpc.LocalizedMessage", "locale": "en-US", "message": message},
                ],
            )
        if bearer is not None:
            if bearer in self.expected_keys:
                return None
            return self._json(401, self._default_error_body(401, None))
        if surface == "gemini":
            return self._error(
                403,
                "Method doesn't allow unregistered callers (callers without established identity). Please use "
                "API Key or other form of API consumer identity to call this API.",
            )
        return self._error(
            401,
            "Request is missing required authentication credential. Expected OAuth 2 access token, login "
            "cookie or other valid authentication credential. See "
            "https://developers.google.com/identity/sign-in/web/devconsole-project.",
            [{"@type": _TYPE_PREFIX + "google.rpc.ErrorInfo", "reason": "CREDENTIALS_MISSING"}],
        )

    async def _preamble(
        self, request: web.Request, surface: Surface | None
    ) -> tuple[GeminiRecordedRequest, web.StreamResponse | _Action | None]:
        """Record, hang and authenticate; returns a ready response, or the next scripted action (popped)."""
        rec = await self._record(request, surface)
        if self.hang_before_headers:
            try:
                await self._pause(request, self.hang_seconds, until_release=True)
            except _ClientGone:
                self._client_gone()
                return rec, web.Response(status=499)
            except _Stopping:
                return rec, web.Response(status=503)
        denied = self._check_auth(rec, surface)
        if denied is not None:
            return rec, denied
        action = self._script.popleft() if self._script else None
        return rec, action

    @staticmethod
    def _abort(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)

    def _not_found_html(self, path: str) -> web.Response:
        return web.Response(
            status=404,
            text=_NOT_FOUND_HTML.format(path=path),
            headers=self._headers("text/html; charset=UTF-8"),
        )

    # ----------------------------------------------------------------- validation

    def _validate(self, call: _Call) -> web.Response | None:
        """Google-like 400s for a GenerateContentRequest (contents, parts, roles, tool schemas)."""
        body = call.body
        prefix = "request." if call.surface == "cli" else ""
        if not isinstance(body, dict):
            return self._error(400, "Invalid JSON payload received. Unexpected token.")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return self._error(400, "* GenerateContentRequest.contents: contents is not specified\n")
        problems: list[str] = []
        for ci, content in enumerate(contents):
            if not isinstance(content, dict):
                problems.append(f"* GenerateContentRequest.contents[{ci}]: must be an object\n")
                continue
            role = content.get("role")
            if role not in (None, "") and role not in _VALID_ROLES:
                return self._error(400, "Please use a valid role: user, model.")
            parts = content.get("parts")
            if not isinstance(parts, list) or not parts:
                problems.append(f"* GenerateContentRequest.contents[{ci}].parts: contents.parts must not be empty.\n")
                continue
            for pi, part in enumerate(parts):
                if not isinstance(part, dict) or not (_DATA_KEYS & part.keys()):
                    problems.append(
                        f"* GenerateContentRequest.contents[{ci}].parts[{pi}].data: required oneof field 'data' "
                        "must have one initialized field\n"
                    )
        if problems:
            return self._error(400, "".join(problems))
        violations = self._schema_problems(body, prefix)
        if violations:
            message = "\n".join(desc for _, desc in violations)
            details = [
                {
                    "@type": _TYPE_PREFIX + "google.rpc.BadRequest",
                    "fieldViolations": [{"field": f, "description": d} for f, d in violations],
                }
            ]
            return self._error(400, message, details)
        return None

    def _schema_problems(self, body: dict[str, Any], prefix: str) -> list[tuple[str, str]]:
        """Every schema location Google would refuse: ``(field path, description)``."""
        found: list[tuple[str, str]] = []
        openapi_keys = ("parameters", "response")
        json_keys = ("parametersJsonSchema", "responseJsonSchema", "parameters_json_schema", "response_json_schema")
        tools = body.get("tools")
        for ti, tool in enumerate(tools if isinstance(tools, list) else []):
            if not isinstance(tool, dict):
                continue
            decls = tool.get("functionDeclarations", tool.get("function_declarations"))
            for di, decl in enumerate(decls if isinstance(decls, list) else []):
                if not isinstance(decl, dict):
                    continue
                base = f"{prefix}tools[{ti}].function_declarations[{di}]"
                for key in openapi_keys:
                    if key in decl:
                        found += self._walk_schema(decl[key], f"{base}.{key}")
                if self.validate_json_schema:
                    for key in json_keys:
                        if key in decl:
                            found += self._walk_schema(decl[key], f"{base}.{_camel_to_snake(key)}")
        gen = body.get("generationConfig", body.get("generation_config"))
        if isinstance(gen, dict):
            for key in ("responseSchema", "response_schema"):
                if key in gen:
                    found += self._walk_schema(gen[key], f"{prefix}generation_config.response_schema")
            if self.validate_json_schema:
                for key in ("responseJsonSchema", "response_json_schema"):
                    if key in gen:
                        found += self._walk_schema(gen[key], f"{prefix}generation_config.response_json_schema")
        return found

    def _rejected_key(self, key: str) -> bool:
        """True if ``key`` (camelCase or proto snake_case spelling) is not a Gemini ``Schema`` field."""
        camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)
        return key in self.REJECTED_SCHEMA_KEYS or camel in self.REJECTED_SCHEMA_KEYS or key.startswith("x-")

    def _walk_schema(self, schema: Any, path: str) -> list[tuple[str, str]]:
        if not isinstance(schema, dict):
            return []
        found: list[tuple[str, str]] = []
        for key, value in schema.items():
            if self._rejected_key(key):
                found.append(
                    (path, f"Invalid JSON payload received. Unknown name \"{key}\" at '{path}': Cannot find field.")
                )
            elif key == "type" and isinstance(value, list):
                found.append(
                    (
                        path,
                        f"Invalid JSON payload received. Unknown name \"type\" at '{path}': Proto field is not "
                        "repeating, cannot start list.",
                    )
                )
            elif key == "enum" and isinstance(value, list):
                for ei, item in enumerate(value):
                    if not isinstance(item, str):
                        where = f"{path}.enum[{ei}]"
                        found.append((where, f"Invalid value at '{where}' (TYPE_STRING), {jsonlib.dumps(item)}"))
            elif key == "properties" and isinstance(value, dict):
                for pi, sub in enumerate(value.values()):
                    found += self._walk_schema(sub, f"{path}.properties[{pi}].value")
            elif key == "items":
                found += self._walk_schema(value, f"{path}.items")
            elif key in ("anyOf", "any_of") and isinstance(value, list):
                for ai, sub in enumerate(value):
                    found += self._walk_schema(sub, f"{path}.any_of[{ai}]")
        return found

    # ----------------------------------------------------------------- generation

    def _generation(self, action: _Action | None) -> _Generation:
        text, thinking = self.reply_text, self.reply_thinking
        calls, finish, parts = self.reply_function_calls, self.finish_reason, self.reply_parts
        failure = None
        if isinstance(action, _Reply):
            text = action.text if action.text is not None else text
            thinking = action.thinking if action.thinking is not None else thinking
            calls = action.function_calls if action.function_calls is not None else calls
            finish = action.finish_reason or finish
            parts = action.parts if action.parts is not None else parts
        elif isinstance(action, _StreamFailure):
            failure = action
        return _Generation(
            text=text or "",
            thinking=thinking or "",
            function_calls=list(calls or []),
            finish_reason=finish or "STOP",
            parts=[dict(p) for p in parts] if parts is not None else None,
            failure=failure,
        )

    def _call_part(self, spec: FunctionCallSpec) -> dict[str, Any]:
        call: dict[str, Any] = {"name": spec["name"], "args": dict(spec.get("args") or {})}
        if spec.get("id"):
            call["id"] = spec["id"]
        part: dict[str, Any] = {"functionCall": call}
        signature = spec.get("thoughtSignature", spec.get("thought_signature"))
        if signature:
            part["thoughtSignature"] = signature
        return part

    def _content_groups(self, gen: _Generation, pieces: int) -> list[list[dict[str, Any]]]:
        """Candidate parts grouped per stream chunk; ``pieces`` = 1 gives the single non-stream group.

        Thoughts and text are split into ``pieces`` chunks each, all function calls share one chunk
        (parallel calls). The thought signature goes on the first non-thought part after the thoughts.
        """
        if gen.parts is not None:
            return [[p] for p in gen.parts] if pieces > 1 else [list(gen.parts)]
        thoughts = [{"text": piece, "thought": True} for piece in split_text(gen.thinking, pieces)]
        texts: list[dict[str, Any]] = [{"text": piece} for piece in split_text(gen.text, pieces)]
        calls = [self._call_part(spec) for spec in gen.function_calls]
        if thoughts and self.thought_signature:
            target = texts[0] if texts else (calls[0] if calls else None)
            if target is not None:
                target.setdefault("thoughtSignature", self.thought_signature)
        if pieces == 1:
            return [thoughts + texts + calls or [{"text": ""}]]
        groups = [[p] for p in thoughts] + [[p] for p in texts] + ([calls] if calls else [])
        return groups or [[{"text": ""}]]

    def _usage(self, gen: _Generation, *, final: bool = True) -> dict[str, Any]:
        prompt = self.prompt_tokens
        usage: dict[str, Any] = {"promptTokenCount": prompt}
        thoughts = self.thoughts_tokens
        if thoughts is None and gen.thinking:
            thoughts = 6
        if final:
            usage["candidatesTokenCount"] = self.candidates_tokens
            usage["totalTokenCount"] = prompt + self.candidates_tokens + (thoughts or 0)
        else:
            usage["totalTokenCount"] = prompt
        if self.cached_tokens:
            usage["cachedContentTokenCount"] = self.cached_tokens
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
        if self.cached_tokens:
            usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": self.cached_tokens}]
        if final and thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return usage

    def _response(
        self,
        call: _Call,
        gen: _Generation,
        parts: list[dict[str, Any]] | None,
        *,
        response_id: str,
        create_time: str,
        finish: bool,
        usage: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """One GenerateContentResponse (a whole reply or a stream chunk)."""
        out: dict[str, Any] = {}
        if self.block_reason:
            out["promptFeedback"] = {
                "blockReason": self.block_reason,
                "safetyRatings": [
                    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
                ],
            }
        else:
            candidate: dict[str, Any] = {"content": {"parts": parts or [], "role": "model"}}
            if finish:
                candidate["finishReason"] = gen.finish_reason
                if gen.finish_reason == "SAFETY":
                    candidate["safetyRatings"] = [
                        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
                    ]
            candidate["index"] = 0
            out["candidates"] = [candidate]
        if usage is not None:
            out["usageMetadata"] = usage
        out["modelVersion"] = self.response_model or call.model
        if call.surface != "gemini":
            out["createTime"] = create_time
        out["responseId"] = response_id
        return out

    def _wrap(self, call: _Call, body: dict[str, Any], trace_id: str) -> dict[str, Any]:
        return {"response": body, "traceId": trace_id} if call.surface == "cli" else body

    # ----------------------------------------------------------------- streaming

    async def _stream(
        self,
        request: web.Request,
        events: list[dict[str, Any]],
        *,
        sse: bool,
        failure: _StreamFailure | None,
    ) -> web.StreamResponse:
        """Write chunks one by one (SSE frames or a JSON array), draining each, watching for disconnects."""
        if sse:
            resp = web.StreamResponse(
                status=200,
                headers=self._headers(
                    "text/event-stream", {"Content-Disposition": "attachment", "Cache-Control": "no-cache"}
                ),
            )
        else:
            resp = web.StreamResponse(
                status=200,
                headers=self._headers("application/json; charset=UTF-8", {"Content-Disposition": "attachment"}),
            )
        resp.enable_chunked_encoding()

        def frame(index: int, obj: dict[str, Any]) -> bytes:
            if sse:
                return b"data: " + jsonlib.dumps(obj, ensure_ascii=False).encode() + b"\r\n\r\n"
            lead = "[" if index == 0 else "\n,\r\n"
            return (lead + jsonlib.dumps(obj, indent=2, ensure_ascii=False)).encode()

        def closing(count: int) -> bytes:
            if sse:
                return b""
            return b"\n]" if count else b"[]"

        try:
            await resp.prepare(request)
            for i in range(len(events) + 1):
                if failure is not None and i == failure.after_chunks:
                    if failure.mode == "event":
                        await self._write(request, resp, frame(i, failure.body or {}))
                        tail = closing(i + 1)
                        if tail:
                            await self._write(request, resp, tail)
                        await resp.write_eof()
                    else:
                        await self._drain(request)
                        if request.transport is not None:
                            request.transport.close()
                    return resp
                if i == len(events):
                    break
                if i and self.chunk_delay > 0:
                    await self._pause(request, self.chunk_delay)
                await self._write(request, resp, frame(i, events[i]))
            tail = closing(len(events))
            if tail:
                await self._write(request, resp, tail)
            await resp.write_eof()
        except _ClientGone:
            self._client_gone()
            return resp
        except _Stopping:
            if request.transport is not None:
                request.transport.close()
            return resp
        self.completed_streams += 1
        return resp

    async def _write(self, request: web.Request, resp: web.StreamResponse, data: bytes) -> None:
        if self._is_gone(request):
            raise _ClientGone
        try:
            await resp.write(data)
            await self._drain(request)
        except (ConnectionError, RuntimeError) as exc:
            raise _ClientGone from exc

    @staticmethod
    async def _drain(request: web.Request) -> None:
        try:
            await request.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise _ClientGone from exc

    # ----------------------------------------------------------------- endpoints

    @staticmethod
    def _split_target(target: str) -> tuple[str, str] | None:
        model, sep, action = target.rpartition(":")
        if not sep or not model or not action:
            return None
        return model.removeprefix("models/"), action

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        target = self._split_target(request.match_info["target"])
        if target is None or target[1] not in ("generateContent", "streamGenerateContent", "countTokens"):
            await self._record(request, "gemini")
            return self._not_found_html(request.path)
        return await self._model_call(request, "gemini", target[0], target[1], request.match_info["version"])

    async def _vertex(self, request: web.Request) -> web.StreamResponse:
        target = self._split_target(request.match_info["target"])
        allowed = ("generateContent", "streamGenerateContent", "countTokens", "predict")
        if target is None or target[1] not in allowed:
            await self._record(request, "vertex")
            return self._not_found_html(request.path)
        extra = {k: request.match_info[k] for k in ("project", "location") if k in request.match_info}
        return await self._model_call(request, "vertex", target[0], target[1], request.match_info["version"], extra)

    async def _code_assist(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if method in ("generateContent", "streamGenerateContent", "countTokens"):
            return await self._model_call(request, "cli", "", method, "v1internal")
        if method not in ("loadCodeAssist", "onboardUser"):
            await self._record(request, "cli")
            return self._not_found_html(request.path)
        rec, early = await self._preamble(request, "cli")
        rec.action = method
        if isinstance(early, web.StreamResponse):
            return early
        if isinstance(early, _Error):
            return self._error_response(early, None)
        if isinstance(early, _StreamFailure):
            return self._abort(request)
        if not isinstance(rec.json, dict):
            return self._error(400, "Invalid JSON payload received. Unexpected token.")
        if method == "loadCodeAssist":
            return self._json(200, self._load_code_assist(rec.json))
        return self._json(200, self._onboard_user(rec.json))

    def _load_code_assist(self, body: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        tiers = [dict(t) for t in self.code_assist_tiers]
        if self.code_assist_project is not None:
            default = next((t for t in tiers if t.get("isDefault")), tiers[0] if tiers else {"id": "legacy-tier"})
            current = {k: v for k, v in default.items() if k != "isDefault"}
            out["currentTier"] = current
        out["allowedTiers"] = tiers
        if self.code_assist_project is not None:
            out["cloudaicompanionProject"] = self.code_assist_project
        out["gcpManaged"] = False
        return out

    def _onboard_user(self, body: dict[str, Any]) -> dict[str, Any]:
        self.onboard_calls += 1
        name = "operations/onboard-" + secrets.token_hex(8)
        if self.onboard_calls <= self.onboard_pending_polls:
            return {"name": name, "done": False}
        requested = body.get("cloudaicompanionProject")
        project = requested if isinstance(requested, str) and requested else self.onboard_project
        return {
            "name": name,
            "done": True,
            "response": {
                "@type": _TYPE_PREFIX + "google.internal.cloud.code.v1internal.OnboardUserResponse",
                "cloudaicompanionProject": {"id": project, "name": project},
            },
        }

    async def _model_call(
        self,
        request: web.Request,
        surface: Surface,
        model: str,
        action: str,
        version: str,
        extra: dict[str, Any] | None = None,
    ) -> web.StreamResponse:
        rec, early = await self._preamble(request, surface)
        rec.action = action
        body: dict[str, Any] | None = rec.json if isinstance(rec.json, dict) else None
        if surface == "cli" and body is not None:
            inner = body.get("request")
            body = inner if isinstance(inner, dict) else None
            model = str(rec.json.get("model") or (body or {}).get("model") or "").removeprefix("models/")
        rec.model = model or None
        call = _Call(surface, model, action, version, body, dict(extra or {}))
        if isinstance(early, web.StreamResponse):
            return early
        if isinstance(early, _Error):
            return self._error_response(early, call)
        if rec.json is None and rec.body:
            return self._error(400, "Invalid JSON payload received. Unexpected token.")
        if surface == "cli" and action != "countTokens" and (not model or body is None):
            return self._error(400, "Request contains an invalid argument.")
        if self.reject_unknown_models and model and model not in self.models:
            return self._error(
                404,
                f"models/{model} is not found for API version {version}, or is not supported for {action}. "
                "Call ListModels to see the list of available models and their supported methods.",
            )
        if action == "countTokens":
            if isinstance(early, _StreamFailure):
                return self._abort(request)
            return self._json(200, self._count_tokens(call))
        if action == "predict":
            if isinstance(early, _StreamFailure):
                return self._abort(request)
            return self._json(200, {"predictions": [{"bytesBase64Encoded": _PNG_1X1, "mimeType": "image/png"}]})
        if self.validate_requests:
            invalid = self._validate(call)
            if invalid is not None:
                return invalid
        gen = self._generation(early)
        response_id, create_time = _response_id(), _now_rfc3339()
        trace_id = secrets.token_hex(8)

        if action == "generateContent":
            if gen.failure is not None:
                return self._abort(request)
            parts = self._content_groups(gen, 1)[0]
            reply = self._response(
                call,
                gen,
                parts,
                response_id=response_id,
                create_time=create_time,
                finish=True,
                usage=self._usage(gen),
            )
            return self._json(200, self._wrap(call, reply, trace_id))

        groups = self._content_groups(gen, max(1, self.chunk_count))
        if self.block_reason:
            groups = [[]]
        events: list[dict[str, Any]] = []
        for i, parts in enumerate(groups):
            last = i == len(groups) - 1
            usage = self._usage(gen) if last else (self._usage(gen, final=False) if self.usage_on_every_chunk else None)
            chunk = self._response(
                call, gen, parts, response_id=response_id, create_time=create_time, finish=last, usage=usage
            )
            events.append(self._wrap(call, chunk, trace_id))
        return await self._stream(request, events, sse=rec.sse, failure=gen.failure)

    def _count_tokens(self, call: _Call) -> dict[str, Any]:
        total = self.count_tokens if self.count_tokens is not None else self.prompt_tokens
        if call.surface == "cli":
            return {"totalTokens": total}
        out: dict[str, Any] = {"totalTokens": total}
        if call.surface == "vertex":
            out["totalBillableCharacters"] = total * 4
        out["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": total}]
        return out

    def _model_entry(self, model: str) -> dict[str, Any]:
        pretty = " ".join(w.capitalize() if not w[:1].isdigit() else w for w in model.split("-"))
        return {
            "name": f"models/{model}",
            "version": "001",
            "displayName": pretty,
            "description": f"Fake {pretty} served by FakeGeminiUpstream",
            "inputTokenLimit": 1_048_576,
            "outputTokenLimit": 65_536,
            "supportedGenerationMethods": [
                "generateContent",
                "countTokens",
                "createCachedContent",
                "batchGenerateContent",
            ],
            "temperature": 1,
            "topP": 0.95,
            "topK": 64,
            "maxTemperature": 2,
            "thinking": True,
        }

    async def _list_models(self, request: web.Request) -> web.StreamResponse:
        rec, early = await self._preamble(request, "gemini")
        if isinstance(early, web.StreamResponse):
            return early
        if isinstance(early, _Error):
            return self._error_response(early, None)
        if isinstance(early, _StreamFailure):
            return self._abort(request)
        try:
            size = int(rec.query.get("pageSize", "50"))
            start = int(rec.query.get("pageToken", "0") or 0)
        except ValueError:
            return self._error(400, "Invalid page token or page size.")
        size = 50 if size <= 0 else min(size, 1000)
        page = self.models[start : start + size]
        out: dict[str, Any] = {"models": [self._model_entry(m) for m in page]}
        if start + size < len(self.models):
            out["nextPageToken"] = str(start + size)
        return self._json(200, out)

    async def _get_model(self, request: web.Request) -> web.StreamResponse:
        target = request.match_info["target"]
        if ":" in target:
            await self._record(request, "gemini")
            return self._not_found_html(request.path)
        rec, early = await self._preamble(request, "gemini")
        model = target.removeprefix("models/")
        rec.model = model
        if isinstance(early, web.StreamResponse):
            return early
        if isinstance(early, _Error):
            return self._error_response(early, None)
        if isinstance(early, _StreamFailure):
            return self._abort(request)
        if model not in self.models:
            version = request.match_info["version"]
            return self._error(
                404,
                f"models/{model} is not found for API version {version}, or is not supported "
                "for GetModel. Call ListModels to see the list of available models and "
                "their supported methods.",
            )
        return self._json(200, self._model_entry(model))

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        await self._record(request, None)
        return self._not_found_html(request.path)
