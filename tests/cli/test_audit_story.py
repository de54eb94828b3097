"""`jitgrant audit --grant FILE`: one grant's whole story from the audit records alone (written
by the real audit.record() and given the #15 contract's fields by hand: tests/report_trail.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tests.audit_runs import (Step, approved_grant, create, login_of, make_run, revoke,
                              write_record)
from tests.cli.conftest import jitgrant
from tests.helpers import AccessRepo
from tests.report_trail import (ALICE, ALICE_FILE, BOB_FILE, ERIN_FILE, FRANK_FILE, HOSTILE_APP,
                                MALLORY_FILE, record, t, write_trail)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> AccessRepo:
    repo = AccessRepo(tmp_path_factory.mktemp("story") / "repo")
    write_trail(repo.root)
    repo.commit("audit records [skip ci]")
    return repo


def story(repo: AccessRepo, *args: str) -> Result:
    return jitgrant("audit", "--repo", str(repo.root), "--grant", *args)


def data(repo: AccessRepo, file: str, *args: str) -> dict[str, Any]:
    result = story(repo, file, "--format", "json", *args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def test_the_whole_story_of_a_grant_in_json(repo: AccessRepo) -> None:
    """Pull request, author, approvers, merge, created, sessions seen, repaired, revoked and
    why, the session the revoke ended with its start, where the objects went."""
    found = data(repo, ALICE_FILE)
    assert found["logins"] == [{"target": "orders-prod", "login": ALICE, "grantee": "alice",
                                "access": "readonly"}]
    first, second = found["requests"]  # the file as merged in #12, then as rewritten in #20
    assert (first["pull_request"], second["pull_request"]) == (12, 20)
    assert first["pull_request_url"] == "https://github.com/acme/access/pull/12"
    assert first["pull_request_author"] == "alice-gh"
    assert first["approved_by"] == ["dave-gh"]  # zed-gh only commented
    assert second["approved_by"] == ["dave-gh", "erin-gh"]
    assert first["merged_by"] == "carol-gh" and first["merged_at"] == "2026-11-16T09:00:00Z"
    assert first["reason"] == "INC-12 stuck orders" and first["ticket"] == "INC-12"

    one, two = found["periods"]
    assert (one["granted_at"], one["ended_at"], one["ended_cause"]) == (
        "2026-11-16T09:05:00Z", "2026-11-16T12:05:00Z", "expired")
    assert [(e["time"], e["action"], e["cause"], e["statements"]) for e in one["events"]] == [
        ("2026-11-16T09:05:00Z", "create", "granted", 3),
        ("2026-11-16T10:00:00Z", "update", "drift", 3),
        ("2026-11-16T12:05:00Z", "revoke", "expired", 3)]
    assert one["sessions"] == {"count": 1, "first_used": "2026-11-16T09:20:00Z",
                               "last_seen": "2026-11-16T12:05:00Z", "clients": ["10.0.0.5"],
                               "used": True}
    [seen] = one["sessions_seen"]
    assert (seen["id"], seen["started"], seen["first_sampled"], seen["last_sampled"],
            seen["last_active"]) == ("4242", "2026-11-16T09:20:00Z", "2026-11-16T09:30:00Z",
                                     "2026-11-16T12:05:00Z", "2026-11-16T09:58:00Z")
    [gone] = one["sessions_ended"]
    assert (gone["id"], gone["started"], gone["ended_at"]) == (
        "4242", "2026-11-16T09:20:00Z", "2026-11-16T12:05:00Z")
    assert [u["calls"] for u in one["usage"]] == [5, 17]
    [owned] = one["events"][2]["owned_objects"]
    assert owned["database"] == "orders" and owned["reassigned_to"] == "orders_owner"

    # The second period has its own session, and not the first one's.
    assert [s["id"] for s in two["sessions_seen"]] == ["5151"]
    assert two["sessions"]["clients"] == ["10.0.0.9"]
    assert found["attempts"] == []


def test_the_story_as_text(repo: AccessRepo) -> None:
    result = story(repo, ALICE_FILE)
    assert result.exit_code == 0, result.output
    text = result.stdout
    for line in [
        "grants/orders-prod/alice.yaml",
        "  alice: readonly on orders-prod (login " + ALICE + ")",
        "Requested in pull request #12  https://github.com/acme/access/pull/12",
        "  approved by  dave-gh (code owner, 2026-11-16 08:55Z)",
        "  merged       2026-11-16 09:00Z by carol-gh",
        "Access 2026-11-16 09:05Z until 2026-11-16 12:05Z, expired: readonly on orders-prod",
        "  2026-11-16 09:05Z  created    3 statement(s); expires 2026-11-16 12:00Z  (run a1)",
        "  2026-11-16 10:00Z  repaired   changed expiry, password; 3 statement(s)",
        "  2026-11-16 12:05Z  revoked    expired; 3 statement(s); 1 session(s) ended  (run a4)",
        "  used         1 session(s), first 2026-11-16 09:20Z, last seen 2026-11-16 12:05Z; "
        "clients 10.0.0.5",
        "  session ended 4242  started 2026-11-16 09:20Z from 10.0.0.5, psql",
        "  counters     17 call(s), 1 connection(s) in all (at 2026-11-16 10:00Z)",
        "  objects      in orders, to orders_owner:",
    ]:
        assert any(got.startswith(line) for got in text.splitlines()), line


def test_times_in_the_time_zone(repo: AccessRepo) -> None:
    result = story(repo, ALICE_FILE, "--timezone", "Europe/Berlin")
    assert "  2026-11-16 10:05+0100  created" in result.stdout


def test_a_removed_grant_ends_with_the_pull_request_that_removed_it(repo: AccessRepo) -> None:
    """A record from before the contract: nothing of approvals or sessions is claimed."""
    found = data(repo, BOB_FILE)
    [period] = found["periods"]
    assert period["ended_cause"] == "removed"
    assert period["ended_by"]["pull_request"] == 14
    assert period["sessions"]["used"] is None  # no record of the period sampled sessions
    assert found["requests"][0]["approved_by"] == []
    text = story(repo, BOB_FILE).stdout
    assert "  ended by     pull request #14, commit eeeeeeeeee by Carol (removed " \
           "grants/orders-prod/bob.yaml)" in text
    assert "  approved by  - (not recorded" in text
    assert "  used         not known" in text


def test_sampled_and_never_used(repo: AccessRepo) -> None:
    [period] = data(repo, ERIN_FILE)["periods"]
    assert period["sessions"] == {"count": 0, "first_used": None, "last_seen": None,
                                  "clients": [], "used": False}
    assert "never seen used" in story(repo, ERIN_FILE).stdout


def test_a_failed_create_is_an_attempt_outside_any_period(repo: AccessRepo) -> None:
    found = data(repo, FRANK_FILE)
    assert found["periods"] == []
    [attempt] = found["attempts"]
    assert (attempt["action"], attempt["status"]) == ("create", "failed")
    text = story(repo, FRANK_FILE).stdout
    assert "  frank: readonly on orders-prod" in text
    assert "  2026-11-20 09:05Z  create FAILED permission denied to create role" in text


@pytest.mark.parametrize("given", ["./grants/orders-prod/alice.yaml",
                                   "grants/../grants/orders-prod/alice.yaml", "ABSOLUTE"])
def test_the_file_as_a_path_inside_the_repository(repo: AccessRepo, given: str) -> None:
    if given == "ABSOLUTE":
        given = str(repo.root / ALICE_FILE)
    assert data(repo, given)["grant"] == ALICE_FILE


@pytest.mark.parametrize("given, message", [
    ("grants/orders-prod/nobody.yaml",
     "grants/orders-prod/nobody.yaml: no audit record names this grant"),
    ("../elsewhere/grants/orders-prod/alice.yaml", "not a file inside the repository"),
    ("/tmp/grants/orders-prod/alice.yaml", "not inside the repository"),
])
def test_a_grant_the_trail_does_not_name_is_one_line_and_exit_1(repo: AccessRepo, given: str,
                                                                  message: str) -> None:
    result = story(repo, given)
    assert result.exit_code == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert message in line


@pytest.mark.parametrize("args, message", [
    (["--format", "csv"], "--format csv is not available"),
    (["--format", "html"], "--format html is not available"),
    (["--since", "2026-11-01"], "takes no --since"),
    (["--grantee", "alice"], "takes no --since"),
])
def test_options_that_would_cut_the_story_short(repo: AccessRepo, args: list[str],
                                                message: str) -> None:
    result = story(repo, ALICE_FILE, *args)
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert message in line


def test_hostile_values_stay_on_one_line(repo: AccessRepo) -> None:
    """A ticket and an application name with markup, a client with a line separator: the text
    keeps each on its line, the JSON carries them as they are."""
    result = story(repo, MALLORY_FILE)
    assert result.exit_code == 0, result.output
    assert "\u2028" not in result.stdout
    assert all(line.startswith(("  ", "grants/", "Requested", "Access")) or line == ""
               for line in result.stdout.splitlines())
    found = data(repo, MALLORY_FILE)
    assert found["periods"][0]["sessions_seen"][0]["application"] == HOSTILE_APP


def test_sessions_outside_the_grants_periods_are_not_its_own(tmp_path: Path) -> None:
    """Sessions belong to a login: one sampled before the grant's login was made (an earlier
    grant of the same login, another file) is not told in this grant's story."""
    repo = AccessRepo(tmp_path / "repo")
    write_trail(repo.root)
    other = approved_grant("grants/orders-prod/alice-old.yaml", "alice", "orders-prod",
                           "readonly", t("2026-11-15T12:00:00Z"), "old", 9,
                           t("2026-11-15T09:00:00Z"))
    rel = write_record(repo.root, make_run(t("2026-11-15T09:05:00Z"), [Step(create(other))],
                                           [other], run_id="old1"))
    path = repo.root / rel
    record = json.loads(path.read_text())
    record["sessions"] = [{"target": "orders-prod", "login": ALICE, "grantee": "alice",
                           "access": "readonly", "id": "99", "started": "2026-11-15T09:06:00Z",
                           "last_active": None, "client": "10.9.9.9", "application": None,
                           "database": None}]
    path.write_text(json.dumps(record))
    write_record(repo.root, make_run(t("2026-11-15T12:05:00Z"), [Step(revoke(
        "orders-prod", ALICE, "expired", [other]))], [other], run_id="old2"))
    found = data(repo, ALICE_FILE)
    assert all(s["id"] != "99" for p in found["periods"] for s in p["sessions_seen"])
    assert "10.9.9.9" not in json.dumps(found)


def test_older_records_and_a_broken_one(tmp_path: Path, repo: AccessRepo) -> None:
    """A record that does not match the schema is skipped with a warning, as `audit` does;
    the story is told from the others."""
    copy = tmp_path / "copy"
    shutil.copytree(repo.root, copy)
    broken = copy / "audit" / "2026" / "11" / "16" / "broken.json"
    broken.write_text('{"schema_version": 1}')
    result = jitgrant("audit", "--repo", str(copy), "--grant", ALICE_FILE)
    assert result.exit_code == 0
    assert "broken.json: warning: does not match" in result.stderr
    assert "Requested in pull request #12" in result.stdout


def test_the_story_to_a_file(repo: AccessRepo, tmp_path: Path) -> None:
    out = tmp_path / "story.json"
    result = story(repo, ALICE_FILE, "--format", "json", "--output", str(out))
    assert result.exit_code == 0 and result.stdout == ""
    assert json.loads(out.read_text()) == data(repo, ALICE_FILE)


def test_counters_alone_tell_it_was_used(tmp_path: Path) -> None:
    """No session seen by any sample, but the connection counter grew between two samples
    (MySQL/MariaDB performance_schema): used, though not when."""
    repo = AccessRepo(tmp_path / "repo")
    g = approved_grant("grants/billing-mysql/ivan.yaml", "ivan", "billing-mysql", "readonly",
                       t("2026-11-16T12:00:00Z"), "close", 3, t("2026-11-16T09:00:00Z"))
    login = login_of("billing-mysql", "ivan", "readonly")
    counter = [{"target": "billing-mysql", "login": login, "calls": None,
                "connections_total": 4}]
    record(repo.root, "2026-11-16T09:05:00Z", [Step(create(g))], [g], "i1",
           lambda d: d.update(sessions=[], sampled=["billing-mysql"]))
    record(repo.root, "2026-11-16T10:00:00Z", [], [g], "i2",
           lambda d: d.update(sessions=[], usage=counter))
    [period] = data(repo, "grants/billing-mysql/ivan.yaml")["periods"]
    assert period["sessions"] == {"count": 0, "first_used": None, "last_seen": None,
                                  "clients": [], "used": True}


def test_another_files_period_between_is_not_this_grants(tmp_path: Path) -> None:
    """alice.yaml grants her login on the 16th and the 18th; alice-b.yaml grants the same login
    on the 17th: its actions and sessions belong to neither of alice.yaml's periods."""
    repo = AccessRepo(tmp_path / "repo")
    write_trail(repo.root)
    other = approved_grant("grants/orders-prod/alice-b.yaml", "alice", "orders-prod",
                           "readonly", t("2026-11-17T11:00:00Z"), "other", 17,
                           t("2026-11-17T09:00:00Z"))
    seen = [{"target": "orders-prod", "login": ALICE, "grantee": "alice", "access": "readonly",
             "id": "77", "started": "2026-11-17T10:01:00Z", "last_active": None,
             "client": "10.7.7.7", "application": None, "database": None}]
    record(repo.root, "2026-11-17T10:00:00Z", [Step(create(other))], [other], "b-1")
    record(repo.root, "2026-11-17T10:30:00Z", [], [other], "b-2",
           lambda d: d.update(sessions=seen))
    record(repo.root, "2026-11-17T11:05:00Z", [Step(revoke("orders-prod", ALICE, "expired",
                                                           [other]))], [other], "b-3")
    found = data(repo, ALICE_FILE)
    runs = [e["run_id"] for p in found["periods"] for e in p["events"]]
    assert runs == ["a1", "a3", "a4", "a5", "a7"]
    assert "10.7.7.7" not in json.dumps(found)
    assert [e["run_id"] for p in data(repo, "grants/orders-prod/alice-b.yaml")["periods"]
            for e in p["events"]] == ["b-1", "b-3"]


@pytest.mark.parametrize("file", [ALICE_FILE, BOB_FILE, ERIN_FILE, MALLORY_FILE])
def test_the_story_counts_use_as_audit_does(repo: AccessRepo, file: str) -> None:
    """One counting of sessions (usage.py): each period's use in the story is the use `audit`
    gives the same period."""
    result = jitgrant("audit", "--repo", str(repo.root), "--format", "json")
    rows = {(r["login"], r["granted_at"]): r for r in json.loads(result.stdout)}
    for period in data(repo, file)["periods"]:
        row = rows[(period["login"], period["granted_at"])]
        told = period["sessions"]
        assert (told["used"], told["first_used"], told["last_seen"], told["clients"],
                told["count"]) == (row["used"], row["first_used"], row["last_seen"],
                                   row["clients"], row["sessions_seen"])
