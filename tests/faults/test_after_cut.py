"""Issue 12, finding 10: after a cut, the audit record says what really happened to each
action (committed, rolled back, not run, in doubt), and the next `jitgrant apply` compares
the actions left not done with what the server holds, says what it found on its output and
in its own record, and does so once. Real servers, the real command line; the connection is
cut for real (tests/faults/pgstop.py, tests/faults/pause.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PgServer
from tests.faults.apply_proc import start_apply
from tests.faults.conftest import audit_record
from tests.faults.pgstop import Stop, stop_apply
from tests.faults.test_mysql_positions import _stop as my_stop
from tests.faults.test_pg_positions import COMMENTS
from tests.integration.conftest import World
from tests.integration.test_mysql import MyWorld


def _apply(root: Path, env: dict[str, str]) -> tuple[int, str]:
    proc = start_apply(root, env)
    return proc.wait(timeout=120), proc.communicate()[0]


def _said(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if "after the cut of run" in line]


def _rel(output: str) -> str:
    return output.rsplit("audit record: ", 1)[1].split()[0]


def _follows_up(root: Path, env: dict[str, str], cut: dict[str, Any], login: str,
                found: str, now: str | None) -> dict[str, Any]:
    """The next run says what it found of the cut revoke, once; returns its record."""
    code, output = _apply(root, env)
    assert code == 0, output
    then = {"revoke": "revoking now", None: "nothing more to do"}[now]
    assert _said(output) == [f"after the cut of run {cut['run_id']} ({_rel_of(root, cut)}): "
                             f"revoke of {login} {found}: {then}"], output
    record = audit_record(root, output)
    [follow] = record["follow_ups"]
    assert follow == {"target": "db1", "login": login, "action": "revoke",
                      "record": _rel_of(root, cut), "run_id": cut["run_id"],
                      "cut": follow["cut"], "status": follow["status"], "found": found,
                      "now": now}
    code, output = _apply(root, env)  # said once: the next run is quiet and records nothing
    assert (code, _said(output), "audit record:" in output) == (0, [], False), output
    return record


def _rel_of(root: Path, record: dict[str, Any]) -> str:
    [path] = (root / "audit").rglob(f"*-{record['run_id']}.json")
    return path.relative_to(root).as_posix()


def _remove_grant(repo: Any) -> None:
    repo.remove("grants/db1/alice.yaml")
    repo.commit("remove alice's grant")


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> PgServer:
    """Overrides tests/conftest.py's: each test names its server."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


@pytest.mark.parametrize("pg", ["pg18"], indirect=True)  # cut as test_pg_positions cuts
def test_pg_a_revoke_cut_before_its_commit_is_rolled_back_and_the_next_run_says_so(
        world: World) -> None:
    """Stopped at DROP ROLE (a lock the test holds), the connection cut: the phases before
    committed (the login is locked out and stripped), the last one was rolled back. The
    record says so; the next run revokes and says the earlier revoke had not taken effect."""
    world.add_grant()
    login = world.login()
    assert not world.run().failed
    _remove_grant(world.repo)
    stopped = stop_apply(world.server, Stop("DROP ROLE", (COMMENTS,)), "cut",
                         lambda: start_apply(world.repo.root, world.env))
    assert stopped.code == 1, stopped.output
    cut = audit_record(world.repo.root, stopped.output)
    [action] = cut["actions"]
    main = [s for s in action["sql"] if s.startswith("DROP ROLE")]
    assert (action["status"], action.get("cut")) == ("failed", "rolled_back"), action
    assert action["statements"] == len(action["sql"]) - len(main) > 0, action
    assert f"{action['statements']} of its {len(action['sql'])} statements had committed" \
        in action["error"], action
    assert action["error"].endswith("before the COMMIT of 1 of its statements, which the "
                                    "server rolled back"), action
    role = world.role(login)
    assert role is not None and not role["rolcanlogin"] and role["member_of"] == []
    record = _follows_up(world.repo.root, world.env, cut, login, "had not taken effect",
                         "revoke")
    assert [(a["action"], a["login"], a["status"]) for a in record["actions"]] == [
        ("revoke", login, "ok")]
    assert world.role(login) is None


@pytest.mark.parametrize("pg", ["pg15", "pg18"], indirect=True)
def test_pg_a_revoke_whose_commit_was_lost_but_took_effect(world: World) -> None:
    """A COMMIT whose acknowledgement is lost cannot be staged with a lock (the server holds
    none at that point), so the record of a real revoke is rewritten as apply writes it then:
    unknown, in doubt. The next run finds the login gone, says the revoke had taken effect,
    and does nothing more."""
    world.add_grant()
    login = world.login()
    assert not world.run().failed
    _remove_grant(world.repo)
    code, output = _apply(world.repo.root, world.env)
    assert code == 0, output
    path = world.repo.root / _rel(output)
    cut = json.loads(path.read_text())
    [action] = cut["actions"]
    action.update(status="unknown", cut="in_doubt", statements=len(action["sql"]) - 1,
                  error="unknown: the connection was lost (connection lost: …) during the "
                        "COMMIT of its last 1 statement(s)")
    path.write_text(json.dumps(cut))
    assert world.role(login) is None
    record = _follows_up(world.repo.root, world.env, cut, login, "had taken effect", None)
    assert record["actions"] == [] and record["targets"][0]["actions"] == 0


@pytest.mark.mysql
def test_mariadb_a_revoke_cut_at_its_last_statement_is_in_doubt_and_followed_up(
        my: MyWorld) -> None:
    """Each MySQL statement commits alone: cut while DROP USER was due, the record says the
    revoke is unknown (in doubt: apply cannot tell whether the server ran it); the next run
    finds the account still there, says so, and revokes it."""
    my.add_grant()
    login = my.login()
    assert not my.run().failed
    _remove_grant(my.repo)
    shown = [s.shown for s in my.run(execute=False).targets[0].statements]
    assert shown[-1].startswith("DROP USER"), shown  # no session open: no KILL
    stopped = my_stop(my, len(shown), "cut")
    cut = audit_record(my.repo.root, stopped.output)
    [action] = cut["actions"]
    assert (action["status"], action["cut"]) == ("unknown", "in_doubt"), action
    assert my.account(login) is not None
    _follows_up(my.repo.root, my.env, cut, login, "had not taken effect", "revoke")
    assert my.account(login) is None
