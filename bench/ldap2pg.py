"""ldap2pg 5.9 (the last Python release, from PyPI) on the logins jitgrant creates: the same
names, group membership and comments as static `role:` rules, no LDAP. It runs from a
virtualenv of its own under the bench's cache folder, made on first use; when that cannot be
made or ldap2pg cannot run, the reason is reported instead of figures.

What ldap2pg 5.9 cannot express: its role options are LOGIN, SUPERUSER, CREATEDB, CREATEROLE,
INHERIT, REPLICATION and BYPASSRLS only, so its logins get neither jitgrant's CONNECTION LIMIT
nor VALID UNTIL (two clauses of the same CREATE ROLE statement)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

VERSION = "5.9"
CACHE_ENV = "JITGRANT_BENCH_CACHE"
GROUP_COMMENT = "jitgrant bench group"  # set before ldap2pg runs, so it leaves the group alone
PACKAGES = [f"ldap2pg=={VERSION}", "psycopg2-binary"]  # ldap2pg leaves the psycopg2 flavour to us


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "jitgrant-bench")


@dataclass(frozen=True)
class Ldap2pg:
    """The ldap2pg command, or why there is none (`missing`)."""

    command: Path | None
    missing: str | None = None
    version: str = ""

    def run(self, config: Path, dsn: str) -> str:
        """One `ldap2pg --real` run; its log (stderr) when it succeeds."""
        assert self.command is not None
        proc = subprocess.run([str(self.command), "--real", "--no-color", "--config", str(config)],
                              env={**_clean_env(), "PGDSN": dsn}, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"ldap2pg exit {proc.returncode}: {_tail(proc.stderr)}")
        return proc.stderr


def install(cache: Path | None = None) -> Ldap2pg:
    """ldap2pg from its virtualenv under `cache`, installed there by pip when missing."""
    venv = (cache or cache_dir()) / "ldap2pg-venv"
    command = venv / "bin" / "ldap2pg"
    version = _version(command)
    if version != VERSION:
        print(f"bench: installing ldap2pg {VERSION} into {venv}", file=sys.stderr)
        problem = _pip_install(venv)
        if problem:
            return Ldap2pg(None, problem)
        version = _version(command)
    if version != VERSION:
        return Ldap2pg(None, f"`{command} --version` does not say ldap2pg {VERSION}: "
                             f"{_version_output(command)}")
    return Ldap2pg(command, version=f"ldap2pg {version}")


def _pip_install(venv: Path) -> str | None:
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
              *PACKAGES]]
    for cmd in steps:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`{' '.join(cmd[-3:])}` failed: {exc}"
        if proc.returncode != 0:
            return f"`{' '.join(cmd[-3:])}` exit {proc.returncode}: {_reason(proc.stderr)}"
    return None


def _reason(log: str) -> str:
    """The lines of a pip log that say why: compiler and pip errors, else its last line."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    keys = ("fatal error", "error:", "ERROR:")
    picked = [ln for ln in lines if any(k in ln for k in keys) and "WARNING" not in ln]
    return " / ".join(dict.fromkeys(picked[:3] or lines[-1:])) or "no output"


def _version(command: Path) -> str:
    out = _version_output(command)
    first = out.splitlines()[0] if out else ""
    return first.split()[1] if first.startswith("ldap2pg ") else ""


def _version_output(command: Path) -> str:
    if not command.exists():
        return "not installed"
    proc = subprocess.run([str(command), "--version"], capture_output=True, text=True,
                          env=_clean_env())
    return (proc.stdout + proc.stderr).strip() or f"exit {proc.returncode}"


def _clean_env() -> dict[str, str]:
    """Our environment minus what would point ldap2pg elsewhere (PG*, LDAP*, its own)."""
    drop = ("PG", "LDAP", "DRY", "VERBOSITY", "COLOR", "CHECK")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def _tail(text: str, lines: int = 5) -> str:
    return " / ".join(text.strip().splitlines()[-lines:])


def config(prefix: str, group: str, logins: dict[str, str], dsn: str) -> str:
    """ldap2pg.yml: its scope is the run's prefix (roles outside are never dropped), the
    group as it stands, and one static rule per login with jitgrant's comment. Only the DSN's
    database is inspected for objects to reassign, as jitgrant finds no other with dependents;
    ldap2pg's default (every database that allows connections) would add a REASSIGN OWNED +
    DROP OWNED per dropped role and database. Block YAML, as a person would write it; values
    are JSON strings, which YAML reads as double-quoted scalars."""
    q = json.dumps
    database = conninfo_to_dict(dsn).get("dbname") or "postgres"
    scope = f"SELECT rolname FROM pg_catalog.pg_roles WHERE starts_with(rolname, '{prefix}')"
    lines = ["version: 5", "postgres:", f"  managed_roles_query: {q(scope)}",
             f"  databases_query: [{q(database)}]", "sync_map:", "- roles:",
             f"  - name: {q(group)}", "    options: NOLOGIN", f"    comment: {q(GROUP_COMMENT)}"]
    for name, comment in sorted(logins.items()):
        lines += [f"  - name: {q(name)}", "    options: LOGIN", f"    parent: {q(group)}",
                  f"    comment: {q(comment)}"]
    return "\n".join(lines) + "\n"
