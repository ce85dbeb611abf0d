"""Cloud masks for whole-scene inference: where Sentinel-2 cannot be trusted.

``rsfuse predict --clouds SPEC`` takes

* ``none``: no cloud mask (every pixel uses the model's full input);
* ``auto`` (default): :func:`s2_cloud_test`, a simple built-in test on the S2 digital
  numbers (reflectance × 10000);
* ``band:NAME``: a band of the S2 input named ``NAME`` (its description); ``SCL`` (the
  L2A scene classification) is read as cloud for classes 3 (shadow), 8, 9 (cloud medium /
  high probability) and 10 (thin cirrus), any other band as cloud where it is non-zero;
* a file path: a single-band raster on the scene's grid (same CRS, transform and size),
  cloud where non-zero (e.g. ``rsfuse synth --layout scene``'s ``cloud_mask.tif``: 1 cloud,
  2 shadow; Fmask / s2cloudless masks thresholded beforehand).

The built-in test flags thick clouds and cirrus, not shadows; a mask file is better when
one exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from rsfuse.errors import ConfigError

#: SCL classes read as cloud: 3 cloud shadow, 8 / 9 cloud medium / high, 10 thin cirrus.
SCL_CLOUD_CLASSES: tuple[int, ...] = (3, 8, 9, 10)
#: Built-in test thresholds (reflectance × 10000).
CIRRUS_DN = 100.0
BRIGHT_VISIBLE_DN = 3000.0
SNOW_NDSI = 0.4


@dataclass(frozen=True)
class CloudSpec:
    """A parsed ``--clouds`` value: ``kind`` is ``none``, ``auto``, ``band`` or ``file``."""

    kind: str
    band: str | None = None
    path: Path | None = None

    @classmethod
    def parse(cls, spec: str | None) -> CloudSpec:
        """Parse ``none`` / ``auto`` / ``band:NAME`` / a path.

        Raises:
            ConfigError: an empty band name.
        """
        if spec is None or spec == "none":
            return cls("none")
        if spec == "auto":
            return cls("auto")
        if spec.startswith("band:"):
            name = spec[len("band:") :]
            if not name:
                raise ConfigError("--clouds band: needs a band name, e.g. band:SCL", key="clouds")
            return cls("band", band=name)
        return cls("file", path=Path(spec))


def s2_cloud_test(s2: np.ndarray, band_names: Sequence[str], dilate: int = 2) -> np.ndarray | None:
    """A simple S2 cloud test on digital numbers (reflectance × 10000).

    A pixel is cloud when the cirrus band B10 exceeds :data:`CIRRUS_DN` (L1C), or when the
    visible bands B02, B03, B04 are all brighter than :data:`BRIGHT_VISIBLE_DN` and it is not
    snow (NDSI = (B03 − B11) / (B03 + B11) below :data:`SNOW_NDSI`). The mask is dilated by
    ``dilate`` pixels to catch the thin edges of clouds.

    Args:
        s2: [C, H, W] digital numbers in ``band_names`` order.
        band_names: names of the channels of ``s2``.
        dilate: dilation radius in pixels (0: none).

    Returns:
        bool [H, W], or ``None`` when the bands the test needs (B02, B03, B04, B11) are
        missing.
    """
    idx = {b: i for i, b in enumerate(band_names)}
    if not all(b in idx for b in ("B02", "B03", "B04", "B11")):
        return None
    x = s2.astype(np.float32, copy=False)
    b2, b3, b4, b11 = (x[idx[b]] for b in ("B02", "B03", "B04", "B11"))
    ndsi = (b3 - b11) / np.maximum(b3 + b11, 1.0)
    cloud = (b2 > BRIGHT_VISIBLE_DN) & (b3 > BRIGHT_VISIBLE_DN) & (b4 > BRIGHT_VISIBLE_DN)
    cloud &= ndsi < SNOW_NDSI
    if "B10" in idx:
        cloud |= x[idx["B10"]] > CIRRUS_DN
    if dilate > 0 and cloud.any():
        cloud = ndimage.binary_dilation(cloud, iterations=dilate)
    return cloud


def band_cloud_mask(values: np.ndarray, band_name: str) -> np.ndarray:
    """Cloud mask from a mask band: SCL classes :data:`SCL_CLOUD_CLASSES`, else non-zero.

    Args:
        values: [H, W] band values.
        band_name: the band's name (``SCL`` selects the class rule).

    Returns:
        bool [H, W].
    """
    if band_name.upper() == "SCL":
        return np.isin(values, SCL_CLOUD_CLASSES)
    return values != 0
