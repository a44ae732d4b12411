"""In-process fake upstream servers for proxyd's tests."""

from .claude_upstream import ClaudeRecordedRequest, FakeClaudeUpstream, anthropic_error, estimate_input_tokens
from .codex_upstream import CodexRecordedRequest, FakeCodexUpstream, usage_limit_error
from .configs import MATRIX_CLIENT_KEY, compat_config, matrix_config
from .gemini_upstream import FakeGeminiUpstream, GeminiRecordedRequest, gemini_error, google_status
from .openai_upstream import FakeOpenAIUpstream, RecordedRequest, openai_error, split_text

__all__ = [
    "MATRIX_CLIENT_KEY",
    "ClaudeRecordedRequest",
    "CodexRecordedRequest",
    "FakeClaudeUpstream",
    "FakeCodexUpstream",
    "FakeGeminiUpstream",
    "FakeOpenAIUpstream",
    "GeminiRecordedRequest",
    "RecordedRequest",
    "anthropic_error",
    "compat_config",
    "estimate_input_tokens",
    "gemini_error",
    "google_status",
    "matrix_config",
    "openai_error",
    "split_text",
    "usage_limit_error",
]
