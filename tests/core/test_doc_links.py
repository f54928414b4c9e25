"""Every documentation page a file of the repository cites exists in the repository, and every
numbered section it cites exists in that page (a user's clone has nothing beside the checkout)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("evobench", "plugins", "docs", "tests", "benchmarks", "examples", "results",
           "README.md", "pyproject.toml", "tox.ini")
SUFFIXES = {".py", ".md", ".toml", ".ini", ".txt", ".cfg"}
# a page as "docs" + "/" or ": " + name + ".md", then optionally "section(s) 3.2, 4 and 5.1"
CITE = re.compile(r"docs(?:/|: )([\w.-]+\.md)(?:,?\s+\(?sections?\s+((?:\d+(?:\.\d+)*(?:,\s*|\s+and\s+)?)+))?")


def _files() -> list[Path]:
    out = []
    for name in SCANNED:
        path = ROOT / name
        if path.is_file():
            out.append(path)
        elif path.is_dir():
            out += [p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix in SUFFIXES
                    and "__pycache__" not in p.parts]
    return out


def _citations() -> list[tuple[str, str, tuple[str, ...]]]:
    """(citing file, cited page, cited section numbers) for every citation."""
    found = []
    for path in _files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for m in CITE.finditer(text):
            sections = tuple(re.findall(r"\d+(?:\.\d+)*", m.group(2) or ""))
            found.append((str(path.relative_to(ROOT)), m.group(1), sections))
    return found


CITATIONS = _citations()


def test_citations_are_found():
    pages = {page for _, page, _ in CITATIONS}
    assert {"methods.md", "harness.md", "tvae-method.md"} <= pages


def test_every_cited_page_exists():
    missing = sorted({(src, page) for src, page, _ in CITATIONS
                      if not (ROOT / "docs" / page).is_file()})
    assert not missing, f"cited documentation pages missing from docs/: {missing}"


def _numbered_headings(page: str) -> set[str]:
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    return set(re.findall(r"^#{2,4}\s+(\d+(?:\.\d+)*)\.?\s", text, flags=re.M))


@pytest.mark.parametrize("page", sorted({p for _, p, s in CITATIONS if s}))
def test_every_cited_section_exists(page):
    headings = _numbered_headings(page)
    missing = sorted({(src, n) for src, p, secs in CITATIONS if p == page for n in secs
                      if n not in headings})
    assert not missing, f"sections of docs/{page} cited but not there: {missing}"
