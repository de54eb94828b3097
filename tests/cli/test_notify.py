"""`--notify URL` on apply: the outcome, counts per target, posted to a local stand-in for a
Slack-compatible webhook (tests/webhook_stub.py, an http.server that records each POST),
against the real PostgreSQL. Never a DSN, a password, a verifier or the webhook's own path."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from reconciler.credentials import new_password, scram_sha256_verifier
from tests.cli.conftest import PG_DSN, Namespace, jitgrant
from tests.helpers import AccessRepo, grant, utc
from tests.webhook_stub import SECRET_PATH, webhook


def dsn_with_password() -> tuple[str, str]:
    """The test server's DSN with a password in it (trust auth ignores it), and the password."""
    parts = urlsplit(PG_DSN)
    if parts.password:
        return PG_DSN, parts.password
    secret = "dsnSECRETpw42"
    netloc = f"{parts.username or 'root'}:{secret}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc)), secret


def test_apply_posts_counts_per_target_and_no_secret(pg_repo: AccessRepo,
                                                      namespace: Namespace) -> None:
    password = new_password()
    verifier = scram_sha256_verifier(password)
    pg_repo.write("grants/db1/alice.yaml", grant(verifier=verifier, expires=utc(hours=2)))
    pg_repo.commit("grant")
    dsn, dsn_password = dsn_with_password()
    env = {namespace.dsn_env: dsn, "GITHUB_TOKEN": "ghs_notifyTOKENsecret"}
    with webhook() as hook:
        first = jitgrant("apply", "--repo", str(pg_repo.root), "--notify", hook.url, env=env)
        assert first.exit_code == 0, first.output
        again = jitgrant("apply", "--repo", str(pg_repo.root), "--notify", hook.url, env=env)
        assert again.exit_code == 0, again.output
    [post] = hook.posts  # the second run changed nothing: nothing posted
    assert post["path"] == SECRET_PATH and post["headers"]["Content-Type"] == "application/json"
    text = post["body"]["text"]
    assert text.startswith("jitgrant apply ") and ": ok" in text
    assert "• db1: ok (1 created)" in text
    for secret in (password, verifier, verifier.split("$")[2], dsn_password, dsn,
                   "ghs_notifyTOKENsecret"):
        assert secret not in post["raw"]


def test_a_webhook_that_cannot_be_reached_is_one_warning(pg_repo: AccessRepo,
                                                         namespace: Namespace) -> None:
    pg_repo.write("grants/db1/alice.yaml", grant(expires=utc(hours=2)))
    pg_repo.commit("grant")
    with webhook() as hook:
        url = hook.url
    result = jitgrant("apply", "--repo", str(pg_repo.root), "--notify", url, env=namespace.env)
    assert result.exit_code == 0, result.output  # never a failure of apply
    [warning] = [line for line in result.stderr.splitlines() if "warning" in line]
    assert "127.0.0.1 could not be reached" in warning and SECRET_PATH not in warning
