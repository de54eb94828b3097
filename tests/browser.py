"""A real headless browser for the HTML report: Debian's chromium, driven by its own command
line (`--dump-dom`: the DOM after the page's script ran; `--screenshot`). Tests that need it
skip, saying so, only where no chromium binary exists; .ci/run installs it."""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome")
                 if (found := shutil.which(name))), None)
WINDOW = (1280, 900)


def browser() -> str:
    if CHROMIUM is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium); .ci/run "
                    "installs it")
    return CHROMIUM


def _run(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    """One headless chromium with a profile of its own (other tests may run one at the same
    time), no sandbox (containers run as root), no GPU."""
    profile.mkdir(parents=True, exist_ok=True)
    return subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", "--disable-extensions",
                           f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180, check=False)


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    text: str = ""

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())


class Dom(HTMLParser):
    """The elements of a dumped DOM, in document order, with the text directly inside each."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs))
        self.elements.append(element)
        if tag not in ("meta", "input", "br", "img", "link", "hr"):
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1].text += data

    def by_class(self, name: str) -> list[Element]:
        return [e for e in self.elements if name in e.classes()]

    def by_tag(self, tag: str) -> list[Element]:
        return [e for e in self.elements if e.tag == tag]

    def by_id(self, ident: str) -> Element:
        [found] = [e for e in self.elements if e.attrs.get("id") == ident]
        return found


def dump_dom(page: Path, fragment: str, profile: Path) -> tuple[str, Dom]:
    """The page's DOM once its script ran, opened as file://...#fragment."""
    proc = _run(["--dump-dom", page.resolve().as_uri() + fragment], profile)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = Dom()
    dom.feed(proc.stdout)
    return proc.stdout, dom


def screenshot(page: Path, fragment: str, profile: Path, out: Path) -> tuple[int, int]:
    """A PNG of the page; its width and height as its header says."""
    proc = _run([f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={out}",
                 "--hide-scrollbars", page.resolve().as_uri() + fragment], profile)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height
