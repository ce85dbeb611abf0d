"""Synthetic segmentation layouts: class mappings, the Dynamic-World-like noise model
(accuracy 0.6–0.8, structured errors), determinism, and ``rsfuse synth`` for the new layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from rsfuse.cli import run
from rsfuse.data.classes import BEN19, DFC2020_10, DW9, OSM13
from rsfuse.data.dfc2020 import DFC2020Dataset
from rsfuse.data.synthetic import LAYOUTS, SyntheticWorld, synthesize
from rsfuse.data.synthetic.noisy_labels import dynamic_world_noise, pixel_accuracy
from rsfuse.data.synthetic.segmentation import (
    BEN19_TO_DFC10,
    BEN19_TO_DW9,
    BEN19_TO_OSM13,
    dfc_labels,
    dw_labels,
)
from rsfuse.errors import ConfigError


def test_class_mappings() -> None:
    assert len(BEN19_TO_DW9) == len(BEN19_TO_DFC10) == len(BEN19_TO_OSM13) == len(BEN19)
    name = {i: n for i, n in enumerate(BEN19)}
    assert DW9[BEN19_TO_DW9[17]] == "Water" and name[17] == "Inland waters"
    assert DW9[BEN19_TO_DW9[9]] == "Trees" and DW9[BEN19_TO_DW9[0]] == "Built area"
    assert DFC2020_10[BEN19_TO_DFC10[2] - 1] == "Croplands"
    assert DFC2020_10[BEN19_TO_DFC10[7] - 1] == "Savanna"  # agro-forestry, ignored later
    assert OSM13[BEN19_TO_OSM13[1]] == "Industrial" and OSM13[BEN19_TO_OSM13[16]] == "Coastal"
    assert max(BEN19_TO_DW9) < 8  # Snow & Ice comes from winter snow only


def test_snow_becomes_snow_and_ice() -> None:
    world = SyntheticWorld(0)
    for i in range(200):
        loc = world.location(i, size=24, season=0)
        if loc.has_snow:
            snow = loc.snow > 0.5
            assert (dw_labels(loc)[snow] == 8).all() and (dfc_labels(loc)[snow] == 8).all()
            return
    pytest.fail("no snowy location among 200 winter locations")


def test_noise_accuracy_and_structure() -> None:
    world = SyntheticWorld(0)
    accs, near, far = [], [], []
    for i in range(12):
        rng = world.streams(i)["layout"]
        for s in (0, 2):
            clean = dw_labels(world.location(i, size=264, season=s))
            noisy = dynamic_world_noise(clean, rng)
            accs.append(pixel_accuracy(noisy, clean))
            edge = ndimage.grey_dilation(clean, 5) != ndimage.grey_erosion(clean, 5)
            if edge.any() and (~edge).any():
                near.append(np.mean(noisy[edge] != clean[edge]))
                far.append(np.mean(noisy[~edge] != clean[~edge]))
    assert 0.6 <= float(np.mean(accs)) <= 0.8
    assert np.mean(near) > 1.5 * np.mean(far)  # errors concentrate on class boundaries
    # confusable pairs: most wrong pixels of a grass patch become crops
    clean = np.full((96, 96), 2)
    noisy = dynamic_world_noise(clean, np.random.default_rng(1), speckle=0.0)
    wrong = noisy[noisy != 2]
    assert wrong.size and np.mean(wrong == 4) > 0.9


def test_noise_misses_small_objects() -> None:
    clean = np.full((64, 64), 1)
    clean[30:34, 30:34] = 6  # 16 px building in a forest
    noisy = dynamic_world_noise(clean, np.random.default_rng(0), boundary_px=0.0,
                                confusion_cover=0.0, speckle=0.0)  # fmt: skip
    assert (noisy == 1).all()


def test_deterministic(tmp_path: Path) -> None:
    for k in ("a", "b"):
        synthesize("dfc2020", tmp_path / k, n=3, seed=9, workers=1, progress=False, patch_size=16)
    a = DFC2020Dataset(tmp_path / "a", split="test", patch_size=16)[0]
    b = DFC2020Dataset(tmp_path / "b", split="test", patch_size=16)[0]
    assert (a["s2"] == b["s2"]).all() and (a["mask"] == b["mask"]).all()
    with pytest.raises(ConfigError, match="patch_size"):
        synthesize("noldo-s12", tmp_path / "c", n=1, seed=0, progress=False, patch_size=50)


def test_cli_synth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert {"ssl4eo-s12", "ssl4eo-s12-v1.1", "noldo-s12", "dfc2020"} <= set(LAYOUTS)
    with pytest.raises(SystemExit):
        run(["synth", "--help"])
    out = capsys.readouterr().out
    for name in ("ssl4eo-s12", "noldo-s12", "dfc2020"):
        assert name in out
    run(["synth", "--layout", "noldo-s12", "--root", str(tmp_path), "-n", "1", "--seed", "0",
         "--workers", "1", "--no-progress"])  # fmt: skip
    for name in ("dw_labels.lmdb", "dw_labels_clean.lmdb", "0k_251k_uint8_s2c.lmdb",
                 "dw_complete_ids.csv", "dw_train_lmdb", "osm_test_lmdb"):  # fmt: skip
        assert (tmp_path / name).exists(), name
    for name in ("s2c", "dw_noisy_labels", "osm_test"):  # one form by default: no GeoTIFFs
        assert not (tmp_path / name).exists(), name
    both = tmp_path / "both"
    run(["synth", "--layout", "noldo-s12", "--root", str(both), "-n", "1", "--seed", "0",
         "--workers", "1", "--no-progress", "--noldo-geotiff"])  # fmt: skip
    for name in ("0k_251k_uint8_s2c.lmdb", "s2c", "dw_noisy_labels", "osm_test", "osm_test_lmdb"):
        assert (both / name).exists(), name
