"""Smooth random fields: Gaussian-filtered noise, the texture every part of the world uses.

:func:`smooth_fields` draws zero-mean, unit-variance fields with a given correlation length
(σ of the Gaussian filter, pixels), cheaply: white noise on a coarse grid, filtered with
:func:`scipy.ndimage.gaussian_filter` and linearly interpolated. :func:`gauss_norm` is the
std factor of that filter (used by the seamless scene grids of
:mod:`rsfuse.data.synthetic.scene` too).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import ndimage


@functools.lru_cache(maxsize=256)
def gauss_norm(sigma: float) -> float:
    """Std of a 2-D Gaussian-filtered unit-variance white noise (ndimage kernel, truncate 4)."""
    r = int(4.0 * sigma + 0.5)
    w = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    w /= w.sum()
    return float((w**2).sum())  # 1-D variance factor = 2-D std factor


@functools.lru_cache(maxsize=256)
def _upsample_index(size: int, factor: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower coarse index and linear weight of each fine pixel (coarse spacing ``factor``)."""
    u = np.arange(size) / factor + pad
    lo = np.floor(u).astype(np.intp)
    w = (u - lo).astype(np.float32)
    lo.setflags(write=False)
    w.setflags(write=False)
    return lo, w


def smooth_fields(
    rng: np.random.Generator, count: int, shape: tuple[int, int], scale: float
) -> np.ndarray:
    """Smooth, zero-mean, unit-variance random fields (Gaussian-filtered noise).

    White noise on a coarse grid (spacing ``scale // 2`` pixels, margin of 4σ) is filtered
    with :func:`scipy.ndimage.gaussian_filter` (σ = ``scale`` fine pixels) and linearly
    interpolated to the fine grid. No BLAS, so it stays fast in many parallel processes.

    Args:
        rng: random generator.
        count: number of independent fields.
        shape: ``(H, W)``.
        scale: correlation length in pixels (σ of the Gaussian filter).

    Returns:
        float32 [count, H, W].
    """
    H, W = shape
    scale = max(0.5, float(scale))
    f = max(1, int(scale // 2))
    sc = scale / f  # σ on the coarse grid
    pad = math.ceil(4.0 * sc) + 1
    mh, mw = math.ceil((H - 1) / f) + 2 + 2 * pad, math.ceil((W - 1) / f) + 2 + 2 * pad
    # uniform noise is 4x cheaper than normal; the filter makes it Gaussian
    n = rng.random((count, mh, mw), dtype=np.float32)  # [count, mh, mw]
    n -= np.float32(0.5)
    g = ndimage.gaussian_filter(n, (0, sc, sc), mode="nearest", truncate=4.0)
    g *= np.float32(math.sqrt(12.0) / gauss_norm(sc))
    if f == 1:
        return np.ascontiguousarray(g[:, pad : pad + H, pad : pad + W])
    iy, wy = _upsample_index(H, f, pad)
    ix, wx = _upsample_index(W, f, pad)
    rows = g[:, iy] * (1 - wy)[:, None] + g[:, iy + 1] * wy[:, None]  # [count, H, mw]
    return rows[:, :, ix] * (1 - wx) + rows[:, :, ix + 1] * wx  # [count, H, W]


__all__ = ["gauss_norm", "smooth_fields"]
