"""README's "Guarantees" names, for each promise, the test that checks it: every test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def test_every_test_named_in_the_guarantees_exists():
    section = _section((ROOT / "README.md").read_text(), "Guarantees")
    named = set(re.findall(r"\btest_\w+", section)) - {"test_guarantees", "test_monailabel_app", "test_bundle_download", "test_nnunet"}
    assert len(named) >= 20, f"the Guarantees section names only {sorted(named)}"
    defined = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", path.read_text(), flags=re.MULTILINE))
    assert sorted(named - defined) == []
