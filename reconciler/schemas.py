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
# The schema is turned once into the source of one Python function that answers only "valid or
# not"; an invalid document goes to jsonschema for its messages. A keyword the generator does
# not know makes the function answer "not valid", never "valid".

Check = Callable[[Any], bool]
_TYPE_TESTS = {
    "string": "{0}.__class__ is str",
    "integer": "{0}.__class__ is int",
    "number": "{0}.__class__ in (int, float)",
    "boolean": "{0}.__class__ is bool",
    "object": "{0}.__class__ is dict",
    "array": "{0}.__class__ is list",
    "null": "{0} is None",
}
_KNOWN = {"type", "pattern", "minLength", "maxLength", "enum", "minimum", "maximum",
          "properties", "additionalProperties", "required", "propertyNames", "items",
          "uniqueItems", "minItems", "$ref", "$defs", "$schema", "$id", "title",
          "description"}
_MAX_NESTING = 24  # deeper (or a $ref cycle): the document goes to jsonschema


@cache
def fast_check(name: str) -> Check:
    return compile_check(load_schema(name), f"<schema {name}>")


def compile_check(root: dict[str, Any], label: str = "<schema>") -> Check:
    """One Python function for `root`: True only when the document is valid."""
    gen = _Generator(root)
    body = gen.node(root, "v", 1)
    source = "def check(v):\n" + "".join(body) + "    return True\n"
    namespace: dict[str, Any] = {"_unique": _unique, **gen.constants}
    exec(compile(source, label, "exec"), namespace)  # noqa: S102 - generated from our schema
    return namespace["check"]  # type: ignore[no-any-return]


def _unique(items: list[Any]) -> bool:
    return len({json.dumps(i, sort_keys=True) for i in items}) == len(items)


def _refuse_when(pad: str, applies: str, tests: list[str]) -> list[str]:
    """`return False` when the keyword applies to the value (`applies`) and any test holds."""
    if not tests:
        return []
    return [f"{pad}if {applies} and ({' or '.join(tests)}):\n{pad}    return False\n"]


class _Generator:
    """Statements that `return False` when a value breaks a schema, indented by level."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.constants: dict[str, Any] = {}
        self.names = 0

    def const(self, value: Any) -> str:
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def var(self) -> str:
        self.names += 1
        return f"v{self.names}"

    def node(self, schema: Any, var: str, level: int, nesting: int = 0) -> list[str]:
        pad = "    " * level
        if not isinstance(schema, dict) or set(schema) - _KNOWN or nesting > _MAX_NESTING:
            return [f"{pad}return False\n"]
        if "$ref" in schema:
            target: Any = self.root
            for part in str(schema["$ref"]).removeprefix("#/").split("/"):
                target = target[part]
            return self.node(target, var, level, nesting + 1)
        out: list[str] = []
        kind = schema.get("type")
        if kind is not None:
            kinds = kind if isinstance(kind, list) else [kind]
            test = " or ".join(_TYPE_TESTS[k].format(var) for k in kinds)
            out.append(f"{pad}if not ({test}):\n{pad}    return False\n")
        if "enum" in schema:
            options = self.const(tuple(schema["enum"]))
            out.append(f"{pad}if not any({var} == o and {var}.__class__ is o.__class__ "
                       f"for o in {options}):\n{pad}    return False\n")
        out += self.strings(schema, var, pad)
        out += self.numbers(schema, var, pad)
        out += self.objects(schema, var, level, nesting)
        out += self.arrays(schema, var, level, nesting)
        return out

    def strings(self, schema: dict[str, Any], var: str, pad: str) -> list[str]:
        tests = []
        if "pattern" in schema:
            tests.append(f"not {self.const(_anchored(schema['pattern']).search)}({var})")
        if schema.get("minLength", 0):
            tests.append(f"len({var}) < {int(schema['minLength'])}")
        if schema.get("maxLength") is not None:
            tests.append(f"len({var}) > {int(schema['maxLength'])}")
        return _refuse_when(pad, f"{var}.__class__ is str", tests)

    def numbers(self, schema: dict[str, Any], var: str, pad: str) -> list[str]:
        tests = []
        if schema.get("minimum") is not None:
            tests.append(f"{var} < {self.const(schema['minimum'])}")
        if schema.get("maximum") is not None:
            tests.append(f"{var} > {self.const(schema['maximum'])}")
        return _refuse_when(pad, f"{var}.__class__ in (int, float)", tests)

    def objects(self, schema: dict[str, Any], var: str, level: int, nesting: int) -> list[str]:
        keys = ("properties", "additionalProperties", "required", "propertyNames")
        if not any(k in schema for k in keys):
            return []
        pad, inner = "    " * level, "    " * (level + 1)
        out = [f"{pad}if {var}.__class__ is dict:\n"]
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key in schema.get("required", ()):
            out.append(f"{inner}if {str(key)!r} not in {var}:\n{inner}    return False\n")
        if extra is False:
            out.append(f"{inner}if not {var}.keys() <= {self.const(frozenset(props))}:\n"
                       f"{inner}    return False\n")
        for key, sub in props.items():
            item = self.var()
            body = self.node(sub, item, level + 2, nesting + 1)
            out.append(f"{inner}if {str(key)!r} in {var}:\n"
                       f"{inner}    {item} = {var}[{str(key)!r}]\n")
            out += body
        names = schema.get("propertyNames")
        extra_schema = None if isinstance(extra, bool) else extra
        if names is not None or extra_schema is not None:
            key, item = self.var(), self.var()
            out.append(f"{inner}for {key}, {item} in {var}.items():\n")
            loop = level + 2
            if names is not None:
                out += self.node(names, key, loop, nesting + 1)
            if extra_schema is not None:
                if props:
                    out.append(f"{'    ' * loop}if {key} in {self.const(frozenset(props))}:\n"
                               f"{'    ' * loop}    continue\n")
                out += self.node(extra_schema, item, loop, nesting + 1)
            out.append(f"{'    ' * loop}pass\n")
        out.append(f"{inner}pass\n")
        return out

    def arrays(self, schema: dict[str, Any], var: str, level: int, nesting: int) -> list[str]:
        if not any(k in schema for k in ("items", "uniqueItems", "minItems")):
            return []
        pad, inner = "    " * level, "    " * (level + 1)
        out = [f"{pad}if {var}.__class__ is list:\n"]
        if schema.get("minItems", 0):
            out.append(f"{inner}if len({var}) < {int(schema['minItems'])}:\n"
                       f"{inner}    return False\n")
        if "items" in schema:
            item = self.var()
            out.append(f"{inner}for {item} in {var}:\n")
            out += self.node(schema["items"], item, level + 2, nesting + 1)
            out.append(f"{inner}    pass\n")
        if schema.get("uniqueItems", False):
            out.append(f"{inner}if not _unique({var}):\n{inner}    return False\n")
        out.append(f"{inner}pass\n")
        return out
