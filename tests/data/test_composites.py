"""S2 true colour: one joint stretch over clear pixels; S1 false colour over fixed dB ranges."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import rgb_to_hsv

from rsfuse.data.clouds import BRIGHT_VISIBLE_DN
from rsfuse.data.composites import (
    BRIGHT_DN,
    S1_RANGES_DB,
    clear_pixels,
    s1_false_colour,
    stretch_joint,
    true_colour,
)


def _per_channel(x: np.ndarray) -> np.ndarray:
    """The stretch rsfuse used before: each channel on its own 2–98 %."""
    out = np.empty_like(x)
    for c in range(x.shape[-1]):
        a, b = np.percentile(x[..., c], [2, 98])
        out[..., c] = np.clip((x[..., c] - a) / (b - a), 0, 1)
    return out


def test_joint_stretch_keeps_every_pixels_hue_and_per_channel_does_not():
    rng = np.random.default_rng(0)
    # vegetation-like DN: green above red, blue lowest, with varied brightness
    base = np.array([400.0, 700.0, 300.0])  # B04, B03, B02
    img = base * rng.uniform(0.6, 1.6, size=(40, 40, 1)) + rng.normal(0, 30, size=(40, 40, 3))
    out = true_colour(img)
    inside = np.all((out > 0) & (out < 1), axis=-1)  # unclipped pixels
    assert inside.mean() > 0.8
    # equal gains: (out − out') / (x − x') is the same for R, G and B
    gains = (out[inside] - out[inside].mean(0)) / (img[inside] - img[inside].mean(0))
    assert np.allclose(gains, gains.flat[0], rtol=1e-6)
    hue = rgb_to_hsv(np.clip(img / img.max(), 0, 1))[..., 0]
    assert np.allclose(rgb_to_hsv(out)[..., 0][inside], hue[inside], atol=1e-6)
    # a per-channel stretch moves hues (green fields drawn magenta)
    shifted = rgb_to_hsv(_per_channel(img))[..., 0]
    assert np.abs(shifted - hue)[inside].max() > 0.05


def test_clouds_and_no_data_do_not_set_the_stretch():
    rng = np.random.default_rng(1)
    land = rng.uniform(300, 1200, size=(50, 50, 3))
    img = land.copy()
    img[:, 25:] = 7000.0 + rng.normal(0, 200, size=(50, 25, 3))  # bright cloud, half the scene
    img[:5] = 0.0  # no data
    clear = clear_pixels(img)
    assert not clear[:, 25:].any() and not clear[:5].any() and clear[5:, :25].all()
    good = true_colour(img)[5:, :25]
    assert good.mean() > 0.3  # land fills the display range
    assert stretch_joint(img)[5:, :25].mean() < 0.15  # cloud in the percentiles: land dark
    # a cloud mask given by the caller is honoured too
    valid = np.ones((50, 50), bool)
    valid[5:, :10] = False
    assert true_colour(img, valid=valid)[5:, 10:25].mean() > 0.3
    assert BRIGHT_DN == BRIGHT_VISIBLE_DN


def test_s1_false_colour_uses_fixed_documented_ranges():
    vv = np.array([[-25.0, 0.0], [-12.5, 5.0]])
    vh = np.array([[-30.0, -5.0], [-17.5, -40.0]])
    rgb = s1_false_colour(np.stack([vv, vh]))
    b0, b1 = S1_RANGES_DB[2]
    assert S1_RANGES_DB[:2] == ((-25.0, 0.0), (-30.0, -5.0))
    assert rgb[0, 0, 0] == 0.0 and rgb[0, 1, 0] == 1.0 and rgb[1, 0, 0] == 0.5
    assert rgb[0, 0, 1] == 0.0 and rgb[0, 1, 1] == 1.0 and rgb[1, 1, 1] == 0.0
    assert rgb[1, 0, 2] == (5.0 - b0) / (b1 - b0)  # VV − VH = 5 dB
    assert rgb.min() >= 0 and rgb.max() <= 1
    # the same values give the same colours whatever else is in the image
    big = s1_false_colour(np.stack([np.pad(vv, 3, constant_values=-3), np.pad(vh, 3)]))
    assert np.array_equal(big[3:5, 3:5], rgb)
