"""Every entry of book/references.bib is cited somewhere in the book, and every citation has an
entry (the strict build also fails on the latter)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from normalize_notebooks import read_joined

ROOT = Path(__file__).resolve().parent.parent
CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")


def _bib_keys() -> list[str]:
    return re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "book/references.bib").read_text(), re.M)


def _book_texts():
    for path in sorted((ROOT / "book").glob("*.md")):
        yield path.name, path.read_text()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = read_joined(path)["cells"]
        yield path.name, "\n".join(c["source"] for c in cells if c["cell_type"] == "markdown")


def _cited() -> dict[str, set[str]]:
    cited: dict[str, set[str]] = {}
    for name, text in _book_texts():
        for group in CITE.findall(text):
            for key in group.split(","):
                cited.setdefault(key.strip(), set()).add(name)
    return cited


def test_bib_file_parses():
    from pybtex.database import parse_file

    entries = parse_file(str(ROOT / "book/references.bib")).entries
    assert sorted(entries) == sorted(_bib_keys())


def test_bib_keys_are_unique():
    keys = _bib_keys()
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


def test_every_reference_is_cited():
    unused = sorted(set(_bib_keys()) - set(_cited()))
    assert not unused, f"references.bib entries cited nowhere: {unused}"


def test_every_citation_has_an_entry():
    undefined = {k: sorted(v) for k, v in _cited().items() if k not in set(_bib_keys())}
    assert not undefined, f"citations without a references.bib entry: {undefined}"


def test_entries_have_authors_title_year():
    text = (ROOT / "book/references.bib").read_text()
    for entry in re.split(r"\n(?=@)", text.strip()):
        key = re.match(r"@\w+\{([^,]+),", entry).group(1)
        for field in ("author", "title", "year"):
            assert re.search(rf"^\s*{field}\s*=", entry, re.M), f"{key} has no {field}"
