"""`jitgrant queue [--act] [--format json] [--notify URL]`: the open access requests and the
grants about to end, with what is due for each: escalate, remind or close.

It reads the request deadlines of the access levels (`review_within`, `escalate_to`,
`request_ttl`, `remind_before`; a level without one takes its target's), the request
branches of the remote (gitrepo, in a few batched git processes) and, through `gh`
(forge.py), the open pull requests. With `--act` it takes the due steps through `gh`,
reading each pull request's reviewers and comments first:
a hidden marker in a comment it posted says a step was taken, so a second run does nothing.

The queue never grants: it asks people for reviews, reminds and closes requests. A date
that an author controls can therefore at most hurry or delay a reminder about their own
request, never lengthen anyone's access. A request's age is the pull request's `createdAt`,
which GitHub sets; a branch without a pull request is aged by its tip's committer date, which
its author sets: it is listed (marked so), and nothing is done for it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from . import forge, gitrepo
from .clicommon import handled, repo_option
from .errors import UserError
from .load import SourceFile
from .model import AccessLevel, Grant, Policy
from .timeutil import format_duration, iso, now_utc, parse_timestamp
from .validate import Context as CheckContext
from .validate import RawGrant, Snapshot, check_grant

MARK = "<!-- jitgrant:queue:{} -->"
EXTEND_AT_MOST = timedelta(hours=1)  # the `jitgrant extend --for` a reminder proposes, at most
REMIND_BEFORE = timedelta(minutes=30)  # when neither the level nor the target says


@dataclass(frozen=True)
class Item:
    """One entry of the queue, as every producer returns it.

    kind: "request" (an open access request), "ending" (an active grant about to end), or a
      producer's own kind (such as break-glass access that needs a review).
    subject: what it is about, shown as is: a branch, a grant file.
    due: the step due now: "escalate", "remind", "close", or "" (nothing yet).
    why: the reason, in words (which deadline passed, or what is awaited).
    pr: the pull request a step acts on; None: listed only, nothing is done for it.
    age, age_from: how old, and measured from what ("pull request": GitHub's createdAt;
      "commit date": the branch tip's, set by its author). None when it has no age.
    waiting_on: who the item waits on (@login, @org/team).
    add_reviewers: for "escalate": the reviewers to request (@login, @org/team).
    command: for "ending": the exact command that extends the grant.
    body: the comment the step posts (its marker included).
    marker: the hidden line that tells, in the pull request's comments, that the step was
      taken (a step whose marker is there is not taken again).
    """

    kind: str
    subject: str
    due: str
    why: str
    pr: int | None = None
    age: timedelta | None = None
    age_from: str | None = None
    waiting_on: tuple[str, ...] = ()
    add_reviewers: tuple[str, ...] = ()
    command: str | None = None
    body: str = ""
    marker: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "due": self.due or None,
                "why": self.why, "pull_request": self.pr,
                "age_seconds": None if self.age is None else int(self.age.total_seconds()),
                "age_from": self.age_from, "waiting_on": list(self.waiting_on),
                "add_reviewers": list(self.add_reviewers), "command": self.command,
                **self.extra}


@dataclass(frozen=True)
class Request:
    """An open request: a branch adding or changing grant files, and its pull request."""

    branch: str
    committed: datetime  # the branch tip's committer date (its author's to choose)
    grants: tuple[Grant | RawGrant, ...]
    pull: forge.OpenPull | None = None
    removes: tuple[str, ...] = ()  # grant files it deletes: a revocation is never closed


@dataclass(frozen=True)
class QueueInput:
    """What producers read: the mainline's snapshot, the requests, the time."""

    snapshot: Snapshot
    requests: tuple[Request, ...]
    now: datetime
    repo_path: Path | None = None  # the access repository (for producers that read more of it)


Producer = Callable[[QueueInput], Iterable[Item]]


# -- deadlines (pure) -------------------------------------------------------------------------


def request_items(data: QueueInput) -> Iterable[Item]:
    for request in data.requests:
        yield request_item(request, data.snapshot.policy, data.now)


def request_item(request: Request, policy: Policy, now: datetime) -> Item:
    """What is due for one request: close (past its TTL, or its start or end passed), else
    escalate or remind (waited longer than review_within), else nothing yet."""
    levels = [deadlines(policy, g.access, g.target) for g in request.grants
              if g.access is not None and g.access in policy.access]
    age, age_from = _age(request, now)
    base = Item("request", request.branch, "", "", request.pull.number if request.pull else None,
                age, age_from, _waiting_on(request, policy),
                extra={"grant_files": [g.path for g in request.grants],
                       "removes": list(request.removes)})
    closing = _close_reason(request, levels, age, now)
    if closing and request.removes:
        # Closing it would stop a revocation: it waits for people, however old.
        return replace(_review_step(base, levels, age), extra={
            **base.extra, "not_closed": f"{closing}, but it removes "
                                        f"{', '.join(request.removes)}: never closed"})
    if closing:
        return replace(base, due="close", why=closing, marker=MARK.format("closed"),
                       body=f"{MARK.format('closed')}\nClosed by jitgrant: {closing}. "
                            "Ask again with `jitgrant request` if the access is still needed.")
    return _review_step(base, levels, age)


def _age(request: Request, now: datetime) -> tuple[timedelta, str]:
    """From GitHub's createdAt when there is a pull request, else from the commit date (a
    date in the future counts as now)."""
    if request.pull is not None:
        try:
            return max(now - parse_timestamp(request.pull.created), timedelta(0)), "pull request"
        except ValueError:
            return timedelta(0), "pull request"
    return max(now - request.committed, timedelta(0)), "commit date"


def _close_reason(request: Request, levels: list[AccessLevel], age: timedelta,
                  now: datetime) -> str | None:
    for grant in request.grants:
        if grant.expires is not None and grant.expires <= now:
            return f"{_code(grant.path)} ends at {iso(grant.expires)}, which has passed"
        starts = grant.starts if isinstance(grant, Grant) else None
        if starts is not None and starts <= now:
            return f"{_code(grant.path)} starts at {iso(starts)}, which has passed"
    ttls = [lv.request_ttl for lv in levels if lv.request_ttl is not None]
    if ttls and age >= min(ttls):
        return f"the request is older than its request_ttl of {format_duration(min(ttls))}"
    return None


def _review_step(base: Item, levels: list[AccessLevel], age: timedelta) -> Item:
    windows = [lv.review_within for lv in levels if lv.review_within is not None]
    if not windows:
        return replace(base, why="no review_within for its access level")
    within = min(windows)
    if age < within:
        return replace(base, why=f"review within {format_duration(within)}: "
                                 f"{format_duration(within - age)} left")
    late = f"waiting {format_duration(age)} for a review (review_within " \
           f"{format_duration(within)})"
    escalate = tuple(dict.fromkeys(n for lv in levels for n in lv.escalate_to))
    if escalate:
        marker = MARK.format("escalated")
        return replace(base, due="escalate", why=late, add_reviewers=escalate, marker=marker,
                       body=f"{marker}\nThis access request has been {late}. Asking "
                            f"{', '.join(escalate)} to review it too.")
    marker = MARK.format("reminded")
    who = ", ".join(base.waiting_on) or "its reviewers"
    return replace(base, due="remind", why=late, marker=marker,
                   body=f"{marker}\nReminder for {who}: this access request has been {late}.")


def _waiting_on(request: Request, policy: Policy) -> tuple[str, ...]:
    """The reviewers the pull request asked for, else the targets' approvers."""
    if request.pull is not None and request.pull.reviewers:
        return tuple(f"@{r}" for r in request.pull.reviewers)
    owners = (policy.targets[g.target].approvers for g in request.grants
              if g.target is not None and g.target in policy.targets)
    return tuple(dict.fromkeys(o for group in owners for o in group))


def ending_items(data: QueueInput) -> Iterable[Item]:
    """Active grants that end within their level's remind_before: one reminder each, on the
    pull request the grant arrived with, with the command that extends it."""
    policy, now = data.snapshot.policy, data.now
    for grant in data.snapshot.grants:
        if grant.access not in policy.access or not grant.is_current(now):
            continue
        level = deadlines(policy, grant.access, grant.target)
        assert level.remind_before is not None
        if grant.expires - now <= level.remind_before:
            yield ending_item(grant, level, now)


def deadlines(policy: Policy, access: str, target: str | None) -> AccessLevel:
    """The level with the deadlines that apply on `target`: the level's own, else the
    target's; remind_before at last REMIND_BEFORE."""
    level = policy.access[access]
    on = policy.targets.get(target) if target is not None else None
    if on is None:
        return replace(level, remind_before=level.remind_before or REMIND_BEFORE)
    return replace(
        level,
        review_within=level.review_within if level.review_within is not None
        else on.review_within,
        escalate_to=level.escalate_to or on.escalate_to,
        request_ttl=level.request_ttl if level.request_ttl is not None else on.request_ttl,
        remind_before=level.remind_before or on.remind_before or REMIND_BEFORE)


def ending_item(grant: Grant, level: AccessLevel, now: datetime) -> Item:
    left = grant.expires - now
    room = (now + level.max_duration - grant.expires) // timedelta(minutes=1)
    more = min(timedelta(minutes=max(room, 0)), EXTEND_AT_MOST)
    command = shlex.join(["jitgrant", "extend", grant.path, "--for", format_duration(more)]) \
        if more > timedelta(0) else None
    digest = hashlib.sha256(f"{grant.path}\n{iso(grant.expires)}".encode()).hexdigest()[:16]
    marker = MARK.format(f"ending {digest}")
    lines = [marker, f"{grant.access} on {grant.target} for {grant.grantee} ends at "
             f"{iso(grant.expires)} (in {format_duration(left)})."]
    lines += [f"To extend it:\n{_fenced(command)}"] if command else \
        [f"It cannot be extended: {level.name} allows at most "
         f"{format_duration(level.max_duration)} from now."]
    pr = grant.provenance.pull_request if grant.provenance else None
    return Item("ending", grant.path, "remind", f"ends in {format_duration(left)} "
                f"(remind_before {format_duration(level.remind_before or REMIND_BEFORE)})", pr,
                command=command, body="\n".join(lines), marker=marker,
                extra={"grantee": grant.grantee, "target": grant.target,
                       "access": grant.access, "expires": iso(grant.expires)})


def _code(text: str) -> str:
    """`text` as a code span no backtick in it can end: a file name is the branch author's to
    choose, and GitHub turns no @name in a code span into a mention (its docs; not tried
    against GitHub)."""
    ticks = _ticks(text, 1)
    return f"{ticks} {text} {ticks}" if "`" in text else f"{ticks}{text}{ticks}"


def _fenced(text: str) -> str:
    """A code block no backtick in `text` can end."""
    fence = _ticks(text, 3)
    return f"{fence}\n{text}\n{fence}"


def _ticks(text: str, at_least: int) -> str:
    """Backticks longer than any run of them in `text`, and at least `at_least`."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(at_least, longest + 1)


# Producers of queue items, in order. Another producer (break-glass access awaiting review)
# appends a callable QueueInput -> Iterable[Item] here.
def break_glass_items(data: QueueInput) -> Iterable[Item]:
    """Break-glass access still waiting for its review after the fact (breakglass.py): listed
    as "needs review" until a code owner's review record lands; nothing is due, nothing done."""
    if data.repo_path is None:
        return
    from . import breakglass

    for grant in breakglass.unreviewed(data.repo_path, commit=data.snapshot.commit or "HEAD"):
        yield Item(**breakglass.queue_fields(grant))


PRODUCERS: list[Producer] = [request_items, ending_items, break_glass_items]


def items(data: QueueInput, producers: Iterable[Producer] | None = None) -> list[Item]:
    return [item for produce in (PRODUCERS if producers is None else producers)
            for item in produce(data)]


# -- reading ----------------------------------------------------------------------------------


def read_requests(repo: Any, snapshot: Snapshot, base: str,
                  pulls: list[forge.OpenPull] | None, now: datetime) -> tuple[Request, ...]:
    """The request branches of origin, each with its open pull request (by head branch)."""
    by_branch = {p.branch: p for p in pulls or () if not p.cross_repository}
    branches = gitrepo.request_branches(repo, base)
    # All the branches' files in one batch: two git processes, not two per branch.
    sources = iter(gitrepo.read_blobs(repo, [f for b in branches for f in b.files]))
    requests = []
    for branch in branches:
        grants = tuple(_grant(next(sources), snapshot.policy, now) for _ in branch.files)
        requests.append(Request(branch.name, branch.committed, grants,
                                by_branch.get(branch.name), branch.removes))
    return tuple(requests)


def _grant(source: SourceFile, policy: Policy, now: datetime) -> Grant | RawGrant:
    """What the file asks for, judged by the mainline's policy; read even when invalid."""
    grant, raw = check_grant(source, policy, CheckContext(now=now), [])
    return grant if grant is not None else raw


# -- acting -----------------------------------------------------------------------------------


def act(item: Item, bot: str) -> tuple[str, bool]:
    """Take the item's due step on its pull request, unless it was taken already: the
    reviewers requested and the comments are read first. What was done, and whether anything
    was (False: it had been done before, or the pull request is closed).

    A marker counts only in a comment by `bot` (the login jitgrant's token comments as):
    anyone can write the marker into a comment of their own, to silence an escalation. A
    close is never skipped for a marker: an open request past its deadline is closed."""
    assert item.pr is not None and item.due
    thread = forge.pull_thread(item.pr)
    if item.kind == "request" and thread.state.upper() != "OPEN":
        return f"#{item.pr} is {thread.state.lower()}: nothing to do", False
    if item.due != "close" and any(item.marker in body for author, body in thread.comments
                                   if _same_login(author, bot)):
        return f"#{item.pr}: {item.due} done before", False
    if item.due == "escalate":
        missing = [r.removeprefix("@") for r in item.add_reviewers
                   if not _requested(r, thread.reviewers)]
        if missing:
            forge.add_reviewers(item.pr, missing)
    if item.due == "close":
        forge.close(item.pr, item.body)
        return f"#{item.pr}: closed", True
    forge.comment(item.pr, item.body)
    added = f" ({', '.join(item.add_reviewers)})" if item.due == "escalate" else ""
    return f"#{item.pr}: {item.due}{added}", True


def _same_login(author: str, bot: str) -> bool:
    """gh names an app's comments by its slug (github-actions), the API as slug[bot]."""
    return author.lower().removesuffix("[bot]") == bot.lower().removesuffix("[bot]")


def _requested(name: str, reviewers: tuple[str, ...]) -> bool:
    """Is @name (a login, or @org/team) among the requested reviewers? gh may name a team by
    its slug alone."""
    wanted = name.removeprefix("@").lower()
    slug = wanted.split("/", 1)[-1]
    return any(r == wanted or ("/" in wanted and r == slug) for r in reviewers)


# -- output -----------------------------------------------------------------------------------


def text_line(item: Item) -> str:
    where = f"#{item.pr} " if item.pr is not None else ""
    age = f", age {format_duration(item.age)} ({item.age_from})" if item.age is not None else ""
    waits = f", waiting on {', '.join(item.waiting_on)}" if item.waiting_on else ""
    due = f"due: {item.due}" if item.due else "nothing due"
    extra = f" -> add {', '.join(item.add_reviewers)}" if item.due == "escalate" else ""
    command = f"; extend: {item.command}" if item.command else ""
    return f"{item.kind} {where}{item.subject}{age}{waits}: {due}{extra} ({item.why}){command}"


def to_json(found: list[Item], now: datetime, done: Mapping[int, str],
            warnings: list[str]) -> str:
    rows = []
    for index, item in enumerate(found):
        row = item.as_dict()
        row["acted"] = done.get(index)
        rows.append(row)
    return json.dumps({"now": iso(now), "items": rows, "warnings": warnings}, indent=2,
                      ensure_ascii=False)


# -- the command ------------------------------------------------------------------------------


@dataclass
class Outcome:
    found: list[Item]
    done: dict[int, str] = field(default_factory=dict)  # item index -> what --act did
    new: list[int] = field(default_factory=list)  # the items a step was taken for now
    warnings: list[str] = field(default_factory=list)
    forge_read: bool = False  # the open pull requests were read
    now: datetime | None = None  # the time the deadlines were measured at


def run(repo_path: Path, rev: str, base: str, now: datetime, forge_on: bool, act_on: bool,
        fetch: bool, bot: str = "github-actions") -> Outcome:
    from .snapshot import read_snapshot

    repo = gitrepo.open_repo(repo_path)
    warnings: list[str] = []
    if fetch:
        problem = gitrepo.fetch_branches(repo)
        if problem:
            warnings.append(f"{problem}; the branches fetched before are read")
    pulls = _pulls(warnings) if forge_on else None
    snapshot = read_snapshot(repo_path, rev, now)
    requests = read_requests(repo, snapshot, base, pulls, now)
    outcome = Outcome(items(QueueInput(snapshot, requests, now, repo_path)), warnings=warnings,
                      forge_read=pulls is not None, now=now)
    if act_on and outcome.forge_read:
        _act_all(outcome, bot)
    return outcome


def _pulls(warnings: list[str]) -> list[forge.OpenPull] | None:
    try:
        return forge.open_pulls()
    except UserError as exc:
        warnings.append(f"{exc}; requests are aged by their commit dates and nothing is done")
        return None


def _act_all(outcome: Outcome, bot: str) -> None:
    for index, item in enumerate(outcome.found):
        if item.pr is None or not item.due:
            continue
        try:
            outcome.done[index], changed = act(item, bot)
        except UserError as exc:
            outcome.warnings.append(f"#{item.pr}: {item.due} failed: {exc}")
            continue
        if changed:
            outcome.new.append(index)


def notify_lines(outcome: Outcome, acted: bool) -> list[str]:
    """What --notify posts: with --act the steps taken now; without, every due step."""
    chosen = outcome.new if acted else [i for i, it in enumerate(outcome.found) if it.due]
    return [text_line(outcome.found[i]) for i in chosen]


@click.command("queue")
@repo_option
@click.option("--rev", default="HEAD", show_default=True,
              help="The mainline commit: its policies and active grants.")
@click.option("--base", default="origin/main", show_default=True,
              help="What request branches are compared with.")
@click.option("--act", "act_on", is_flag=True,
              help="Take the due steps through gh: request reviews, comment, close.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--notify", metavar="URL", envvar="JITGRANT_NOTIFY_URL", show_envvar=True,
              help="Post the due steps to this Slack-compatible webhook.")
@click.option("--bot", default="github-actions", show_default=True, envvar="JITGRANT_BOT",
              show_envvar=True, help="The login jitgrant's token comments as: only its "
              "comments say a step was taken.")
@click.option("--no-fetch", is_flag=True, help="Read the remote branches as last fetched.")
@click.option("--no-forge", is_flag=True,
              help="Do not ask gh: branches only, aged by their commit dates.")
@handled
def queue_command(repo: Path, rev: str, base: str, act_on: bool, fmt: str,
                  notify: str | None, bot: str, no_fetch: bool, no_forge: bool) -> int:
    """Open access requests and grants about to end, and what is due: escalate, remind,
    close (exit 1 when gh or git failed; nothing is ever granted)."""
    from . import notify as notifier

    if act_on and no_forge:
        raise UserError("--act needs the forge: drop --no-forge")
    if notify and notifier.check_url(notify):
        raise UserError(str(notifier.check_url(notify)))
    outcome = run(repo, rev, base, now_utc(), not no_forge, act_on, not no_fetch, bot)
    if fmt == "json":
        click.echo(to_json(outcome.found, outcome.now or now_utc(), outcome.done,
                           outcome.warnings))
    else:
        _print_text(outcome)
    for warning in outcome.warnings:
        click.echo(f"jitgrant: warning: {warning}", err=True)
    lines = notify_lines(outcome, act_on)
    if notify and lines:
        problem = notifier.post(notify, notifier.queue_text(lines))
        if problem:
            click.echo(f"jitgrant: warning: {problem}", err=True)
    return 1 if outcome.warnings else 0


def _print_text(outcome: Outcome) -> None:
    if not outcome.found:
        click.echo("queue: empty")
    for index, item in enumerate(outcome.found):
        click.echo(text_line(item))
        if index in outcome.done:
            click.echo(f"  done: {outcome.done[index]}")
