"""Tests of rsfuse.data.transforms: normalisation, augmentations, RandomSensorDrop."""

from __future__ import annotations

import kornia.augmentation as K
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from kornia.geometry.transform import warp_affine

from rsfuse.bands import stats
from rsfuse.data.transforms import (
    BatchAugmentation,
    Normalize,
    RandomBrightness,
    RandomBrightnessOrContrast,
    RandomContrast,
    RandomGaussianBlur,
    RandomGrayscale,
    RandomResizedCrop,
    RandomRot90,
    RandomSensorDrop,
    classification_augmentation,
    mgsvit_ssl_augmentation,
    quantile_last_dim,
)
from rsfuse.errors import ConfigError, DataError

CHANNELS = [2, 12, 13]


def make_batch(
    b: int = 4,
    h: int = 16,
    w: int = 16,
    c2: int = 12,
    s1: bool = True,
    s2: bool = True,
    mask: bool = False,
    seed: int = 0,
) -> dict:
    g = torch.Generator().manual_seed(seed)
    batch: dict = {"meta": [{"id": str(i)} for i in range(b)], "present": {}}
    if s1:
        batch["s1"] = torch.randn(b, 2, h, w, generator=g)
        batch["present"]["s1"] = torch.ones(b, dtype=torch.bool)
    if s2:
        batch["s2"] = torch.randn(b, c2, h, w, generator=g)
        batch["present"]["s2"] = torch.ones(b, dtype=torch.bool)
    if mask:
        m = torch.randint(0, 9, (b, h, w), generator=g)
        m[:, 0, :3] = 255
        batch["mask"] = m
    batch["label"] = torch.zeros(b, 19)
    return batch


def coord_batch(b: int, size: int, axis: str) -> dict:
    """Images and mask built from one coordinate pattern: s2 = (x, y, x+y), s1 = (x, y)."""
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    xs, ys = xs.float(), ys.float()
    s2 = torch.stack([xs, ys, xs + ys]).expand(b, -1, -1, -1).clone()
    s1 = torch.stack([xs, ys]).expand(b, -1, -1, -1).clone()
    m = (xs if axis == "x" else ys).long().expand(b, -1, -1).clone()
    present = {"s1": torch.ones(b, dtype=torch.bool), "s2": torch.ones(b, dtype=torch.bool)}
    return {"s1": s1, "s2": s2, "mask": m, "present": present}


# ------------------------------------------------------------------------------------------
# Normalize
# ------------------------------------------------------------------------------------------


def test_normalize_standardize_values() -> None:
    norm = Normalize(
        s1_mean=[-12.0, -20.0],
        s1_std=[5.0, 4.0],
        s2_mean=[100.0, 200.0, 300.0],
        s2_std=[10.0, 20.0, 50.0],
    )
    s1 = torch.tensor([-12.0, -7.0, -2.0, -22.0]).view(1, 1, 2, 2).repeat(2, 2, 1, 1)
    s2 = torch.full((2, 3, 2, 2), 400.0)
    out = norm({"s1": s1, "s2": s2})
    assert torch.allclose(out["s1"][0, 0].flatten(), torch.tensor([0.0, 1.0, 2.0, -2.0]))
    assert torch.allclose(out["s1"][0, 1].flatten(), torch.tensor([2.0, 3.25, 4.5, -0.5]))
    assert torch.allclose(out["s2"][1, :, 0, 0], torch.tensor([30.0, 10.0, 2.0]))
    assert out["s2"].dtype == torch.float32
    # input batch untouched
    assert s2[0, 0, 0, 0] == 400.0


def test_normalize_dino_mm_s2_scaling_and_clip() -> None:
    norm = Normalize(s2_mean=[1000.0], s2_std=[500.0], mode="dino-mm")
    # window [0, 2000] -> [0, 1]
    s2 = torch.tensor([-500.0, 0.0, 500.0, 1000.0, 2000.0, 2600.0]).view(1, 1, 2, 3)
    out = norm({"s2": s2})["s2"].flatten()
    assert torch.allclose(out, torch.tensor([0.0, 0.0, 0.25, 0.5, 1.0, 1.0]))


def test_normalize_dino_mm_s1_percentile_clip_matches_numpy() -> None:
    g = torch.Generator().manual_seed(3)
    s1 = torch.randn(3, 2, 10, 10, generator=g) * 2 - 14
    s1[0, 0, 0, 0] = 40.0  # outliers that the percentile clip must remove
    s1[1, 1, 5, 5] = -80.0
    mean, std = [-12.59, -19.22], [5.04, 5.42]
    out = Normalize(s1_mean=mean, s1_std=std, mode="dino-mm")({"s1": s1})["s1"]
    x = s1.numpy().astype(np.float64)
    for i in range(3):
        for c in range(2):
            band = x[i, c]
            lo, hi = np.quantile(band, 0.01), np.quantile(band, 0.99)
            ref = (np.clip(band, lo, hi) - (mean[c] - 2 * std[c])) / (4 * std[c])
            ref = np.clip(ref, 0, 1)
            np.testing.assert_allclose(out[i, c].numpy(), ref, atol=1e-5)
    # the outlier was clipped to the 99th percentile, not scaled to 1 from +40 dB
    assert out[0, 0, 0, 0] == out[0, 0].max() < 0.9
    assert out[1, 1, 5, 5] == out[1, 1].min() > 0.1


def test_quantile_matches_torch() -> None:
    x = torch.randn(4, 3, 57)
    q = quantile_last_dim(x, (0.01, 0.5, 0.99))
    ref = torch.quantile(x, torch.tensor([0.01, 0.5, 0.99]), dim=-1)
    assert torch.allclose(q, ref, atol=1e-6)


def test_normalize_absent_samples_are_zero() -> None:
    norm = Normalize(s1_mean=[-12.0, -20.0], s1_std=[5.0, 4.0], s2_mean=[1.0] * 4, s2_std=[2.0] * 4)
    batch = make_batch(b=3, c2=4)
    batch["present"]["s2"] = torch.tensor([True, False, True])
    batch["s2"][1] = 0.0  # a reader's fill value for a missing sensor
    out = norm(batch)
    assert torch.equal(out["s2"][1], torch.zeros_like(out["s2"][1]))
    assert (out["s2"][0] != 0).any()
    assert torch.allclose(out["s2"][0], (batch["s2"][0] - 1.0) / 2.0)


def test_normalize_from_stats_and_errors() -> None:
    norm = Normalize.from_stats("bigearthnet-v2", ["B04", "B02"])
    mean, std = stats("bigearthnet-v2").select(["B04", "B02"])
    assert torch.allclose(norm.s2_mean, torch.tensor(mean))
    assert torch.allclose(norm.s2_std, torch.tensor(std))
    vv, vh = stats("bigearthnet-v2").select(["VV", "VH"])[0]
    assert torch.allclose(norm.s1_mean, torch.tensor([vv, vh]))
    assert Normalize.from_stats("dino-mm", "all", mode="dino-mm").s2_mean.numel() == 13
    assert Normalize.from_stats("bigearthnet-v2", "all").s2_mean.numel() == 12
    with pytest.raises(ConfigError):
        Normalize(mode="minmax")
    with pytest.raises(ConfigError):
        Normalize(s2_mean=[1.0, 2.0], s2_std=[1.0])
    with pytest.raises(ConfigError):
        Normalize.from_stats("bigearthnet-v2", ["B10"])
    with pytest.raises(DataError, match="s2"):
        norm({"s2": torch.zeros(1, 3, 4, 4)})
    with pytest.raises(ConfigError):
        Normalize(s1_mean=[0.0, 0.0], s1_std=[1.0, 1.0])({"s2": torch.zeros(1, 2, 4, 4)})


# ------------------------------------------------------------------------------------------
# intensity augmentations
# ------------------------------------------------------------------------------------------

INTENSITY = [
    lambda p: RandomBrightness(0.4, p=p),
    lambda p: RandomContrast(0.4, p=p),
    lambda p: RandomBrightnessOrContrast(0.4, p=p),
    lambda p: RandomGrayscale(p=p),
    lambda p: RandomGaussianBlur((0.5, 2.0), p=p),
]


@pytest.mark.parametrize("make", INTENSITY)
@pytest.mark.parametrize("c", CHANNELS)
def test_intensity_shape_identity_and_change(make, c: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(8, c, 16, 16)
    out = make(0.0)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out, x)
    out = make(1.0)(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    changed = (out - x).abs().flatten(1).amax(1) > 1e-4
    assert changed.all(), changed


def fitted_factor(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Least-squares contrast factor per sample: out - μ ≈ f (x - μ)."""
    dx = x - x.mean((-2, -1), keepdim=True)
    dy = out - out.mean((-2, -1), keepdim=True)
    return (dx * dy).flatten(1).sum(1) / (dx * dx).flatten(1).sum(1)


@pytest.mark.parametrize("c", CHANNELS)
def test_brightness_shift_equal_across_channels(c: int) -> None:
    torch.manual_seed(1)
    x = torch.randn(6, c, 8, 8)
    d = RandomBrightness(0.4, p=1.0)(x) - x  # [B, C, H, W]
    per_sample = d[:, :1, :1, :1]
    assert torch.allclose(d, per_sample.expand_as(d), atol=1e-6)
    assert per_sample.abs().max() <= 0.4 + 1e-6
    assert len(torch.unique(per_sample.flatten())) == 6


def test_contrast_preserves_band_means_and_scales_deviation() -> None:
    torch.manual_seed(2)
    x = torch.randn(5, 13, 8, 8) + torch.arange(13.0).view(1, -1, 1, 1)
    out = RandomContrast(0.4, p=1.0)(x)
    mu = x.mean((-2, -1), keepdim=True)
    assert torch.allclose(out.mean((-2, -1), keepdim=True), mu, atol=1e-4)
    f = fitted_factor(x, out)
    assert torch.allclose(out, (x - mu) * f.view(-1, 1, 1, 1) + mu, atol=1e-4)
    assert ((f >= 0.6 - 1e-5) & (f <= 1.4 + 1e-5)).all()


def test_brightness_or_contrast_picks_one_per_sample() -> None:
    torch.manual_seed(3)
    b = 400
    x = torch.randn(b, 3, 6, 6) * 2
    out = RandomBrightnessOrContrast(0.4, p=1.0)(x)
    d = out - x
    is_shift = (d - d[:, :1, :1, :1]).abs().flatten(1).amax(1) < 1e-5
    mu = x.mean((-2, -1), keepdim=True)
    f = fitted_factor(x, out).view(-1, 1, 1, 1)
    is_contrast = (out - ((x - mu) * f + mu)).abs().flatten(1).amax(1) < 1e-4
    assert (is_shift ^ is_contrast).all()
    frac = is_contrast.float().mean().item()
    assert 0.4 < frac < 0.6


@pytest.mark.parametrize("c", CHANNELS)
def test_grayscale_band_mean(c: int) -> None:
    x = torch.randn(3, c, 5, 7)
    out = RandomGrayscale(p=1.0)(x)
    assert torch.allclose(out, x.mean(1, keepdim=True).expand_as(x), atol=1e-6)
    assert torch.equal(out[:, :1].expand_as(out), out)


@pytest.mark.parametrize("c", CHANNELS)
def test_blur_constant_image_and_noise_variance(c: int) -> None:
    torch.manual_seed(4)
    blur = RandomGaussianBlur((0.5, 2.0), p=1.0)
    assert blur.kernel_size == 13
    const = torch.full((4, c, 20, 20), 3.5)
    assert torch.allclose(blur(const), const, atol=1e-5)
    noise = torch.randn(4, c, 32, 32)
    out = blur(noise)
    assert (out.var(dim=(1, 2, 3)) < 0.8 * noise.var(dim=(1, 2, 3))).all()
    # tiny images: kernel shrinks to fit reflect padding instead of raising
    assert blur(torch.randn(2, c, 4, 4)).shape == (2, c, 4, 4)


def test_blur_sigma_is_per_sample_and_sampled_on_cpu() -> None:
    torch.manual_seed(5)
    blur = RandomGaussianBlur((0.1, 2.0), p=1.0)
    blur(torch.randn(16, 2, 16, 16))
    sigma = blur._params["sigma"]
    assert sigma.shape == (16,) and len(torch.unique(sigma)) == 16
    assert ((sigma >= 0.1) & (sigma <= 2.0)).all()
    aug = BatchAugmentation(intensity=[blur]).to(torch.float64)
    assert blur.device == torch.device("cpu") and aug.intensity[0] is blur
    with pytest.raises(ConfigError):
        RandomGaussianBlur((0.0, 1.0))


def test_intensity_standalone_chw_input() -> None:
    x = torch.randn(12, 8, 8)
    assert RandomGrayscale(p=1.0)(x).shape == (1, 12, 8, 8)
    assert RandomBrightness(p=1.0, keepdim=True)(x).shape == (12, 8, 8)


# ------------------------------------------------------------------------------------------
# geometric augmentations
# ------------------------------------------------------------------------------------------


def assert_spatially_consistent(out: dict) -> None:
    """s1 and s2 carry the same transformed pattern; mask agrees with it."""
    s1, s2 = out["s1"], out["s2"]
    assert torch.equal(s1[:, 0], s2[:, 0]) and torch.equal(s1[:, 1], s2[:, 1])
    assert torch.allclose(s2[:, 2], s2[:, 0] + s2[:, 1], atol=1e-3)


@pytest.mark.parametrize("op", ["hflip", "vflip", "rot90"])
def test_geometric_exact_ops_joint(op: str) -> None:
    torch.manual_seed(6)
    geo = {
        "hflip": K.RandomHorizontalFlip(p=0.5),
        "vflip": K.RandomVerticalFlip(p=0.5),
        "rot90": RandomRot90(p=1.0),
    }[op]
    aug = BatchAugmentation(geometric=[geo])
    for axis in ("x", "y"):
        batch = coord_batch(32, 8, axis)
        out = aug(batch)
        assert_spatially_consistent(out)
        ref = out["s2"][:, 0 if axis == "x" else 1]
        assert out["mask"].dtype == torch.int64
        assert torch.equal(out["mask"].float(), ref)
        # some samples changed, some not (p=0.5 or k=0)
        changed = (out["s2"] != batch["s2"]).flatten(1).any(1)
        assert changed.any() and not changed.all()


def test_geometric_resized_crop_joint() -> None:
    torch.manual_seed(7)
    aug = BatchAugmentation(
        geometric=[RandomResizedCrop(12, scale=(0.2, 1.0)), K.RandomHorizontalFlip(), RandomRot90()]
    )
    for axis in ("x", "y"):
        batch = coord_batch(16, 24, axis)
        out = aug(batch)
        assert out["s2"].shape == (16, 3, 12, 12) and out["mask"].shape == (16, 12, 12)
        assert_spatially_consistent(out)
        ref = out["s2"][:, 0 if axis == "x" else 1]
        # images bilinear (exact for a linear ramp), mask nearest: within half a pixel
        assert (out["mask"].float() - ref).abs().max() <= 0.5 + 1e-3
        assert set(out["mask"].unique().tolist()) <= set(range(24))


def test_mask_ignore_survives_and_padding_becomes_ignore() -> None:
    torch.manual_seed(8)
    batch = make_batch(b=8, h=16, w=16, mask=True)
    values = set(batch["mask"].unique().tolist())
    out = classification_augmentation(12)(batch)
    assert set(out["mask"].unique().tolist()) <= values
    # a rotation by 45° brings in outside pixels: they are ignore (255), never class 0
    aug = BatchAugmentation(geometric=[K.RandomRotation(degrees=(45.0, 45.0), p=1.0)])
    batch["mask"] = torch.ones(8, 16, 16, dtype=torch.int64)
    out = aug(batch)
    assert out["mask"][:, 0, 0].eq(255).all()
    assert set(out["mask"].unique().tolist()) == {1, 255}


def test_rot90_matrix_matches_warp() -> None:
    x = torch.randn(4, 3, 9, 9)
    rot = RandomRot90()
    out = rot(x, params={"k": torch.arange(4)})
    warped = warp_affine(x, rot.transform_matrix[:, :2], (9, 9), mode="nearest", align_corners=True)
    assert torch.allclose(out, warped)
    for k in range(4):
        assert torch.equal(out[k], torch.rot90(x[k], k, dims=(-2, -1)))


def test_rot90_non_square_keeps_shape() -> None:
    x = torch.randn(64, 2, 6, 10)
    out = RandomRot90()(x)
    assert out.shape == x.shape
    same = (out == x).flatten(1).all(1)
    rot180 = (out == torch.rot90(x, 2, dims=(-2, -1))).flatten(1).all(1)
    assert (same | rot180).all() and same.any() and rot180.any()


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 4),
    c=st.integers(1, 14),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    k=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
def test_property_rot90_four_times_and_flips_involutive(b, c, h, w, k, seed) -> None:
    x = torch.randn(b, c, h, h, generator=torch.Generator().manual_seed(seed))
    rot = RandomRot90()
    params = {"k": torch.full((b,), k)}
    y = x
    for _ in range(4):
        y = rot(y, params=params)
    assert torch.equal(y, x)
    assert torch.equal(rot.inverse(rot(x, params=params)), x)
    z = torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed + 1))
    for flip in (K.RandomHorizontalFlip(p=1.0), K.RandomVerticalFlip(p=1.0)):
        assert torch.equal(flip(flip(z)), z)
    # D4 augmentation only permutes pixels: per-sample sorted values are unchanged
    torch.manual_seed(seed)
    out = classification_augmentation()({"s2": z.clone()})["s2"]
    assert torch.equal(out.flatten(1).sort(1).values, z.flatten(1).sort(1).values)


# ------------------------------------------------------------------------------------------
# RandomSensorDrop
# ------------------------------------------------------------------------------------------


def test_sensor_drop_frequencies_and_zeros() -> None:
    torch.manual_seed(9)
    b = 20000
    batch = make_batch(b=b, h=2, w=2, c2=3)
    batch["s1"] += 5.0  # no accidental zeros
    batch["s2"] += 5.0
    out = RandomSensorDrop()(batch)
    s1_zero = (out["s1"] == 0).flatten(1).all(1)
    s2_zero = (out["s2"] == 0).flatten(1).all(1)
    assert torch.equal(out["present"]["s1"], ~s1_zero)
    assert torch.equal(out["present"]["s2"], ~s2_zero)
    assert not (s1_zero & s2_zero).any()
    both = (~s1_zero & ~s2_zero).float().mean().item()
    s2_dropped = s2_zero.float().mean().item()
    s1_dropped = s1_zero.float().mean().item()
    assert abs(both - 0.5) < 0.02 and abs(s2_dropped - 0.25) < 0.02
    assert abs(s1_dropped - 0.25) < 0.02
    # kept samples are untouched; the input batch is not modified
    keep = ~s1_zero
    assert torch.equal(out["s1"][keep], batch["s1"][keep])
    assert batch["present"]["s1"].all() and (batch["s1"] != 0).all()


def test_sensor_drop_single_sensor_samples_never_dropped() -> None:
    torch.manual_seed(10)
    b = 3000
    batch = make_batch(b=b, h=2, w=2, c2=3)
    batch["s1"] += 5.0
    batch["s2"] += 5.0
    only_s1 = torch.arange(b) % 3 == 0
    only_s2 = torch.arange(b) % 3 == 1
    batch["present"]["s2"] = ~only_s1
    batch["present"]["s1"] = ~only_s2
    out = RandomSensorDrop(p=1.0)(batch)
    assert out["present"]["s1"][only_s1].all() and not out["present"]["s2"][only_s1].any()
    assert out["present"]["s2"][only_s2].all() and not out["present"]["s1"][only_s2].any()
    assert (out["s1"][only_s1] == batch["s1"][only_s1]).all()
    assert (out["s2"][only_s2] == batch["s2"][only_s2]).all()
    both = ~only_s1 & ~only_s2
    assert (out["present"]["s1"][both] ^ out["present"]["s2"][both]).all()
    # only one sensor in the batch: nothing to drop
    single = make_batch(b=5, s1=False)
    assert torch.equal(RandomSensorDrop(p=1.0)(single)["s2"], single["s2"])


def test_sensor_drop_deterministic_given_seed() -> None:
    batch = make_batch(b=64, h=2, w=2)
    torch.manual_seed(11)
    a = RandomSensorDrop()(batch)
    torch.manual_seed(11)
    b = RandomSensorDrop()(batch)
    assert torch.equal(a["present"]["s1"], b["present"]["s1"])
    assert torch.equal(a["s2"], b["s2"])
    with pytest.raises(ConfigError):
        RandomSensorDrop(p=1.5)


# ------------------------------------------------------------------------------------------
# BatchAugmentation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("s1", "s2", "mask"),
    [
        (True, False, False),
        (False, True, False),
        (True, True, False),
        (True, True, True),
        (False, True, True),
    ],
)
def test_batch_augmentation_modalities(s1: bool, s2: bool, mask: bool) -> None:
    torch.manual_seed(12)
    batch = make_batch(b=6, h=20, w=20, c2=13, s1=s1, s2=s2, mask=mask)
    aug = mgsvit_ssl_augmentation(16, sensor_drop=RandomSensorDrop())
    out = aug(batch)
    assert set(out) == set(batch)
    for key, c in (("s1", 2), ("s2", 13)):
        if key in batch:
            assert out[key].shape == (6, c, 16, 16) and out[key].dtype == torch.float32
            assert torch.isfinite(out[key]).all()
    if mask:
        assert out["mask"].shape == (6, 16, 16) and out["mask"].dtype == torch.int64
    assert out["label"] is batch["label"] and out["meta"] is batch["meta"]
    assert batch[("s2" if s2 else "s1")].shape[-1] == 20  # input untouched


def test_batch_augmentation_grayscale_per_sensor_and_absent_stay_zero() -> None:
    batch = make_batch(b=4, h=8, w=8, c2=12)
    batch["s1"] += 100.0  # SAR far from optical: mixing would show
    batch["present"]["s2"] = torch.tensor([True, True, False, True])
    batch["s2"][2] = 0.0
    aug = BatchAugmentation(intensity=[RandomGrayscale(p=1.0), RandomBrightness(0.4, p=1.0)])
    out = aug(batch)
    assert torch.allclose(out["s1"][:, 0], out["s1"][:, 1])
    assert (out["s1"] > 90).all() and (out["s2"][[0, 1, 3]].abs() < 10).all()
    assert torch.equal(out["s2"][2], torch.zeros_like(out["s2"][2]))


def test_batch_augmentation_errors_and_config_style_construction() -> None:
    aug = BatchAugmentation(geometric=[K.RandomHorizontalFlip()])
    with pytest.raises(DataError):
        aug({"mask": torch.zeros(2, 4, 4, dtype=torch.int64)})
    batch = make_batch(b=2, h=8, w=8, mask=True)
    batch["mask"] = torch.zeros(2, 6, 6, dtype=torch.int64)
    with pytest.raises(DataError, match="spatial sizes"):
        aug(batch)
    # what a class_path/init_args config resolves to: lists of module instances
    aug = BatchAugmentation(
        geometric=[K.RandomVerticalFlip(p=0.5), RandomRot90(p=1.0)],
        intensity=[RandomBrightnessOrContrast(), RandomGrayscale(), RandomGaussianBlur()],
        sensor_drop=RandomSensorDrop(p=0.5, s2_prob=0.5),
    )
    out = aug(make_batch(b=3, h=16, w=16))
    assert out["s2"].shape == (3, 12, 16, 16)
    # kornia's sampler ranges stay out of checkpoints
    assert aug.state_dict() == {} and mgsvit_ssl_augmentation(8).state_dict() == {}


@pytest.mark.parametrize("shape", [(5, 3, 7, 7), (4, 2, 6, 10)])
def test_rot90_per_sample_matches_torch_rot90(shape: tuple[int, int, int, int]) -> None:
    from rsfuse.data.transforms import rot90_per_sample

    x = torch.randn(*shape)
    square = shape[-1] == shape[-2]
    k = torch.tensor([0, 1, 2, 3, 1][: shape[0]]) if square else torch.tensor([0, 2, 2, 0])
    out = rot90_per_sample(x, k)
    for i in range(shape[0]):
        assert torch.equal(out[i], torch.rot90(x[i], int(k[i]), dims=(-2, -1)))


@pytest.mark.parametrize("cls", ["RandomContrast", "RandomBrightnessOrContrast"])
def test_contrast_factor_delta_above_one_is_a_config_error(cls: str) -> None:
    import rsfuse.data.transforms as T
    from rsfuse.errors import ConfigError

    with pytest.raises(ConfigError, match="<= 1"):
        getattr(T, cls)(max_delta=1.5)
    with pytest.raises(ConfigError, match=">= 0"):
        getattr(T, cls)(max_delta=-0.1)
    assert getattr(T, cls)(max_delta=1.0).max_delta == 1.0


# ------------------------------------------------------------------------------------------
# DINO-MM additions: RandomSensorDrop odds per view, RandomSolarize, MultiCropAugmentation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("p", "s2_prob"), [(0.5, 0.5), (0.3, 0.75)])
def test_sensor_drop_frequencies_within_binomial_tolerance(p: float, s2_prob: float) -> None:
    """Joint / S1-only / S2-only shares match (1 − p, p·s2_prob, p·(1 − s2_prob)) ± 4σ."""
    from rsfuse.data.transforms import RandomSensorDrop as Drop

    torch.manual_seed(123)
    n = 40000
    batch = make_batch(b=n, h=1, w=1, c2=2)
    batch["s1"] += 5.0
    batch["s2"] += 5.0
    out = Drop(p=p, s2_prob=s2_prob)(batch)
    s1, s2 = out["present"]["s1"], out["present"]["s2"]
    assert torch.equal(s1, (out["s1"] != 0).flatten(1).all(1))  # flags match the zeros
    assert torch.equal(s2, (out["s2"] != 0).flatten(1).all(1))
    assert (s1 | s2).all()  # never both dropped
    for observed, expected in (
        ((s1 & s2).float().mean().item(), 1 - p),
        ((s1 & ~s2).float().mean().item(), p * s2_prob),  # S2 dropped → SAR only
        ((~s1 & s2).float().mean().item(), p * (1 - s2_prob)),  # S1 dropped → optical only
    ):
        sigma = (expected * (1 - expected) / n) ** 0.5
        assert abs(observed - expected) < 4 * sigma


def test_solarize_mirrors_values_at_or_above_threshold() -> None:
    from rsfuse.data.transforms import RandomSolarize

    x = torch.tensor([0.0, 0.2, 0.5, 0.9, 1.0]).view(1, 5, 1, 1)
    torch.testing.assert_close(
        RandomSolarize(p=1.0)(x).flatten(), torch.tensor([0.0, 0.2, 0.5, 0.1, 0.0])
    )
    std = torch.tensor([-1.0, 0.5, 2.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(
        RandomSolarize(threshold=0.0, upper=0.0, p=1.0)(std).flatten(),
        torch.tensor([-1.0, -0.5, -2.0]),
    )
    assert torch.equal(RandomSolarize(p=0.0)(x), x)


def test_multicrop_views_sizes_and_independent_sensor_drop() -> None:
    from rsfuse.data.transforms import MultiCropAugmentation, RandomSolarize

    torch.manual_seed(5)
    batch = make_batch(b=256, h=40, w=40, c2=12)
    batch["s1"] = batch["s1"].abs() + 1.0
    batch["s2"] = batch["s2"].abs() + 1.0
    aug = MultiCropAugmentation(32, (0.4, 1.0), 3, 16, (0.05, 0.4), sensor_drop=RandomSensorDrop())
    views = aug(batch)
    assert aug.n_crops == 5 and len(views) == 5
    assert [v["s2"].shape[-1] for v in views] == [32, 32, 16, 16, 16]
    assert all(v["s1"].shape[:2] == (256, 2) and v["s2"].shape[:2] == (256, 12) for v in views)
    # solarize only in the second global view, blur with p = 1.0 / 0.1 / 0.5
    solar = [any(isinstance(op, RandomSolarize) for op in g.intensity) for g in aug.global_views]
    assert solar == [False, True]
    assert [g.intensity[2].p for g in aug.global_views] == [1.0, 0.1]
    assert aug.local_view.intensity[2].p == 0.5
    flags = []
    for v in views:
        s1, s2 = v["present"]["s1"], v["present"]["s2"]
        assert (s1 | s2).all()
        assert ((v["s2"] == 0).flatten(1).all(1) == ~s2).all()
        assert ((v["s1"] == 0).flatten(1).all(1) == ~s1).all()
        flags.append(s1 & s2)
    # each view draws its own drop: ~50 % joint per view, not the same samples in every view
    assert all(0.35 < f.float().mean().item() < 0.65 for f in flags)
    assert not torch.equal(flags[0], flags[1])
    assert batch["present"]["s1"].all()  # input untouched
