"""A hostile author against GitLab approvals (`repository.require_approval: 1`): naming an
approved merge request in a commit message never borrows its approval.

The forge is a local stand-in (tests/forge_stub.py: an http.server on 127.0.0.1 answering
GitLab's documented merge request and approvals endpoints); git and PostgreSQL are real."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Namespace
from tests.cli.test_approvals import latest_record
from tests.cli.test_gitlab_approvals import FILE, apply, gitlab_merge, gitlab_repo
from tests.forge_stub import fake_github, gitlab_approval, merge_request
from tests.helpers import git, grant, utc

REFUSED = f"{FILE}:1: repository.require_approval: 1: not granted: "


def test_a_direct_push_naming_an_approved_merge_request(tmp_path: Path,
                                                        namespace: Namespace) -> None:
    """alice's grant approved in !12; a commit pushed straight to main stretches it, its
    message ending in "See merge request acme/access!12". One parent: no merge request."""
    repo = gitlab_repo(tmp_path / "repo", namespace, required=1)
    m12 = gitlab_merge(repo, 12, {FILE: grant()})
    with fake_github() as forge:
        forge.mr(12, merge_request(12, "alice-gl", m12), [gitlab_approval("dave-gl")])
        assert apply(repo, namespace, forge).exit_code == 0
        repo.write(FILE, grant(expires=utc(hours=5)))
        repo.commit("stretch\n\nSee merge request acme/access!12")
        pushed = apply(repo, namespace, forge)
    assert pushed.exit_code == 1, pushed.stdout + pushed.stderr
    assert REFUSED + "no pull request" in pushed.stderr
    [action] = latest_record(repo)["actions"]
    assert (action["action"], action["cause"]) == ("revoke", "unapproved")
    assert namespace.role(namespace.login()) is None


def test_a_merge_made_by_hand_claiming_an_approved_merge_request(tmp_path: Path,
                                                                  namespace: Namespace) -> None:
    """A merge commit made outside GitLab (two parents, pushed) whose message is GitLab's for
    the approved !12: GitLab says !12 was merged as another commit, so nothing counts."""
    repo = gitlab_repo(tmp_path / "repo", namespace, required=1)
    m12 = gitlab_merge(repo, 12, {"grants/db1/bob.yaml": grant("bob")})
    forged = gitlab_merge(repo, 12, {FILE: grant()}, branch="by-hand")
    assert forged != m12
    with fake_github() as forge:
        forge.mr(12, merge_request(12, "bob.gl", m12), [gitlab_approval("dave-gl")])
        result = apply(repo, namespace, forge)
    assert result.exit_code == 1, result.stdout + result.stderr
    assert namespace.role(namespace.login("bob")) is not None
    assert namespace.role(namespace.login()) is None
    assert REFUSED + f"merge request !12 was merged as {m12[:12]}, not as {forged[:12]}" \
        in result.stderr


def test_a_title_quoting_another_merge_requests_line(tmp_path: Path,
                                                     namespace: Namespace) -> None:
    """!13's title is "See merge request acme/access!12" (GitLab's template quotes the title
    above its own line): the last line names !13, which is what is asked and judged."""
    repo = gitlab_repo(tmp_path / "repo", namespace, required=1)
    m12 = gitlab_merge(repo, 12, {"grants/db1/bob.yaml": grant("bob")})
    m13 = gitlab_merge(repo, 13, {FILE: grant()}, title="See merge request acme/access!12")
    message = git(repo.root, "log", "-1", "--format=%B", m13)
    assert message.count("See merge request") == 2
    with fake_github() as forge:
        forge.mr(12, merge_request(12, "bob.gl", m12), [gitlab_approval("dave-gl")])
        forge.mr(13, merge_request(13, "alice-gl", m13), [gitlab_approval("alice-gl")])
        result = apply(repo, namespace, forge)
    assert result.exit_code == 1, result.stdout + result.stderr
    assert namespace.role(namespace.login()) is None
    assert REFUSED + "https://gitlab.example.com/acme/access/-/merge_requests/13 has 0 " \
        in result.stderr
