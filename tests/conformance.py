"""Loading the authors' conformance vectors shipped in ``tests/data/conformance``.

The files are copies of the project's shared reference vectors (see the README beside
them for each array's source repository, commit and function); the tests read them from
inside the repository, so a fresh clone needs nothing beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CONFORMANCE = Path(__file__).resolve().parent / "data" / "conformance"


def load(name: str) -> dict[str, np.ndarray]:
    """All arrays of ``tests/data/conformance/NAME.npz``."""
    path = CONFORMANCE / f"{name}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"conformance vectors {path} not found")
    with np.load(path) as f:
        return {k: f[k] for k in f.files}
