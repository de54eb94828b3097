"""Shell completion values for click's built-in completion (`_JITGRANT_COMPLETE=bash_source
jitgrant`): target names, access levels and grant files, read from the working tree of the
repository that --repo names (what the user sees and edits).

Imported when the CLI starts: the reading modules are imported inside the callbacks, and a
callback never fails (a repository that cannot be read completes nothing)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from .model import Policy

Completer = Callable[[click.Context, click.Parameter, str], list[str]]


def _repo(ctx: click.Context) -> Path:
    """--repo when it was given before the word being completed, else the current folder."""
    value = ctx.params.get("repo")
    return Path(value) if value else Path(".")


def _policy(ctx: click.Context) -> Policy:
    from .load import read_folder
    from .validate import load_policy

    return load_policy(read_folder(_repo(ctx), ["policies"]), [])


def _quietly(func: Completer) -> Completer:
    """A completion that fails completes nothing rather than print a traceback in the shell."""
    def wrapper(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
        try:
            return func(ctx, param, incomplete)
        except Exception:  # noqa: BLE001 - a half-typed command line is not worth an error
            return []

    return wrapper


@_quietly
def complete_targets(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    return sorted(n for n in _policy(ctx).targets if n.startswith(incomplete))


@_quietly
def complete_access(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """The access levels; once the target is on the command line, those usable there."""
    from .validate import engine_refusal

    policy = _policy(ctx)
    target = policy.targets.get(str(ctx.params.get("target") or ""))
    names = []
    for name, level in policy.access.items():
        if target is not None and (engine_refusal(target, level) or (
                level.environments is not None
                and target.environment not in level.environments)):
            continue
        names.append(name)
    return sorted(n for n in names if n.startswith(incomplete))


@_quietly
def complete_people(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """The handles of the active people, for --as."""
    return sorted(h for h, p in _policy(ctx).people.items()
                  if p.active and h.startswith(incomplete))


@_quietly
def complete_grants(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """grants/<target>/<file>.yaml, relative to the repository as GRANT is given."""
    root = _repo(ctx)
    found = [p.relative_to(root).as_posix() for p in (root / "grants").glob("*/*")
             if p.suffix in (".yaml", ".yml") and p.is_file()]
    return sorted(p for p in found if p.startswith(incomplete))


def target_option(help_text: str = "Only this target") -> Callable[[Any], Any]:
    """--target for the commands that read several targets: repeatable, names or shell globs,
    into the parameter `only` (a tuple, empty for all)."""
    return click.option("--target", "only", multiple=True, metavar="NAME",
                        shell_complete=complete_targets,
                        help=f"{help_text} (repeatable; a shell glob such as 'orders-*').")


@_quietly
def complete_environments(ctx: click.Context, param: click.Parameter,
                          incomplete: str) -> list[str]:
    return sorted({t.environment for t in _policy(ctx).targets.values()
                   if t.environment and t.environment.startswith(incomplete)})


def environment_option() -> Callable[[Any], Any]:
    """--environment for the commands that read several targets: repeatable, names or shell
    globs, into the parameter `environments`; with --target, a target must match both."""
    return click.option("--environment", "environments", multiple=True, metavar="ENV",
                        shell_complete=complete_environments,
                        help="Only the targets in this environment (repeatable; a shell glob).")


def jobs_option() -> Callable[[Any], Any]:
    """--jobs: how many of the reconciler's connections a run may hold at once (jobs.py)."""
    from .jobs import DEFAULT_JOBS  # a module of the standard library only: cheap

    return click.option("--jobs", "-j", "jobs", type=click.IntRange(min=1), default=DEFAULT_JOBS,
                        show_default=True, metavar="N",
                        help="At most N database connections at once, over all targets and "
                             "servers; the targets are read and reconciled N at a time.")
