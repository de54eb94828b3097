"""Targets by name: `--target` patterns (repeatable, names or shell globs), and `jitgrant targets`,
every target with the access levels a person may request there."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .clicommon import handled, repo_option
from .completion import complete_people
from .errors import Problem, UserError, one_line
from .model import AccessLevel, Person, Policy, Target, login_name
from .timeutil import format_duration
from .validate import engine_refusal, load_policy

if TYPE_CHECKING:  # the type only: gitrepo is the module that works with git
    from git import Repo

_GLOB = set("*?[")


def select(names: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """The names (sorted) that any pattern matches; no pattern: all of them. A pattern that
    matches nothing is a mistake (a typo would otherwise quietly select less)."""
    every = sorted(names)
    if not patterns:
        return every
    unmatched = [p for p in patterns if not any(fnmatchcase(n, p) for n in every)]
    if unmatched:
        what = "; ".join(f"no target matches {p!r}" if _GLOB & set(p) else
                         f"unknown target {p!r}" for p in unmatched)
        raise UserError(one_line(f"{what} (targets: {', '.join(every) or 'none'})"))
    return [n for n in every if any(fnmatchcase(n, p) for p in patterns)]


def select_in(targets: Mapping[str, Target], patterns: Sequence[str],
              environments: Sequence[str] = ()) -> list[str]:
    """`select` by name, then, with `environments` (names or globs, repeatable), only the
    targets in one of them. An environment that no target is in is a mistake, like a pattern
    that matches nothing; so is a selection that leaves no target."""
    names = select(targets, patterns)
    if not environments:
        return names
    known = sorted({t.environment for t in targets.values() if t.environment})
    unmatched = [e for e in environments if not any(fnmatchcase(k, e) for k in known)]
    if unmatched:
        what = "; ".join(f"no target's environment matches {e!r}" if _GLOB & set(e) else
                         f"no target is in environment {e!r}" for e in unmatched)
        raise UserError(one_line(f"{what} (environments: {', '.join(known) or 'none'})"))
    chosen = [n for n in names if any(fnmatchcase(targets[n].environment or "", e)
                                      for e in environments)]
    if not chosen:
        raise UserError(one_line(f"no target is both in {', '.join(patterns)} and in the "
                                 f"environments {', '.join(environments)}"))
    return chosen


# -- jitgrant targets --------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """One target and the access levels the person may request on it."""

    target: Target
    levels: tuple[AccessLevel, ...]


def may_request(policy: Policy, person: Person, target: Target, level: AccessLevel) -> bool:
    """What validation would accept of a grant of `level` on `target` for `person`, known from
    the policy alone: the level's environments and groups, the engine, never_touch."""
    if level.environments is not None and target.environment not in level.environments:
        return False
    if level.allowed_groups is not None and not set(level.allowed_groups) & set(person.groups):
        return False
    if engine_refusal(target, level) is not None:
        return False
    login = login_name(target.role_prefix, person.handle, level.name, target.engine)
    return login not in target.never_touch


def offers(policy: Policy, person: Person) -> list[Offer]:
    """Every target, by name, with the levels the person may request there (an inactive person
    may request none)."""
    levels = sorted(policy.access.values(), key=lambda a: a.name)
    return [Offer(t, tuple(a for a in levels if person.active and may_request(policy, person,
                                                                                t, a)))
            for t in sorted(policy.targets.values(), key=lambda t: t.name)]


def offers_text(found: list[Offer], handle: str) -> str:
    cells = [["TARGET", "ENGINE", "ENVIRONMENT", f"ACCESS {handle} MAY REQUEST (MAX)"]]
    for o in found:
        levels = ", ".join(f"{a.name} ({format_duration(a.max_duration)})" for a in o.levels)
        cells.append([o.target.name, o.target.engine, o.target.environment or "-",
                      levels or "none"])
    cells = [[one_line(c) for c in row] for row in cells]
    widths = [max(len(row[i]) for row in cells) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def offers_json(found: list[Offer]) -> str:
    """A list of objects, usable as a CI matrix (`fromJSON(...)`)."""
    return json.dumps([{
        "name": o.target.name, "engine": o.target.engine, "environment": o.target.environment,
        "approvers": list(o.target.approvers),
        "access_levels": [{"name": a.name, "max_duration": format_duration(a.max_duration),
                           "max_duration_seconds": int(a.max_duration.total_seconds()),
                           "auto_approve": a.auto_approve, "dangerous": a.dangerous,
                           "description": a.description} for a in o.levels],
    } for o in found], indent=2, ensure_ascii=False)


def head_policy(repo_path: Path) -> tuple[Repo, Policy]:
    """The repository and its policies at HEAD, as `request` reads them."""
    from . import gitrepo  # here: apply and plan import this module for select()

    repo = gitrepo.open_repo(repo_path)
    problems: list[Problem] = []
    policy = load_policy(gitrepo.read_tree(repo, gitrepo.resolve(repo, "HEAD"), ["policies"]),
                         problems)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
        raise UserError(f"the policies at HEAD are invalid ({errors[0]}{more}); fix them first")
    return repo, policy


def person_for(repo: Repo, policy: Policy, as_handle: str | None) -> Person:
    """--as HANDLE, else the person whose email is the git author email, as `request` finds
    them. Looking acts for nobody, so --as needs no requesters_for_others."""
    from .requester import _unknown_me, whoami

    if as_handle is not None:
        if as_handle not in policy.people:
            raise UserError(f"--as {as_handle!r}: no such person in policies/ "
                            "(people.<handle>)")
        return policy.people[as_handle]
    handle = whoami(repo, policy) or _unknown_me(repo)
    return policy.people[handle]


@click.command("targets")
@repo_option
@click.option("--as", "as_handle", metavar="HANDLE", shell_complete=complete_people,
              help="The levels this person may request (default: your git author email).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: a list of objects, usable as a CI matrix.")
@handled
def targets_command(repo: Path, as_handle: str | None, fmt: str) -> int:
    """Every target: engine, environment, and the access levels you may request there."""
    git_repo, policy = head_policy(repo)
    person = person_for(git_repo, policy, as_handle)
    found = offers(policy, person)
    if fmt == "json":
        click.echo(offers_json(found))
        return 0
    if not found:
        click.echo("the policies define no target")
        return 0
    click.echo(offers_text(found, person.handle))
    if not person.active:
        click.echo(f"note: {person.handle} is not active in people: no access can be "
                   "requested for them", err=True)
    return 0
