"""Every link in README.md, CONTRIBUTING.md and docs/*.md resolves, and the README stays short.

A relative link must name a file or folder that exists; a ``#anchor`` must match a heading of the
target Markdown file under GitHub's slug rules (lowercase, punctuation dropped, spaces to ``-``,
``-1``, ``-2``... appended to repeated headings). External links (``http:``, ``mailto:``) are not
fetched.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 150
CONTRIBUTING_MAX_LINES = 120

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_LINK = re.compile(r"(?<!!)\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md"]
    files += sorted((ROOT / "docs").glob("*.md"))
    return [f for f in files if f.is_file()]


def prose(text: str) -> str:
    """``text`` with fenced code blocks and inline code spans blanked (line count kept)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else _CODE_SPAN.sub("", line))
    return "\n".join(lines)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # punctuation dropped (letters, digits, _ and - kept)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every inline link and image; a link's text may wrap lines."""
    text = prose(path.read_text(encoding="utf-8"))
    found = [*_LINK.finditer(text), *_IMAGE.finditer(text)]
    return sorted((text.count("\n", 0, m.start()) + 1, m.group(1)) for m in found)


def broken(path: Path) -> list[str]:
    problems = []
    for number, target in links(path):
        where = f"{path.relative_to(ROOT)}:{number}: ({target})"
        if not target:
            problems.append(f"{where} empty link target")
            continue
        if _EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{where} {file_part} does not exist")
            continue
        if anchor:
            if dest.is_dir() or dest.suffix.lower() != ".md":
                problems.append(f"{where} an anchor needs a Markdown file")
            elif anchor not in anchors(dest):
                problems.append(f"{where} no heading with anchor #{anchor} in "
                                f"{dest.relative_to(ROOT)}")
    return problems


def test_slug_follows_github() -> None:
    assert slug("Known issues and incidents") == "known-issues-and-incidents"
    assert slug("`recpipe run`: one night") == "recpipe-run-one-night"
    assert slug("Locks, resume & exit codes") == "locks-resume--exit-codes"
    assert slug("Key scheme (a contract)") == "key-scheme-a-contract"
    assert slug("ranker_model and k") == "ranker_model-and-k"


def test_link_parser_skips_code() -> None:
    text = "[a](x.md) `[b](y.md)`\n```\n[c](z.md)\n```\n[d\ne](w.md#top) ![i](p.png)"
    assert [m.group(1) for m in _LINK.finditer(prose(text))] == ["x.md", "w.md#top"]
    assert [m.group(1) for m in _IMAGE.finditer(prose(text))] == ["p.png"]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(path: Path) -> None:
    assert broken(path) == []


def test_docs_exist() -> None:
    names = {p.name for p in markdown_files()}
    assert {"README.md", "CONTRIBUTING.md"} <= names
    assert len(names) > 2, "docs/*.md hold the reference the README links to"


def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_contributing_is_short() -> None:
    lines = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= CONTRIBUTING_MAX_LINES, f"CONTRIBUTING.md has {len(lines)} lines"
