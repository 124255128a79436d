from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def _data_available() -> bool:
    ready = os.environ.get("MINILLM_DATA_DIR")
    return bool(ready) and (Path(ready) / "tinyshakespeare" / "input.txt").is_file()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The ready copy of the datasets that CI provides (MINILLM_DATA_DIR)."""
    if not _data_available():
        pytest.fail(
            "these tests read the real datasets: set MINILLM_DATA_DIR to a folder holding "
            "tinyshakespeare/input.txt and SST-2/{train,dev}.tsv (CI uses ../shared/data)"
        )
    return Path(os.environ["MINILLM_DATA_DIR"])
