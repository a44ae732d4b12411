"""Codex multi-agent (collaboration) requests as the recorded reference build prepares them for Codex upstreams.

Official Codex clients (`codex_cli_rs/…`, `codex-tui/…`, `Codex Desktop/…`) declare their sub-agent tools in a
`collaboration` namespace (`spawn_agent`, `send_message`, `followup_task`). Before such a request reaches a Codex
upstream:

* the `encrypted` marker is removed from those tools' `message` parameter, so the messages stay readable;
* `spawn_agent`'s description gets an "Available model overrides" section listing the models proxyd serves
  (from its catalogue: description, reasoning efforts), placed before the line that starts "Spawns an agent";
* the namespace is renamed `collaboration-optimize` (unless the client declares that name itself); answers are
  renamed back (`restore_text`) so the client only ever sees its own namespace.

A sub-agent request (`X-Openai-Subagent: collab_spawn`) may start with the parent's delegation result, a
`function_call_output` of the `codex_app` namespace whose call is not in the input. The upstream rejects an output
without its call, so each such orphan becomes a user message `Tool output from <namespace>__<name>:\n<output>`.
Such requests are not given a derived session id either (codex_session.py): a sub-agent is not its parent's
conversation.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

SUBAGENT_HEADER = "X-Openai-Subagent"
COLLAB_SPAWN = "collab_spawn"
NAMESPACE = "collaboration"
OPTIMIZED_NAMESPACE = "collaboration-optimize"
_OPTIMIZED_PREFIX = OPTIMIZED_NAMESPACE + "__"
_MESSAGE_TOOLS = frozenset({"spawn_agent", "send_message", "followup_task"})
_SPAWN_TOOL = "spawn_agent"
_SPAWN_MARKER = "Spawns an agent"
MODELS_HEADING = "Available model overrides (optional; inherited parent model is preferred):"
_DELEGATION_NAMESPACE = "codex_app"
_EFFORTS = ("none", "low", "medium", "high", "xhigh", "max", "ultra")
# Models without reasoning levels of their own are offered with the Codex default model's efforts.
DEFAULT_EFFORTS = ("low", "medium", "high", "xhigh")


def is_codex_client(user_agent: str | None) -> bool:
    """The official Codex client identities the reference prepares collaboration tools for."""
    ua = (user_agent or "").strip()
    return ua.startswith(("Codex Desktop/", "codex-tui/", "codex_cli_rs/")) or ua == "codex_cli_rs"


def is_collab_spawn(headers: Mapping[str, str]) -> bool:
    """The request is a Codex sub-agent spawned by a parent agent (`X-Openai-Subagent: collab_spawn`)."""
    return (headers.get(SUBAGENT_HEADER) or "").strip().lower() == COLLAB_SPAWN


# ------------------------------------------------------------------------------------------------ orphan outputs

def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    return json.dumps(output, ensure_ascii=False, separators=(",", ":"))


def rewrite_orphan_delegations(items: list[Any]) -> list[Any]:
    """Input items with every `codex_app` function_call_output lacking its call turned into a user message
    (calls are consumed in order, so a second output of one call is an orphan too)."""
    calls = Counter(item.get("call_id") for item in items
                    if isinstance(item, Mapping) and item.get("type") == "function_call"
                    and isinstance(item.get("call_id"), str) and item.get("call_id"))
    out: list[Any] = []
    for item in items:
        if (not isinstance(item, Mapping) or item.get("type") != "function_call_output"
                or item.get("namespace") != _DELEGATION_NAMESPACE):
            out.append(item)
            continue
        call_id = item.get("call_id")
        if isinstance(call_id, str) and call_id and calls[call_id] > 0:
            calls[call_id] -= 1
            out.append(item)
            continue
        name = item.get("name") if isinstance(item.get("name"), str) else ""
        text = f"Tool output from {_DELEGATION_NAMESPACE}__{name}:\n{_output_text(item.get('output'))}"
        out.append({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
    return out


# ------------------------------------------------------------------------------------------------ tools

def _tool_lists(body: Mapping[str, Any]) -> Iterable[list[Any]]:
    """The body's tool arrays: top-level `tools` and each `additional_tools` input item's."""
    if isinstance(body.get("tools"), list):
        yield body["tools"]
    for item in body.get("input") if isinstance(body.get("input"), list) else ():
        if isinstance(item, Mapping) and item.get("type") == "additional_tools" and isinstance(item.get("tools"),
                                                                                               list):
            yield item["tools"]


def _declares_optimized(tools: list[Any]) -> bool:
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        name = str(tool.get("name") or "").strip()
        if name == OPTIMIZED_NAMESPACE or name.startswith(_OPTIMIZED_PREFIX):
            return True
        if tool.get("type") == "namespace" and isinstance(tool.get("tools"), list) \
                and _declares_optimized(tool["tools"]):
            return True
    return False


def has_namespace_conflict(body: Mapping[str, Any]) -> bool:
    """The client declares the reserved `collaboration-optimize` name itself (then nothing is renamed)."""
    return any(_declares_optimized(tools) for tools in _tool_lists(body))


def restores_namespace(body: Mapping[str, Any]) -> bool:
    """Answers to this client body may carry the renamed namespace (so are renamed back): it declares no
    `collaboration-optimize` name of its own."""
    return not has_namespace_conflict(body)


def _without_encrypted(tool: dict[str, Any]) -> dict[str, Any]:
    params = tool.get("parameters")
    props = params.get("properties") if isinstance(params, Mapping) else None
    message = props.get("message") if isinstance(props, Mapping) else None
    if not isinstance(message, Mapping) or "encrypted" not in message:
        return tool
    assert isinstance(params, Mapping) and isinstance(props, Mapping)
    message = {k: v for k, v in message.items() if k != "encrypted"}
    return {**tool, "parameters": {**params, "properties": {**props, "message": message}}}


def with_model_overrides(description: str, model_list: str) -> str:
    """`description` with its model-override section replaced by (or given) `model_list`, placed before the
    line starting "Spawns an agent" (else appended after a blank line)."""
    if not model_list:
        return description
    lines = description.splitlines(keepends=True)
    kept: list[str] = []
    indent = ""
    i = 0
    while i < len(lines):
        if lines[i].strip() != MODELS_HEADING:
            kept.append(lines[i])
            i += 1
            continue
        indent = indent or lines[i][: lines[i].index(MODELS_HEADING)]
        i += 1
        while i < len(lines) and lines[i].strip().startswith("- "):
            i += 1
    cleaned = "".join(kept)
    section = f"{indent}{MODELS_HEADING}\n{model_list}\n"
    at = cleaned.find(_SPAWN_MARKER)
    if at >= 0:
        line_start = cleaned.rfind("\n", 0, at) + 1
        return cleaned[:line_start] + section + cleaned[line_start:]
    separator = "\n\n" if cleaned and not cleaned.endswith("\n") else ""
    return cleaned + separator + section.rstrip("\n")


def _prepare_tools(tools: list[Any], model_list: Callable[[], str], rename: bool) -> tuple[list[Any], bool]:
    out: list[Any] = []
    renamed = False
    for tool in tools:
        if not isinstance(tool, dict):
            out.append(tool)
            continue
        kind = tool.get("type")
        if kind == "function" and tool.get("name") in _MESSAGE_TOOLS:
            tool = _without_encrypted(tool)
            if tool.get("name") == _SPAWN_TOOL and isinstance(tool.get("description"), str):
                tool = {**tool, "description": with_model_overrides(tool["description"], model_list())}
        elif kind == "namespace" and isinstance(tool.get("tools"), list):
            inner, _ = _prepare_tools(tool["tools"], model_list, False)
            tool = {**tool, "tools": inner}
            if rename and tool.get("name") == NAMESPACE and any(
                    isinstance(t, Mapping) and t.get("type") == "function" and t.get("name") == _SPAWN_TOOL
                    for t in inner):
                tool["name"] = OPTIMIZED_NAMESPACE
                renamed = True
        out.append(tool)
    return out, renamed


def prepare_tools(body: dict[str, Any], model_list: Callable[[], str]) -> bool:
    """Prepare the collaboration tools of `body` in place; True when the namespace was renamed."""
    conflict = has_namespace_conflict(body)
    renamed = False
    if isinstance(body.get("tools"), list):
        body["tools"], renamed = _prepare_tools(body["tools"], model_list, not conflict)
    if isinstance(body.get("input"), list):
        items: list[Any] = []
        for item in body["input"]:
            if isinstance(item, dict) and item.get("type") == "additional_tools" and isinstance(item.get("tools"),
                                                                                               list):
                tools, done = _prepare_tools(item["tools"], model_list, not conflict)
                renamed = renamed or done
                item = {**item, "tools": tools}
            items.append(item)
        body["input"] = items
    return renamed


def prepare_request(body: dict[str, Any], client_headers: Mapping[str, str],
                    model_list: Callable[[], str]) -> dict[str, Any]:
    """A Responses body for a Codex upstream with the collaboration rules applied (a copy; `body` is kept)."""
    codex_client = is_codex_client(client_headers.get("User-Agent"))
    spawned = is_collab_spawn(client_headers)
    if not codex_client and not spawned:
        return body
    out = dict(body)
    if spawned and isinstance(out.get("input"), list):
        out["input"] = rewrite_orphan_delegations(out["input"])
    if codex_client:
        prepare_tools(out, model_list)
    return out


# ------------------------------------------------------------------------------------------------ answers

def _restore(value: Any) -> Any:
    if isinstance(value, list):
        return [_restore(v) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get("type")
    call = kind in ("function_call", "custom_tool_call")
    out: dict[str, Any] = {}
    for key, child in value.items():
        if key == "namespace" and call and child == OPTIMIZED_NAMESPACE:
            out[key] = NAMESPACE
        elif key == "name" and isinstance(child, str):
            if child == OPTIMIZED_NAMESPACE and kind == "namespace":
                out[key] = NAMESPACE
            elif call and child.startswith(_OPTIMIZED_PREFIX):
                out[key] = f"{NAMESPACE}__{child[len(_OPTIMIZED_PREFIX):]}"
            else:
                out[key] = child
        elif key in ("arguments", "input") or (key == "output" and kind in ("function_call_output",
                                                                           "custom_tool_call_output")):
            out[key] = child  # the model's own text is never rewritten
        else:
            out[key] = _restore(child)
    return out


_MARKER = OPTIMIZED_NAMESPACE.encode()


def restore_text(data: bytes) -> bytes:
    """An upstream JSON text (answer body or event data) with the optimized namespace renamed back; anything
    without the marker, or not JSON, is returned as it is."""
    if _MARKER not in data:
        return data
    try:
        value = json.loads(data)
    except ValueError:
        return data
    return json.dumps(_restore(value), ensure_ascii=False, separators=(",", ":")).encode()


# ------------------------------------------------------------------------------------------------ model list

def _sentence(text: str) -> str:
    return text if text[-1:] in ".!?" else text + "."


def _efforts(levels: Any) -> tuple[list[str], str]:
    efforts = [str(level).strip().lower() for level in levels if str(level).strip().lower() in _EFFORTS] \
        if isinstance(levels, list) else []
    if not efforts:
        return list(DEFAULT_EFFORTS), "medium"
    default = ""
    for effort in efforts:
        if (not default and effort != "none") or effort == "medium":
            default = effort
    return efforts, default or efforts[0]


def format_model_list(models: Iterable[tuple[str, str, Mapping[str, Any]]]) -> str:
    """The override list for (id, display name, catalogue details) triples: one Markdown bullet each, sorted by
    display name, `- \\`id\\`: Description. Reasoning efforts: low, medium (default), high.`"""
    rows: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for model_id, display, details in models:
        model_id = " ".join(model_id.split())
        if not model_id or model_id in seen:
            continue
        seen.add(model_id)
        description = " ".join(str(details.get("description") or "").split()) or model_id
        thinking = details.get("thinking")
        efforts, default = _efforts(thinking.get("levels") if isinstance(thinking, Mapping) else None)
        listed = ", ".join(f"{e} (default)" if e == default else e for e in efforts)
        code = f"`` {model_id} ``" if "`" in model_id else f"`{model_id}`"
        rows.append(((display or model_id).lower(), model_id,
                     f"- {code}: {_sentence(description)} Reasoning efforts: {listed}."))
    rows.sort(key=lambda row: (row[0], row[1]))
    return "\n".join(row[2] for row in rows)


class ModelListCache:
    """The override list of one model registry, formatted once (registries are rebuilt, never changed)."""

    def __init__(self) -> None:
        self._key: object | None = None
        self._text = ""

    def text_for(self, registry: Any) -> str:
        """The formatted list of every model `registry` lists (`list_models()` of ModelInfo)."""
        if registry is not self._key:
            self._text = format_model_list((m.id, m.display_name, m.details) for m in registry.list_models())
            self._key = registry
        return self._text


MODEL_LISTS = ModelListCache()
"""Process-wide cache of the current registry's override list."""
