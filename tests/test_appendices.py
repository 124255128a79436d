"""The glossary and the misconceptions appendix keep the shape the book promises."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_glossary_rows():
    rows = [line for line in (ROOT / "book/glossary.md").read_text().splitlines() if line.startswith("| ")][1:]
    rows = [r for r in rows if not r.startswith("|---")]
    assert len(rows) >= 60
    terms = []
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 4, row
        term, definition, chapter, chinese = cells
        assert term and definition.endswith("."), row
        assert chapter.isdigit() and 1 <= int(chapter) <= 11, row
        assert re.search(r"[\u4e00-\u9fff]", chinese) or chinese.isascii() and chinese, row
        terms.append(term.lower())
    assert len(terms) == len(set(terms)), "a term is defined twice"


def test_misconceptions_have_claim_and_evidence():
    text = (ROOT / "book/misconceptions.md").read_text()
    entries = re.split(r"\n\*\*", text)[1:]
    assert len(entries) >= 15
    for entry in entries:
        assert "\n: " in entry, entry[:80]  # the claim, then what is right
        assert "{cite:" in entry or "{doc}" in entry, f"no evidence for: {entry[:80]}"
