"""The request workflow `init` writes (workflow_dispatch: GitHub's "Run workflow" form, which
the GitHub app in Slack or Teams can also start), and the commands it runs, run here as it
runs them: the form's inputs in JITGRANT_REQUEST_* variables, the actor in
JITGRANT_GITHUB_ACTOR, a real bare remote, and `gh` replaced by tests/ghstub_request.py (a
local stand-in that records its argv and answers `gh pr create` as gh does). GitHub itself,
the App token and the chat apps are not exercised here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from reconciler.cli import main
from tests import ghstub_request
from tests.helpers import AccessRepo, git
from tests.sealing_world import sealed_policy, ssh_key

JITGRANT_BIN = str(Path(sys.executable).with_name("jitgrant"))
PINNED_ACTION = "jitgrant/jitgrant@0123456789abcdef0123456789abcdef01234567"
INPUTS = {"target", "access", "duration", "reason", "ticket", "grantee"}


@pytest.fixture
def workflow(tmp_path: Path) -> dict[str, Any]:
    root = tmp_path / "init"
    done = CliRunner().invoke(main, ["init", str(root), "--action", PINNED_ACTION],
                              catch_exceptions=False)
    assert done.exit_code == 0, done.output
    data = yaml.safe_load((root / ".github/workflows/request.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_the_form_and_its_least_privilege(workflow: dict[str, Any]) -> None:
    dispatch = workflow[True]["workflow_dispatch"]  # YAML 1.1 reads the key `on` as true
    assert set(dispatch["inputs"]) == INPUTS
    assert {n for n, i in dispatch["inputs"].items() if i["required"]} == \
        {"target", "access", "duration", "reason"}
    assert workflow["permissions"] == {}
    job = workflow["jobs"]["request"]
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert job["environment"] == "jitgrant-request"
    step = job["steps"][-1]
    assert step["with"]["command"] == "request --sealed --push --open-pr"
    assert step["env"]["JITGRANT_GITHUB_ACTOR"] == "${{ github.actor }}"


def test_inputs_reach_the_commands_only_through_env(workflow: dict[str, Any]) -> None:
    """`${{ inputs.* }}` pasted into a `run:` script is script injection: a reason of
    `$(curl ...)` would run. Every input goes through `env:`, and no script names one."""
    steps = workflow["jobs"]["request"]["steps"]
    for step in steps:
        assert "${{" not in step.get("run", ""), step
        for key, value in step.get("with", {}).items():
            assert "inputs." not in str(value), (key, value)
    passed = {m for step in steps for value in step.get("env", {}).values()
              for m in re.findall(r"\$\{\{ inputs\.(\w+) \}\}", str(value))}
    assert passed == INPUTS


class Remote:
    """A bare origin, a clone whose policy gives alice and bob SSH keys, and the gh stand-in."""

    def __init__(self, tmp_path: Path, **target: Any) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.origin = tmp_path / "origin.git"
        git(tmp_path, "init", "-q", "--bare", "-b", "main", str(self.origin))
        self.repo = AccessRepo(tmp_path / "clone")
        git(self.repo.root, "remote", "add", "origin", str(self.origin))
        _, alice = ssh_key(tmp_path / "keys", "alice")
        _, bob = ssh_key(tmp_path / "keys", "bob")
        self.repo.write("policies/main.yaml", sealed_policy({"alice": [alice], "bob": [bob]},
                                                            **target))
        self.repo.commit("policy")
        git(self.repo.root, "push", "-q", "origin", "main")
        self.log = tmp_path / "gh.log"
        self.config = tmp_path / "config"
        self.env = ghstub_request.install(tmp_path / "bin", self.log)

    def run_workflow(self, actor: str, **inputs: str) -> subprocess.CompletedProcess[str]:
        """What the workflow's last step runs, with the form's inputs as it passes them."""
        form = {"target": "db1", "access": "readonly", "duration": "1h",
                "reason": "INC-7 from the form", "ticket": "", "grantee": "", **inputs}
        names = {"target": "TARGET", "access": "ACCESS", "duration": "FOR",
                 "reason": "REASON", "ticket": "TICKET", "grantee": "AS"}
        env = {**os.environ, **self.env, "JITGRANT_CONFIG_DIR": str(self.config),
               "JITGRANT_GITHUB_ACTOR": actor, "GH_TOKEN": "stub-token",
               **{f"JITGRANT_REQUEST_{names[k]}": v for k, v in form.items()}}
        return subprocess.run([JITGRANT_BIN, "request", "--sealed", "--push", "--open-pr",
                               "--repo", str(self.repo.root)], capture_output=True, text=True,
                              env=env, timeout=120)

    def branches(self) -> list[str]:
        out = git(self.origin, "for-each-ref", "--format=%(refname:short)", "refs/heads/access/")
        return out.split()


def test_the_workflow_opens_a_sealed_request_for_its_actor(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    hostile = "INC-7 $(touch pwned) `id` ; \"quoted\" ${{ github.token }}"
    done = remote.run_workflow("Alice-GH", reason=hostile, ticket="INC-7")
    assert done.returncode == 0, done.stderr
    [branch] = remote.branches()
    assert branch.startswith("access/alice/db1-readonly-")
    files = git(remote.origin, "ls-tree", "-r", "--name-only", branch, "grants/").split()
    [grant_file] = files
    grant = yaml.safe_load(git(remote.origin, "show", f"{branch}:{grant_file}"))
    assert grant["grantee"] == "alice" and grant["delivery"] == "sealed"
    assert grant["reason"] == hostile and grant["ticket"] == "INC-7"
    assert "password_verifier" not in grant
    assert not (remote.config / "secrets").exists()  # no password made on the runner
    assert not (remote.repo.root / "pwned").exists() and not Path("pwned").exists()
    [call] = ghstub_request.calls(remote.log)
    assert call[:6] == ["pr", "create", "--head", branch, "--base", "main"]
    assert "pull request: https://github.com/acme/access/pull/1" in done.stdout


def test_an_actor_nobody_maps_to_is_refused(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    done = remote.run_workflow("mallory-gh")
    assert done.returncode == 1
    assert done.stderr.strip() == ("jitgrant: error: the GitHub login 'mallory-gh' is nobody's "
                                   "people.<handle>.github in policies/: no request is made "
                                   "for it")
    assert remote.branches() == [] and ghstub_request.calls(remote.log) == []


def test_the_actor_asks_for_someone_else_only_when_allowed(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    refused = remote.run_workflow("bob-gh", grantee="alice")
    assert refused.returncode == 1 and "bob may not ask for alice" in refused.stderr
    assert remote.branches() == []
    allowed = Remote(tmp_path / "allowed", requesters_for_others=["@bob-gh"])
    done = allowed.run_workflow("bob-gh", grantee="alice")
    assert done.returncode == 0, done.stderr
    [branch] = allowed.branches()
    assert branch.startswith("access/alice/")
    text = git(allowed.origin, "show", f"{branch}:grants/db1/"
               + git(allowed.origin, "ls-tree", "--name-only", f"{branch}:grants/db1/"))
    assert "grantee: alice" in text and "delivery: sealed" in text
    assert "password_verifier" not in text


def test_a_runner_never_makes_a_password(tmp_path: Path) -> None:
    """--github-actor without --sealed would leave the password on the runner: refused."""
    remote = Remote(tmp_path)
    done = CliRunner().invoke(main, ["request", "db1", "readonly", "--for", "1h", "--reason",
                                     "INC-1 x", "--github-actor", "alice-gh", "--repo",
                                     str(remote.repo.root)],
                              env={"JITGRANT_CONFIG_DIR": str(remote.config)})
    assert done.exit_code == 1 and "--github-actor needs --sealed" in done.output
    assert not (remote.config / "secrets").exists()


APP = "my-jitgrant[bot]"


def validate_as(remote: Remote, rev: str, *extra: str) -> Any:
    return CliRunner().invoke(main, ["validate", "--repo", str(remote.repo.root), "--base",
                                     "main", "--rev", rev, "--pr-author", APP, *extra],
                              catch_exceptions=False)


def test_validate_lets_the_request_app_s_sealed_grants_through(tmp_path: Path) -> None:
    """The pull request's author is the App, not the actor: with --request-app (the validate
    workflow's JITGRANT_REQUEST_APP) its sealed grants pass the author check; without it, or
    for a grant carrying a verifier, the check refuses as before."""
    remote = Remote(tmp_path)
    assert remote.run_workflow("alice-gh").returncode == 0
    [branch] = remote.branches()
    git(remote.repo.root, "fetch", "-q", "origin")
    rev = f"origin/{branch}"
    assert validate_as(remote, rev).exit_code == 1
    assert validate_as(remote, rev, "--request-app", APP).exit_code == 0
    git(remote.repo.root, "checkout", "-q", "-b", "forged", rev)
    path = git(remote.repo.root, "ls-tree", "-r", "--name-only", "HEAD", "grants/")
    text = (remote.repo.root / path).read_text().replace("delivery: sealed\n", "")
    (remote.repo.root / path).write_text(text + 'password_verifier: "*' + "A" * 40 + '"\n')
    remote.repo.commit("a verifier added to the App's pull request")
    refused = validate_as(remote, "forged", "--request-app", APP)
    assert refused.exit_code == 1 and "is not the pull request's author" in refused.output


def test_the_request_workflow_passes_actionlint(tmp_path: Path) -> None:
    from tests.cli.test_init import tool

    actionlint = tool("actionlint")  # skips when it is not installed
    root = tmp_path / "init"
    CliRunner().invoke(main, ["init", str(root), "--action", PINNED_ACTION],
                       catch_exceptions=False)
    proc = subprocess.run([actionlint, str(root / ".github/workflows/request.yml")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_pull_request_s_offline_plan_shows_the_sealed_login(tmp_path: Path) -> None:
    """What the validate workflow's summary runs on the request's pull request: the login is
    planned with a password (masked), made in memory and written nowhere."""
    remote = Remote(tmp_path)
    assert remote.run_workflow("alice-gh").returncode == 0
    [branch] = remote.branches()
    git(remote.repo.root, "fetch", "-q", "origin")
    git(remote.repo.root, "merge", "-q", "--no-ff", "-m", "Merge", f"origin/{branch}")
    planned = CliRunner().invoke(main, ["plan", "--offline", "--base", "main~1", "--repo",
                                        str(remote.repo.root), "--format", "markdown"],
                                 catch_exceptions=False)
    assert planned.exit_code == 2, planned.output
    assert "this change creates 1 login" in planned.output
    assert git(remote.repo.root, "status", "--porcelain") == ""
