"""Realism statistics (autocorrelation length, correlations, per-patch and pooled statistics,
the comparison table) on inputs whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from rsfuse.bands import S2_L2A_ORDER, STATS
from rsfuse.data.synthetic import SyntheticWorld
from rsfuse.data.synthetic import realism as R


@pytest.mark.parametrize("sigma", [2.0, 4.0])
def test_autocorrelation_length_of_smoothed_noise(sigma: float) -> None:
    """Gaussian-filtered white noise has a Gaussian autocorrelation of σ√2, which falls to
    1/e at the lag 2σ."""
    x = ndimage.gaussian_filter(np.random.default_rng(0).normal(size=(120, 120)), sigma)
    assert R.autocorrelation_length(x) == pytest.approx(2 * sigma, rel=0.15)


def test_autocorrelation_length_edge_cases() -> None:
    white = np.random.default_rng(1).normal(size=(64, 64))
    assert R.autocorrelation_length(white) < 1.0
    assert math.isnan(R.autocorrelation_length(np.ones((8, 8))))
    smooth = ndimage.gaussian_filter(np.random.default_rng(3).normal(size=(40, 40)), 40.0)
    assert 12 < R.autocorrelation_length(smooth) <= 20  # long, capped at half the side


def test_correlation_on_a_common_grid() -> None:
    rng = np.random.default_rng(2)
    coarse = rng.normal(size=(60, 60))
    fine = np.repeat(np.repeat(coarse, 2, 0), 2, 1) + 0.01 * rng.normal(size=(120, 120))
    assert R.correlation(fine, coarse) == pytest.approx(1.0, abs=1e-3)
    assert R.correlation(coarse, -coarse) == pytest.approx(-1.0)
    assert math.isnan(R.correlation(np.ones((4, 4)), coarse[:4, :4]))


def _patch(value: float, vv: float = -12.0) -> R.Patch:
    sizes = [20, 120, 120, 120, 60, 60, 60, 120, 60, 20, 60, 60]
    s2 = {b: np.full((n, n), value) for b, n in zip(S2_L2A_ORDER, sizes)}
    s1 = np.stack([np.full((120, 120), vv), np.full((120, 120), vv - 7)])
    return R.Patch("p", s2, s1)


def test_patch_and_pooled_statistics() -> None:
    p = _patch(500.0)
    p.s2["B04"] = np.tile(np.array([400.0, 600.0]), (120, 60))
    st = R.patch_statistics(p)
    assert st["mean/B04"] == 500 and st["std/B04"] == 100 and st["p50/VH"] == -19
    assert st["mean/B02"] == 500 and st["std/B02"] == 0
    assert math.isnan(st["acl/B02"]) and math.isnan(st["corr/VV-VH"])
    pooled = R.pooled_statistics([_patch(100.0), _patch(300.0)])
    assert pooled["B02"] == pytest.approx((200.0, 100.0))
    assert pooled["VV"] == pytest.approx((-12.0, 0.0))


def test_compare_judges_against_real_range_and_published() -> None:
    world = [{"mean/B02": v} for v in (1.0, 2.0, 3.0)]
    real = [{"mean/B02": v} for v in (1.5, 2.5)]
    pub = STATS["bigearthnet-v2"]
    pooled = {"B02": (pub.mean["B02"] + 0.1 * pub.std["B02"], 2.0 * pub.std["B02"])}
    rows = {r.statistic: r for r in R.compare(world, real, pooled)}
    r = rows["mean/B02"]
    assert (r.world, r.real_min, r.real_max, r.within) == (2.0, 1.5, 2.5, True)
    assert rows["pooled mean/B02"].within and not rows["pooled std/B02"].within
    assert rows["pooled mean/B02"].reference == "bigearthnet-v2"
    real_far = [{"mean/B02": v} for v in (5.0, 6.0)]
    assert not R.compare(world, real_far, pooled)[0].within
    text = R.format_table(list(rows.values()))
    assert "pooled std/B02" in text and "NO" in text
    # the real patches' pooled values are shown beside the pooled rows, not judged by them
    shown = R.compare(world, real, pooled, real_pooled={"B02": (123.0, 4567.0)})
    rows = {r.statistic: r for r in shown}
    assert rows["pooled std/B02"].real == [4567.0] and not rows["pooled std/B02"].within
    assert rows["mean/B02"].real == [1.5, 2.5]
    assert "(4567)" in R.format_table(shown)


def test_world_patch_is_what_the_writers_store() -> None:
    from rsfuse.data.synthetic.bigearthnet import s2_native

    world = SyntheticWorld(0)
    p = R.world_patch(world, 3)
    loc = world.location(3)
    assert p.s2["B05"].shape == (60, 60) and p.s2["B01"].shape == (20, 20)
    np.testing.assert_array_equal(p.s2["B05"], s2_native(loc.s2)["B05"])
    np.testing.assert_array_equal(p.s1, loc.s1)
    assert p.clear == (not (loc.has_cloud or loc.has_snow)) and p.labels == loc.labels
