"""S2 validity in the data layer: reBEN's second metadata file, presence flags, per-pixel
masks, the detectors and the cloud augmentation."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rsfuse.bands import S2_L1C_ORDER, S2_L2A_ORDER
from rsfuse.data import bigearthnet_layout as layout
from rsfuse.data import clouds as C
from rsfuse.data.bigearthnet import BigEarthNetV2
from rsfuse.data.sample import check_sample, collate
from rsfuse.data.transforms import BatchAugmentation, RandomClouds, RandomRot90
from rsfuse.errors import ConfigError, DataError

from .test_bigearthnet import v2_names, write_v2


def _land(bands: tuple[str, ...], h: int = 40, w: int = 40) -> np.ndarray:
    """Vegetation-like DN [C, H, W] with a little texture."""
    rng = np.random.default_rng(0)
    veg = dict(zip(S2_L1C_ORDER, (250, 300, 550, 300, 900, 2700, 3400, 3600, 3700, 3300, 15,
                                 1900, 850)))  # fmt: skip
    x = np.stack([np.full((h, w), veg[b], np.float32) for b in bands])
    return x * (1 + 0.05 * rng.standard_normal((1, h, w)).astype(np.float32))


def _with_cloud(x: np.ndarray, bands: tuple[str, ...], rows: slice) -> np.ndarray:
    x = x.copy()
    for i, b in enumerate(bands):
        x[i, rows] = {"B10": 900.0, "B11": 4500.0, "B12": 3500.0}.get(b, 6000.0)
    return x


# ------------------------------------------------------------------------ reBEN layout
def _split_v2(root: Path, rows: list[dict]) -> None:
    """Write a v2 root the way reBEN ships it: flagged patches in the second parquet."""
    write_v2(root, rows)
    df = pd.read_parquet(root / layout.V2_METADATA)
    flagged = df["contains_seasonal_snow"] | df["contains_cloud_or_shadow"]
    df[flagged].to_parquet(root / layout.V2_FLAGGED_METADATA)
    df[~flagged].to_parquet(root / layout.V2_METADATA)


ROWS = [
    {"labels": ["Arable land"], "split": "train"},
    {"labels": ["Pastures"], "split": "train", "snow": True},
    {"labels": ["Inland waters"], "split": "train", "cloud": True},
    {"labels": ["Urban fabric"], "split": "train", "cloud": True, "snow": True},
]


def test_reben_flagged_patches_come_from_the_second_parquet(tmp_path: Path) -> None:
    _split_v2(tmp_path, ROWS)
    ids = [v2_names(k)[0] for k in range(4)]
    assert BigEarthNetV2(tmp_path).sample_ids == ids[:1]
    assert BigEarthNetV2(tmp_path, include_snow=True).sample_ids == [ids[0], ids[1]]
    assert BigEarthNetV2(tmp_path, include_cloudy=True).sample_ids == [ids[0], ids[2]]
    both = BigEarthNetV2(tmp_path, include_snow=True, include_cloudy=True)
    assert both.sample_ids == ids
    assert both.cloudy_flags.tolist() == [False, False, True, True]
    assert both.snow_flags.tolist() == [False, True, False, True]
    s = both[2]
    assert s["meta"]["cloudy"] is True and s["present"]["s2"] is True  # clouds="none"


def test_a_patch_in_both_metadata_files_is_refused(tmp_path: Path) -> None:
    _split_v2(tmp_path, ROWS)
    clean = pd.read_parquet(tmp_path / layout.V2_METADATA)
    flagged = pd.read_parquet(tmp_path / layout.V2_FLAGGED_METADATA)
    pd.concat([flagged, clean]).to_parquet(tmp_path / layout.V2_FLAGGED_METADATA)
    with pytest.raises(DataError, match=layout.V2_FLAGGED_METADATA):
        BigEarthNetV2(tmp_path, include_cloudy=True)


def test_synthetic_v2_writes_the_release_split(ben_v2_root: Path) -> None:
    clean = pd.read_parquet(ben_v2_root / layout.V2_METADATA)
    flagged = pd.read_parquet(ben_v2_root / layout.V2_FLAGGED_METADATA)
    flags = ["contains_seasonal_snow", "contains_cloud_or_shadow"]
    assert len(flagged) > 0 and flagged[flags].any(axis=1).all()
    assert not clean[flags].any(axis=None)
    n_cloudy = int(flagged["contains_cloud_or_shadow"].sum())
    test = flagged["split"] == "test"
    ds = BigEarthNetV2(ben_v2_root, split="test", include_cloudy=True, include_snow=True)
    assert int(ds.cloudy_flags.sum()) == int(flagged.loc[test, flags[1]].sum())
    assert n_cloudy >= 1


def test_metadata_flag_marks_s2_absent(tmp_path: Path) -> None:
    _split_v2(tmp_path, ROWS)
    ds = BigEarthNetV2(tmp_path, include_cloudy=True, clouds="metadata")
    clear, cloudy = ds[0], ds[1]
    assert clear["present"]["s2"] and not cloudy["present"]["s2"]
    assert "valid" not in cloudy  # a flag says nothing about pixels
    with pytest.raises(ConfigError, match="cloud masks"):
        BigEarthNetV2(tmp_path, clouds="mask")


# ------------------------------------------------------------------------ detectors
def test_spectral_test_is_used_for_l2a_and_finds_the_cloud(caplog) -> None:
    bands = S2_L2A_ORDER
    x = _with_cloud(_land(bands), bands, slice(0, 10))
    with caplog.at_level(logging.WARNING):
        mask, method = C.detect_clouds(x, bands, "L2A", dilate=0)
    assert method == "spectral"
    assert mask[:10].all() and not mask[10:].any()


def test_s2cloudless_on_l1c_and_its_fallbacks(monkeypatch) -> None:
    bands = S2_L1C_ORDER
    x = _with_cloud(_land(bands), bands, slice(0, 12))
    mask, method = C.detect_clouds(x, bands, "L1C", dilate=0)
    assert method == "s2cloudless"
    assert mask[:10].mean() > 0.95 and mask[20:].mean() < 0.05
    # a band missing: the spectral test
    no_b09 = tuple(b for b in bands if b != "B09")
    _, method = C.detect_clouds(x[[bands.index(b) for b in no_b09]], no_b09, "L1C")
    assert method == "spectral"
    # the package missing: the spectral test
    monkeypatch.setattr(C, "_S2CLOUDLESS", False)
    mask, method = C.detect_clouds(x, bands, "L1C", dilate=0)
    assert method == "spectral" and mask[:12].all() and not mask[12:].any()


def test_ssl4eo_cloud_mask_and_scl() -> None:
    cm = np.array([[0, 1], [2, 3]])
    assert C.ssl4eo_cloud(cm).tolist() == [[False, True], [True, True]]
    scl = np.array([[4, 8], [3, 5]])
    assert C.band_cloud_mask(scl, "SCL").tolist() == [[False, True], [True, False]]


# ------------------------------------------------------------------------ presence / valid
@pytest.mark.parametrize(("rows", "usable"), [(4, True), (30, False)])
def test_detector_sets_valid_and_presence_by_the_threshold(rows: int, usable: bool) -> None:
    bands = S2_L2A_ORDER
    s2 = torch.from_numpy(_with_cloud(_land(bands), bands, slice(0, rows)))
    sample = {"s2": s2, "s1": torch.zeros(2, 40, 40), "present": {"s1": True, "s2": True}}
    rule = C.CloudValidity("detector", max_cloud_fraction=0.5, dilate=0)
    out = rule.apply(sample, bands)
    assert out["valid"].dtype == torch.bool and out["valid"].shape == (40, 40)
    assert not out["valid"][:rows].any() and out["valid"][rows:].all()
    assert out["present"]["s2"] is usable and out["present"]["s1"]
    check_sample(out)


def test_mask_source_reads_ssl4eo_cloud_masks() -> None:
    cm = torch.zeros(8, 8, dtype=torch.int64)
    cm[:2] = 3  # shadow
    sample = {"s2": torch.ones(13, 8, 8), "cloud_mask": cm, "present": {"s2": True}}
    out = C.CloudValidity("mask", 0.1).apply(sample, S2_L1C_ORDER)
    assert (~out["valid"]).sum() == 16 and not out["present"]["s2"]  # 25 % > 10 %
    with pytest.raises(ConfigError, match="cloud_mask"):
        C.CloudValidity("mask").apply({"s2": torch.ones(13, 8, 8)}, S2_L1C_ORDER)


def test_valid_masks_are_checked_and_collated() -> None:
    s = {"s2": torch.ones(3, 4, 4), "valid": torch.ones(4, 4, dtype=torch.bool)}
    t = {"s2": torch.ones(3, 4, 4), "valid": torch.zeros(4, 4, dtype=torch.bool)}
    b = collate([s, t])
    assert b["valid"].shape == (2, 4, 4) and b["valid"].dtype == torch.bool
    with pytest.raises(DataError, match="valid must be bool"):
        check_sample({"s2": torch.ones(3, 4, 4), "valid": torch.ones(4, 4)})
    with pytest.raises(DataError, match="spatial sizes"):
        check_sample({"s2": torch.ones(3, 4, 4), "valid": torch.ones(5, 4, dtype=torch.bool)})


def test_validity_rule_is_checked() -> None:
    with pytest.raises(ConfigError, match="cloud source"):
        C.CloudValidity("sky")
    with pytest.raises(ConfigError, match="max_cloud_fraction"):
        C.CloudValidity("detector", 1.5)


# ------------------------------------------------------------------------ augmentation
def _raw_batch(b: int = 6, size: int = 48) -> dict:
    bands = S2_L2A_ORDER
    s2 = torch.from_numpy(np.stack([_land(bands, size, size) for _ in range(b)]))
    return {
        "s2": s2,
        "s1": torch.randn(b, 2, size, size),
        "present": {"s1": torch.ones(b, dtype=torch.bool), "s2": torch.ones(b, dtype=torch.bool)},
    }


def test_random_clouds_overcast_hides_s2_and_marks_it_absent() -> None:
    torch.manual_seed(0)
    aug = RandomClouds(S2_L2A_ORDER, p=1.0, overcast_p=1.0, shadow_p=0.0)
    out = aug(_raw_batch())
    assert not out["valid"].any() and not out["present"]["s2"].any()
    b02 = S2_L2A_ORDER.index("B02")
    assert (out["s2"][:, b02] > 4000).all()  # the cloud spectrum, not the land


def test_random_clouds_cover_and_masks_follow_the_opacity() -> None:
    torch.manual_seed(1)
    batch = _raw_batch(16)
    aug = RandomClouds(S2_L2A_ORDER, p=1.0, overcast_p=0.0, shadow_p=1.0, dilate=0,
                       cover=(0.2, 0.4), max_cloud_fraction=0.9)  # fmt: skip
    out = aug(batch)
    invalid = (~out["valid"]).float().mean(dim=(1, 2))
    assert ((invalid > 0.05) & (invalid < 0.4)).all()  # opaque cores of 20-40 % cover
    assert out["present"]["s2"].all()  # below 0.9
    changed = (out["s2"] - batch["s2"]).abs().amax(dim=1) > 1  # [B, H, W]
    assert (changed | out["valid"]).all()  # every invalid pixel was clouded
    darker = (out["s2"] < 0.7 * batch["s2"]).all(dim=1)  # shadows: every band darker
    assert darker.any()
    assert torch.equal(out["s1"], batch["s1"])  # S1 never changes


def test_random_clouds_p0_changes_nothing_and_absent_s2_stays() -> None:
    batch = _raw_batch(4)
    out = RandomClouds(S2_L2A_ORDER, p=0.0)(batch)
    assert torch.equal(out["s2"], batch["s2"]) and out["valid"].all()
    batch["present"]["s2"][0] = False
    out = RandomClouds(S2_L2A_ORDER, p=1.0, overcast_p=1.0)(batch)
    assert torch.equal(out["s2"][0], batch["s2"][0])


def test_random_clouds_arguments_are_checked() -> None:
    with pytest.raises(ConfigError):
        RandomClouds(S2_L2A_ORDER, p=1.5)
    with pytest.raises(ConfigError, match="cloud spectrum"):
        RandomClouds(["B02", "SCL"])


def test_geometric_augmentation_moves_valid_with_the_image() -> None:
    b = _raw_batch(3, 16)
    b["valid"] = torch.zeros(3, 16, 16, dtype=torch.bool)
    b["valid"][:, :4] = True
    b["s2"][:, :, :4] = 0.0  # the valid strip is marked in the image too
    out = BatchAugmentation(geometric=[RandomRot90(p=1.0)])(b)
    assert out["valid"].dtype == torch.bool
    assert torch.equal(out["valid"], (out["s2"] == 0).all(dim=1))


def test_datamodule_options_build_robust_training(ben_v2_root: Path) -> None:
    from rsfuse.data.datamodules import BigEarthNetDataModule

    dm = BigEarthNetDataModule(
        str(ben_v2_root), clouds="detector", sensor_drop=0.5, cloud_augmentation=0.5,
        max_cloud_fraction=0.3,
    )  # fmt: skip
    assert dm.augmentation.sensor_drop is not None
    assert dm.cloud_augmentation is not None and dm.cloud_augmentation.max_cloud_fraction == 0.3
    assert dm.state_dict()["clouds"] == {"source": "detector", "max_cloud_fraction": 0.3,
                                         "dilate": 2}  # fmt: skip
    s1_only = BigEarthNetDataModule(str(ben_v2_root), modalities=["s1"], sensor_drop=0.5)
    assert s1_only.augmentation.sensor_drop is None  # one sensor: nothing to drop
    with pytest.raises(ConfigError, match="S2"):
        BigEarthNetDataModule(str(ben_v2_root), modalities=["s1"], cloud_augmentation=0.5)
    dm.setup("test")
    sample = dm.datasets["test"][0]
    assert sample["valid"].shape == (120, 120)


def test_store_batches_carry_the_same_validity_as_the_reader(
    ben_v2_root: Path, ben_v2_store: Path
) -> None:
    """The store's batched read (``__getitems__``) must not bypass the validity wrapper, and
    the store keeps the dataset's cloud flag for ``clouds="metadata"``."""
    from rsfuse.data.datamodules import BigEarthNetDataModule

    flagged = 0
    for clouds in ("detector", "metadata"):
        kw = {"clouds": clouds, "include_cloudy": True, "batch_size": 64, "num_workers": 0}
        via_store = BigEarthNetDataModule(str(ben_v2_root), store=str(ben_v2_store), **kw)
        via_tif = BigEarthNetDataModule(str(ben_v2_root), **kw)
        for split in ("train", "val", "test"):
            batches = []
            for dm in (via_store, via_tif):
                loader = dm._loader(split, shuffle=False)
                batches.append(next(iter(loader)))
            ids = [[m["id"] for m in b["meta"]] for b in batches]
            assert sorted(ids[0]) == sorted(ids[1])
            order = [ids[1].index(i) for i in ids[0]]
            absent = [~b["present"]["s2"] for b in batches]
            assert torch.equal(absent[0], absent[1][order])
            if clouds == "detector":
                assert torch.equal(batches[0]["valid"], batches[1]["valid"][order])
            else:
                assert "valid" not in batches[0]
                flagged += int(absent[0].sum())
    assert flagged > 0, "the synthetic world flags some patches cloudy"
