"""Shared pytest configuration: CPU only, few threads, deterministic."""

from __future__ import annotations

import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import torch

torch.set_num_threads(2)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ben_v2_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic BigEarthNet v2 dataset written by the synthetic writer."""
    from rsfuse.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("ben_v2")
    synthesize("bigearthnet-v2", root, n=48, seed=3, workers=1, progress=False)
    return root


@pytest.fixture(scope="session")
def ben_v1_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic BigEarthNet v1 dataset written by the synthetic writer."""
    from rsfuse.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("ben_v1")
    synthesize("bigearthnet-v1", root, n=48, seed=4, workers=1, progress=False)
    return root


@pytest.fixture(scope="session")
def ben_v2_store(ben_v2_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``ben_v2_root`` dataset converted by ``rsfuse convert`` into the fast store."""
    from rsfuse.data.convert import convert

    out = tmp_path_factory.mktemp("stores") / "ben_v2.store"
    return convert("bigearthnet-v2", ben_v2_root, out, workers=1)


@pytest.fixture(scope="session")
def dfc2020_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic DFC2020: 16 patches of 32 px (8 validation, 8 test); read with patch_size=32."""
    from rsfuse.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("dfc2020")
    synthesize("dfc2020", root, n=16, seed=5, workers=1, progress=False, patch_size=32)
    return root


@pytest.fixture(scope="session")
def noldo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic NoLDO-S12: 8 pretraining locations of 48 px (LMDB + GeoTIFF forms, noisy and
    clean labels) and 4 downstream tiles (3 train, 1 test); read with patch_size=48."""
    from rsfuse.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("noldo")
    synthesize("noldo-s12", root, n=8, seed=6, workers=1, progress=False, patch_size=48,
               n_downstream=4, geotiff=True)  # fmt: skip
    return root
