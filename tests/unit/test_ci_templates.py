"""The reconcile-job files for GitLab, Kubernetes and systemd, and jitgrant's Containerfile:
each checked by the tool of its own platform where one runs here (check-jsonschema with GitLab's
CI schema, kubernetes-validate with Kubernetes' API schemas, `systemd-analyze verify`), and for
the properties that matter whatever the schema allows (one run at a time, no secret in the
file, non-root, hardening)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler import __version__
from reconciler.scaffold import CI_KINDS, render_ci
from reconciler.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "reconciler" / "templates" / "ci"
TARGETS = [{"name": "orders-prod", "dsn_env": "ORDERS_PROD_DSN"},
           {"name": "billing.eu", "dsn_env": "BILLING_EU_DSN"}]
CONTEXT: dict[str, Any] = {"version": __version__, "targets": TARGETS}
KINDS = [name for name, kind in CI_KINDS.items() if kind.files]  # rendered by citemplates


def tool(name: str) -> str:
    """A command of the test extra, from this venv's bin/ whether or not it is activated."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: pip install -e '.[test]' brings it")
    return found


def written(tmp_path: Path, kind: str, **extra: Any) -> dict[str, Path]:
    out = {}
    for rel, text in render_ci(kind, {**CONTEXT, **extra}).items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        out[rel] = path
    return out


def run(*cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)


def sh_syntax_ok(script: str) -> None:
    proc = run("sh", "-n", "-c", script)
    assert proc.returncode == 0, proc.stderr


# -- the registry ------------------------------------------------------------------------------

def test_every_template_file_is_rendered_by_its_kind() -> None:
    """GitHub's folder is written whole by scaffold; the others' files are named in CI_KINDS,
    and every kind prints its next steps."""
    on_disk = {str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*.j2")
               if not p.relative_to(TEMPLATES).parts[0] == "github"}
    listed = {f"{kind}/{name}" for kind in KINDS for name, _ in CI_KINDS[kind].files}
    steps = {f"{kind}/next-steps.txt.j2" for kind in KINDS}
    assert on_disk == listed | steps
    assert all((TEMPLATES / kind / "next-steps.txt.j2").is_file() for kind in CI_KINDS)


def test_an_unknown_kind_is_refused_in_one_line() -> None:
    with pytest.raises(UserError, match=r"--ci 'jenkins': one of github, gitlab, kubernetes, "
                                        r"systemd$"):
        render_ci("jenkins", CONTEXT)


@pytest.mark.parametrize("target", [{"name": "db1; rm -rf /", "dsn_env": "X"},
                                    {"name": "db1", "dsn_env": "X$(id)"},
                                    {"name": "../etc", "dsn_env": "X"}])
def test_names_that_could_break_out_of_a_script_or_path_are_refused(target: dict[str, str]
                                                                     ) -> None:
    for kind in KINDS:
        with pytest.raises(UserError, match="cannot be written into a CI file"):
            render_ci(kind, {**CONTEXT, "targets": [target]})


def test_targets_may_be_objects_with_the_same_fields() -> None:
    class Target:
        name, dsn_env = "orders-prod", "ORDERS_PROD_DSN"

    assert render_ci("systemd", {**CONTEXT, "targets": [Target()]}) == \
        render_ci("systemd", {**CONTEXT, "targets": TARGETS[:1]})


def test_no_template_holds_a_secret_value() -> None:
    for kind in KINDS:
        for rel, text in render_ci(kind, CONTEXT).items():
            assert not re.search(r"(postgres(ql)?|mysql|mariadb)://", text), rel
            passwords = set(re.findall(r"password=([^\s\"'`)]*)", text))
            assert passwords <= {"REPLACE-ME", "<token>", "<token", "$JITGRANT_PUSH_TOKEN"}, rel


# -- GitLab ------------------------------------------------------------------------------------

@pytest.mark.parametrize("image", [None, "registry.example.com/jitgrant:1"])
def test_the_gitlab_pipeline_passes_gitlabs_ci_schema(tmp_path: Path, image: str | None) -> None:
    path = written(tmp_path, "gitlab", image=image)[".gitlab-ci.yml"]
    proc = run(tool("check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def gitlab() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(render_ci("gitlab", CONTEXT)[".gitlab-ci.yml"])
    return loaded


def test_merge_requests_validate_without_secrets_and_attach_the_plan() -> None:
    pipeline = gitlab()
    job = pipeline["validate"]
    assert [r["if"] for r in job["rules"]] == ['$CI_PIPELINE_SOURCE == "merge_request_event"']
    script = "\n".join(job["script"])
    assert 'jitgrant validate --base "$BASE_REF"' in script
    assert "jitgrant plan --offline --base" in script
    assert job["artifacts"]["paths"] == ["jitgrant-plan.md"]
    assert "environment" not in job and "resource_group" not in job
    assert pipeline["variables"]["GIT_DEPTH"] == "0"
    for target in TARGETS:  # DSNs come from protected variables, never named in a job
        assert f"${target['dsn_env']}" not in yaml.safe_dump(pipeline)


def test_the_reconcile_job_runs_one_at_a_time_on_the_default_branch_only() -> None:
    job = gitlab()["reconcile"]
    assert job["rules"][0] == {"if": "$CI_COMMIT_BRANCH != $CI_DEFAULT_BRANCH", "when": "never"}
    assert job["resource_group"] and job["interruptible"] is False and job["timeout"]
    assert job["script"][-1] == "jitgrant apply --push"
    assert any(line.startswith("git checkout --quiet -B") for line in job["script"])
    assert job["environment"]["name"] == "production-databases"


def test_jitgrant_is_installed_at_the_pinned_version() -> None:
    install = gitlab()[".jitgrant"]["before_script"][-1]
    assert "git+https://github.com/jitgrant/jitgrant@v${JITGRANT_VERSION}" in install
    assert gitlab()["variables"]["JITGRANT_VERSION"] == __version__
    with_image = yaml.safe_load(render_ci("gitlab", {**CONTEXT, "image": "img:1"})[
        ".gitlab-ci.yml"])
    assert with_image[".jitgrant"] == {"image": "img:1"}


def test_the_gitlab_scripts_are_valid_shell() -> None:
    pipeline = gitlab()
    for job in (".jitgrant", "validate", "reconcile"):
        for key in ("before_script", "script"):
            for step in pipeline[job].get(key, []):
                sh_syntax_ok(step)


# -- Kubernetes --------------------------------------------------------------------------------

def test_the_kubernetes_manifests_pass_strict_api_validation(tmp_path: Path) -> None:
    paths = [str(p) for p in written(tmp_path, "kubernetes").values()]
    proc = run(tool("kubernetes-validate"), "--strict", "--quiet", *paths)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def kubernetes() -> dict[str, dict[str, Any]]:
    files = render_ci("kubernetes", CONTEXT)
    docs = [d for text in files.values() for d in yaml.safe_load_all(text)]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def test_the_cronjob_runs_every_5_minutes_one_at_a_time_with_deadlines() -> None:
    cron = kubernetes()["CronJob/jitgrant-reconcile"]["spec"]
    assert cron["schedule"] == "*/5 * * * *"
    assert cron["concurrencyPolicy"] == "Forbid"
    assert 0 < cron["startingDeadlineSeconds"] < 300
    assert cron["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0
    assert cron["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def pod() -> dict[str, Any]:
    spec: dict[str, Any] = \
        kubernetes()["CronJob/jitgrant-reconcile"]["spec"]["jobTemplate"]["spec"]["template"]
    return dict(spec["spec"])


def test_the_pod_runs_as_non_root_on_a_read_only_filesystem() -> None:
    spec = pod()
    context = spec["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False,
                                            "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert "emptyDir" in volumes[mounts["/work"]["name"]]
    assert spec["automountServiceAccountToken"] is False


def test_dsns_are_read_only_files_jitgrant_reads_itself() -> None:
    """One key <target>-dsn per target in the credentials directory (reconciler/dsn.py): no
    DSN goes through the shell or into a variable."""
    spec = pod()
    (container,) = spec["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "dsns")
    assert mount["readOnly"] is True
    secret = next(v for v in spec["volumes"] if v["name"] == "dsns")["secret"]
    # Group-readable only (the pod reads as fsGroup), never by others: what dsn.py accepts.
    assert secret["defaultMode"] == 0o440 and spec["securityContext"]["fsGroup"] == 10001
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["CREDENTIALS_DIRECTORY"] == mount["mountPath"]
    script = container["args"][0]
    for target in TARGETS:
        assert target["dsn_env"] not in script and target["name"] not in script
    assert "envFrom" not in container
    assert all("valueFrom" not in e for e in container["env"])
    assert script.rstrip().endswith("exec jitgrant apply --push")
    sh_syntax_ok(script)


def test_the_secret_example_holds_placeholders_only() -> None:
    docs = kubernetes()
    dsns = docs["Secret/jitgrant-dsns"]["stringData"]
    assert sorted(dsns) == sorted(f"{t['name']}-dsn" for t in TARGETS)
    assert all(value.startswith("REPLACE-ME") for value in dsns.values())
    assert "password=REPLACE-ME" in docs["Secret/jitgrant-git"]["stringData"]["credential"]


# -- systemd -----------------------------------------------------------------------------------

def unit(text: str) -> dict[str, list[str]]:
    """key -> values, continuation lines joined, as systemd reads them."""
    values: dict[str, list[str]] = {}
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


def systemd() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    files = render_ci("systemd", CONTEXT)
    return (unit(files["deploy/systemd/jitgrant-reconcile.service"]),
            unit(files["deploy/systemd/jitgrant-reconcile.timer"]))


def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    paths = written(tmp_path, "systemd")
    # ExecStart is /bin/sh, which exists here; verify needs no running systemd.
    proc = run(analyze, "verify", "--man=no", *(f"./{p.name}" for p in paths.values()),
               cwd=tmp_path / "deploy" / "systemd")
    # verify only warns about an unknown or misspelt setting: any output is a finding.
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_the_service_is_a_hardened_oneshot_with_its_dsns_as_credentials() -> None:
    service, _ = systemd()
    for key, value in {"Type": "oneshot", "DynamicUser": "yes", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
                       "StateDirectory": "jitgrant", "CapabilityBoundingSet": ""}.items():
        assert service[key] == [value], key
    credentials = service["LoadCredential"]
    for target in TARGETS:
        assert f"{target['name']}-dsn:/etc/jitgrant/{target['name']}.dsn" in credentials


def test_the_service_leaves_the_dsns_to_jitgrant() -> None:
    """jitgrant reads $CREDENTIALS_DIRECTORY/<target>-dsn itself (reconciler/dsn.py): no DSN
    goes through the shell or into a variable."""
    service, _ = systemd()
    (exec_start,) = service["ExecStart"]
    shell, flag, script = shlex.split(exec_start.replace("$$", "$"))
    assert (shell, flag) == ("/bin/sh", "-c")
    for target in TARGETS:
        assert target["dsn_env"] not in script and f"{target['name']}-dsn" not in script
    assert "CREDENTIALS_DIRECTORY" not in script
    assert script.rstrip().endswith("apply --push")
    sh_syntax_ok(script)
    assert "$" not in exec_start.replace("$$", "")  # nothing left for systemd to expand


def test_the_timer_starts_the_service_every_5_minutes_and_catches_up() -> None:
    _, timer = systemd()
    assert timer["OnCalendar"] == ["*:0/5"]
    assert timer["Persistent"] == ["true"]
    assert timer["Unit"] == ["jitgrant-reconcile.service"]


# -- the Containerfile -------------------------------------------------------------------------

def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (ROOT / "Containerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines
            if line and not line.startswith("#")]


def test_the_image_runs_jitgrant_as_a_non_root_user() -> None:
    steps = instructions()
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM"):]
    users = [arg for op, arg in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert users[-1].split(":")[0].isdigit()  # numeric: runAsNonRoot can check it
    assert [arg for op, arg in final if op == "ENTRYPOINT"] == ['["jitgrant"]']


def test_the_image_has_git_and_no_database_clients_on_a_pinned_base() -> None:
    steps = instructions()
    bases = [arg.split()[0] for op, arg in steps if op == "FROM"]
    assert all(":" in b and not b.endswith(":latest") for b in bases)
    installs = " ".join(arg for op, arg in steps if op == "RUN" and "apt-get install" in arg)
    assert re.search(r"\bgit\b", installs)
    assert not re.search(r"postgresql-client|mysql-client|mariadb-client|\bpsql\b", installs)
