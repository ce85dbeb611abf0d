"""SegmentationDataModule on the synthetic DFC2020 and NoLDO-S12 layouts."""

from __future__ import annotations

from pathlib import Path

import kornia.augmentation as K
import pytest
import torch

from rsfuse.data.datamodules import SegmentationDataModule
from rsfuse.data.transforms import BatchAugmentation, segmentation_augmentation
from rsfuse.errors import ConfigError


def test_dfc2020_splits_batches_and_augmentation(dfc2020_root: Path) -> None:
    dm = SegmentationDataModule("dfc2020", str(dfc2020_root), batch_size=3, crop_size=24,
                                patch_size=32, val_fraction=0.25)  # fmt: skip
    dm.setup("fit")
    dm.setup("test")
    assert (len(dm.datasets["train"]), len(dm.datasets["val"]), len(dm.datasets["test"])) == (
        6,
        2,
        8,
    )
    assert not set(dm.datasets["train"].indices) & set(dm.datasets["val"].indices)
    assert dm.num_classes == 8
    batch = next(iter(dm.val_dataloader()))
    assert batch["s2"].shape == (2, 13, 32, 32) and batch["mask"].dtype == torch.int64
    norm = dm.normalize(batch)
    assert abs(float(norm["s1"].mean())) < 3  # standardised with the SSL4EO-S12 statistics
    torch.manual_seed(0)
    out = dm.augment(norm)
    assert out["s2"].shape == (2, 13, 24, 24) and out["mask"].shape == (2, 24, 24)
    assert set(out["mask"].unique().tolist()) <= set(range(8)) | {255}


def test_noldo_mask_clean_follows_the_mask(noldo_root: Path) -> None:
    dm = SegmentationDataModule("noldo-s12", str(noldo_root), batch_size=4, patch_size=48,
                                seed=1, val_fraction=0.25)  # fmt: skip
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["season"].shape == (4,) and batch["mask_clean"].shape == (4, 48, 48)
    agree = (batch["mask"] == batch["mask_clean"]).float().mean()
    torch.manual_seed(3)
    out = dm.augment(dm.normalize(batch))  # flips and 90° rotations move both masks alike
    assert out["mask_clean"].dtype == torch.int64
    assert torch.isclose((out["mask"] == out["mask_clean"]).float().mean(), agree)
    assert not torch.equal(out["mask"], batch["mask"]) or not torch.equal(out["s1"], batch["s1"])
    dm.setup("test")
    assert len(dm.datasets["test"]) == 1  # the SSL4EO-S12@DW test split
    dw = SegmentationDataModule("ssl4eo-s12-osm", str(noldo_root), batch_size=2, val_fraction=0)
    dw.setup("fit")
    assert dw.num_classes == 13 and len(dw.datasets["train"]) == 3


def test_config_errors(dfc2020_root: Path) -> None:
    with pytest.raises(ConfigError, match="dataset"):
        SegmentationDataModule("dfc2021", str(dfc2020_root))
    with pytest.raises(ConfigError, match="season"):
        SegmentationDataModule("noldo-s12", str(dfc2020_root), season="all")
    aug = segmentation_augmentation(16)
    assert isinstance(aug, BatchAugmentation) and isinstance(aug.geometric[0], K.RandomCrop)
