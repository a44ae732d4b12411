"""In-process fake upstream servers for proxyd's tests."""

from .claude_upstream import ClaudeRecordedRequest, FakeClaudeUpstream, anthropic_error, estimate_input_tokens
from .codex_upstream import CodexRecordedRequest, FakeCodexUpstream, usage_limit_error
from .configs import compat_config
from .openai_upstream import FakeOpenAIUpstream, RecordedRequest, openai_error, split_text

__all__ = [
    "ClaudeRecordedRequest",
    "CodexRecordedRequest",
    "FakeClaudeUpstream",
    "FakeCodexUpstream",
    "FakeOpenAIUpstream",
    "RecordedRequest",
    "anthropic_error",
    "compat_config",
    "estimate_input_tokens",
    "openai_error",
    "split_text",
    "usage_limit_error",
]
