"""Every relative link and #anchor in README.md and docs/*.md resolves (issue 13, finding 9):
the README is a front door to docs/, and a page moved or a heading renamed must not leave a
dead link. Anchors are GitHub's: the heading's text lowercased, punctuation dropped, spaces to
`-`, and `-1`, `-2`… for repeats."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) and ![alt](target); the target ends at whitespace or ')'.
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)*?\1")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    found, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            found.append((number, line))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup and punctuation dropped, lowercased, spaces to
    hyphens (runs of spaces are not merged: `MySQL / MariaDB` is `mysql--mariadb`)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose_lines(page.read_text()):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in prose_lines(page.read_text()):
        for m in LINK.finditer(INLINE_CODE.sub("", line)):
            found.append((number, m.group(1)))
    return found


def problems(page: Path, root: Path = ROOT) -> list[str]:
    bad = []
    for number, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:
            continue
        path_part, _, fragment = target.partition("#")
        dest = (page.parent / unquote(path_part)).resolve() if path_part else page
        where = f"{page.relative_to(root)}:{number}: {target}"
        if not dest.exists():
            bad.append(f"{where}: no such file")
        elif fragment and dest.suffix == ".md" and unquote(fragment) not in anchors(dest):
            bad.append(f"{where}: no heading with that anchor in {dest.name}")
        elif fragment and dest.suffix != ".md":
            bad.append(f"{where}: an anchor into a file that is not markdown")
    return bad


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert problems(page) == []


def test_the_readme_links_every_page_of_docs() -> None:
    linked = {(ROOT / t.partition("#")[0]).resolve() for _, t in links(ROOT / "README.md")}
    assert [p.name for p in PAGES[1:] if p.resolve() not in linked] == []


def test_the_checker_sees_a_dead_link_and_a_dead_anchor(tmp_path: Path) -> None:
    """The checker itself: GitHub's anchors, and a dead link is seen, code is not read."""
    assert slug("What is tested here, and what is not") == "what-is-tested-here-and-what-is-not"
    assert slug("MySQL / MariaDB") == "mysql--mariadb"
    assert slug("`jitgrant status`") == "jitgrant-status"
    page = tmp_path / "page.md"
    page.write_text("# A title\n\n## Two\n\n## Two\n\n[ok](#two-1) [dead](#three) "
                    "[gone](nowhere.md) `[code](x.md)`\n\n```\n[fenced](y.md)\n```\n")
    assert problems(page, tmp_path) == [
        "page.md:7: #three: no heading with that anchor in page.md",
        "page.md:7: nowhere.md: no such file"]
