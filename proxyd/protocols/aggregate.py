"""Fold a canonical event stream into one canonical Response (for upstreams that only stream)."""

from __future__ import annotations

from proxyd.protocols.canonical import (
    Finish,
    FinishReason,
    Part,
    Response,
    StreamError,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    ThinkingSignature,
    ToolCallDelta,
    ToolCallPart,
    ToolCallStart,
    Usage,
    UsageUpdate,
)


class StreamAggregator:
    """Collects events in order; `response()` builds the Response (text and thinking runs merged)."""

    def __init__(self) -> None:
        self.start: StreamStart | None = None
        self.finish: Finish | None = None
        self.usage: Usage | None = None
        self.error: StreamError | None = None
        self._parts: list[Part | list[str]] = []  # lists are open text/thinking runs
        self._kinds: list[str] = []
        self._tools: dict[int, int] = {}  # tool index → position in _parts
        self._tool_args: dict[int, list[str]] = {}
        self._signatures: dict[int, ThinkingSignature] = {}

    def feed(self, event: StreamEvent) -> None:
        if isinstance(event, StreamStart):
            self.start = self.start or event
        elif isinstance(event, TextDelta):
            self._append("text", event.text)
        elif isinstance(event, ThinkingDelta):
            self._append("thinking", event.text)
        elif isinstance(event, ThinkingSignature):
            if not self._kinds or self._kinds[-1] != "thinking":
                self._append("thinking", "")
            self._signatures[len(self._parts) - 1] = event
            self._kinds[-1] = "thinking-closed"
        elif isinstance(event, ToolCallStart):
            self._tools[event.index] = len(self._parts)
            self._tool_args[event.index] = []
            self._parts.append(ToolCallPart(id=event.id, name=event.name, arguments="", signature=event.signature,
                                            signature_source=event.signature_source))
            self._kinds.append("tool")
        elif isinstance(event, ToolCallDelta):
            self._tool_args.setdefault(event.index, []).append(event.arguments)
        elif isinstance(event, UsageUpdate):
            self.usage = event.usage
        elif isinstance(event, Finish):
            self.finish = event
        elif isinstance(event, StreamError):
            self.error = event

    def _append(self, kind: str, text: str) -> None:
        if self._kinds and self._kinds[-1] == kind:
            run = self._parts[-1]
            assert isinstance(run, list)
            run.append(text)
        else:
            self._parts.append([text])
            self._kinds.append(kind)

    def response(self) -> Response:
        parts: list[Part] = []
        tool_positions = {pos: index for index, pos in self._tools.items()}
        for pos, (item, kind) in enumerate(zip(self._parts, self._kinds, strict=True)):
            if isinstance(item, list):
                text = "".join(item)
                if kind == "text":
                    if text:
                        parts.append(TextPart(text))
                    continue
                sig = self._signatures.get(pos)
                parts.append(ThinkingPart(
                    text=text,
                    signature=sig.signature if sig else None,
                    signature_source=sig.source if sig else None,
                    redacted=sig.redacted if sig else False,
                    encrypted=sig.encrypted if sig else None,
                ))
            else:
                assert isinstance(item, ToolCallPart)
                args = "".join(self._tool_args.get(tool_positions[pos], [])) or "{}"
                parts.append(ToolCallPart(id=item.id, name=item.name, arguments=args, signature=item.signature,
                                          signature_source=item.signature_source))
        has_tools = any(isinstance(p, ToolCallPart) for p in parts)
        reason = self.finish.reason if self.finish else (FinishReason.TOOL_CALLS if has_tools else FinishReason.STOP)
        start = self.start or StreamStart()
        return Response(
            id=start.id,
            model=start.model,
            created=start.created,
            content=tuple(parts),
            finish_reason=reason,
            usage=self.usage,
            native_finish_reason=self.finish.native if self.finish else None,
            stop_sequence=self.finish.stop_sequence if self.finish else None,
        )
