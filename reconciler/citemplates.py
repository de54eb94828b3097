"""The renderer of the CI files other than GitHub's workflows: a GitLab pipeline, a Kubernetes
CronJob, a systemd service and timer. Which kind writes which files is scaffold.CI_KINDS, the
one list of CI kinds; `jitgrant init --ci KIND` writes what render returns.

Each kind is a folder of jinja2 templates under templates/ci/<kind>/. The context carries at
least `version` (the jitgrant version to pin) and `targets` (each with `name` and `dsn_env`);
the other keys have defaults below, so a scaffold can pass only what it knows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jinja2

from .errors import UserError

# (template under templates/ci/<kind>/, path written relative to the repository).
Files = tuple[tuple[str, str], ...]

# Placeholders a user edits after `init`; each is marked as such where it is used.
DEFAULTS: dict[str, Any] = {
    "branch": "main",
    "repo_url": "https://git.example.com/acme/access.git",
    "image": None,  # kubernetes: built from jitgrant's Containerfile; gitlab: pip install
    "namespace": "jitgrant",
    "jitgrant_bin": "/opt/jitgrant/bin/jitgrant",  # systemd: a virtualenv of its own
}

# The policy schema's patterns (schema/policy.schema.json).
_TARGET_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
_DSN_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("reconciler", "templates/ci"),
                          autoescape=False, trim_blocks=True, lstrip_blocks=True,
                          keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def render(kind: str, files: Files, context: Mapping[str, Any]) -> dict[str, str]:
    """The `files` of one CI kind, relative path -> text."""
    values = {**DEFAULTS, **context}
    values["targets"] = [_target(t) for t in context["targets"]]
    if kind == "kubernetes" and not values["image"]:
        values["image"] = f"registry.example.com/jitgrant:{values['version']}"
    return {out: _ENV.get_template(f"{kind}/{name}").render(values)
            for name, out in files}


def _target(target: Any) -> dict[str, str]:
    """A target as the templates use it, from a dict or an object with the same fields. The
    templates place the names in file paths, unit files and shell scripts unquoted, so they
    are held to the policy schema's patterns here too, whoever built the context."""
    def get(key: str) -> str:
        value = target[key] if isinstance(target, Mapping) else getattr(target, key)
        return str(value)
    name, dsn_env = get("name"), get("dsn_env")
    if dsn_env == "None":  # a target that reads a file (dsn_file) has no variable to copy
        raise UserError(f"target {name!r} reads its DSN from a file (dsn_file): the CI files "
                        "written here give each target a dsn_env")
    if not _TARGET_NAME.fullmatch(name) or not _DSN_ENV.fullmatch(dsn_env):
        raise UserError(f"target {name!r} (dsn_env {dsn_env!r}) cannot be written into a "
                        "CI file: names must match the policy schema")
    return {"name": name, "dsn_env": dsn_env}
