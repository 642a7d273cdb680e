"""Pydantic JSON Schema -> Kubernetes structural OpenAPI v3 schema.

The API server accepts only *structural* schemas for CRDs: every node has a
type, no `$ref`, no `anyOf` on types, and `properties` and
`additionalProperties` never appear together. Pydantic's JSON Schema is none
of those things, so the CRD is derived from the model here rather than written
by hand: the manifest and the CRD then cannot drift apart.

Choices made (and why):
- `X | None = None` becomes an optional field *without* `nullable`: the API
  server prunes a `null` of a non-nullable field before validation, so null
  means "unset" on the server exactly as None means unset in the model, and
  CEL's `has()` keeps meaning "set".
- `extra="forbid"` (`additionalProperties: false`) is dropped: structural
  schemas forbid it next to `properties`; unknown fields are pruned by the
  server and rejected by `kubectl`'s strict field validation instead.
- A nested object with a default factory gets `default: {}`, so the server
  materialises its inner defaults and CEL rules can read them unguarded.
- JSON Schema's numeric `exclusiveMinimum: x` becomes OpenAPI 3.0's
  `minimum: x, exclusiveMinimum: true` (integers: `minimum: x + 1`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

Schema = dict[str, Any]

_COPIED = (
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "multipleOf",
    "format",
)


class SchemaError(ValueError):
    """The model uses a construct a structural schema cannot express."""


def structural_schema(model: type[BaseModel]) -> Schema:
    """The model's validation schema (camelCase aliases) in structural form."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Schema] = raw.pop("$defs", {})
    return _convert(raw, defs, path=model.__name__)


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Inline a `$ref`, letting the referring node's keys (description...) win."""
    ref = node.get("$ref")
    if ref is None:
        return node
    target = defs[ref.rsplit("/", 1)[-1]]
    siblings = {k: v for k, v in node.items() if k != "$ref"}
    return {**_resolve(target, defs), **siblings}


def _unwrap_optional(node: Schema, path: str) -> Schema:
    """`anyOf: [X, null]` -> X, keeping the outer description and default."""
    options = node.get("anyOf")
    if options is None:
        return node
    kept = [o for o in options if o.get("type") != "null"]
    if len(kept) != 1:
        raise SchemaError(f"{path}: a union of several types has no structural form")
    outer = {k: v for k, v in node.items() if k != "anyOf"}
    if outer.get("default", 0) is None:
        del outer["default"]
    return {**kept[0], **outer}


def _convert(node: Schema, defs: dict[str, Schema], path: str) -> Schema:
    node = _unwrap_optional(_resolve(node, defs), path)
    node = _resolve(node, defs)  # anyOf: [{$ref}, null] resolves only after unwrapping
    out: Schema = {}
    if "const" in node:
        node = {**node, "enum": [node["const"]]}
    kind = node.get("type")
    if kind is None and "enum" in node:
        kind = "string"
    if kind is None:
        raise SchemaError(f"{path}: every node of a structural schema needs a type")
    out["type"] = kind
    if "description" in node:
        out["description"] = " ".join(str(node["description"]).split())
    if "enum" in node:
        out["enum"] = list(node["enum"])
    for key in _COPIED:
        if key in node:
            out[key] = node[key]
    out.update({k: v for k, v in node.items() if k.startswith("x-kubernetes-")})
    _convert_bounds(node, out, kind)
    if kind == "object":
        _convert_object(node, out, defs, path)
    elif kind == "array":
        out["items"] = _convert(node.get("items", {}), defs, f"{path}[]")
    if "default" in node:
        out["default"] = node["default"]
    return out


def without_defaults(node: Schema) -> Schema:
    """The schema with every `default` removed (for fields only the operator writes)."""
    out = {k: v for k, v in node.items() if k != "default"}
    if "properties" in out:
        out["properties"] = {k: without_defaults(v) for k, v in out["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = without_defaults(out[key])
    return out


def _convert_bounds(node: Schema, out: Schema, kind: str) -> None:
    for key, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if key not in node:
            continue
        value = node[key]
        if kind == "integer":
            out[bound] = value + 1 if bound == "minimum" else value - 1
        else:
            out[bound] = value
            out[key] = True


def _convert_object(node: Schema, out: Schema, defs: dict[str, Schema], path: str) -> None:
    props: dict[str, Schema] = node.get("properties", {})
    required = set(node.get("required", []))
    if props:
        out["properties"] = {}
        for name, prop in props.items():
            converted = _convert(prop, defs, f"{path}.{name}")
            if (
                name not in required
                and "default" not in prop  # a default factory, not `= None`
                and converted["type"] == "object"
                and "properties" in converted
            ):
                converted["default"] = {}
            out["properties"][name] = converted
        if required:
            out["required"] = [name for name in props if name in required]
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        if props:
            raise SchemaError(f"{path}: properties and a value schema for other keys together")
        out["additionalProperties"] = _convert(extra, defs, f"{path}{{}}")
