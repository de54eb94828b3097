"""The MySQL/MariaDB figures as markdown, in a section of docs/benchmarks.md of their own
(between their own markers, so the PostgreSQL section is left as it is)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pymysql

from . import mysql_server
from .mysql_steps import STEPS
from .report import (LIMIT_RATIO, PEAK_RSS, Count, Machine, Ratio, figures, generated_by,
                     machine, targets, timing, write_doc)
from .steps import Result

START = "<!-- bench-mysql:start -->"
END = "<!-- bench-mysql:end -->"
COMMAND = "python -m bench --engine mysql"

# What the section says above its markers, written into the doc when they are missing.
INTRO = """## MySQL / MariaDB

The same questions on one `mysql` target (MariaDB here): the first `apply` of N grants against
the same statements sent by the plain `mariadb` client, and the mass revocation against the
client sending the revocation statements. The goal is the PostgreSQL one, within 2x of the
client for both.

    python -m bench --engine mysql --grants 2000 --repeat 3

`--dsn URI` or `JITGRANT_BENCH_MYSQL_DSN` picks the server and an account that may create and
drop users and roles (`mysql://root@127.0.0.1:3306/test` by default). A run creates its
accounts under a random prefix (`bXXXX_`) plus one MariaDB role that the access level names,
and drops all of them at the end, also when it fails or gets SIGTERM. Every grant carries a
`mysql_native_password` hash, as mysql grants must; the target has no `expiry_backstop`, so no
events are made. MySQL DDL commits on its own, statement by statement: the client floor cannot
be one transaction as psql's is, and both sides pay a commit per statement. The floor is
`mariadb --no-defaults --batch < file`, timed around the whole command (client start-up
included, as for psql). `--profile DIR` writes `DIR/mysql-<N>-<step>.pstats`.

"""

COUNTS = (
    Count("SQL statements (create)", lambda r: r.statements,
          "sent by the first apply (and by the client)"),
    Count("SQL statements (revoke)", lambda r: r.revocations,
          "sent by the mass revocation (and by the client)"),
    PEAK_RSS,
)

RATIOS = (
    Ratio("first apply / client floor (create)", "<= 2x",
          lambda s: s["apply_first"] / s["client"], LIMIT_RATIO, "x"),
    Ratio("its reconcile part / client floor (create)", "(engine only)",
          lambda s: s["apply_first.reconcile"] / s["client"], None, "x"),
    Ratio("mass revocation / client floor (revoke)", "<= 2x",
          lambda s: s["expiry"] / s["client_revoke"], LIMIT_RATIO, "x"),
    Ratio("its reconcile part / client floor (revoke)", "(engine only)",
          lambda s: s["expiry.reconcile"] / s["client_revoke"], None, "x"),
)


def describe_machine(dsn: str) -> Machine:
    driver = f"PyMySQL {pymysql.__version__}, {mysql_server.client_version()}"
    return machine(mysql_server.describe(dsn), driver)


def section(results: Sequence[Result], box: Machine, when: datetime | None = None) -> str:
    shape = ("Every grant carries a `mysql_native_password` hash; each account is one "
             "CREATE USER ... ACCOUNT LOCK, GRANT role, SET DEFAULT ROLE and ACCOUNT UNLOCK.")
    parts = [generated_by(when, COMMAND), timing(results) + shape,
             figures(results, STEPS, COUNTS), targets(results, RATIOS, "goal"), box.markdown()]
    return "\n\n".join(parts)


def write(path: Path, generated: str) -> None:
    write_doc(path, generated, START, END, INTRO)
