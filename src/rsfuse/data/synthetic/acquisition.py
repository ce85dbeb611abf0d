"""Acquisition effects of the synthetic world: what changes between two images of one place.

Sentinel-2 (per location and season, :func:`draw_s2`), on surface reflectance ρ [13, H, W]:

    L = g_b · ρ · s(p)^0.6 + a_b + n                                                   (1)

* ``g_b``: residual illumination / atmosphere gain of band b, exp(N(0, 0.07)) for the scene
  times exp(N(0, 0.025)) per band (L2A corrections are not perfect);
* ``a_b``: residual haze, U(0, 60) x (λ_b / 490 nm)^-2 reflectance x 10000 (Rayleigh-like,
  strongest in the blue);
* ``s(p) = cos i(p) / sin e``: terrain shading of pixel p, with ``i`` the angle between the
  sun and the surface normal and ``e`` the sun elevation (from the tile's latitude and the
  season, sun azimuth ≈ 155°: mid-morning overpass); the exponent 0.6 stands for a partial
  topographic correction;
* ``n``: sensor noise, 1 % + 15 DN (uniform, zero mean).

Sentinel-1 (per location and season, :func:`draw_s1`), in dB:

    σ⁰(p) = μ_c + k_c (θ − 38°) + m + δ(p) + 0.3 · atan(∇h(p) · d) + 10 log10 S(p)       (2)

* ``μ_c``: the class mean of the season, ``δ``: structure within the class
  (:mod:`.landscape`);
* ``θ``: incidence angle U(30.5°, 45.5°) (interferometric wide swath), ``k_c`` the class's
  slope in dB per degree (water steeper than land);
* ``m``: soil moisture / rain offset of the acquisition on land, N(0, 0.6) dB;
* terrain: ``d`` the horizontal look direction (ascending passes look east, descending ones
  west; the orbit is drawn per acquisition), so slopes facing the sensor brighten (degrees
  of slope x 0.3 dB);
* ``S``: speckle with :data:`LOOKS` looks (Gamma distributed per pixel, mean 1), spatially
  correlated like a GRD product resampled to 10 m (:func:`speckle`);
* S1 / S2 misregistration: the S1 image is shifted by (dy, dx) ∈ {-1, 0, 1}² pixels (each
  axis 0 with probability 0.7).

The terrain ``h`` (metres) is hashed value noise of the location's key (seamless in scenes):
``relief x (v(40 px) + 0.35 v(13 px))`` with a relief log-uniform in 2–50 m.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from rsfuse.bands import BANDS, S2_L1C_ORDER
from rsfuse.data.synthetic.landscape import value_noise

#: Equivalent number of looks of the S1 speckle (Gamma shape; mean 1): Sentinel-1 IW GRDH.
LOOKS = 4.4
#: σ (pixels) of the speckle's point-spread function on the 10 m grid.
SPECKLE_PSF = 0.7
#: Reference incidence angle of the class means (degrees).
INCIDENCE_REF = 38.0
_WAVELENGTHS = np.array([BANDS[b].wavelength_nm for b in S2_L1C_ORDER], np.float64)
#: Haze shape per band: (λ / 490 nm)^-2.
HAZE_SHAPE = ((_WAVELENGTHS / 490.0) ** -2).astype(np.float32)
#: Declination of the sun in each season's acquisition window (degrees).
DECLINATION = (-20.0, 0.0, 22.0, 2.0)


@dataclass(frozen=True)
class S2Acquisition:
    """Sentinel-2 acquisition of one location: gain [13], haze [13], sun angles (degrees)."""

    gain: np.ndarray
    haze: np.ndarray
    sun_elevation: float
    sun_azimuth: float

    @property
    def shadow(self) -> float:
        """Strength of crown and building shadows: 1 at a 45° sun, stronger when lower."""
        return float(np.clip(1.0 / math.tan(math.radians(self.sun_elevation)), 0.5, 2.5))


@dataclass(frozen=True)
class S1Acquisition:
    """Sentinel-1 acquisition: incidence (degrees), orbit, look azimuth (radians), moisture
    offset (dB), misregistration (pixels)."""

    incidence: float
    ascending: bool
    look: float
    moisture: float
    shift: tuple[int, int]


def draw_s2(rng: np.random.Generator, latitude: float, season: int) -> S2Acquisition:
    """Residual gain and haze, and the sun at a mid-morning overpass (Eq. 1)."""
    gain = math.exp(rng.normal(0.0, 0.07)) * np.exp(rng.normal(0.0, 0.025, HAZE_SHAPE.shape))
    haze = rng.uniform(0.0, 60.0) * HAZE_SHAPE
    elevation = 90.0 - latitude + DECLINATION[season] - 8.0 + rng.normal(0.0, 2.0)
    return S2Acquisition(
        gain.astype(np.float32),
        haze.astype(np.float32),
        float(np.clip(elevation, 6.0, 75.0)),
        float(155.0 + rng.normal(0.0, 5.0)),
    )


def draw_s1(rng: np.random.Generator) -> S1Acquisition:
    """Incidence, orbit direction, moisture and misregistration of an acquisition (Eq. 2)."""
    incidence = float(rng.uniform(30.5, 45.5))
    ascending = bool(rng.random() < 0.5)
    look = math.radians((80.0 if ascending else 280.0) + rng.normal(0.0, 3.0))
    moisture = float(rng.normal(0.0, 0.6))
    shift = tuple(int(v) for v in rng.choice([-1, 0, 1], size=2, p=[0.15, 0.7, 0.15]))
    return S1Acquisition(incidence, ascending, look, moisture, shift)  # type: ignore[arg-type]


def terrain_gradient(
    key: int, relief: float, ys: np.ndarray, xs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Terrain slopes (rise per metre) towards east and north at rows ``ys``, columns ``xs``.

    Returns:
        ``(east, north)``, float32 [h, w] each.
    """
    yp = np.concatenate([[ys[0] - 1], ys, [ys[-1] + 1]])
    xp = np.concatenate([[xs[0] - 1], xs, [xs[-1] + 1]])
    h = relief * (value_noise(key, 900, yp, xp, 40.0) + 0.35 * value_noise(key, 901, yp, xp, 13.0))
    east = (h[1:-1, 2:] - h[1:-1, :-2]) / 20.0  # metres per metre (10 m pixels)
    north = (h[:-2, 1:-1] - h[2:, 1:-1]) / 20.0  # rows grow southwards
    return east.astype(np.float32), north.astype(np.float32)


def shading(east: np.ndarray, north: np.ndarray, acq: S2Acquisition) -> np.ndarray:
    """Terrain shading ``s^0.6`` of Eq. 1, clipped to [0.25, 1.8]: float32 [h, w]."""
    el, az = math.radians(acq.sun_elevation), math.radians(acq.sun_azimuth)
    sx, sy, sz = math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el)
    norm = np.sqrt(east * east + north * north + 1.0)
    cos_i = (-east * sx - north * sy + sz) / norm
    s = np.clip(cos_i / sz, 0.0, None) ** 0.6
    return np.clip(s, 0.25, 1.8).astype(np.float32)


def radar_terrain(east: np.ndarray, north: np.ndarray, acq: S1Acquisition) -> np.ndarray:
    """dB change from slopes facing (or turned away from) the radar, Eq. 2: float32 [h, w]."""
    rise = east * math.sin(acq.look) + north * math.cos(acq.look)  # slope along the look
    return (0.3 * np.degrees(np.arctan(rise))).astype(np.float32)


def speckle(
    rng: np.random.Generator, shape: tuple[int, int], looks: float = LOOKS, psf: float = SPECKLE_PSF
) -> np.ndarray:
    """Multiplicative speckle for VV and VH: float32 [2, H, W], mean 1, variance 1 / looks.

    White Gamma noise of shape ``looks · G`` (mean 1) is blurred by a Gaussian point-spread
    function of σ ``psf`` pixels, whose variance gain is ``G`` (the sum of the squared
    weights): afterwards each pixel has mean 1 and variance ``1 / looks`` (close to a
    Gamma(looks) distribution, the sum of many small Gamma terms) and neighbours are
    correlated like the pixels of a GRD product resampled to 10 m.
    """
    H, W = shape
    if psf <= 0:
        return rng.standard_gamma(looks, (2, H, W), dtype=np.float32) / np.float32(looks)
    k = looks * _psf_gain(psf)
    x = rng.standard_gamma(k, (2, H, W), dtype=np.float32)
    x *= np.float32(1.0 / k)
    return ndimage.gaussian_filter(x, (0, psf, psf), mode="wrap", truncate=3.0)


def _psf_gain(psf: float) -> float:
    """Variance of white unit noise after the 2-D Gaussian blur (ndimage, truncate 3)."""
    r = int(3.0 * psf + 0.5)
    w = np.exp(-0.5 * (np.arange(-r, r + 1) / psf) ** 2)
    w /= w.sum()
    return float((w**2).sum()) ** 2


def shift_image(x: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
    """``x`` [..., H, W] moved by ``shift`` = (dy, dx) pixels, edges replicated."""
    dy, dx = shift
    if dy == 0 and dx == 0:
        return x
    H, W = x.shape[-2:]
    pad = [(0, 0)] * (x.ndim - 2) + [(abs(dy), abs(dy)), (abs(dx), abs(dx))]
    p = np.pad(x, pad, mode="edge")
    y0, x0 = abs(dy) - dy, abs(dx) - dx
    return np.ascontiguousarray(p[..., y0 : y0 + H, x0 : x0 + W])


__all__ = [
    "LOOKS",
    "S1Acquisition",
    "S2Acquisition",
    "draw_s1",
    "draw_s2",
    "radar_terrain",
    "shading",
    "shift_image",
    "speckle",
    "terrain_gradient",
]
