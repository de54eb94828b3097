"""Hostile managed logins and the session trail (issue #15): text a login chooses for its own
sessions (application name, program name) reaches the audit record and `jitgrant audit`; a
login that opens many sessions must neither blow up the record nor escape its revocation."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import psycopg
import pytest

from reconciler import sessions
from reconciler.credentials import new_password, scram_sha256_verifier
from reconciler.model import SESSION_CAP
from tests.conftest import PgServer
from tests.helpers import utc
from tests.integration.conftest import World
from tests.integration.test_sessions import apply, audit_rows, record
from tests.cli.conftest import jitgrant

HOSTILE = [
    "=HYPERLINK(\"http://evil.example/\",\"click\")",
    "line one\nline two\r\n\"},{\"login\":\"jit_root\"",
    "+1,2\t@SUM(A1)\u2028\u2029\x00\x1b[31m",
    "x" * 5000,
    "\\\"\\u0000</script><script>alert(1)</script>",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_clean_keeps_a_clients_words_one_line_and_short(text: str) -> None:
    cleaned = sessions.clean(text)
    assert cleaned is not None and len(cleaned) <= sessions.TEXT_LIMIT
    assert cleaned.isprintable()  # no newline, carriage return, NUL, escape or separator
    assert json.loads(json.dumps(cleaned)) == cleaned


def test_hostile_application_names_break_no_record_table_or_csv(world: World) -> None:
    """The login sets its application_name to text made to break JSON, CSV, a terminal
    table or HTML, at connect time and again inside its session."""
    password = new_password()
    world.add_grant(verifier=scram_sha256_verifier(password))
    apply(world)
    dsn = world.server.login_dsn(world.login(), password)
    opened = [psycopg.connect(dsn, autocommit=True) for _ in HOSTILE[:3]]
    try:
        for conn, text in zip(opened, HOSTILE, strict=False):
            # (PostgreSQL takes no NUL from a client at all)
            conn.execute("SELECT set_config('application_name', %s, false)",
                         [text.replace("\x00", "")])
        held = record(world.repo.root, apply(world))
        assert len(held["sessions"]) == 3
        for entry in held["sessions"]:
            assert entry["application"] is None or entry["application"].isprintable()
        last = record(world.repo.root, apply(world, now=utc(hours=3)))
    finally:
        for conn in opened:
            conn.close()
    [revoke] = last["actions"]
    assert revoke["sessions_ended"] == 3 and len(revoke["ended_sessions"]) == 3
    periods = audit_rows(world.repo.root)
    assert len(periods) == 1 and periods[0]["sessions_seen"] == 3
    actions = audit_rows(world.repo.root, "--view", "actions")
    assert len(actions[-1]["ended_sessions"]) == 3
    for args, rows in ((["--format", "csv"], 2), (["--format", "csv", "--view", "actions"], 3),
                       ([], 2)):
        result = jitgrant("audit", "--repo", str(world.repo.root), *args)
        assert result.exit_code == 0 and result.stderr == ""
        if "csv" in args:
            parsed = list(csv.reader(io.StringIO(result.stdout, newline="")))
            assert len(parsed) == rows
            assert all(not cell.startswith(("=", "+", "@")) for row in parsed[1:]
                       for cell in row)
        else:
            assert len(result.stdout.splitlines()) == rows


def test_many_sessions_are_capped_in_the_record_and_all_ended(pg18: PgServer,
                                                               tmp_path: Path) -> None:
    """A login with no connection limit opens more sessions than the record lists (60 here,
    on the embedded server's 100 connections): SESSION_CAP are listed, every one counted,
    and the revocation ends them all."""
    world = World(pg18, tmp_path / "repo")
    many = SESSION_CAP + 10
    try:
        password = new_password()
        # readwrite has no connection_limit in the test policy
        world.add_grant(access="readwrite", verifier=scram_sha256_verifier(password))
        apply(world)
        login = world.login(access="readwrite")
        dsn = world.server.login_dsn(login, password)
        opened = [psycopg.connect(dsn, autocommit=True) for _ in range(many)]
        try:
            held = record(world.repo.root, apply(world))
            assert len(held["sessions"]) == SESSION_CAP
            [usage] = held["usage"]
            assert usage["sessions_open"] == many
            last = record(world.repo.root, apply(world, now=utc(hours=3)))
        finally:
            for conn in opened:
                conn.close()
        [revoke] = last["actions"]
        assert revoke["status"] == "ok" and revoke["sessions_ended"] == many
        assert len(revoke["ended_sessions"]) == SESSION_CAP
        assert world.role(login) is None
    finally:
        world.cleanup()
