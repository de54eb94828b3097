"""The audit trail as data: every audit record of a repository, queried by time, person, target
and working hours, in two views of the same actions.

- **actions**: one row per action of every run, as recorded.
- **access**: one row per access period of a login, the auditor's view ("who had access to
  orders-prod last week, approved in which pull request, and when did it end?"): from the run
  that created the login to the run that revoked it, with the approvals (grant commit, pull
  request, merge commit) of every create and update in between.

CSV is for spreadsheets and SIEMs: a header row, RFC 4180 quoting (minimal, CRLF line ends), one
row per item. Its values come from files that anyone who can open a pull request shapes (a
grant's reason), so a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return gets a leading single quote: a spreadsheet shows it as text instead of evaluating it as a
formula (OWASP "CSV injection"). JSON and the table are left as they are.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from . import usage
from .approvals import recorded_approvers
from .clicommon import handled, repo_option
from .completion import target_option
from .errors import ConfigError, Problem, one_line
from .timeutil import iso, record_time

WORK_START, WORK_END = time(8, 0), time(18, 0)  # working hours: 08:00 <= t < 18:00, Mon-Fri
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
VIEWS = ("access", "actions")
FORMATS = ("table", "json", "csv", "html")


# -- reading the records -----------------------------------------------------------------------


@dataclass(frozen=True)
class Approval:
    """One grant file behind an action and where it came from in git."""

    file: str
    commit: str | None = None
    pull_request: int | None = None
    merge_commit: str | None = None
    author: str | None = None
    reason: str | None = None
    ticket: str | None = None
    # from the forge (the grant entry's `approval`, absent in older records): who approved
    # the merged pull request, when its approvals count, and its web address
    approved_by: tuple[str, ...] = ()
    pull_request_url: str | None = None


@dataclass(frozen=True)
class Entry:
    """One action of one run. Its time is the run's start, as in the record's file name."""

    at: datetime
    finished: datetime
    run_id: str
    index: int
    record: str  # the audit file, relative to the repository
    actor: str
    commit: str | None  # the reconciled commit
    target: str
    login: str
    grantee: str | None
    access: str | None
    action: str  # create | update | revoke
    cause: str
    expires: datetime | None
    status: str  # ok | failed | planned
    error: str | None
    statements: int
    sessions_ended: int
    held: str | None  # a revoke that locked the login out but could not drop it: why
    approvals: tuple[Approval, ...]
    ended_by: Approval | None = None  # a revoke: the change that removed the file or person
    # a revoke: the sessions it ended (None in records written before they were listed)
    ended_sessions: tuple[usage.SeenSession, ...] | None = None

    @property
    def order(self) -> tuple[datetime, datetime, str, int]:
        return (self.at, self.finished, self.run_id, self.index)


@dataclass
class AuditLog:
    entries: list[Entry] = field(default_factory=list)
    records: int = 0
    skipped: list[Problem] = field(default_factory=list)  # files not read, one line each
    samples: list[usage.Sample] = field(default_factory=list)  # sessions and counters seen


def load(root: Path, keep: dict[str, dict[str, Any]] | None = None) -> AuditLog:
    """Every audit/**/*.json of the working tree. A file that is not a valid record (unreadable,
    not JSON, not matching schema/audit.schema.json, or a second copy of a run) is skipped and
    reported; it never stops the others from being read. `keep`: also each record read, as
    data, by its file (for the fields the entries leave out)."""
    log = AuditLog()
    folder = root / "audit"
    runs: dict[str, str] = {}  # run id -> file
    check = _schema_check()
    for path in sorted(folder.rglob("*.json")) if folder.is_dir() else ():
        rel = path.relative_to(root).as_posix()
        data, problem = _read(path, check)
        entries: list[Entry] = []
        if data is not None and data["run_id"] in runs:
            problem = f"run {data['run_id']} is already recorded in {runs[data['run_id']]}"
        elif data is not None:
            try:
                entries = list(_entries(rel, data))
            except ValueError as exc:  # a date the schema's pattern lets through: 02-30
                problem = f"invalid date and time ({exc})"
        if data is None or problem:
            log.skipped.append(Problem(rel, 0, f"{problem}; skipped", "warning"))
            continue
        runs[data["run_id"]] = rel
        if keep is not None:
            keep[rel] = data
        log.records += 1
        log.entries.extend(entries)
        log.samples.extend(usage.samples(data, record_time(data["started"])))
    return log


def _schema_check() -> Callable[[Any], str | None]:
    """The first problem of a record against schema/audit.schema.json, or None. (jsonschema is
    imported here, not when the command line starts.)"""
    import jsonschema

    from .schemas import describe, validator

    schema = validator("audit")

    def check(data: Any) -> str | None:
        error = jsonschema.exceptions.best_match(schema.iter_errors(data))
        if error is None:
            return None
        described = describe(error)
        return described[0][1] if described else one_line(error.message)

    return check


def _read(path: Path, check: Callable[[Any], str | None]
          ) -> tuple[dict[str, Any] | None, str | None]:
    if path.is_symlink() or not path.is_file():
        return None, "not a regular file"
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    except UnicodeDecodeError:
        return None, "not valid JSON (not UTF-8)"
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
    except RecursionError:
        return None, "not valid JSON (nested too deeply)"
    try:
        problem = check(data)
    except RecursionError:
        problem = "nested too deeply"
    if problem is not None:
        return None, f"does not match schema/audit.schema.json: {problem}"
    return data, None


def _entries(rel: str, data: dict[str, Any]) -> Iterator[Entry]:
    at, finished = record_time(data["started"]), record_time(data["finished"])
    for index, a in enumerate(data["actions"]):
        yield Entry(
            at=at, finished=finished, run_id=data["run_id"], index=index, record=rel,
            actor=data["actor"], commit=data["commit"], target=a["target"], login=a["login"],
            grantee=a["grantee"], access=a["access"], action=a["action"], cause=a["cause"],
            expires=record_time(a["expires"]) if a["expires"] else None, status=a["status"],
            error=a["error"], statements=a["statements"], sessions_ended=a["sessions_ended"],
            held=a["held"], approvals=tuple(_approval(g) for g in a["grants"]),
            ended_by=_ending(a.get("ended_by")),  # absent from older records
            ended_sessions=None if a.get("ended_sessions") is None
            else tuple(usage.session(s) for s in a["ended_sessions"]))


def _ending(e: dict[str, Any] | None) -> Approval | None:
    if e is None:
        return None
    return Approval(file=e["file"] or "policies/", commit=e["commit"],
                    pull_request=e["pull_request"], merge_commit=e["merge_commit"],
                    author=e["author"])


def _approval(g: dict[str, Any]) -> Approval:
    forge = g.get("approval") or {}
    return Approval(file=g["file"], commit=g.get("commit"), pull_request=g.get("pull_request"),
                    merge_commit=g.get("merge_commit"), author=g.get("author"),
                    reason=g["reason"], ticket=g["ticket"],
                    approved_by=tuple(recorded_approvers(forge)),
                    pull_request_url=forge.get("url"))


# -- access periods ----------------------------------------------------------------------------


@dataclass
class AccessPeriod:
    """A login's life from the create that granted it to the revoke that ended it.

    `granted_at` is None when the trail does not show it begin (made before the trail began:
    it then counts as having existed since forever); `ended_at` is None while no revoke has
    been recorded (the login may still exist, though a PostgreSQL login cannot log in after its
    `VALID UNTIL`, the `expires` shown)."""

    target: str
    login: str
    grantee: str | None = None
    access: str | None = None
    granted_at: datetime | None = None
    granted_run: str | None = None
    expires: datetime | None = None
    ended_at: datetime | None = None
    ended_cause: str | None = None
    ended_run: str | None = None
    held: str | None = None  # locked out but not dropped (yet): why
    ended_by: Approval | None = None  # the change that removed the grant file or the person
    approvals: list[Approval] = field(default_factory=list)
    changes: list[Entry] = field(default_factory=list)  # its creates and updates
    sessions_ended: int = 0  # by the revoke that ended it
    ended_sessions: tuple[usage.SeenSession, ...] | None = None  # which (None: not listed)

    @property
    def first_seen(self) -> datetime | None:
        return self.granted_at or (self.changes[0].at if self.changes else self.ended_at)

    def add(self, entry: Entry, starts: bool) -> None:
        """A create or update: the grant as it now stands. `starts`: it began the access."""
        if starts and not self.changes:
            self.granted_at, self.granted_run = entry.at, entry.run_id
        self.changes.append(entry)
        self.grantee = entry.grantee or self.grantee
        self.access = entry.access or self.access
        self.expires = entry.expires or self.expires
        self.approvals.extend(a for a in entry.approvals if a not in self.approvals)

    def end(self, entry: Entry) -> None:
        self.grantee = self.grantee or entry.grantee
        self.access = self.access or entry.access
        self.expires = self.expires or entry.expires
        self.ended_at, self.ended_cause, self.ended_run = entry.at, entry.cause, entry.run_id
        self.held, self.ended_by = entry.held, entry.ended_by
        self.sessions_ended, self.ended_sessions = entry.sessions_ended, entry.ended_sessions

    def overlaps(self, since: datetime | None, until: datetime | None) -> bool:
        starts_before_until = until is None or self.granted_at is None or self.granted_at < until
        ends_after_since = since is None or self.ended_at is None or self.ended_at >= since
        return starts_before_until and ends_after_since


def access_periods(entries: Iterable[Entry]) -> list[AccessPeriod]:
    """Pair each login's create (and updates) with its next revoke, in the order of the runs.

    Only actions that succeeded count: a failed create gave no access, and after a failed
    revoke the login still existed. A second create while a period is open (the login had
    vanished out of band) continues that period; an update after a revoke (a held login granted
    again) starts one. A held login (locked out, kept) is revoked again by every run until it
    can be dropped: those revokes belong to the period that the first one ended."""
    open_: dict[tuple[str, str], AccessPeriod] = {}
    held: dict[tuple[str, str], AccessPeriod] = {}
    ended: set[tuple[str, str]] = set()
    done: list[AccessPeriod] = []
    for entry in sorted(entries, key=lambda e: e.order):
        if entry.status != "ok":
            continue
        key = (entry.target, entry.login)
        if entry.action == "revoke" and key not in open_ and key in held:
            held[key].held = entry.held  # still held, or now dropped
            if not entry.held:
                del held[key]
            continue
        period = open_.get(key) or AccessPeriod(entry.target, entry.login)
        if entry.action == "revoke":
            open_.pop(key, None)
            period.end(entry)
            done.append(period)
            ended.add(key)
            if entry.held:
                held[key] = period
        else:
            held.pop(key, None)
            open_[key] = period
            period.add(entry, starts=entry.action == "create" or key in ended)
    far = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(done + list(open_.values()),
                  key=lambda p: (p.first_seen or far, p.target, p.login))


# -- the query ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    since: datetime | None = None
    until: datetime | None = None
    grantee: str | None = None
    targets: tuple[str, ...] = ()  # names or shell globs; none: every target
    after_hours: bool = False
    zone: tzinfo = timezone.utc

    def wants(self, who: str | None, where: str) -> bool:
        return self.grantee in (None, who) and (
            not self.targets or any(fnmatchcase(where, p) for p in self.targets))

    def in_window(self, at: datetime) -> bool:
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)

    def entries(self, entries: Iterable[Entry]) -> list[Entry]:
        return sorted((e for e in entries if self.wants(e.grantee, e.target)
                       and self.in_window(e.at)
                       and (not self.after_hours or after_hours(e.at, self.zone))),
                      key=lambda e: e.order)

    def periods(self, entries: Iterable[Entry], by_grant: bool = True) -> list[AccessPeriod]:
        """Periods that overlap the window; with after_hours (and `by_grant`), those granted
        or changed then (query_rows judges by session times where known: usage.py)."""
        return [p for p in access_periods(entries) if self.wants(p.grantee, p.target)
                and p.overlaps(self.since, self.until)
                and (not self.after_hours or not by_grant
                     or any(after_hours(e.at, self.zone) for e in p.changes))]


def build_query(since: str | None, until: str | None, grantee: str | None,
                targets: tuple[str, ...], after: bool, zone_name: str) -> Query:
    zone = parse_zone(zone_name)
    start = parse_when(since, zone, "--since") if since else None
    end = parse_when(until, zone, "--until", end_of_day=True) if until else None
    if start and end and start >= end:
        raise ConfigError(f"--since {since} is not before --until {until}")
    return Query(start, end, grantee, targets, after, zone)


def parse_zone(name: str) -> tzinfo:
    """An IANA time zone; UTC needs no time zone database (slim containers, Windows)."""
    if name in ("UTC", "Etc/UTC"):
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--timezone: unknown time zone {name!r} (use an IANA name like "
                          "Europe/Berlin)") from None


def parse_when(text: str, zone: tzinfo, option: str, end_of_day: bool = False) -> datetime:
    """An ISO date is a whole day in `zone` (as --until, up to the end of that day); an ISO date
    and time is in `zone` unless it carries its own offset or Z."""
    try:
        if len(text) == 10:
            start = datetime.combine(date.fromisoformat(text), time(), zone)
            return (start + timedelta(days=1) if end_of_day else start).astimezone(timezone.utc)
        value = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
        return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise ConfigError(f"{option}: {text!r} is not an ISO date or date and time (like "
                          "2026-11-16 or 2026-11-16T08:00:00Z)") from None


def after_hours(at: datetime, zone: tzinfo) -> bool:
    """Outside 08:00-18:00 local time, or on a Saturday or Sunday."""
    local = at.astimezone(zone)
    return local.weekday() >= 5 or not WORK_START <= local.time() < WORK_END


# -- rows and output ---------------------------------------------------------------------------

Row = dict[str, Any]


def period_row(p: AccessPeriod) -> Row:
    return {"grantee": p.grantee, "target": p.target, "access": p.access, "login": p.login,
            "granted_at": iso(p.granted_at), "approvals": [_approval_data(a) for a in p.approvals],
            **_forge_data(p.approvals),
            "expires": iso(p.expires), "ended_at": iso(p.ended_at), "ended_cause": p.ended_cause,
            "ended_by": _approval_data(p.ended_by) if p.ended_by else None,
            "ended_pull_request": p.ended_by.pull_request if p.ended_by else None,
            "held": p.held, "granted_run": p.granted_run, "ended_run": p.ended_run}


def entry_row(e: Entry) -> Row:
    return {"time": iso(e.at), "run_id": e.run_id, "target": e.target, "login": e.login,
            "grantee": e.grantee, "access": e.access, "action": e.action, "cause": e.cause,
            "expires": iso(e.expires), "status": e.status, "error": e.error,
            "statements": e.statements, "sessions_ended": e.sessions_ended, "held": e.held,
            "approvals": [_approval_data(a) for a in e.approvals], **_forge_data(e.approvals),
            "ended_by": _approval_data(e.ended_by) if e.ended_by else None, "actor": e.actor,
            "reconciled_commit": e.commit, "record": e.record,
            "ended_sessions": None if e.ended_sessions is None else [
                {"id": s.id, "started": iso(s.started), "client": s.client,
                 "application": s.application, "database": s.database}
                for s in e.ended_sessions]}


def _approval_data(a: Approval) -> Row:
    return {"file": a.file, "pull_request": a.pull_request, "merge_commit": a.merge_commit,
            "commit": a.commit, "author": a.author, "reason": a.reason, "ticket": a.ticket,
            "approved_by": list(a.approved_by), "pull_request_url": a.pull_request_url}


def _forge_data(approvals: Iterable[Approval]) -> Row:
    """`approved_by`: every approver of the row's grants; `pull_request_url`: the latest
    pull request's address (an extension's, when one followed the grant)."""
    found = list(approvals)
    urls = [a.pull_request_url for a in found if a.pull_request_url]
    return {"approved_by": list(dict.fromkeys(login for a in found for login in a.approved_by)),
            "pull_request_url": urls[-1] if urls else None}


# In CSV and the table, the approvals of a row become columns of "; "-joined values.
APPROVAL_COLUMNS = {"pull_requests": "pull_request", "merge_commits": "merge_commit",
                    "commits": "commit", "authors": "author", "reasons": "reason",
                    "tickets": "ticket", "grant_files": "file"}
USAGE_COLUMNS = ["used", "first_used", "last_seen", "sessions_seen", "clients",
                 "sessions_ended", "judged_by"]  # usage.PeriodUsage.row
CSV_COLUMNS = {
    "access": ["grantee", "target", "access", "login", "granted_at", "expires", "ended_at",
               "ended_cause", "ended_pull_request", "held", *APPROVAL_COLUMNS, "approved_by",
               "pull_request_url", "granted_run", "ended_run", *USAGE_COLUMNS],
    "actions": ["time", "target", "login", "grantee", "access", "action", "cause", "expires",
                "status", "error", "statements", "sessions_ended", "held", *APPROVAL_COLUMNS,
                "approved_by", "pull_request_url", "actor",
                "run_id", "reconciled_commit", "record"],
}


def flat(row: Row) -> Row:
    out = {k: _flat_value(v) for k, v in row.items()
           if k not in ("approvals", "ended_by", "ended_sessions")}
    for column, key in APPROVAL_COLUMNS.items():
        values = dict.fromkeys(str(a[key]) for a in row["approvals"] if a[key] is not None)
        out[column] = "; ".join(values)
    out["approved_by"] = "; ".join(row["approved_by"])
    return out


def _flat_value(value: Any) -> Any:
    """A list as "; "-joined text, a boolean as true/false: what CSV and the table show."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return value


def to_json(rows: list[Row]) -> str:
    return json.dumps(rows, indent=2, ensure_ascii=False)


def to_csv(rows: list[Row], columns: list[str]) -> str:
    """RFC 4180: header row, fields quoted only when needed, CRLF line ends; cells that a
    spreadsheet would run as a formula are neutralised (see the module's docstring)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([neutralise(row[c]) for c in columns])
    return out.getvalue()


def neutralise(value: Any) -> str:
    """A cell as text; one that starts like a formula gets a leading single quote (OWASP)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


TABLES: dict[str, list[tuple[str, str]]] = {  # view -> (header, column)
    "access": [("GRANTEE", "grantee"), ("TARGET", "target"), ("ACCESS", "access"),
               ("GRANTED", "granted_at"), ("PR", "pull_requests"),
               ("APPROVED BY", "approved_by"), ("MERGE", "merge_commits"),
               ("EXPIRES", "expires"), ("ENDED", "ended_at"),
               ("WHY", "ended_cause"), ("ENDED BY", "ended_pull_request"), ("USED", "used"),
               ("FIRST USED", "first_used"), ("LAST SEEN", "last_seen"),
               ("SESSIONS", "sessions_seen")],
    "actions": [("TIME", "time"), ("TARGET", "target"), ("LOGIN", "login"),
                ("ACTION", "action"), ("CAUSE", "cause"), ("GRANTEE", "grantee"),
                ("PR", "pull_requests"), ("STATUS", "status")],
}
TIME_COLUMNS = ("granted_at", "expires", "ended_at", "time", "first_used", "last_seen")


def to_table(rows: list[Row], view: str, zone: tzinfo) -> str:
    """Aligned columns for people; times in `zone`, commits shortened."""
    spec = TABLES[view]
    cells = [[h for h, _ in spec]]
    cells += [[_cell(c, row[c], zone) for _, c in spec] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(spec))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                     for r in cells)


def _cell(column: str, value: Any, zone: tzinfo) -> str:
    if value is None or value == "":
        return "-"
    if column in TIME_COLUMNS:
        local = record_time(value).astimezone(zone)
        offset = "Z" if local.utcoffset() == timedelta(0) else local.strftime("%z")
        return local.strftime("%Y-%m-%d %H:%M") + offset
    if column == "merge_commits":
        return "; ".join(sha[:10] for sha in str(value).split("; "))
    if column == "ended_pull_request":
        return f"#{value}"
    if column == "pull_requests":
        return "; ".join(f"#{n}" for n in str(value).split("; "))
    return one_line(str(value))


def render(rows: list[Row], view: str, fmt: str, zone: tzinfo) -> str:
    if fmt == "json":
        return to_json(rows) + "\n"
    flats = [flat(r) for r in rows]
    if fmt == "csv":
        return to_csv(flats, CSV_COLUMNS[view])
    return to_table(flats, view, zone) + "\n"


def query_rows(log: AuditLog, query: Query, view: str, unused: bool = False) -> list[Row]:
    if view == "access":
        judge = usage.zone_judge(query.zone, after_hours) if query.after_hours else None
        return usage.access_rows(query.periods(log.entries, by_grant=False),
                                 usage.UsageIndex(log.samples), period_row, judge, unused)
    return [entry_row(e) for e in query.entries(log.entries)]


# -- the command -------------------------------------------------------------------------------


@click.command("audit")
@repo_option
@click.option("--since", help="From this ISO date or date and time on (2026-11-16, "
                              "2026-11-16T08:00:00Z); without an offset, in --timezone.")
@click.option("--until", help="Before this date and time; a date includes that whole day.")
@click.option("--grantee", help="Only this person.")
# A target that matches no record is an empty answer, not an error: the trail keeps targets
# the policies have since removed.
@target_option("Only this target, removed ones too")
@click.option("--after-hours", is_flag=True,
              help="Only actions outside 08:00-18:00 or on a weekend in --timezone (access "
                   "view: periods with a session started then, or where no session is "
                   "known, granted or changed then; judged_by says which).")
@click.option("--unused", is_flag=True,
              help="Access view: only the access periods granted and never seen used.")
@click.option("--timezone", "zone_name", default="UTC", show_default=True,
              help="IANA time zone for dates, working hours and the table's times.")
@click.option("--view", type=click.Choice(VIEWS), default="access", show_default=True,
              help="access: one row per login's access period; actions: one per action.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
              show_default=True, help="csv and json times are UTC. html: one self-contained "
                                      "page, a timeline per target and the table (access view).")
@click.option("--grant", "grant_file", metavar="FILE",
              help="The whole story of one grant file (grants/<target>/<name>.yaml), from the "
                   "records alone: table (text) or json.")
@click.option("--break-glass", "break_glass", is_flag=True,
              help="The break-glass grants not yet reviewed after their merge (a reviews/ "
                   "record): table, json or csv; --since/--until select by when granted.")
@click.option("--output", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output (e.g. report.html in CI).")
@handled
def audit_command(repo: Path, since: str | None, until: str | None, grantee: str | None,
                  only: tuple[str, ...], after_hours: bool, unused: bool, zone_name: str,
                  view: str, fmt: str, grant_file: str | None = None,
                  out: Path | None = None, break_glass: bool = False) -> int:
    """Query the audit trail: who had access to what, when, approved where, how it ended."""
    query = build_query(since, until, grantee, only, after_hours, zone_name)
    if unused and view != "access":
        raise ConfigError("--unused needs --view access (the default)")
    if not repo.is_dir():
        raise ConfigError(f"{repo}: no such directory (use --repo)")
    if break_glass:
        from .breakglass import command_output

        return emit(command_output(repo, query, fmt).encode(), out)
    if grant_file is not None:
        from .story import output as story_output

        return emit(story_output(repo, grant_file, fmt, query), out)
    if fmt == "html" and view != "access":
        raise ConfigError("--format html shows access periods: it takes no --view actions")
    log = load(repo)
    for problem in log.skipped:
        click.echo(str(problem), err=True)
    rows = query_rows(log, query, view, unused)
    if fmt == "html":
        from .htmlreport import output as html_output

        return emit(html_output(rows, query, zone_name, unused), out)
    output = render(rows, view, fmt, query.zone)
    # As bytes: CSV's CRLF must not be translated. A record's JSON may carry a lone surrogate
    # (a hostile file under audit/): it is shown as U+FFFD, never a crash.
    return emit(output.encode("utf-8", "surrogatepass").decode("utf-8", "replace").encode(), out)


def emit(content: bytes, out: Path | None) -> int:
    """Standard output, or the --output file, replaced whole: a reader (a web server, the
    artifact upload) never sees half a page."""
    if out is None:
        click.echo(content, nl=False)
        return 0
    part = out.with_name(f".{out.name}.part")
    try:
        part.write_bytes(content)
        part.replace(out)
    except OSError as exc:
        with suppress(OSError):
            part.unlink(missing_ok=True)
        raise ConfigError(f"--output {out}: cannot be written ({exc.strerror})") from None
    return 0
