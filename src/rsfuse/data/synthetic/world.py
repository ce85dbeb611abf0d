"""The synthetic Sentinel world: procedurally generated, learnable, paired S1/S2 locations.

Nobody here can download BigEarthNet or SSL4EO-S12, so rsfuse generates its own data. The
world is built from a seed and is a pure function of ``(seed, index)``: every random draw for
location ``index`` comes from ``np.random.default_rng([seed, index])`` (through
:meth:`SyntheticWorld.streams`, which spawns independent child generators from it), so
parallel workers and reruns produce identical pixels and bytes.

What a location holds
    * a land-cover map (19 BigEarthNet classes, :data:`rsfuse.data.classes.BEN19`) drawn as the
      argmax of a few smooth random fields, 1–4 classes per patch, with BigEarthNet-like class
      imbalance (forests, arable land and pastures common; beaches and coastal wetlands rare)
      and co-occurrence (coastal classes go together, urban with agriculture, …). Every class
      in the map covers at least :data:`LABEL_MIN_FRACTION` of the pixels, so the multi-label
      target is exactly the set of classes in the map;
    * Sentinel-2 reflectance x 10000 for the 13 L1C bands (:data:`rsfuse.bands.S2_L1C_ORDER`) on
      the 10 m grid: per-class spectrum of the season + a smooth greenness variation + a smooth
      brightness texture + sensor noise. Vegetation follows a phenology (red edge and NIR up in
      summer, down in winter), water is dark in NIR/SWIR, urban flat and bright, sand bright;
    * Sentinel-1 VV, VH backscatter in dB: per-class mean (linear power) x a smooth texture x
      multiplicative Gamma speckle with :data:`SPECKLE_LOOKS` looks (mean 1);
    * clouds (smooth opacity blobs) and their shadows over S2 only (about
      :data:`CLOUDY_PROBABILITY` of the locations), and rare seasonal snow in winter (about 3 %
      of the locations); S1 is never changed by either;
    * geo information: a Sentinel-2 tile with its UTM zone (EPSG:326xx), the patch's row and
      column in the tile's 120 px patch grid, the 10 m transform origin, and the acquisition
      times of the S2 and S1 products of that tile and season.

Built-in ambiguity, so that fusion matters (19-class indices, first member is the source):

=================== ============================================================ ===========
constant            pairs                                                        separable by
=================== ============================================================ ===========
``SAR_ONLY_PAIRS``  (0, 1) Urban fabric / Industrial or commercial units;        S1 only
                    (4, 11) Pastures / Natural grassland and sparsely vegetated;
                    (17, 18) Inland waters / Marine waters
``OPTICAL_ONLY_``   (8, 9) Broad-leaved / Coniferous forest;                     S2 only
``PAIRS``           (2, 5) Arable land / Complex cultivation patterns;
                    (12, 14) Moors, heathland and sclerophyllous vegetation /
                    Beaches, dunes, sands
=================== ============================================================ ===========

A SAR-only pair shares every S2 parameter (spectra in all seasons, greenness variation,
texture), so the two classes have identical optical statistics, while its S1 means differ by
several dB. An optical-only pair shares every S1 parameter (means in all seasons, texture),
while its spectra differ. Per-class tables are drawn once from the world seed (a small
perturbation of the designed values, the same for both members of a pair).

Generating one 120 x 120 location takes a few milliseconds: smooth fields are Gaussian-filtered
noise on a coarse grid, linearly upsampled, and all per-pixel work is vectorised table
look-ups.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from rasterio.transform import Affine
from scipy import ndimage

from rsfuse.bands import S2_L1C_ORDER
from rsfuse.data.classes import BEN19
from rsfuse.errors import ConfigError

SEASONS: tuple[str, ...] = ("winter", "spring", "summer", "autumn")
NUM_CLASSES = len(BEN19)
NUM_S2_BANDS = len(S2_L1C_ORDER)

#: Every class present in a land-cover map covers at least this fraction of the pixels.
LABEL_MIN_FRACTION = 0.02
#: Probability that a location (in a given season) is cloudy.
CLOUDY_PROBABILITY = 0.10
#: Probability of seasonal snow for a winter location (so ≈ 3 % of all locations).
SNOW_PROBABILITY_WINTER = 0.12
#: A location has clouds (or snow) when at least this fraction of pixels is affected.
FLAG_MIN_FRACTION = 0.01
#: Equivalent number of looks of the S1 speckle (Gamma shape; mean 1).
SPECKLE_LOOKS = 4.0

SAR_ONLY_PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (4, 11), (17, 18))
OPTICAL_ONLY_PAIRS: tuple[tuple[int, int], ...] = ((8, 9), (2, 5), (12, 14))

#: Relative class frequency: BigEarthNet-19 label counts (Sumbul et al. 2021, all patches).
CLASS_FREQUENCY: tuple[float, ...] = (
    74891, 12395, 196695, 29350, 103554, 107786, 143539, 30674, 150944, 211703, 217341,
    12835, 15809, 200813, 1536, 22007, 1566, 67277, 81612,
)  # fmt: skip

#: Landscape group of each class; classes of a group already in a patch are 4x as likely.
CLASS_GROUP: tuple[str, ...] = (
    "urban", "urban", "agri", "agri", "agri", "agri", "agri", "agri", "forest", "forest",
    "forest", "natural", "natural", "forest", "coast", "natural", "coast", "water", "coast",
)  # fmt: skip
_GROUP_AFFINITY = 4.0
#: Probability of 1, 2, 3, 4 classes drawn for a patch (small ones may then vanish).
NUM_CLASSES_P: tuple[float, ...] = (0.2, 0.35, 0.3, 0.15)

# ---------------------------------------------------------------------------------------
# Spectral endmembers, reflectance x 10000 in S2_L1C_ORDER:
#   B01   B02   B03   B04   B05   B06   B07   B08   B8A   B09  B10   B11   B12
ENDMEMBERS: dict[str, tuple[float, ...]] = {
    "broad": (250, 300, 550, 300, 900, 2700, 3400, 3600, 3700, 3300, 15, 1900, 850),
    "conifer": (200, 220, 400, 220, 600, 1500, 1900, 2050, 2150, 1900, 12, 1050, 480),
    "grass": (300, 350, 700, 400, 1100, 2600, 3100, 3300, 3400, 3000, 15, 2300, 1200),
    "shrub": (260, 330, 520, 480, 850, 1500, 1800, 1950, 2050, 1800, 12, 2000, 1250),
    "dry": (420, 550, 800, 1000, 1300, 1700, 1900, 2100, 2200, 2000, 15, 2900, 2100),
    "soil": (650, 800, 1100, 1400, 1600, 1800, 1950, 2100, 2200, 2000, 15, 3000, 2500),
    "water": (320, 450, 550, 350, 280, 200, 180, 150, 140, 110, 8, 80, 50),
    "urban": (1000, 1100, 1200, 1300, 1400, 1500, 1600, 1700, 1750, 1600, 15, 2000, 1800),
    "sand": (1300, 1600, 2000, 2400, 2700, 2900, 3000, 3100, 3200, 2900, 20, 3700, 3100),
}
#: Fresh snow: very bright in the visible, dark in SWIR.
SNOW_SPECTRUM = np.array(
    (7800, 8200, 8300, 8200, 8000, 7800, 7600, 7400, 7300, 6000, 40, 900, 700), np.float32
)
#: Thick cloud: bright and flat, high in the cirrus band B10.
CLOUD_SPECTRUM = np.array(
    (6200, 6000, 5900, 5900, 6000, 6100, 6100, 6100, 6100, 5000, 900, 4800, 3600), np.float32
)
#: Cloud shadows multiply every band by this factor.
SHADOW_FACTOR = 0.45
#: Global illumination per season (low winter sun).
SEASON_ILLUMINATION: tuple[float, ...] = (0.88, 0.97, 1.0, 0.94)

for _name, _v in ENDMEMBERS.items():
    assert len(_v) == NUM_S2_BANDS, _name


@dataclass(frozen=True)
class _Optical:
    """Designed optical behaviour of a class: green cover over a background, per season."""

    green: dict[str, float]  # endmember mixture of the green vegetation
    cover: tuple[float, float, float, float]  # green cover fraction per season
    background: dict[str, float]  # endmember mixture of what is not green
    variation: float  # std of the per-pixel green cover (smooth field)
    texture: float  # relative std of the per-pixel brightness (smooth field)


@dataclass(frozen=True)
class _Radar:
    """Designed radar behaviour of a class (dB; means of the linear power)."""

    vv: float
    vh: float
    season: tuple[float, float, float, float]  # dB added to VV and VH per season
    texture: float  # std in dB of the smooth per-pixel backscatter texture


_OPTICAL: dict[int, _Optical] = {
    0: _Optical({"grass": 1}, (0.15, 0.25, 0.30, 0.22), {"urban": 1}, 0.08, 0.12),
    2: _Optical({"grass": 1}, (0.05, 0.45, 0.90, 0.15), {"soil": 1}, 0.10, 0.08),
    3: _Optical({"broad": 1}, (0.25, 0.45, 0.60, 0.45), {"soil": 0.5, "dry": 0.5}, 0.10, 0.10),
    4: _Optical({"grass": 1}, (0.55, 0.80, 0.90, 0.70), {"dry": 1}, 0.08, 0.05),
    5: _Optical(
        {"grass": 1}, (0.35, 0.60, 0.55, 0.45), {"soil": 0.4, "dry": 0.4, "urban": 0.2}, 0.12, 0.12
    ),
    6: _Optical(
        {"grass": 0.5, "broad": 0.5},
        (0.35, 0.60, 0.75, 0.50),
        {"dry": 0.7, "soil": 0.3},
        0.10,
        0.10,
    ),
    7: _Optical({"broad": 0.6, "shrub": 0.4}, (0.30, 0.50, 0.55, 0.35), {"dry": 1}, 0.10, 0.10),
    8: _Optical({"broad": 1}, (0.12, 0.65, 0.95, 0.55), {"dry": 0.7, "soil": 0.3}, 0.06, 0.06),
    9: _Optical({"conifer": 1}, (0.85, 0.90, 0.95, 0.90), {"soil": 0.5, "dry": 0.5}, 0.05, 0.06),
    12: _Optical({"shrub": 1}, (0.50, 0.65, 0.75, 0.60), {"dry": 0.6, "soil": 0.4}, 0.08, 0.07),
    13: _Optical({"broad": 0.5, "shrub": 0.5}, (0.35, 0.60, 0.80, 0.55), {"dry": 1}, 0.10, 0.09),
    14: _Optical({"shrub": 1}, (0.03, 0.04, 0.05, 0.04), {"sand": 0.9, "water": 0.1}, 0.02, 0.05),
    15: _Optical({"grass": 1}, (0.30, 0.50, 0.70, 0.45), {"water": 0.6, "dry": 0.4}, 0.10, 0.08),
    16: _Optical(
        {"shrub": 1},
        (0.20, 0.35, 0.50, 0.35),
        {"water": 0.5, "sand": 0.3, "soil": 0.2},
        0.10,
        0.08,
    ),
    17: _Optical({"grass": 1}, (0.0, 0.0, 0.0, 0.0), {"water": 1}, 0.01, 0.03),
}
# class 10 (Mixed forest) is the mean of 8 and 9; SAR-only partners copy their source.

_RADAR: dict[int, _Radar] = {
    0: _Radar(-6.0, -13.0, (0, 0, 0, 0), 2.0),
    1: _Radar(0.5, -8.5, (0, 0, 0, 0), 2.5),
    2: _Radar(-11.0, -18.0, (1.5, -0.5, 0.5, 0.0), 1.0),
    3: _Radar(-9.5, -16.0, (0, 0, 0.3, 0), 1.2),
    4: _Radar(-11.5, -18.5, (0.5, 0, 0, 0.3), 0.8),
    6: _Radar(-10.0, -16.5, (0.5, 0, 0.3, 0), 1.2),
    7: _Radar(-8.5, -14.5, (0, 0, 0, 0), 1.5),
    8: _Radar(-7.5, -13.0, (-0.8, 0, 0.3, 0), 1.0),
    10: _Radar(-7.2, -12.6, (-0.4, 0, 0.3, 0), 1.0),
    11: _Radar(-16.0, -24.0, (0.5, 0, 0, 0.3), 0.8),
    12: _Radar(-12.5, -19.5, (0, 0, 0, 0), 1.0),
    13: _Radar(-9.0, -15.5, (-0.3, 0, 0.2, 0), 1.2),
    15: _Radar(-13.5, -21.0, (1.0, 0, -0.5, 0), 1.2),
    16: _Radar(-14.5, -22.5, (0, 0, 0, 0), 1.2),
    17: _Radar(-22.0, -29.0, (0, 0, 0, 0), 0.5),
    18: _Radar(-15.0, -24.0, (1.0, 0, -0.5, 0.5), 0.8),
}
# optical-only partners (9, 5, 14) copy their source's radar behaviour.

#: Classes that never carry snow (open water).
_SNOW_FREE = (16, 17, 18)

# ---------------------------------------------------------------------------------------
# Geography: Sentinel-2 tiles in BigEarthNet countries (tile, EPSG, country, ulx, uly).
TILES: tuple[tuple[str, int, str, int, int], ...] = (
    ("33UUP", 32633, "Austria", 300000, 5300040),
    ("31UES", 32631, "Belgium", 499980, 5700000),
    ("35VLH", 32635, "Finland", 399960, 6800040),
    ("29UPU", 32629, "Ireland", 600000, 5900040),
    ("34TEN", 32634, "Kosovo", 499980, 4800000),
    ("35ULA", 32635, "Lithuania", 300000, 6100020),
    ("31UGR", 32631, "Luxembourg", 699960, 5600040),
    ("29SND", 32629, "Portugal", 600000, 4300020),
    ("29TNE", 32629, "Portugal", 499980, 4600020),
    ("34TDN", 32634, "Serbia", 399960, 4900020),
    ("32TMT", 32632, "Switzerland", 399960, 5200020),
    ("33TWN", 32633, "Austria", 499980, 5200020),
)
#: Side of a Sentinel-2 tile in metres.
TILE_SIDE_M = 109800
#: First day of each season's acquisition window (BigEarthNet: June 2017 – May 2018).
SEASON_START: tuple[datetime, ...] = (
    datetime(2017, 12, 1), datetime(2018, 3, 1), datetime(2017, 6, 1), datetime(2017, 9, 1),
)  # fmt: skip
#: Acquisitions lie within this many days after the season start (+ one day per cycle).
_DATE_SPREAD_DAYS = 30
_MAX_CYCLES = 60


@dataclass(frozen=True)
class Product:
    """The S2 and S1 acquisitions of one tile in one season (and cycle through the tile)."""

    s2_platform: str  # "S2A" / "S2B"
    s2_time: datetime
    relative_orbit: int  # S2 relative orbit, 1–143
    s1_platform: str  # "S1A" / "S1B"
    s1_time: datetime
    s1_absolute_orbit: int
    s1_datatake: int


@dataclass(frozen=True)
class GeoInfo:
    """Where and when a location is.

    Attributes:
        tile: Sentinel-2 MGRS tile, e.g. ``33UUP``.
        country: country of the tile.
        epsg: UTM EPSG code (``326xx``).
        row: patch row in the tile's patch grid.
        col: patch column in the tile's patch grid.
        ulx: upper-left x of the patch (metres, UTM).
        uly: upper-left y of the patch (metres, UTM).
        size: patch side on the 10 m grid (pixels).
        product: acquisition times and platforms.
    """

    tile: str
    country: str
    epsg: int
    row: int
    col: int
    ulx: float
    uly: float
    size: int
    product: Product

    @property
    def crs(self) -> str:
        """CRS as ``EPSG:326xx``."""
        return f"EPSG:{self.epsg}"

    def transform(self, resolution: int = 10) -> Affine:
        """Affine transform of the patch's grid of ``resolution`` metre pixels."""
        return Affine(resolution, 0.0, self.ulx, 0.0, -resolution, self.uly)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(ulx, uly, lrx, lry)`` in metres."""
        side = self.size * 10
        return self.ulx, self.uly, self.ulx + side, self.uly - side


@dataclass
class Location:
    """Everything the world holds for one location in one season.

    Attributes:
        index: location index.
        season: 0–3, see :data:`SEASONS`.
        land_cover: int64 [H, W] 19-class map.
        labels: sorted 19-class indices present in ``land_cover`` (each ≥ 2 % of pixels).
        s2: float32 [13, H, W] reflectance x 10000 (L1C band order), snow and clouds applied.
        s2_clear: float32 [13, H, W] the same before snow and clouds.
        s1: float32 [2, H, W] VV, VH in dB.
        cloud: float32 [H, W] cloud opacity in [0, 1].
        shadow: bool [H, W] cloud shadow.
        snow: float32 [H, W] snow cover in [0, 1].
        cloud_fraction: fraction of pixels under cloud (opacity > 0.05) or shadow.
        has_cloud: ``cloud_fraction`` ≥ :data:`FLAG_MIN_FRACTION`.
        has_snow: snow on at least :data:`FLAG_MIN_FRACTION` of the pixels.
        geo: tile, CRS, transform origin and acquisition times.
    """

    index: int
    season: int
    land_cover: np.ndarray
    labels: tuple[int, ...]
    s2: np.ndarray
    s2_clear: np.ndarray
    s1: np.ndarray
    cloud: np.ndarray
    shadow: np.ndarray
    snow: np.ndarray
    cloud_fraction: float
    has_cloud: bool
    has_snow: bool
    geo: GeoInfo = field(repr=False)


# ---------------------------------------------------------------------------------------
# Smooth random fields


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


def _as_shape(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int | np.integer):
        shape = (int(size), int(size))
    else:
        shape = (int(size[0]), int(size[1]))
    if min(shape) < 1:
        raise ConfigError(f"patch size must be positive, got {size}", key="size")
    return shape


def _mix(weights: dict[str, float]) -> np.ndarray:
    total = sum(weights.values())
    return sum(w / total * np.asarray(ENDMEMBERS[k], np.float64) for k, w in weights.items())


# ---------------------------------------------------------------------------------------


class SyntheticWorld:
    """A procedurally generated Sentinel-1/2 world in the BigEarthNet 19-class nomenclature.

    Args:
        seed: world seed. Per-class tables come from it; location ``i`` comes from
            ``np.random.default_rng([seed, i])``.

    Attributes:
        s2_spectra: float32 [4, 19, 13] class spectra per season (reflectance x 10000).
        s2_variation: float32 [4, 19, 13] spectral change per unit of the greenness field.
        s2_texture: float32 [19] relative brightness texture.
        s1_means: float32 [4, 19, 2] class mean backscatter (VV, VH; dB of linear power).
        s1_texture: float32 [19] backscatter texture (dB).
        class_frequency: float64 [19] class sampling weights (sum 1).
    """

    def __init__(self, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}", key="seed")
        self.seed = int(seed)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(0x5EED,)))
        self._build_optical(rng)
        self._build_radar(rng)
        self._build_products(rng)
        freq = np.asarray(CLASS_FREQUENCY, np.float64)
        self.class_frequency = freq / freq.sum()
        groups = sorted(set(CLASS_GROUP))
        self._group = np.array([groups.index(g) for g in CLASS_GROUP])

    # -- tables ---------------------------------------------------------------------------

    def _build_optical(self, rng: np.random.Generator) -> None:
        spectra = np.zeros((4, NUM_CLASSES, NUM_S2_BANDS))
        variation = np.zeros((4, NUM_CLASSES, NUM_S2_BANDS))
        texture = np.zeros(NUM_CLASSES)
        for c, o in _OPTICAL.items():
            green, bg = _mix(o.green), _mix(o.background)
            for s in range(4):
                spectra[s, c] = o.cover[s] * green + (1 - o.cover[s]) * bg
                variation[s, c] = o.variation * (green - bg)
            texture[c] = o.texture
        spectra[:, 10] = 0.5 * (spectra[:, 8] + spectra[:, 9])
        variation[:, 10] = 0.5 * (variation[:, 8] + variation[:, 9])
        texture[10] = 0.07
        # world-specific perturbation of each class's spectral shape (±4 %)
        factor = np.exp(rng.normal(0.0, 0.04, (NUM_CLASSES, NUM_S2_BANDS)))
        for a, b in SAR_ONLY_PAIRS:
            spectra[:, b], variation[:, b], texture[b] = spectra[:, a], variation[:, a], texture[a]
            factor[b] = factor[a]
        illum = np.asarray(SEASON_ILLUMINATION)[:, None, None]
        self.s2_spectra = (spectra * factor * illum).astype(np.float32)  # [4, 19, 13]
        self.s2_variation = (variation * factor * illum).astype(np.float32)  # [4, 19, 13]
        self.s2_texture = texture.astype(np.float32)  # [19]
        # per season [26, 19]: spectra.T stacked on variation.T, contiguous for np.take
        self._s2_lookup = np.ascontiguousarray(
            np.concatenate([self.s2_spectra, self.s2_variation], axis=2).transpose(0, 2, 1)
        )

    def _build_radar(self, rng: np.random.Generator) -> None:
        means = np.zeros((4, NUM_CLASSES, 2))
        texture = np.zeros(NUM_CLASSES)
        for c, r in _RADAR.items():
            for s in range(4):
                means[s, c] = (r.vv + r.season[s], r.vh + r.season[s])
            texture[c] = r.texture
        for a, b in OPTICAL_ONLY_PAIRS:
            means[:, b], texture[b] = means[:, a], texture[a]
        # world-specific offsets (dB), shared within every pair so designed gaps are kept
        offset = rng.normal(0.0, 0.5, (NUM_CLASSES, 1)) + rng.normal(0.0, 0.2, (NUM_CLASSES, 2))
        for a, b in (*SAR_ONLY_PAIRS, *OPTICAL_ONLY_PAIRS):
            offset[b] = offset[a]
        self.s1_means = (means + offset).astype(np.float32)  # [4, 19, 2]
        self.s1_texture = texture.astype(np.float32)  # [19]
        self._s1_lookup = np.ascontiguousarray(self.s1_means.transpose(0, 2, 1))  # [4, 2, 19]

    def _build_products(self, rng: np.random.Generator) -> None:
        """Acquisition times per (tile, season); times of day are unique within a season."""
        n = len(TILES)
        self._products: list[list[Product]] = [[None] * 4 for _ in range(n)]  # type: ignore[list-item]
        for s in range(4):
            tod = rng.choice(5400, size=n, replace=False)  # S2: 10:00:00 + seconds
            s1_tod = rng.choice(7200, size=n, replace=False)
            for k in range(n):
                day = SEASON_START[s] + timedelta(days=int(rng.integers(_DATE_SPREAD_DAYS)))
                s2_time = day + timedelta(hours=10, seconds=int(tod[k]))
                s1_hour = 5 if rng.random() < 0.5 else 16
                s1_time = (
                    day
                    + timedelta(days=int(rng.integers(-1, 2)))
                    + timedelta(hours=s1_hour, seconds=int(s1_tod[k]))
                )
                self._products[k][s] = Product(
                    s2_platform="S2A" if rng.random() < 0.6 else "S2B",
                    s2_time=s2_time,
                    relative_orbit=int(rng.integers(1, 144)),
                    s1_platform="S1A" if rng.random() < 0.6 else "S1B",
                    s1_time=s1_time,
                    s1_absolute_orbit=int(rng.integers(5000, 25000)),
                    s1_datatake=int(rng.integers(0x10000, 0xFFFFFF)),
                )

    # -- random streams -------------------------------------------------------------------

    def streams(self, index: int) -> dict[str, np.random.Generator]:
        """Independent generators of location ``index``, from ``default_rng([seed, index])``.

        Keys: ``land_cover``, ``season`` (draws the season), ``layout`` (free for writers of
        a dataset layout, e.g. label-name choices), ``seasons`` (parent of the per-season
        streams, see :meth:`season_streams`).
        """
        if isinstance(index, bool) or not isinstance(index, int | np.integer) or index < 0:
            raise ConfigError(
                f"location index must be a non-negative integer, got {index!r}", key="index"
            )
        top = np.random.default_rng([self.seed, int(index)])
        lc, season, layout, seasons = top.spawn(4)
        return {"land_cover": lc, "season": season, "layout": layout, "seasons": seasons}

    def season_streams(self, index: int, season: int) -> dict[str, np.random.Generator]:
        """Generators for one season of location ``index``: ``events`` (cloudy? snowy?),
        ``s2``, ``s1``, ``clouds``, ``snow``."""
        parent = self.streams(index)["seasons"].spawn(4)[_check_season(season)]
        events, s2, s1, clouds, snow = parent.spawn(5)
        return {"events": events, "s2": s2, "s1": s1, "clouds": clouds, "snow": snow}

    # -- components -----------------------------------------------------------------------

    def land_cover(self, rng: np.random.Generator, size: int | tuple[int, int] = 120) -> np.ndarray:
        """A 19-class land-cover map from the argmax of smooth random fields.

        1–4 classes are drawn (imbalanced frequencies, landscape co-occurrence); any class
        that ends below :data:`LABEL_MIN_FRACTION` of the pixels is removed and its pixels go
        to the next-highest field, so every class in the map is a valid label.

        Returns:
            int64 [H, W].
        """
        H, W = _as_shape(size)
        k = int(rng.choice(len(NUM_CLASSES_P), p=NUM_CLASSES_P)) + 1
        chosen: list[int] = []
        w = self.class_frequency.copy()
        for _ in range(k):
            p = w / w.sum()
            c = int(rng.choice(NUM_CLASSES, p=p))
            chosen.append(c)
            w = w * np.where(self._group == self._group[c], _GROUP_AFFINITY, 1.0)
            w[c] = 0.0
        classes = np.asarray(chosen, np.int64)
        if k == 1:
            return np.full((H, W), classes[0], np.int64)
        scale = rng.uniform(8.0, 24.0)
        fields = smooth_fields(rng, k, (H, W), scale)  # [k, H, W]
        fields += rng.normal(0.0, 0.5, (k, 1, 1)).astype(np.float32)
        active = np.ones(k, bool)
        min_pixels = LABEL_MIN_FRACTION * H * W
        while True:
            arg = np.argmax(np.where(active[:, None, None], fields, -np.inf), axis=0)  # [H, W]
            counts = np.bincount(arg.ravel(), minlength=k)
            small = active & (counts < min_pixels)
            if not small.any():
                break
            active[np.flatnonzero(small)[np.argmin(counts[small])]] = False
        return classes[arg]

    def s2(self, rng: np.random.Generator, land_cover: np.ndarray, season: int) -> np.ndarray:
        """Cloud-free Sentinel-2 L1C reflectance x 10000 on the 10 m grid.

        Class spectrum of the season + greenness variation (smooth, σ 5 px) x (1 + brightness
        texture (smooth, σ 2 px)) + sensor noise (1 % + 15 DN), clipped to [0, 10000].

        Returns:
            float32 [13, H, W] in :data:`rsfuse.bands.S2_L1C_ORDER`.
        """
        s = _check_season(season)
        shape = land_cover.shape
        green = smooth_fields(rng, 1, shape, 5.0)[0]  # [H, W]
        bright = smooth_fields(rng, 1, shape, 2.0)[0]  # [H, W]
        xv = np.take(self._s2_lookup[s], land_cover, axis=1)  # [26, H, W]
        x, v = xv[:NUM_S2_BANDS], xv[NUM_S2_BANDS:]  # spectrum, variation: [13, H, W] each
        v *= green
        x += v
        x *= 1.0 + self.s2_texture[land_cover] * bright
        noise = rng.random(x.shape, dtype=np.float32)  # [13, H, W], uniform, std 1 below
        noise -= np.float32(0.5)
        noise *= np.float32(math.sqrt(12.0))
        np.multiply(x, np.float32(0.01), out=v)  # v: noise std per pixel
        v += np.float32(15.0)
        v *= noise
        x += v
        return np.clip(x, 0.0, 10000.0, out=x)

    def s1(self, rng: np.random.Generator, land_cover: np.ndarray, season: int) -> np.ndarray:
        """Sentinel-1 VV, VH backscatter in dB.

        Class mean (linear power) x smooth texture (σ 2 px, per-class std in dB, shared by
        VV and VH) x Gamma speckle (:data:`SPECKLE_LOOKS` looks, mean 1, independent per
        channel), back to dB.

        Returns:
            float32 [2, H, W].
        """
        s = _check_season(season)
        tex = smooth_fields(rng, 1, land_cover.shape, 2.0)[0] * self.s1_texture[land_cover]
        db = np.take(self._s1_lookup[s], land_cover, axis=1) + tex  # [2, H, W]
        speckle = rng.standard_gamma(SPECKLE_LOOKS, db.shape, dtype=np.float32)
        speckle *= np.float32(1.0 / SPECKLE_LOOKS)
        lin = np.power(np.float32(10.0), db / np.float32(10.0)) * speckle
        out = np.float32(10.0) * np.log10(np.maximum(lin, np.float32(1e-6)))
        return out.astype(np.float32, copy=False)

    def clouds(
        self, rng: np.random.Generator, size: int | tuple[int, int] = 120
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cloud opacity (smooth blobs, 5–60 % cover, soft edges) and the clouds' shadows.

        Returns:
            ``(opacity float32 [H, W] in [0, 1], shadow bool [H, W])``; shadows are the
            clouds shifted by 4–15 px and never overlap a cloud.
        """
        H, W = _as_shape(size)
        cover = rng.uniform(0.05, 0.6)
        f = smooth_fields(rng, 1, (H, W), rng.uniform(6.0, 16.0))[0]  # [H, W]
        q = np.quantile(f, 1.0 - cover)
        opacity = np.clip((f - q) / 0.5, 0.0, 1.0).astype(np.float32)
        dy, dx = (int(v) for v in rng.integers(4, 16, 2) * rng.choice([-1, 1], 2))
        dy, dx = int(np.clip(dy, 1 - H, H - 1)), int(np.clip(dx, 1 - W, W - 1))
        shifted = np.zeros_like(opacity)
        ys, yd = (slice(0, H - dy), slice(dy, H)) if dy >= 0 else (slice(-dy, H), slice(0, H + dy))
        xs, xd = (slice(0, W - dx), slice(dx, W)) if dx >= 0 else (slice(-dx, W), slice(0, W + dx))
        shifted[yd, xd] = opacity[ys, xs]
        shadow = (shifted > 0.3) & (opacity == 0)
        return opacity, shadow

    @staticmethod
    def apply_clouds(s2: np.ndarray, opacity: np.ndarray, shadow: np.ndarray) -> np.ndarray:
        """S2 under clouds: shadows darken (x :data:`SHADOW_FACTOR`), clouds blend towards
        :data:`CLOUD_SPECTRUM` by their opacity. Returns a new float32 [13, H, W] array."""
        x = s2 * np.where(shadow, np.float32(SHADOW_FACTOR), np.float32(1.0))  # [13, H, W]
        a = opacity[None]  # [1, H, W]
        cloud = CLOUD_SPECTRUM[:, None, None] * (0.85 + 0.15 * a)  # [13, H, W]
        x = x * (1.0 - a) + cloud * a
        return np.clip(x, 0.0, 10000.0).astype(np.float32, copy=False)

    def snow(self, rng: np.random.Generator, land_cover: np.ndarray) -> np.ndarray:
        """Snow cover in [0, 1] (smooth field, 20–80 % of the land), zero on open water.

        Returns:
            float32 [H, W].
        """
        cover = rng.uniform(0.2, 0.8)
        f = smooth_fields(rng, 1, land_cover.shape, rng.uniform(8.0, 20.0))[0]
        q = np.quantile(f, 1.0 - cover)
        snow = np.clip((f - q) / 0.3, 0.0, 1.0).astype(np.float32)
        snow[np.isin(land_cover, _SNOW_FREE)] = 0.0
        return snow

    @staticmethod
    def apply_snow(s2: np.ndarray, snow: np.ndarray) -> np.ndarray:
        """S2 with snow: blend towards :data:`SNOW_SPECTRUM` by the snow cover."""
        a = snow[None]  # [1, H, W]
        return (s2 * (1.0 - a) + SNOW_SPECTRUM[:, None, None] * a).astype(np.float32)

    def geo(self, index: int, season: int, size: int = 120) -> GeoInfo:
        """Tile, grid position and acquisition of location ``index`` (a function of the index).

        Locations run through the tiles in turn, then through each tile's patch grid
        (row-major); after all patches of all tiles the next cycle repeats the grid one day
        later, so names stay unique.

        Raises:
            ConfigError: an index beyond the world's capacity (≈ 6 million 120 px patches).
        """
        s = _check_season(season)
        per_side = TILE_SIDE_M // (size * 10)
        k = index % len(TILES)
        cell = index // len(TILES)
        row, col = (cell // per_side) % per_side, cell % per_side
        cycle = cell // (per_side * per_side)
        if cycle >= _MAX_CYCLES:
            raise ConfigError(f"location index {index} exceeds the world's capacity", key="n")
        tile, epsg, country, ulx, uly = TILES[k]
        p = self._products[k][s]
        if cycle:
            d = timedelta(days=cycle)
            p = Product(
                p.s2_platform,
                p.s2_time + d,
                p.relative_orbit,
                p.s1_platform,
                p.s1_time + d,
                p.s1_absolute_orbit + 15 * cycle,
                p.s1_datatake + cycle,
            )
        return GeoInfo(
            tile=tile, country=country, epsg=epsg, row=int(row), col=int(col),
            ulx=float(ulx + col * size * 10), uly=float(uly - row * size * 10), size=size,
            product=p,
        )  # fmt: skip

    # -- a whole location -----------------------------------------------------------------

    def location(self, index: int, size: int = 120, season: int | None = None) -> Location:
        """Generate location ``index``: land cover, S2 (snow and clouds applied), S1, flags.

        Args:
            index: location index (≥ 0).
            size: patch side on the 10 m grid.
            season: 0–3 to force a season (the land cover is the same in every season);
                ``None`` draws it from the location's ``season`` stream.
        """
        st = self.streams(index)
        lc = self.land_cover(st["land_cover"], size)  # [H, W]
        if season is None:
            season = int(st["season"].integers(4))
        ss = self.season_streams(index, season)
        u_cloud, u_snow = ss["events"].random(2)
        s2_clear = self.s2(ss["s2"], lc, season)  # [13, H, W]
        s1 = self.s1(ss["s1"], lc, season)  # [2, H, W]
        H, W = lc.shape
        snow = np.zeros((H, W), np.float32)
        if season == 0 and u_snow < SNOW_PROBABILITY_WINTER:
            snow = self.snow(ss["snow"], lc)
        s2 = self.apply_snow(s2_clear, snow) if snow.any() else s2_clear.copy()
        if u_cloud < CLOUDY_PROBABILITY:
            cloud, shadow = self.clouds(ss["clouds"], (H, W))
            s2 = self.apply_clouds(s2, cloud, shadow)
        else:
            cloud, shadow = np.zeros((H, W), np.float32), np.zeros((H, W), bool)
        cloud_fraction = float(np.mean((cloud > 0.05) | shadow))
        return Location(
            index=int(index),
            season=int(season),
            land_cover=lc,
            labels=tuple(int(c) for c in np.flatnonzero(np.bincount(lc.ravel(), minlength=19))),
            s2=s2,
            s2_clear=s2_clear,
            s1=s1,
            cloud=cloud,
            shadow=shadow,
            snow=snow,
            cloud_fraction=cloud_fraction,
            has_cloud=cloud_fraction >= FLAG_MIN_FRACTION,
            has_snow=float(np.mean(snow > 0.1)) >= FLAG_MIN_FRACTION,
            geo=self.geo(index, season, size),
        )


def _check_season(season: int) -> int:
    if isinstance(season, bool) or not isinstance(season, int | np.integer) or not 0 <= season < 4:
        raise ConfigError(
            f"season must be 0–3 ({', '.join(SEASONS)}), got {season!r}", key="season"
        )
    return int(season)
