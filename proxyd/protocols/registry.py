"""The codec of each wire protocol (imported lazily; a protocol without a codec can only pass through)."""

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
    """The protocol's codec instance, or None when none is available."""
    module_name, class_name = _CODECS[protocol]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    codec_class = getattr(module, class_name, None)
    return codec_class() if codec_class is not None else None
