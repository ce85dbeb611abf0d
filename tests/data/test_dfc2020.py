"""DFC2020 reader on tiny hand-made SEN12MS-style folders and on the synthetic writer's output.

Hand-made patches: S2 band c (registry order) = 100 * c + 1, S1 VV = -10 dB, VH = -20 dB, and a
label row holding every stored value 0–10, so band order and the 10 → 8 class remap are pinned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from rasterio.transform import Affine

from rsfuse.bands import S2_L1C_ORDER
from rsfuse.data.classes import DFC2020, DFC2020_REMAP
from rsfuse.data.dfc2020 import DFC2020Dataset, dfc2020_path
from rsfuse.errors import ConfigError, DataError
from rsfuse.io.geotiff import write_geotiff

N = 11
T = Affine(10, 0, 500000, 0, -10, 6000000)


def write_patch(root: Path, roi: str, scene: str, patch: str, labels: np.ndarray | None = None,
                s2_count: int = 13) -> None:  # fmt: skip
    s2 = np.stack([np.full((N, N), 100 * c + 1, np.uint16) for c in range(s2_count)])
    s1 = np.stack([np.full((N, N), -10.0, np.float32), np.full((N, N), -20.0, np.float32)])
    if labels is None:
        labels = np.tile(np.arange(11, dtype=np.uint8), (N, 1))  # every column a stored value
    for m, arr in (("s1", s1), ("s2", s2), ("dfc", labels)):
        write_geotiff(dfc2020_path(root, roi, m, scene, patch), arr, crs="EPSG:32633", transform=T)


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    write_patch(tmp_path, "ROIs0000_validation", "3", "1")
    write_patch(tmp_path, "ROIs0000_validation", "3", "2")
    write_patch(tmp_path, "ROIs0000_test", "0", "5")
    return tmp_path


def test_remap_band_order_and_ids(root: Path) -> None:
    ds = DFC2020Dataset(root, split="validation", patch_size=N)
    assert len(ds) == 2 and ds.sample_ids == [
        "ROIs0000_validation_3_p1",
        "ROIs0000_validation_3_p2",
    ]
    s = ds[0]
    assert s["s1"].shape == (2, N, N) and s["s1"][0, 0, 0] == -10 and s["s1"][1, 0, 0] == -20
    assert [float(s["s2"][c, 0, 0]) for c in range(13)] == [100 * c + 1 for c in range(13)]
    # stored 0..10 → 255, Forest 0, Shrubland 1, Savanna 255, Grassland 2, Wetlands 3,
    # Croplands 4, Urban 5, Snow/Ice 255, Barren 6, Water 7
    assert s["mask"][0].tolist() == [255, 0, 1, 255, 2, 3, 4, 5, 255, 6, 7]
    assert list(DFC2020_REMAP) == s["mask"][0].tolist()
    assert DFC2020[2] == "Grassland" and DFC2020[7] == "Water" and ds.num_classes == 8
    assert s["meta"]["crs"] == "EPSG:32633"
    assert "season" not in s


def test_band_subset_and_splits(root: Path) -> None:
    ds = DFC2020Dataset(root, split="train", s2_bands="rgb", modalities=["s2"], patch_size=N)
    s = ds[0]
    idx = [S2_L1C_ORDER.index(b) for b in ("B04", "B03", "B02")]
    assert [float(s["s2"][c, 0, 0]) for c in range(3)] == [100 * i + 1 for i in idx]
    assert "s1" not in s and s["present"] == {"s1": False, "s2": True}
    assert len(DFC2020Dataset(root, split="test", patch_size=N)) == 1
    with pytest.raises(ConfigError):
        DFC2020Dataset(root, split="holdout")


def test_bad_input(tmp_path: Path) -> None:
    bad = np.full((N, N), 11, np.uint8)
    write_patch(tmp_path, "ROIs0000_test", "1", "1", labels=bad)
    write_patch(tmp_path, "ROIs0000_test", "1", "2", s2_count=12)
    ds = DFC2020Dataset(tmp_path, split="test", patch_size=N)
    with pytest.raises(DataError, match=r"values \[11\]"):
        ds[0]
    with pytest.raises(DataError, match="12 bands, expected 13") as e:
        ds[1]
    assert "s2_1" in str(e.value)
    skip = DFC2020Dataset(tmp_path, split="test", patch_size=N, on_error="skip")
    with pytest.raises(DataError, match="every one"):
        skip[0]
    assert len(skip.skipped) == 2
    with pytest.raises(DataError, match="raster is"):
        DFC2020Dataset(tmp_path, split="test", patch_size=8)[0]
    with pytest.raises(DataError, match="no ROIs"):
        DFC2020Dataset(tmp_path, split="validation")


def test_synthetic_layout(dfc2020_root: Path) -> None:
    val = DFC2020Dataset(dfc2020_root, split="validation", patch_size=32)
    test = DFC2020Dataset(dfc2020_root, split="test", patch_size=32)
    assert len(val) == 8 and len(test) == 8
    masks = np.stack([val[i]["mask"].numpy() for i in range(len(val))])
    assert set(np.unique(masks)) <= set(range(8)) | {255}
    assert isinstance(val.plot(val[0]), Figure)
