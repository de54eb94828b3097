"""The last step of the GitHub Action (action.yml): run `jitgrant <command>`.

The `command` input arrives in the environment, never pasted into a shell script, where a
pull request's text could become code. It is split into words as a POSIX shell would (quotes
group), with nothing expanded, and jitgrant is started with exactly those words.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

COMMAND_VARIABLE = "JITGRANT_COMMAND"
SUMMARY_VARIABLE = "JITGRANT_STEP_SUMMARY"
OK_CODES_VARIABLE = "JITGRANT_OK_EXIT_CODES"


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


def ok_codes(text: str) -> frozenset[int]:
    """The `ok-exit-codes` input: integers separated by spaces or commas."""
    try:
        codes = frozenset(int(word) for word in text.replace(",", " ").split())
    except ValueError:
        raise ValueError(f"ok-exit-codes {text!r}: exit codes are numbers, e.g. \"0 2\"") \
            from None
    return codes or frozenset({0})


def main() -> None:
    try:
        args = words(os.environ.get(COMMAND_VARIABLE, ""))
        codes = ok_codes(os.environ.get(OK_CODES_VARIABLE, "0"))
    except ValueError as e:
        # `::error::` makes GitHub show the line as an annotation on the run.
        sys.exit(f"::error::jitgrant action: {e}")
    program = Path(sys.executable).with_name("jitgrant")  # the console script of this venv
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if codes == {0} and not (os.environ.get(SUMMARY_VARIABLE) == "true" and summary):
        sys.stdout.flush()
        os.execv(program, [str(program), *args])
    sys.exit(_run(program, args, codes, summary if os.environ.get(SUMMARY_VARIABLE) == "true"
                  else None))


def _run(program: Path, args: list[str], codes: frozenset[int], summary: str | None) -> int:
    """Run jitgrant; its output goes to the log and, when asked, to the job's summary. An exit
    code of `codes` is success (0)."""
    proc = subprocess.run([str(program), *args], stdout=subprocess.PIPE, check=False)
    sys.stdout.buffer.write(proc.stdout)
    sys.stdout.flush()
    if summary:
        with open(summary, "ab") as out:
            out.write(proc.stdout)
    return 0 if proc.returncode in codes else proc.returncode or 1


if __name__ == "__main__":
    main()
