"""Plans and problems as text, JSON, markdown and GitHub annotations."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2

from .apply import Run, TargetRun
from .errors import Problem
from .model import Grant
from .plan import Action
from .prdiff import LoginChange, Review
from .review import changed_grants, not_auto_approvable
from .timeutil import format_duration, iso

SYMBOLS = {"create": "+", "update": "~", "revoke": "-"}


def problems_text(problems: list[Problem]) -> str:
    return "\n".join(str(p) for p in problems)


# validate's words for a grant whose grantee left: harmless, and true at every scheduled run
# until someone deletes the file, so plan and apply count them instead of repeating each one.
DELETABLE = "the file can be deleted"


def run_problems_text(problems: list[Problem]) -> str:
    """problems_text for plan and apply: the deletable grant files as one line with a count
    (`jitgrant validate` lists them), every other problem as itself."""
    stale = [p for p in problems if p.severity == "warning" and p.message.endswith(DELETABLE)]
    lines = [str(p) for p in problems if p not in stale]
    if stale:
        files = "grant file is" if len(stale) == 1 else "grant files are"
        lines.append(f"warning: {len(stale)} {files} inactive (the grantee left) and can be "
                     "deleted: `jitgrant validate` lists them")
    return "\n".join(lines)


def problems_json(problems: list[Problem]) -> str:
    return json.dumps([p.as_dict() for p in problems], indent=2)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def problems_github(problems: list[Problem]) -> str:
    """GitHub workflow commands; file names are escaped so none can forge another annotation."""
    lines = []
    for p in problems:
        level = "warning" if p.severity == "warning" else "error"
        lines.append(f"::{level} file={_escape_property(p.path)},line={max(p.line, 1)}::"
                     f"{_escape_data(p.message)}")
    return "\n".join(lines)


def action_line(action: Action) -> str:
    who = f" for {action.grantee} ({action.access})" if action.grantee else ""
    until = f" until {iso(action.expires)}" if action.expires and action.kind != "revoke" else ""
    changes = ": " + ", ".join(action.changes.describe()) if action.kind == "update" else ""
    return f"{SYMBOLS[action.kind]} {action.kind} {action.login}{who}{until}{changes} " \
           f"[{action.cause}]"


def change_line(change: LoginChange) -> str:
    """`- revoke jit_bob_ro on db1 for bob (ro) [offboarded]`, as the reviewer reads it."""
    when = ""
    if change.kind == "update" and change.before != change.expires:
        when = f" until {iso(change.expires)} (was {iso(change.before)})"
    elif change.kind == "create":
        when = f" until {iso(change.expires)}"
    details = ": " + ", ".join(change.details) if change.details else ""
    return (f"{SYMBOLS[change.kind]} {change.kind} {change.login} on {change.target} for "
            f"{change.grantee} ({change.access}){when}{details} [{change.cause}]")


def review_text(review: Review) -> list[str]:
    out = [f"this change {review.headline} (against {review.base[:12]}, where it branched)"]
    out += [f"  note: {note}" for note in review.notes]
    out += [f"  {change_line(c)}" for c in review.changes]
    return out


def plan_text(run: Run, show_sql: bool = True) -> str:
    out = review_text(run.review) if run.review else []
    if run.review and run.offline:
        return "\n".join(out)  # against an empty server every grant is new: not a summary
    for t in run.targets:
        out.append(_target_header(t))
        out.extend(f"  {f.line()}" for f in t.follow_ups)
        if not t.plan:
            continue
        shown = t.shown_by_action()
        for index, action in enumerate(t.plan.actions):
            result = t.results[index] if index < len(t.results) else None
            suffix = f"  FAILED: {result.error}" if result and result.error else ""
            out.append(f"  {action_line(action)}{suffix}")
            if show_sql:
                out.extend(f"      {text};" for text in shown[index])
    return "\n".join(out)


def _target_header(t: TargetRun) -> str:
    head = f"target {t.target.name} ({t.target.engine})"
    if t.error:
        return f"{head}: error: {t.error}"
    count = t.changes
    return f"{head}: {'in sync' if not count else f'{count} change' + ('s' if count > 1 else '')}"


def plan_data(run: Run) -> dict[str, Any]:
    data: dict[str, Any] = {
        "commit": run.snapshot.commit,
        "problems": [p.as_dict() for p in run.problems],
        "targets": [_target_data(t) for t in run.targets],
    }
    if run.review is not None:
        data = {"summary": run.review.headline, "review": review_data(run.review), **data}
    if run.snapshot.changed is not None:
        data["requests"] = requests_data(run)
        data["auto_approvable"] = not not_auto_approvable(run.snapshot)
        data["needs_review_because"] = not_auto_approvable(run.snapshot)
    return data


def review_data(review: Review) -> dict[str, Any]:
    return {"merge_base": review.base, "totals": review.totals, "notes": list(review.notes),
            "changes": [{"action": c.kind, "target": c.target, "login": c.login,
                         "cause": c.cause, "grantee": c.grantee, "access": c.access,
                         "expires": iso(c.expires), "expires_before": iso(c.before),
                         "details": list(c.details), "grant_files": list(c.grant_files)}
                        for c in review.changes]}


def requests_data(run: Run) -> list[dict[str, Any]]:
    """What the pull request asks for: each new or changed grant, as a reviewer reads it."""
    snapshot, now = run.snapshot, run.started
    out = []
    for grant in changed_grants(snapshot):
        target = snapshot.policy.targets.get(grant.target or "")
        level = snapshot.policy.access.get(grant.access or "")
        entry: dict[str, Any] = {"file": grant.path, "grantee": grant.grantee,
                                 "target": grant.target, "access": grant.access,
                                 "valid": isinstance(grant, Grant)}
        if isinstance(grant, Grant):
            begin = max(grant.starts or now, now)
            entry.update(starts=iso(grant.starts), expires=iso(grant.expires),
                         duration=format_duration(grant.expires - begin), reason=grant.reason,
                         ticket=grant.ticket)
        entry["approvers"] = list((target.approvers if target else ())
                                  or snapshot.policy.policy_owners)
        entry["auto_approve"] = bool(level and (level.auto_approve or level.break_glass)
                                     and not level.dangerous)
        entry["dangerous"] = bool(level and level.dangerous)
        out.append(entry)
    return out


def _target_data(t: TargetRun) -> dict[str, Any]:
    actions = []
    shown = t.shown_by_action()
    for index, action in enumerate(t.plan.actions if t.plan else ()):
        result = t.results[index] if index < len(t.results) else None
        actions.append({
            "action": action.kind, "login": action.login, "cause": action.cause,
            "grantee": action.grantee, "access": action.access, "expires": iso(action.expires),
            "changes": action.changes.describe(), "grant_files": list(action.grant_files),
            "statements": shown[index],
            "status": result.status if result else "planned",
            "error": result.error if result else None,
        })
    data = {"target": t.target.name, "engine": t.target.engine, "status": t.status,
            "error": t.error, "actions": actions}
    if t.follow_ups:  # apply after a cut: what the server showed of the earlier actions
        data["follow_ups"] = [{**f.as_dict(), "said": f.line()} for f in t.follow_ups]
    return data


def plan_json(run: Run, overdue: Sequence[Mapping[str, object]] = ()) -> str:
    """The plan; `overdue`: the revocations overdue (overdue.Overdue.as_dict), always listed."""
    return json.dumps({**plan_data(run), "overdue": list(overdue)}, indent=2,
                      ensure_ascii=False)


_ENV = jinja2.Environment(loader=jinja2.PackageLoader("reconciler", "templates"),
                          autoescape=False, trim_blocks=True, lstrip_blocks=True,
                          keep_trailing_newline=True)


def _md(value: object) -> str:
    """Escape text that came from grant files so it cannot break out of a markdown table."""
    text = "" if value is None else str(value)
    for ch in "\\`*_{}[]<>|#&~!":
        text = text.replace(ch, "\\" + ch)
    return " ".join(text.split())


_ENV.filters["md"] = _md


def plan_markdown(run: Run, overdue: Sequence[str] = ()) -> str:
    """The reviewer's summary; `overdue`: one line per revocation overdue (overdue.summary)."""
    return _ENV.get_template("plan.md.j2").render(plan=plan_data(run), symbols=SYMBOLS,
                                                  offline=run.offline, overdue=overdue)
