"""Hostile pull-request authors against `repository.require_approval`: approving their own pull
request, a review after the merge, a dismissed or withdrawn approval, an approval of an older
commit, a direct push whose message names another (approved) pull request, a pull request that
does not exist, a forge that points its next page or a redirect at another host, and an
approved grant stretched by a direct push.

The forge is a local stand-in (tests/forge_stub.py: http.server on 127.0.0.1 answering GitHub's
documented REST endpoints with recorded-shape JSON); git and PostgreSQL are real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.cli.conftest import Namespace
from tests.cli.test_approvals import (access_repo, apply, grants_of, latest_record, merge_pr)
from tests.forge_stub import TOKEN, Answer, fake_github, pull, review
from tests.helpers import AccessRepo, grant, utc

PEOPLE = ("selfie", "late", "dismissed", "withdrawn", "stale", "forged", "honest", "ghost",
          "elsewhere", "commented", "redirected")


def hostile_repo(root: Path, namespace: Namespace) -> AccessRepo:
    repo = access_repo(root, namespace, required=1)
    doc: dict[str, Any] = __import__("yaml").safe_load(
        (repo.root / "policies/main.yaml").read_text())
    for handle in PEOPLE:
        doc["people"][handle] = {"email": f"{handle}@example.com", "github": f"{handle}-gh",
                                 "groups": ["sre"]}
    repo.write("policies/main.yaml", doc)
    repo.commit("people")
    return repo


def test_every_forgery_grants_nothing_and_honest_approval_still_does(
        tmp_path: Path, namespace: Namespace) -> None:
    repo = hostile_repo(tmp_path / "repo", namespace)
    merges = {n: merge_pr(repo, n, {f"grants/db1/{who}.yaml": grant(who)})
              for n, who in [(21, "selfie"), (22, "late"), (23, "dismissed"), (24, "withdrawn"),
                             (26, "stale"), (25, "honest"), (27, "commented"),
                             (28, "elsewhere"), (29, "redirected")]}
    # A direct push whose message claims to be pull request #25 (approved, for someone else).
    repo.write("grants/db1/forged.yaml", grant("forged"))
    repo.commit("grant forged (#25)")
    repo.write("grants/db1/ghost.yaml", grant("ghost"))
    repo.commit("grant ghost (#99)")  # a pull request that does not exist
    dave = "dave-gh"
    with fake_github() as forge, fake_github() as elsewhere:
        forge.pr(21, pull(21, "mallory-gh", merges[21]), [review("mallory-gh", "APPROVED")])
        forge.pr(22, pull(22, "late-gh", merges[22]),
                 [review(dave, "APPROVED", "2026-12-06T10:00:01Z")])
        forge.pr(23, pull(23, "dismissed-gh", merges[23]), [review(dave, "DISMISSED")])
        forge.pr(24, pull(24, "withdrawn-gh", merges[24]), [
            review(dave, "APPROVED", "2026-12-06T09:00:00Z", review_id=1),
            review(dave, "CHANGES_REQUESTED", "2026-12-06T09:30:00Z", review_id=2),
            review(dave, "COMMENTED", "2026-12-06T09:40:00Z", review_id=3)])
        forge.pr(26, pull(26, "stale-gh", merges[26]),
                 [review(dave, "APPROVED", commit_id="a" * 40)])
        forge.pr(25, pull(25, "honest-gh", merges[25]), [review(dave, "APPROVED")])
        forge.pr(27, pull(27, "commented-gh", merges[27]), [
            review(dave, "APPROVED", "2026-12-06T09:00:00Z", review_id=1),
            review(dave, "COMMENTED", "2026-12-06T09:30:00Z", review_id=2)])
        forge.pr(28, pull(28, "elsewhere-gh", merges[28]), [review("x-gh", "COMMENTED")])
        forge.routes["/repos/acme/access/pulls/28/reviews?per_page=100"].headers["Link"] = \
            f'<{elsewhere.url}/steal?page=2>; rel="next"'
        # a redirect to another host is not followed either
        forge.routes["/repos/acme/access/pulls/29"] = Answer(
            302, {}, {"Location": f"{elsewhere.url}/repos/acme/access/pulls/29"})
        elsewhere.pr(29, pull(29, "redirected-gh", merges[29]), [review(dave, "APPROVED")])
        result = apply(repo, namespace, forge)
        assert elsewhere.requests == []  # the token went nowhere else
    assert result.exit_code == 1, result.stdout + result.stderr
    made = {who for who in PEOPLE if namespace.role(namespace.login(who)) is not None}
    assert made == {"honest", "commented"}
    refused = {line.split(".yaml:1:")[0].rsplit("/", 1)[-1]: line
               for line in result.stderr.splitlines() if "require_approval" in line}
    assert set(refused) == set(PEOPLE) - made
    assert "was merged as" in refused["forged"]
    assert "pull request #99" in refused["ghost"]
    record = latest_record(repo)
    entries = grants_of(record)
    assert entries["grants/db1/honest.yaml"]["approval"]["approvals"] == 1
    for text in (result.stdout, result.stderr,
                 *(p.read_text() for p in (repo.root / "audit").rglob("*.json"))):
        assert TOKEN not in text


def test_a_direct_push_cannot_stretch_an_approved_grant(tmp_path: Path,
                                                         namespace: Namespace) -> None:
    """Approved through #31, then pushed straight to main with a later expiry: the change has
    no approval, so the login is not extended; it is revoked (cause `unapproved`), since the
    grant as it now reads was approved by nobody."""
    repo = hostile_repo(tmp_path / "repo", namespace)
    merge = merge_pr(repo, 31, {"grants/db1/honest.yaml": grant("honest", expires=utc(hours=2))})
    login = namespace.login("honest")
    with fake_github() as forge:
        forge.pr(31, pull(31, "honest-gh", merge), [review("dave-gh", "APPROVED")])
        first = apply(repo, namespace, forge)
        assert first.exit_code == 0, first.stdout + first.stderr
        before = namespace.role(login)
        assert before is not None
        repo.write("grants/db1/honest.yaml", grant("honest", expires=utc(hours=7)))
        repo.commit("extend honest (#31)")  # and claims the approved pull request's number
        second = apply(repo, namespace, forge)
    assert second.exit_code == 1, second.stdout + second.stderr
    assert namespace.role(login) is None
    [action] = latest_record(repo)["actions"]
    assert (action["action"], action["cause"]) == ("revoke", "unapproved")
