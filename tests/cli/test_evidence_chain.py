"""Issue #15 end to end: the evidence chain from a merged pull request to the auditor's views.

A grant merged through a pull request with one approval -> `apply` records the approver ->
the login holds a session across the next apply -> the audit shows it used, with the session's
start -> the grant expires -> `apply` records the session it ended -> `audit --grant`,
`audit --format html` (in a real headless chromium) and `audit --unused` tell that story.
And with `repository.require_approval: 1`, a pull request approved only by its own author
grants nothing.

Real: git (merge commits made with `git merge --no-ff`, their subjects carrying "(#N)" as
GitHub's merge and squash buttons can write them), PostgreSQL (the machine's or the suite's
stand-in, tests/conftest.py; trust authentication, so the password the session gives is not
checked here: tests/integration/test_sessions.py runs the same session on the
password-checking clusters), the session (a psycopg connection held open by the test as the
login), chromium (tests/browser.py). The forge is a local stand-in (tests/forge_stub.py: an
http.server on 127.0.0.1 answering GitHub's documented pull request and reviews endpoints).
The clock `apply` reads is moved forward by replacing reconciler.cli.now_utc; nothing sleeps.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

import reconciler.cli
from reconciler.credentials import new_password, scram_sha256_verifier
from tests.browser import Dom, dump_dom
from tests.cli.conftest import PG_DSN, Namespace, jitgrant
from tests.cli.test_approvals import access_repo, latest_record
from tests.forge_stub import FakeGitHub, fake_github, pull, review
from tests.helpers import AccessRepo, git, grant, stamp, utc

ALICE_FILE = "grants/db1/alice.yaml"
BOB_FILE = "grants/db1/bob.yaml"
Clock = Callable[[timedelta], None]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """`apply` reads the time through reconciler.cli.now_utc: each run gets a second of its own
    (as runs minutes apart do), at least `ahead` past the real time."""
    last = [datetime.now(timezone.utc)]
    ahead = [timedelta(0)]

    def now() -> datetime:
        last[0] = max(datetime.now(timezone.utc) + ahead[0], last[0] + timedelta(seconds=1))
        return last[0]

    def move(by: timedelta) -> None:
        ahead[0] = by

    monkeypatch.setattr(reconciler.cli, "now_utc", now)
    yield move


def merge_pr(repo: AccessRepo, number: int, rel: str, doc: dict[str, Any]) -> str:
    """A branch adding `rel`, merged with a merge commit whose subject ends in "(#N)"."""
    branch = f"pr-{number}"
    git(repo.root, "checkout", "-q", "-b", branch)
    repo.write(rel, doc)
    repo.commit(f"request {rel}")
    git(repo.root, "checkout", "-q", "main")
    git(repo.root, "merge", "-q", "--no-ff", branch, "-m", f"Grant {rel} (#{number})")
    return git(repo.root, "rev-parse", "HEAD")


def serve(forge: FakeGitHub, number: int, author: str, merge: str,
          approvers: list[str]) -> None:
    """Pull request `number`, merged a minute ago as `merge`, approved by `approvers`."""
    forge.pr(number, pull(number, author, merge, merged_by="carol-gh",
                          merged_at=stamp(utc(minutes=-1))),
             [review(login, "APPROVED", submitted_at=stamp(utc(minutes=-2)), review_id=i + 1)
              for i, login in enumerate(approvers)])


def apply(repo: AccessRepo, namespace: Namespace, forge: FakeGitHub) -> Any:
    return jitgrant("apply", "--repo", str(repo.root), env={**namespace.env, **forge.env()})


def session_as(login: str, password: str) -> psycopg.Connection[Any]:
    """A client's session as the login, on the target's database."""
    return psycopg.connect(make_conninfo(PG_DSN, user=login, password=password,
                                         connect_timeout="5"),
                           application_name="orders-report", autocommit=True)


def audit(repo: AccessRepo, *args: str) -> str:
    result = jitgrant("audit", "--repo", str(repo.root), *args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # every record matched the schema
    return result.stdout


def bars(dom: Dom) -> dict[str, tuple[set[str], str]]:
    """The timeline's bars by the person their title names: classes and the whole title."""
    found = {}
    for e in dom.by_class("bar"):
        title = str(e.attrs.get("title"))
        found[title.split(":")[0]] = (e.classes(), title)
    return found


def test_the_evidence_chain_from_approval_to_the_auditors_views(
        tmp_path: Path, namespace: Namespace, clock: Clock) -> None:
    repo = access_repo(tmp_path / "repo", namespace)
    password = new_password()
    m12 = merge_pr(repo, 12, ALICE_FILE, grant(verifier=scram_sha256_verifier(password)))
    m13 = merge_pr(repo, 13, BOB_FILE, grant("bob", verifier=scram_sha256_verifier(
        new_password())))
    alice, bob = namespace.login(), namespace.login("bob")
    with fake_github() as forge:
        serve(forge, 12, "alice-gh", m12, ["dave-gh"])  # neither author nor grantee
        serve(forge, 13, "bob-gh", m13, ["dave-gh"])

        # 1. apply makes both logins and records who approved each
        first = apply(repo, namespace, forge)
        assert first.exit_code == 0, first.stdout + first.stderr
        assert namespace.role(alice) is not None and namespace.role(bob) is not None
        created = latest_record(repo)
        [entry] = [g for a in created["actions"] if a["login"] == alice for g in a["grants"]]
        assert (entry["file"], entry["pull_request"], entry["merge_commit"]) == \
            (ALICE_FILE, 12, m12)
        approval = entry["approval"]
        assert approval["url"] == "https://github.com/acme/access/pull/12"
        assert (approval["lookup"], approval["approvals"], approval["author"]) == \
            ("ok", 1, "alice-gh")
        assert [(r["login"], r["state"], r["code_owner"]) for r in approval["reviews"]] == \
            [("dave-gh", "APPROVED", True)]

        # 2. alice's session is open across the next apply: recorded with its start
        with session_as(alice, password) as session:
            row = session.execute("SELECT pg_backend_pid(), backend_start FROM "
                                  "pg_stat_activity WHERE pid = pg_backend_pid()").fetchone()
            assert row is not None
            pid, started = str(row[0]), stamp(row[1].astimezone(timezone.utc))
            held = apply(repo, namespace, forge)
            assert held.exit_code == 0, held.stdout + held.stderr
            sampled = latest_record(repo)
            assert sampled["actions"] == []
            [seen] = sampled["sessions"]
            assert (seen["login"], seen["id"], seen["started"], seen["application"]) == \
                (alice, pid, started, "orders-report")

            # 3. both grants expire; the revocation ends the session it finds, and says so
            clock(timedelta(hours=3))
            last = apply(repo, namespace, forge)
            assert last.exit_code == 0, last.stdout + last.stderr
        assert namespace.role(alice) is None and namespace.role(bob) is None
        ends = {a["login"]: a for a in latest_record(repo)["actions"]}
        assert (ends[alice]["action"], ends[alice]["cause"]) == ("revoke", "expired")
        assert ends[alice]["sessions_ended"] == 1
        [ended] = ends[alice]["ended_sessions"]
        assert (ended["id"], ended["started"], ended["application"]) == \
            (pid, started, "orders-report")
        assert ends[bob]["ended_sessions"] == []

    # 4. the story of alice's grant: approver, first use, the session ended, why revoked
    story = json.loads(audit(repo, "--grant", ALICE_FILE, "--format", "json"))
    [request] = story["requests"]
    assert (request["pull_request"], request["pull_request_url"], request["approved_by"],
            request["merged_by"]) == (12, approval["url"], ["dave-gh"], "carol-gh")
    [period] = story["periods"]
    assert (period["login"], period["ended_cause"]) == (alice, "expired")
    assert period["sessions"]["used"] is True
    assert period["sessions"]["first_used"] == started
    assert [(s["id"], s["started"]) for s in period["sessions_ended"]] == [(pid, started)]
    assert [e["action"] for e in period["events"]] == ["create", "revoke"]
    text = audit(repo, "--grant", ALICE_FILE).splitlines()
    shown = started[:10] + " " + started[11:16] + "Z"
    for line in ["Requested in pull request #12  https://github.com/acme/access/pull/12",
                 "  approved by  dave-gh (code owner, ",
                 f"  used         1 session(s), first {shown}, ",
                 f"  session ended {pid}  started {shown} from ",
                 "  merged       "]:
        assert any(got.startswith(line) for got in text), (line, text)
    assert any(" revoked    expired; " in got and "1 session(s) ended" in got for got in text)

    # 5. the periods: alice's used since her session's start, bob's never
    periods = {p["login"]: p for p in json.loads(audit(repo, "--format", "json"))}
    assert periods[alice]["used"] is True and periods[alice]["first_used"] == started
    assert periods[alice]["approved_by"] == ["dave-gh"]
    assert periods[bob]["used"] is False and periods[bob]["approved_by"] == ["dave-gh"]
    unused = json.loads(audit(repo, "--unused", "--format", "json"))
    assert [p["login"] for p in unused] == [bob]

    # 6. the page, in a browser: alice's bar names her approver and her first use
    page = tmp_path / "report.html"
    page.write_text(audit(repo, "--format", "html"), encoding="utf-8")
    _, dom = dump_dom(page, "", tmp_path / "profile")
    found = bars(dom)
    assert set(found) == {"alice", "bob"}
    classes, title = found["alice"]
    assert "approved by dave-gh" in title.splitlines()
    assert f"first used {shown}" in title and "unused" not in classes
    assert any(x.startswith("ended ") and x.endswith(" (expired)") for x in title.splitlines())
    assert "unused" in found["bob"][0]
    ticks = [e for e in dom.by_class("tick") if e.tag == "div"]
    assert [e.attrs["title"] for e in ticks] == [f"first used {shown}"]


def test_an_author_approving_their_own_pull_request_grants_nothing(
        tmp_path: Path, namespace: Namespace, clock: Clock) -> None:
    """`repository.require_approval: 1`: bob's pull request approved only by bob-gh, its
    author and grantee, makes no login (and, changing nothing, writes no record). alice's
    grant, approved by dave-gh, is made; her own pull request stretching it, approved only by
    herself, is not granted: the login is revoked, and the audit says why (`unapproved`)."""
    repo = access_repo(tmp_path / "repo", namespace, required=1)
    m14 = merge_pr(repo, 14, BOB_FILE, grant("bob"))
    with fake_github() as forge:
        serve(forge, 14, "bob-gh", m14, ["bob-gh"])
        refused = apply(repo, namespace, forge)
    assert refused.exit_code == 1, refused.stdout + refused.stderr
    assert namespace.role(namespace.login("bob")) is None
    [line] = [x for x in refused.stderr.splitlines() if x.startswith(BOB_FILE)]
    assert line.startswith(f"{BOB_FILE}:1: repository.require_approval: 1: not granted: ")
    assert "pull/14 has 0 approving review(s)" in line
    assert "Traceback" not in refused.stderr
    assert not (repo.root / "audit").exists()  # nothing changed: nothing to record

    alice = namespace.login()
    m15 = merge_pr(repo, 15, ALICE_FILE, grant(expires=utc(hours=2)))
    with fake_github() as forge:
        serve(forge, 14, "bob-gh", m14, ["bob-gh"])
        serve(forge, 15, "alice-gh", m15, ["dave-gh"])
        made = apply(repo, namespace, forge)
        assert made.exit_code == 1 and namespace.role(alice) is not None  # bob still refused
        m16 = merge_pr(repo, 16, ALICE_FILE, grant(expires=utc(hours=6)))
        serve(forge, 16, "alice-gh", m16, ["alice-gh"])
        stretched = apply(repo, namespace, forge)
    assert stretched.exit_code == 1, stretched.stdout + stretched.stderr
    assert namespace.role(alice) is None
    assert f"{ALICE_FILE}:1: repository.require_approval: 1: not granted: " in stretched.stderr
    [action] = latest_record(repo)["actions"]
    assert (action["login"], action["action"], action["cause"]) == (alice, "revoke",
                                                                   "unapproved")
    story = json.loads(audit(repo, "--grant", ALICE_FILE, "--format", "json"))
    assert [r["approved_by"] for r in story["requests"]] == [["dave-gh"], []]
    [period] = story["periods"]
    assert period["ended_cause"] == "unapproved"
    assert any(" revoked    unapproved; " in x
               for x in audit(repo, "--grant", ALICE_FILE).splitlines())
