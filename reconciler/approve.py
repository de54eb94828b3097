"""`jitgrant auto-approve` (hidden; the auto-approve workflow runs it): approve a pull request
and enable auto-merge when jitgrant judges it auto-approvable, else leave it to people."""

from __future__ import annotations

from pathlib import Path

import click

from . import forge
from .breakglass import live_at_base
from .clicommon import handled, repo_option
from .review import author_problems, not_auto_approvable
from .snapshot import base_reader, read_snapshot
from .timeutil import now_utc


@click.command(hidden=True)
@repo_option
@click.option("--base", required=True, help="The pull request's base, e.g. origin/main.")
@click.option("--pr", "number", type=int, required=True, envvar="JITGRANT_PR",
              show_envvar=True, help="The pull request's number.")
@click.option("--sha", required=True, envvar="JITGRANT_HEAD_SHA", show_envvar=True,
              help="The head commit the checks passed on; only it is approved.")
@click.option("--org", envvar="JITGRANT_ORG", show_envvar=True,
              help="Look up the author's teams in this organization.")
@click.option("--merge-method", type=click.Choice(["squash", "merge", "rebase"]),
              default="squash", show_default=True)
@handled
def auto_approve_command(repo: Path, base: str, number: int, sha: str, org: str | None,
                         merge_method: str) -> int:
    """Approve and enable auto-merge if the pull request is auto-approvable (exit 0 either
    way: a pull request that is not waits for people)."""
    now = now_utc()
    snapshot = read_snapshot(repo, sha, now, base)
    reasons = not_auto_approvable(snapshot)  # decided before any call to GitHub
    if not reasons:  # break-glass access that is live at the base is not stretched
        reasons = live_at_base(snapshot, read_snapshot(repo, base, now), now)
    if not reasons:
        pr = forge.pull_request(number)
        teams = forge.author_teams(org, pr.author) if org else []
        reasons = _moved_on(pr, sha) + [
            str(p) for p in author_problems(snapshot, pr.author, teams, base_reader(repo, base))]
    if reasons:
        for reason in reasons:
            click.echo(f"not auto-approvable: {reason}")
        click.echo(f"#{number} is left for a review by people")
        return 0
    forge.approve(number, sha, "Auto-approved by jitgrant: only grants of auto_approve "
                  "levels, or removals.")
    forge.enable_auto_merge(number, sha, merge_method)
    click.echo(f"#{number} approved at {sha[:12]}; auto-merge ({merge_method}) enabled")
    return 0


def _moved_on(pr: forge.PullRequest, sha: str) -> list[str]:
    if pr.state != "OPEN":
        return [f"the pull request is {pr.state.lower()}"]
    if pr.head_sha != sha:
        return [f"the pull request's head is {pr.head_sha[:12]} now, not {sha[:12]}"]
    return []
