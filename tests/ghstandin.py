"""A local stand-in for the `gh` command line, for tests: an executable `gh` first on PATH that
records every call (argv as JSON lines) and answers the few commands jitgrant uses from a JSON
state file, changing it as GitHub would:

  gh pr list --state open|closed|all [--limit N] --json F1,F2   the pull requests, those fields
  gh pr view N --json F1,F2                                   one pull request
  gh pr edit N --add-reviewer a,org/team                      adds review requests
  gh pr comment N --body-file - | --body TEXT                 adds a comment
  gh pr close N [--comment TEXT]                              closes it (and comments)
  gh pr create --head B --title T --body TEXT [--base M]      opens one; prints its URL

Reviewers are exported in the shape of gh's `--json reviewRequests`: a user as
{"__typename": "User", "login": ...}, a team as {"__typename": "Team", "name": ..., "slug":
"org/team"} (written from gh's source; not checked against a real gh). A command listed in
the state's "fail" (e.g. "pr edit") exits 1 with a message on stderr, as gh does.

Use: `gh = GhStandIn(tmp_path, monkeypatch)`, then `gh.add_pull(...)`, run the command,
and read `gh.calls()` / `gh.writes()` / `gh.pull(n)`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

WRITES = {"edit", "comment", "close", "create", "merge"}
BOT = "github-actions"  # the login the stand-in's token comments as (gh's name for the app)


def _load(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text()) if Path(path).exists() else {"pulls": []}


def _option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _fields(pull: dict[str, Any], spec: str | None) -> dict[str, Any]:
    names = (spec or "").split(",")
    return {n: pull.get(n) for n in names if n}


def _reviewer(name: str) -> dict[str, str]:
    if "/" in name:
        return {"__typename": "Team", "name": name.split("/", 1)[1], "slug": name}
    return {"__typename": "User", "login": name}


def _find(state: dict[str, Any], number: str) -> dict[str, Any] | None:
    return next((p for p in state["pulls"] if str(p["number"]) == number), None)


def main(args: list[str]) -> int:
    state_path = os.environ["GH_STANDIN_STATE"]
    with open(os.environ["GH_STANDIN_LOG"], "a") as log:
        log.write(json.dumps(args) + "\n")
    state = _load(state_path)
    if " ".join(args[:2]) in state.get("fail", []):
        print(f"stand-in: {' '.join(args[:2])} refused", file=sys.stderr)
        return 1
    if args[:1] != ["pr"] or len(args) < 2:
        print(f"stand-in: unknown command {args[:2]}", file=sys.stderr)
        return 2
    code = _pr(state, args[1], args[2:])
    Path(state_path).write_text(json.dumps(state, indent=1))
    return code


def _pr(state: dict[str, Any], verb: str, rest: list[str]) -> int:
    if verb == "list":
        want = (_option(rest, "--state") or "open").upper()
        pulls = [p for p in state["pulls"] if want == "ALL" or p["state"] == want]
        print(json.dumps([_fields(p, _option(rest, "--json")) for p in pulls]))
        return 0
    if verb == "create":
        number = max((p["number"] for p in state["pulls"]), default=0) + 1
        state["pulls"].append(new_pull(number, _option(rest, "--head") or "",
                                       title=_option(rest, "--title") or "",
                                       body=_option(rest, "--body") or ""))
        print(f"https://github.com/acme/access/pull/{number}")
        return 0
    pull = _find(state, rest[0]) if rest else None
    if pull is None:
        print("stand-in: no pull requests found", file=sys.stderr)
        return 1
    if verb == "view":
        print(json.dumps(_fields(pull, _option(rest, "--json"))))
    elif verb == "edit":
        have = {json.dumps(r, sort_keys=True) for r in pull["reviewRequests"]}
        for name in (_option(rest, "--add-reviewer") or "").split(","):
            if name and json.dumps(_reviewer(name), sort_keys=True) not in have:
                pull["reviewRequests"].append(_reviewer(name))
    elif verb == "comment":
        body = sys.stdin.read() if _option(rest, "--body-file") == "-" else \
            _option(rest, "--body")
        pull["comments"].append({"author": {"login": BOT}, "body": body})
    elif verb == "close":
        pull["state"] = "CLOSED"
        said = _option(rest, "--comment")
        if said:
            pull["comments"].append({"author": {"login": BOT}, "body": said})
    else:
        print(f"stand-in: unknown command pr {verb}", file=sys.stderr)
        return 2
    return 0


def new_pull(number: int, branch: str, created: str = "2026-12-06T00:00:00Z",
             author: str = "alice-gh", reviewers: tuple[str, ...] = (), title: str = "",
             body: str = "", state: str = "OPEN", files: tuple[str, ...] = ()) -> dict[str, Any]:
    """A pull request as the stand-in keeps it (gh's --json field names)."""
    return {"number": number, "headRefName": branch, "createdAt": created,
            "author": {"login": author}, "state": state, "title": title, "body": body,
            "reviewRequests": [_reviewer(r) for r in reviewers], "comments": [],
            "isCrossRepository": False, "files": [{"path": f} for f in files],
            "url": f"https://github.com/acme/access/pull/{number}"}


class GhStandIn:
    """Puts the stand-in first on PATH (pytest's monkeypatch undoes it)."""

    def __init__(self, tmp_path: Path, monkeypatch: Any) -> None:
        bin_dir = tmp_path / "gh-bin"
        bin_dir.mkdir()
        shim = bin_dir / "gh"
        shim.write_text(f"#!{sys.executable}\nimport runpy, sys\n"
                        f"runpy.run_path({str(Path(__file__))!r}, run_name='__gh__')\n")
        shim.chmod(0o755)
        self.state_path = tmp_path / "gh-state.json"
        self.log = tmp_path / "gh-calls.jsonl"
        self.state_path.write_text(json.dumps({"pulls": []}))
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("GH_STANDIN_STATE", str(self.state_path))
        monkeypatch.setenv("GH_STANDIN_LOG", str(self.log))

    def state(self) -> dict[str, Any]:
        return _load(str(self.state_path))

    def save(self, state: dict[str, Any]) -> None:
        self.state_path.write_text(json.dumps(state, indent=1))

    def add_pull(self, number: int, branch: str, **kwargs: Any) -> None:
        state = self.state()
        state["pulls"].append(new_pull(number, branch, **kwargs))
        self.save(state)

    def pull(self, number: int) -> dict[str, Any]:
        found = _find(self.state(), str(number))
        assert found is not None, number
        return found

    def comment_as(self, number: int, login: str, body: str) -> None:
        """A comment by someone else (a person, not the token jitgrant runs with)."""
        state = self.state()
        found = _find(state, str(number))
        assert found is not None, number
        found["comments"].append({"author": {"login": login}, "body": body})
        self.save(state)

    def fail(self, *commands: str) -> None:
        """Make these commands ("pr edit", "pr list") fail from now on."""
        state = self.state()
        state["fail"] = list(commands)
        self.save(state)

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def writes(self) -> list[list[str]]:
        """The calls that change something on the forge."""
        return [c for c in self.calls() if c[:1] == ["pr"] and c[1:2] and c[1] in WRITES]


if __name__ == "__gh__":
    sys.exit(main(sys.argv[1:]))
