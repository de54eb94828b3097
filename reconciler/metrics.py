"""What an `apply` run tells a monitoring system: a Prometheus text file (node_exporter's
textfile collector), a push to a Pushgateway, and in GitHub Actions a step summary and
`::error` annotations.

A run is a short-lived process, so the metrics file is also the only state kept between runs:
the counters (`jitgrant_actions_total`, `jitgrant_action_failures_total`) add this run's counts
to the previous file's, and a target this run could not reconcile keeps its last success time
and its overdue count from there. With `--pushgateway` alone there is no previous file: the
counters then count this run only.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, push_to_gateway, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from .errors import UserError
from .overdue import DEFAULT_GRACE, Overdue, can_log_in, overdue_logins
from .render import _escape_data, _escape_property

if TYPE_CHECKING:
    from .apply import Run, TargetRun
    from .engines import ActionResult
    from .plan import Action

EXPIRING_SOON = timedelta(hours=1)  # as `status` says "expiring" (access.EXPIRING_SOON)
LOGIN_STATES = ("active", "expiring", "ended")
JOB = "jitgrant"  # the Pushgateway job name
Key = tuple[str, tuple[tuple[str, str], ...]]  # metric sample name, sorted labels


@dataclass
class Figures:
    """The numbers of one run, before they become metric families."""

    finished: float
    duration: float
    up: dict[str, int] = field(default_factory=dict)
    last_success: dict[str, float] = field(default_factory=dict)
    logins: dict[tuple[str, str], int] = field(default_factory=dict)  # (target, state)
    actions: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # target kind cause
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)  # target, kind
    overdue: dict[str, int] = field(default_factory=dict)


def figures(run: Run, grace: timedelta = DEFAULT_GRACE,
            previous: Mapping[Key, float] | None = None) -> Figures:
    """This run's figures, with what `previous` (a metrics file's samples) carries over."""
    previous = previous or {}
    finished = run.finished or run.started
    out = Figures(finished.timestamp(), (finished - run.started).total_seconds())
    still = overdue_logins(run, grace, after=True)
    for t in run.targets:
        name = t.target.name
        ok = t.status == "ok" and t.actual is not None
        out.up[name] = int(ok)
        last = out.finished if ok else previous.get(_key(
            "jitgrant_target_last_success_timestamp_seconds", target=name))
        if last is not None:
            out.last_success[name] = last
        if t.actual is not None:
            out.overdue[name] = sum(1 for o in still if o.target == name)
            out.logins.update(_login_states(t, run.started))
        elif (carried := previous.get(_key("jitgrant_revocations_overdue", target=name))) \
                is not None:
            out.overdue[name] = int(carried)
        for action, result in _executed(t):
            out.actions[(name, action.kind, action.cause)] += 1
            if result is None or result.error or result.unknown:
                out.failures[(name, action.kind)] += 1
    _accumulate(out, previous)
    return out


def _executed(t: TargetRun) -> Iterator[tuple[Action, ActionResult | None]]:
    """Each action the run executed, with its result (None when the run has none for it)."""
    if t.plan is None or not t.executed:
        return
    for index, action in enumerate(t.plan.actions):
        yield action, t.results[index] if index < len(t.results) else None


def _login_states(t: TargetRun, now: datetime) -> dict[tuple[str, str], int]:
    """The target's managed logins after the run, by state: active, expiring (ends within an
    hour), ended (its grant ended and it can still log in: a revocation not done yet)."""
    assert t.desired is not None and t.actual is not None
    created: set[str] = set()
    revoked: set[str] = set()
    for action, result in _executed(t):
        if result is not None and not result.error and not result.unknown:
            (created if action.kind == "create" else revoked).add(action.login)
    counts = dict.fromkeys(((t.target.name, s) for s in LOGIN_STATES), 0)
    for name, want in t.desired.logins.items():
        if name in t.actual.roles or name in created:
            soon = want.expires - now <= EXPIRING_SOON
            counts[(t.target.name, "expiring" if soon else "active")] += 1
    for name, role in t.actual.roles.items():
        if name in t.desired.known and name not in t.desired.logins and name not in revoked \
                and can_log_in(role, now):
            counts[(t.target.name, "ended")] += 1
    return counts


def _accumulate(out: Figures, previous: Mapping[Key, float]) -> None:
    """Counters go on from the previous file's values (a label set this run did not see
    keeps its value, so a counter never goes down without a reset)."""
    for (name, labels), value in previous.items():
        label = dict(labels)
        if name == "jitgrant_actions_total":
            out.actions[(label.get("target", ""), label.get("kind", ""),
                         label.get("cause", ""))] += int(value)
        elif name == "jitgrant_action_failures_total":
            out.failures[(label.get("target", ""), label.get("kind", ""))] += int(value)


def _key(name: str, **labels: str) -> Key:
    return name, tuple(sorted(labels.items()))


class _RunCollector(Collector):
    """The figures as metric families, for a registry of our own (not the process default,
    which would add the Python process's own metrics)."""

    def __init__(self, data: Figures) -> None:
        self.data = data

    def collect(self) -> Iterable[Metric]:
        d = self.data
        yield _gauge("jitgrant_last_run_timestamp_seconds",
                     "When the last apply run finished (Unix time).", {(): d.finished})
        yield _gauge("jitgrant_run_duration_seconds", "How long the last apply run took.",
                     {(): d.duration})
        yield _gauge("jitgrant_target_up", "1 when the last run reconciled the target "
                     "without a failure, else 0.", _by_target(d.up), ("target",))
        yield _gauge("jitgrant_target_last_success_timestamp_seconds", "When a run last "
                     "reconciled the target without a failure (Unix time).",
                     _by_target(d.last_success), ("target",))
        yield _gauge("jitgrant_logins", "Managed logins on the server after the run, by "
                     "state: active, expiring (within an hour), ended (grant over, "
                     "revocation not done).", {k: float(v) for k, v in d.logins.items()},
                     ("target", "state"))
        yield _counter("jitgrant_actions", "Actions executed, by target, kind and cause "
                       "(summed over the runs that wrote this file).",
                       {k: float(v) for k, v in d.actions.items()}, ("target", "kind", "cause"))
        yield _counter("jitgrant_action_failures", "Actions that failed or whose outcome is "
                       "unknown (summed over the runs that wrote this file).",
                       {k: float(v) for k, v in d.failures.items()}, ("target", "kind"))
        yield _gauge("jitgrant_revocations_overdue", "Logins that can still log in past "
                     "their grant's end plus the grace, after the run.",
                     _by_target(d.overdue), ("target",))


def _by_target(values: Mapping[str, float]) -> dict[tuple[str, ...], float]:
    return {(name,): float(value) for name, value in values.items()}


def _gauge(name: str, doc: str, samples: Mapping[tuple[str, ...], float],
           labels: tuple[str, ...] = ()) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    for values, value in sorted(samples.items()):
        family.add_metric(list(values), value)
    return family


def _counter(name: str, doc: str, samples: Mapping[tuple[str, ...], float],
             labels: tuple[str, ...]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=list(labels))
    for values, value in sorted(samples.items()):
        family.add_metric(list(values), value)
    return family


def registry_for(data: Figures) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RunCollector(data))
    return registry


def read_previous(path: Path) -> dict[Key, float]:
    """The samples of an earlier metrics file; none when there is none or it does not parse
    (a file cut by a full disk must not stop the metrics of every later run)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    samples: dict[Key, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    except ValueError:
        return {}
    return samples


def write_file(path: Path, data: Figures) -> None:
    """Atomically: prometheus_client writes `PATH.<pid>.<thread>` in the same folder and
    renames it over PATH, so node_exporter (which reads only *.prom) never sees half a file."""
    try:
        write_to_textfile(str(path), registry_for(data))
    except OSError as exc:
        raise UserError(f"--metrics-file {path}: cannot write it: "
                        f"{exc.strerror or exc}") from None


def push(gateway: str, data: Figures, timeout: float = 30) -> None:
    """PUT the run's metrics to a Pushgateway under job `jitgrant` (replacing the last push)."""
    try:
        push_to_gateway(gateway, JOB, registry_for(data), timeout=timeout)
    except OSError as exc:  # urllib's URLError and HTTPError are OSErrors
        raise UserError(f"--pushgateway {gateway}: cannot push the metrics: {exc}") from None


# -- GitHub Actions --------------------------------------------------------------------------


def in_github_actions(env: Mapping[str, str] | None = None) -> bool:
    return (os.environ if env is None else env).get("GITHUB_ACTIONS") == "true"


def error_annotations(run: Run, overdue: list[Overdue]) -> list[str]:
    """`::error` workflow commands for each failed target or action and overdue login."""
    out = []
    for t in run.targets:
        name = t.target.name
        if t.error:
            out.append(_error(f"jitgrant apply: target {name}", t.error))
        for action, result in _executed(t):
            if result is not None and result.error:
                out.append(_error(f"jitgrant apply: target {name}",
                                  f"{action.kind} {action.login} failed: {result.error}"))
    for o in overdue:
        out.append(_error("jitgrant: revocation overdue", o.line(run.started)))
    return out


def _error(title: str, message: str) -> str:
    return f"::error title={_escape_property(title)}::{_escape_data(message)}"


def step_summary(run: Run, overdue: list[Overdue], audit: str | None) -> str:
    """Markdown for $GITHUB_STEP_SUMMARY: a row per target, then the overdue logins."""
    lines = ["## jitgrant apply", "",
             "| target | engine | result | changes | failed actions |",
             "| --- | --- | --- | --- | --- |"]
    for t in run.targets:
        failed = sum(1 for _, r in _executed(t) if r is None or r.error or r.unknown)
        result = f"error: {_cell(t.error)}" if t.error else t.status
        lines.append(f"| {_cell(t.target.name)} | {t.target.engine} | {result} | "
                     f"{t.changes} | {failed} |")
    if overdue:
        lines += ["", f"**{len(overdue)} revocation(s) overdue:**", ""]
        lines += [f"- {_cell(o.line(run.started))}" for o in overdue]
    if audit:
        lines += ["", f"Audit record: `{_cell(audit)}`"]
    return "\n".join(lines) + "\n\n"


def _cell(text: str | None) -> str:
    """Text from servers and grant files, kept inside its table cell."""
    return " ".join((text or "").replace("|", "\\|").replace("`", "'").split())


def append_summary(path: str, text: str) -> None:
    try:
        with open(path, "a", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        raise UserError(f"GITHUB_STEP_SUMMARY {path}: cannot write it: "
                        f"{exc.strerror or exc}") from None
