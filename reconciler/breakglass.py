"""Break-glass grants and their review after the fact.

An access level with `break_glass: true` merges without a review first (review.py counts it as
auto-approvable for its allowed_groups; validate.py keeps it short). `apply` marks each create
and update of its logins in the audit record (`break_glass: true`), and every grant behind such
an action stays *unreviewed* until a review record lands on the branch:

    reviews/<target>/<any name>.yaml     grant: grants/<target>/<file>.yaml
                                         reviewer: bob          # a handle in people
                                         comment: looked at the session log; fine

A record counts for a break-glass grant only when all of these hold, each told by git or the
policies, never by a date or a name that the record's author writes:

- it names that grant file, and lies in the folder of the grant's target;
- the commit that wrote it has the grant's merge (or squash) commit in its history, and is not
  that commit: it was written after the grant was merged, not in its pull request, and a record
  written for an earlier grant at the same path does not cover a later one;
- its reviewer is an active person of the policies, neither the grantee nor the person who
  committed the grant, and is the author of that commit (by e-mail);
- the reviewer is a code owner of the grant file (CODEOWNERS at the commit read, or what
  `jitgrant codeowners` would render when there is none; a team is asked of the forge when
  GITHUB_REPOSITORY is set, and is otherwise not known, so not counted).

A review record is never auto-approvable (review.py: not a grant file): its pull request needs
a person's review like any change outside grants/.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import codeowners, gitrepo
from .errors import Problem
from .load import Document, SourceFile, YamlProblem, parse_yaml
from .model import Person, Policy, Provenance
from .schemas import describe, errors
from .timeutil import iso, record_time
from .validate import load_policy

if TYPE_CHECKING:
    from git import Repo

    from .validate import Snapshot

    from .auditlog import Query

REVIEWS = "reviews"


@dataclass(frozen=True)
class BreakGlassGrant:
    """One break-glass grant file (at one commit) that an apply run granted."""

    target: str
    login: str
    grantee: str | None
    access: str | None
    grant_file: str
    grant_commit: str | None  # the commit that wrote the grant's content
    merge_commit: str | None  # the first-parent commit that brought it (its merge or squash)
    pull_request: int | None
    pull_request_url: str | None
    requested_by: str | None  # the grant commit's author, as git has it
    requested_email: str | None
    created: datetime  # when the run that first granted it started
    expires: datetime | None
    reason: str | None
    ticket: str | None
    run_id: str
    record: str  # the audit record of that run
    reviewed_by: str | None = None  # the reviewer of the review record that counts
    review_file: str | None = None
    waiting_on: tuple[str, ...] = ()  # unreviewed: the grant file's code owners (CODEOWNERS)
    # every merge commit a record claims for it: a record is a file a pull request could
    # plant, so a review must come after all of them (a planted one only makes it harder)
    claimed: tuple[str, ...] = ()

    @property
    def arrival(self) -> str | None:
        return self.merge_commit or self.grant_commit

    @property
    def after(self) -> tuple[str, ...]:
        """The commits a review must come after: the grant's, and every claimed merge."""
        return tuple(dict.fromkeys(c for c in (self.grant_commit, self.merge_commit,
                                               *self.claimed) if c))

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "login": self.login, "grantee": self.grantee,
                "access": self.access, "grant_file": self.grant_file,
                "grant_commit": self.grant_commit, "merge_commit": self.merge_commit,
                "pull_request": self.pull_request, "pull_request_url": self.pull_request_url,
                "requested_by": self.requested_by, "created": iso(self.created),
                "expires": iso(self.expires), "reason": self.reason, "ticket": self.ticket,
                "run_id": self.run_id, "record": self.record,
                "reviewed": self.reviewed_by is not None, "reviewed_by": self.reviewed_by,
                "review_file": self.review_file, "waiting_on": list(self.waiting_on)}


@dataclass(frozen=True)
class ReviewRecord:
    path: str
    grant: str
    reviewer: str
    doc: Document
    written: Provenance | None  # the commit that wrote it (None: git does not tell)


@dataclass
class Status:
    """Every break-glass grant of the audit trail, reviewed or not, and why review records
    did not count (warnings at path:line)."""

    grants: list[BreakGlassGrant] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def unreviewed(self) -> list[BreakGlassGrant]:
        return [g for g in self.grants if g.reviewed_by is None]


# -- what the audit trail says ----------------------------------------------------------------


def from_records(records: Mapping[str, Mapping[str, Any]]) -> list[BreakGlassGrant]:
    """The break-glass grants of the audit records (file -> record, as auditlog.load keeps
    them): one per grant file and commit, from the first run that granted it, oldest first.
    Only actions that succeeded, or whose outcome is in doubt (`unknown`: the connection was
    lost during the COMMIT, so it may have given access), count: a failed create gave none."""
    found: dict[tuple[str, str, str | None], BreakGlassGrant] = {}
    for rel, data in sorted(records.items(), key=lambda r: (r[1]["started"], r[0])):
        for action in data["actions"]:
            if action.get("break_glass") is not True or action["status"] not in ("ok", "unknown") \
                    or action["action"] == "revoke":
                continue
            for entry in action["grants"]:
                key = (action["target"], entry["file"], entry.get("commit"))
                if key not in found:
                    found[key] = _grant(rel, data, action, entry)
                merge = entry.get("merge_commit")
                if merge and merge not in found[key].after:
                    found[key] = replace(found[key], claimed=(*found[key].claimed, merge))
    return sorted(found.values(), key=lambda g: (g.created, g.target, g.grant_file))


def _grant(rel: str, data: Mapping[str, Any], action: Mapping[str, Any],
           entry: Mapping[str, Any]) -> BreakGlassGrant:
    approval = entry.get("approval") or {}
    return BreakGlassGrant(
        target=action["target"], login=action["login"], grantee=action["grantee"],
        access=action["access"], grant_file=entry["file"], grant_commit=entry.get("commit"),
        merge_commit=entry.get("merge_commit"), pull_request=entry.get("pull_request"),
        pull_request_url=approval.get("url"), requested_by=entry.get("author"),
        requested_email=entry.get("author_email"), created=record_time(data["started"]),
        expires=record_time(action["expires"]) if action["expires"] else None,
        reason=entry.get("reason"), ticket=entry.get("ticket"), run_id=data["run_id"],
        record=rel)


# -- the review records -----------------------------------------------------------------------


def unreviewed(repo_path: Path, records: Mapping[str, Mapping[str, Any]] | None = None,
               commit: str = "HEAD") -> list[BreakGlassGrant]:
    """The break-glass grants that no review record at `commit` covers, oldest first.
    `records`: the audit records (file -> record) as auditlog.load keeps them; read from the
    repository's audit/ when not given."""
    return status(repo_path, records, commit).unreviewed


def status(repo_path: Path, records: Mapping[str, Mapping[str, Any]] | None = None,
           commit: str = "HEAD", env: Mapping[str, str] | None = None) -> Status:
    """Every break-glass grant, each with the review record that covers it, if any."""
    if records is None:
        records = _records(repo_path)
    grants = from_records(records)
    if not grants:
        return Status()
    repo = gitrepo.open_repo(repo_path)
    sha = gitrepo.resolve(repo, commit)
    problems: list[Problem] = []
    policy = load_policy(gitrepo.read_tree(repo, sha, ["policies"]), [])
    reviews = read_reviews(repo, sha, problems)
    judge = Judge(repo, sha, policy, _team_check(os.environ if env is None else env))
    out = [judge.covered(g, reviews) for g in grants]
    problems += judge.problems
    problems += [Problem(r.path, r.doc.line("grant"), f"grant: {r.grant} is no break-glass "
                         "grant in the audit trail; not counted", "warning")
                 for r in reviews if not any(g.grant_file == r.grant for g in grants)]
    return Status(out, sorted(set(problems), key=lambda p: (p.path, p.line, p.message)))


def _records(repo_path: Path) -> dict[str, dict[str, Any]]:
    from .auditlog import load

    keep: dict[str, dict[str, Any]] = {}
    load(repo_path, keep)
    return keep


def read_reviews(repo: Repo, commit: str, problems: list[Problem]) -> list[ReviewRecord]:
    """The review records under reviews/ at `commit` that are well formed, each with the
    commit that wrote it; a record that is not is a warning (it counts for nothing)."""
    sources = gitrepo.read_tree(repo, commit, [REVIEWS])
    blobs = {s.path: s.blob for s in sources if s.blob is not None}
    written = gitrepo.written_by(repo, commit, blobs) if blobs else {}
    found = []
    for source in sources:
        doc = _parse(source, problems)
        if doc is not None:
            found.append(ReviewRecord(source.path, doc.data["grant"], doc.data["reviewer"],
                                      doc, written.get(source.path)))
    return found


def _parse(source: SourceFile, problems: list[Problem]) -> Document | None:
    try:
        doc = parse_yaml(source)
    except YamlProblem as exc:
        problems.append(Problem(source.path, exc.line, f"{exc.message}; not counted",
                                "warning"))
        return None
    found = [Problem(source.path, doc.line(*path), f"{message}; not counted", "warning")
             for error in errors("review", doc.data) for path, message in describe(error)]
    problems.extend(found)
    return None if found else doc


# -- judging ----------------------------------------------------------------------------------

# (org, team, login) -> member? None when it cannot be told.
TeamCheck = Callable[[str, str, str], "bool | None"]


def _team_check(env: Mapping[str, str]) -> TeamCheck:
    """Team memberships from the forge (forge_rest.py) when GITHUB_REPOSITORY names one."""
    from .forge_rest import ForgeError, GitHub

    forge = GitHub.from_env(env)

    def member(org: str, team: str, login: str) -> bool | None:
        if forge is None:
            return None
        try:
            return forge.team_member(org, team, login)
        except ForgeError:
            return None

    return member


class Judge:
    """Which review record covers which break-glass grant; why the others do not (problems)."""

    def __init__(self, repo: Repo, commit: str, policy: Policy, teams: TeamCheck) -> None:
        self.repo, self.commit, self.policy, self.teams = repo, commit, policy, teams
        self.problems: list[Problem] = []
        self._owners_text: str | None = None

    def covered(self, grant: BreakGlassGrant, reviews: Iterable[ReviewRecord]
                ) -> BreakGlassGrant:
        for review in reviews:
            if review.grant != grant.grant_file:
                continue
            why = self.refusal(grant, review)
            if why is None:
                return replace(grant, reviewed_by=review.reviewer, review_file=review.path)
            self.problems.append(Problem(review.path, review.doc.line(*why[0]),
                                         f"{why[1]}; not counted", "warning"))
        return replace(grant, waiting_on=codeowners.owners_of(self._owners(), grant.grant_file))

    def refusal(self, grant: BreakGlassGrant, review: ReviewRecord
                ) -> tuple[tuple[str, ...], str] | None:
        """Why `review` does not cover `grant`: (the key it is about, the message); None
        when it does."""
        folder = review.path.split("/")[1] if review.path.count("/") >= 2 else ""
        if folder != grant.target:
            return ("grant",), (f"a review of {grant.grant_file} belongs in {REVIEWS}/"
                                f"{grant.target}/, where the target's code owners review it")
        order = self._order(grant, review)
        if order:
            return ("grant",), order
        return self._reviewer_refusal(grant, review)

    def _order(self, grant: BreakGlassGrant, review: ReviewRecord) -> str | None:
        """Written after the grant's merge, in git's history (dates are the author's word)."""
        arrival, written = grant.arrival, review.written
        if arrival is None:
            return (f"the audit trail does not tell which commit brought {grant.grant_file}: "
                    "a review cannot be shown to come after it")
        if written is None or written.commit in grant.after or not all(
                gitrepo.is_ancestor(self.repo, c, written.commit) for c in grant.after):
            return (f"written before or beside the merge of {grant.grant_file} "
                    f"({arrival[:12]}), not after it: only a later commit reviews it")
        return None

    def _reviewer_refusal(self, grant: BreakGlassGrant, review: ReviewRecord
                          ) -> tuple[tuple[str, ...], str] | None:
        at = ("reviewer",)
        person = self.policy.people.get(review.reviewer)
        if person is None or not person.active:
            return at, f"reviewer: {review.reviewer!r} is not an active person of the policies"
        if review.reviewer == grant.grantee:
            return at, f"reviewer: {review.reviewer} is the grantee: nobody reviews their own " \
                       "break-glass access"
        if _same_email(person.email, grant.requested_email):
            return at, f"reviewer: {review.reviewer} committed the grant: nobody reviews " \
                       "their own request"
        author = review.written.author_email if review.written else None
        if not _same_email(person.email, author):
            return at, (f"reviewer: the commit that wrote the record is by {author or '?'}, "
                        f"not by {review.reviewer} (people.{review.reviewer}.email)")
        if _same_email(author, grant.requested_email) or self._is_grantee(author, grant):
            return at, "the record was committed by the grantee or the grant's author"
        owner = self._code_owner(person, grant.grant_file)
        if owner is not True:
            return at, (f"reviewer: {review.reviewer} is not a code owner of "
                        f"{grant.grant_file}" if owner is False else
                        f"reviewer: whether {review.reviewer} is a code owner of "
                        f"{grant.grant_file} is not known (a team: set GITHUB_REPOSITORY and "
                        "GITHUB_TOKEN to ask the forge)")
        return None

    def _is_grantee(self, email: str | None, grant: BreakGlassGrant) -> bool:
        grantee = self.policy.people.get(grant.grantee or "")
        return grantee is not None and _same_email(grantee.email, email)

    def _code_owner(self, person: Person, path: str) -> bool | None:
        """Whether `person` is among the owners of `path`; None when a team decides and its
        members cannot be asked."""
        unsure = False
        for owner in codeowners.owners_of(self._owners(), path):
            name = owner.removeprefix("@")
            if not owner.startswith("@"):
                if _same_email(owner, person.email):
                    return True
            elif "/" in name:
                org, team = name.split("/", 1)
                member = self.teams(org, team, person.github) if person.github else False
                if member:
                    return True
                unsure = unsure or member is None
            elif person.github and name.lower() == person.github.lower():
                return True
        return None if unsure else False

    def _owners(self) -> str:
        """CODEOWNERS at the commit; when there is none, what `jitgrant codeowners` renders."""
        if self._owners_text is None:
            for place in codeowners.PLACES:
                data = gitrepo.file_at(self.repo, self.commit, place)
                if data is not None:
                    self._owners_text = data.decode("utf-8", "replace")
                    break
            else:
                self._owners_text = codeowners.render(self.policy, lambda _: False)
        return self._owners_text


def _same_email(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and str(a).strip().lower() == str(b).strip().lower()


def queue_fields(grant: BreakGlassGrant) -> dict[str, Any]:
    """An unreviewed grant as the fields of a "needs review" queue item (queue.Item's names:
    kind, subject, due, why, pr, waiting_on, extra). Nothing is due: it is listed, never
    acted on, until the review record lands."""
    since = iso(grant.created)
    return {"kind": "break-glass", "subject": grant.grant_file, "due": "",
            "why": f"break-glass access granted {since}: needs review after the fact, a "
                   f"{REVIEWS}/{grant.target}/ record by a code owner, committed after the merge",
            "pr": grant.pull_request, "waiting_on": grant.waiting_on,
            "extra": grant.as_dict()}


# -- auto-approval: no stretching ---------------------------------------------------------------


def live_at_base(snapshot: Snapshot, base: Snapshot, now: datetime) -> list[str]:
    """Why a pull request's break-glass grants need a person after all: each one whose grantee
    already holds break-glass access on that target at the base that has not ended (current or
    yet to start), or that is the second for them there in the pull request (back-to-back
    windows, each later one set to start as the one before ends). Without this, an extension,
    a second file or a rename, each auto-approved and each within max_duration from its own
    start, would keep access going for as long as the grantee likes before anyone reviews it
    (empty: nothing is stretched)."""
    live = {(g.grantee, g.target): g.path for g in (*base.grants, *base.inactive)
            if g.expires > now and _is_break_glass(base.policy, g.access)}
    reasons = []
    mine: dict[tuple[str, str], str] = {}
    for path in sorted(snapshot.changed or ()):
        grant = snapshot.grant_at(path)
        if grant is None or not _is_break_glass(snapshot.policy, grant.access):
            continue
        key = (grant.grantee or "", grant.target or "")
        held = live.get(key)
        if held is not None:
            reasons.append(f"{path}: {grant.grantee} already holds break-glass access on "
                           f"{grant.target} ({held}, not ended): extending it needs a person")
        elif key in mine:
            reasons.append(f"{path}: a second break-glass grant for {grant.grantee} on "
                           f"{grant.target} in one pull request ({mine[key]}): needs a person")
        mine.setdefault(key, path)
    return reasons


def _is_break_glass(policy: Policy, access: str | None) -> bool:
    level = policy.access.get(access or "")
    return level is not None and level.break_glass


# -- `jitgrant audit --break-glass` -----------------------------------------------------------

CSV_COLUMNS = ["created", "target", "grantee", "access", "login", "grant_file", "expires",
               "pull_request", "pull_request_url", "requested_by", "reason", "ticket",
               "grant_commit", "merge_commit", "run_id", "record", "reviewed", "reviewed_by",
               "review_file", "waiting_on"]
TABLE = [("CREATED", "created"), ("TARGET", "target"), ("GRANTEE", "grantee"),
         ("ACCESS", "access"), ("GRANT FILE", "grant_file"), ("PR", "pull_request"),
         ("EXPIRES", "expires"), ("REASON", "reason")]


def output(found: list[BreakGlassGrant], fmt: str) -> str:
    """The unreviewed break-glass grants as json, csv (auditlog's, formulas neutralised) or
    a table; times in UTC."""
    from .auditlog import to_csv, to_json
    from .errors import one_line

    rows = [g.as_dict() for g in found]
    if fmt == "json":
        return to_json(rows) + "\n"
    flat = [{k: _flat(v) for k, v in row.items()} for row in rows]
    if fmt == "csv":
        return to_csv(flat, CSV_COLUMNS)
    if not rows:
        return "no unreviewed break-glass grants\n"
    cells = [[h for h, _ in TABLE]]
    cells += [[_cell(c, row[c], one_line) for _, c in TABLE] for row in flat]
    widths = [max(len(r[i]) for r in cells) for i in range(len(TABLE))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                     for r in cells) + "\n"


def _flat(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "; ".join(value) if isinstance(value, list) else value


def _cell(column: str, value: Any, clean: Callable[[str], str]) -> str:
    if value is None or value == "":
        return "-"
    if column == "pull_request":
        return f"#{value}"
    if column in ("created", "expires"):
        return str(value).replace("T", " ")[:16] + "Z"
    return clean(str(value))


def command_output(repo_path: Path, query: Query, fmt: str) -> str:
    """`audit --break-glass`: the unreviewed break-glass grants the query selects (grantee,
    target, granted within --since/--until); why review records did not count, on stderr."""
    import click

    from .auditlog import load
    from .errors import ConfigError

    if fmt == "html":
        raise ConfigError("--break-glass lists grants as table, json or csv, not html")
    records: dict[str, dict[str, Any]] = {}
    log = load(repo_path, records)
    found = status(repo_path, records)
    for problem in [*log.skipped, *found.problems]:
        click.echo(str(problem), err=True)
    return output([g for g in found.unreviewed if query.wants(g.grantee, g.target)
                   and query.in_window(g.created)], fmt)
