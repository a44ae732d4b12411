"""Codex multi-agent (collaboration) requests: tool preparation, orphan delegation outputs, answers renamed back
and sub-agent sessions (providers/codex_collab.py)."""

from __future__ import annotations

import json
from typing import Any

from proxyd.credentials.model import Credential
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.rewrite import SSEPassthrough
from proxyd.protocols.sse import SSEEvent
from proxyd.providers.codex import CodexProvider
from proxyd.providers.codex_collab import (
    MODELS_HEADING,
    format_model_list,
    prepare_request,
    restore_text,
    restores_namespace,
    rewrite_orphan_delegations,
    with_model_overrides,
)
from proxyd.providers.codex_session import ClientOrigin, codex_cache_id

CODEX_UA = {"User-Agent": "codex_cli_rs/0.144.1"}
SPAWNED = {**CODEX_UA, "X-Openai-Subagent": "collab_spawn"}
MODELS = "- `m1`: First. Reasoning efforts: low, medium (default)."


def _models() -> str:
    return MODELS


def _message_tool(name: str, **extra: Any) -> dict[str, Any]:
    return {"type": "function", "name": name, **extra, "parameters": {
        "type": "object", "properties": {"message": {"type": "string", "encrypted": True}}}}


def _collab_body(namespace: str = "collaboration") -> dict[str, Any]:
    return {"model": "gpt-5.5", "input": [{"type": "message", "role": "user", "content": "hi"}], "tools": [
        {"type": "namespace", "name": namespace, "tools": [
            _message_tool("spawn_agent", description="Intro.\nSpawns an agent.\nMore."),
            _message_tool("send_message")]},
        {"type": "function", "name": "shell", "parameters": {"type": "object"}}]}


def _user_text(item: dict[str, Any]) -> str:
    assert item["type"] == "message" and item["role"] == "user"
    return str(item["content"][0]["text"])


def test_orphan_delegation_outputs_become_user_messages() -> None:
    items = [
        {"type": "function_call", "call_id": "paired", "namespace": "codex_app", "name": "create_thread"},
        {"type": "function_call_output", "call_id": "paired", "namespace": "codex_app", "name": "create_thread",
         "output": "paired output"},
        {"type": "function_call_output", "call_id": "paired", "namespace": "codex_app", "name": "create_thread",
         "output": "second output of one call"},
        {"type": "function_call_output", "call_id": "missing", "namespace": "codex_app",
         "name": "send_message_to_thread", "output": {"ok": True}},
        {"type": "function_call_output", "namespace": "codex_app", "name": "create_thread", "output": "no id"},
        {"type": "function_call_output", "call_id": "other", "namespace": "other", "name": "x", "output": "kept"},
    ]
    out = rewrite_orphan_delegations(items)
    assert out[:2] == items[:2]
    assert _user_text(out[2]) == "Tool output from codex_app__create_thread:\nsecond output of one call"
    assert _user_text(out[3]) == 'Tool output from codex_app__send_message_to_thread:\n{"ok":true}'
    assert _user_text(out[4]) == "Tool output from codex_app__create_thread:\nno id"
    assert out[5] == items[5]


def test_only_a_spawned_sub_agent_has_its_orphans_rewritten() -> None:
    body = {"input": [{"type": "function_call_output", "call_id": "c", "namespace": "codex_app",
                       "name": "create_thread", "output": "task"}]}
    assert prepare_request(body, CODEX_UA, _models)["input"] == body["input"]
    assert prepare_request(body, {"X-Openai-Subagent": "COLLAB_SPAWN"}, _models)["input"][0]["type"] == "message"
    assert body["input"][0]["type"] == "function_call_output"  # the client's body is not mutated


def test_codex_clients_get_prepared_collaboration_tools() -> None:
    body = _collab_body()
    out = prepare_request(body, CODEX_UA, _models)
    namespace, shell = out["tools"]
    assert namespace["name"] == "collaboration-optimize"
    spawn, send = namespace["tools"]
    assert spawn["description"] == f"Intro.\n{MODELS_HEADING}\n{MODELS}\nSpawns an agent.\nMore."
    assert spawn["parameters"]["properties"]["message"] == {"type": "string"}
    assert send["parameters"]["properties"]["message"] == {"type": "string"}
    assert shell == body["tools"][1]
    assert body["tools"][0]["name"] == "collaboration"  # untouched original
    # other clients' tools pass as they are
    assert prepare_request(body, {"User-Agent": "openai-python/1.0"}, _models) is body


def test_a_client_declaring_the_reserved_name_keeps_its_namespaces() -> None:
    body = _collab_body()
    body["tools"].append({"type": "namespace", "name": "collaboration-optimize", "tools": []})
    out = prepare_request(body, CODEX_UA, _models)
    assert out["tools"][0]["name"] == "collaboration"
    assert "encrypted" not in out["tools"][0]["tools"][0]["parameters"]["properties"]["message"]
    assert not restores_namespace(body) and restores_namespace(_collab_body())


def test_additional_tools_items_are_prepared_too() -> None:
    body = {"input": [{"type": "additional_tools", "tools": _collab_body()["tools"]}]}
    out = prepare_request(body, {"User-Agent": "codex-tui/0.154.0"}, _models)
    assert out["input"][0]["tools"][0]["name"] == "collaboration-optimize"


def test_model_override_sections_are_replaced_or_appended() -> None:
    old = f"Intro.\n  {MODELS_HEADING}\n- `stale`: gone.\nSpawns an agent."
    assert with_model_overrides(old, MODELS) == f"Intro.\n  {MODELS_HEADING}\n{MODELS}\nSpawns an agent."
    assert with_model_overrides("Starts work.", MODELS) == f"Starts work.\n\n{MODELS_HEADING}\n{MODELS}"
    assert with_model_overrides("Starts work.", "") == "Starts work."


def test_model_list_format() -> None:
    text = format_model_list([
        ("zeta", "Zeta", {"description": "Last one", "thinking": {"levels": ["low", "high"]}}),
        ("gpt-x", "GPT X", {"thinking": {"levels": ["none", "low", "medium", "high"]}}),
        ("alpha", "", {}),
    ])
    assert text.splitlines() == [
        "- `alpha`: alpha. Reasoning efforts: low, medium (default), high, xhigh.",
        "- `gpt-x`: gpt-x. Reasoning efforts: none, low, medium (default), high.",
        "- `zeta`: Last one. Reasoning efforts: low (default), high.",
    ]


def test_answers_get_the_client_namespace_back() -> None:
    event = {"type": "response.output_item.done", "item": {
        "type": "function_call", "namespace": "collaboration-optimize", "name": "collaboration-optimize__spawn",
        "arguments": '{"note":"collaboration-optimize__literal"}'}}
    restored = json.loads(restore_text(json.dumps(event).encode()))
    assert restored["item"]["namespace"] == "collaboration"
    assert restored["item"]["name"] == "collaboration__spawn"
    assert restored["item"]["arguments"] == event["item"]["arguments"]
    plain = b'{"type":"response.output_text.delta","delta":"hi"}'
    assert restore_text(plain) is plain
    relay = SSEPassthrough(WireProtocol.OPENAI_RESPONSES, "gpt-5.5", None, restore_text)
    framed = relay.event(SSEEvent(data=json.dumps(event).encode(), event="response.output_item.done"))
    assert b'"namespace":"collaboration"' in framed and b"collaboration-optimize\"" not in framed


def test_a_spawned_sub_agent_gets_no_derived_session() -> None:
    body = {"input": "What is the weather in Paris?"}
    origin = ClientOrigin(WireProtocol.OPENAI_RESPONSES, body, "key")
    assert codex_cache_id(origin, {}) != ""
    assert codex_cache_id(origin, SPAWNED) == ""
    on_socket = ClientOrigin(WireProtocol.OPENAI_RESPONSES, body, "key", connection_session="conn-1")
    assert codex_cache_id(on_socket, SPAWNED) == "conn-1"


def test_the_provider_sends_the_prepared_request() -> None:
    body = {**_collab_body(), "input": [{"type": "function_call_output", "call_id": "c", "namespace": "codex_app",
                                         "name": "create_thread", "output": "task"}]}
    cred = Credential(id="codex:1", kind="codex", provider="codex", protocol=WireProtocol.OPENAI_RESPONSES,
                      base_url="http://127.0.0.1:9", api_key="k")
    origin = ClientOrigin(WireProtocol.OPENAI_RESPONSES, body, "key", model_overrides=_models)
    request = CodexProvider().build_request(cred, "gpt-5.5", body, stream=True, client_headers=SPAWNED,
                                            origin=origin)
    sent = json.loads(request.body)
    assert _user_text(sent["input"][0]) == "Tool output from codex_app__create_thread:\ntask"
    assert sent["tools"][0]["name"] == "collaboration-optimize"
    assert MODELS in sent["tools"][0]["tools"][0]["description"]
    assert "prompt_cache_key" not in sent and "Session-Id" not in request.headers
