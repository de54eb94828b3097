"""`jitgrant standing`: the logins that do not expire (or only more than a year from now), the
standing access that just-in-time grants are meant to replace: outside jitgrant's namespace,
and inside it those that jitgrant leaves alone or that lack a grant's expiry. It only reads
the servers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import click

from .clicommon import handled, repo_option
from .completion import environment_option, jobs_option, target_option
from .dsn import DsnError, admin_dsn, describe
from .engines import mysql, postgres
from .errors import UserError, one_line
from .jobs import DEFAULT_JOBS, bounded_map
from .model import Target
from .redact import redact
from .timeutil import now_utc

EXIT_FOUND = 2
# Each engine's catalog query lives in its own file; (name, superuser, why it is standing).
READERS: dict[str, Callable[[Target, str], list[tuple[str, bool, str]]]] = {
    "postgres": postgres.standing_logins, "mysql": mysql.standing_logins}


@dataclass(frozen=True)
class Standing:
    target: str
    login: str
    superuser: bool
    why: str


@dataclass
class Report:
    found: list[Standing] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # target -> why it was not read
    skipped: list[str] = field(default_factory=list)  # targets whose DSN is not set
    read: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1 when a target could not be read, its DSN unset included (the others are still
        reported), else 2 when anything was found, else 0."""
        if self.errors or self.skipped:
            return 1
        return EXIT_FOUND if self.found else 0


def survey(targets: list[Target], env: Mapping[str, str], explicit: bool,
           jobs: int = DEFAULT_JOBS) -> Report:
    """Read every target whose DSN is set, `jobs` at a time (one connection each); one that
    fails never stops the others."""
    report = Report()
    read = bounded_map(targets, lambda target: _read(target, env), jobs)
    for target, (rows, error) in zip(targets, read, strict=True):
        if isinstance(error, DsnError):
            if explicit or not error.missing:
                report.errors[target.name] = str(error)
            else:
                report.skipped.append(target.name)
        elif error is not None:
            report.errors[target.name] = error
        else:
            report.read.append(target.name)
            report.found += [Standing(target.name, name, sup, why) for name, sup, why in rows]
    return report


def _read(target: Target, env: Mapping[str, str]
          ) -> tuple[list[tuple[str, bool, str]], str | DsnError | None]:
    """One target's standing logins, or why it was not read (a DsnError: no DSN to be had)."""
    try:
        dsn = admin_dsn(target, env)  # remembered: clicommon's last defence masks it too
    except DsnError as exc:
        return [], exc
    reader = READERS.get(target.engine)
    if reader is None:
        return [], f"engine {target.engine!r} is not available"
    try:
        return reader(target, dsn), None
    except UserError as exc:
        return [], redact(str(exc))


def to_table(report: Report) -> str:
    cells = [["TARGET", "LOGIN", "SUPERUSER", "WHY"]]
    cells += [[s.target, one_line(s.login), "yes" if s.superuser else "no", s.why]
              for s in report.found]
    widths = [max(len(row[i]) for row in cells) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def to_json(report: Report, now: datetime) -> str:
    return json.dumps({
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "targets_read": report.read,
        "standing": [{"target": s.target, "login": s.login, "superuser": s.superuser,
                      "why": s.why} for s in report.found],
        "errors": report.errors, "skipped": report.skipped}, indent=2, ensure_ascii=False)


@click.command("standing")
@repo_option
@target_option()
@environment_option()
@jobs_option()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@handled
def standing_command(repo: Path, only: tuple[str, ...], environments: tuple[str, ...], jobs: int,
                     fmt: str) -> int:
    """Logins that do not expire within a year: outside the namespace, and inside it those
    jitgrant leaves alone (exit 0 none, 2 found, 1 a target could not be read)."""
    from .apply import select_targets
    from .snapshot import read_snapshot

    now = now_utc()
    targets = select_targets(read_snapshot(repo, "HEAD", now), only, environments)
    if not targets:
        raise UserError("the policies define no target")
    report = survey(targets, os.environ, explicit=bool(only or environments), jobs=jobs)
    if not report.read and not report.errors:
        raise UserError("no target has its DSN environment variable set: "
                        + ", ".join(f"{t.name} ({describe(t)})" for t in targets))
    if fmt == "json":
        click.echo(to_json(report, now))
    elif report.found:
        click.echo(to_table(report))
    elif report.read:
        click.echo(f"no standing access on {', '.join(report.read)}")
    else:
        click.echo("standing access unknown: no target could be read")
    if fmt == "table":
        for name in report.skipped:
            click.echo(f"note: {name}: not read, its DSN environment variable is not set",
                       err=True)
    for name, error in report.errors.items():
        click.echo(f"jitgrant: error: {name}: {error}", err=True)
    return report.exit_code
