"""The shell that the GitLab, Kubernetes and systemd templates wrap around `jitgrant apply
--push`, run for real: against a bare repository standing in for the forge (a local path, so
the push credential is not asked for) and the machine's PostgreSQL. What the platform would
provide is set as it would set it: the systemd credentials directory and state directory, the
Kubernetes Secret volume (under a temporary folder instead of /run/secrets), GitLab's detached
checkout and predefined variables. Each run must read its DSN from where the template says,
create the grant's login, and push its audit commit to the origin's main."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from reconciler.scaffold import render_ci
from tests.cli.conftest import JITGRANT_BIN, PG_DSN, Namespace, jitgrant, origin_with_a_grant
from tests.helpers import AccessRepo, git, grant, policy

BIN = str(Path(JITGRANT_BIN).parent)


def base_env(tmp_path: Path) -> dict[str, str]:
    """The machine's environment without any DSN: the script must find it itself."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"PATH": f"{BIN}:{os.environ['PATH']}", "HOME": str(home), "LANG": "C.UTF-8"}


def sh(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], env=env, cwd=cwd, capture_output=True, text=True)


def audit_commits(bare: Path) -> list[str]:
    return git(bare, "log", "--format=%s", "main", "--", "audit/").splitlines()


def context(namespace: Namespace, bare: Path) -> dict[str, Any]:
    return {"version": "0.1.0", "repo_url": str(bare), "jitgrant_bin": JITGRANT_BIN,
            "targets": [{"name": "db1", "dsn_env": namespace.dsn_env}]}


# -- systemd -----------------------------------------------------------------------------------

def systemd_unit(text: str) -> tuple[str, dict[str, str]]:
    """The ExecStart script and the Environment= settings, as systemd would hand them over
    (`$$` -> `$`; specifiers are expanded by the caller)."""
    joined = re.sub(r"\\\n", " ", text)
    env: dict[str, str] = {}
    script = ""
    for line in joined.splitlines():
        if line.startswith("Environment="):
            for word in shlex.split(line.removeprefix("Environment=")):
                key, value = word.split("=", 1)
                env[key] = value
        elif line.startswith("ExecStart="):
            _, _, script = shlex.split(line.removeprefix("ExecStart=").replace("$$", "$"))
    return script, env


def run_systemd(tmp_path: Path, namespace: Namespace, bare: Path
                ) -> Callable[[], subprocess.CompletedProcess[str]]:
    files = render_ci("systemd", context(namespace, bare))
    script, unit_env = systemd_unit(files["deploy/systemd/jitgrant-reconcile.service"])
    credentials, state = tmp_path / "credentials", tmp_path / "state"
    credentials.mkdir()
    (state / "jitgrant").mkdir(parents=True)
    (credentials / "db1-dsn").write_text(PG_DSN + "\n")
    (credentials / "db1-dsn").chmod(0o400)  # as systemd writes a credential
    (credentials / "git-credential").write_text("username=jitgrant\npassword=s3cret-token\n")
    env = {**base_env(tmp_path),
           **{k: v.replace("%d", str(credentials)).replace("%S", str(state))
              for k, v in unit_env.items()},
           "CREDENTIALS_DIRECTORY": str(credentials), "STATE_DIRECTORY": str(state / "jitgrant")}
    # git asks the unit's credential helper, which reads the credential file.
    asked = subprocess.run(["git", "credential", "fill"], env=env, capture_output=True,
                           text=True, input="protocol=https\nhost=git.example.com\n\n")
    assert "password=s3cret-token" in asked.stdout.splitlines(), asked.stderr
    return lambda: sh(script, env, tmp_path)


# -- Kubernetes --------------------------------------------------------------------------------

def run_kubernetes(tmp_path: Path, namespace: Namespace, bare: Path
                   ) -> Callable[[], subprocess.CompletedProcess[str]]:
    files = render_ci("kubernetes", context(namespace, bare))
    cron = next(d for d in yaml.safe_load_all(files["deploy/kubernetes/jitgrant-reconcile.yaml"])
                if d["kind"] == "CronJob")
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    secrets = tmp_path / "secret-volume"  # not "secrets": the secret scan reads those as stores
    (secrets / "jitgrant").mkdir(parents=True)
    (secrets / "jitgrant" / "db1-dsn").write_text(PG_DSN + "\n")
    (secrets / "jitgrant" / "db1-dsn").chmod(0o440)  # the Secret volume's defaultMode
    env = {**base_env(tmp_path), **{e["name"]: e["value"].replace("/run/secrets/", f"{secrets}/")
                                    for e in container["env"]},
           "HOME": str(tmp_path / "home")}

    def run() -> subprocess.CompletedProcess[str]:
        # Each pod: the Secret volume, and a new empty emptyDir, both moved under tmp_path.
        work = tmp_path / f"work-{len(list(tmp_path.glob('work-*')))}"
        work.mkdir()
        script = container["args"][0].replace("/run/secrets/", f"{secrets}/") \
            .replace("/work/access", f"{work}/access")
        return sh(script, env, tmp_path)
    return run


# -- GitLab ------------------------------------------------------------------------------------

def run_gitlab(tmp_path: Path, namespace: Namespace, bare: Path
               ) -> Callable[[], subprocess.CompletedProcess[str]]:
    pipeline = yaml.safe_load(render_ci("gitlab", context(namespace, bare))[".gitlab-ci.yml"])
    script = "set -e\n" + "\n".join(pipeline["reconcile"]["script"])
    env = {**base_env(tmp_path), "CI_SERVER_URL": f"file://{tmp_path}",
           "CI_PROJECT_PATH": "origin", "CI_SERVER_HOST": "gitlab.example.com",
           "CI_DEFAULT_BRANCH": "main", "JITGRANT_PUSH_TOKEN": "s3cret-token",
           namespace.dsn_env: PG_DSN}  # a CI/CD variable reaches the job as itself

    def run() -> subprocess.CompletedProcess[str]:
        # The runner's checkout: a fresh clone at the pipeline's commit, detached.
        checkout = tmp_path / f"build-{len(list(tmp_path.glob('build-*')))}"
        subprocess.run(["git", "clone", "-q", str(bare), str(checkout)], check=True)
        git(checkout, "checkout", "-q", "--detach")
        proc = sh(script, env, checkout)
        asked = subprocess.run(["git", "credential", "fill"], env=env, cwd=checkout,
                               capture_output=True, text=True,
                               input="protocol=https\nhost=gitlab.example.com\n\n")
        assert "password=s3cret-token" in asked.stdout.splitlines(), asked.stderr
        return proc
    return run


RUNNERS = {"systemd": run_systemd, "kubernetes": run_kubernetes, "gitlab": run_gitlab}


def check_runs(kind: str, tmp_path: Path, namespace: Namespace) -> None:
    bare = origin_with_a_grant(tmp_path, namespace)
    run = RUNNERS[kind](tmp_path, namespace, bare)
    first = run()
    assert first.returncode == 0, first.stdout + first.stderr
    assert "(committed and pushed)" in first.stdout
    login = namespace.role(namespace.login())
    assert login is not None and login["rolcanlogin"]
    assert len(audit_commits(bare)) == 1
    # The next run (systemd: the kept checkout, pulled) finds everything in sync.
    second = run()
    assert second.returncode == 0, second.stdout + second.stderr
    assert len(audit_commits(bare)) == 1
    assert PG_DSN not in first.stdout + first.stderr + second.stdout + second.stderr


def test_the_systemd_service_script_reconciles_and_pushes(tmp_path: Path,
                                                          namespace: Namespace) -> None:
    check_runs("systemd", tmp_path, namespace)


def test_the_kubernetes_cronjob_script_reconciles_and_pushes(tmp_path: Path,
                                                             namespace: Namespace) -> None:
    check_runs("kubernetes", tmp_path, namespace)


def test_the_gitlab_reconcile_job_reconciles_and_pushes_from_a_detached_checkout(
        tmp_path: Path, namespace: Namespace) -> None:
    check_runs("gitlab", tmp_path, namespace)


def test_the_gitlab_validate_job_fetches_the_target_branch_and_writes_the_plan(
        tmp_path: Path) -> None:
    """A merge-request pipeline: the runner fetched the merge request's branch only, detached,
    and the job has no DSN; the plan artifact names the requested grant. CODEOWNERS is where
    GitLab reads it, and `jitgrant codeowners` keeps that file up to date."""
    seed = AccessRepo(tmp_path / "seed")
    seed.write("policies/main.yaml", policy())
    seed.write(".gitlab/CODEOWNERS", "")
    assert jitgrant("codeowners", "--repo", str(seed.root)).stdout == \
        "wrote .gitlab/CODEOWNERS\n"
    assert not (seed.root / ".github").exists()
    seed.commit("policy")
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    git(seed.root, "push", "-q", str(bare), "main")
    git(seed.root, "checkout", "-q", "-b", "alice/grant")
    seed.write("grants/db1/alice.yaml", grant())
    seed.commit("alice asks")
    git(seed.root, "push", "-q", str(bare), "alice/grant")
    checkout = tmp_path / "build"
    subprocess.run(["git", "clone", "-q", "--single-branch", "--branch", "alice/grant",
                    str(bare), str(checkout)], check=True)
    git(checkout, "checkout", "-q", "--detach")
    pipeline = yaml.safe_load(render_ci("gitlab", {"version": "0.1.0", "targets": []})[
        ".gitlab-ci.yml"])
    job = pipeline["validate"]
    env = {**base_env(tmp_path), "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
           "BASE_REF": job["variables"]["BASE_REF"].replace(
               "$CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main")}
    proc = sh("set -e\n" + "\n".join(job["script"]), env, checkout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plan = (checkout / job["artifacts"]["paths"][0]).read_text()
    assert "alice" in plan and "db1" in plan
