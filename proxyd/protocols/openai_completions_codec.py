"""Legacy OpenAI `/v1/completions` as a client protocol, layered on the Chat Completions codec.

Requests go through `openai_completions.completions_request_to_chat` (the reference's field mapping) and then
the chat decoder; answers are built as chat objects and turned into `text_completion` objects by the same
module. No upstream speaks legacy completions, so the upstream-side methods raise NotImplementedError.

Lossy: everything the legacy mapping drops (`n`, `suffix`, `best_of`, `user`, `seed`, `logit_bias`…), `logprobs`
and `echo` (no canonical field), thinking and tool calls in answers (a text completion carries text only); a
`tool_calls` finish reason is reported as `stop`.
"""

from __future__ import annotations

from typing import Any

from proxyd.protocols.base import WireProtocol
from proxyd.protocols.canonical import Request, Response
from proxyd.protocols.codec import (
    NO_CONTEXT,
    NO_REQUEST_CONTEXT,
    AnswerContext,
    CodecError,
    RequestContext,
    StreamDecoder,
)
from proxyd.protocols.openai_chat import ChatStreamEncoder, OpenAIChatCodec, encode_chat_response, shape_for
from proxyd.protocols.openai_completions import (
    chat_chunk_to_completion,
    chat_response_to_completion,
    completions_request_to_chat,
)

_LEGACY_FINISH = {"tool_calls": "stop", "function_call": "stop"}


def _legacy_choices(completion: dict[str, Any]) -> dict[str, Any]:
    for choice in completion.get("choices") or []:
        if choice.get("text") is None:
            choice["text"] = ""
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            choice["finish_reason"] = _LEGACY_FINISH.get(reason, reason)
    return completion


class CompletionsStreamEncoder(ChatStreamEncoder):
    """Canonical stream events → `text_completion` chunks (chat chunks mapped; empty ones skipped)."""

    def _frame(self, chunks: list[dict[str, Any]]) -> bytes:  # type: ignore[override]
        legacy: list[dict[str, Any]] = []
        for chunk in chunks:
            if "error" in chunk:
                legacy.append(chunk)
                continue
            mapped = chat_chunk_to_completion(chunk)
            if mapped is not None:
                legacy.append(_legacy_choices(mapped))
        return ChatStreamEncoder._frame(legacy)


class OpenAICompletionsCodec:
    """The legacy completions codec (client side only)."""

    protocol = WireProtocol.OPENAI_COMPLETIONS

    def __init__(self) -> None:
        self._chat = OpenAIChatCodec()

    def decode_request(self, body: dict[str, Any], *, model: str, stream: bool) -> Request:
        if not isinstance(body, dict):
            raise CodecError("", "request body must be a JSON object")
        return self._chat.decode_request(completions_request_to_chat(body), model=model, stream=stream)

    def encode_response(
        self, response: Response, *, model: str, context: AnswerContext = NO_CONTEXT
    ) -> dict[str, Any]:
        chat = encode_chat_response(response, model, shape_for(context))
        return _legacy_choices(chat_response_to_completion(chat))

    def stream_encoder(self, *, model: str, context: AnswerContext = NO_CONTEXT) -> CompletionsStreamEncoder:
        return CompletionsStreamEncoder(model=model, context=context)

    def encode_request(
        self, request: Request, *, model: str, context: RequestContext = NO_REQUEST_CONTEXT
    ) -> dict[str, Any]:
        raise NotImplementedError("no upstream speaks legacy completions")

    def decode_response(self, body: dict[str, Any]) -> Response:
        raise NotImplementedError("no upstream speaks legacy completions")

    def stream_decoder(self) -> StreamDecoder:
        raise NotImplementedError("no upstream speaks legacy completions")

