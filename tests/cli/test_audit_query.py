"""`jitgrant audit` over a year of audit records written by the real `audit.record()`: the
auditor's question in one command, working hours in a time zone, CSV a spreadsheet opens as is."""

from __future__ import annotations

import csv
import io
import json
import random
import shutil
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from reconciler.auditlog import CSV_COLUMNS, audit_command, flat, neutralise
from reconciler.cli import main
from reconciler.model import Grant
from tests.audit_runs import (TARGETS, Step, approved_grant, create, login_of, make_run, revoke,
                              update, write_record)
from tests.cli.conftest import jitgrant
from tests.helpers import AccessRepo

if "audit" not in main.commands:  # until cli.py registers it
    main.add_command(audit_command)

UTC = timezone.utc
START, END = datetime(2025, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
QUIET = datetime(2026, 11, 9, tzinfo=UTC)  # from here on, the hand-placed weeks
PEOPLE = ["alice", "bob", "dave", "erin", "frank", "gina", "henry", "ivan"]
HAND_PLACED = {"orders-prod", "alice", "dave", "frank", "henry"}
TICK = timedelta(minutes=5)  # the reconcile schedule


def t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def next_tick(when: datetime) -> datetime:
    """The first scheduled run at or after `when`."""
    floor = when.replace(second=0, microsecond=0, minute=when.minute - when.minute % 5)
    return floor if floor == when else floor + TICK


@dataclass
class Trail:
    """Apply runs by start time; each becomes one audit record."""

    runs: dict[datetime, tuple[list[Step], list[Grant]]] = field(default_factory=dict)
    next_pr: int = 1000
    periods: int = 0  # access periods generated: what `audit` must find again

    def at(self, when: datetime, step: Step, *grants: Grant) -> None:
        steps, known = self.runs.setdefault(when, ([], []))
        steps.append(step)
        known.extend(g for g in grants if g not in known)

    def grant(self, grantee: str, target: str, access: str, merged: datetime,
              expires: datetime, reason: str | None = None, pr: int | None = -1,
              ticket: str | None = None) -> Grant:
        if pr == -1:
            pr, self.next_pr = self.next_pr, self.next_pr + 1
        path = f"grants/{target}/{grantee}-{access}-{merged:%Y%m%d%H%M}.yaml"
        return approved_grant(path, grantee, target, access, expires,
                              reason or f"INC-{merged:%j%H} look into {target}", pr, merged,
                              ticket)

    def write(self, root: Path) -> int:
        for when, (steps, grants) in sorted(self.runs.items()):
            write_record(root, make_run(when, steps, grants), actor="github-actions[bot]")
        return len(self.runs)


def background(trail: Trail, rng: random.Random) -> None:
    """A year of grants at any hour, weekends included: expiries, early removals, extensions,
    drift, failed revokes retried, failed creates."""
    busy: dict[str, datetime] = {}
    day = START
    while day < END:
        for _ in range(rng.choice([0, 1, 1])):
            merged = day + timedelta(minutes=rng.randrange(24 * 60))
            target, grantee = rng.choice(sorted(TARGETS)), rng.choice(PEOPLE)
            access = rng.choice(["readonly", "readwrite"])
            created = next_tick(merged + timedelta(minutes=1))
            login = login_of(target, grantee, access)
            if busy.get(f"{target}/{login}", START) > created:
                continue
            end = lifetime(trail, rng, target, grantee, access, merged, created)
            busy[f"{target}/{login}"] = end + TICK
        day += timedelta(days=1)


def lifetime(trail: Trail, rng: random.Random, target: str, grantee: str, access: str,
             merged: datetime, created: datetime) -> datetime:
    """Add the runs of one login's life; return when it ended."""
    if created > QUIET - timedelta(days=1) and HAND_PLACED & {target, grantee}:
        return created  # keep what the hand-placed weeks test free of generated noise
    hours = rng.choice([1, 2, 4, 8])
    g = trail.grant(grantee, target, access, merged, created + timedelta(hours=hours),
                    pr=None if rng.random() < 0.1 else -1)
    login, roll = login_of(target, grantee, access), rng.random()
    if roll < 0.02:
        trail.at(created, Step(create(g), error="permission denied to create role"), g)
        return created
    trail.at(created, Step(create(g)), g)
    trail.periods += 1
    half = next_tick(created + timedelta(hours=hours / 2))
    if roll < 0.12:
        trail.at(half, Step(revoke(target, login, "removed"), sessions=rng.randrange(2)))
        return half
    grants = [g]
    if roll < 0.22:
        g2 = trail.grant(grantee, target, access, half - timedelta(minutes=3),
                         g.expires + timedelta(hours=4))
        grants.append(g2)
        trail.at(half, Step(update(grants)), *grants)
    elif roll < 0.27:
        trail.at(half, Step(update(grants, cause="drift")), g)
    end = next_tick(max(x.expires for x in grants))
    if 0.27 <= roll < 0.30:
        trail.at(end, Step(revoke(target, login, "expired", grants), error="lock timeout"),
                 *grants)
        end += TICK
    trail.at(end, Step(revoke(target, login, "expired", grants), sessions=rng.randrange(3)),
             *grants)
    return end


def auditors_weeks(trail: Trail) -> None:
    """orders-prod around the week of 2026-11-16, placed by hand; frank's after-hours work."""
    bob = trail.grant("bob", "orders-prod", "readwrite", t("2026-11-14T21:52:00Z"),
                      t("2026-11-16T06:00:00Z"), "INC-4240 weekend migration", pr=4240)
    trail.at(t("2026-11-14T22:00:00Z"), Step(create(bob)), bob)
    trail.at(t("2026-11-16T06:05:00Z"), Step(revoke("orders-prod", login_of(
        "orders-prod", "bob", "readwrite"), "expired", [bob])), bob)

    alice_login = login_of("orders-prod", "alice", "readonly")
    alice = trail.grant("alice", "orders-prod", "readonly", t("2026-11-17T09:03:00Z"),
                        t("2026-11-17T17:10:00Z"), "INC-4242 stuck orders", pr=4242,
                        ticket="INC-4242")
    trail.at(t("2026-11-17T09:10:00Z"), Step(create(alice)), alice)
    trail.at(t("2026-11-17T17:15:00Z"), Step(revoke("orders-prod", alice_login, "expired",
                                                    [alice]), sessions=1), alice)

    again = trail.grant("alice", "orders-prod", "readonly", t("2026-11-19T07:58:00Z"),
                        t("2026-11-19T12:00:00Z"), "INC-4245 refunds", pr=4245)
    longer = trail.grant("alice", "orders-prod", "readonly", t("2026-11-19T10:57:00Z"),
                         t("2026-11-19T16:00:00Z"), "INC-4245 refunds, more time", pr=4250)
    trail.at(t("2026-11-19T08:00:00Z"), Step(create(again)), again)
    trail.at(t("2026-11-19T11:00:00Z"), Step(update([again, longer])), again, longer)
    trail.at(t("2026-11-19T13:30:00Z"), Step(revoke("orders-prod", alice_login, "removed")))

    gina = trail.grant("gina", "orders-prod", "readonly", t("2026-11-18T09:55:00Z"),
                       t("2026-11-18T12:00:00Z"), pr=4246)
    trail.at(t("2026-11-18T10:00:00Z"), Step(create(gina), error="role does not exist"), gina)

    henry = trail.grant("henry", "orders-prod", "readonly", t("2026-11-21T19:55:00Z"),
                        t("2026-11-24T08:00:00Z"), pr=4251)
    trail.at(t("2026-11-21T20:00:00Z"), Step(create(henry)), henry)  # not revoked yet

    dave_login = login_of("orders-prod", "dave", "readonly")
    dave = trail.grant("dave", "orders-prod", "readonly", t("2026-11-22T23:27:00Z"),
                       t("2026-11-23T03:30:00Z"), "break-glass: orders queue", pr=None)
    trail.at(t("2026-11-22T23:30:00Z"), Step(create(dave)), dave)
    trail.at(t("2026-11-23T03:35:00Z"), Step(revoke("orders-prod", dave_login, "expired",
                                                    [dave]), error="lock timeout"), dave)
    trail.at(t("2026-11-23T03:40:00Z"), Step(revoke("orders-prod", dave_login, "expired",
                                                    [dave])), dave)

    outside = [("erin", "2026-11-12T10:00:00Z", "2026-11-13T10:00:00Z", "orders-prod"),
               ("frank", "2026-11-23T10:00:00Z", "2026-11-23T12:00:00Z", "orders-prod"),
               ("alice", "2026-11-17T10:00:00Z", "2026-11-17T12:00:00Z", "billing-mysql")]
    hand_placed(trail, outside)
    # frank on analytics-staging: 17:30 and 18:00 in New York are 22:30Z and 23:00Z; 07:00
    # and 08:00 are 12:00Z and 13:00Z; 2026-11-21 is a Saturday.
    hand_placed(trail, [("frank", "2026-11-17T22:30:00Z", "2026-11-17T23:00:00Z", ""),
                        ("frank", "2026-11-18T12:00:00Z", "2026-11-18T13:00:00Z", ""),
                        ("frank", "2026-11-21T15:00:00Z", "2026-11-21T16:00:00Z", "")])
    trail.periods += 5 + 6  # bob, alice twice, henry, dave; 6 hand-placed; not gina (failed)


def hand_placed(trail: Trail, items: list[tuple[str, str, str, str]]) -> None:
    for grantee, start, end, target in items:
        target = target or "analytics-staging"
        g = trail.grant(grantee, target, "readonly", t(start) - TICK, t(end) - TICK)
        trail.at(t(start), Step(create(g)), g)
        trail.at(t(end), Step(revoke(target, login_of(target, grantee, "readonly"), "expired",
                                     [g])), g)


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory) -> tuple[AccessRepo, Trail]:
    repo = AccessRepo(tmp_path_factory.mktemp("audit") / "repo")
    trail = Trail()
    background(trail, random.Random(2026))
    auditors_weeks(trail)
    written = trail.write(repo.root)
    assert written > 400
    repo.commit("a year of audit records [skip ci]")
    return repo, trail


def audit(repo: Path, *args: str) -> Result:
    return jitgrant("audit", "--repo", str(repo), *args)


def rows(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_who_had_access_to_orders_prod_last_week(year: tuple[AccessRepo, Trail]) -> None:
    repo, _ = year
    found = rows(audit(repo.root, "--target", "orders-prod", "--since", "2026-11-16",
                       "--until", "2026-11-22", "--format", "json"))
    merge = {r["granted_at"]: [a["merge_commit"] for a in r["approvals"]] for r in found}
    assert [(r["grantee"], r["access"], r["granted_at"],
             [a["pull_request"] for a in r["approvals"]], r["expires"], r["ended_at"],
             r["ended_cause"]) for r in found] == [
        ("bob", "readwrite", "2026-11-14T22:00:00Z", [4240], "2026-11-16T06:00:00Z",
         "2026-11-16T06:05:00Z", "expired"),
        ("alice", "readonly", "2026-11-17T09:10:00Z", [4242], "2026-11-17T17:10:00Z",
         "2026-11-17T17:15:00Z", "expired"),
        ("alice", "readonly", "2026-11-19T08:00:00Z", [4245, 4250], "2026-11-19T16:00:00Z",
         "2026-11-19T13:30:00Z", "removed"),
        ("henry", "readonly", "2026-11-21T20:00:00Z", [4251], "2026-11-24T08:00:00Z", None,
         None),
        ("dave", "readonly", "2026-11-22T23:30:00Z", [None], "2026-11-23T03:30:00Z",
         "2026-11-23T03:40:00Z", "expired"),
    ]
    assert all(len(m) == 1 and len(m[0]) == 40 for k, m in merge.items()
               if k != "2026-11-19T08:00:00Z")
    assert found[1]["approvals"][0]["reason"] == "INC-4242 stuck orders"
    assert found[1]["approvals"][0]["ticket"] == "INC-4242"

    table = audit(repo.root, "--target", "orders-prod", "--since", "2026-11-16",
                  "--until", "2026-11-22")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["GRANTEE", "TARGET", "ACCESS", "GRANTED", "PR", "APPROVED",
                                "BY", "MERGE", "EXPIRES", "ENDED", "WHY", "ENDED", "BY", "USED",
                                "FIRST", "USED", "LAST", "SEEN", "SESSIONS"]
    assert len(lines) == 1 + len(found)
    assert "#4245; #4250" in lines[3] and "2026-11-19 13:30Z" in lines[3]
    # henry: not ended yet; these records are older than sampling: use not known
    assert lines[4].split()[-7:] == ["-", "-", "-", "-", "-", "-", "0"]


def test_the_whole_year_is_read_and_every_period_found(year: tuple[AccessRepo, Trail]) -> None:
    repo, trail = year
    periods = rows(audit(repo.root, "--format", "json"))
    assert len(periods) == trail.periods
    assert sum(1 for p in periods if p["ended_at"] is None) == 1  # henry
    actions = rows(audit(repo.root, "--view", "actions", "--format", "json"))
    assert len(actions) == sum(len(steps) for steps, _ in trail.runs.values())
    assert {a["status"] for a in actions} == {"ok", "failed"}
    assert [a["time"] for a in actions] == sorted(a["time"] for a in actions)


@pytest.mark.parametrize(("zone", "expected_actions", "expected_periods"), [
    ("America/New_York",
     ["2026-11-17T23:00:00Z", "2026-11-18T12:00:00Z", "2026-11-21T15:00:00Z",
      "2026-11-21T16:00:00Z"],
     ["2026-11-18T12:00:00Z", "2026-11-21T15:00:00Z"]),
    ("UTC",
     ["2026-11-17T22:30:00Z", "2026-11-17T23:00:00Z", "2026-11-21T15:00:00Z",
      "2026-11-21T16:00:00Z"],
     ["2026-11-17T22:30:00Z", "2026-11-21T15:00:00Z"]),
])
def test_after_hours_in_a_time_zone(year: tuple[AccessRepo, Trail], zone: str,
                                    expected_actions: list[str],
                                    expected_periods: list[str]) -> None:
    repo, _ = year
    window = ["--grantee", "frank", "--target", "analytics-staging", "--since", "2026-11-17",
              "--until", "2026-11-22", "--after-hours", "--timezone", zone, "--format", "json"]
    actions = rows(audit(repo.root, "--view", "actions", *window))
    assert [a["time"] for a in actions] == expected_actions
    periods = rows(audit(repo.root, *window))
    assert [p["granted_at"] for p in periods] == expected_periods


def test_dates_are_days_in_the_time_zone(year: tuple[AccessRepo, Trail]) -> None:
    repo, _ = year
    base = ["--view", "actions", "--grantee", "frank", "--target", "analytics-staging",
            "--format", "json"]
    # 2026-11-17 in Tokyo is 2026-11-16T15:00Z .. 2026-11-17T15:00Z: nothing of frank's.
    assert rows(audit(repo.root, *base, "--since", "2026-11-17", "--until", "2026-11-17",
                      "--timezone", "Asia/Tokyo")) == []
    # ... and 2026-11-18 there holds 22:30Z and 23:00Z of the 17th, 12:00Z and 13:00Z.
    found = rows(audit(repo.root, *base, "--since", "2026-11-18", "--until", "2026-11-18",
                       "--timezone", "Asia/Tokyo"))
    assert [a["time"][11:16] for a in found] == ["22:30", "23:00", "12:00", "13:00"]
    exact = rows(audit(repo.root, *base, "--since", "2026-11-18T12:00:00Z",
                       "--until", "2026-11-18T13:00:00+00:00"))
    assert [a["time"] for a in exact] == ["2026-11-18T12:00:00Z"]


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_csv_opens_in_a_spreadsheet_as_is(tmp_path: Path) -> None:
    repo = AccessRepo(tmp_path / "repo")
    trail = Trail()
    reasons = ['INC-9, "stuck"\nsecond line', '=HYPERLINK("http://evil.example","click")',
               "@SUM(A1:A9)", "-1+2", "+cmd", "\tpadded"]
    for n, reason in enumerate(reasons):
        merged = t("2026-03-02T09:00:00Z") + timedelta(days=n)
        g = trail.grant("ivan", "orders-prod", "readonly", merged,
                        merged + timedelta(hours=2), reason, ticket="=1+1" if n == 1 else None)
        trail.at(merged + TICK, Step(create(g)), g)
        trail.at(merged + timedelta(hours=2, minutes=5), Step(revoke(
            "orders-prod", login_of("orders-prod", "ivan", "readonly"), "expired", [g])), g)
    trail.write(repo.root)

    result = audit(repo.root, "--format", "csv")
    assert result.exit_code == 0, result.output
    raw = result.stdout_bytes
    assert raw.startswith(b"grantee,target,access,login,granted_at,")
    assert raw.endswith(b"\r\n") and raw.count(b"\r\n") == 1 + len(reasons)
    assert raw.replace(b"\r\n", b"").count(b"\n") == 1  # only inside the quoted reason
    table = csv_rows(result.stdout)
    assert table[0] == CSV_COLUMNS["access"]
    cells = [r[table[0].index("reasons")] for r in table[1:]]
    assert cells == ['INC-9, "stuck"\nsecond line',
                     '\'=HYPERLINK("http://evil.example","click")', "'@SUM(A1:A9)", "'-1+2",
                     "'+cmd", "'\tpadded"]
    assert table[2][table[0].index("tickets")] == "'=1+1"
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r"))
                   for row in table for cell in row)

    data = rows(audit(repo.root, "--format", "json"))
    expected = [[neutralise(flat(r)[c]) for c in CSV_COLUMNS["access"]] for r in data]
    assert table[1:] == expected
    assert data[0]["approvals"][0]["reason"] == reasons[0]  # JSON keeps values as they are


def test_csv_of_the_actions_view_and_of_nothing(year: tuple[AccessRepo, Trail]) -> None:
    repo, _ = year
    result = audit(repo.root, "--view", "actions", "--format", "csv", "--grantee", "dave",
                   "--since", "2026-11-22", "--target", "orders-prod")
    table = csv_rows(result.stdout)
    assert table[0] == CSV_COLUMNS["actions"]
    assert [(r[0], r[5], r[8]) for r in table[1:]] == [
        ("2026-11-22T23:30:00Z", "create", "ok"), ("2026-11-23T03:35:00Z", "revoke", "failed"),
        ("2026-11-23T03:40:00Z", "revoke", "ok")]
    empty = audit(repo.root, "--format", "csv", "--grantee", "nobody")
    assert empty.exit_code == 0 and csv_rows(empty.stdout) == [CSV_COLUMNS["access"]]


def test_a_held_login_is_one_access_period(tmp_path: Path) -> None:
    """A login kept (locked out) because its objects would go to a superuser is revoked again
    by every run until it can be dropped: one period, ended by the first revoke."""
    trail, hold = Trail(), "its objects in database orders would go to the superuser postgres"
    day = t("2026-03-02T09:00:00Z")
    for n, (who, drops) in enumerate([("kim", True), ("lee", False)]):
        g = trail.grant(who, "orders-prod", "readonly", day - TICK, day + timedelta(hours=8))
        login = login_of("orders-prod", who, "readonly")
        trail.at(day + n * TICK, Step(create(g)), g)
        for k in range(3):
            trail.at(g.expires + (k + n) * TICK, Step(revoke("orders-prod", login, "expired",
                                                             [g], hold=hold)), g)
        if drops:
            trail.at(g.expires + 3 * TICK, Step(revoke("orders-prod", login, "expired", [g])), g)
    again = trail.grant("lee", "orders-prod", "readonly", day + timedelta(days=1) - TICK,
                        day + timedelta(days=1, hours=2))
    lee = login_of("orders-prod", "lee", "readonly")
    trail.at(day + timedelta(days=1), Step(update([again])), again)  # the held login, re-granted
    trail.at(again.expires, Step(revoke("orders-prod", lee, "expired", [again])), again)
    trail.write(tmp_path)

    found = rows(audit(tmp_path, "--format", "json"))
    assert [(p["grantee"], p["granted_at"], p["ended_at"], p["held"]) for p in found] == [
        ("kim", "2026-03-02T09:00:00Z", "2026-03-02T17:00:00Z", None),
        ("lee", "2026-03-02T09:05:00Z", "2026-03-02T17:05:00Z", hold),
        ("lee", "2026-03-03T09:00:00Z", "2026-03-03T11:00:00Z", None),
    ]
    actions = rows(audit(tmp_path, "--view", "actions", "--format", "json"))
    assert sum(a["held"] == hold for a in actions) == 6


def test_invalid_files_are_reported_and_skipped(year: tuple[AccessRepo, Trail],
                                                tmp_path: Path) -> None:
    source, _ = year
    root = tmp_path / "copy"
    shutil.copytree(source.root / "audit", root / "audit")
    day = root / "audit/2026/11/17"
    good = sorted(day.glob("*.json"))[0]
    record = json.loads(good.read_text())
    (day / "20261117T000000Z-truncated.json").write_text('{"schema_version": 1,')
    (day / "20261117T000001Z-latin1.json").write_bytes(b'{"actor": "J\xf6rg"}')
    record_with_secret = {**record, "run_id": "secret1", "password": "hunter2"}
    (day / "20261117T000002Z-secret1.json").write_text(json.dumps(record_with_secret))
    (day / "20261117T235959Z-copy.json").write_text(good.read_text())  # the same run twice
    (day / "20261117T000004Z-list.json").write_text("[]")
    (day / "20261117T000005Z-dir.json").mkdir()
    (day / "20261117T000006Z-deep.json").write_text("[" * 100_000 + "]" * 100_000)
    bad_date = {**record, "run_id": "baddate", "started": "2026-02-30T10:00:00Z"}
    (day / "20261117T000007Z-baddate.json").write_text(json.dumps(bad_date))

    result = audit(root, "--target", "orders-prod", "--since", "2026-11-16",
                   "--until", "2026-11-22", "--format", "json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 5  # the answer is unchanged
    lines = result.stderr.splitlines()
    assert all(line.endswith("; skipped") for line in lines)
    said = {line.split(":")[0].split("-")[-1]: line for line in lines}
    assert sorted(said) == ["baddate.json", "copy.json", "deep.json", "dir.json",
                            "latin1.json", "list.json", "secret1.json", "truncated.json"]
    assert said["truncated.json"].startswith("audit/2026/11/17/20261117T000000Z-truncated.json"
                                             ": warning: not valid JSON (line 1 column 22")
    assert "not valid JSON (not UTF-8)" in said["latin1.json"]
    assert "unknown key 'password'" in said["secret1.json"] and "hunter2" not in result.stderr
    assert f"is already recorded in {good.relative_to(root).as_posix()}" in said["copy.json"]
    assert "must be a mapping" in said["list.json"]
    assert "not a regular file" in said["dir.json"]
    assert "nested too deeply" in said["deep.json"]
    assert "invalid date and time (day is out of range for month)" in said["baddate.json"]


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "last week"], "--since: 'last week' is not an ISO date or date and time"),
    (["--until", "2026-02-30"], "--until: '2026-02-30' is not an ISO date"),
    (["--until", "9999-12-31"], "--until: '9999-12-31' is not an ISO date"),
    (["--timezone", "Mars/Olympus"], "--timezone: unknown time zone 'Mars/Olympus'"),
    (["--timezone", "../../etc/passwd"], "--timezone: unknown time zone"),
    (["--since", "2026-11-20", "--until", "2026-11-19"], "--since 2026-11-20 is not before"),
    (["--format", "xlsx"], "Invalid value for '--format'"),
])
def test_bad_options_are_one_line_and_exit_1(tmp_path: Path, args: list[str],
                                             message: str) -> None:
    result = audit(tmp_path, *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("jitgrant: error: ") and message in line, line


def test_utc_needs_no_time_zone_database(year: tuple[AccessRepo, Trail]) -> None:
    repo, _ = year
    zoneinfo.reset_tzpath(to=[])  # a slim container or Windows without tzdata
    zoneinfo.ZoneInfo.clear_cache()
    try:
        found = rows(audit(repo.root, "--target", "orders-prod", "--since", "2026-11-16",
                           "--until", "2026-11-22", "--after-hours", "--format", "json"))
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()
    assert [p["grantee"] for p in found] == ["bob", "henry", "dave"]  # Sat, Sat, Sun night


def test_a_repository_without_audit_records(tmp_path: Path) -> None:
    result = audit(tmp_path, "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    missing = audit(tmp_path / "nowhere")
    assert missing.exit_code == 1 and "no such directory" in missing.stderr
