"""One benchmark run for N grants on one MySQL/MariaDB target: apply against the plain
`mariadb` client sending the same statements, for creation and for revocation.

MySQL DDL commits on its own, statement by statement, so unlike psql's `-1` the client floor
cannot be one transaction: both sides pay one commit per statement."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from . import mysql_server as server
from . import repo as access
from .steps import Bench, BenchError, Space, Step

STEPS = (
    Step("generate", "generate repository",
         "policies + N grant files (N people, each with a mysql_native_password hash) as one "
         "commit (`git fast-import`) and its checkout; set-up only"),
    Step("apply_first", "first apply",
         "`read_snapshot` + `reconcile(execute=True)` + `audit.persist` (write + git commit): "
         "N accounts created"),
    Step("apply_first.snapshot", "- read_snapshot", "part of the first apply"),
    Step("apply_first.reconcile", "- reconcile", "part of the first apply: inspect, diff, "
         "render, execute"),
    Step("apply_first.audit", "- audit.persist", "part of the first apply"),
    Step("client", "client floor (create)",
         "the first apply's statements, after dropping the accounts, through "
         "`mariadb --batch < file`: the client alone; DDL autocommits, so no transaction"),
    Step("apply_noop", "second apply (no-op)",
         "the same again with nothing to do: no audit record"),
    Step("apply_noop.snapshot", "- read_snapshot", "part of the no-op apply"),
    Step("expiry", "mass revocation (apply)",
         "apply with `now` past every expiry: N revocations + audit commit"),
    Step("expiry.snapshot", "- read_snapshot", "part of the mass revocation"),
    Step("expiry.reconcile", "- reconcile", "part of the mass revocation: inspect, diff, "
         "render, execute"),
    Step("expiry.audit", "- audit.persist", "part of the mass revocation"),
    Step("client_revoke", "client floor (revoke)",
         "the mass revocation's statements (ACCOUNT LOCK, KILL CONNECTION <id>, DROP USER), "
         "after recreating the accounts, through `mariadb --batch < file`"),
)


@dataclass
class MysqlBench(Bench):
    """Runs the steps for one N against one MySQL/MariaDB server."""

    profile_prefix = "mysql-"
    sql_dir: Path = field(init=False)  # where the client's statement files go

    def _namespace(self) -> AbstractContextManager[Space]:
        return server.Namespace(self.dsn)

    def _settle(self) -> None:
        """InnoDB purges its dead rows by itself: nothing to vacuum."""

    def _steps(self, ns: Space, root: Path) -> None:
        self.sql_dir = root.parent  # the run's temporary folder, removed with the repository
        now = datetime.now(timezone.utc)
        repo = self._time("generate", lambda: access.build(
            root, self.grants, ns.prefix, ns.group, now, engine="mysql"))
        create, _ = self._first_apply(repo, ns, now)
        if "apply_first" in self.result.failures:
            raise BenchError(f"first apply: {self.result.failures['apply_first']}")
        self._noop_apply(repo, now)
        self._client_create(repo, ns, create, now)
        revoke = self._revocation(repo, ns)
        self._client_revoke(ns, create, revoke)

    def _client_create(self, repo: access.AccessRepo, ns: Space, create: list[str],
                       now: datetime) -> None:
        ns.drop_logins()
        path = self._file("create", create)
        self._time("client", lambda: server.client(self.dsn, path), profile=False)
        self._rebuilt(repo, now, "client floor")

    def _revocation(self, repo: access.AccessRepo, ns: Space) -> list[str]:
        after = repo.expires + timedelta(minutes=1)
        run = self._time("expiry", lambda: self._apply(repo, after, "expiry"))
        self._expect(run, "mass revocation", "revoke", executed=True)
        left = ns.logins()
        if left:
            raise BenchError(f"mass revocation: {len(left)} accounts left, e.g. {left[0]}")
        statements = run.targets[0].statements
        self.result.revocations = len(statements)
        return [s.sql for s in statements]

    def _client_revoke(self, ns: Space, create: list[str], revoke: list[str]) -> None:
        server.client(self.dsn, self._file("create", create))  # the accounts again, untimed
        if len(ns.logins()) != self.grants:
            raise BenchError(f"client floor (revoke): {len(ns.logins())} accounts to revoke")
        path = self._file("revoke", revoke)
        self._time("client_revoke", lambda: server.client(self.dsn, path), profile=False)
        left = ns.logins()
        if left:
            raise BenchError(f"client floor (revoke): {len(left)} accounts left, e.g. {left[0]}")

    def _file(self, name: str, statements: list[str]) -> Path:
        path = self.sql_dir / f"{name}.sql"
        server.write_statements(path, statements)
        return path
