"""docs/README.md, the documentation's index: it links every page of docs/, every link reaches a page and,
when it names a section, a heading of that page (GitHub's anchor rule); README.md points to it."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
INDEX = DOCS / "README.md"
LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#([^)\s]+))?\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_anchor(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")}


def _links() -> list[tuple[str, str | None]]:
    return LINK.findall(INDEX.read_text())


def test_index_links_every_page():
    """Every page of docs/ but the index is linked from it."""
    linked = {page for page, _ in _links()}
    assert sorted(page.name for page in DOCS.glob("*.md") if page != INDEX and page.name not in linked) == []


def test_every_link_reaches_its_page_and_section():
    """Each link's page exists and each named section is a heading of that page."""
    broken = [f"{page}#{section}" if section else page for page, section in _links()
              if not (DOCS / page).exists() or (section and section not in _anchors(DOCS / page))]
    assert broken == []


def test_readme_points_to_the_index():
    """The top-level README's documentation section links docs/README.md."""
    assert "docs/README.md" in (REPO / "README.md").read_text()
