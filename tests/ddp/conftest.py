"""Data of the DDP tests: one small BigEarthNet v2 store with an odd validation split."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ddp_ben(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """20 synthetic BigEarthNet v2 locations (9 train, 3 validation, 3 test patches without
    cloud or snow) and their store: ``(root, store)``. An odd validation split is one the
    default distributed sampler would pad with a repeated sample on 2 processes."""
    from rsfuse.data.convert import convert
    from rsfuse.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("ddp_ben")
    synthesize("bigearthnet-v2", root, n=20, seed=7, workers=1, progress=False)
    store = convert("bigearthnet-v2", root, tmp_path_factory.mktemp("ddp") / "ben.store")
    return root, store
