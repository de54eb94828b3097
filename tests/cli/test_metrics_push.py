"""`apply --pushgateway`, and the sample alert rules (contrib/prometheus) against the metrics
apply writes."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.metrics import Figures, registry_for
from tests.cli.conftest import Namespace, jitgrant
from tests.helpers import AccessRepo, grant
from tests.http_stub import serving

RULES = Path(__file__).resolve().parents[2] / "contrib" / "prometheus" / "jitgrant.rules.yml"


class _Gateway(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def _record(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append((self.command, self.path, body))
        self.send_response(200)
        self.end_headers()

    do_PUT = do_POST = _record

    def log_message(self, *args: object) -> None:  # quiet test output
        pass


@pytest.fixture
def gateway() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    """A local stand-in for a Pushgateway: it answers the documented push endpoint
    (PUT/POST /metrics/job/<job>) with 200 and records each request's body."""
    received: list[tuple[str, str, bytes]] = []
    handler = type("Gateway", (_Gateway,), {"received": received})
    with serving(handler) as url:
        yield url, received


def test_apply_pushes_the_runs_metrics(namespace: Namespace, pg_repo: AccessRepo,
                                       gateway: tuple[str, list[tuple[str, str, bytes]]]
                                       ) -> None:
    """The Pushgateway here is the local stand-in of the `gateway` fixture."""
    url, received = gateway
    pg_repo.write("grants/db1/alice.yaml", grant())
    pg_repo.commit("alice")
    result = jitgrant("apply", "--repo", str(pg_repo.root), "--pushgateway", url,
                      env=namespace.env)
    assert result.exit_code == 0, result.output
    [(method, path, body)] = received
    assert (method, path) == ("PUT", "/metrics/job/jitgrant")
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for f in text_string_to_metric_families(body.decode()) for s in f.samples}
    assert found[("jitgrant_actions_total",
                  (("cause", "granted"), ("kind", "create"), ("target", "db1")))] == 1
    assert found[("jitgrant_target_up", (("target", "db1"),))] == 1


def test_an_unreachable_pushgateway_is_one_error_line(namespace: Namespace,
                                                      pg_repo: AccessRepo) -> None:
    result = jitgrant("apply", "--repo", str(pg_repo.root), "--pushgateway",
                      "http://127.0.0.1:1", env=namespace.env)
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("jitgrant: error: --pushgateway http://127.0.0.1:1: cannot push ")


def _written_names() -> set[str]:
    """The metric names a metrics file holds (one target, every family filled)."""
    data = Figures(1.0, 2.0, up={"db1": 1}, last_success={"db1": 1.0},
                   logins={("db1", "active"): 1}, overdue={"db1": 0})
    data.actions[("db1", "create", "granted")] += 1
    data.failures[("db1", "create")] += 1
    text = generate_latest(registry_for(data)).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_the_alert_rules_use_metrics_apply_writes() -> None:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    expressions = {r["alert"]: r["expr"] for r in rules}
    assert set(expressions) == {"JitgrantNoSuccessfulRun", "JitgrantNotRunning",
                                "JitgrantRevocationsOverdue"}
    used = {name for expr in expressions.values() for name in re.findall(r"jitgrant_\w+", expr)}
    assert used and used <= _written_names()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed "
                    "(apt-get install prometheus); the rules' YAML is checked above")
def test_promtool_accepts_the_alert_rules() -> None:
    proc = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
