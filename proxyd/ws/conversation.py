"""Conversation state of one Responses WebSocket connection (api-surface §7.8).

Client messages are `response.create` and `response.append`, one JSON object each. The connection remembers
the last request it ran (its input already merged) and the `output` of that request's `response.completed`.

* The first `response.create` is a Responses request: `type` removed, `input` defaulted to `[]` (it must be
  an array), `model` required, `stream` forced true. A `previous_response_id` on it names nothing this socket
  knows: 409 `previous_response_not_found`, so the client resends the whole conversation.
* `response.append`, and a later `response.create` carrying `previous_response_id` (Codex CLI's incremental
  turn), continue the conversation: input = previous input + previous output + this message's input;
  `previous_response_id` is removed; `model` and `instructions` are inherited when absent. The id must be the
  last response's (else 409 as above).
* A later `response.create` without `previous_response_id` is a full request of its own (Codex CLI sends the
  whole transcript when it cannot send an increment); only `model`/`instructions` are inherited when absent.
  The reference v6.9.0 merged these too, which doubles a Codex CLI transcript; its later versions do not.
* On an upstream WebSocket (a `websockets: true` Codex credential) that still holds the last response, a
  follow-up travels incrementally: only its own input, chained with `previous_response_id` (the client's, or
  the last response's). A create whose input holds assistant messages or tool calls is a whole transcript
  and is never chained.
* `generate: false` on a create (Codex CLI's pre-warm) is answered locally with `response.created` +
  `response.completed` (empty output) and stored as the conversation's state; nothing goes upstream.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import attrs

CREATE = "response.create"
APPEND = "response.append"
_NOT_FORWARDED = ("type", "previous_response_id", "generate")
_INHERITED = ("model", "instructions")
PREVIOUS_NOT_FOUND = (
    "Previous response is not available on this websocket; resend the full conversation input without "
    "previous_response_id"
)


class TurnError(Exception):
    """A client message that cannot start a turn; answered with an error frame, the socket stays open."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param

    def error_object(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": "invalid_request_error"}
        if self.code:
            error["code"] = self.code
        if self.param:
            error["param"] = self.param
        return error


@attrs.frozen
class Turn:
    """A normalized request ready for the pipeline; `prewarm` turns are answered locally.

    `delta` and `continues` say how the turn travels on an upstream WebSocket that still holds the response
    `continues` (proxyd/ws/upstream.py): only `delta` as input, with `previous_response_id: continues`.
    """

    body: dict[str, Any]
    prewarm: bool = False
    delta: list[Any] | None = None
    continues: str | None = None


# Input items that only a whole transcript carries: such a create replaces the conversation, never continues it.
def _is_transcript(items: list[Any]) -> bool:
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind in ("function_call", "custom_tool_call") or (kind in (None, "message") and
                                                               item.get("role") == "assistant"):
            return True
    return False


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _previous_id(message: dict[str, Any]) -> str | None:
    value = message.get("previous_response_id")
    return value if isinstance(value, str) and value.strip() else None


def _input_of(message: dict[str, Any], *, required: bool) -> list[Any]:
    value = message.get("input")
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise TurnError(400, "websocket request requires array field: input")
    return value


@attrs.define
class Conversation:
    """What one socket remembers between turns."""

    request: dict[str, Any] | None = None
    output: list[Any] = attrs.Factory(list)
    response_id: str | None = None

    def next_turn(self, message: Any) -> Turn:
        """Validate and normalize one client message (TurnError when it cannot run)."""
        if not isinstance(message, dict):
            raise TurnError(400, "websocket request must be a JSON object")
        kind = message.get("type")
        if kind not in (CREATE, APPEND):
            raise TurnError(400, f"unsupported websocket request type: {kind if isinstance(kind, str) else ''}")
        if self.request is None:
            return self._first(message, kind)
        return self._follow_up(message, kind)

    def _first(self, message: dict[str, Any], kind: str) -> Turn:
        if kind == APPEND:
            raise TurnError(400, "websocket request received before response.create")
        if _blank(message.get("model")) or not isinstance(message.get("model"), str):
            raise TurnError(400, "missing model in response.create request")
        items = _input_of(message, required=False)
        if _previous_id(message) is not None:
            raise TurnError(409, PREVIOUS_NOT_FOUND, code="previous_response_not_found", param="previous_response_id")
        body = {k: v for k, v in message.items() if k not in _NOT_FORWARDED}
        body["input"] = list(items)
        body["stream"] = True
        return Turn(body, prewarm=message.get("generate") is False)

    def _follow_up(self, message: dict[str, Any], kind: str) -> Turn:
        assert self.request is not None
        items = _input_of(message, required=kind == APPEND)
        previous = _previous_id(message)
        if previous is not None and previous != self.response_id:
            raise TurnError(409, PREVIOUS_NOT_FOUND, code="previous_response_not_found", param="previous_response_id")
        body = {k: v for k, v in message.items() if k not in _NOT_FORWARDED}
        if kind == APPEND or previous is not None:
            earlier = self.request.get("input")
            body["input"] = [*(earlier if isinstance(earlier, list) else []), *self.output, *items]
        else:
            body["input"] = list(items)
        for name in _INHERITED:
            if _blank(body.get(name)) and not _blank(self.request.get(name)):
                body[name] = self.request[name]
        if _blank(body.get("model")):
            raise TurnError(400, "missing model in response.create request")
        body["stream"] = True
        if kind == APPEND or previous is not None:
            delta, continues = list(items), previous or self.response_id
        elif not _is_transcript(items):
            delta, continues = list(items), self.response_id
        else:
            delta, continues = None, None
        return Turn(body, prewarm=kind == CREATE and message.get("generate") is False, delta=delta,
                    continues=continues)

    def steered(self, steer: dict[str, Any], response: dict[str, Any]) -> None:
        """Store the answer to a `response.steer` relayed between turns: its input joins the transcript (a
        string as a user message) and its response becomes the one later turns continue."""
        if self.request is None:
            return
        value = steer.get("input")
        items = ([{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
                 if isinstance(value, str) else list(value) if isinstance(value, list) else [])
        earlier = self.request.get("input")
        request = {**self.request, "input": [*(earlier if isinstance(earlier, list) else []), *self.output, *items]}
        self.remember(request, response)

    def remember(self, request: dict[str, Any], response: dict[str, Any]) -> None:
        """Store a finished turn: its request and its completed response's output and id."""
        output = response.get("output")
        self.request = request
        self.output = list(output) if isinstance(output, list) else []
        rid = response.get("id")
        self.response_id = rid if isinstance(rid, str) else None


def prewarm_frames(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two locally made frames answering a `generate: false` create, and nothing else."""
    rid = f"resp_{uuid.uuid4()}"
    created_at = int(time.time())
    base: dict[str, Any] = {"id": rid, "object": "response", "created_at": created_at}
    model = body.get("model")
    created = {"type": "response.created", "sequence_number": 0, "response": {
        **base, "status": "in_progress", "background": False, "error": None, "output": [], "model": model}}
    completed = {"type": "response.completed", "sequence_number": 1, "response": {
        **base, "status": "completed", "background": False, "error": None, "output": [],
        "usage": {"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 0,
                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 0},
        "model": model}}
    return created, completed
