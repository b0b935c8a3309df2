"""The documentation holds together: every relative link and #anchor in README.md,
CONTRIBUTING.md and docs/ resolves, every docs page is in the index, the README stays a
five-minute read, and no commit hash stands in for words (docs/README.md, "Writing these
pages")."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *DOCS.rglob("*.md")])
README_MAX_LINES = 250

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
#: [text](target) or ![alt](target "title"); the text may hold one level of brackets.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
#: [label]: target
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
#: A commit hash as written in prose: 7 to 40 lowercase hex digits standing alone, with at
#: least one digit and one letter (so "decade", "2026" or "1209600000" are not hashes).
HASH = re.compile(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b")
#: Hex that is legitimately there: UUIDs (alert ids in examples).
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
#: Any other hex-looking word that is not a commit (none so far).
ALLOWED_HEX: frozenset[str] = frozenset()


def outside_fences(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            out.append((number, line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text lowercased, punctuation dropped
    (but hyphens and underscores), each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text).lower()  # inline HTML
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """Every anchor of a Markdown file; repeated headings get -1, -2, … as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in outside_fences(path.read_text()):
        if m := HEADING.match(line):
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return frozenset(found)


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every relative link of a page (external ones left out)."""
    out = []
    for number, line in outside_fences(path.read_text()):
        line = INLINE_CODE.sub(lambda m: " " * len(m.group(0)), line)  # code spans: no links
        targets = [m.group(1) for m in INLINE_LINK.finditer(line)]
        if m := REFERENCE_LINK.match(line):
            targets.append(m.group(1))
        out += [(number, t) for t in targets
                if t and not SCHEME.match(t) and not t.startswith("//")]
    return out


def name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken = []
    for number, target in links(page):
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / unquote(file_part)).resolve() if file_part else page
        where = f"{name(page)}:{number}: {target}"
        if not dest.exists():
            broken.append(f"{where}: no such file or folder")
        elif anchor and dest.suffix == ".md" and unquote(anchor).lower() not in anchors(dest):
            broken.append(f"{where}: no heading with anchor #{anchor} in {name(dest)}")
    assert not broken, "\n".join(broken)


def test_every_docs_page_is_in_the_index() -> None:
    index = DOCS / "README.md"
    listed = {(index.parent / t.partition("#")[0]).resolve() for _, t in links(index)}
    missing = [name(p) for p in DOCS.rglob("*.md") if p != index and p.resolve() not in listed]
    assert not missing, f"add these pages to docs/README.md: {missing}"


def test_the_readme_is_a_five_minute_read() -> None:
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move details to docs/")


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_no_commit_hashes(page: Path) -> None:
    found = []
    for number, line in enumerate(page.read_text().splitlines(), 1):
        for word in HASH.findall(UUID.sub(" ", line)):
            if word not in ALLOWED_HEX:
                found.append(f"{name(page)}:{number}: {word}")
    assert not found, ("commit hashes in the docs: say what changed in words instead\n"
                       + "\n".join(found))


# -- the checker itself -------------------------------------------------------------------------
@pytest.mark.parametrize(("heading", "anchor"), [
    ("Scores and windows: NPS, CSAT and CES per segment",
     "scores-and-windows-nps-csat-and-ces-per-segment"),
    ("What is in `deploy/`", "what-is-in-deploy"),
    ("Latency: the stalls that were fixed", "latency-the-stalls-that-were-fixed"),
    ("Not settings: build and test switches", "not-settings-build-and-test-switches"),
    ("Quick start (two commands)", "quick-start-two-commands"),
    ("cx_stream [docs](x.md)", "cx_stream-docs"),
])
def test_slug_follows_github(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_links_skip_code_and_external_targets(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("[a](b.md#c) [`x`](../y/) ![i](img.png \"t\") [e](https://example.com)\n"
                    "`[not](a-link.md)`\n```\n[not](either.md)\n```\n[ref]: z.md\n")
    assert [t for _, t in links(page)] == ["b.md#c", "../y/", "img.png", "z.md"]


def test_hash_pattern() -> None:
    def hashes(line: str) -> list[str]:
        return HASH.findall(UUID.sub(" ", line))

    assert hashes("on commit 3562a2f and d832962") == ["3562a2f", "d832962"]
    assert hashes("retention.ms=1209600000, decade, 2026-10-31, deadbeef") == []
    assert hashes('"alert_id": "222976ab-7f85-566b-a23b-50e142735d88"') == []
