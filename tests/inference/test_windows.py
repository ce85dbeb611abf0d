"""Window grid, blending taper and the streaming strip accumulator."""

from __future__ import annotations

import numpy as np
import pytest

from rsfuse.errors import ConfigError
from rsfuse.inference.windows import StripAccumulator, blend_weights, taper, window_starts


@pytest.mark.parametrize(
    ("length", "size", "stride", "expected"),
    [
        (100, 40, 30, [0, 30, 60]),
        (100, 40, 40, [0, 40, 60]),
        (40, 40, 30, [0]),
        (25, 40, 30, [0]),
        (41, 40, 1, [0, 1]),
    ],
)
def test_window_starts_cover_the_scene_and_end_at_its_edge(length, size, stride, expected):
    starts = window_starts(length, size, stride)
    assert starts == expected
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + size] = True
    assert covered.all()


def test_window_starts_reject_bad_geometry():
    with pytest.raises(ConfigError, match="stride"):
        window_starts(100, 40, 41)
    with pytest.raises(ConfigError, match="stride"):
        window_starts(100, 40, 0)
    with pytest.raises(ConfigError, match="window size"):
        window_starts(100, 0, 1)


def test_taper_is_positive_symmetric_and_peaks_in_the_middle():
    t = taper(64)
    assert t.min() > 0
    np.testing.assert_allclose(t, t[::-1], rtol=1e-6)
    assert t[31] > 0.99 and t[0] < 0.01
    w = blend_weights(64)
    assert w.shape == (64, 64)
    np.testing.assert_allclose(w, np.outer(t, t))


def _brute_force(h, w, windows):
    s = np.zeros((windows[0][2].shape[0], h, w))
    n = np.zeros((h, w))
    for y0, x0, lg, wt in windows:
        hh, ww = wt.shape
        s[:, y0 : y0 + hh, x0 : x0 + ww] += lg * wt
        n[y0 : y0 + hh, x0 : x0 + ww] += wt
    return np.divide(s, n, out=np.zeros_like(s), where=n > 0), n


def test_strip_accumulator_equals_blending_on_the_whole_canvas():
    """Streaming rows through a one-window-high buffer gives exactly the weighted mean that
    a whole-scene canvas gives, and never holds more than one window of rows."""
    rng = np.random.default_rng(0)
    H, W, size, stride, K = 70, 53, 24, 17, 3
    wts = blend_weights(size)
    windows = []
    for y0 in window_starts(H, size, stride):
        for x0 in window_starts(W, size, stride):
            windows.append((y0, x0, rng.normal(size=(K, size, size)).astype(np.float32), wts))
    expected, n = _brute_force(H, W, windows)
    out = np.full((K, H, W), np.nan, np.float32)
    weight = np.full((H, W), np.nan, np.float32)
    rows_seen = []

    def emit(row0, values, wsum, tag):
        rows_seen.append((row0, values.shape[1]))
        out[:, row0 : row0 + values.shape[1]] = values
        weight[row0 : row0 + values.shape[1]] = wsum

    acc = StripAccumulator(K, W, H, size, emit)
    assert acc.sum.shape == (K, size, W)  # memory: one window of rows
    for y0, x0, lg, wt in windows:
        acc.advance(y0)
        acc.add(y0, x0, lg, wt)
    acc.finish()
    # every row emitted exactly once, in order
    starts = [r for r, _ in rows_seen]
    assert starts == sorted(starts)
    assert sum(k for _, k in rows_seen) == H
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(weight, n, rtol=1e-5)


def test_constant_logits_come_back_exactly_and_zero_weight_means_no_data():
    H, W, size = 40, 40, 16
    got = {}

    def emit(row0, values, wsum, tag):
        got[row0] = (values, wsum, tag)

    acc = StripAccumulator(2, W, H, size, emit)
    lg = np.stack([np.full((size, size), 3.0), np.full((size, size), -1.0)]).astype(np.float32)
    for y0 in window_starts(H, size, 12):
        acc.advance(y0)
        for x0 in window_starts(W, size, 12):
            wt = blend_weights(size).copy()
            if x0 == 0 and y0 == 0:
                wt[:4, :4] = 0.0  # a no-data corner
            acc.add(y0, x0, lg, wt, np.full((size, size), 2, np.uint8))
    acc.finish()
    values = np.concatenate([got[k][0] for k in sorted(got)], axis=1)
    wsum = np.concatenate([got[k][1] for k in sorted(got)], axis=0)
    tag = np.concatenate([got[k][2] for k in sorted(got)], axis=0)
    assert (wsum[:4, :4] == 0).all() and (values[:, :4, :4] == 0).all()
    np.testing.assert_allclose(values[0][wsum > 0], 3.0, rtol=1e-6)
    np.testing.assert_allclose(values[1][wsum > 0], -1.0, rtol=1e-6)
    assert (tag == 2).all()
