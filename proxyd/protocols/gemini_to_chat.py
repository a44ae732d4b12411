"""What the reference's Gemini→Chat request translator takes from a Gemini client's history beyond the canonical
model: the tool results as the function responses' JSON, and its own ids for calls Gemini sent without one.

- A `tool` message carries the functionResponse's `response` as compact JSON text (`{"result":"18C"}`); when the
  response has a `content` field, that field alone (a string as it is, anything else as JSON text). The
  canonical ToolResultPart keeps only the text, so `function_response_texts` reads them from the client body,
  in order; the chat encoder uses each one whose function name matches its result.
- A call Gemini sent without an id is minted `call_gemini_<n>` by the Gemini decoder (the ids other upstreams
  get); towards Chat upstreams the reference's ids are `call_` + 24 hex characters, so `chat_call_id` turns a
  minted id into that shape, deterministically (the same history gives the same ids on every turn).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

_MINTED = re.compile(r"^call_gemini_\d{16}$")


def chat_call_id(call_id: str) -> str:
    """A call id as sent to a Chat upstream: Gemini-decoder minted ids become `call_<24 hex>`, others stay."""
    if not _MINTED.match(call_id):
        return call_id
    return "call_" + hashlib.sha256(call_id.encode()).hexdigest()[:24]


def _response_text(response: Any) -> str:
    if isinstance(response, Mapping) and "content" in response:
        response = response["content"]
        if isinstance(response, str):
            return response
    return json.dumps(response, ensure_ascii=False, separators=(",", ":"))


def function_response_texts(body: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """(function name, tool message text) for every functionResponse of a Gemini request body, in order."""
    out: list[tuple[str, str]] = []
    contents = (body or {}).get("contents")
    for content in contents if isinstance(contents, list) else ():
        parts = content.get("parts") if isinstance(content, Mapping) else None
        if isinstance(parts, Mapping):
            parts = [parts]
        for part in parts if isinstance(parts, list) else ():
            if not isinstance(part, Mapping):
                continue
            response = part.get("functionResponse", part.get("function_response"))
            if not isinstance(response, Mapping):
                continue
            name = response.get("name")
            text = _response_text(response["response"]) if "response" in response else ""
            out.append((name if isinstance(name, str) else "", text))
    return tuple(out)
