"""The JSON Schemas, shipped in the package and kept in the repository's schema/ folder."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # jsonschema costs ~80 ms to import; it runs only to explain a failure
    import jsonschema

_PACKAGED = Path(__file__).parent / "_data"
_SOURCE = Path(__file__).resolve().parent.parent


def schema_dir() -> Path:
    """schema/ inside the installed wheel, or the source checkout's schema/."""
    packaged = _PACKAGED / "schema"
    return packaged if packaged.is_dir() else _SOURCE / "schema"


def example_dir() -> Path:
    """The project's own policies/ and grants/, which double as the example repository."""
    packaged = _PACKAGED / "example"
    return packaged if packaged.is_dir() else _SOURCE


@cache
def _anchored(pattern: str) -> re.Pattern[str]:
    # JSON Schema patterns are ECMA-262, where `$` is the end of the input. Python's `$` also
    # matches before a trailing newline, which would let "alice\n" pass `^[a-z]+$`.
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    import jsonschema

    if isinstance(instance, str) and not _anchored(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def load_schema(name: str) -> dict[str, Any]:
    return json.loads((schema_dir() / f"{name}.schema.json").read_text())  # type: ignore[no-any-return]


def errors(name: str, instance: Any) -> list[jsonschema.ValidationError]:
    """Schema errors of `instance`: a compiled check first, jsonschema only for its messages."""
    if fast_check(name)(instance):
        return []
    return list(validator(name).iter_errors(instance))


@cache
def validator(name: str) -> Any:
    """A compiled validator for schema/<name>.schema.json, with ECMA-262 anchoring."""
    import jsonschema

    schema = load_schema(name)
    base = jsonschema.validators.validator_for(schema)
    cls = jsonschema.validators.extend(base, {"pattern": _pattern})  # type: ignore[no-untyped-call]
    return cls(schema, format_checker=base.FORMAT_CHECKER)


def describe(error: jsonschema.ValidationError) -> list[tuple[tuple[Any, ...], str]]:
    """Turn one jsonschema error into (path, message) pairs a person can act on."""
    path = tuple(error.absolute_path)
    label = ".".join(str(p) for p in path)
    where = f"{label}: " if label else ""
    kind = error.validator
    schema: Any = error.schema
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        known = set(schema.get("properties", {}))
        extra = [k for k in error.instance if k not in known]
        return [(path + (k,), f"{where}unknown key {_short(k)}") for k in extra]
    if kind == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else error.message
        return [(path, f"{where}missing required key '{missing}'")]
    if kind == "propertyNames" or "propertyNames" in error.relative_schema_path:
        name = error.instance
        return [(path + (name,), f"{where}invalid name {_short(name)}: use lowercase letters, "
                                 "digits and - (. and _ where allowed)")]
    if kind == "type":
        return [(path, f"{where}must be {_article(error.validator_value)}")]
    if kind == "enum":
        options = ", ".join(str(v) for v in schema.get("enum", ()))
        return [(path, f"{where}must be one of: {options}")]
    if kind == "pattern":
        return [(path, f"{where}invalid value {_short(error.instance)}")]
    if kind in ("minLength", "minItems") and error.validator_value == 1:
        return [(path, f"{where}must not be empty")]
    if kind == "maxLength":
        return [(path, f"{where}longer than {error.validator_value} characters")]
    return [(path, f"{where}{_short_message(error.message)}")]


def _article(kind: Any) -> str:
    names = {"string": "a string", "integer": "a whole number", "boolean": "true or false",
             "object": "a mapping", "array": "a list", "number": "a number"}
    if isinstance(kind, list):
        return " or ".join(names.get(str(k), str(k)) for k in kind)
    return names.get(kind, str(kind))


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short_message(message: str, limit: int = 160) -> str:
    one_line = " ".join(message.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


# -- a compiled check for the subset of JSON Schema our schemas use -----------------------------
# jsonschema walks the schema for every document, which costs seconds at 10,000 grant files.
# These predicates answer only "valid or not"; an invalid document goes to jsonschema for its
# messages. A keyword they do not know makes them answer "not valid", never "valid".

Check = Callable[[Any], bool]
_TYPES: dict[str, Check] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}
_KNOWN = {"type", "pattern", "minLength", "maxLength", "enum", "minimum", "maximum",
          "properties", "additionalProperties", "required", "propertyNames", "items",
          "uniqueItems", "minItems", "$ref", "$defs", "$schema", "$id", "title",
          "description"}


@cache
def fast_check(name: str) -> Check:
    root = load_schema(name)
    return _compile(root, root)


def _compile(schema: Any, root: dict[str, Any]) -> Check:
    if not isinstance(schema, dict) or set(schema) - _KNOWN:
        return lambda v: False
    if "$ref" in schema:
        ref = str(schema["$ref"])
        target = root
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        return _compile(target, root)
    checks = [c for c in (_scalar_checks(schema), _object_check(schema, root),
                          _array_check(schema, root)) if c is not None]
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(check(v) for check in checks)


def _kind(spec: Any) -> Check | None:
    """`type` as a check: a name, or a list of names (any of them)."""
    if spec is None:
        return None
    if isinstance(spec, list):
        kinds = [_TYPES[k] for k in spec]
        return lambda v: any(k(v) for k in kinds)
    return _TYPES[spec]


def _scalar_checks(schema: dict[str, Any]) -> Check | None:
    kind = _kind(schema.get("type"))
    options = list(schema["enum"]) if "enum" in schema else None
    regex = _anchored(schema["pattern"]) if "pattern" in schema else None
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    lowest, highest = schema.get("minimum"), schema.get("maximum")
    if all(x is None for x in (kind, options, regex, lowest, highest, high)) and not low:
        return None

    def check(v: Any) -> bool:
        if kind is not None and not kind(v):
            return False
        if options is not None and not any(v == o and type(v) is type(o) for o in options):
            return False
        if isinstance(v, str):
            if regex is not None and not regex.search(v):
                return False
            if len(v) < low or (high is not None and len(v) > high):
                return False
        elif (lowest is not None or highest is not None) and _TYPES["number"](v):
            if (lowest is not None and v < lowest) or (highest is not None and v > highest):
                return False
        return True

    return check


def _object_check(schema: dict[str, Any], root: dict[str, Any]) -> Check | None:
    keys = ("properties", "additionalProperties", "required", "propertyNames")
    if not any(k in schema for k in keys):
        return None
    props = {k: _compile(v, root) for k, v in schema.get("properties", {}).items()}
    extra = schema.get("additionalProperties", True)
    extra_check = None if isinstance(extra, bool) else _compile(extra, root)
    required = list(schema.get("required", ()))
    names = _compile(schema["propertyNames"], root) if "propertyNames" in schema else None

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        if any(k not in value for k in required):
            return False
        for key, item in value.items():
            if names is not None and not names(key):
                return False
            if key in props:
                if not props[key](item):
                    return False
            elif extra is False or (extra_check is not None and not extra_check(item)):
                return False
        return True

    return check


def _array_check(schema: dict[str, Any], root: dict[str, Any]) -> Check | None:
    if not any(k in schema for k in ("items", "uniqueItems", "minItems")):
        return None
    items = _compile(schema["items"], root) if "items" in schema else None
    unique, least = schema.get("uniqueItems", False), schema.get("minItems", 0)

    def check(value: Any) -> bool:
        if not isinstance(value, list):
            return True
        if len(value) < least or (items is not None and not all(items(i) for i in value)):
            return False
        return not unique or len({json.dumps(i, sort_keys=True) for i in value}) == len(value)

    return check
