"""README and docs/: short enough to read, and every link in them leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def test_readme_is_for_users() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    # the two commands that set up a fresh machine: the demo and the tests (CI runs the second)
    assert "bash scripts/setup.sh && .venv/bin/pinpoint demo" in text
    assert "bash scripts/setup.sh --test && .venv/bin/python -m pytest -q" in text
    table = [line for line in text.split("## Results on NUAA-SIRST")[1].splitlines() if line.startswith("| `")]
    assert 0 < len(table) <= 10


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file(page: Path) -> None:
    for target, anchor in LINK.findall(page.read_text()):
        if "://" in target:
            continue
        linked = (page.parent / target).resolve()
        assert linked.exists(), f"{page.relative_to(ROOT)} links to {target}, which is not there"
        if anchor and linked.suffix == ".md":
            headings = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
                        for line in linked.read_text().splitlines() if line.startswith("#")}
            assert anchor[1:] in headings, f"{page.relative_to(ROOT)} links to {target}{anchor}, no such heading"
