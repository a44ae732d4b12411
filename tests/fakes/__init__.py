"""In-process fake upstream servers for proxyd's tests."""

from .configs import compat_config
from .openai_upstream import FakeOpenAIUpstream, RecordedRequest, openai_error, split_text

__all__ = ["FakeOpenAIUpstream", "RecordedRequest", "compat_config", "openai_error", "split_text"]
