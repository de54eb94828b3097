"""From `jitgrant init` to a login on a real PostgreSQL, through the steps of the workflows init
wrote, run as the runner runs them: `run:` scripts with bash, the jitgrant action's `command:`
as `jitgrant <command>`, `${{ }}` from a table of this test's values. GitHub itself, the
checkout and the App token are played by local git clones; `gh` by a local stand-in (see
tests/cli/test_auto_approve.py)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.conftest import JITGRANT_BIN, PG_DSN, Namespace, jitgrant
from tests.cli.test_auto_approve import Gh
from tests.cli.test_init import PINNED_ACTION
from tests.helpers import git

EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")
ACTION = PINNED_ACTION.split("@")[0] + "@"


class Runner:
    """Runs one job's steps in a checkout, as a GitHub runner would (no `if:` evaluated)."""

    def __init__(self, tmp_path: Path, context: dict[str, str]) -> None:
        self.tmp = tmp_path
        self.context = context
        self.commands: list[str] = []

    def resolve(self, value: Any) -> str:
        return EXPRESSION.sub(lambda m: self.context[m.group(1)], str(value))

    def job(self, checkout: Path, workflow: Path, name: str) -> None:
        for number, step in enumerate(yaml.safe_load(workflow.read_text())["jobs"][name]
                                      ["steps"]):
            env = {**os.environ, "PATH": f"{Path(JITGRANT_BIN).parent}{os.pathsep}"
                   f"{os.environ['PATH']}",
                   **{k: self.resolve(v) for k, v in step.get("env", {}).items()}}
            if "run" in step:
                self._run(checkout, step, env, number)
            elif step["uses"].startswith(ACTION):
                # The action's own last step (reconciler.github_action), with its inputs.
                inputs = {k: self.resolve(v) for k, v in step["with"].items()}
                self.commands.append(inputs["command"])
                env |= {"JITGRANT_COMMAND": inputs["command"],
                        "JITGRANT_STEP_SUMMARY": inputs.get("step-summary", "false"),
                        "JITGRANT_OK_EXIT_CODES": inputs.get("ok-exit-codes", "0"),
                        "GITHUB_STEP_SUMMARY": str(self.tmp / "summary.md")}
                proc = subprocess.run([str(Path(JITGRANT_BIN).with_name("python")), "-I", "-m",
                                       "reconciler.github_action"], cwd=checkout,
                                      env=env, capture_output=True, text=True)
                assert proc.returncode == 0, (inputs, proc.stdout, proc.stderr)
            # else: checkout, cache, App token: the test's clones stand in for them

    def _run(self, checkout: Path, step: dict[str, Any], env: dict[str, str],
             number: int) -> None:
        output, summary = self.tmp / f"output-{number}", self.tmp / "summary.md"
        output.write_text("")
        env |= {"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                               step["run"]], cwd=checkout, env=env, capture_output=True,
                              text=True)
        assert proc.returncode == 0, (step["run"], proc.stdout, proc.stderr)
        for line in output.read_text().splitlines():
            key, _, value = line.partition("=")
            self.context[f"steps.{step['id']}.outputs.{key}"] = value


def clone(origin: Path, into: Path, *checkout: str) -> Path:
    git(origin.parent, "clone", "-q", str(origin), str(into))
    if checkout:
        git(into, "checkout", "-q", *checkout)
    return into


def make_it_ours(root: Path, ns: Namespace) -> None:
    """What the adopter does in policies/: roles and prefix of this test's namespace on the
    server, and readonly grants approved automatically."""
    access = (root / "policies/access.yaml").read_text()
    access = access.replace("roles: [app_readonly, app_readwrite]", f"roles: [{ns.group}]")
    access = access.replace("roles: [app_readonly]", f"roles: [{ns.group}]")
    access = access.replace("auto_approve: false", "auto_approve: true")
    (root / "policies/access.yaml").write_text(access)
    targets = (root / "policies/targets.yaml").read_text()
    (root / "policies/targets.yaml").write_text(
        targets.replace("role_prefix: jit_", f"role_prefix: {ns.prefix}"))


def test_init_validate_request_check_approve_merge_apply(
        tmp_path: Path, namespace: Namespace, monkeypatch: pytest.MonkeyPatch) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    admin = tmp_path / "admin"
    assert jitgrant("init", str(admin), "--action", PINNED_ACTION).exit_code == 0
    make_it_ours(admin, namespace)
    assert jitgrant("validate", "--repo", str(admin)).exit_code == 0
    git(admin, "add", "-A")
    git(admin, "commit", "-q", "-m", "jitgrant access repository")
    git(admin, "push", "-q", str(origin), "main")
    workflows = admin / ".github/workflows"

    # alice asks, from her own clone, as herself
    alice = clone(origin, tmp_path / "alice")
    git(alice, "config", "user.email", "alice@example.com")
    monkeypatch.delenv("GIT_AUTHOR_EMAIL", raising=False)
    monkeypatch.setenv("JITGRANT_CONFIG_DIR", str(tmp_path / "config"))
    asked = jitgrant("request", "example-db", "readonly", "--for", "2h", "--reason",
                     "INC-7 stuck orders", "--repo", str(alice))
    assert asked.exit_code == 0, asked.stderr
    branch = git(alice, "branch", "--format=%(refname:short)", "--list", "access/*")
    git(alice, "push", "-q", "origin", branch)
    sha = git(alice, "rev-parse", branch)

    # the pull request's check, on the merge commit GitHub makes (refs/pull/N/merge)
    gh = Gh(tmp_path, monkeypatch)
    gh.answer(author="alice-gh", head=sha, teams=["example-org/sre"])
    runner = Runner(tmp_path, {
        "github.event.pull_request.user.login": "alice-gh", "github.repository_owner": "acme",
        "secrets.JITGRANT_READ_ORG_TOKEN": "a-token-for-the-stand-in",
        "vars.JITGRANT_REQUEST_APP": ""})  # no request App: the author check as before
    check = clone(origin, tmp_path / "check", "--detach", "origin/main")
    git(check, "merge", "-q", "--no-ff", "-m", "Merge into main", f"origin/{branch}")
    runner.job(check, workflows / "validate.yml", "check")
    assert runner.context["steps.teams.outputs.teams"] == "example-org/sre "
    assert runner.commands == ["validate --base origin/main --format github",
                               "codeowners --check",
                               "plan --offline --base origin/main --format markdown"]
    assert "alice" in (tmp_path / "summary.md").read_text()

    # auto-approve: the workflow_run job on the pull request's head
    runner.context |= {
        "github.event.workflow_run.head_sha": sha, "github.repository": "acme/access",
        "github.event.workflow_run.pull_requests[0].number": "7",
        "secrets.JITGRANT_APPROVER_TOKEN": "a-token-for-the-stand-in"}
    runner.job(clone(origin, tmp_path / "approve", "--detach", sha),
               workflows / "auto-approve.yml", "approve")
    assert gh.writes()[-1] == ["pr", "merge", "7", "--auto", "--squash",
                               "--match-head-commit", sha]

    # GitHub merges; the reconcile job runs on main
    git(admin, "fetch", "-q", str(origin), branch)
    git(admin, "merge", "-q", "--no-ff", "-m", "Merge pull request #7", f"{sha}")
    git(admin, "push", "-q", str(origin), "main")
    runner.context["secrets.EXAMPLE_DB_DSN"] = PG_DSN
    runner.context["github.run_id"] = "1"
    runner.context["github.token"] = ""  # no forge here: GITHUB_REPOSITORY is not set
    main = clone(origin, tmp_path / "main")
    monkeypatch.setenv("GITHUB_SHA", git(main, "rev-parse", "HEAD"))  # the pushed merge
    runner.job(main, workflows / "reconcile.yml", "apply")
    assert runner.commands[-2:] == ["apply --push", "audit --format html --output report.html"]
    # the run committed an audit record, so it writes the access report the artifact step
    # uploads (not committed: apply pushed before)
    assert runner.context["steps.audited.outputs.changed"] == "true"
    assert '"grantee":"alice"' in (main / "report.html").read_text()
    assert git(main, "status", "--porcelain") == "?? report.html"
    role = namespace.role(namespace.login("alice", "readonly"))
    assert role is not None and role["rolcanlogin"] and namespace.group in role["member_of"]
    # `apply --push` pushed the audit commit: it is main's tip at origin
    assert git(origin, "log", "-1", "--format=%s", "main").endswith("[skip ci]")
    assert git(origin, "ls-tree", "-r", "--name-only", "main", "audit").count(".json") == 1
