"""`--log-format json`: one JSON object per event on stderr, for log collectors (Loki, the
Kubernetes and GitHub runners' log shippers). stdout keeps its output as it is.

Events, in order: `run_start`; for each target, as it is done, `target_start`, one `action`
per planned action, `target_end`; `problem` for each problem of the grants; `bug`;
`audit_record` (or `audit_record_unpushed` when no push took it); `run_end`, also when the
run stops with an error. Each has `ts` (when it happened, UTC, milliseconds), `event`,
`run_id` (the audit record's) and `command`.

Every string passes through redact() before it is written; no event carries a password, a
verifier or a statement's text (only how many statements an action ran)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .redact import redact

if TYPE_CHECKING:  # the CLI's error handling imports this module: keep it light
    from .apply import Run, TargetRun
    from .engines import ActionResult
    from .errors import Problem
    from .plan import Action

FORMATS = ("text", "json")
# How each exit code reads in run_end (1 from an error that stopped the run: "error").
STATUS_BY_EXIT = {0: "ok", 1: "failed", 2: "changes", 3: "bug", 130: "interrupted"}

_current: EventLog | None = None


def start(command: str, log_format: str, run_id: str, execute: bool = False,
          **fields: Any) -> EventLog | None:
    """The run's event log, its run_start written; None for the text format. `execute`: the
    run changes the databases (apply without --dry-run). The log stays current for the error
    handling (clicommon.handled), which writes run_end."""
    global _current
    _current = EventLog(command, run_id, execute) if log_format == "json" else None
    if _current is not None:
        _current.emit("run_start", execute=execute, **fields)
    return _current


def current() -> EventLog | None:
    """The event log of the command running, if it logs as JSON."""
    return _current


def clear() -> None:
    """Forget the event log (each command starts without one)."""
    global _current
    _current = None


def timestamp(when: datetime | None = None) -> str:
    moment = (when or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def scrubbed(value: Any) -> Any:
    """`value` with every string in it redacted (before JSON escapes a secret out of reach
    of the masking)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrubbed(v) for v in value]
    return value


class EventLog:
    """Writes the events of one run. Thread-safe: targets may finish in worker threads."""

    def __init__(self, command: str, run_id: str, execute: bool = False) -> None:
        self.command, self.run_id, self.execute = command, run_id, execute
        self.started = time.monotonic()
        self.run: Run | None = None
        self.audit: dict[str, Any] = {}
        self.ended = False
        self._lock = threading.Lock()

    def emit(self, event: str, when: datetime | None = None, /, **fields: Any) -> None:
        line = {"ts": timestamp(when), "event": event, "run_id": self.run_id,
                "command": self.command, **scrubbed(fields)}
        text = json.dumps(line, separators=(",", ":"), default=str)
        with self._lock:
            sys.stderr.write(text + "\n")  # looked up now: a test runner may swap it
            sys.stderr.flush()

    # -- targets and actions ------------------------------------------------------------------

    def target(self, done: TargetRun) -> None:
        """One target's events, from its TargetRun (apply's `on_target`)."""
        began = done.started
        ended = (began + timedelta(seconds=done.seconds)
                 if began is not None and done.seconds is not None else None)
        name = done.target.name
        self.emit("target_start", began, target=name, engine=done.target.engine,
                  environment=done.target.environment)
        actions = done.plan.actions if done.plan else ()
        counts = [len(shown) for shown in done.shown_by_action()]
        for index, action in enumerate(actions):
            result = done.results[index] if index < len(done.results) else None
            self.emit("action", ended, **self._action(done, action, result, counts[index]))
        self.emit("target_end", ended, target=name, status=done.status,
                  actions=len(actions), executed=done.executed, error=done.error,
                  seconds=_rounded(done.seconds), execute_seconds=_rounded(done.execute_seconds))

    def _action(self, done: TargetRun, action: Action, result: ActionResult | None,
                planned: int) -> dict[str, Any]:
        fields: dict[str, Any] = {"target": done.target.name, "kind": action.kind,
                                  "login": action.login, "cause": action.cause,
                                  "grantee": action.grantee, "access": action.access}
        if result is None:  # planned only: plan, --dry-run, or the target failed first
            status = "not_run" if self.execute else "planned"
            return {**fields, "status": status, "statements": planned}
        return {**fields, "status": result.status, "statements": result.statements,
                "sessions_ended": result.sessions_ended, "error": result.error,
                "cut": result.cut}

    # -- the run ------------------------------------------------------------------------------

    def ran(self, run: Run) -> None:
        """The run is reconciled: its problems (the grants', the policy's), kept for run_end."""
        self.run = run
        self.problems(run.problems)

    def problems(self, problems: Iterable[Problem]) -> None:
        for p in problems:
            self.emit("problem", **p.as_dict())

    def bugs(self, tracebacks: Iterable[str], verbose: bool) -> None:
        for trace in tracebacks:
            self.emit("bug", message=trace.strip().splitlines()[-1],
                      traceback=trace if verbose else None,
                      hint="This is a bug in jitgrant. Please report it with the output of -v.")

    def audit_record(self, rel: str, committed: bool, pushed: bool) -> None:
        self.audit.update(path=rel, committed=committed, pushed=pushed)
        self.emit("audit_record", path=rel, committed=committed, pushed=pushed)

    def unpushed_record(self, rel: str, content: bytes) -> None:
        """The record no push took: the job's log may be all that outlives the runner."""
        try:
            record: Any = json.loads(content)
        except ValueError:
            record = content.decode("utf-8", "replace")
        self.emit("audit_record_unpushed", path=rel, record=record)

    def finish(self, code: int, error: str | None = None, traceback: str | None = None) -> None:
        """run_end, once: the exit code, the run's counts, and the error that stopped it."""
        if self.ended:
            return
        self.ended = True
        fields: dict[str, Any] = {"exit_code": code,
                                  "status": "error" if error and code == 1 else
                                  STATUS_BY_EXIT.get(code, "error"),
                                  "seconds": _rounded(time.monotonic() - self.started)}
        if self.run is not None:
            targets = self.run.targets
            fields.update(targets=len(targets),
                          failed_targets=sum(t.status == "failed" for t in targets),
                          actions=sum(t.changes for t in targets),
                          problems=len(self.run.problems))
        if self.audit.get("path"):
            fields["audit_record"] = self.audit["path"]
        if error is not None:
            fields["error"] = error
        if traceback is not None:
            fields["traceback"] = traceback
        self.emit("run_end", **fields)


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 4)
