"""The codec of each wire protocol, imported lazily (a protocol without a codec can only pass through)."""

from __future__ import annotations

import functools
import importlib

from proxyd.protocols.base import WireProtocol
from proxyd.protocols.codec import Codec

_CODECS: dict[WireProtocol, tuple[str, str]] = {
    WireProtocol.OPENAI_CHAT: ("proxyd.protocols.openai_chat", "OpenAIChatCodec"),
    WireProtocol.OPENAI_COMPLETIONS: ("proxyd.protocols.openai_completions_codec", "OpenAICompletionsCodec"),
    WireProtocol.OPENAI_RESPONSES: ("proxyd.protocols.openai_responses", "OpenAIResponsesCodec"),
    WireProtocol.CLAUDE: ("proxyd.protocols.claude", "ClaudeCodec"),
    WireProtocol.GEMINI: ("proxyd.protocols.gemini", "GeminiCodec"),
}


@functools.cache
def codec_for(protocol: WireProtocol) -> Codec | None:
    """The protocol's codec instance (imported on first use), or None for a protocol without one."""
    entry = _CODECS.get(protocol)
    if entry is None:
        return None
    module_name, class_name = entry
    codec: Codec = getattr(importlib.import_module(module_name), class_name)()
    return codec
