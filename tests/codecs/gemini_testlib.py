"""Helpers for the Gemini codec tests: canonical objects ↔ tagged JSON, placeholder matching, SSE parsing."""

from __future__ import annotations

import enum
import json
from typing import Any

import attrs

from proxyd.protocols import canonical
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.sse import SSEParser

TAG = "$c"
_ENUM_FIELDS: dict[str, type[enum.Enum]] = {
    "finish_reason": canonical.FinishReason, "reason": canonical.FinishReason,
    "signature_source": WireProtocol, "source": WireProtocol, "builtin_protocol": WireProtocol,
}


def to_json(value: Any) -> Any:
    """A canonical object → JSON with `$c` naming the class; fields equal to their default are left out."""
    if attrs.has(type(value)):
        out: dict[str, Any] = {TAG: type(value).__name__}
        for field in attrs.fields(type(value)):
            item = getattr(value, field.name)
            default = field.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = default.factory()  # type: ignore[union-attr]
            if default is not attrs.NOTHING and item == default:
                continue
            out[field.name] = to_json(item)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def from_json(value: Any) -> Any:
    """The reverse of to_json."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    if TAG not in value:
        return {k: from_json(v) for k, v in value.items()}
    cls = getattr(canonical, value[TAG])
    kwargs: dict[str, Any] = {}
    for field in attrs.fields(cls):
        if field.name not in value:
            continue
        raw = value[field.name]
        if field.name in _ENUM_FIELDS and raw is not None:
            kwargs[field.name] = _ENUM_FIELDS[field.name](raw)
        elif isinstance(raw, list) and field.name not in ("parameters",):
            kwargs[field.name] = tuple(from_json(raw))
        else:
            kwargs[field.name] = from_json(raw)
    return cls(**kwargs)


def match(actual: Any, expected: Any, path: str = "$", bindings: dict[str, Any] | None = None) -> list[str]:
    """Differences between `actual` and `expected`. In `expected`, "<any>" matches anything, "<id:NAME>" matches
    any non-empty string and must be the same string everywhere NAME is used, "<prefix:P>" a string starting P."""
    bindings = {} if bindings is None else bindings
    if isinstance(expected, str) and expected.startswith("<") and expected.endswith(">"):
        if expected == "<any>":
            return []
        if expected.startswith("<id:"):
            if not isinstance(actual, str) or not actual:
                return [f"{path}: expected an id, got {actual!r}"]
            previous = bindings.setdefault(expected, actual)
            return [] if previous == actual else [f"{path}: {actual!r} != earlier {expected} {previous!r}"]
        if expected.startswith("<prefix:"):
            prefix = expected[len("<prefix:"):-1]
            ok = isinstance(actual, str) and actual.startswith(prefix)
            return [] if ok else [f"{path}: {actual!r} does not start with {prefix!r}"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected object, got {actual!r}"]
        problems = [f"{path}: unexpected key {k!r}" for k in actual if k not in expected]
        problems += [f"{path}: missing key {k!r}" for k in expected if k not in actual]
        for key in expected:
            if key in actual:
                problems += match(actual[key], expected[key], f"{path}.{key}", bindings)
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {actual!r}"]
        problems = []
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            problems += match(a, e, f"{path}[{i}]", bindings)
        return problems
    numbers = isinstance(actual, int | float) and isinstance(expected, int | float)
    if actual != expected or (type(actual) is not type(expected) and not numbers):
        return [f"{path}: {actual!r} != {expected!r}"]
    return []


def parse_frames(data: bytes) -> list[dict[str, Any]]:
    """Stream-encoder bytes → [{"event"?: name, "data": parsed JSON}]."""
    parser = SSEParser()
    frames: list[dict[str, Any]] = []
    for event in [*parser.feed(data), *parser.close()]:
        item: dict[str, Any] = {"data": json.loads(event.data)}
        if event.event is not None:
            item["event"] = event.event
        frames.append(item)
    return frames
