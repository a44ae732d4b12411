"""Helpers for the OpenAI chat codec tests: canonical objects ⇄ JSON, placeholder matching, SSE chunk parsing."""

from __future__ import annotations

import enum
import json
from typing import Any

import attrs

from proxyd.protocols import canonical
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.canonical import FinishReason

_ENUM_FIELDS: dict[str, type[enum.Enum]] = {
    "finish_reason": FinishReason, "reason": FinishReason,
    "signature_source": WireProtocol, "builtin_protocol": WireProtocol, "source": WireProtocol,
}


def build(value: Any, *, in_attrs: bool = False, key: str = "") -> Any:
    """JSON → canonical objects: `{"_type": "TextPart", ...}` builds that class; lists in attrs fields → tuples."""
    if isinstance(value, dict):
        if "_type" in value:
            cls = getattr(canonical, value["_type"])
            return cls(**{k: build(v, in_attrs=True, key=k) for k, v in value.items() if k != "_type"})
        return {k: build(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [build(v, in_attrs=in_attrs) for v in value]
        return tuple(items) if in_attrs else items
    if in_attrs and key in _ENUM_FIELDS and isinstance(value, str):
        return _ENUM_FIELDS[key](value)
    return value


def dump(value: Any) -> Any:
    """Canonical objects → JSON (fields equal to their default left out), the inverse of build()."""
    if attrs.has(type(value)):
        out: dict[str, Any] = {"_type": type(value).__name__}
        for field in attrs.fields(type(value)):
            v = getattr(value, field.name)
            default = field.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = default.factory()  # type: ignore[call-arg]
            if v == default:
                continue
            out[field.name] = dump(v)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [dump(v) for v in value]
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items()}
    return value


def matches(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Differences between expected and actual; `"<id>"` matches any non-empty string, `"<int>"` any int,
    `"<prefix*>"` any string starting with prefix."""
    if isinstance(expected, str) and expected.startswith("<") and expected.endswith(">"):
        token = expected[1:-1]
        if token == "id":
            return [] if isinstance(actual, str) and actual else [f"{path}: expected an id, got {actual!r}"]
        if token == "int":
            return [] if isinstance(actual, int) and actual > 0 else [f"{path}: expected an int, got {actual!r}"]
        if token.endswith("*"):
            ok = isinstance(actual, str) and actual.startswith(token[:-1]) and len(actual) > len(token) - 1
            return [] if ok else [f"{path}: expected {token}, got {actual!r}"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        problems = [f"{path}: unexpected key {k!r}" for k in actual if k not in expected]
        problems += [f"{path}: missing key {k!r}" for k in expected if k not in actual]
        for k in expected:
            if k in actual:
                problems += matches(expected[k], actual[k], f"{path}.{k}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {actual!r}"]
        return [p for i, (e, a) in enumerate(zip(expected, actual, strict=True)) for p in matches(e, a, f"{path}[{i}]")]
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (expected, actual))
    if expected != actual or (type(expected) is not type(actual) and not numbers):
        return [f"{path}: expected {expected!r}, got {actual!r}"]
    return []


def sse_payloads(raw: bytes) -> list[Any]:
    """The `data:` payloads of SSE bytes, JSON-parsed (`[DONE]` kept as the string)."""
    out: list[Any] = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        lines = [line[len("data: "):] for line in block.split("\n") if line.startswith("data: ")]
        data = "\n".join(lines)
        out.append(data if data == "[DONE]" else json.loads(data))
    return out
