"""Deterministic example values for a JSON schema (used for synthesised tool arguments).

Rules, in order: ``default``, ``const``, first ``enum`` value, first non-null
``anyOf``/``oneOf``/``allOf`` branch; then by type: every object property, one
array item (or ``minItems``), ``"sample <field name>"`` for strings, 1 (clamped to
``minimum``/``maximum``) for numbers, ``True`` for booleans. Local ``$ref`` is followed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_MAX_DEPTH = 8


def example_from_schema(schema: Mapping[str, Any], name: str = "value") -> Any:
    """A value that satisfies ``schema`` in the common cases, the same on every call."""
    if not isinstance(schema, Mapping):
        raise TypeError(f"schema must be a mapping, got {type(schema).__name__}")
    return _example(schema, schema, name, 0)


def _example(
    node: Mapping[str, Any], root: Mapping[str, Any], name: str, depth: int
) -> Any:
    if depth > _MAX_DEPTH:
        return None
    if "default" in node:
        return node["default"]
    if "$ref" in node:
        node = _resolve(root, node["$ref"])
    if "const" in node:
        return node["const"]
    if node.get("enum"):
        return node["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        branches = node.get(key) or []
        if branches:
            typed = [b for b in branches if b.get("type") != "null"] or branches
            return _example(typed[0], root, name, depth + 1)
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in node):
        properties: Mapping[str, Any] = node.get("properties", {})
        return {
            key: _example(value, root, key, depth + 1)
            for key, value in properties.items()
        }
    if kind == "array":
        count = max(1, int(node.get("minItems", 1)))
        return [_example(node.get("items", {}), root, name, depth + 1)] * count
    if kind in ("integer", "number"):
        return _number(node, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return f"sample {name}"


def _number(node: Mapping[str, Any], *, integer: bool) -> int | float:
    value: float = 1
    if "minimum" in node:
        value = node["minimum"]
    elif "exclusiveMinimum" in node:
        value = node["exclusiveMinimum"] + 1
    if "maximum" in node:
        value = min(value, node["maximum"])
    elif "exclusiveMaximum" in node:
        value = min(value, node["exclusiveMaximum"] - 1)
    return int(value) if integer else float(value)


def _resolve(root: Mapping[str, Any], ref: str) -> Mapping[str, Any]:
    if not ref.startswith("#/"):
        raise ValueError(
            f"only local '#/...' schema references are supported, got {ref!r}"
        )
    node: Any = root
    for part in ref[2:].split("/"):
        if not isinstance(node, Mapping) or part not in node:
            raise ValueError(f"schema reference {ref!r} does not resolve")
        node = node[part]
    if not isinstance(node, Mapping):
        raise ValueError(f"schema reference {ref!r} does not point to a schema")
    result: Mapping[str, Any] = node
    return result
