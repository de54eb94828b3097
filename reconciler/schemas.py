"""The JSON Schemas, shipped in the package and kept in the repository's schema/ folder."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

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
    if isinstance(instance, str) and not _anchored(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def validator(name: str) -> Any:
    """A compiled validator for schema/<name>.schema.json, with ECMA-262 anchoring."""
    schema = json.loads((schema_dir() / f"{name}.schema.json").read_text())
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
