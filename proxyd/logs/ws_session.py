"""The request log of one Responses WebSocket session (`GET /v1/responses` upgraded), as the reference writes it.

A WebSocket session is one log file, written when the socket ends, not one per turn:

- ``REQUEST INFO`` says ``Method: GET``, ``Downstream Transport: websocket`` and, when an upstream was used,
  ``Upstream Transport: http`` / ``websocket`` / ``websocket+http`` (HTTP when there were HTTP attempts or an
  unnumbered ``API RESPONSE``); then the upgrade request's ``HEADERS``; no request body, no ``RESPONSE``.
- ``WEBSOCKET TIMELINE``: the client's messages (``websocket.request``), every frame sent to it
  (``websocket.response``) and how the session ended (``websocket.disconnect``: Go's close-error text, e.g.
  ``websocket: close 1005 (no status)``; ``websocket: close sent`` when the proxy ended it after an upstream
  failure, preceded by the failure's text when no error frame told the client).
- ``API WEBSOCKET TIMELINE``: the upstream Codex WebSocket: each turn's ``api.websocket.request`` (URL, auth,
  handshake headers, the ``response.create`` frame), ``api.websocket.handshake`` (status and headers of a new
  socket's 101), every upstream frame (``api.websocket.response``) and ``api.websocket.error`` (``Stage``: dial,
  send, read, unexpected_binary, upstream_error).
- The HTTP attempts of turns served over HTTP (``API REQUEST n`` / ``API RESPONSE n``, as in an HTTP log), one
  ``API ERROR RESPONSE`` per failed turn and, when no HTTP attempt answered, one ``API RESPONSE`` with the
  first upstream answer's time and the failed turns' texts.

Only written with ``request-log: true`` (a WebSocket session leaves no error-only log, as in the reference).
Each event's payload is capped at ``request-log-max-body-kb``; a session keeps at most
:data:`TIMELINE_BODIES` times that in timeline events and its first :data:`MAX_HTTP_ATTEMPTS` HTTP attempts; later
ones are only counted.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from proxyd import __version__
from proxyd.logs.request_log import (
    RequestLogCapture,
    RequestLogSettings,
    RequestLogWriter,
    canonical_header,
    describe_credential,
    mask_header,
    mask_url,
    render_api_requests,
    render_api_responses,
)
from proxyd.usage.stats import go_time

__all__ = ["CLOSE_SENT", "EOF_TEXT", "MAX_HTTP_ATTEMPTS", "TIMELINE_BODIES", "WebSocketSessionCapture",
           "close_error_text"]

TIMELINE_BODIES = 16  # a session's timelines keep at most this many body caps of event text
MAX_HTTP_ATTEMPTS = 64  # HTTP attempts (API REQUEST/RESPONSE n) a session keeps
CLOSE_SENT = "websocket: close sent"
# Names of gorilla/websocket's close codes (CloseError.Error); other codes are printed bare.
_CLOSE_NAMES = {
    1000: "normal", 1001: "going away", 1002: "protocol error", 1003: "unsupported data", 1005: "no status",
    1006: "abnormal closure", 1007: "invalid payload data", 1008: "policy violation", 1009: "message too big",
    1010: "mandatory extension missing", 1011: "internal server error", 1015: "TLS handshake error",
}
EOF_TEXT = "websocket: close 1006 (abnormal closure): unexpected EOF"
# Header names the reference sets without canonicalising them (Codex's `session_id` handshake header).
_CASE_PRESERVED = frozenset({"session_id"})


def close_error_text(code: int | None, reason: str = "") -> str:
    """Go's text for a WebSocket that ended with a close frame of ``code`` (0/None: a frame without a code)."""
    code = code or 1005
    name = _CLOSE_NAMES.get(code)
    text = f"websocket: close {code}" + (f" ({name})" if name else "")
    return f"{text}: {reason}" if reason else text


def _header_lines(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> list[str]:
    """``Name: value`` lines as the reference's timeline writes them: canonical names (``session_id`` kept),
    sorted byte-wise, secrets shortened; ``<none>`` for no headers."""
    items = list(headers.items() if isinstance(headers, Mapping) else headers or [])
    if not items:
        return ["<none>"]
    lines = [(name if name in _CASE_PRESERVED else canonical_header(name), mask_header(name, str(value)))
             for name, value in items]
    return [f"{name}: {value}" for name, value in sorted(lines, key=lambda item: item[0])]


def _text(data: str | bytes | bytearray | memoryview | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data.strip()
    return bytes(data).decode("utf-8", "replace").strip()


class WebSocketSessionCapture(RequestLogCapture):
    """What one WebSocket session did; every turn's pipeline feeds it as its capture (HTTP attempts land in the
    inherited lists, across turns), the socket code adds the timeline events, :meth:`end` writes the file."""

    def __init__(self, writer: RequestLogWriter | None, settings: RequestLogSettings, request_id: str) -> None:
        super().__init__(writer, settings, request_id)
        self.method = "GET"
        self.timeline: list[tuple[float, str, str]] = []  # (time, event, payload) of the client side
        self.api_timeline: list[tuple[float, str]] = []  # (time, rendered event body) of the upstream socket
        self.turn_errors: list[tuple[int, str]] = []
        self.api_response_at: float | None = None  # first upstream answer (the unnumbered API RESPONSE's time)
        self.dropped = False  # the proxy ended the session (no client close is recorded after that)
        self.dropped_events = 0
        self.dropped_attempts = 0
        self._skipping = False  # the running HTTP attempt is beyond MAX_HTTP_ATTEMPTS (not kept)
        self._budget = max(settings.max_body_bytes, 1) * TIMELINE_BODIES
        self._socket_attempt = False  # the latest upstream attempt went over the upstream WebSocket
        self._pending: tuple[int, str] | None = None  # the upstream socket's failure of the running turn

    @property
    def full(self) -> bool:
        return True  # only created with `request-log: true`

    # ------------------------------------------------------------------ the client side

    def _keep(self, text: str) -> str | None:
        cap = self.settings.max_body_bytes
        if len(text) > cap:
            text = f"{text[:cap]}\n[proxyd: payload truncated: {cap} of {len(text)} characters kept]"
        if len(text) > self._budget:
            self.dropped_events += 1
            return None
        self._budget -= len(text)
        return text

    def _event(self, kind: str, payload: str | bytes | None) -> None:
        text = _text(payload)
        if text and (kept := self._keep(text)) is not None:
            self.timeline.append((time.time(), kind, kept))

    def client_message(self, payload: str | bytes) -> None:
        """A message the client sent (``websocket.request``)."""
        self._event("request", payload)

    def client_frame(self, payload: str | bytes) -> None:
        """A frame sent to the client (``websocket.response``)."""
        self._event("response", payload)

    def client_closed(self, text: str) -> None:
        """The client's side ended (its close or a broken connection; ``websocket.disconnect``), unless the
        proxy had ended the session first."""
        if not self.dropped:
            self._event("disconnect", text)

    def close_sent(self, reason: str | None = None) -> None:
        """The proxy ends the session after an upstream failure; ``reason`` is the failure's text when no error
        frame reported it to the client."""
        if self.dropped:
            return
        if reason:
            self._event("disconnect", reason)
        self._event("disconnect", CLOSE_SENT)
        self.dropped = True

    # ------------------------------------------------------------------ turns

    def turn_started(self) -> None:
        self._pending = None

    def turn_failed(self, status: int, text: str) -> tuple[int, str]:
        """A turn ended in an error (``API ERROR RESPONSE``); an upstream socket failure of the turn, when there
        was one, is what is recorded. Returns the recorded status and text."""
        if self._pending is not None:
            status, text = self._pending
            self._pending = None
        text = text.strip()
        self.turn_errors.append((status, text))
        self._answered()
        return status, text

    def _answered(self) -> None:
        if self.api_response_at is None:
            self.api_response_at = time.time()

    # ------------------------------------------------------------------ the upstream WebSocket

    def _api_event(self, text: str) -> None:
        if (kept := self._keep(text.strip())) is not None:
            self.api_timeline.append((time.time(), kept))

    def api_websocket_request(self, url: str, headers: Mapping[str, str], body: bytes | str | None,
                              credential: Any = None) -> None:
        self._socket_attempt = True
        self._skipping = False
        self._pending = None  # a new attempt: an earlier one's failure is not the turn's
        lines = ["Event: api.websocket.request", f"Upstream URL: {mask_url(url)}"]
        if credential is not None:
            lines.append(f"Auth: {describe_credential(credential)}")
        lines += ["Headers:", *_header_lines(headers), "", "Body:", _text(body) or "<empty>"]
        self._api_event("\n".join(lines))

    def api_websocket_handshake(self, status: int, headers: Mapping[str, str] | None) -> None:
        lines = ["Event: api.websocket.handshake"]
        if status > 0:
            lines.append(f"Status: {status}")
        self._api_event("\n".join([*lines, "Headers:", *_header_lines(headers)]))

    def api_websocket_response(self, payload: str | bytes) -> None:
        text = _text(payload)
        if text:
            self._answered()
            self._api_event(f"Event: api.websocket.response\n{text}")

    def api_websocket_error(self, stage: str, text: str, status: int | None = None) -> None:
        """An upstream socket failure; with ``status`` it is the running turn's failure (see :meth:`turn_failed`)."""
        self._answered()
        self._api_event(f"Event: api.websocket.error\nStage: {stage}\nError: {text}")
        if status is not None:
            self._pending = (status, text)

    # ------------------------------------------------------------------ the pipeline's capture points

    def upstream_request(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None,
                         credential: Any = None) -> None:
        self._socket_attempt = False
        self._pending = None
        self._skipping = len(self.upstream_requests) >= MAX_HTTP_ATTEMPTS
        if self._skipping:
            self.dropped_attempts += 1
            return
        super().upstream_request(method, url, headers, body, credential)

    def upstream_response(self, status: int, headers: Mapping[str, str]) -> None:
        self._answered()
        if not self._skipping:
            super().upstream_response(status, headers)

    def upstream_body(self, data: bytes | str | None) -> None:
        if not self._skipping:
            super().upstream_body(data)

    def upstream_error(self, status: int, text: bytes | str, headers: Mapping[str, str] | None = None) -> None:
        if self._socket_attempt:  # a socket attempt's failure is in the API WEBSOCKET TIMELINE already
            return
        self._answered()
        if self._skipping:
            return
        if len(self.upstream_answers) >= len(self.upstream_requests):
            headers = None  # the attempt's answer is logged already (a refused upgrade's)
        super().upstream_error(status, text, headers)

    def client_request(self, method: str, url: str, headers: Any, body: bytes | None = None) -> None:
        """The upgrade request (the turns' pipelines do not call this)."""
        super().client_request(method, url, headers)

    def request_body(self, body: bytes | None) -> None:
        return None  # a turn's body is its websocket.request event

    def client_response(self, status: int, headers: Any) -> None:
        return None  # frames are the client_frame events

    def client_body(self, data: bytes | str | None) -> None:
        return None

    def finish(self, status: int, body: bytes | str | None = None) -> None:
        return None  # a turn's end; the session ends with end()

    def end(self) -> None:
        """The socket is closed: write the file (once)."""
        if self.finished:
            return
        self.finished = True
        if self.writer is not None:
            self.writer.submit(self, error=False)

    # ------------------------------------------------------------------ rendering

    def _upstream_transport(self) -> str:
        http = bool(self.upstream_requests or self.upstream_answers or self._unnumbered_response())
        socket = bool(self.api_timeline)
        if http and socket:
            return "websocket+http"
        return "websocket" if socket else "http" if http else ""

    def _unnumbered_response(self) -> str:
        """The reference's plain ``API RESPONSE`` payload: the failed turns' texts when no HTTP answer was kept
        (a text already in it is not repeated)."""
        if self.upstream_answers:
            return ""
        parts: list[str] = []
        for _, text in self.turn_errors:
            if text and not any(text in part for part in parts):
                parts.append(text)
        return "\n".join(parts)

    def render(self) -> bytes:
        info = ["=== REQUEST INFO ===", f"Version: {__version__}", f"URL: {self.url}", f"Method: {self.method}",
                "Downstream Transport: websocket"]
        if transport := self._upstream_transport():
            info.append(f"Upstream Transport: {transport}")
        info.append(f"Timestamp: {go_time(self.started)}")
        sections = ["\n".join(info), "\n".join(["=== HEADERS ===", *self.headers])]
        if self.timeline:
            events = [f"Timestamp: {go_time(at)}\nEvent: websocket.{kind}\n{payload}"
                      for at, kind, payload in self.timeline]
            sections.append("=== WEBSOCKET TIMELINE ===\n" + "\n\n".join(events))
        if self.api_timeline:
            events = [f"Timestamp: {go_time(at)}\n{text}" for at, text in self.api_timeline]
            sections.append("=== API WEBSOCKET TIMELINE ===\n" + "\n\n".join(events))
        if self.dropped_events:
            sections.append(f"[proxyd: {self.dropped_events} timeline events not kept: session log size limit]")
        if self.upstream_requests:
            sections.append(render_api_requests(self.upstream_requests))
        if self.dropped_attempts:
            sections.append(f"[proxyd: {self.dropped_attempts} upstream attempts not kept: session log size limit]")
        sections += [f"=== API ERROR RESPONSE ===\nHTTP Status: {status}\n{text}" for status, text in self.turn_errors]
        if self.upstream_answers:
            sections.append(render_api_responses(self.upstream_answers))
        elif unnumbered := self._unnumbered_response():
            stamp = go_time(self.api_response_at if self.api_response_at is not None else self.started)
            sections.append(f"=== API RESPONSE ===\nTimestamp: {stamp}\n{unnumbered}")
        return ("\n\n\n".join(section.rstrip("\n") for section in sections) + "\n\n\n").encode("utf-8", "replace")
