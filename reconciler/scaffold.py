"""`jitgrant init`: write a ready access repository from the templates in templates/.

templates/init/ holds what every access repository has (policies, README, pre-commit); each
CI kind adds its own folder templates/ci/<kind>/ (its files and the next steps to print).
CI_KINDS is the one list of kinds. GitHub's folder is written as it is: a path segment `dot-x`
is written as `.x`, so the templates carry no hidden files; `.j2` files are rendered with
jinja2 (`[[ var ]]`, `[% block %]`: GitHub's `${{ }}` stays as it is). The other kinds'
files are named in CI_KINDS and rendered by citemplates (`{{ var }}`).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jinja2

from . import __version__, citemplates, gitrepo
from .codeowners import render as render_codeowners
from .errors import Problem, UserError
from .load import SourceFile
from .model import Policy
from .release import release_commit
from .schemas import schema_dir
from .validate import load_policy

TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_ACTION_REPO = "jitgrant/jitgrant"
EXAMPLE_TARGET = "example-db"
EXAMPLE_DSN_ENV = "EXAMPLE_DB_DSN"
# The third-party actions the workflows use, pinned by commit; Dependabot keeps them current.
PINNED = {
    # The same commits as action.yml and this project's own CI.
    "checkout": "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1",
    "cache": "actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae # v5.0.5",
    "app_token": "actions/create-github-app-token@a8d616148505b5069dccd32f177bb87d7f39123b"
                 " # v2.1.1",
    "upload_artifact": "actions/upload-artifact@043fb46d1a93c77aae656e7c1c64a875d1fc6a0a"
                       " # v7.0.1",
}
_ACTION = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9_][A-Za-z0-9_.-]*)"
                     r"@(?P<ref>[A-Za-z0-9_][A-Za-z0-9_./-]*)$")
_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class CiKind:
    """A CI kind. A forge (github, gitlab) checks the pull requests and reconciles; a runner
    (kubernetes, systemd) reconciles only, so it comes with GitHub's pull-request workflows
    (validate, auto-approve) but not GitHub's reconcile workflow: two reconcilers would race."""

    title: str
    codeowners: str  # where the kind's forge reads CODEOWNERS
    github: Literal["all", "pull-requests", "none"]  # which of templates/ci/github/ it writes
    # Its own files, rendered by citemplates. Named one by one rather than derived from file
    # names: `.gitlab-ci.yml` is a dot-file, which packaging tools may leave out of a wheel.
    files: citemplates.Files = ()
    merge_method: str = "squash"


CI_KINDS: dict[str, CiKind] = {
    "github": CiKind("GitHub", ".github/CODEOWNERS", "all"),
    "gitlab": CiKind("GitLab", ".gitlab/CODEOWNERS", "none",
                     (("gitlab-ci.yml.j2", ".gitlab-ci.yml"),)),
    "kubernetes": CiKind("Kubernetes", ".github/CODEOWNERS", "pull-requests", (
        ("cronjob.yaml.j2", "deploy/kubernetes/jitgrant-reconcile.yaml"),
        ("secret.example.yaml.j2", "deploy/kubernetes/jitgrant-secrets.example.yaml"))),
    "systemd": CiKind("systemd", ".github/CODEOWNERS", "pull-requests", (
        ("jitgrant-reconcile.service.j2", "deploy/systemd/jitgrant-reconcile.service"),
        ("jitgrant-reconcile.timer.j2", "deploy/systemd/jitgrant-reconcile.timer"))),
}
GITHUB_RECONCILE = ".github/workflows/reconcile.yml"


@dataclass(frozen=True)
class Scaffold:
    files: dict[str, bytes]  # repository-relative path -> content
    next_steps: str


def action_reference(spec: str | None) -> tuple[str, str]:
    """`uses:` of the jitgrant action and the repository it comes from. A commit SHA keeps
    the version it was written by as its comment, as Dependabot expects. By default, the
    commit this jitgrant was released from; only where that is unknown (a build from a branch)
    the release's tag, which the next steps say how to pin."""
    spec = spec or f"{DEFAULT_ACTION_REPO}@{release_commit() or 'v' + __version__}"
    m = _ACTION.match(spec)
    if m is None:
        raise UserError(f"--action {spec!r}: expected OWNER/REPO@REF, e.g. "
                        f"{DEFAULT_ACTION_REPO}@v{__version__}")
    uses = f"{spec} # v{__version__}" if _SHA.match(m["ref"]) else spec
    return uses, m["repo"]


def ci_kind(name: str) -> CiKind:
    kind = CI_KINDS.get(name)
    if kind is None:
        raise UserError(f"--ci {name!r}: one of {', '.join(sorted(CI_KINDS))}")
    return kind


def render_ci(name: str, context: Mapping[str, Any]) -> dict[str, str]:
    """The files of CI kind `name` that citemplates renders (none for github)."""
    return citemplates.render(name, ci_kind(name).files, context)


def build(kind_name: str, action: str | None) -> Scaffold:
    """Everything `init` writes, in memory: nothing touches the disk before it is all known."""
    kind = ci_kind(kind_name)
    uses, action_repo = action_reference(action)
    ref = uses.split("@", 1)[1].split(" ", 1)[0]
    context: dict[str, Any] = {
        **PINNED, "action": uses, "action_repo": action_repo, "action_ref": ref,
        "pinned": bool(_SHA.match(ref)), "action_url": f"https://github.com/{action_repo}",
        "precommit_rev": f"v{__version__}", "version": __version__,
        "target": EXAMPLE_TARGET, "dsn_env": EXAMPLE_DSN_ENV,
        "merge_method": kind.merge_method, "codeowners": kind.codeowners,
        "kind": kind_name, "github": kind.github, "ci_title": kind.title,
    }
    env = _environment()
    files = _render_folder(env, TEMPLATES / "init", context)
    policy = _policy(files)
    targets = sorted(policy.targets.values(), key=lambda t: t.name)
    context |= {"targets": targets, "dsn_envs": [t.dsn_env for t in targets if t.dsn_env]}
    if kind.github != "none":
        github = _render_folder(env, TEMPLATES / "ci" / "github", context)
        if kind.github == "pull-requests":
            del github[GITHUB_RECONCILE]
        files |= github
    files |= {rel: text.encode() for rel, text in render_ci(kind_name, context).items()}
    files |= {f"schema/{p.name}": p.read_bytes()
              for p in sorted(schema_dir().glob("*.schema.json"))}
    files[kind.codeowners] = _codeowners(policy, files, kind.codeowners).encode()
    steps = [env.get_template(f"ci/{folder}/next-steps.txt.j2").render(context)
             for folder in dict.fromkeys(["github"] * (kind.github != "none") + [kind_name])]
    return Scaffold(files, "\n".join(steps))


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, autoescape=False,  # noqa: S701 - YAML and text, not HTML
        variable_start_string="[[", variable_end_string="]]",
        block_start_string="[%", block_end_string="%]")


def _render_folder(env: jinja2.Environment, folder: Path,
                   context: dict[str, Any]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if rel.name == "next-steps.txt.j2" or "__pycache__" in rel.parts:
            continue
        target = "/".join("." + part[4:] if part.startswith("dot-") else part
                          for part in rel.parts)
        if target.endswith(".j2"):
            name = path.relative_to(TEMPLATES).as_posix()
            files[target[:-3]] = env.get_template(name).render(context).encode()
        else:
            files[target] = path.read_bytes()
    return files


def _policy(files: dict[str, bytes]) -> Policy:
    """The example policies just rendered: their targets go into the CI files."""
    problems: list[Problem] = []
    sources = [SourceFile(path, data) for path, data in sorted(files.items())
               if path.startswith("policies/")]
    policy = load_policy(sources, problems)
    if problems:  # the templates are ours: a problem here is a bug, not the user's error
        raise AssertionError(f"the policy templates are invalid: {problems}")
    return policy


def _codeowners(policy: Policy, files: dict[str, bytes], path: str) -> str:
    """CODEOWNERS from the policies, naming only the folders init writes."""
    tops = {rel.split("/", 1)[0] for rel in files}
    return render_codeowners(policy, lambda rel: rel in tops, path)


def conflicts(root: Path, files: dict[str, bytes]) -> list[str]:
    """The paths that exist already (or whose folder is a file), repository-relative."""
    return [rel for rel in sorted(files) if _taken(root, rel)]


def _taken(root: Path, rel: str) -> bool:
    path = root / rel
    folders = [root / parent for parent in Path(rel).parents if parent != Path(".")]
    return path.exists() or path.is_symlink() or any(
        folder.is_symlink() or (folder.exists() and not folder.is_dir()) for folder in folders)


def write(root: Path, scaffold: Scaffold) -> None:
    """Write the access repository, replacing what is in the way (the caller asked `conflicts`
    first); `git init` first when `root` is not a git checkout."""
    root.mkdir(parents=True, exist_ok=True)
    if not gitrepo.is_repository(root):
        gitrepo.init_repo(root)
    for rel, data in sorted(scaffold.files.items()):
        _clear(root, rel)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _clear(root: Path, rel: str) -> None:
    """Remove a file, link or folder where `rel` or one of its folders goes (--force)."""
    for parent in [*reversed(Path(rel).parents), Path(rel)]:
        path = root / parent
        if parent == Path(".") or not (path.exists() or path.is_symlink()):
            continue
        if path.is_symlink() or not path.is_dir():
            path.unlink()
        elif parent == Path(rel):
            shutil.rmtree(path)
