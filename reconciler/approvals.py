"""Who approved a grant: the pull request each grant of a create or update arrived with, as the
forge tells it, and `repository.require_approval`'s verdict on it.

The facts of a pull request (forge_rest.py fetches them) are judged here without I/O: the
reviews in force at the merge (GitHub: per reviewer, the latest APPROVED, CHANGES_REQUESTED
or DISMISSED review submitted at or before the merge decides; COMMENTED changes nothing), and
whether the merge commit the forge reports is the one git says brought the grant (a commit
message saying "(#12)" proves nothing by itself). GitLab's merge requests are judged by the
same rules, as far as GitLab's answers tell them (gitlab_facts). lookup.py runs the lookups of
a run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .model import Grant, Policy

DECISIVE = ("APPROVED", "CHANGES_REQUESTED", "DISMISSED")


@dataclass(frozen=True)
class Review:
    login: str
    state: str  # APPROVED | CHANGES_REQUESTED (the reviews in force)
    submitted_at: str | None
    commit_id: str | None = None


@dataclass(frozen=True)
class PullFacts:
    """A pull request as the forge reports it, reduced to what approval needs."""

    number: int
    url: str
    author: str | None
    merged_by: str | None
    merged_at: str | None
    merge_commit_sha: str | None
    head_sha: str | None
    reviews: tuple[Review, ...]  # in force at the merge, one per reviewer

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, "url": self.url, "author": self.author,
                "merged_by": self.merged_by, "merged_at": self.merged_at,
                "merge_commit_sha": self.merge_commit_sha, "head_sha": self.head_sha,
                "reviews": [[r.login, r.state, r.submitted_at, r.commit_id]
                            for r in self.reviews]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PullFacts:
        return cls(int(data["number"]), str(data["url"]), data["author"], data["merged_by"],
                   data["merged_at"], data["merge_commit_sha"], data["head_sha"],
                   tuple(Review(*r) for r in data["reviews"]))


def facts(number: int, pull: Mapping[str, Any], reviews: list[dict[str, Any]]) -> PullFacts:
    """The facts of pull request `number` from GitHub's pull and reviews answers."""
    merged_at = _text(pull.get("merged_at"))
    return PullFacts(number, _text(pull.get("html_url")) or "", _login(pull.get("user")),
                     _login(pull.get("merged_by")), merged_at,
                     _text(pull.get("merge_commit_sha")) if merged_at else None,
                     _text((pull.get("head") or {}).get("sha")),
                     in_force(reviews, merged_at))


def gitlab_facts(number: int, mr: Mapping[str, Any],
                 approved_by: list[dict[str, Any]]) -> PullFacts:
    """The facts of merge request !`number` from GitLab's merge request and approvals answers.
    GitLab tells who approved, not which commit (`commit_id` stays None: approvals of an
    earlier push count unless the project removes approvals when commits are added), and
    when only in versions that give `approved_at`: an approval dated after the merge is left
    out, an undated one is kept."""
    merged_at = _seconds(_text(mr.get("merged_at"))) if mr.get("state") == "merged" else None
    merge = _text(mr.get("merge_commit_sha")) or _text(mr.get("squash_commit_sha"))
    cut = _when(merged_at)
    reviews: dict[str, Review] = {}
    for a in approved_by:
        login, when = _gitlab_login(a.get("user")), _seconds(_text(a.get("approved_at")))
        at = _when(when)
        if login is None or (cut is not None and at is not None and at > cut):
            continue
        reviews.setdefault(login.lower(), Review(login, "APPROVED", when))
    return PullFacts(number, _text(mr.get("web_url")) or "", _gitlab_login(mr.get("author")),
                     _gitlab_login(mr.get("merge_user") or mr.get("merged_by")), merged_at,
                     merge if merged_at else None, _text(mr.get("sha")),
                     tuple(reviews.values()))


def _seconds(text: str | None) -> str | None:
    """GitLab's times (milliseconds, 2026-12-06T10:00:00.000Z) as the audit writes times;
    text that is no time stays as it is."""
    at = _when(text)
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if at else text


def _gitlab_login(user: Any) -> str | None:
    return _text(user.get("username")) if isinstance(user, dict) else None


def in_force(reviews: list[dict[str, Any]], merged_at: str | None) -> tuple[Review, ...]:
    """Per reviewer, the latest decisive review submitted at or before `merged_at` (all of
    them when the pull request is not merged); only APPROVED and CHANGES_REQUESTED stay."""
    cut = _when(merged_at)
    latest: dict[str, Review] = {}
    dated = [(_when(_text(r.get("submitted_at"))), i, r) for i, r in enumerate(reviews)]
    for when, _, r in sorted(dated, key=lambda d: (d[0] or datetime.max.replace(
            tzinfo=timezone.utc), d[1])):
        login, state = _login(r.get("user")), _text(r.get("state"))
        if login is None or state not in DECISIVE or when is None \
                or (cut is not None and when > cut):
            continue
        latest[login.lower()] = Review(login, str(state), _text(r.get("submitted_at")),
                                       _text(r.get("commit_id")))
    return tuple(r for r in latest.values() if r.state != "DISMISSED")


@dataclass(frozen=True)
class Verdict:
    """What one grant's pull request says: the audit's `approval` object and the count."""

    approval: dict[str, Any]
    approvals: int
    why_not: str | None  # why its approvals do not count at all (not merged, wrong merge)


def judge(grant: Grant, pull: PullFacts, policy: Policy,
          code_owner: Mapping[str, bool | None], provider: str = "github") -> Verdict:
    """The approval of `grant` by `pull`: approving reviews of the merged head by people other
    than the grantee (people.<h>.github, or .gitlab) and the pull request's author."""
    prov = grant.provenance
    why_not = None
    name = f"merge request !{pull.number}" if provider == "gitlab" else \
        f"pull request #{pull.number}"
    if pull.merged_at is None:
        why_not = f"{name} is not merged"
    elif prov is None or pull.merge_commit_sha != prov.merge_commit:
        why_not = (f"{name} was merged as {_short(pull.merge_commit_sha)}, "
                   f"not as {_short(prov.merge_commit if prov else None)}, the commit that "
                   "brought this grant")
    counts = [] if why_not else counting(pull, grantee_login(policy, grant, provider))
    counted = len(counts)
    approval = {
        "provider": provider, "url": pull.url, "author": pull.author,
        "merged_by": pull.merged_by, "merged_at": pull.merged_at,
        "merge_commit": pull.merge_commit_sha,
        "reviews": [{"login": r.login, "state": r.state, "submitted_at": r.submitted_at,
                     "code_owner": code_owner.get(r.login), "counted": r in counts}
                    for r in pull.reviews],
        "approvals": counted, "lookup": "ok", "note": why_not,
    }
    return Verdict(approval, counted, why_not)


def counting(pull: PullFacts, grantee: str | None) -> list[Review]:
    """The approving reviews that count: not by the author or the grantee, and of the head
    that was merged (an approval of an earlier commit did not see what came after it)."""
    others = {x.lower() for x in (pull.author, grantee) if x}
    return [r for r in pull.reviews if r.state == "APPROVED" and r.login.lower() not in others
            and (pull.head_sha is None or r.commit_id in (None, pull.head_sha))]


def unknown(provider: str, kind: str, note: str, url: str | None = None) -> Verdict:
    """No facts: the lookup failed (`kind` unavailable or not_found), saying why."""
    return Verdict({"provider": provider, "url": url, "author": None, "merged_by": None,
                    "merged_at": None, "reviews": [], "approvals": 0, "lookup": kind,
                    "note": note}, 0, note)


def recorded_approvers(approval: Mapping[str, Any] | None) -> list[str]:
    """Who approved, as an audit record's `approval` tells it: the reviews that counted. A
    record written before reviews carried `counted` lists every approving review; there the
    pull request's author's own is left out (never an approval; a grantee's cannot be told)."""
    if not approval or approval.get("lookup") != "ok" or approval.get("note"):
        return []
    author = str(approval.get("author") or "").lower()
    return [str(r.get("login")) for r in approval.get("reviews") or ()
            if r.get("state") == "APPROVED" and (
                r["counted"] if "counted" in r else str(r.get("login")).lower() != author)]


def grantee_login(policy: Policy, grant: Grant, provider: str = "github") -> str | None:
    person = policy.people.get(grant.grantee)
    if person is None:
        return None
    return person.gitlab if provider == "gitlab" else person.github


def refusal(grant: Grant, verdict: Verdict | None, policy: Policy, needed: int) -> str | None:
    """Why `grant` is not granted under `repository.require_approval: needed`; None when it
    may be. Anything not known to be approved is not."""
    head = f"repository.require_approval: {needed}: not granted: "
    if verdict is None:
        return head + "no pull request was looked up"
    if verdict.approval["lookup"] != "ok" or verdict.why_not:
        return head + str(verdict.why_not or verdict.approval["note"])
    provider = str(verdict.approval.get("provider") or "github")
    if grantee_login(policy, grant, provider) is None:
        return head + (f"the grantee {grant.grantee} has no people.{grant.grantee}.{provider}: "
                       "their own review cannot be told from another's")
    if verdict.approvals < needed:
        pr = verdict.approval["url"] or "its pull request"
        return head + (f"{pr} has {verdict.approvals} approving review(s) of the merged "
                       "commit by someone other than the grantee and the author")
    return None


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "nothing"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _login(user: Any) -> str | None:
    return _text(user.get("login")) if isinstance(user, dict) else None


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
