"""The front door and the docs: README.md stays short, every link of README.md and docs/ resolves, and the
guarantees page names, for each promise, a test that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "docs" / "results" / "README.md",
         ROOT / "bundles" / "README.md"]
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """The GitHub anchors of a page's headings."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_readme_is_a_short_front_door():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for marker in ("main-command", "test-command", "numpy2-command"):  # what CI runs
        assert f"<!-- {marker} -->" in readme and f"<!-- /{marker} -->" in readme
    assert all(f"(docs/{page.name})" in readme for page in (ROOT / "docs").glob("*.md"))  # the map names every page


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page):
    broken = []
    for target in _LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):  # an outside address
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(target)
    assert broken == []


def test_every_test_named_in_the_guarantees_exists():
    text = (ROOT / "docs" / "guarantees.md").read_text()
    modules = {path.stem for path in (ROOT / "tests").glob("test_*.py")}  # a module named before its tests
    named = set(re.findall(r"\btest_\w+", text)) - modules
    assert len(named) >= 20, f"the guarantees page names only {sorted(named)}"
    defined = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", path.read_text(), flags=re.MULTILINE))
    assert sorted(named - defined) == []
