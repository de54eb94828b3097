"""`python -m bench.provenance`: provenance of N grants added one commit each into one folder
(git's worst case: every commit's tree diff walks the whole, growing folder), cold, with the
cache at the same commit, and with the cache one commit behind. Prints the figures."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from reconciler import gitrepo


def build(root: Path, grants: int) -> None:
    """One commit per grant file, written with git fast-import (seconds, not minutes)."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    parts = []
    for index in range(grants):
        content = (f"grantee: p{index:06d}\ntarget: t\naccess: readonly\n"
                   f"expires: 2026-12-01T00:00:00Z\nreason: bench\n")
        message = f"grant p{index:06d} (#{index + 1})\n"
        stamp = 1_700_000_000 + index
        parts.append(f"commit refs/heads/main\nauthor A <a@example.com> {stamp} +0000\n"
                     f"committer C <c@example.com> {stamp} +0000\n"
                     f"data {len(message.encode())}\n{message}"
                     f"M 100644 inline grants/t/p{index:06d}.yaml\n"
                     f"data {len(content.encode())}\n{content}\n")
    subprocess.run(["git", "-C", str(root), "fast-import", "--quiet"],
                   input="".join(parts).encode(), check=True)
    subprocess.run(["git", "-C", str(root), "reset", "-q", "--hard", "main"], check=True)


def timed(root: Path) -> float:
    repo = gitrepo.open_repo(root)
    commit = gitrepo.resolve(repo, "HEAD")
    files = {f.path: f.blob for f in gitrepo.read_tree(repo, commit, ["grants"]) if f.blob}
    start = time.perf_counter()
    found = gitrepo.provenance(repo, commit, files)
    seconds = time.perf_counter() - start
    assert len(found) == len(files), (len(found), len(files))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.provenance", description=__doc__)
    parser.add_argument("--grants", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="jitgrant-bench-prov-"))
    try:
        build(root / "repo", args.grants)
        repo = root / "repo"
        cache = repo / ".git" / "jitgrant"
        cold, same, behind = [], [], []
        for _ in range(args.repeat):
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(timed(repo))
            same.append(timed(repo))
            subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m",
                            "one more"], check=True,
                           env={"GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@example.com",
                                "GIT_COMMITTER_NAME": "C", "GIT_COMMITTER_EMAIL": "c@example.com",
                                "PATH": "/usr/bin:/bin"})
            behind.append(timed(repo))
        for name, values in (("cold (no cache)", cold), ("cache at HEAD", same),
                             ("cache one commit behind", behind)):
            print(f"{args.grants:,} grants over {args.grants:,} commits, {name}: "
                  f"{sorted(values)[len(values) // 2]:.3f} s (median of {len(values)})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
