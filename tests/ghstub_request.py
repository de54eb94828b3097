"""A local stand-in for GitHub's `gh` command, for the request workflow's tests: put first on
PATH (as `gh`, see install), it records its argv as one JSON line in $GHSTUB_LOG and answers
`gh pr create` as gh does, with the new pull request's address on stdout. It talks to nobody.
(The queue's tests have a fuller stand-in; the two may be merged.)"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path


def install(folder: Path, log: Path) -> dict[str, str]:
    """Write `gh` into `folder`; the environment that puts it first on PATH and logs to `log`."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "gh"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}", "GHSTUB_LOG": str(log)}


def calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def main(argv: list[str]) -> int:
    with open(os.environ["GHSTUB_LOG"], "a") as log:
        log.write(json.dumps(argv) + "\n")
    if argv[:2] == ["pr", "create"]:
        number = len(calls(Path(os.environ["GHSTUB_LOG"])))
        print(f"https://github.com/acme/access/pull/{number}")
        return 0
    print(f"ghstub: {' '.join(argv[:2])} is not stood in for", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
