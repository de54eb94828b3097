"""`jitgrant demo`: the whole life of a grant on an embedded PostgreSQL, nothing to configure."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click
import psycopg
import yaml
from psycopg import sql

from . import gitrepo
from .apply import Run, reconcile
from .audit import persist
from .credentials import new_password, scram_sha256_verifier
from .embedded import EmbeddedPostgres, require
from .render import plan_text, problems_text
from .schemas import example_dir
from .snapshot import read_snapshot
from .timeutil import iso

TARGET = "orders-prod"
SHORT_GRANT_SECONDS = 5


def step(title: str) -> None:
    click.echo("")
    click.secho(f"==> {title}", bold=True)


def run_demo(keep: bool = False) -> int:
    require()  # before anything is printed: without the extra, one line says what to install
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="jitgrant-demo-"))
    step("Starting an embedded PostgreSQL with scram-sha-256 password authentication")
    with EmbeddedPostgres(new_password()) as server:
        dsn = server.uri("orders")
        _prepare_server(server)
        click.echo(f"    PostgreSQL {_version(dsn)} on 127.0.0.1:{server.port}, database orders")
        for note in server.notes:
            click.echo(f"    {note}")
        click.echo(f"    files: {server.root} (the server) and {workdir} (the access "
                   "repository), " + ("the server's removed at the end" if keep
                                     else "both removed at the end"))
        repo = _access_repository(workdir / "access")
        env = {"ORDERS_PROD_DSN": dsn}
        code = _story(repo, env, server)
    step(f"Done in {time.monotonic() - began:.1f}s")
    if keep:
        click.echo(f"    the access repository is kept in {workdir / 'access'}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return code


def _prepare_server(server: EmbeddedPostgres) -> None:
    with psycopg.connect(server.uri(), autocommit=True) as c:
        c.execute("CREATE ROLE orders_owner NOLOGIN")
        c.execute("CREATE DATABASE orders OWNER orders_owner")
        for role in ("app_readonly", "app_readwrite"):
            c.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    with psycopg.connect(server.uri("orders"), autocommit=True) as c:
        c.execute("CREATE TABLE orders (id int PRIMARY KEY, state text)")
        c.execute("INSERT INTO orders VALUES (1, 'stuck'), (2, 'shipped'), (3, 'stuck')")
        c.execute("ALTER TABLE orders OWNER TO orders_owner")
        c.execute("GRANT SELECT ON orders TO app_readonly")


def _version(dsn: str) -> str:
    with psycopg.connect(dsn) as c:
        row = c.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"


def _access_repository(root: Path) -> Path:
    """The project's example policies/, in a fresh git repository."""
    step("Building an access repository from the example policies/")
    shutil.copytree(example_dir() / "policies", root / "policies")
    (root / "grants" / TARGET).mkdir(parents=True)
    repo = gitrepo.init_repo(root)
    gitrepo.commit_all(repo, "policies: targets, access levels, people", "Security Team",
                       "security@example.com")
    for path in sorted((root / "policies").glob("*.yaml")):
        click.echo(f"    {path.relative_to(root)}")
    return root


def _request(root: Path, grantee: str, expires: datetime, reason: str,
             pr: int) -> tuple[str, str]:
    """What `jitgrant request` does on the requester's machine: password stays local,
    only its verifier goes into the grant file."""
    password = new_password()
    template = sorted((example_dir() / "grants" / TARGET).glob("*.yaml"))[0]
    data: dict[str, Any] = yaml.safe_load(template.read_text())
    data.update(grantee=grantee, expires=iso(expires), reason=reason,
                password_verifier=scram_sha256_verifier(password))
    data.pop("starts", None)
    rel = f"grants/{TARGET}/{grantee}-readonly-{expires:%Y%m%dT%H%M%S}.yaml"
    (root / rel).write_text(yaml.safe_dump(data, sort_keys=False))
    repo = gitrepo.open_repo(root)
    gitrepo.commit_all(repo, f"Grant {grantee} readonly on {TARGET} (#{pr})",
                       grantee.title(), f"{grantee}@example.com")
    return rel, password


def _story(root: Path, env: dict[str, str], server: EmbeddedPostgres) -> int:
    now = datetime.now(timezone.utc)
    step("alice requests read access for 2h; the merged pull request is the approval")
    rel, alice_pw = _request(root, "alice", now + timedelta(hours=2),
                             "INC-1234 investigate stuck orders", pr=101)
    click.echo(f"    {rel} (holds a SCRAM verifier; the password stays on alice's machine)")
    step("jitgrant validate")
    snapshot = read_snapshot(root, None, datetime.now(timezone.utc))
    click.echo(problems_text(snapshot.problems) or "    all files valid")
    step("jitgrant plan")
    click.echo(_indent(plan_text(_run(root, env, execute=False))))
    step("jitgrant apply")
    if not _apply(root, env):
        return 1
    step("alice connects with her password")
    click.echo(f"    {_query(server, 'jit_alice_readonly', alice_pw)}")
    step(f"bob gets a grant that expires in {SHORT_GRANT_SECONDS}s")
    bob_expires = datetime.now(timezone.utc) + timedelta(seconds=SHORT_GRANT_SECONDS)
    _, bob_pw = _request(root, "bob", bob_expires, "INC-1235 one quick look", pr=102)
    if not _apply(root, env):
        return 1
    click.echo(f"    bob: {_query(server, 'jit_bob_readonly', bob_pw)}")
    session = psycopg.connect(server.dsn(user="jit_bob_readonly", password=bob_pw,
                                         dbname="orders"), autocommit=True)
    click.echo("    bob keeps a psql session open")
    time.sleep(max(0.0, (bob_expires - datetime.now(timezone.utc)).total_seconds()) + 0.5)
    step("bob's grant has expired: the server refuses his password, before any apply")
    click.echo(f"    bob, new login: {_query(server, 'jit_bob_readonly', bob_pw)}")
    click.echo(f"    bob, open session: {_session_alive(session)} (VALID UNTIL only stops "
               "new logins)")
    step("jitgrant apply (the scheduled run) revokes bob's login and ends his session")
    if not _apply(root, env):
        return 1
    click.echo(f"    bob, open session: {_session_alive(session)}")
    session.close()
    step("The audit record, committed to the access repository")
    _show_audit(root)
    return 0


def _run(root: Path, env: dict[str, str], execute: bool) -> Run:
    now = datetime.now(timezone.utc)
    return reconcile(read_snapshot(root, "HEAD", now), now, execute=execute, env=env)


def _apply(root: Path, env: dict[str, str]) -> bool:
    run = _run(root, env, execute=True)
    click.echo(_indent(plan_text(run, show_sql=False)))
    rel = persist(root, run)
    if rel:
        click.echo(f"    audit record committed: {rel}")
    return not run.failed


def _query(server: EmbeddedPostgres, login: str, password: str) -> str:
    try:
        with psycopg.connect(server.dsn(user=login, password=password, dbname="orders"),
                             connect_timeout=5) as c:
            row = c.execute("SELECT current_user, count(*) FILTER (WHERE state = 'stuck')"
                            " FROM orders").fetchone()
    except psycopg.OperationalError as exc:
        return "refused: " + " ".join(str(exc).split("FATAL:")[-1].split())
    assert row is not None
    return f"connected as {row[0]}; {row[1]} stuck orders"


def _session_alive(session: psycopg.Connection[Any]) -> str:
    try:
        session.execute("SELECT 1")
    except psycopg.OperationalError:
        return "ended"
    return "still running"


def _show_audit(root: Path) -> None:
    latest = sorted((root / "audit").rglob("*.json"))[-1]
    data = json.loads(latest.read_text())
    click.echo(f"    {latest.relative_to(root)}: run {data['run_id']} of commit "
               f"{str(data['commit'])[:12]} by {data['actor']}")
    for action in data["actions"]:
        grant = (action["grants"] or [{}])[0]
        click.echo(f"    {action['action']} {action['login']} cause={action['cause']} "
                   f"status={action['status']} sessions_ended={action['sessions_ended']} "
                   f"approved in {str(grant.get('commit'))[:12]} by {grant.get('author')}")


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
