"""Sliding windows over a scene and the smooth blending of their logits.

Windows of side ``size`` step by ``stride = size - overlap``; the last window of a row or
column is shifted to end at the scene's edge, so every pixel is covered and no window
reads outside the scene (scenes smaller than a window are padded by the reader).

Blending: every window's logits are weighted per pixel by a separable taper
``w(y, x) = t(y) · t(x)``, ``t(i) = max(sin²(π (i + ½) / size), ε)``: close to 1 in the middle,
falling smoothly towards the window's edges, where a convolutional network's outputs are
least reliable. The blended logit of a pixel is ``Σ_w w · logits_w / Σ_w w`` over the
windows covering it, so overlapping windows fade into each other without seams, and a pixel
covered by a single window (scene corners) gets that window's logits exactly. ε keeps
the weights positive, so the division is always defined.

:class:`StripAccumulator` keeps only the rows that windows still to come can touch (one
window height), so memory grows with the scene's width, never with its area.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from rsfuse.errors import ConfigError

#: Floor of the blending taper.
TAPER_EPS = 1e-3


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Start offsets of windows of ``size`` stepping by ``stride`` along ``length`` pixels.

    The last window ends exactly at ``length``; a ``length`` below ``size`` gives ``[0]``
    (the window is padded).

    Raises:
        ConfigError: ``size`` < 1 or ``stride`` not in [1, size].
    """
    if size < 1:
        raise ConfigError(f"window size must be >= 1, got {size}", key="window")
    if not 1 <= stride <= size:
        raise ConfigError(
            f"window stride must lie in [1, {size}] (overlap < window), got {stride}",
            key="overlap",
        )
    if length <= size:
        return [0]
    starts = list(range(0, length - size, stride))
    starts.append(length - size)
    return starts


def taper(size: int, eps: float = TAPER_EPS) -> np.ndarray:
    """1-D blending taper ``t`` of length ``size`` (see the module docstring). float32."""
    i = np.arange(size, dtype=np.float64)
    t = np.sin(math.pi * (i + 0.5) / size) ** 2
    return np.maximum(t, eps).astype(np.float32)


def blend_weights(size: int, eps: float = TAPER_EPS) -> np.ndarray:
    """2-D blending weights ``t(y) · t(x)``: float32 [size, size]."""
    t = taper(size, eps)
    return np.outer(t, t)


class StripAccumulator:
    """Weighted sums of window logits over a band of rows, flushed as rows become final.

    Windows must be added in order of non-decreasing row start. Before adding windows that
    start at row ``y0``, call :meth:`advance` (``y0``): rows above ``y0`` can get no more
    contributions and are handed to ``emit(row0, values, weight, tag)`` with ``values``
    float32 [K, rows, W] the blended logits, ``weight`` [rows, W] their total weight (0 where
    no window contributed: no data) and ``tag`` uint8 [rows, W], the maximum of the windows'
    per-pixel tags (the inference path, the same in every window covering a pixel).

    Args:
        channels: K, logit channels.
        width: scene width W.
        height: scene height H.
        capacity: rows one window spans (its height).
        emit: receives the final rows.
    """

    def __init__(
        self,
        channels: int,
        width: int,
        height: int,
        capacity: int,
        emit: Callable[[int, np.ndarray, np.ndarray, np.ndarray], None],
    ) -> None:
        self.k, self.width, self.height = channels, width, height
        self.capacity = min(capacity, height)
        self.emit = emit
        self.origin = 0  # scene row of buffer row 0
        self.sum = np.zeros((channels, self.capacity, width), np.float32)  # [K, R, W]
        self.weight = np.zeros((self.capacity, width), np.float32)  # [R, W]
        self.tag = np.zeros((self.capacity, width), np.uint8)  # [R, W]

    def advance(self, y0: int) -> None:
        """Flush every row above ``y0`` (no window to come starts above it)."""
        n = min(y0, self.origin + self.capacity) - self.origin
        if n <= 0:
            return
        self._emit_rows(n)
        # shift the rest up, zero the freed rows
        self.sum[:, :-n] = self.sum[:, n:].copy() if n < self.capacity else 0.0
        self.sum[:, self.capacity - n :] = 0.0
        self.weight[:-n] = self.weight[n:].copy() if n < self.capacity else 0.0
        self.weight[self.capacity - n :] = 0.0
        self.tag[:-n] = self.tag[n:].copy() if n < self.capacity else 0
        self.tag[self.capacity - n :] = 0
        self.origin += n
        if y0 > self.origin:  # a gap with no window at all (cannot happen with the grid)
            self.origin = y0

    def add(
        self,
        y0: int,
        x0: int,
        logits: np.ndarray,
        weight: np.ndarray,
        tag: np.ndarray | None = None,
    ) -> None:
        """Add ``weight · logits`` of a window at (y0, x0).

        Args:
            y0, x0: window origin in the scene.
            logits: float32 [K, h, w].
            weight: float32 [h, w] (zero where the window has no valid prediction).
            tag: uint8 [h, w] per-pixel tag (kept as the maximum over windows).
        """
        h, w = weight.shape
        r = y0 - self.origin
        if r < 0 or r + h > self.capacity:
            raise ValueError(f"window at row {y0} outside the buffer [{self.origin}, +{h})")
        self.sum[:, r : r + h, x0 : x0 + w] += logits * weight
        self.weight[r : r + h, x0 : x0 + w] += weight
        if tag is not None:
            t = self.tag[r : r + h, x0 : x0 + w]
            np.maximum(t, tag, out=t)

    def finish(self) -> None:
        """Flush the remaining rows (the scene's bottom)."""
        n = self.height - self.origin
        if n > 0:
            self._emit_rows(n)
            self.origin = self.height

    def _emit_rows(self, n: int) -> None:
        s, w = self.sum[:, :n], self.weight[:n]
        values = np.divide(s, w, out=np.zeros_like(s), where=w > 0)
        self.emit(self.origin, values, w.copy(), self.tag[:n].copy())
