"""The audit record of one apply run: what changed, why, approved where, and how it went."""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__, events, gitrepo, records, sessions
from .apply import Run, TargetRun
from .endings import Ending, endings
from .engines import ActionResult
from .errors import UserError
from .model import Grant, Provenance
from .plan import Action
from .timeutil import iso
from .validate import Snapshot

if TYPE_CHECKING:
    from git import Repo

SCHEMA_VERSION = 1


def audit_path(run: Run) -> str:
    started = run.started.astimezone(timezone.utc)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    return f"audit/{started:%Y/%m/%d}/{stamp}-{run.run_id}.json"


# A target run -> its revoked logins' Endings (who they were, which change ended them).
Endings = Callable[[TargetRun], dict[str, Ending]]


def no_endings(run: TargetRun) -> dict[str, Ending]:
    return {}


def endings_from(repo_path: Path, snapshot: Snapshot) -> Endings:
    """What git tells of the removed and offboarded logins a target run revokes."""
    def find(run: TargetRun) -> dict[str, Ending]:
        if not run.plan or not any(a.kind == "revoke" for a in run.plan.actions):
            return {}
        return endings(gitrepo.open_repo(repo_path), snapshot.commit, snapshot.policy,
                       run.target, run.plan.actions)
    return find


def record(run: Run, actor: str, actions: bool = True,
           ends: Endings = no_endings) -> dict[str, Any]:
    """The record as data; `actions=False` leaves the actions out (to_json then takes them
    already encoded, see action_lines)."""
    grants = _grants(run.snapshot)
    levels = _break_glass_levels(run.snapshot)
    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run.run_id,
        "started": iso(run.started),
        "finished": iso(run.finished or datetime.now(timezone.utc)),
        "jitgrant_version": __version__,
        "commit": run.snapshot.commit,
        "actor": os.environ.get("GITHUB_ACTOR") or actor,
        "targets": [_target(t) for t in run.targets],
    }
    follow_ups = [f.as_dict() for t in run.targets for f in t.follow_ups]
    if follow_ups:  # what this run found of actions an earlier run's lost connection left
        data["follow_ups"] = follow_ups
    if any(sessions.sampled(t) for t in run.targets):  # before the actions: read cheaply
        data["sessions"] = [s for t in run.targets for s in sessions.target_sessions(t)]
        data["usage"] = [u for t in run.targets for u in sessions.target_usage(t)]
    data["actions"] = [{**_static(a, shown[i], grants, ended.get(a.login), t.approvals,
                                  levels),
                        **_outcome(t, i)}
                       for t in run.targets if actions and t.plan
                       for shown, ended in [(t.shown_by_action(), ends(t))]
                       for i, a in enumerate(t.plan.actions)]
    return data


def _target(t: TargetRun) -> dict[str, Any]:
    entry = {"target": t.target.name, "engine": t.target.engine, "status": t.status,
             "error": t.error, "actions": len(t.plan.actions) if t.plan else 0}
    cut = sum(1 for r in t.results if r.cut)
    if cut:  # the next run reads this line, and the actions only when it is there
        entry["cut"] = cut
    if sessions.sampled(t):  # its sessions and counters were read: see `sessions`, `usage`
        entry["sampled"] = True
    return entry


def _grants(snapshot: Snapshot) -> dict[str, Grant]:
    return {g.path: g for g in snapshot.grants + snapshot.inactive}


def _break_glass_levels(snapshot: Snapshot) -> frozenset[str]:
    """The access levels with break_glass: true at the reconciled commit: their creates and
    updates are marked, so a later change of the policy cannot unmark what was granted."""
    return frozenset(n for n, level in snapshot.policy.access.items() if level.break_glass)


def preparer(snapshot: Snapshot, ends: Endings = no_endings) -> Callable[[TargetRun], None]:
    """What `apply` runs in a thread while a target's statements execute: each action's
    fields that do not depend on how it went, encoded as JSON text without its closing
    brace. The thread works while psycopg waits on the server, so that part of the record
    costs no time; whatever is not prepared is built when the record is written."""
    grants = _grants(snapshot)
    levels = _break_glass_levels(snapshot)

    def prepare(run: TargetRun) -> None:
        if run.plan:
            run.prepared = _heads(run, grants, ends(run), levels)

    return prepare


def action_lines(run: Run, ends: Endings = no_endings) -> list[str]:
    """Every action of the record as one line of JSON: the prepared head (or a new one) and
    the outcome."""
    grants: dict[str, Grant] | None = None
    lines: list[str] = []
    for t in run.targets:
        actions = t.plan.actions if t.plan else ()
        heads = t.prepared if t.prepared is not None and len(t.prepared) == len(actions) \
            else None
        if heads is None:
            grants = grants if grants is not None else _grants(run.snapshot)
            heads = _heads(t, grants, ends(t), _break_glass_levels(run.snapshot))
        lines.extend(f"{head}, {_compact(_outcome(t, i))[1:]}" for i, head in enumerate(heads))
    return lines


def _heads(run: TargetRun, grants: dict[str, Grant], ended: dict[str, Ending],
           levels: frozenset[str] = frozenset()) -> list[str]:
    """Each action's fields that do not depend on how it went, as JSON without the closing
    brace, for _outcome's fields to follow."""
    shown = run.shown_by_action()
    actions = run.plan.actions if run.plan else ()
    return [_compact(_static(a, shown[i], grants, ended.get(a.login), run.approvals,
                             levels))[:-1]
            for i, a in enumerate(actions)]


def _static(action: Action, shown: list[str], grants: dict[str, Grant],
            ended: Ending | None = None,
            approvals: Mapping[str, dict[str, Any]] | None = None,
            levels: frozenset[str] = frozenset()) -> dict[str, Any]:
    # git's word on a removed file's grantee comes before the login's own marker
    grantee = ended.grantee if ended and action.cause == "removed" else action.grantee
    access = ended.access if ended and action.cause == "removed" else action.access
    return {
        "target": action.target, "login": action.login, "grantee": grantee,
        "access": access, "action": action.kind, "cause": action.cause,
        "changes": action.changes.describe(), "expires": iso(action.expires),
        "grant_files": list(action.grant_files),
        "grants": [_provenance(p, grants.get(p), (approvals or {}).get(p))
                   for p in action.grant_files],
        "sql": shown,
        "held": action.hold,
        "ended_by": _ended_by(ended) if action.kind == "revoke" else None,
        **({"break_glass": True} if action.kind != "revoke" and action.access in levels
           else {}),
    }


def _ended_by(ended: Ending | None) -> dict[str, Any] | None:
    """The change that removed the grant file or offboarded the person."""
    if ended is None:
        return None
    prov = ended.provenance
    return {"file": ended.file, "commit": prov.commit, "author": prov.author,
            "author_email": prov.author_email, "authored": iso(prov.authored),
            "merge_commit": prov.merge_commit, "pull_request": prov.pull_request}


def _outcome(run: TargetRun, index: int) -> dict[str, Any]:
    result = run.results[index] if index < len(run.results) else None
    status = result.status if result else ("failed" if run.error else "planned")
    outcome = {
        "statements": result.statements if result else 0,
        "sessions_ended": result.sessions_ended if result else 0,
        "owned_objects": _owned(result),
        "status": status,
        "error": (result.error if result else None) or (run.error if status == "failed"
                                                         else None),
    }
    if result is not None and result.cut:
        outcome["cut"] = result.cut  # the next run compares it with the server (aftercut)
    if result is not None and run.plan and run.plan.actions[index].kind == "revoke":
        outcome["ended_sessions"] = sessions.ended_sessions(result.ended_sessions)
    return outcome


def _owned(result: ActionResult | None) -> list[dict[str, Any]]:
    """Where a revoked login's objects went, database by database, and what they were."""
    if result is None:
        return []
    return [{"database": db, "reassigned_to": owner, "objects": result.planted.get(db, [])}
            for db, owner in sorted(result.owned_objects.items())]


def _provenance(path: str, grant: Grant | None,
                approval: dict[str, Any] | None = None) -> dict[str, Any]:
    prov: Provenance | None = grant.provenance if grant else None
    entry: dict[str, Any] = {"file": path, "reason": grant.reason if grant else None,
                             "ticket": grant.ticket if grant else None}
    if prov:
        entry.update(commit=prov.commit, author=prov.author, author_email=prov.author_email,
                     authored=iso(prov.authored), merge_commit=prov.merge_commit,
                     pull_request=prov.pull_request)
    if approval is not None:  # who approved it, as the forge told (lookup.py)
        entry["approval"] = approval
    return entry


_compact = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode


def to_json(data: dict[str, Any], encoded: dict[str, list[str]] | None = None) -> bytes:
    """The record with one top-level field, and one action or target, per line. `indent=`
    would switch json to its pure-Python encoder, about five times slower on 10,000 actions;
    this layout keeps the C encoder and still reads (and diffs) line by line. `encoded` gives
    a list field's items already as JSON text."""
    fields = []
    for key, value in data.items():
        items = (encoded or {}).get(key)
        if items is None and isinstance(value, list):
            items = [_compact(item) for item in value]
        if items:
            fields.append(f"  {_compact(key)}: [\n    " + ",\n    ".join(items) + "\n  ]")
        else:
            fields.append(f"  {_compact(key)}: {_compact([] if items is not None else value)}")
    return ("{\n" + ",\n".join(fields) + "\n}\n").encode()


def write(root: Path, run: Run, content: bytes) -> str:
    """The record in its file; a folder or file that cannot be written is the operator's to
    fix (exit 1), and no partly written record stays behind."""
    rel = audit_path(run)
    path = root / rel
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    except OSError as exc:
        if path.is_file():
            path.unlink()
        raise UserError(f"could not write the audit record {rel}: {exc.strerror or exc}; "
                        "the changes above were made") from None
    return rel


def persist(repo_path: Path, run: Run, commit: bool = True, push: bool = False) -> str | None:
    """Write the run's audit record when anything was executed, or an earlier cut followed
    up, or the sessions and counters it saw differ from those the newest record saw
    (sessions.usage_changed: a run that changed nothing and saw nothing new writes nothing);
    commit (and push) it. A pushing run that executed nothing still delivers the records
    whose push was refused."""
    changed = any(t.executed or t.follow_ups for t in run.targets)
    writes, removes = _sealed_tip(run)
    changed = changed or bool(writes or removes)
    used = sessions.usage_changed(repo_path, run)
    if not changed and not used:
        if commit and push:
            _deliver_pending(gitrepo.open_repo(repo_path), run.run_id)
        return None
    repo = gitrepo.open_repo(repo_path)
    if not used and not (writes or removes) and \
            repeats_latest(Path(str(repo.working_tree_dir)), run):
        if commit and push:
            _deliver_pending(repo, run.run_id)
        return None
    content = to_json(record(run, gitrepo.committer(repo), actions=False),
                      {"actions": action_lines(run, endings_from(repo_path, run.snapshot))})
    rel = write(Path(str(repo.working_tree_dir)), run, content)
    if not commit:
        _write_sealed(Path(str(repo.working_tree_dir)), writes, removes)
    if commit:
        count = sum(len(t.plan.actions) for t in run.targets if t.plan and t.executed)
        what = f"{count} change(s)" if changed else "sessions and counters seen"
        with _one_writer(Path(str(repo.git_dir))):
            pending = gitrepo.fetch_pending(repo) if push else {}
            carried = gitrepo.missing_records(repo, pending.values())
            also = f", and {len(carried)} record(s) whose push was refused" if carried else ""
            gitrepo.commit_files(repo, {**carried, **writes, rel: content},
                                 f"audit: {what} by jitgrant apply "
                                 f"{run.run_id}{also} [skip ci]", remove=removes)
            if push:
                _deliver(repo, run.run_id, rel, pending, content)
    return rel


def _sealed_tip(run: Run) -> tuple[dict[str, bytes], list[str]]:
    """The sealed files (sealing.py) this run's audit commit writes and removes."""
    if run.sealer is None:
        return {}, []
    from .sealing import tip_changes

    return tip_changes(run.targets, run.sealer.existing)


def _write_sealed(root: Path, writes: dict[str, bytes], removes: list[str]) -> None:
    """--no-commit: the sealed files beside the record, for the operator to commit."""
    for rel, content in writes.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(content)
    for rel in removes:
        (root / rel).unlink(missing_ok=True)


def repeats_latest(root: Path, run: Run) -> bool:
    """True when every executed action failed, and exactly as the latest record says: a
    target that fails the same way run after run (every few minutes from cron) then writes
    one record per change of outcome, not one per run. Any action that succeeded, or ended a
    session, is a change and is recorded."""
    if any(r.status == "ok" for t in run.targets for r in t.results) \
            or any(t.follow_ups for t in run.targets):
        return False
    latest = _latest_record(root / "audit")
    if latest is None:
        return False
    try:
        previous = _signature(json.loads(latest.read_bytes()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False  # an unreadable record is no reason to leave a run unrecorded
    return previous == _signature(record(run, ""))


def _signature(data: dict[str, Any]) -> list[list[Any]]:
    """How a record's targets and actions went, without times, ids or statements."""
    targets = [[t["target"], t["status"], t["error"], t["actions"]] for t in data["targets"]]
    actions = [[a["target"], a["login"], a["action"], a["status"], a["error"],
                a["sessions_ended"]] for a in data["actions"]]
    return targets + actions


def _latest_record(folder: Path) -> Path | None:
    """The newest record under audit/YYYY/MM/DD/, found without listing every day's files."""
    return next(records.newest_first(folder), None)


def _deliver_pending(repo: Repo, run_id: str) -> None:
    with _one_writer(Path(str(repo.git_dir))):
        pending = gitrepo.fetch_pending(repo)
        carried = gitrepo.missing_records(repo, pending.values())
        if carried:
            gitrepo.commit_files(repo, carried, f"audit: {len(carried)} record(s) whose push "
                                                "was refused, by jitgrant apply "
                                                f"{run_id} [skip ci]")
            _deliver(repo, run_id, ", ".join(sorted(carried)), pending)
        else:
            gitrepo.delete_pending(repo, pending)  # delivered already


def _deliver(repo: Repo, run_id: str, rel: str, pending: dict[str, str],
             content: bytes | None = None) -> None:
    """Push the audit commit; when the branch refuses it, keep it on a pending branch of
    origin for the next run, since a CI runner's local branch dies with the runner. When
    that fails too, the record (`content`, this run's own) is printed: the runner's checkout
    may be all that holds it, and the job's log outlives it. Records carried from pending
    branches are still on those branches."""
    try:
        gitrepo.push(repo)
    except UserError as exc:
        kept = gitrepo.keep_pending(repo, run_id)
        if not kept and content is not None:
            _print_record(rel, content)
        where = (f"the audit record {rel} is kept on origin's branch {kept}, and the next "
                 "`apply --push` carries it" if kept else
                 f"the audit record {rel} is committed only on this checkout's branch"
                 f"{' and printed above' if content is not None else ''}: keep it until it "
                 "is pushed")
        raise UserError(f"{exc}; {where}") from None
    gitrepo.delete_pending(repo, pending)


def _print_record(rel: str, content: bytes) -> None:
    """The record on stderr, as JSON (the bytes of the file, UTF-8) between two lines that
    name it; stdout keeps the run's output alone. With --log-format json, one event."""
    log = events.current()
    if log is not None:
        log.unpushed_record(rel, content)
        return
    err = sys.stderr
    err.write(f"jitgrant: no push took the audit record {rel}: it follows, as JSON; keep it\n")
    err.flush()
    buffer = getattr(err, "buffer", None)
    if buffer is not None:
        buffer.write(content)
        buffer.flush()
    else:
        err.write(content.decode())
    err.write(f"jitgrant: end of the audit record {rel}\n")
    err.flush()


@contextmanager
def _one_writer(git_dir: Path) -> Iterator[None]:
    """Runs that share a checkout (cron on one host, a run started by hand) commit and push
    one at a time: git's index.lock fails a second commit outright, and a push racing one
    from the same branch is refused as if for another reason."""
    with open(git_dir / "jitgrant-audit.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even on a crash
        yield
