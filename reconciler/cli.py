"""The jitgrant command line: parse options, build objects, call one function, map exit codes."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .clicommon import EXIT_BUG, handled, log_format_option, repo_option
from .completion import environment_option, jobs_option, target_option
from .errors import UserError
from .timeutil import now_utc

if TYPE_CHECKING:  # imported lazily below: the CLI starts fast
    from .validate import Snapshot

# Commands defined in their own modules, imported when run (or listed by --help): `validate`
# need not import the database drivers and the requester's side (0.2 s of a 0.4 s start-up).
LAZY_COMMANDS = {
    "audit": ("auditlog", "audit_command"),
    "auto-approve": ("approve", "auto_approve_command"),
    "request": ("requester", "request_command"),
    "status": ("access", "status_command"),
    "connect": ("access", "connect_command"),
    "doctor": ("doctor", "doctor_command"),
    "extend": ("requester", "extend_command"),
    "revoke": ("requester", "revoke_command"),
    "password": ("requester", "password_command"),
    "queue": ("queue", "queue_command"),
    "standing": ("standing", "standing_command"),
    "targets": ("targets", "targets_command"),
}


# apply (and queue, which has its own): a Slack-compatible webhook, reconciler/notify.py.
NOTIFY = click.option(
    "--notify", metavar="URL", envvar="JITGRANT_NOTIFY_URL", show_envvar=True,
    help="Post the outcome (counts per target, no secrets) to this Slack-compatible webhook.")

# plan, apply and status: see reconciler/overdue.py.
OVERDUE_GRACE = click.option(
    "--overdue-grace", default="15m", show_default=True, metavar="DURATION",
    help="How long after its grant's end a login that can still log in counts as an overdue "
         "revocation (30m, 1h, PT15M).")  # the same words as overdue.GRACE_HELP


class JitgrantGroup(click.Group):
    """click's own usage errors exit 2, which `plan` uses for "changes": make them one line and
    exit 1 like every other user error. The LAZY_COMMANDS are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            module, name = LAZY_COMMANDS[cmd_name]
            command = getattr(importlib.import_module(f".{module}", __package__), name)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `jitgrant`: just the help
                click.echo(exc.format_message())
                sys.exit(0)
            click.echo(f"jitgrant: error: {exc.format_message()}", err=True)
            sys.exit(1)
        except click.Abort:
            sys.exit(130)
        except click.ClickException as exc:
            click.echo(f"jitgrant: error: {exc.format_message()}", err=True)
            sys.exit(1)


@click.group(cls=JitgrantGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jitgrant")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks.")
def main(verbose: bool) -> None:
    """Just-in-time database access the GitOps way."""


@main.command()
@repo_option
@click.option("--base", help="Mark grants new or changed against this ref (the PR's base).")
@click.option("--rev", help="Validate this commit instead of the working tree.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text")
@click.option("--pr-author", envvar="JITGRANT_PR_AUTHOR", show_envvar=True,
              help="Fail when a changed grant is for someone else (needs --base).")
@click.option("--author-team", "teams", multiple=True, envvar="JITGRANT_AUTHOR_TEAMS",
              show_envvar=True, help="A team the PR author belongs to, for "
              "requesters_for_others (repeatable; the variable: space-separated).")
@click.option("--auto-approvable", is_flag=True,
              help="Exit 0 only if the change is grants of auto_approve levels (needs --base).")
@click.option("--request-app", envvar="JITGRANT_REQUEST_APP", show_envvar=True,
              help="The login the request workflow opens pull requests as: its sealed grants "
                   "pass the --pr-author check (the workflow checked its actor).")
@handled
def validate(repo: Path, base: str | None, rev: str | None, fmt: str, pr_author: str | None,
             teams: tuple[str, ...], auto_approvable: bool, request_app: str | None) -> int:
    """Check policies and grants; every problem as path:line: message."""
    from .render import problems_github, problems_json, problems_text
    from .review import author_problems, not_auto_approvable
    from .snapshot import base_reader, read_snapshot

    if (pr_author or auto_approvable) and not base:
        raise UserError("--pr-author and --auto-approvable need --base (the PR's base)")
    now = now_utc()
    snapshot = read_snapshot(repo, rev, now, base)
    problems = sorted(snapshot.problems + (
        author_problems(snapshot, pr_author, teams, base_reader(repo, str(base)),
                        request_app=request_app or None)
        if pr_author else []))
    render = {"text": problems_text, "json": problems_json, "github": problems_github}[fmt]
    output = render(problems)
    if fmt == "json":
        click.echo(output)
    elif output:
        click.echo(output, err=fmt == "text")
    failed = any(p.severity == "error" for p in problems)
    if fmt == "text":
        active = sum(1 for g in snapshot.grants if g.is_current(now))
        valid = len(snapshot.grants) + len(snapshot.inactive)
        summary = (f"{_count(valid, 'valid grant file')} ({active} active now), "
                   f"{len(snapshot.invalid_grants)} invalid, "
                   f"{_count(len(snapshot.policy.targets), 'target')}")
        click.echo(f"invalid: {summary}" if failed else summary)
    if auto_approvable:
        reasons = not_auto_approvable(snapshot)
        if not reasons:  # break-glass access live at the base is not stretched
            from .breakglass import live_at_base
            reasons = live_at_base(snapshot, read_snapshot(repo, base, now), now)
        for reason in reasons:
            click.echo(f"not auto-approvable: {reason}", err=True)
        if fmt == "text" and not reasons:
            click.echo(f"auto-approvable: {_approvable_why(snapshot)}")
        failed = failed or bool(reasons)
    return 1 if failed else 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _approvable_why(snapshot: Snapshot) -> str:
    """What made an auto-approvable change so, in its own words (deletions and additions)."""
    changed = snapshot.changed or frozenset()
    added = sum(1 for path in changed if snapshot.grant_at(path) is not None)
    removed = len(changed) - added
    if not changed:
        return "nothing changes"
    if not added:
        return f"{_count(removed, 'grant file')} removed, which only takes access away"
    grants = f"{_count(added, 'grant')} of auto_approve levels"
    return grants if not removed else f"{grants}, and {_count(removed, 'grant file')} removed"


@main.command()
@repo_option
@click.option("--rev", default="HEAD", show_default=True, help="The commit to plan from.")
@target_option()
@environment_option()
@jobs_option()
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text")
@click.option("--offline", is_flag=True, help="Need no database: plan from the grants alone.")
@click.option("--base", help="Also summarise the grants changed against this ref (for a PR).")
@OVERDUE_GRACE
@log_format_option
@handled
def plan(repo: Path, rev: str, only: tuple[str, ...], environments: tuple[str, ...], jobs: int,
         fmt: str, offline: bool, base: str | None, overdue_grace: str, log_format: str) -> int:
    """Show what apply would do (exit 0 in sync, 2 changes, 1 error)."""
    from . import events
    from .apply import Prefetch, new_run_id, reconcile
    from .overdue import overdue_logins, parse_grace, summary
    from .prdiff import review_snapshots
    from .snapshot import read_merge_base, read_snapshot

    grace = parse_grace(overdue_grace)
    now = now_utc()
    log = events.start("plan", log_format, new_run_id(), rev=rev, targets=list(only),
                       offline=offline)
    with Prefetch(execute=False, only=only, jobs=jobs, environments=environments) as prefetch:
        snapshot = read_snapshot(repo, rev, now, base,
                                 on_policy=None if offline else prefetch.start)
        with _progress(snapshot, only, environments, log) as done, \
                _approver(repo, snapshot, log, offline=offline, record=False) as approver:
            run = reconcile(snapshot, now, only=only, offline=offline, prefetch=prefetch,
                            environments=environments, run_id=log.run_id if log else None,
                            on_target=done, approver=approver,
                            sealer=_plan_sealer(repo, snapshot))
    if log is not None:
        log.ran(run)
    if base is not None:
        names = [t.target.name for t in run.targets] if environments else list(only)
        run.review = review_snapshots(read_merge_base(repo, base, rev, now), snapshot, now,
                                      names)
    overdue = overdue_logins(run, grace)
    _print_run(run, fmt, overdue)
    if fmt == "text":
        for line in summary(overdue, run.started):
            click.echo(line)
    return _exit_code(run, 2)


@contextmanager
def _progress(snapshot: Snapshot, only: tuple[str, ...], environments: tuple[str, ...],
              log: Any = None) -> Iterator[Callable[[Any], None]]:
    """`target 37/200 done (name)` on stderr while a run over many targets goes, when stderr
    is a terminal; the line is wiped before the run's output. With --log-format json, each
    finished target is logged instead."""
    from .apply import select_targets
    from .jobs import ProgressLine

    try:
        total = len(select_targets(snapshot, only, environments))
    except UserError:
        total = 0  # reconcile reports the unknown target
    if log is not None:
        yield log.target  # the JSON events are the progress; no line mixed into them
        return
    line = ProgressLine(total)
    try:
        yield lambda target_run: line.finished(target_run.target.name)
    finally:
        line.clear()


@contextmanager
def _approver(repo: Path, snapshot: Snapshot, log: Any, offline: bool = False,
              record: bool = True) -> Iterator[Any]:
    """The run's approval lookups (lookup.py; None without a forge or require_approval);
    after the run, why some failed, as warnings: a forge outage never fails the run."""
    from .lookup import Lookup

    lookup = Lookup.for_run(repo, snapshot.policy, {g.path: g for g in snapshot.grants},
                            offline=offline, record=record)
    try:
        yield lookup
    finally:
        if lookup is not None:
            lookup.close()
            for line in lookup.warnings():
                if log is not None:
                    log.emit("warning", message=line)
                else:
                    click.echo(f"jitgrant: warning: {line}", err=True)


def _exit_code(run: Any, changes_code: int) -> int:
    """3 when a target hit a bug (after every other target ran), 1 on failure, else
    `changes_code` when there were changes."""
    if run.bugs:
        from . import events

        verbose = click.get_current_context().find_root().params.get("verbose", False)
        log = events.current()
        if log is not None:
            log.bugs(run.bugs, verbose)
            return EXIT_BUG
        for bug in run.bugs:
            click.echo(bug if verbose else bug.strip().splitlines()[-1], err=True)
        click.echo("This is a bug in jitgrant. Please report it with the output of -v.",
                   err=True)
        return EXIT_BUG
    if run.failed:
        return 1
    return changes_code if run.has_changes else 0


def _print_run(run: Any, fmt: str, overdue: Any = None) -> None:
    """The run as text, JSON or markdown; `overdue` (plan's): the revocations overdue, listed
    in the JSON and the markdown (the text prints them after the plan)."""
    from . import events
    from .overdue import summary
    from .render import plan_json, plan_markdown, plan_text, run_problems_text

    if fmt == "json":
        click.echo(plan_json(run, [o.as_dict() for o in overdue or ()]))
        return
    if fmt == "markdown":
        click.echo(plan_markdown(run, summary(list(overdue or ()), run.started)))
        return
    if run.problems and events.current() is None:  # else they were logged as events
        click.echo(run_problems_text(run.problems), err=True)
    click.echo(plan_text(run))


@main.command()
@repo_option
@click.option("--rev", default="HEAD", show_default=True, help="The commit to reconcile.")
@target_option()
@environment_option()
@jobs_option()
@click.option("--dry-run", is_flag=True, help="Plan only: the same output as `plan`.")
@click.option("--no-commit", is_flag=True, help="Write the audit record but do not commit it.")
@click.option("--push", is_flag=True, help="Push the audit commit (rebasing when main moved).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@OVERDUE_GRACE
@click.option("--metrics-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the run's Prometheus metrics to this file, atomically (for "
                   "node_exporter's textfile collector: name it *.prom).")
@click.option("--pushgateway", metavar="URL",
              help="Push the run's Prometheus metrics to this Pushgateway (job jitgrant).")
@log_format_option
@NOTIFY
@handled
def apply(repo: Path, rev: str, only: tuple[str, ...], environments: tuple[str, ...], jobs: int,
          dry_run: bool, no_commit: bool, push: bool, fmt: str, overdue_grace: str,
          metrics_file: Path | None, pushgateway: str | None, log_format: str,
          notify: str | None = None) -> int:
    """Reconcile the databases with the grants at a commit, then audit and commit."""
    from . import events
    from .aftercut import reader
    from .apply import Prefetch, new_run_id, reconcile
    from .audit import endings_from, persist, preparer
    from .overdue import parse_grace
    from .sealing import for_run
    from .snapshot import read_snapshot

    grace = parse_grace(overdue_grace)
    started = now_utc()
    log = events.start("apply", log_format, new_run_id(), execute=not dry_run, rev=rev,
                       targets=list(only), push=push, commit=not no_commit)
    with Prefetch(execute=not dry_run, only=only, jobs=jobs,
                  environments=environments) as prefetch:
        snapshot = read_snapshot(repo, rev, started, on_policy=prefetch.start)
        earlier = None if dry_run else reader(repo, sorted(snapshot.policy.targets))
        run_id = log.run_id if log else new_run_id()
        sealer = for_run(repo, snapshot, run_id, push and not dry_run)
        with _progress(snapshot, only, environments, log) as finished, \
                _approver(repo, snapshot, log) as approver:
            run = reconcile(snapshot, started, only=only, execute=not dry_run,
                            while_executing=preparer(snapshot, endings_from(repo, snapshot)),
                            prefetch=prefetch, earlier=earlier, environments=environments,
                            run_id=run_id, on_target=finished,
                            approver=approver, sealer=sealer)
    if log is not None:
        log.ran(run)
    _print_run(run, fmt)
    if dry_run:
        return _exit_code(run, 2)
    rel = persist(repo, run, commit=not no_commit, push=push)
    if rel and log is not None:
        log.audit_record(rel, committed=not no_commit, pushed=push and not no_commit)
    if rel and fmt == "text":
        done = "written, not committed: --no-commit" if no_commit else \
            "committed and pushed" if push else "committed, not pushed: no --push"
        click.echo(f"audit record: {rel} ({done})")
    code = _exit_code(run, 0)
    _notify(notify, run, log)
    return _report_run(run, grace, rel, metrics_file, pushgateway, code, log)


def _notify(url: str | None, run: Any, log: Any) -> None:
    """apply's outcome to the webhook (notify.py), when it changed something or failed (not
    every scheduled run): a failure to post is one warning, never the run's."""
    if not url or not (run.has_changes or run.failed):
        return
    from . import notify

    problem = notify.post(url, notify.apply_text(run))
    if problem is None:
        return
    if log is not None:
        log.emit("warning", message=problem)
    else:
        click.echo(f"jitgrant: warning: {problem}", err=True)


def _plan_sealer(repo: Path, snapshot: Any) -> Any:
    """Plan sealed logins as apply would (new passwords stay in memory), when there are any."""
    if not any(g.delivery == "sealed" for g in snapshot.grants):
        return None
    from .sealing import for_run

    return for_run(repo, snapshot, "plan", fetch_pending=False)


def _report_run(run: Any, grace: Any, audit: str | None, metrics_file: Path | None,
                pushgateway: str | None, code: int, log: Any) -> int:
    """After the databases and the audit: the overdue revocations (exit 1 while any is), the
    metrics, and in GitHub Actions the step summary and ::error annotations. A metrics file
    that cannot be written is one error line; the push and the summary still happen."""
    import os

    from . import metrics
    from .overdue import overdue_logins, summary

    still = overdue_logins(run, grace, after=True)
    for line in summary(still, run.started):
        _error_line(line, log)
    errors: list[str] = []
    if metrics_file is not None or pushgateway:
        figures = metrics.figures(run, grace, metrics.read_previous(metrics_file)
                                  if metrics_file is not None else None)
        try:
            if metrics_file is not None:
                metrics.write_file(metrics_file, figures)
        except UserError as exc:
            errors.append(str(exc))
        try:
            if pushgateway:
                metrics.push(pushgateway, figures)
        except UserError as exc:
            errors.append(str(exc))
    if metrics.in_github_actions():
        for line in metrics.error_annotations(run, still):
            click.echo(line)
        summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary_path:
            try:
                metrics.append_summary(summary_path, metrics.step_summary(run, still, audit))
            except UserError as exc:
                errors.append(str(exc))
    for error in errors:
        _error_line(error, log)
    if code == 0 and (still or errors):
        return 1
    return code


def _error_line(line: str, log: Any) -> None:
    """An error after the run: a line on stderr, or with --log-format json an event."""
    if log is not None:
        log.emit("error", message=line)
    else:
        click.echo(f"jitgrant: error: {line}", err=True)


@main.command()
@repo_option
@click.option("--check", is_flag=True, help="Exit 1 when CODEOWNERS is stale.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: the rules, and whether the file is up to date.")
@handled
def codeowners(repo: Path, check: bool, fmt: str) -> int:
    """Render CODEOWNERS from the targets' approvers and the policy owners: the file that
    exists (.github/, .gitlab/, docs/ or the root), else .github/CODEOWNERS."""
    from .codeowners import locate, render, to_json
    from .render import problems_text
    from .snapshot import read_snapshot

    snapshot = read_snapshot(repo, None, now_utc())
    if not snapshot.policy.valid:
        click.echo(problems_text([p for p in snapshot.problems if p.path.startswith("policies")]),
                   err=True)
        raise UserError("the policies are invalid; CODEOWNERS was not rendered")
    def exists(rel: str) -> bool:
        return (repo / rel).exists()

    rel = locate(exists)
    wanted = render(snapshot.policy, exists, rel)
    path = repo / rel
    current = path.read_text() if path.exists() else None
    write = not check and current != wanted
    if write:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted)
    if fmt == "json":
        click.echo(to_json(snapshot.policy, exists, stale=current != wanted, written=write,
                           path=rel))
    elif check and current != wanted:
        click.echo(f"{rel} is stale: run `jitgrant codeowners` and commit it", err=True)
    elif check:
        click.echo(f"{rel} is up to date")
    elif write:
        click.echo(f"wrote {rel}")
    return 1 if check and current != wanted else 0


@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--ci", "ci", default="github", show_default=True,
              help="Where the checks and the reconcile job run: github, gitlab, or a "
                   "reconcile runner, kubernetes or systemd, with GitHub's pull-request "
                   "workflows.")
@click.option("--action", metavar="OWNER/REPO@REF",
              help=f"The jitgrant GitHub Action the workflows use (default: "
                   f"jitgrant/jitgrant@v{__version__}; a commit SHA pins it).")
@click.option("--force", is_flag=True, help="Overwrite the files that exist already.")
@handled
def init(directory: Path, ci: str, action: str | None, force: bool) -> int:
    """Write a ready access repository: policies, schemas, CI files, CODEOWNERS."""
    from . import scaffold

    built = scaffold.build(ci, action)
    existing = scaffold.conflicts(directory, built.files)
    if existing and not force:
        for rel in existing:
            click.echo(f"{directory / rel}: exists already (--force overwrites it)", err=True)
        return 1
    scaffold.write(directory, built)
    for rel in sorted(built.files):
        click.echo(f"wrote {directory / rel}")
    click.echo("")
    click.echo(built.next_steps, nl=False)
    return 0


@main.command()
@click.option("--keep", is_flag=True, help="Leave the temporary repository in place.")
@handled
def demo(keep: bool) -> int:
    """End to end on an embedded PostgreSQL, nothing to configure."""
    from .demo import run_demo

    return run_demo(keep=keep)


if __name__ == "__main__":  # pragma: no cover
    main()
