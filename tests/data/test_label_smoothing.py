"""Spatial-temporal label smoothing (CromSS Eq. 13–15) against the authors' code and on the
synthetic NoLDO-S12 fixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rsfuse.data.datamodules import CromSSDataModule
from rsfuse.data.label_smoothing import (
    PRIOR_KEY,
    SpatialTemporalLabelSmoothing,
    gaussian_class_prior,
)
from rsfuse.data.sample import collate
from rsfuse.data.transforms import segmentation_augmentation
from rsfuse.errors import ConfigError
from tests.conformance import load

REF = load("cromss")


def test_priors_and_smoothed_label_match_authors() -> None:
    labels = REF["seasonal_labels"]
    season = int(REF["season"])
    ls = SpatialTemporalLabelSmoothing(9, alpha=0.15, beta=0.05)
    np.testing.assert_allclose(ls.temporal_prior(labels), REF["prior_temporal"], atol=1e-5)
    np.testing.assert_allclose(ls.spatial_prior(labels[season]), REF["prior_spatial"], atol=1e-5)
    prior = ls.prior(labels, season)
    np.testing.assert_allclose(prior, REF["prior_ts"], atol=1e-5)
    for kind, key in (("spatial", "prior_spatial"), ("temporal", "prior_temporal")):
        p = SpatialTemporalLabelSmoothing(9, prior=kind).prior(labels, season)  # type: ignore[arg-type]
        np.testing.assert_allclose(p, REF[key], atol=1e-5)
    y = torch.from_numpy(labels[season].astype(np.int64))[None]
    smoothed = ls.smooth(y, torch.from_numpy(prior)[None])[0].numpy()
    np.testing.assert_allclose(smoothed, REF["smoothed_label_ts"], atol=1e-5)


def test_sums_to_one_and_identity_without_smoothing() -> None:
    g = np.random.default_rng(0)
    labels = g.integers(0, 9, (4, 16, 16)).astype(np.uint8)
    labels[:, :3, :3] = 255  # unlabelled corner in every season
    ls = SpatialTemporalLabelSmoothing(9)
    prior = ls.prior(labels, 2)
    assert prior.shape == (9, 16, 16)
    np.testing.assert_allclose(prior.sum(0), 1.0, atol=1e-6)
    y = torch.from_numpy(labels[2].astype(np.int64))[None]
    y[y == 255] = 255
    out = ls(y, torch.from_numpy(prior)[None])
    valid = y[0] != 255
    assert torch.allclose(out[0].sum(0)[valid], torch.ones(int(valid.sum())), atol=1e-6)
    assert float(out[0][:, ~valid].abs().sum()) == 0.0  # unlabelled pixels stay empty
    # the label keeps most of the mass: 0.8 + 0.15·prior + 0.05/9 ≥ 0.8
    assert float(out[0].gather(0, y.clamp(max=8))[0][valid].min()) >= 0.8
    # α = β = 0 → the one-hot label
    plain = SpatialTemporalLabelSmoothing(9, alpha=0.0, beta=0.0, prior="none")
    y2 = y.clamp(max=8)
    oh = torch.nn.functional.one_hot(y2, 9).permute(0, 3, 1, 2).float()
    assert torch.equal(plain(y2), oh)
    with pytest.raises(ConfigError):
        SpatialTemporalLabelSmoothing(9, alpha=0.9, beta=0.2)
    with pytest.raises(ValueError, match="prior"):
        ls(y2)


def test_gaussian_prior_kernel_width() -> None:
    # a single class-1 pixel: σ = 3 truncated at 4σ reaches 12 px, not 13
    m = np.zeros((2, 41, 41))
    m[0] = 1.0
    m[0, 20, 20], m[1, 20, 20] = 0.0, 1.0
    p = gaussian_class_prior(m)
    assert p[1, 20, 20 + 12] > 0 and p[1, 20, 20 + 13] == 0
    assert p[1, 20, 20] == p[1].max()


@pytest.mark.parametrize("rotation", ["right_angles", "any"])
def test_datamodule_prior_augmented_with_image(noldo_root: Path, rotation: str) -> None:
    # σ = 0: the spatial prior is the one-hot label of the drawn season, so after crops, flips
    # and right-angle rotations it must still agree with the mask pixel for pixel; rotations
    # by any angle resample the prior bilinearly and the mask by nearest neighbour, so they
    # may disagree on class boundaries only
    dm = CromSSDataModule(
        prior="spatial", sigma=0.0, root=str(noldo_root), patch_size=48, crop_size=40,
        batch_size=4, val_fraction=0.25, seed=0, rotation=rotation,
    )  # fmt: skip
    dm.setup("fit")
    ds = dm.datasets["train"]
    samples = [ds[i] for i in range(4)]
    s = samples[0]
    assert s[PRIOR_KEY].shape == (9, 48, 48) and s["s2"].shape[-2:] == (48, 48)
    assert s["mask"].shape == (48, 48) and int(s["season"]) in range(4)
    batch = collate(samples)
    torch.manual_seed(3)
    for _ in range(3):
        out = dm.augment(dm.normalize(batch))
        assert out[PRIOR_KEY].shape == (4, 9, 40, 40)
        valid = out["mask"] != 255
        agree = (out[PRIOR_KEY].argmax(1)[valid] == out["mask"][valid]).float().mean()
        assert float(agree) == 1.0 if rotation == "right_angles" else float(agree) > 0.9
        assert out["mask_clean"].shape == (4, 40, 40)
    # the temporal prior differs from the spatial one; seasons vary between reads
    dm2 = CromSSDataModule(root=str(noldo_root), patch_size=48, batch_size=4, seed=1)
    dm2.setup("fit")
    ds2 = dm2.datasets["train"]
    seasons = {int(ds2[0]["season"]) for _ in range(12)}
    assert len(seasons) > 1
    p = ds2[0][PRIOR_KEY]
    assert torch.allclose(p.sum(0), torch.ones(48, 48), atol=1e-5)
    with pytest.raises(ConfigError, match="season"):
        CromSSDataModule(root=str(noldo_root), cache=True)
    with pytest.raises(ConfigError, match="spatial_keys"):
        CromSSDataModule(root=str(noldo_root), augmentation=segmentation_augmentation(None))
