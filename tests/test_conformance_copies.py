"""The conformance vectors inside the repository equal the shared reference copies.

``tests/data/conformance`` is what every test reads. Where the project's shared folder
(``shared/conformance`` beside the repository) sits beside the checkout, each shipped file must be
byte-identical to its source there; a fresh clone without it checks only that every file
the tests read is present.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conformance import CONFORMANCE, load

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"
NAMES = ("moco_v3", "dino", "mae", "cromss", "cromss_v2", "mgsvit", "segmetrics")


@pytest.mark.parametrize("name", NAMES)
def test_shipped_vectors_load(name: str) -> None:
    arrays = load(name)
    assert arrays, f"{name}.npz holds no arrays"


def test_copies_equal_shared_source_when_present() -> None:
    if not SHARED.is_dir():
        # A user's fresh clone: nothing to compare with; the shipped files are the reference.
        assert all((CONFORMANCE / f"{n}.npz").is_file() for n in NAMES)
        return
    for name in NAMES:
        ours = hashlib.sha256((CONFORMANCE / f"{name}.npz").read_bytes()).hexdigest()
        theirs = hashlib.sha256((SHARED / f"{name}.npz").read_bytes()).hexdigest()
        assert ours == theirs, f"{name}.npz differs from {SHARED / name}.npz"
