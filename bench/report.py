"""The figures as markdown, the machine they were taken on, and the generated section of
docs/benchmarks.md (text outside the markers is left as written)."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import psycopg

from reconciler import __version__

from .steps import STEPS, Result, Step

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
TARGET_GRANTS = 10_000
LIMIT_SECONDS = 2.0
LIMIT_RATIO = 2.0
LIMIT_LDAP2PG = 1 / 3  # the issue: at least 3x faster than ldap2pg 5.9

HEADER = """# Benchmarks

How jitgrant copes with many grants on one PostgreSQL target, at 1,000, 10,000 and 50,000
active grants. The targets (from the issue), for 10,000 active grants: `validate` + `plan`
under 2 s; the first `apply` within 2x of the same `CREATE ROLE` statements sent by `psql` in
one transaction, and at least 3x faster than ldap2pg 5.9 creating the same logins; a second,
no-op `apply` under 2 s.

Run it (a PostgreSQL superuser DSN; the machine's server by default):

    python -m bench --grants 1000,10000,50000 --repeat 3

`--dsn URI` or `JITGRANT_BENCH_PG_DSN` picks the server, `--embedded` starts an embedded
PostgreSQL 18 instead. A run creates its roles under a random prefix (`bXXXX_`) plus one group
role, and drops all of them at the end, also when it fails. `--profile DIR` writes a cProfile
file per step (the figures are then inflated, so this file is not rewritten). On a busy
machine single steps move by a third between runs, hence `--repeat 3` (medians); the machine
line records the load average.

"""


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    memory_gib: float
    server: str
    python: str
    driver: str  # `psycopg 3.x`, or the mysql driver and client
    git: str
    system: str
    code: str
    load: float  # 1-minute load average when the run started: other work skews the figures

    def markdown(self) -> str:
        return (f"**Machine**: {self.cpu}, {self.cores} cores, {self.memory_gib:.0f} GiB RAM; "
                f"{self.server}; Python {self.python}, {self.driver}, {self.git}; "
                f"{self.system}; load average {self.load:.2f} at the start. "
                f"jitgrant {self.code}.")


def machine(server: str, driver: str | None = None) -> Machine:
    return Machine(cpu=_cpu(), cores=os.cpu_count() or 0, memory_gib=_memory_gib(),
                   server=server, python=platform.python_version(),
                   driver=driver or f"psycopg {psycopg.__version__}", git=_git_version(),
                   system=f"{platform.system()} {platform.release()}", code=_code_version(),
                   load=os.getloadavg()[0])


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _code_version() -> str:
    """The checkout measured: commit, and whether the working tree differed from it."""
    here = Path(__file__).resolve().parent.parent
    head = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--", "reconciler"],
                           capture_output=True, text=True).stdout.strip()
    if not head:
        return f"{__version__} (not a git checkout)"
    return f"{__version__} at {head}" + (" with uncommitted changes to reconciler/" if dirty
                                           else "")


def _git_version() -> str:
    proc = subprocess.run(["git", "--version"], capture_output=True, text=True)
    return proc.stdout.strip() or "git ?"


# -- markdown --------------------------------------------------------------------------------


def section(results: Sequence[Result], box: Machine, when: datetime | None = None,
            picture: str | None = None) -> str:
    parts = [generated_by(when), timing(results) + _grant_shape(results),
             figures(results, counts=COUNTS + _ldap2pg_counts(results)), targets(results),
             refused(results), memory(results), ldap2pg_status(results)]
    if picture:
        parts.append(f"![Seconds against active grants, log-log]({picture})")
    parts.append(box.markdown())
    return "\n\n".join(p for p in parts if p)


def generated_by(when: datetime | None = None, command: str = "python -m bench") -> str:
    when = when or datetime.now(timezone.utc)
    return (f"<!-- generated by `{command}` on {when:%Y-%m-%d %H:%M} UTC; "
            "rerun it rather than editing -->")


def timing(results: Sequence[Result]) -> str:
    return ("Seconds of wall-clock time (`time.perf_counter`) around jitgrant's own functions "
            "in one Python process, unless the row says otherwise"
            + (f"; median of {results[0].runs} runs. " if results[0].runs > 1 else ". "))


def _grant_shape(results: Sequence[Result]) -> str:
    if any(r.verifiers for r in results):
        return ("Every grant carries a SCRAM-SHA-256 password verifier (`--verifiers`): the "
                "server runs PBKDF2 once per CREATE ROLE, in psql and apply alike.")
    return ("Grants carry no password verifier (`PASSWORD NULL`), so the figures show "
            "jitgrant's own cost; `--verifiers` adds the server's PBKDF2 per CREATE ROLE.")


@dataclass(frozen=True)
class Count:
    """A row of the figures that is not seconds."""

    label: str
    value: Callable[[Result], float]
    meaning: str


PEAK_RSS = Count("peak RSS (MB)", lambda r: r.peak_rss_mb,
                 "of the bench process after the first run of N (`getrusage`); N run in "
                 "ascending order")
COUNTS = (Count("SQL statements", lambda r: r.statements, "sent by the first apply (and by psql)"),
          PEAK_RSS)
LDAP2PG_COUNTS = (
    Count("ldap2pg queries (create)", lambda r: r.ldap2pg_queries.get("ldap2pg_cold", 0),
          "what ldap2pg reports it sent: one round trip each (CREATE ROLE + COMMENT together, "
          "one GRANT for every new member)"),
    Count("ldap2pg queries (removal)", lambda r: r.ldap2pg_queries.get("ldap2pg_drop", 0),
          "three round trips per login: end its sessions; GRANT it to the admin + REASSIGN "
          "OWNED + DROP OWNED in the database, as one query; DROP ROLE"),
)


def _ldap2pg_counts(results: Sequence[Result]) -> tuple[Count, ...]:
    return LDAP2PG_COUNTS if any(r.ldap2pg_queries for r in results) else ()


def figures(results: Sequence[Result], steps: Sequence[Step] = STEPS,
            counts: Sequence[Count] = COUNTS) -> str:
    head = "| step | " + " | ".join(f"N = {r.grants:,}" for r in results) + " | what it is |"
    rule = "| --- | " + " | ".join("---:" for _ in results) + " | --- |"
    rows = [head, rule]
    for step in steps:
        if any(step.key in r.seconds for r in results):
            cells = " | ".join("**failed**" if step.key in r.failures
                               else _seconds(r.seconds.get(step.key)) for r in results)
            rows.append(f"| {step.label} | {cells} | {step.meaning} |")
    for count in counts:
        cells = " | ".join(f"{count.value(r):,.0f}" for r in results)
        rows.append(f"| {count.label} | {cells} | {count.meaning} |")
    return "\n".join(rows)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


@dataclass(frozen=True)
class Ratio:
    label: str
    goal: str
    compute: Callable[[dict[str, float]], float]
    limit: float | None  # None: shown for diagnosis, not a target
    unit: str  # " s" or "x"

    def cell(self, r: Result) -> str:
        try:
            value = self.compute(r.measured())
        except KeyError:  # a step that was not measured or failed
            return "-"
        text = f"{value:.2f}{self.unit}"
        if self.limit is None:
            return text
        return f"{text} {'met' if value <= self.limit else '**missed**'}"


RATIOS = (
    Ratio("validate + plan", "< 2 s", lambda s: s["validate"] + s["plan"], LIMIT_SECONDS, " s"),
    Ratio("first apply / psql floor", "<= 2x", lambda s: s["apply_first"] / s["psql"],
          LIMIT_RATIO, "x"),
    Ratio("its reconcile part / psql floor", "(engine only)",
          lambda s: s["apply_first.reconcile"] / s["psql"], None, "x"),
    Ratio("second (no-op) apply", "< 2 s", lambda s: s["apply_noop"], LIMIT_SECONDS, " s"),
    Ratio("first apply / ldap2pg 5.9 create", "<= 0.33x (3x faster)",
          lambda s: s["apply_first"] / s["ldap2pg_cold"], LIMIT_LDAP2PG, "x"),
    Ratio("no-op apply / ldap2pg 5.9 no-op", "(compared)",
          lambda s: s["apply_noop"] / s["ldap2pg_noop"], None, "x"),
    Ratio("mass expiry / ldap2pg 5.9 removal", "(compared)",
          lambda s: s["expiry"] / s["ldap2pg_drop"], None, "x"),
)


def memory(results: Sequence[Result]) -> str:
    """Whether peak RSS grows linearly: a least-squares line through (N, MB) and how far the
    points lie from it. Needs two N at least."""
    if len(results) < 2:
        return ""
    xs = [float(r.grants) for r in results]
    ys = [r.peak_rss_mb for r in results]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = (sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
             / sum((x - mean_x) ** 2 for x in xs))
    base = mean_y - slope * mean_x
    worst = max(abs(y - (base + slope * x)) / y for x, y in zip(xs, ys, strict=True))
    steps = ", ".join(f"{(b.peak_rss_mb - a.peak_rss_mb) * 1024 / (b.grants - a.grants):.1f} KB"
                      f" per grant from {a.grants:,} to {b.grants:,}"
                      for a, b in zip(results, results[1:], strict=False))
    return (f"**Memory**: peak RSS = {base:.0f} MB + {slope * 1024:.1f} KB x N (least squares; "
            f"every point within {worst:.0%} of the line); {steps}.")


def refused(results: Sequence[Result]) -> str:
    """What the server refused, per N: those cells say **failed** and their ratios `-`."""
    lines = [f"- N = {r.grants:,}, {STEP_LABELS.get(key, key)}: {reason}"
             for r in results for key, reason in r.failures.items()]
    return "**Refused by the server:**\n\n" + "\n".join(lines) if lines else ""


STEP_LABELS = {step.key: step.label for step in STEPS}


def ldap2pg_status(results: Sequence[Result]) -> str:
    missing = next((r.ldap2pg_missing for r in results if r.ldap2pg_missing), None)
    if missing:
        return f"**ldap2pg 5.9: no figures.** {missing}"
    if not any("ldap2pg_cold" in r.seconds for r in results):
        return "**ldap2pg 5.9: not measured** (`--no-ldap2pg`)."
    return ""


def targets(results: Sequence[Result], ratios: Sequence[Ratio] = RATIOS,
            goal: str = "goal at 10,000") -> str:
    head = ("| target | " + " | ".join(f"N = {r.grants:,}" for r in results)
            + f" | {goal} |")
    rows = [head, "| --- | " + " | ".join("---:" for _ in results) + " | --- |"]
    for ratio in ratios:
        cells = " | ".join(ratio.cell(r) for r in results)
        rows.append(f"| {ratio.label} | {cells} | {ratio.goal} |")
    return "**Against the targets** (met / missed, judged for every N):\n\n" + "\n".join(rows)


def write_doc(path: Path, generated: str, start: str = START, end: str = END,
              intro: str = "") -> None:
    """Replace what lies between the markers; create the file (or the markers, after `intro`)
    when missing."""
    block = f"{start}\n{generated}\n{end}"
    text = path.read_text() if path.exists() else HEADER
    if start in text and end in text and text.index(start) < text.index(end):
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + intro + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
