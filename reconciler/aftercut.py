"""After a cut: the next apply finds the newest audit record that left a target's actions not
done (the connection was lost), compares each with what the server holds now (the state the
run has read anyway) and says what it found, on the terminal and in its own record. A record
is followed up once: the run that does it is, from then on, the target's newest record."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import records
from .model import ActualState
from .plan import TargetPlan

# Records read, newest first, looking for each target's last run: a bound on the work when a
# target has not been reached for a long time (its record is then not followed up).
LOOK_BACK = 50

NOW = {"create": "creating now", "update": "updating now", "revoke": "revoking now"}


@dataclass(frozen=True)
class CutAction:
    """An action of an earlier record that the connection's loss left not done."""

    record: str  # the record's path in the repository
    run_id: str
    target: str
    login: str
    kind: str  # create | update | revoke
    cut: str  # not_run | rolled_back | in_doubt
    status: str  # failed | unknown


@dataclass(frozen=True)
class FollowUp:
    """What the server showed of a cut action, and what this run does about it."""

    earlier: CutAction
    took_effect: bool | None  # None: partly (the login exists, not as the action left it)
    now: str | None  # the kind of this run's action for the login; None: nothing

    @property
    def found(self) -> str:
        if self.took_effect:
            return "had taken effect"
        return "had partly taken effect" if self.took_effect is None else \
            "had not taken effect"

    def line(self) -> str:
        e = self.earlier
        then = NOW[self.now] if self.now else \
            "nothing more to do" if self.took_effect else "no longer planned"
        return (f"after the cut of run {e.run_id} ({e.record}): {e.kind} of {e.login} "
                f"{self.found}: {then}")

    def as_dict(self) -> dict[str, Any]:
        e = self.earlier
        return {"target": e.target, "login": e.login, "action": e.kind, "record": e.record,
                "run_id": e.run_id, "cut": e.cut, "status": e.status, "found": self.found,
                "now": self.now}


# A target's name -> the actions its newest record left cut (none when it left none).
Earlier = Callable[[str], list[CutAction]]


def reader(root: Path, targets: list[str]) -> Earlier:
    """The cut actions of each target's newest record, found in one pass over the records,
    newest first, read only as far back as needed (and at most LOOK_BACK of them). Records
    of one second sort by run id, not by time: within a second, a cut record that another
    names in its follow_ups is taken as followed up."""
    found: dict[str, list[CutAction]] = {}
    wanted = set(targets)
    followed: set[tuple[Any, Any]] = set()  # (target, record) pairs said already
    for second in _seconds(root):
        for _, data in second:
            followed |= {(f.get("target"), f.get("record"))
                         for f in records.dicts(data.get("follow_ups"))}
        for name in sorted(wanted):
            touching = [(rel, data) for rel, data in second if name in _touched(data)]
            if touching:
                found[name] = [cut for rel, data in touching if (name, rel) not in followed
                               for cut in _cut_actions(rel, data, name)]
                wanted.discard(name)
        if not wanted:
            break
    return lambda name: found.get(name, [])


def _seconds(root: Path) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The records, newest second first, those of one second together."""
    group: list[tuple[str, dict[str, Any]]] = []
    for path, data in records.newest(root / "audit", LOOK_BACK, _load):
        rel = path.relative_to(root).as_posix()
        if group and _second(group[0][0]) != _second(rel):
            yield group
            group = []
        group.append((rel, data))
    if group:
        yield group


def _second(rel: str) -> str:
    return rel.rsplit("/", 1)[-1].split("-", 1)[0]  # <yyyymmddTHHMMSSZ>-<run id>.json


def _load(path: Path) -> Any:
    """A record with its actions only when a target of it was cut."""
    data = records.read_head(path)
    if isinstance(data, dict) and not any(_was_cut(t) for t in records.dicts(data.get("targets"))):
        return data
    return json.loads(path.read_bytes())


def _was_cut(target: dict[str, Any]) -> bool:
    """Its actions say how the cut left them; a record from before the count was kept says
    a lost connection in the target's error."""
    error = target.get("error")
    return bool(target.get("cut")) or (isinstance(error, str)
                                       and error.startswith("connection lost"))


def _touched(data: dict[str, Any]) -> set[str]:
    """The targets a record ran actions on, or followed up: its newest word on them."""
    names = {t.get("target") for t in records.dicts(data.get("targets")) if t.get("actions")}
    names |= {f.get("target") for f in records.dicts(data.get("follow_ups"))}
    return {n for n in names if isinstance(n, str)}


def _cut_actions(rel: str, data: dict[str, Any], target: str) -> list[CutAction]:
    # Records written before `cut` existed marked every action of a cut target unknown.
    return [CutAction(rel, str(data.get("run_id")), target, str(a.get("login")),
                      str(a.get("action")), str(a.get("cut") or "in_doubt"),
                      str(a.get("status")))
            for a in records.dicts(data.get("actions"))
            if a.get("target") == target and (a.get("cut") or a.get("status") == "unknown")]




def compare(earlier: list[CutAction], actual: ActualState, plan: TargetPlan
            ) -> list[FollowUp]:
    """Each cut action against the server as read for this run and this run's plan: a revoke
    took effect when the login is gone; a creation or an update when the login is there and
    this run has nothing to do for it (partly when it is there and still needs work)."""
    planned = {a.login: a.kind for a in plan.actions}
    out = []
    for cut in earlier:
        there = cut.login in actual.roles
        now = planned.get(cut.login)
        took: bool | None
        if cut.kind == "revoke":
            took = not there
        elif cut.kind == "update" or not there:
            took = there and now is None
        else:
            took = True if now is None else None
        out.append(FollowUp(cut, took, now))
    return out
