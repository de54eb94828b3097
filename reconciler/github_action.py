"""The last step of the GitHub Action (action.yml): run `jitgrant <command>`.

The `command` input arrives in the environment, never pasted into a shell script, where a
pull request's text could become code. It is split into words as a POSIX shell would (quotes
group), with nothing expanded, and jitgrant is started with exactly those words.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

COMMAND_VARIABLE = "JITGRANT_COMMAND"


def words(command: str) -> list[str]:
    """The arguments after `jitgrant`; a leading `jitgrant` the user wrote out is dropped.
    ValueError when the command is empty or its quotes do not close."""
    try:
        split = shlex.split(command, comments=False, posix=True)
    except ValueError:
        raise ValueError("the command input has a quote that is not closed") from None
    if split[:1] == ["jitgrant"]:
        split = split[1:]
    if not split:
        raise ValueError("the command input is empty (say which jitgrant command to run, "
                         "for example: validate --base origin/main --format github)")
    return split


def main() -> None:
    try:
        args = words(os.environ.get(COMMAND_VARIABLE, ""))
    except ValueError as e:
        # `::error::` makes GitHub show the line as an annotation on the run.
        sys.exit(f"::error::jitgrant action: {e}")
    program = Path(sys.executable).with_name("jitgrant")  # the console script of this venv
    sys.stdout.flush()
    os.execv(program, [str(program), *args])


if __name__ == "__main__":
    main()
