"""In-process fake upstream servers for proxyd's tests."""

from .openai_upstream import FakeOpenAIUpstream, RecordedRequest, openai_error, split_text

__all__ = ["FakeOpenAIUpstream", "RecordedRequest", "openai_error", "split_text"]
