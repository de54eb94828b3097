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

from reconciler import __version__
from reconciler.schemas import schema_dir
from tests.cli.conftest import jitgrant
from tests.helpers import AccessRepo, git

SHA = "0123456789abcdef0123456789abcdef01234567"
PINNED_ACTION = f"jitgrant/jitgrant@{SHA}"
WORKFLOWS = ("validate.yml", "reconcile.yml", "auto-approve.yml")
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
    assert len(lines) == 13 and all(": exists already" in line for line in lines)
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


def test_the_action_reference(tmp_path: Path) -> None:
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
    assert len(uses) == 9
    assert all(PINNED_USES.match(u) for u in uses), uses


def test_least_privilege_timeouts_and_credentials(written: Path) -> None:
    for name in WORKFLOWS:
        data = workflow(written, name)
        assert data["permissions"] == {}, name
        for job_name, job in data["jobs"].items():
            assert job["permissions"] == {"contents": "read"}, (name, job_name)
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
        "JITGRANT_AUTHOR_TEAMS": "${{ steps.teams.outputs.teams }}"}


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


def test_zizmor_on_the_default_tag_flags_only_that_tag(tmp_path: Path) -> None:
    """The default action is a tag (the wheel does not know its release's commit): the next
    steps say how to pin it, and nothing else is flagged."""
    assert init(tmp_path / "a").exit_code == 0
    found = {(f["ident"], f["determinations"]["severity"]) for f in zizmor(tmp_path / "a")
             if f["determinations"]["severity"] in ("Medium", "High")}
    assert found == {("unpinned-uses", "High")}


def test_an_unknown_ci_kind_is_one_line(tmp_path: Path) -> None:
    result = init(tmp_path / "a", "--ci", "jenkins")
    assert result.exit_code == 1
    assert result.stderr == "jitgrant: error: --ci 'jenkins': one of github\n"
    assert not (tmp_path / "a").exists()


def test_the_current_folder_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert jitgrant("init").exit_code == 0
    assert (tmp_path / "policies/targets.yaml").is_file() and (tmp_path / ".git").is_dir()
