"""JSON Schema, a documented subset with no dependency: the keywords a json_schema check accepts, checked
when the eval set loads, and the validator that says why a value does not match."""

from __future__ import annotations

import json
import re
from typing import Any

from tunedeck.engine.gate.check_spec import CheckSpecError

SCHEMA_KEYWORDS = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
    }
)
_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "title",
        "description",
        "default",
        "examples",
        "format",
        "readOnly",
        "writeOnly",
        "deprecated",
    }
)
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def validate_schema_keywords(schema: Any, path: str = "schema") -> None:
    if not isinstance(schema, dict):
        if isinstance(schema, bool):
            return
        raise CheckSpecError(f"{path} must be an object", "schema")
    for key, value in schema.items():
        if key in _ANNOTATIONS:
            continue
        if key not in SCHEMA_KEYWORDS:
            raise CheckSpecError(
                f"{path}: JSON Schema keyword {key!r} is not supported "
                f"(supported: {', '.join(sorted(SCHEMA_KEYWORDS))})",
                "schema",
            )
        if key == "properties":
            if not isinstance(value, dict):
                raise CheckSpecError(f"{path}.properties must be an object", "schema")
            for name, sub in value.items():
                validate_schema_keywords(sub, f"{path}.properties.{name}")
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            validate_schema_keywords(value, f"{path}.{key}")
        elif key in ("anyOf", "oneOf", "allOf"):
            if not isinstance(value, list) or not value:
                raise CheckSpecError(f"{path}.{key} must be a non-empty list of schemas", "schema")
            for i, sub in enumerate(value):
                validate_schema_keywords(sub, f"{path}.{key}[{i}]")
        elif key == "pattern":
            try:
                re.compile(value)
            except (re.error, TypeError) as e:
                raise CheckSpecError(f"{path}.pattern is not a valid regular expression: {e}", "schema") from None


def _type_ok(value: Any, t: str) -> bool:
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer()
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES.get(t, ()))


def schema_errors(value: Any, schema: Any, path: str = "$") -> list[str]:
    """Why `value` does not match `schema` (empty when it does); the first few reasons are enough."""
    if schema is True or schema == {}:
        return []
    if schema is False:
        return [f"{path}: not allowed"]
    errs: list[str] = []
    t = schema.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        if not any(_type_ok(value, x) for x in types):
            return [f"{path}: expected {'/'.join(types)}, got {type(value).__name__ if value is not None else 'null'}"]
    if "enum" in schema and value not in schema["enum"]:
        errs.append(f"{path}: {json.dumps(value)[:40]} not one of {json.dumps(schema['enum'])[:60]}")
    if "const" in schema and value != schema["const"]:
        errs.append(f"{path}: expected {json.dumps(schema['const'])[:40]}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errs.append(f"{path}: missing required key {key!r}")
        props = schema.get("properties", {})
        for key, sub in value.items():
            if key in props:
                errs += schema_errors(sub, props[key], f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errs.append(f"{path}: unexpected key {key!r}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errs += schema_errors(sub, schema["additionalProperties"], f"{path}.{key}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errs.append(f"{path}: {len(value)} items, fewer than {schema['minItems']}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errs.append(f"{path}: {len(value)} items, more than {schema['maxItems']}")
        if schema.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in value}) < len(value):
            errs.append(f"{path}: items are not unique")
        if "items" in schema:
            for i, item in enumerate(value):
                errs += schema_errors(item, schema["items"], f"{path}[{i}]")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            errs.append(f"{path}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errs.append(f"{path}: longer than {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errs.append(f"{path}: does not match /{schema['pattern']}/")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for key, bad in (
            ("minimum", lambda v, b: v < b),
            ("maximum", lambda v, b: v > b),
            ("exclusiveMinimum", lambda v, b: v <= b),
            ("exclusiveMaximum", lambda v, b: v >= b),
        ):
            if key in schema and bad(value, schema[key]):
                errs.append(f"{path}: {value} violates {key} {schema[key]}")
    for sub in schema.get("allOf", []):
        errs += schema_errors(value, sub, path)
    if "anyOf" in schema and not any(not schema_errors(value, s, path) for s in schema["anyOf"]):
        errs.append(f"{path}: matches none of anyOf")
    if "oneOf" in schema and sum(not schema_errors(value, s, path) for s in schema["oneOf"]) != 1:
        errs.append(f"{path}: does not match exactly one of oneOf")
    if "not" in schema and not schema_errors(value, schema["not"], path):
        errs.append(f"{path}: matches a schema it must not")
    return errs
