"""Helpers for the Claude codec tests: canonical objects ↔ JSON, SSE parsing, placeholder-aware comparison.

Canonical JSON form: attrs objects become dicts holding only their non-default fields; parts and stream events
carry `"@type": "<ClassName>"`; nested settings (generation, tool_choice, reasoning, usage, response_format)
and list items of `messages`/`tools`/`system` are untagged (their class follows from the field name).
Placeholders in expected values: `<any>`, `<ts>` (an int), `<toolu>` / `<msg>` (a `toolu_`/`msg_` id with
24 alphanumerics), and `<toolu:NAME>` / `<msg:NAME>` / `<id:NAME>` which must be the same value everywhere
NAME is used in one document.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

from proxyd.protocols import canonical as c
from proxyd.protocols.base import WireProtocol
from proxyd.protocols.sse import SSEParser

_TAGGED = [c.TextPart, c.ImagePart, c.FilePart, c.ToolCallPart, c.ToolResultPart, c.ThinkingPart,
           c.StreamStart, c.TextDelta, c.ThinkingDelta, c.ThinkingSignature, c.ToolCallStart, c.ToolCallDelta,
           c.ToolCallEnd, c.UsageUpdate, c.Finish, c.StreamError, c.Request, c.Response, c.Message, c.Tool]
CLASSES: dict[str, type] = {cls.__name__: cls for cls in _TAGGED}
NESTED: dict[str, type] = {"generation": c.Generation, "tool_choice": c.ToolChoice, "reasoning": c.Reasoning,
                           "usage": c.Usage, "response_format": c.ResponseFormat}
LISTS: dict[str, type] = {"messages": c.Message, "tools": c.Tool, "system": c.TextPart}
ENUMS: dict[str, type[enum.Enum]] = {"signature_source": WireProtocol, "builtin_protocol": WireProtocol,
                                     "source": WireProtocol, "finish_reason": c.FinishReason,
                                     "reason": c.FinishReason}
PART_LISTS = {"parts", "content"}


def _build(cls: type, data: Mapping[str, Any]) -> Any:
    kwargs = {key: _convert(key, value) for key, value in data.items() if key != "@type"}
    return cls(**kwargs)


def _convert(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in ENUMS:
        return ENUMS[key](value)
    if key in NESTED:
        return _build(NESTED[key], value)
    if key in LISTS:
        return tuple(from_json(item) if "@type" in item else _build(LISTS[key], item) for item in value)
    if key in PART_LISTS:
        return tuple(from_json(item) for item in value)
    if key == "stop":
        return tuple(value)
    return value


def from_json(data: Mapping[str, Any], cls: type | None = None) -> Any:
    """A canonical object from its JSON form (`cls` for untagged top-level objects)."""
    target = CLASSES[data["@type"]] if "@type" in data else cls
    assert target is not None, f"untagged canonical object: {data}"
    return _build(target, data)


def _default(field: attrs.Attribute) -> Any:  # type: ignore[type-arg]
    default = field.default
    return default.factory() if isinstance(default, attrs.Factory) else default  # type: ignore[arg-type]


def to_json(value: Any, *, tagged: bool = True) -> Any:
    """The canonical JSON form of a canonical object (defaults omitted)."""
    if attrs.has(type(value)):
        out: dict[str, Any] = {"@type": type(value).__name__} if tagged else {}
        for field in attrs.fields(type(value)):
            item = getattr(value, field.name)
            if item == _default(field):
                continue
            if field.name in LISTS:
                out[field.name] = [to_json(x, tagged=False) for x in item]
            else:
                out[field.name] = to_json(item, tagged=field.name not in NESTED)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_json(x) for x in value]
    if isinstance(value, Mapping):
        return {k: to_json(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------------- SSE


def parse_frames(raw: bytes) -> list[dict[str, Any]]:
    """Encoder output → [{"event": name, "data": parsed JSON}], asserting every frame is well formed."""
    parser = SSEParser()
    events = parser.feed(raw) + parser.close()
    out = []
    for ev in events:
        data = json.loads(ev.data)
        assert ev.event is not None, f"frame without event name: {ev}"
        assert data.get("type") == ev.event, f"event name {ev.event} ≠ data type {data.get('type')}"
        out.append({"event": ev.event, "data": data})
    return out


# --------------------------------------------------------------------------------------------- comparison

_PATTERNS = {"toolu": re.compile(r"^toolu_[A-Za-z0-9]{24}$"), "msg": re.compile(r"^msg_[A-Za-z0-9_-]+$"),
             "id": re.compile(r"^.+$")}
_PLACEHOLDER = re.compile(r"^<(toolu|msg|id)(?::(\w+))?>$")


class Matcher:
    """Compares an expected JSON value (with placeholders) to an actual one; `bound` keeps named values."""

    def __init__(self) -> None:
        self.bound: dict[str, Any] = {}

    def check(self, expected: Any, actual: Any, path: str = "$") -> None:
        if isinstance(expected, str):
            if expected == "<any>":
                return
            if expected == "<ts>":
                assert isinstance(actual, int) and actual > 0, f"{path}: expected a timestamp, got {actual!r}"
                return
            match = _PLACEHOLDER.match(expected)
            if match:
                kind, name = match.groups()
                assert isinstance(actual, str) and _PATTERNS[kind].match(actual), \
                    f"{path}: expected <{kind}>, got {actual!r}"
                if name:
                    key = f"{kind}:{name}"
                    if key in self.bound:
                        assert self.bound[key] == actual, f"{path}: {key} was {self.bound[key]!r}, now {actual!r}"
                    self.bound[key] = actual
                return
        if isinstance(expected, dict):
            assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
            assert set(expected) == set(actual), \
                f"{path}: keys differ: missing {set(expected) - set(actual)}, extra {set(actual) - set(expected)}"
            for key in expected:
                self.check(expected[key], actual[key], f"{path}.{key}")
            return
        if isinstance(expected, list):
            assert isinstance(actual, list), f"{path}: expected an array, got {actual!r}"
            assert len(expected) == len(actual), f"{path}: length {len(actual)} ≠ {len(expected)}: {actual!r}"
            for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
                self.check(e, a, f"{path}[{i}]")
            return
        assert (expected == actual and type(expected) is type(actual)) or (
            isinstance(expected, int | float) and not isinstance(expected, bool)
            and isinstance(actual, int | float) and not isinstance(actual, bool) and expected == actual
        ), f"{path}: expected {expected!r}, got {actual!r}"


def assert_matches(expected: Any, actual: Any) -> None:
    Matcher().check(expected, actual)
