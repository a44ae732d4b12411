"""The Gemini → Gemini request normaliser: what a Gemini client's body gets before it reaches a Gemini upstream.

Same-protocol traffic is not translated, but the reference still normalises the body (translation.md §2.1, §3.8),
and Gemini upstreams see the result:
- `tools[].functionDeclarations` → `function_declarations`, each declaration's `parameters` →
  `parametersJsonSchema`;
- contents without a valid role get one: `user` first, then alternating (`model` after `user`, else `user`);
- in `model` turns every `functionCall` part and every part carrying a `thoughtSignature` gets the sentinel
  `skip_thought_signature_validator` (replayed history is not rejected for its signatures);
- `generationConfig.responseSchema` → `responseJsonSchema`;
- an empty `functionResponse.name` right after a model turn with calls is filled from the calls, in order;
- the default safety settings when the client sent none.
The client's body is never modified; a body without `contents` only gets the safety settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxyd.protocols.gemini import SENTINEL_SIGNATURE, with_default_safety

_ROLES = frozenset({"user", "model"})


def normalise_passthrough(body: dict[str, Any]) -> dict[str, Any]:
    """A Gemini client body as the reference sends it on to a Gemini upstream (see the module docstring)."""
    contents = body.get("contents")
    if not isinstance(contents, list):
        return with_default_safety(body)
    out = dict(body)
    out["contents"] = _contents(contents)
    tools = body.get("tools")
    if isinstance(tools, list):
        out["tools"] = [_tool(tool) for tool in tools]
    config = body.get("generationConfig")
    if isinstance(config, Mapping) and "responseSchema" in config and "responseJsonSchema" not in config:
        config = {("responseJsonSchema" if k == "responseSchema" else k): v for k, v in config.items()}
        out["generationConfig"] = config
    return with_default_safety(out)


def _tool(tool: Any) -> Any:
    if not isinstance(tool, Mapping):
        return tool
    declarations = tool.get("function_declarations", tool.get("functionDeclarations"))
    if not isinstance(declarations, list):
        return tool
    out = {k: v for k, v in tool.items() if k not in ("functionDeclarations", "function_declarations")}
    out["function_declarations"] = [_declaration(d) for d in declarations]
    return out


def _declaration(declaration: Any) -> Any:
    if not isinstance(declaration, Mapping) or "parameters" not in declaration:
        return declaration
    if "parametersJsonSchema" in declaration:
        return declaration
    return {("parametersJsonSchema" if k == "parameters" else k): v for k, v in declaration.items()}


def _contents(contents: list[Any]) -> list[Any]:
    out: list[Any] = []
    previous: str | None = None
    call_names: list[str] = []  # the calls of the model turn just before, for nameless function responses
    for content in contents:
        if not isinstance(content, Mapping):
            out.append(content)
            continue
        turn = dict(content)
        role = turn.get("role")
        if role not in _ROLES:
            role = "user" if previous is None else ("model" if previous == "user" else "user")
            turn["role"] = role
        parts = turn.get("parts")
        if isinstance(parts, list):
            if role == "model":
                turn["parts"] = [_signed(part) for part in parts]
            elif call_names:
                turn["parts"] = _named_responses(parts, call_names)
        call_names = _call_names(parts) if role == "model" else []
        previous = role
        out.append(turn)
    return out


def _signed(part: Any) -> Any:
    if isinstance(part, Mapping) and ("functionCall" in part or "function_call" in part or "thoughtSignature" in part
                                      or "thought_signature" in part):
        signed = {k: v for k, v in part.items() if k != "thought_signature"}
        signed["thoughtSignature"] = SENTINEL_SIGNATURE
        return signed
    return part


def _call_names(parts: Any) -> list[str]:
    names: list[str] = []
    for part in parts if isinstance(parts, list) else ():
        call = part.get("functionCall", part.get("function_call")) if isinstance(part, Mapping) else None
        if isinstance(call, Mapping):
            name = call.get("name")
            names.append(name if isinstance(name, str) else "")
    return names


def _named_responses(parts: list[Any], names: list[str]) -> list[Any]:
    out: list[Any] = []
    position = 0
    for part in parts:
        key = "functionResponse" if isinstance(part, Mapping) and "functionResponse" in part else "function_response"
        response = part.get(key) if isinstance(part, Mapping) else None
        if not isinstance(response, Mapping):
            out.append(part)
            continue
        if not response.get("name") and position < len(names):
            part = {**part, key: {**response, "name": names[position]}}
        position += 1
        out.append(part)
    return out
