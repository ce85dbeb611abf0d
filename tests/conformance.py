"""Loading the authors' conformance vectors (``../shared/conformance``, see its README)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CONFORMANCE = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"


def load(name: str) -> dict[str, np.ndarray]:
    """All arrays of ``NAME.npz``; fails loudly when the shared folder is absent."""
    path = CONFORMANCE / f"{name}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"conformance vectors {path} not found (../shared beside the repo)")
    with np.load(path) as f:
        return {k: f[k] for k in f.files}
