"""How a Gemini upstream request is laid out for each client protocol.

The reference translates per client→Gemini pair, and its translators differ in details the canonical model does
not keep: how consecutive user turns (tool results, then the next question) become Gemini contents, whether
assistant reasoning is replayed as thought parts, the system instruction's role, empty tool descriptions, and
whether a thinking effort alone asks for the thoughts. `request_shape_for` picks the shape from the exchange's
client protocol; GeminiCodec.encode_request follows it.

User-turn layouts (the parts of one canonical user message, in order, each tagged as a tool result or not):
- `merge` (Claude clients): consecutive user turns become one content; when a text part follows a function
  response, the text parts move ahead of the others (each group keeps its order): Vertex AI rejects text after
  a function response.
- `split` (Chat and Responses clients): a run of tool results is its own content and so is a run of other
  parts, in order (the reference keeps a tool-result turn apart from the user text after it).
- `results_first` (no client known, Gemini clients): one content per message, function responses first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from proxyd.protocols.base import WireProtocol
from proxyd.protocols.codec import RequestContext

UserLayout = Literal["merge", "split", "results_first"]


@attrs.frozen
class GeminiRequestShape:
    """The Gemini request details that depend on the client protocol (see the module docstring)."""

    user_layout: UserLayout = "results_first"
    replay_thoughts: bool = False  # assistant reasoning text goes back as `thought: true` parts
    system_role: bool = False  # systemInstruction carries `role: "user"`
    empty_description: bool = False  # function declarations always carry `description` (may be "")
    effort_shows_thoughts: bool = True  # an effort/budget without an explicit choice sets includeThoughts


DEFAULT_SHAPE = GeminiRequestShape()

REQUEST_SHAPES: dict[WireProtocol, GeminiRequestShape] = {
    WireProtocol.CLAUDE: GeminiRequestShape(user_layout="merge"),
    WireProtocol.OPENAI_CHAT: GeminiRequestShape(user_layout="split", replay_thoughts=True, system_role=True),
    WireProtocol.OPENAI_COMPLETIONS: GeminiRequestShape(user_layout="split", system_role=True),
    # Responses: a reasoning effort sets the amount only; the thoughts are asked for with `reasoning.summary`.
    WireProtocol.OPENAI_RESPONSES: GeminiRequestShape(user_layout="split", replay_thoughts=True,
                                                      empty_description=True, effort_shows_thoughts=False),
}
"""Gemini request shape per client protocol; anything else (no context, Gemini clients) is DEFAULT_SHAPE."""


def request_shape_for(context: RequestContext) -> GeminiRequestShape:
    """The Gemini request shape for the exchange's client protocol (DEFAULT_SHAPE when unknown)."""
    if context.client is None:
        return DEFAULT_SHAPE
    shape = REQUEST_SHAPES.get(context.client, DEFAULT_SHAPE)
    if context.client is WireProtocol.CLAUDE and isinstance((context.client_body or {}).get("system"), list):
        shape = attrs.evolve(shape, system_role=True)  # a block list gets `role: "user"`, a string does not
    return shape


# A user message's encoded parts in order, each with whether it belongs to a tool result.
TaggedParts = list[tuple[bool, dict[str, Any]]]


def _is_response(part: Mapping[str, Any]) -> bool:
    return "functionResponse" in part or "function_response" in part


def text_first(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Text parts ahead of the others (each group in order) when a text part follows a function response."""
    seen_response = False
    for part in parts:
        if _is_response(part):
            seen_response = True
        elif seen_response and "text" in part:
            return [p for p in parts if "text" in p] + [p for p in parts if "text" not in p]
    return parts


def user_contents(tagged: TaggedParts, layout: UserLayout) -> list[list[dict[str, Any]]]:
    """The `parts` of the Gemini user content(s) for one canonical user message."""
    if not tagged:
        return []
    if layout == "results_first":
        responses = [p for _, p in tagged if _is_response(p)]
        return [responses + [p for _, p in tagged if not _is_response(p)]]
    if layout == "merge":
        return [text_first([p for _, p in tagged])]
    runs: list[list[dict[str, Any]]] = []
    last: bool | None = None
    for is_result, part in tagged:
        if is_result != last:
            runs.append([])
            last = is_result
        runs[-1].append(part)
    return runs


def merge_user_turns(contents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive user contents joined into one (text moved ahead of function responses, `text_first`);
    model contents are never joined (thought signatures refer to their part positions)."""
    out: list[dict[str, Any]] = []
    for content in contents:
        if out and content.get("role") == "user" and out[-1].get("role") == "user":
            out[-1] = {**out[-1], "parts": text_first([*out[-1]["parts"], *content["parts"]])}
        else:
            out.append(content)
    return out
