"""`jitgrant init`: what it writes, that it never overwrites without --force, and that what it
writes passes its own checks, actionlint and zizmor."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler import __version__, release
from reconciler.scaffold import CI_KINDS
from reconciler.schemas import schema_dir
from tests.cli.conftest import jitgrant
from tests.helpers import AccessRepo, git
from tests.report_trail import write_trail
from tests.unit.test_ci_templates import run

SHA = "0123456789abcdef0123456789abcdef01234567"
PINNED_ACTION = f"jitgrant/jitgrant@{SHA}"
WORKFLOWS = ("validate.yml", "reconcile.yml", "auto-approve.yml", "queue.yml")
PINNED_USES = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def init(root: Path, *extra: str):  # type: ignore[no-untyped-def]
    return jitgrant("init", str(root), *extra)


def workflow(root: Path, name: str) -> dict[Any, Any]:
    return yaml.safe_load((root / ".github/workflows" / name).read_text())  # type: ignore[no-any-return]


def tool(name: str) -> str:
    beside = Path(sys.executable).with_name(name)  # the venv's bin/, activated or not
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]' brings it)")
    return found


@pytest.fixture
def written(tmp_path: Path) -> Path:
    root = tmp_path / "access"
    result = init(root, "--action", PINNED_ACTION)
    assert result.exit_code == 0, result.stderr
    return root


def test_init_writes_a_git_repository_that_passes_its_own_checks(written: Path) -> None:
    assert (written / ".git").is_dir()
    for rel in ("policies/targets.yaml", "policies/access.yaml", "policies/people.yaml",
                "grants/README.md", "README.md", ".pre-commit-config.yaml",
                ".github/CODEOWNERS", ".github/dependabot.yml",
                *(f".github/workflows/{w}" for w in WORKFLOWS)):
        assert (written / rel).is_file(), rel
    for schema in schema_dir().glob("*.schema.json"):
        assert (written / "schema" / schema.name).read_bytes() == schema.read_bytes()
    result = jitgrant("validate", "--repo", str(written))
    assert result.exit_code == 0, result.stderr
    assert jitgrant("codeowners", "--repo", str(written), "--check").exit_code == 0


def test_every_example_yaml_names_its_schema(written: Path) -> None:
    for path in sorted(written.rglob("*.y*ml")):
        if ".git" in path.relative_to(written).parts:
            continue
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
    first = (written / "policies/targets.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schema/policy.schema.json"


def test_codeowners_names_only_what_an_access_repository_holds(written: Path) -> None:
    owners = (written / ".github/CODEOWNERS").read_text()
    assert "/reconciler/" not in owners and "/pyproject.toml" not in owners
    for path in ("/policies/", "/schema/", "/.github/"):
        assert re.search(rf"^{re.escape(path)} +@example-org/security$", owners, re.M), path
    assert owners.rstrip().endswith("/grants/example-db/             @example-org/dba")


def test_pre_commit_points_at_the_hooks_of_the_version_that_wrote_it(written: Path) -> None:
    config = yaml.safe_load((written / ".pre-commit-config.yaml").read_text())
    [repo] = config["repos"]
    assert repo == {"repo": "https://github.com/jitgrant/jitgrant", "rev": f"v{__version__}",
                    "hooks": [{"id": "jitgrant-validate"}]}
    hooks = yaml.safe_load((Path(__file__).parents[2] / ".pre-commit-hooks.yaml").read_text())
    assert [h["id"] for h in hooks] == ["jitgrant-validate"]


def test_an_existing_file_is_refused_one_line_each_and_nothing_is_written(
        written: Path) -> None:
    (written / "policies/people.yaml").write_text("people: {}\n")
    (written / "README.md").unlink()
    result = init(written)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert f"{written / 'policies/people.yaml'}: exists already (--force overwrites it)" in lines
    files = [f for f in written.rglob("*") if f.is_file() and ".git" not in f.parts]
    assert len(lines) == len(files) and all(": exists already" in line for line in lines)
    assert not (written / "README.md").exists()  # not even the missing file was written
    assert (written / "policies/people.yaml").read_text() == "people: {}\n"
    result = init(written, "--force", "--action", PINNED_ACTION)
    assert result.exit_code == 0, result.stderr
    assert "alice" in (written / "policies/people.yaml").read_text()
    assert (written / "README.md").is_file()


def test_a_file_where_a_folder_goes_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "access"
    root.mkdir()
    (root / "policies").write_text("not a folder\n")
    result = init(root)
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 3  # the three policy files
    assert not (root / ".git").exists() and not (root / "schema").exists()


def test_an_existing_repository_keeps_its_history(tmp_path: Path) -> None:
    repo = AccessRepo(tmp_path / "access")
    repo.write("notes.txt", "kept\n")
    before = repo.commit("first")
    assert init(repo.root).exit_code == 0
    assert git(repo.root, "rev-parse", "HEAD") == before
    assert (repo.root / "notes.txt").read_text() == "kept\n"


def test_the_next_steps_name_the_secrets_rules_and_tokens(tmp_path: Path) -> None:
    out = init(tmp_path / "a").stdout
    for words in ("production-databases", "EXAMPLE_DB_DSN", "JITGRANT_APP_PRIVATE_KEY",
                  "Bypass list", "Require review from Code Owners", "JITGRANT_APPROVER_TOKEN",
                  "Allow GitHub Actions to create and approve pull requests",
                  "JITGRANT_READ_ORG_TOKEN", "Allow auto-merge"):
        assert words in out, words
    assert "git ls-remote" in out  # the default action is a tag: how to pin it
    assert "git ls-remote" not in init(tmp_path / "b", "--action", PINNED_ACTION).stdout


@pytest.mark.parametrize("spec", ["jitgrant", "a/b", "a/b@", "a b/c@v1", "a/b@v1;rm",
                                  "../..@v1", "a/b@-x"])
def test_a_malformed_action_is_one_line(tmp_path: Path, spec: str) -> None:
    result = init(tmp_path / "a", "--action", spec)
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("jitgrant: error: --action")
    assert not (tmp_path / "a").exists()


def test_the_action_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(release, "_RECORD", tmp_path / "none")  # a build from a branch
    monkeypatch.setattr(release, "__file__", str(tmp_path / "pkg/reconciler/release.py"))
    assert init(tmp_path / "a").exit_code == 0
    text = (tmp_path / "a/.github/workflows/validate.yml").read_text()
    assert f"uses: jitgrant/jitgrant@v{__version__}\n" in text
    assert init(tmp_path / "b", "--action", "me/fork@" + SHA).exit_code == 0
    text = (tmp_path / "b/.github/workflows/validate.yml").read_text()
    assert f"uses: me/fork@{SHA} # v{__version__}\n" in text


# -- the workflows a security reviewer signs off ---------------------------------------------


def steps(root: Path) -> list[tuple[str, str, dict[str, Any]]]:
    return [(name, job_name, step) for name in WORKFLOWS
            for job_name, job in workflow(root, name)["jobs"].items() for step in job["steps"]]


def test_every_action_is_pinned_by_commit_with_its_version(written: Path) -> None:
    text = "".join((written / ".github/workflows" / w).read_text() for w in WORKFLOWS)
    uses = re.findall(r"uses: (.*)$", text, re.M)
    assert len(uses) == 14
    assert all(PINNED_USES.match(u) for u in uses), uses


def test_least_privilege_timeouts_and_credentials(written: Path) -> None:
    for name in WORKFLOWS:
        data = workflow(written, name)
        assert data["permissions"] == {}, name
        for job_name, job in data["jobs"].items():
            # the reconcile job also reads who approved each grant's pull request
            extra = {"pull-requests": "read"} if name == "reconcile.yml" else {}
            extra = {"pull-requests": "write"} if name == "queue.yml" else extra
            assert job["permissions"] == {"contents": "read", **extra}, (name, job_name)
            assert 0 < job["timeout-minutes"] <= 30, (name, job_name)
    for name, _job, step in steps(written):
        if step.get("uses", "").startswith("actions/checkout@"):
            # Only the reconcile job pushes (the audit commit, with the App's token).
            assert step["with"]["persist-credentials"] is (name == "reconcile.yml"), name
    reconcile = workflow(written, "reconcile.yml")
    assert reconcile["concurrency"] == {"group": "jitgrant-reconcile",
                                        "cancel-in-progress": False}
    assert reconcile["jobs"]["apply"]["environment"] == "production-databases"
    approve = workflow(written, "auto-approve.yml")
    assert approve["jobs"]["approve"]["environment"] == "jitgrant-approve"
    # Secrets of the databases and of the approver appear nowhere else.
    for name in ("validate.yml", "auto-approve.yml"):
        assert "EXAMPLE_DB_DSN" not in (written / ".github/workflows" / name).read_text()
    assert "JITGRANT_APPROVER_TOKEN" not in (written / ".github/workflows/validate.yml"
                                             ).read_text()


def test_the_pull_request_check_passes_the_author_and_teams(written: Path) -> None:
    [validate] = [s for n, _, s in steps(written)
                  if n == "validate.yml" and "validate" in s.get("with", {}).get("command", "")]
    assert validate["with"]["command"] == "validate --base origin/main --format github"
    assert validate["env"] == {
        "JITGRANT_PR_AUTHOR": "${{ github.event.pull_request.user.login }}",
        "JITGRANT_AUTHOR_TEAMS": "${{ steps.teams.outputs.teams }}",
        "JITGRANT_REQUEST_APP": "${{ vars.JITGRANT_REQUEST_APP }}"}


def test_the_written_workflows_pass_actionlint(written: Path) -> None:
    actionlint = tool("actionlint")
    files = [str(written / ".github/workflows" / w) for w in WORKFLOWS]
    proc = subprocess.run([actionlint, *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def zizmor(root: Path) -> list[dict[str, Any]]:
    proc = subprocess.run([tool("zizmor"), "--offline", "--format", "json",
                           str(root / ".github")], capture_output=True, text=True)
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_zizmor_finds_nothing_medium_or_high(written: Path) -> None:
    serious = [(f["ident"], f["determinations"]["severity"]) for f in zizmor(written)
               if f["determinations"]["severity"] in ("Medium", "High")]
    assert serious == []


def test_a_release_pins_its_own_commit_by_default(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A release build records its commit (hatch_build.py): the default action is pinned to
    it, and zizmor finds nothing at all of medium or high severity."""
    record = tmp_path / "_release_commit"
    record.write_text(SHA + "\n")
    monkeypatch.setattr(release, "_RECORD", record)
    assert init(tmp_path / "a").exit_code == 0
    text = (tmp_path / "a/.github/workflows/validate.yml").read_text()
    assert f"uses: jitgrant/jitgrant@{SHA} # v{__version__}\n" in text
    assert [f for f in zizmor(tmp_path / "a")
            if f["determinations"]["severity"] in ("Medium", "High")] == []


def test_a_checkout_at_the_release_tag_knows_its_commit(tmp_path: Path) -> None:
    repo = tmp_path / "src"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "f").write_text("x\n")
    git(repo, "add", "f")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "x")
    assert release.release_commit(repo) is None  # no tag
    git(repo, "tag", f"v{__version__}")
    head = git(repo, "rev-parse", "HEAD").strip()
    assert release.release_commit(repo) == head
    (repo / "f").write_text("changed\n")
    assert release.release_commit(repo) is None  # a dirty tree is not the release


def test_zizmor_on_the_default_tag_flags_only_that_tag(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Built from a branch, the default action is the release's tag: the next steps say how
    to pin it, and nothing else is flagged."""
    monkeypatch.setattr(release, "_RECORD", tmp_path / "none")
    monkeypatch.setattr(release, "__file__", str(tmp_path / "pkg/reconciler/release.py"))
    assert init(tmp_path / "a").exit_code == 0
    found = {(f["ident"], f["determinations"]["severity"]) for f in zizmor(tmp_path / "a")
             if f["determinations"]["severity"] in ("Medium", "High")}
    assert found == {("unpinned-uses", "High")}


def test_an_unknown_ci_kind_is_one_line(tmp_path: Path) -> None:
    result = init(tmp_path / "a", "--ci", "jenkins")
    assert result.exit_code == 1
    assert result.stderr == ("jitgrant: error: --ci 'jenkins': one of github, gitlab, "
                             "kubernetes, systemd\n")
    assert not (tmp_path / "a").exists()


def test_the_current_folder_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert jitgrant("init").exit_code == 0
    assert (tmp_path / "policies/targets.yaml").is_file() and (tmp_path / ".git").is_dir()


# -- the other CI kinds ----------------------------------------------------------------------

GITHUB_PR = (".github/CODEOWNERS", ".github/dependabot.yml", ".github/workflows/validate.yml",
             ".github/workflows/auto-approve.yml", ".github/workflows/queue.yml",
             ".github/workflows/request.yml")
KIND_FILES = {  # one entry per kind of scaffold.CI_KINDS (checked below)
    "github": (*GITHUB_PR, ".github/workflows/reconcile.yml"),
    "gitlab": (".gitlab/CODEOWNERS", ".gitlab-ci.yml"),
    # A runner reconciles; GitHub checks the pull requests, and its reconcile workflow would race.
    "kubernetes": (*GITHUB_PR, "deploy/kubernetes/jitgrant-reconcile.yaml",
                   "deploy/kubernetes/jitgrant-secrets.example.yaml"),
    "systemd": (*GITHUB_PR, "deploy/systemd/jitgrant-reconcile.service",
                "deploy/systemd/jitgrant-reconcile.timer"),
}
assert sorted(KIND_FILES) == sorted(CI_KINDS)
CI_FILES = {path for paths in KIND_FILES.values() for path in paths}
# What each kind's next steps must name: the secrets, where they go, how to start the job.
KIND_STEPS = {
    "github": ("EXAMPLE_DB_DSN", "production-databases", "JITGRANT_APP_PRIVATE_KEY"),
    "gitlab": ("EXAMPLE_DB_DSN", "JITGRANT_PUSH_TOKEN", "Protect variable", "Protected branches",
               "Pipeline schedules", ".gitlab/CODEOWNERS"),
    "kubernetes": ("--from-file=example-db-dsn=./example-db.dsn", "jitgrant-git", "Containerfile",
                   "kubectl apply -f deploy/kubernetes/jitgrant-reconcile.yaml",
                   "Bypass list: the team of the runner's machine user"),
    "systemd": ("/etc/jitgrant/example-db.dsn", "EXAMPLE_DB_DSN", "/etc/jitgrant/git-credential",
                "python3 -m venv /opt/jitgrant",
                "systemctl enable --now jitgrant-reconcile.timer",
                "Bypass list: the team of the runner's machine user"),
}


def init_kind(tmp_path: Path, kind: str) -> tuple[Path, str]:
    root = tmp_path / kind
    result = init(root, "--ci", kind, "--action", PINNED_ACTION)
    assert result.exit_code == 0, result.stderr
    return root, result.stdout


@pytest.mark.parametrize("kind", sorted(KIND_FILES))
def test_each_kind_writes_its_files_and_passes_its_own_checks(tmp_path: Path, kind: str) -> None:
    root, _ = init_kind(tmp_path, kind)
    for rel in KIND_FILES[kind]:
        assert (root / rel).is_file(), rel
    for rel in CI_FILES - set(KIND_FILES[kind]):
        assert not (root / rel).exists(), rel
    if kind == "gitlab":
        assert not (root / ".github").exists()
    assert jitgrant("validate", "--repo", str(root)).exit_code == 0
    check = jitgrant("codeowners", "--repo", str(root), "--check")
    assert check.exit_code == 0 and check.stdout == f"{KIND_FILES[kind][0]} is up to date\n"


@pytest.mark.parametrize("kind", sorted(KIND_FILES))
def test_each_kind_refuses_to_overwrite(tmp_path: Path, kind: str) -> None:
    root, out = init_kind(tmp_path, kind)
    wrote = [line for line in out.splitlines() if line.startswith("wrote ")]
    before = {rel: (root / rel).read_bytes() for rel in KIND_FILES[kind]}
    result = init(root, "--ci", kind)
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == len(wrote)  # every file, one line each
    assert {rel: (root / rel).read_bytes() for rel in KIND_FILES[kind]} == before


@pytest.mark.parametrize("kind", sorted(KIND_FILES))
def test_each_kind_prints_its_next_steps(tmp_path: Path, kind: str) -> None:
    _, out = init_kind(tmp_path, kind)
    for words in KIND_STEPS[kind]:
        assert words in out, words
    if kind != "github":  # the runner holds the secrets; GitHub's reconcile is not written
        assert "JITGRANT_APP_PRIVATE_KEY" not in out


def test_the_help_names_every_kind() -> None:
    """The kinds are listed once, in scaffold.CI_KINDS; the help text must keep up with it."""
    words = " ".join(jitgrant("init", "--help").stdout.split())
    assert all(kind in words for kind in CI_KINDS), words


def test_the_runner_files_name_the_targets_of_the_policies_written(tmp_path: Path) -> None:
    root, _ = init_kind(tmp_path, "kubernetes")
    cron = (root / "deploy/kubernetes/jitgrant-reconcile.yaml").read_text()
    secret = (root / "deploy/kubernetes/jitgrant-secrets.example.yaml").read_text()
    assert 'example-db-dsn: "REPLACE-ME: the DSN of target example-db"' in secret
    assert f'app.kubernetes.io/version: "{__version__}"' in cron
    root, _ = init_kind(tmp_path, "systemd")
    service = (root / "deploy/systemd/jitgrant-reconcile.service").read_text()
    assert "LoadCredential=example-db-dsn:/etc/jitgrant/example-db.dsn" in service


def test_the_written_gitlab_pipeline_passes_gitlabs_schema(tmp_path: Path) -> None:
    root, _ = init_kind(tmp_path, "gitlab")
    proc = run(tool("check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci",
               str(root / ".gitlab-ci.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    validate = yaml.safe_load((root / ".gitlab-ci.yml").read_text())["validate"]
    assert "jitgrant codeowners --check" in validate["script"]


def test_the_written_kubernetes_manifests_pass_strict_api_validation(tmp_path: Path) -> None:
    root, _ = init_kind(tmp_path, "kubernetes")
    proc = run(tool("kubernetes-validate"), "--strict", "--quiet",
               *map(str, (root / "deploy/kubernetes").iterdir()))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_written_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    root, _ = init_kind(tmp_path, "systemd")
    folder = root / "deploy/systemd"
    proc = run(analyze, "verify", "--man=no", *(f"./{p.name}" for p in folder.iterdir()),
               cwd=folder)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


@pytest.mark.parametrize("kind", ["kubernetes", "systemd"])
def test_a_runners_pull_request_workflows_pass_actionlint_and_zizmor(tmp_path: Path,
                                                                     kind: str) -> None:
    root, _ = init_kind(tmp_path, kind)
    files = [str(p) for p in sorted((root / ".github/workflows").iterdir())]
    proc = run(tool("actionlint"), *files)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [f["ident"] for f in zizmor(root)
            if f["determinations"]["severity"] in ("Medium", "High")] == []


# -- where CODEOWNERS lives ------------------------------------------------------------------

@pytest.mark.parametrize("place", [".gitlab/CODEOWNERS", "docs/CODEOWNERS", "CODEOWNERS"])
def test_codeowners_keeps_the_file_where_it_is(tmp_path: Path, place: str) -> None:
    root, _ = init_kind(tmp_path, "github")
    (root / ".github/CODEOWNERS").unlink()
    (root / place).parent.mkdir(exist_ok=True)
    (root / place).write_text("* @someone\n")
    assert jitgrant("codeowners", "--repo", str(root), "--check").exit_code == 1
    result = jitgrant("codeowners", "--repo", str(root))
    assert result.stdout == f"wrote {place}\n"
    assert not (root / ".github/CODEOWNERS").exists()
    assert "/grants/example-db/" in (root / place).read_text()
    assert jitgrant("codeowners", "--repo", str(root), "--check").exit_code == 0
    data = json.loads(jitgrant("codeowners", "--repo", str(root), "--format", "json").stdout)
    assert data["path"] == place


def test_codeowners_prefers_github_and_writes_there_when_there_is_none(tmp_path: Path) -> None:
    root, _ = init_kind(tmp_path, "gitlab")
    (root / "CODEOWNERS").write_text("* @someone\n")  # .gitlab/ comes first
    assert jitgrant("codeowners", "--repo", str(root), "--check").exit_code == 0
    (root / ".gitlab/CODEOWNERS").unlink()
    (root / "CODEOWNERS").unlink()
    assert jitgrant("codeowners", "--repo", str(root)).stdout == "wrote .github/CODEOWNERS\n"


def test_the_reconcile_workflow_publishes_the_access_report(
        written: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After apply, the action writes `audit --format html` to report.html (when the trail
    changed, or on a push or by hand) and upload-artifact publishes that file; the command as
    written works in an access repository with audit records, as the action runs it there."""
    [job] = workflow(written, "reconcile.yml")["jobs"].values()
    names = [s["name"] for s in job["steps"] if "name" in s]
    assert names.index("Apply, audit, push") < names.index("Access report")
    [report] = [s for s in job["steps"] if s.get("name") == "Access report"]
    [upload] = [s for s in job["steps"] if s.get("uses", "").startswith(
        "actions/upload-artifact@")]
    assert report["uses"].startswith(PINNED_ACTION)
    assert "steps.audited.outputs.changed == 'true'" in report["if"]
    assert upload["with"]["path"] == "report.html"
    assert "steps.report.outcome == 'success'" in upload["if"]
    repo = AccessRepo(tmp_path / "access")
    write_trail(repo.root)
    monkeypatch.chdir(repo.root)
    result = jitgrant(*report["with"]["command"].split())
    assert result.exit_code == 0, result.output
    assert (repo.root / "report.html").read_text().startswith("<!DOCTYPE html>")
