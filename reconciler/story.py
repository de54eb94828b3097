"""One grant's whole story, from the audit records alone: `jitgrant audit --grant FILE`.

The grant file is followed through every record that names it: the pull request each version
of the file arrived with (author, approvers, merger, as the forge told `apply`), the access
periods of its login (created, extended, repaired, revoked and why, by which change), the
sessions seen while it lasted and those its revocation ended, and where the login's objects
went. Nothing is read from git, a forge or a database: an auditor can run it on a copy of the
audit folder.

Sessions belong to a login, not to a file: a grant is shown the sessions of its login sampled
within the access periods it was part of (from the run that created the login to the run that
revoked it, both included). Two grant files of one person and access level on one target share
a login, and so share its sessions.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path, PurePath
from typing import Any

import click

from .usage import PeriodUsage, UsageIndex
from .approvals import recorded_approvers
from .auditlog import AccessPeriod, Approval, Entry, Query, access_periods, load
from .errors import ConfigError, UserError, one_line
from .timeutil import iso, record_time

Data = dict[str, Any]
Key = tuple[str, str]  # (target, login)
FAR_PAST = datetime.min.replace(tzinfo=timezone.utc)
FAR_FUTURE = datetime.max.replace(tzinfo=timezone.utc)


class NotInTrail(UserError):
    """No audit record names the grant file."""


def grant_path(root: Path, text: str) -> str:
    """FILE as the records name it: grants/<target>/<name>.yaml. A relative FILE is relative to
    the repository (./ allowed); an absolute one must lie inside it."""
    path = PurePath(text)
    if path.is_absolute():
        rel = _inside(root, Path(text))
        if rel is None:
            raise ConfigError(f"--grant {text}: not inside the repository {root}")
        return rel
    rel = posixpath.normpath(path.as_posix())
    if rel == ".." or rel.startswith("../") or rel == ".":
        raise ConfigError(f"--grant {text}: not a file inside the repository")
    return rel


def _inside(root: Path, path: Path) -> str | None:
    """`path` relative to `root`, as given or with symbolic links resolved (a temporary folder
    reached through a link, a checkout under a linked home)."""
    for base, target in ((root.absolute(), path), (root.resolve(), path.resolve())):
        try:
            return posixpath.normpath(target.relative_to(base).as_posix())
        except ValueError:
            continue
    return None


# -- what the trail holds of one grant ---------------------------------------------------------


@dataclass
class Period:
    """One access period of the grant's login, with the trail's actions and samples in it."""

    span: AccessPeriod
    until: datetime | None = None  # where the login's next access period begins
    events: list[Entry] = field(default_factory=list)
    sessions: dict[tuple[str, str | None], Data] = field(default_factory=dict)
    ended: list[Data] = field(default_factory=list)  # sessions its revocation(s) ended
    usage: list[Data] = field(default_factory=list)
    use: PeriodUsage | None = None  # as `audit` counts it: used, first used, last seen

    def window(self) -> tuple[datetime, datetime]:
        return (self.span.granted_at or FAR_PAST, self.span.ended_at or FAR_FUTURE)


@dataclass
class Story:
    file: str
    requests: list[Data]
    periods: list[Period]
    attempts: list[Entry]  # actions naming the file outside every period: a failed create
    raw: dict[str, Data]  # record file -> record


def names(entry: Entry, file: str) -> bool:
    """Whether an action was taken for the file, or because of its removal."""
    return any(a.file == file for a in entry.approvals) or (
        entry.ended_by is not None and entry.ended_by.file == file)


def tell(root: Path, file: str) -> Story:
    """The story of `file` (a repository path); NotInTrail when no record names it."""
    raw: dict[str, Data] = {}
    log = load(root, keep=raw)
    for problem in log.skipped:
        click.echo(str(problem), err=True)
    mine = [e for e in log.entries if names(e, file)]
    if not mine:
        raise NotInTrail(f"{file}: no audit record names this grant (the trail has "
                         f"{log.records} record(s); give the path as the repository has it, "
                         "grants/<target>/<name>.yaml)")
    keys = list(dict.fromkeys((e.target, e.login) for e in mine))
    periods = [p for key in keys for p in _periods_of(log.entries, key, file)]
    _place_events(periods, [e for e in log.entries if (e.target, e.login) in keys])
    placed = {id(e) for p in periods for e in p.events}
    attempts = [e for e in mine if id(e) not in placed]
    _place_samples(periods, raw)
    index = UsageIndex(log.samples)
    for p in periods:
        p.use = index.of(p.span)
    return Story(file, _requests(mine, raw, file), periods, attempts, raw)


def _periods_of(entries: list[Entry], key: Key, file: str) -> list[Period]:
    """The login's access periods the file was part of, each knowing where the login's next
    period (whichever file it came from) begins."""
    every = access_periods(e for e in entries if (e.target, e.login) == key)
    found = []
    for i, span in enumerate(every):
        if any(names(c, file) for c in span.changes) or (
                span.ended_by is not None and span.ended_by.file == file):
            found.append(Period(span, every[i + 1].first_seen if i + 1 < len(every) else None))
    return found


def _place_events(periods: list[Period], entries: list[Entry]) -> None:
    """Each action of the login goes to the period whose time it falls in: from the period's
    first run up to the login's next period (a held login's later revokes, failed retries)."""
    for entry in sorted(entries, key=lambda e: e.order):
        for p in periods:
            if (p.span.target, p.span.login) != (entry.target, entry.login):
                continue
            if (p.span.first_seen or FAR_PAST) <= entry.at and (
                    p.until is None or entry.at < p.until):
                p.events.append(entry)
                break


def _place_samples(periods: list[Period], raw: dict[str, Data]) -> None:
    """The sessions and counters each record sampled, and the sessions each revoke ended."""
    for _rel, data in sorted(raw.items(), key=lambda kv: (kv[1]["started"], kv[0])):
        at = record_time(data["started"])
        for p in periods:
            start, end = p.window()
            if start <= at <= end and _read_target(data, p.span.target):
                _sample(p, data, at)
    for p in periods:
        for e in p.events:
            listed = _action(raw, e).get("ended_sessions")
            if e.action == "revoke" and e.status == "ok" and listed is not None:
                p.ended.extend({**s, "ended_at": iso(e.at)} for s in listed)


def _read_target(data: Data, target: str) -> bool:
    """Whether the record's run read the target's sessions and counters (`sampled`)."""
    return any(t.get("target") == target and t.get("sampled") for t in data["targets"])


def _sample(p: Period, data: Data, at: datetime) -> None:
    _sampled(p, at, data.get("sessions") or ())
    mine = [u for u in data.get("usage") or () if _same(p, u)]
    p.usage.extend({"time": data["started"], "calls": u.get("calls"),
                    "connections_total": u.get("connections_total")} for u in mine)


def _same(p: Period, item: Data) -> bool:
    return bool(item.get("target") == p.span.target and item.get("login") == p.span.login)


def _sampled(p: Period, at: datetime, sessions: Iterable[Data]) -> None:
    """A session is one (id, start) pair: a server reuses ids (PostgreSQL's pids)."""
    for s in sessions:
        if not _same(p, s):
            continue
        seen = p.sessions.setdefault((str(s.get("id")), s.get("started")), {
            "id": s.get("id"), "started": s.get("started"), "client": s.get("client"),
            "application": s.get("application"), "database": s.get("database"),
            "first_sampled": iso(at), "last_sampled": iso(at), "last_active": None})
        seen["last_sampled"] = iso(at)
        seen["last_active"] = _latest(seen["last_active"], s.get("last_active"))


def _latest(a: str | None, b: str | None) -> str | None:
    return max((x for x in (a, b) if x), default=None)


def _action(raw: dict[str, Data], e: Entry) -> Data:
    action: Data = raw[e.record]["actions"][e.index]
    return action


# -- the pull requests -------------------------------------------------------------------------


def _requests(mine: list[Entry], raw: dict[str, Data], file: str) -> list[Data]:
    """Each version of the file (commit) the trail saw, with its pull request and the approval
    the forge reported; a record that looked the approval up wins over one that could not."""
    found: dict[Any, Data] = {}
    for e in sorted(mine, key=lambda e: e.order):
        for g in _action(raw, e)["grants"]:
            if g["file"] != file:
                continue
            key = g.get("commit") or (g.get("reason"), g.get("ticket"))
            known = found.get(key)
            if known is None or _better(g.get("approval"), known.get("approval")):
                found[key] = {**g, "first_run": e.run_id, "first_at": iso(e.at)} \
                    if known is None else {**g, "first_run": known["first_run"],
                                           "first_at": known["first_at"]}
    return [_request(g) for g in found.values()]


def _better(new: Data | None, old: Data | None) -> bool:
    rank = {"ok": 2, "not_found": 1}
    return new is not None and (old is None or rank.get(str(new.get("lookup")), 0)
                                > rank.get(str(old.get("lookup")), 0))


def _request(g: Data) -> Data:
    approval: Data = g.get("approval") or {}
    reviews = approval.get("reviews") or []
    # as `audit` counts them: only a lookup that found the pull request merged as the grant's
    # merge commit, with nothing noted against it (another merge commit, a forged number), and
    # only the reviews that counted (not the author's or the grantee's own)
    counted = approval.get("lookup") == "ok" and not approval.get("note")
    return {
        "commit": g.get("commit"), "author": g.get("author"),
        "author_email": g.get("author_email"), "authored": g.get("authored"),
        "reason": g.get("reason"), "ticket": g.get("ticket"),
        "pull_request": g.get("pull_request"), "merge_commit": g.get("merge_commit"),
        "pull_request_url": approval.get("url"), "pull_request_author": approval.get("author"),
        "approved_by": recorded_approvers(approval),
        "approvals_counted": approval.get("approvals") if counted else None,
        "reviews": reviews, "merged_by": approval.get("merged_by"),
        "merged_at": approval.get("merged_at"),
        "approval_lookup": approval.get("lookup"), "approval_note": approval.get("note"),
        "first_run": g["first_run"], "first_at": g["first_at"],
    }


# -- as data -----------------------------------------------------------------------------------


def as_data(story: Story) -> Data:
    logins = dict.fromkeys([*((p.span.target, p.span.login, p.span.grantee, p.span.access)
                              for p in story.periods),
                            *((e.target, e.login, e.grantee, e.access) for e in story.attempts)])
    return {
        "grant": story.file,
        "logins": [{"target": t, "login": lg, "grantee": g, "access": a}
                   for t, lg, g, a in logins],
        "requests": story.requests,
        "periods": [_period_data(p, story.raw) for p in story.periods],
        "attempts": [_event(e, story.raw) for e in story.attempts],
    }


def _period_data(p: Period, raw: dict[str, Data]) -> Data:
    s = p.span
    sessions = sorted(p.sessions.values(), key=lambda x: (x["started"] or x["first_sampled"],
                                                          str(x["id"])))
    return {
        "target": s.target, "login": s.login, "grantee": s.grantee, "access": s.access,
        "granted_at": iso(s.granted_at), "expires": iso(s.expires), "ended_at": iso(s.ended_at),
        "ended_cause": s.ended_cause, "ended_by": _ending(s.ended_by), "held": s.held,
        "events": [_event(e, raw) for e in p.events],
        "sessions": _summary(p.use),
        "sessions_seen": sessions,
        "sessions_ended": p.ended,
        "usage": p.usage,
    }


def _summary(use: PeriodUsage | None) -> Data:
    """The period's use as `audit` counts it (usage.py, one counting for both): a session is
    first used at its start (when the server keeps none, when first seen), last seen in the
    latest sample that lists it or at the revocation that ended it; used when a session was
    seen or ended or a counter grew, unused when samples were taken and none of that happened,
    not known without samples."""
    row = (use or PeriodUsage()).row()
    return {"count": row["sessions_seen"], "first_used": row["first_used"],
            "last_seen": row["last_seen"], "clients": row["clients"], "used": row["used"]}


def _ending(a: Approval | None) -> Data | None:
    if a is None:
        return None
    return {"file": a.file, "commit": a.commit, "author": a.author,
            "merge_commit": a.merge_commit, "pull_request": a.pull_request}


def _event(e: Entry, raw: dict[str, Data]) -> Data:
    action = _action(raw, e)
    return {"time": iso(e.at), "run_id": e.run_id, "record": e.record, "actor": e.actor,
            "action": e.action, "cause": e.cause, "status": e.status, "error": e.error,
            "statements": e.statements, "expires": iso(e.expires),
            "changes": action.get("changes") or [], "grant_files": action.get("grant_files"),
            "sessions_ended": e.sessions_ended, "held": e.held,
            "ended_sessions": action.get("ended_sessions") or [],
            "owned_objects": action.get("owned_objects") or [],
            "ended_by": _ending(e.ended_by)}


# -- as text -----------------------------------------------------------------------------------

VERBS = {("create", "granted"): "created", ("update", "granted"): "extended",
         ("update", "drift"): "repaired", ("revoke", ""): "revoked"}


def to_text(data: Data, zone: tzinfo) -> str:
    """The story for people: the grant, its pull requests, then each access period in order of
    time. Every value from the trail is shown on one line (one_line), times in `zone`."""
    when = _when(zone)
    lines = [_clean(data["grant"])]
    lines += [f"  {_clean(lg['grantee'] or '?')}: {_clean(lg['access'] or '?')} on "
              f"{_clean(lg['target'])} (login {_clean(lg['login'])})" for lg in data["logins"]]
    for r in data["requests"]:
        lines += ["", *_request_lines(r, when)]
    for p in data["periods"]:
        lines += ["", *_period_lines(p, when)]
    if data["attempts"]:
        lines += ["", "Outside any access period"]
        lines += [_event_line(e, when) for e in data["attempts"]]
    return "\n".join(lines) + "\n"


def _when(zone: tzinfo) -> Callable[[str | None], str]:
    def show(value: str | None) -> str:
        if not value:
            return "-"
        try:
            local = record_time(value).astimezone(zone)
        except ValueError:  # a session's time the schema's pattern let through: 02-30, 25:00
            return _clean(value)
        offset = "Z" if local.utcoffset() == timedelta(0) else local.strftime("%z")
        return local.strftime("%Y-%m-%d %H:%M") + offset
    return show


def _clean(value: object) -> str:
    return "-" if value is None or value == "" else one_line(str(value))


def _request_lines(r: Data, when: Callable[[str | None], str]) -> list[str]:
    pr = f"pull request #{r['pull_request']}" if r["pull_request"] else "a direct commit"
    url = f"  {_clean(r['pull_request_url'])}" if r["pull_request_url"] else ""
    commit = (r["commit"] or "")[:10]
    lines = [f"Requested in {pr}{url}",
             f"  by           {_clean(r['pull_request_author'] or r['author'])}"
             + (f" (commit {commit} by {_clean(r['author'])}, {when(r['authored'])})"
                if commit else ""),
             f"  reason       {_clean(r['reason'])}",
             f"  ticket       {_clean(r['ticket'])}"]
    lines.append(f"  approved by  {_approvers(r, when)}")
    merged = f"{when(r['merged_at'])} by {_clean(r['merged_by'])}" if r["merged_at"] else "-"
    merge = f" (merge commit {r['merge_commit'][:10]})" if r["merge_commit"] else ""
    lines.append(f"  merged       {merged}{merge}")
    return lines


def _approvers(r: Data, when: Callable[[str | None], str]) -> str:
    if r["approval_lookup"] is None:
        return "- (not recorded: the record predates approvals, or no forge was reachable)"
    if r["approval_lookup"] != "ok":
        return f"- (lookup {_clean(r['approval_lookup'])}: {_clean(r['approval_note'])})"
    if r["approval_note"]:
        return f"- (none counted: {_clean(r['approval_note'])})"
    approving = [x for x in r["reviews"] if x.get("state") == "APPROVED"]
    if not approving:
        return "nobody"
    counts = set(r["approved_by"])
    return "; ".join(f"{_clean(x.get('login'))} ("
                     + ("" if x.get("login") in counts else "not counted: the author, the "
                        "grantee or an earlier commit, ")
                     + ("code owner, " if x.get("code_owner") else "")
                     + f"{when(x.get('submitted_at'))})" for x in approving)


def _period_lines(p: Data, when: Callable[[str | None], str]) -> list[str]:
    end = f"{when(p['ended_at'])}, {_clean(p['ended_cause'])}" if p["ended_at"] else \
        f"not revoked yet (expires {when(p['expires'])})"
    lines = [f"Access {when(p['granted_at']) if p['granted_at'] else 'before the trail'}"
             f" until {end}: {_clean(p['access'])} on {_clean(p['target'])}"]
    if p["ended_by"]:
        lines.append(f"  ended by     {_ending_text(p['ended_by'])}")
    if p["held"]:
        lines.append(f"  held         {_clean(p['held'])}")
    lines += [_event_line(e, when) for e in p["events"]]
    lines += _usage_lines(p, when)
    for e in p["events"]:
        lines += [f"  objects      in {_clean(o['database'])}, to {_clean(o['reassigned_to'])}: "
                  + (", ".join(_clean(x) for x in o.get("objects") or []) or "-")
                  for o in e["owned_objects"]]
    return lines


def _ending_text(e: Data) -> str:
    pr = f"pull request #{e['pull_request']}" if e["pull_request"] else "a direct commit"
    return f"{pr}, commit {(e['commit'] or '')[:10]} by {_clean(e['author'])}" + (
        f" (removed {_clean(e['file'])})" if e["file"] else " (a change in policies/)")


def _event_line(e: Data, when: Callable[[str | None], str]) -> str:
    verb = VERBS.get((e["action"], "" if e["action"] == "revoke" else e["cause"]), e["action"])
    what = [_clean(e["cause"])] if e["action"] == "revoke" else []
    what += [f"changed {', '.join(_clean(c) for c in e['changes'])}"] if e["changes"] else []
    what.append(f"{e['statements']} statement(s)")
    if e["action"] != "revoke" and e["expires"]:
        what.append(f"expires {when(e['expires'])}")
    if e["sessions_ended"]:
        what.append(f"{e['sessions_ended']} session(s) ended")
    if e["status"] != "ok":
        verb = f"{e['action']} {e['status'].upper()}"
        what.insert(0, _clean(e["error"]))
    return f"  {when(e['time'])}  {verb:<10} {'; '.join(what)}  (run {_clean(e['run_id'])})"


def _usage_lines(p: Data, when: Callable[[str | None], str]) -> list[str]:
    s = p["sessions"]
    used = {True: f"{s['count']} session(s), first {when(s['first_used'])}, last seen "
                  f"{when(s['last_seen'])}; clients "
                  f"{', '.join(_clean(c) for c in s['clients']) or '-'}",
            False: "never seen used (sessions were sampled)",
            None: "not known (no record of this period sampled sessions)"}[s["used"]]
    lines = [f"  used         {used}"]
    lines += [f"    session {_clean(x['id'])}  started {when(x['started'])} from "
              f"{_clean(x['client'])}, {_clean(x['application'])}, database "
              f"{_clean(x['database'])}; seen {when(x['first_sampled'])} - "
              f"{when(x['last_sampled'])}" for x in p["sessions_seen"]]
    lines += [f"  session ended {_clean(x.get('id'))}  started {when(x.get('started'))} from "
              f"{_clean(x.get('client'))}, {_clean(x.get('application'))}"
              for x in p["sessions_ended"]]
    if p["usage"]:
        last = p["usage"][-1]
        lines.append(f"  counters     {_clean(last['calls'])} call(s), "
                     f"{_clean(last['connections_total'])} connection(s) in all "
                     f"(at {when(last['time'])})")
    return lines


# -- the command -------------------------------------------------------------------------------


def output(repo: Path, file: str, fmt: str, query: Query) -> bytes:
    """`jitgrant audit --grant FILE`: the story of one grant, whatever the other filters say
    (they would cut it short, so they are refused)."""
    if fmt not in ("table", "json"):
        raise ConfigError(f"--grant: --format {fmt} is not available (table or json)")
    if query.since or query.until or query.grantee or query.targets or query.after_hours:
        raise ConfigError("--grant tells a grant's whole story: it takes no --since, --until, "
                          "--grantee, --target or --after-hours")
    story = tell(repo, grant_path(repo, file))
    data = as_data(story)
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n" if fmt == "json" \
        else to_text(data, query.zone)
    return text.encode("utf-8", "backslashreplace")
