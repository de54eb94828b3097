"""Thousands of changes on one target fit the server's lock table: they commit in transactions
of TX_ACTIONS actions. (One transaction of 12,700 new roles exhausts a default server's lock
table; here a cluster with a tiny one shows the same with a few hundred.)"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from reconciler.embedded import EmbeddedPostgres
from reconciler.engines import postgres
from tests.conftest import PG15_BIN, PgServer
from tests.helpers import grant, utc
from tests.integration.conftest import World

LOGINS = 400


@pytest.fixture(scope="module")
def small_lock_table() -> Iterator[PgServer]:
    """A cluster whose lock table holds about a hundred locks instead of thousands."""
    if not PG15_BIN.is_dir():
        pytest.skip("no PostgreSQL 15 binaries for a throwaway cluster")
    settings = {"max_locks_per_transaction": "10", "max_connections": "5",
                "max_worker_processes": "1", "autovacuum_max_workers": "1",
                "max_wal_senders": "0"}
    with EmbeddedPostgres(secrets.token_urlsafe(16), PG15_BIN, settings) as local:
        yield PgServer("pg15-small-lock-table", local.uri(), scram=True)


@pytest.fixture
def crowd(small_lock_table: PgServer, tmp_path: Path) -> Iterator[World]:
    """LOGINS people with one grant each, in one commit."""
    world = World(small_lock_table, tmp_path / "repo")
    policy = yaml.safe_load((world.repo.root / "policies/main.yaml").read_text())
    policy["people"].update({f"u{i}": {"email": f"u{i}@example.com"} for i in range(LOGINS)})
    world.repo.write("policies/main.yaml", policy)
    expires = utc(hours=2)
    for i in range(LOGINS):
        world.repo.write(f"grants/db1/u{i}.yaml", grant(grantee=f"u{i}", expires=expires))
    world.repo.commit("a grant each")
    yield world
    world.cleanup()


def logins(world: World) -> int:
    with world.server.conn() as c:
        row = c.execute("SELECT count(*) FROM pg_roles WHERE starts_with(rolname, %s)",
                        [world.prefix]).fetchone()
        return int(row[0]) if row else 0


def test_one_transaction_would_exhaust_it(crowd: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "TX_ACTIONS", 10**6)
    run = crowd.run()
    assert run.failed
    errors = {r.error for r in run.targets[0].results if r.error}
    assert any("max_locks_per_transaction" in e for e in errors), sorted(errors)[:3]


def test_creations_and_revocations_commit_in_parts(crowd: World,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "TX_ACTIONS", 25)
    first = crowd.run()
    assert not first.failed, first.targets[0].results[:3]
    assert logins(crowd) == LOGINS
    assert not crowd.run().has_changes
    expiry = crowd.run(now=utc(hours=3) + timedelta(minutes=1))
    assert not expiry.failed, expiry.targets[0].results[:3]
    assert [a.kind for a in expiry.targets[0].plan.actions] == ["revoke"] * LOGINS  # type: ignore[union-attr]
    assert logins(crowd) == 0
