"""The one JSON-schema sanitizer for everything proxyd sends to Gemini (tool parameters, response schemas).

Gemini's `parameters` / `responseSchema` take a small OpenAPI-3.0 subset and answer 400 for anything else
(`$schema`, `$ref`, `additionalProperties`, `enumDescriptions`, `$comment`, integer enums, `const`, most
`format`s…). `clean_schema_for_gemini` turns an arbitrary JSON schema into that subset, keeping meaning where it
can and moving what it cannot express into the node's `description` as a short hint, so the model still sees it.

What it does, node by node (a property *name* is never treated as a keyword, so a property called `$id` or
`title` survives):
- keeps only `type format description nullable enum items properties required anyOf minItems maxItems minimum
  maximum`; every other key is removed (`$schema $id $comment $anchor $defs definitions title default examples
  example additionalProperties patternProperties propertyNames minProperties maxProperties enumDescriptions
  deprecated readOnly writeOnly not if/then/else x-*`…);
- `$ref` to `#/$defs/X`, `#/definitions/X` or `#` is inlined (siblings such as `description` win); a reference
  that is already being expanded (a cycle), cannot be resolved, or exceeds the depth limit becomes
  `{"type": "object", "description": "See: X"}`;
- `allOf` members are merged into the node (properties and required united, first value wins otherwise);
- `anyOf`/`oneOf`: `null` alternatives become `nullable: true`; a single remaining alternative is merged into the
  node; several stay as `anyOf` (Gemini supports it; `oneOf` is read as `anyOf`);
- a type list such as `["string", "null"]` becomes `type: "string"` + `nullable: true`; several non-null types
  become an `anyOf` of the single types (with `items`/`properties` attached to the alternative they belong to);
  type names are lower-cased (`OBJECT` → `object`), unknown ones become `string`;
- `const: v` becomes `enum: [v]`; `enum` is kept only on strings (values stringified, `null` values turned into
  `nullable`; 2 to 10 choices are also listed in the description, `Allowed: a, b`); an `enum` on a non-string
  type is removed and listed in the description (`Allowed: 1, 2`) so the
  type — and therefore what the model sends back — stays right;
- `format` is kept only for strings and only `enum`/`date-time`; other string formats become a hint
  (`format: uri`); `minLength`/`maxLength`/`pattern` become hints too;
- a missing `type` is inferred (`properties` → object, `items` → array, `enum` → string, else string), arrays
  without `items` get string items, `required` keeps only names present in `properties`;
- with `object_root` (the default, for tool parameters) the root is always an object schema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
_STRING_FORMATS = frozenset({"enum", "date-time"})
_SHAPE_KEYS = frozenset({"type", "properties", "items", "prefixItems", "enum", "const", "$ref", "anyOf", "oneOf",
                         "allOf"})
_HINT_KEYS = ("minLength", "maxLength", "pattern")
_MAX_DEPTH = 48
_ENUM_HINT_MAX = 10


def clean_schema_for_gemini(schema: Any, *, object_root: bool = True) -> dict[str, Any]:
    """An arbitrary JSON schema → the OpenAPI subset Gemini accepts (never mutates the input).

    `object_root` (tool parameters) forces an object at the root: `{}` becomes an empty object schema and any
    other root is wrapped as a required `value` property. Response schemas pass `object_root=False`."""
    root: Mapping[str, Any] = schema if isinstance(schema, Mapping) else {}
    cleaner = _Cleaner(root)
    result = cleaner.clean(root, 0)
    if not object_root:
        return result
    if result.get("type") != "object":
        # Tool parameters must be an object; wrap anything else as a single `value` property.
        if not result or result == {"type": "string"}:
            return {"type": "object", "properties": {}}
        return {"type": "object", "properties": {"value": result}, "required": ["value"]}
    result.setdefault("properties", {})
    return result


def openapi_to_json_schema(schema: Any) -> Any:
    """Gemini's OpenAPI-style schema (`"type": "OBJECT"`, `nullable`) → plain JSON schema, for other protocols."""
    if isinstance(schema, list):
        return [openapi_to_json_schema(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties" and isinstance(value, Mapping):
            out[key] = {name: openapi_to_json_schema(sub) for name, sub in value.items()}
        elif key == "type" and isinstance(value, str):
            out[key] = value.lower()
        elif key == "nullable":
            continue
        elif key in ("items", "anyOf", "oneOf", "allOf", "not", "additionalProperties"):
            out[key] = openapi_to_json_schema(value)
        else:
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str) and out["type"] != "null":
        out["type"] = [out["type"], "null"]
    return out


def _hint(node: dict[str, Any], text: str) -> None:
    desc = node.get("description")
    node["description"] = f"{desc} ({text})" if isinstance(desc, str) and desc else text


def _scalar_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _schema_type(value: Any) -> list[str] | None:
    """The node's `type` as a list of lower-cased names (None when absent)."""
    if isinstance(value, str):
        return [value.lower()]
    if isinstance(value, list):
        names = [v.lower() for v in value if isinstance(v, str)]
        return names or None
    return None


class _Cleaner:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.expanding: list[str] = []

    # ------------------------------------------------------------------------------------------ refs

    def _resolve(self, ref: str) -> Mapping[str, Any] | None:
        if ref == "#":
            return self.root
        if not ref.startswith("#/"):
            return None
        node: Any = self.root
        for raw in ref[2:].split("/"):
            key = raw.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or key not in node:
                return None
            node = node[key]
        return node if isinstance(node, Mapping) else None

    # ------------------------------------------------------------------------------------------ nodes

    def clean(self, node: Any, depth: int) -> dict[str, Any]:
        if node is True or not isinstance(node, Mapping):
            node = {}
        if depth > _MAX_DEPTH:
            return {"type": "string"}
        ref = node.get("$ref")
        if isinstance(ref, str):
            return self._clean_ref(node, ref, depth)
        node = self._merge_all_of(node, depth)
        return self._clean_plain(node, depth)

    def _clean_ref(self, node: Mapping[str, Any], ref: str, depth: int) -> dict[str, Any]:
        label = ref.rsplit("/", 1)[-1] or "root"
        target = self._resolve(ref)
        if target is None or ref in self.expanding:
            out: dict[str, Any] = {"type": "object"}
            desc = node.get("description")
            if isinstance(desc, str) and desc:
                out["description"] = desc
            _hint(out, f"See: {label}")
            return out
        self.expanding.append(ref)
        try:
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return self.clean(merged, depth + 1)
        finally:
            self.expanding.pop()

    def _merge_all_of(self, node: Mapping[str, Any], depth: int) -> Mapping[str, Any]:
        members = node.get("allOf")
        if not isinstance(members, list):
            return node
        merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
        props: dict[str, Any] = dict(merged["properties"]) if isinstance(merged.get("properties"), Mapping) else {}
        required: list[Any] = list(merged["required"]) if isinstance(merged.get("required"), list) else []
        for member in members:
            if not isinstance(member, Mapping):
                continue
            if isinstance(member.get("$ref"), str) or isinstance(member.get("allOf"), list):
                member = self._expand_for_merge(member, depth)
            for key, value in member.items():
                if key == "properties" and isinstance(value, Mapping):
                    for name, sub in value.items():
                        props.setdefault(name, sub)
                elif key == "required" and isinstance(value, list):
                    required.extend(v for v in value if v not in required)
                else:
                    merged.setdefault(key, value)
        if props:
            merged["properties"] = props
        if required:
            merged["required"] = required
        return merged

    def _expand_for_merge(self, member: Mapping[str, Any], depth: int) -> Mapping[str, Any]:
        ref = member.get("$ref")
        if isinstance(ref, str):
            target = self._resolve(ref)
            if target is None or ref in self.expanding or depth > _MAX_DEPTH:
                return {k: v for k, v in member.items() if k != "$ref"}
            member = {**target, **{k: v for k, v in member.items() if k != "$ref"}}
        return self._merge_all_of(member, depth + 1)

    def _clean_plain(self, node: Mapping[str, Any], depth: int) -> dict[str, Any]:
        desc = node.get("description")
        desc = desc if isinstance(desc, str) and desc else None
        nullable = node.get("nullable") is True

        types = _schema_type(node.get("type"))
        if types is not None:
            if "null" in types:
                nullable = True
            types = list(dict.fromkeys(t if t in _TYPES else "string" for t in types if t != "null"))

        alternatives: list[dict[str, Any]] = []
        for key in ("anyOf", "oneOf"):
            members = node.get(key)
            if not isinstance(members, list):
                continue
            for member in members:
                if not isinstance(member, Mapping) or not (_SHAPE_KEYS & member.keys()):
                    continue  # constraint-only alternatives ({"required": [...]}) say nothing Gemini can use
                if _schema_type(member.get("type")) == ["null"] and not (_SHAPE_KEYS - {"type"}) & member.keys():
                    nullable = True
                    continue
                cleaned = self.clean(member, depth + 1)
                if cleaned.pop("nullable", False):
                    nullable = True
                if cleaned not in alternatives:
                    alternatives.append(cleaned)

        enum_values = self._enum_values(node)
        if enum_values is not None and None in enum_values:
            nullable = True
            enum_values = [v for v in enum_values if v is not None]

        if not types and not alternatives:
            if isinstance(node.get("properties"), Mapping):
                types = ["object"]
            elif "items" in node or "prefixItems" in node:
                types = ["array"]
            elif enum_values and all(isinstance(v, bool) for v in enum_values):
                types = ["boolean"]
            else:
                types = ["string"]
        types = types or []

        typed = [self._typed(node, kind, enum_values, depth) for kind in types]
        if len(typed) > 1 or alternatives:
            # A node with several shapes: the typed forms that say more than their bare type, then the
            # alternatives; a bare `{"type": t}` next to real alternatives adds nothing.
            shapes = [t for t in typed if len(typed) > 1 or not alternatives or len(t) > 1]
            for alt in alternatives:
                if alt not in shapes:
                    shapes.append(alt)
            for shape in shapes:
                if desc is not None and shape.get("description") == desc:
                    del shape["description"]
        else:
            shapes = typed
        if len(shapes) == 1:
            out = shapes[0]
            child = out.get("description")
            # A typed form already carries (and extends) the node's description; an alternative has its own.
            if desc is not None and out not in typed and child != desc:
                out["description"] = f"{desc} ({child})" if child else desc
        else:
            out = {"anyOf": shapes}
            if desc is not None:
                out["description"] = desc
        if nullable:
            out["nullable"] = True
        return out

    @staticmethod
    def _enum_values(node: Mapping[str, Any]) -> list[Any] | None:
        if "const" in node:
            return [node["const"]]
        values = node.get("enum")
        if isinstance(values, list) and values:
            return list(values)
        return None

    def _typed(self, node: Mapping[str, Any], kind: str, enum_values: list[Any] | None,
               depth: int) -> dict[str, Any]:
        """The node's keywords that apply to one type `kind`."""
        out: dict[str, Any] = {"type": kind}
        desc = node.get("description")
        if isinstance(desc, str) and desc:
            out["description"] = desc
        if kind == "object":
            props = node.get("properties")
            cleaned_props: dict[str, Any] = {}
            if isinstance(props, Mapping):
                for name, sub in props.items():
                    if sub is False:
                        continue
                    cleaned_props[str(name)] = self.clean(sub, depth + 1)
            if cleaned_props:
                out["properties"] = cleaned_props
            required = node.get("required")
            if isinstance(required, list) and cleaned_props:
                names = [r for r in dict.fromkeys(r for r in required if isinstance(r, str)) if r in cleaned_props]
                if names:
                    out["required"] = names
        elif kind == "array":
            items = node.get("items")
            if isinstance(items, list):
                items = items[0] if items else None
            if items is None or items is True:
                prefix = node.get("prefixItems")
                items = prefix[0] if isinstance(prefix, list) and prefix else items
            out["items"] = self.clean(items, depth + 1) if isinstance(items, Mapping) else {"type": "string"}
            for key in ("minItems", "maxItems"):
                self._copy_number(node, out, key)
        elif kind in ("number", "integer"):
            for key in ("minimum", "maximum"):
                self._copy_number(node, out, key)
        if enum_values is not None:
            if kind == "string":
                strings = list(dict.fromkeys(_scalar_text(v) for v in enum_values))
                if strings:
                    out["enum"] = strings
                if 2 <= len(strings) <= _ENUM_HINT_MAX:  # the model also reads the choices (as the reference)
                    _hint(out, "Allowed: " + ", ".join(strings))
            elif enum_values:
                _hint(out, "Allowed: " + ", ".join(_scalar_text(v) for v in enum_values))
        if kind == "string":
            fmt = node.get("format")
            if isinstance(fmt, str) and fmt:
                if fmt in _STRING_FORMATS:
                    out["format"] = fmt
                else:
                    _hint(out, f"format: {fmt}")
            for key in _HINT_KEYS:
                value = node.get(key)
                if isinstance(value, str | int | float) and not isinstance(value, bool):
                    _hint(out, f"{key}: {value}")
        return out

    @staticmethod
    def _copy_number(node: Mapping[str, Any], out: dict[str, Any], key: str) -> None:
        value = node.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value
