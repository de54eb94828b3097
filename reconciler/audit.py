"""The audit record of one apply run: what changed, why, approved where, and how it went."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__, gitrepo
from .apply import Run, TargetRun
from .errors import UserError
from .model import Grant, Provenance
from .timeutil import iso

SCHEMA_VERSION = 1


def audit_path(run: Run) -> str:
    started = run.started.astimezone(timezone.utc)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    return f"audit/{started:%Y/%m/%d}/{stamp}-{run.run_id}.json"


def record(run: Run, actor: str) -> dict[str, Any]:
    grants = {g.path: g for g in run.snapshot.grants + run.snapshot.inactive}
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run.run_id,
        "started": iso(run.started),
        "finished": iso(run.finished or datetime.now(timezone.utc)),
        "jitgrant_version": __version__,
        "commit": run.snapshot.commit,
        "actor": os.environ.get("GITHUB_ACTOR") or actor,
        "targets": [{"target": t.target.name, "engine": t.target.engine, "status": t.status,
                     "error": t.error, "actions": len(t.plan.actions) if t.plan else 0}
                    for t in run.targets],
        "actions": [a for t in run.targets for a in _actions(t, grants)],
    }


def _actions(run: TargetRun, grants: dict[str, Grant]) -> list[dict[str, Any]]:
    if not run.plan:
        return []
    out = []
    shown = run.shown_by_action()
    for index, action in enumerate(run.plan.actions):
        result = run.results[index] if index < len(run.results) else None
        status = result.status if result else ("failed" if run.error else "planned")
        out.append({
            "target": action.target, "login": action.login, "grantee": action.grantee,
            "access": action.access, "action": action.kind, "cause": action.cause,
            "changes": action.changes.describe(), "expires": iso(action.expires),
            "grant_files": list(action.grant_files),
            "grants": [_provenance(p, grants.get(p)) for p in action.grant_files],
            "statements": result.statements if result else 0,
            "sql": shown[index],
            "sessions_ended": result.sessions_ended if result else 0,
            "owned_objects": [{"database": db, "reassigned_to": owner}
                              for db, owner in sorted((result.owned_objects if result else {})
                                                      .items())],
            "held": action.hold,
            "status": status,
            "error": (result.error if result else None) or (run.error if status == "failed"
                                                             else None),
        })
    return out


def _provenance(path: str, grant: Grant | None) -> dict[str, Any]:
    prov: Provenance | None = grant.provenance if grant else None
    entry: dict[str, Any] = {"file": path, "reason": grant.reason if grant else None,
                             "ticket": grant.ticket if grant else None}
    if prov:
        entry.update(commit=prov.commit, author=prov.author, author_email=prov.author_email,
                     authored=iso(prov.authored), merge_commit=prov.merge_commit,
                     pull_request=prov.pull_request)
    return entry


_compact = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode


def to_json(data: dict[str, Any]) -> bytes:
    """The record with one top-level field, and one action or target, per line. `indent=`
    would switch json to its pure-Python encoder, about five times slower on 10,000 actions;
    this layout keeps the C encoder and still reads (and diffs) line by line."""
    fields = []
    for key, value in data.items():
        if isinstance(value, list) and value:
            items = ",\n    ".join(_compact(item) for item in value)
            fields.append(f"  {_compact(key)}: [\n    {items}\n  ]")
        else:
            fields.append(f"  {_compact(key)}: {_compact(value)}")
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
    """Write the run's audit record when anything was executed; commit (and push) it."""
    if not any(t.executed for t in run.targets):
        return None
    repo = gitrepo.open_repo(repo_path)
    content = to_json(record(run, gitrepo.identity(repo)))
    rel = write(Path(str(repo.working_tree_dir)), run, content)
    if commit:
        changed = sum(len(t.plan.actions) for t in run.targets if t.plan and t.executed)
        with _one_writer(Path(str(repo.git_dir))):
            gitrepo.commit_file(repo, rel, content, f"audit: {changed} change(s) by jitgrant "
                                                    f"apply {run.run_id} [skip ci]")
            if push:
                gitrepo.push(repo)
    return rel


@contextmanager
def _one_writer(git_dir: Path) -> Iterator[None]:
    """Runs that share a checkout (cron on one host, a run started by hand) commit and push
    one at a time: git's index.lock fails a second commit outright, and a push racing one
    from the same branch is refused as if for another reason."""
    with open(git_dir / "jitgrant-audit.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even on a crash
        yield
