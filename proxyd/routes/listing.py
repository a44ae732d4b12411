"""Model list bodies in the OpenAI, Claude and Gemini shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from proxyd.models.registry import ModelInfo


def openai_model_list(models: list[ModelInfo]) -> dict[str, Any]:
    data = []
    for m in models:
        entry: dict[str, Any] = {"id": m.id, "object": "model"}
        if m.created:
            entry["created"] = m.created
        entry["owned_by"] = m.owned_by
        data.append(entry)
    return {"object": "list", "data": data}


# Limits a Claude-shaped listing reports for models whose catalogue entry names none (the reference's defaults).
CLAUDE_DEFAULT_INPUT_TOKENS = 200_000
CLAUDE_DEFAULT_MAX_TOKENS = 64_000


def claude_model_list(models: list[ModelInfo]) -> dict[str, Any]:
    """Anthropic's `GET /v1/models` shape: RFC 3339 `created_at`, display name and token limits per model."""
    data = []
    for m in models:
        entry: dict[str, Any] = {"id": m.id, "object": "model", "owned_by": m.owned_by, "type": "model"}
        if m.created:
            entry["created_at"] = datetime.fromtimestamp(m.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        entry["display_name"] = m.display_name or m.id
        entry["max_input_tokens"] = m.details.get("context_length") or CLAUDE_DEFAULT_INPUT_TOKENS
        entry["max_tokens"] = m.details.get("max_completion_tokens") or CLAUDE_DEFAULT_MAX_TOKENS
        data.append(entry)
    return {
        "data": data,
        "first_id": data[0]["id"] if data else "",
        "has_more": False,
        "last_id": data[-1]["id"] if data else "",
    }


_GEMINI_FIELDS = ("version", "inputTokenLimit", "outputTokenLimit", "supportedGenerationMethods",
                  "supportedInputModalities", "supportedOutputModalities")


def gemini_model_entry(m: ModelInfo, *, defaults: bool = True) -> dict[str, Any]:
    """A Gemini `Model`: `models/<id>`, the catalogue's fields, and the reference's defaults when listing."""
    name = m.id if m.id.startswith("models/") else f"models/{m.id}"
    entry: dict[str, Any] = {"name": name}
    if m.display_name or defaults:
        entry["displayName"] = m.display_name or m.id
    description = m.details.get("description")
    if description or defaults:
        entry["description"] = description or m.id
    for field in _GEMINI_FIELDS:
        if field in m.details:
            entry[field] = m.details[field]
    if defaults:
        entry.setdefault("supportedGenerationMethods", ["generateContent"])
    return entry


def gemini_model_list(models: list[ModelInfo]) -> dict[str, Any]:
    return {"models": [gemini_model_entry(m) for m in models]}
