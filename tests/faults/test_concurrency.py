"""Eight `jitgrant apply --push` started at once, each in its own clone (as CI runners are),
against the same PostgreSQL and MariaDB targets with a few dozen grants.

What the losers do: a run that finds a target's lock taken skips that target, reconciles the
others, reports `another jitgrant run holds the lock` for it and exits 1. It does not wait:
a run that waited would then apply the commit it read, which may be older than the one the
winner just applied, undoing a grant merged in between (its next run would put it back); the
next scheduled run comes within minutes anyway, and the reconcile workflow already runs one at
a time (`concurrency:`), so overlapping runs are rare and worth seeing."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.credentials import mysql_native_verifier, new_password
from reconciler.engines.mysql import identifier
from reconciler.schemas import validator
from tests.cli.conftest import JITGRANT_BIN, Namespace, namespace  # noqa: F401
from tests.conftest import MysqlServer
from tests.helpers import AccessRepo, git, grant

pytestmark = pytest.mark.mysql

RUNS = 8
PEOPLE = [f"p{n:02d}" for n in range(15)]  # 15 people on 2 targets: 30 logins
LOCK_HELD = "another jitgrant run holds the lock"


class Shared:
    """Targets `my` (MariaDB) and `pg` (PostgreSQL), one namespace each, one group role each
    under the same name; an origin with a grant per person per target."""

    def __init__(self, ns: Namespace, mysql: MysqlServer, root: Path) -> None:
        self.ns, self.mysql = ns, mysql
        self.my_prefix = f"c{secrets.token_hex(3)}_"
        self.my_env = f"JG_CC_{secrets.token_hex(3).upper()}"
        mysql.sql(f"CREATE ROLE {identifier(ns.group)}")
        data = ns.policy()
        data["targets"] = {"pg": data["targets"]["db1"], "my": {
            "engine": "mysql", "dsn_env": self.my_env, "environment": "production",
            "role_prefix": self.my_prefix}}
        data["people"] = {p: {"email": f"{p}@example.com", "groups": ["sre"]} for p in PEOPLE}
        seed = AccessRepo(root / "seed")
        seed.write("policies/main.yaml", data)
        verifier = mysql_native_verifier(new_password())
        for person in PEOPLE:
            seed.write(f"grants/pg/{person}.yaml", grant(grantee=person, target="pg"))
            seed.write(f"grants/my/{person}.yaml", grant(grantee=person, target="my",
                                                         verifier=verifier))
        seed.commit("Merge pull request #1 from team/grants")
        self.origin = root / "origin.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.origin)],
                       check=True)
        git(seed.root, "push", "-q", str(self.origin), "main")

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **self.ns.env, self.my_env: self.mysql.admin_dsn}

    def clone(self, path: Path) -> Path:
        subprocess.run(["git", "clone", "-q", str(self.origin), str(path)], check=True)
        return path

    def cleanup(self) -> None:
        rows = self.mysql.sql("SELECT User, Host FROM mysql.global_priv WHERE LEFT(User, "
                              f"{len(self.my_prefix)}) = '{self.my_prefix}'")
        self.mysql.sql("SELECT 1", *(f"DROP USER IF EXISTS '{u}'@'{h}'" for u, h in rows),
                       f"DROP ROLE IF EXISTS {identifier(self.ns.group)}")


@pytest.fixture
def shared(namespace: Namespace, mysql: MysqlServer,  # noqa: F811
           tmp_path: Path) -> Iterator[Shared]:
    s = Shared(namespace, mysql, tmp_path)
    yield s
    s.cleanup()


def _records(origin: Path) -> list[dict[str, Any]]:
    files = git(origin, "ls-tree", "-r", "--name-only", "main", "--", "audit").split()
    return [json.loads(git(origin, "show", f"main:{f}")) for f in files]


@pytest.mark.parametrize("layout", ["clones", "one-checkout"])
def test_eight_runs_at_once_apply_every_grant_exactly_once(shared: Shared, tmp_path: Path,
                                                           layout: str) -> None:
    """`clones`: CI runners, each with its own checkout. `one-checkout`: cron on one host, runs
    overlapping in the same clone. Regression (one-checkout, about every other time): two runs
    with changes committing at once, one failed on git's index.lock and left its record
    uncommitted, or its push was refused by the other's ref update and it gave up."""
    if layout == "clones":
        clones = [shared.clone(tmp_path / f"ci-{n}") for n in range(RUNS)]
    else:
        clones = [shared.clone(tmp_path / "host")] * RUNS
    procs = [subprocess.Popen([JITGRANT_BIN, "apply", "--push", "--repo", str(clone)],
                              env=shared.env, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for clone in clones]
    outputs = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    print(*(f"{code}: {out}{err}" for code, out, err in outputs), sep="\n")

    written = set()
    for code, stdout, stderr in outputs:
        assert code in (0, 1) and stderr == "", (code, stdout, stderr)
        errors = [line for line in stdout.splitlines() if ": error: " in line]
        assert all(line.endswith(f": error: {LOCK_HELD}") for line in errors), stdout
        assert (code == 1) == bool(errors), stdout
        if "audit record: " in stdout:
            written.add(stdout.rsplit("audit record: ", 1)[1].split()[0])
    assert any(code == 0 or "audit record" in out for code, out, _ in outputs)

    # Every record landed on origin, once, valid; history is linear.
    records = _records(shared.origin)
    files = set(git(shared.origin, "ls-tree", "-r", "--name-only", "main", "--",
                    "audit").split())
    assert files == written and len(records) == len(written)
    for record in records:
        assert list(validator("audit").iter_errors(record)) == []
    assert git(shared.origin, "rev-list", "--min-parents=2", "main") == ""
    subjects = git(shared.origin, "log", "--format=%s", "main").splitlines()
    assert sum(s.endswith("[skip ci]") for s in subjects) == len(records)

    # Each login was created exactly once, by exactly one run; nothing else happened.
    done = [(a["target"], a["login"], a["action"], a["status"])
            for r in records for a in r["actions"]]
    created = Counter((target, login) for target, login, action, _ in done)
    expected = {("pg", shared.ns.login(p)) for p in PEOPLE} | {
        ("my", f"{shared.my_prefix}{p}_readonly") for p in PEOPLE}
    assert set(created) == expected and set(created.values()) == {1}, created
    assert {(action, status) for _, _, action, status in done} == {("create", "ok")}
    for record in records:
        for t in record["targets"]:
            assert t["status"] == "ok" or t["error"] == LOCK_HELD, t

    # A later run finds nothing to do.
    last = shared.clone(tmp_path / "after")
    result = subprocess.run([JITGRANT_BIN, "apply", "--push", "--repo", str(last)],
                            env=shared.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit record" not in result.stdout
    assert sorted(result.stdout.splitlines()) == ["target my (mysql): in sync",
                                                  "target pg (postgres): in sync"]
