"""The synthetic Sentinel world: procedurally generated, paired S1/S2 locations in which class
identity lives where it lives in real imagery — in spatial structure and context, not in a
per-class spectrum.

Nobody here can download BigEarthNet or SSL4EO-S12, so rsfuse generates its own data. The
world is built from a seed and is a pure function of ``(seed, index)``: every random draw for
location ``index`` comes from ``np.random.default_rng([seed, index])`` (through
:meth:`SyntheticWorld.streams`, which spawns independent child generators from it), so
parallel workers and reruns produce identical pixels and bytes.

What a location holds
    * a land-cover map (19 BigEarthNet classes, :data:`rsfuse.data.classes.BEN19`), 1–5
      classes per patch (2.8 on average, as in BigEarthNet) with BigEarthNet-like class
      imbalance and co-occurrence. Region geometry follows the land: managed land (urban,
      agriculture) in straight-edged blocks, natural land in irregular patches, rivers as
      meandering lines, lakes as blobs, coastlines with beaches and coastal wetlands as
      strips along the shore. Every class in the map covers at least
      :data:`LABEL_MIN_FRACTION` of the pixels, so the multi-label target is exactly the set
      of classes in the map;
    * inside each class, an arrangement of surface materials (:mod:`.landscape`): field
      parcels whose crops follow a calendar, street grids, forest crowns and clearings,
      vine rows, pools, tidal channels … Pixels are linear mixtures of materials
      (:mod:`.materials`) whose spectra vary per location (soil, vigour, turbidity), so
      classes overlap pixel by pixel;
    * Sentinel-2 surface reflectance x 10000 for the 13 bands (:data:`rsfuse.bands.S2_L1C_ORDER`;
      calibrated to BigEarthNet's L2A values) on the 10 m grid, with per-acquisition gain and
      haze, terrain shading and sensor noise (:mod:`.acquisition`, Eq. 1);
    * Sentinel-1 VV, VH backscatter in dB: class means with the incidence angle, orbit
      direction, terrain, moisture, structure within the class, spatially correlated Gamma
      speckle and a small S1/S2 misregistration (:mod:`.acquisition`, Eq. 2);
    * clouds (smooth opacity blobs) and their shadows over S2 only (about
      :data:`CLOUDY_PROBABILITY` of the locations), and seasonal snow in winter (about
      10 % of all locations, as in BigEarthNet); S1 is never changed by either;
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

The members of a SAR-only pair share their optical recipe (materials and structure), so
their optical statistics are identical, while their S1 means differ by several dB. The
members of an optical-only pair share their S1 means and radar texture, while their optical
recipes differ (canopy, parcel size, sand). Per-class radar means carry a small perturbation
drawn once from the world seed, the same for both members of a pair.

Generating one 120 x 120 location takes a few milliseconds: structures are hashed lattices
(parcels, grids) and Gaussian-filtered noise, and the spectra one small matrix product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from rasterio.transform import Affine

from rsfuse.bands import S2_L1C_ORDER
from rsfuse.data.classes import BEN19
from rsfuse.data.synthetic import acquisition as acq
from rsfuse.data.synthetic import landscape
from rsfuse.data.synthetic.fields import smooth_fields
from rsfuse.data.synthetic.materials import (
    NUM_MATERIALS,
    SPECTRA_ARRAY,
    location_spectra,
    world_perturbation,
)
from rsfuse.errors import ConfigError

SEASONS: tuple[str, ...] = ("winter", "spring", "summer", "autumn")
NUM_CLASSES = len(BEN19)
NUM_S2_BANDS = len(S2_L1C_ORDER)

#: Every class present in a land-cover map covers at least this fraction of the pixels.
LABEL_MIN_FRACTION = 0.02
#: Probability that a location (in a given season) is cloudy (a design choice, so that S1
#: matters: BigEarthNet itself flags only 1.6 % of its patches).
CLOUDY_PROBABILITY = 0.10
#: Probability of seasonal snow for a winter location: 0.42 / 4 = 10.5 % of all locations,
#: BigEarthNet v1's share (61,707 of 590,326 patches are listed with seasonal snow).
SNOW_PROBABILITY_WINTER = 0.42
#: A location has clouds (or snow) when at least this fraction of pixels is affected.
FLAG_MIN_FRACTION = 0.01
#: Equivalent number of looks of the S1 speckle (Gamma shape; mean 1).
SPECKLE_LOOKS = acq.LOOKS

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
#: Probability of 1 … 5 classes drawn for a patch (small ones may then vanish): on average
#: 2.8 labels per patch, as in BigEarthNet-19 (the label counts of :data:`CLASS_FREQUENCY`
#: over 590,326 patches: 2.85).
NUM_CLASSES_P: tuple[float, ...] = (0.08, 0.22, 0.30, 0.23, 0.17)

#: Region geometry: managed land comes in straight-edged blocks (coarse parcels).
MANAGED_CLASSES: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7)
WATER_CLASSES: tuple[int, ...] = (17, 18)
#: Classes drawn as a strip along a coastline when the patch has one.
SHORE_CLASSES: tuple[int, ...] = (14, 16)
#: Water shapes (river, lake, shore) and their probabilities for inland and marine water.
WATER_SHAPES: dict[int, tuple[float, float, float]] = {17: (0.45, 0.4, 0.15), 18: (0.1, 0.2, 0.7)}

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


@dataclass(frozen=True)
class _Radar:
    """Designed radar behaviour of a class: mean VV, VH (dB) at 38° incidence, dB added per
    season, and the incidence slope (dB per degree, VV and VH)."""

    vv: float
    vh: float
    season: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    slope: tuple[float, float] = (-0.12, -0.08)


_WATER_SLOPE = (-0.3, -0.2)
_RADAR: dict[int, _Radar] = {
    0: _Radar(-10.5, -17.0),
    1: _Radar(-6.0, -13.5),
    2: _Radar(-13.0, -20.0, (1.5, -0.5, 0.5, 0.5)),
    3: _Radar(-12.0, -18.5, (0, 0, 0.3, 0)),
    4: _Radar(-12.5, -19.5, (0.5, 0, 0, 0.3)),
    6: _Radar(-12.5, -19.0, (0.5, 0, 0.3, 0)),
    7: _Radar(-11.5, -18.0),
    8: _Radar(-10.5, -16.0, (-0.8, 0, 0.3, 0)),
    10: _Radar(-10.3, -15.8, (-0.4, 0, 0.3, 0)),
    11: _Radar(-16.0, -23.5, (0.5, 0, 0, 0.3)),
    12: _Radar(-13.5, -21.0),
    13: _Radar(-11.5, -17.8, (-0.3, 0, 0.2, 0)),
    15: _Radar(-16.0, -23.0, (1.0, 0, -0.5, 0)),
    16: _Radar(-16.5, -24.0),
    17: _Radar(-22.5, -29.0, slope=_WATER_SLOPE),
    18: _Radar(-15.5, -25.0, (1.0, 0, -0.5, 0.5), slope=_WATER_SLOPE),  # windy sea
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
    def latitude(self) -> float:
        """Approximate latitude of the patch centre (degrees): northing / 110.95 km."""
        return (self.uly - self.size * 5) / 110946.0

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
        s2_acquisition: gain, haze and sun of the S2 image (:mod:`.acquisition`).
        s1_acquisition: incidence, orbit, moisture and misregistration of the S1 image.
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
    s2_acquisition: acq.S2Acquisition | None = field(default=None, repr=False)
    s1_acquisition: acq.S1Acquisition | None = field(default=None, repr=False)


def _as_shape(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int | np.integer):
        shape = (int(size), int(size))
    else:
        shape = (int(size[0]), int(size[1]))
    if min(shape) < 1:
        raise ConfigError(f"patch size must be positive, got {size}", key="size")
    return shape


class SyntheticWorld:
    """A procedurally generated Sentinel-1/2 world in the BigEarthNet 19-class nomenclature.

    Args:
        seed: world seed. World-level tables come from it; location ``i`` comes from
            ``np.random.default_rng([seed, i])``.

    Attributes:
        spectra: float32 [13, M] material spectra of this world (before per-location
            variability), see :mod:`.materials`.
        s1_means: float32 [4, 19, 2] class mean backscatter (VV, VH; dB) per season at the
            reference incidence angle.
        s1_slope: float32 [19, 2] incidence slope (dB per degree).
        class_frequency: float64 [19] class sampling weights (sum 1).
    """

    def __init__(self, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}", key="seed")
        self.seed = int(seed)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(0x5EED,)))
        self.spectra = (SPECTRA_ARRAY * world_perturbation(rng)).astype(np.float32)
        self._build_radar(rng)
        self._build_products(rng)
        freq = np.asarray(CLASS_FREQUENCY, np.float64)
        self.class_frequency = freq / freq.sum()
        groups = sorted(set(CLASS_GROUP))
        self._group = np.array([groups.index(g) for g in CLASS_GROUP])

    # -- tables ---------------------------------------------------------------------------

    def _build_radar(self, rng: np.random.Generator) -> None:
        means = np.zeros((4, NUM_CLASSES, 2))
        slope = np.zeros((NUM_CLASSES, 2))
        for c, r in _RADAR.items():
            for s in range(4):
                means[s, c] = (r.vv + r.season[s], r.vh + r.season[s])
            slope[c] = r.slope
        for a, b in OPTICAL_ONLY_PAIRS:
            means[:, b], slope[b] = means[:, a], slope[a]
        # world-specific offsets (dB), shared within every pair so designed gaps are kept
        offset = rng.normal(0.0, 0.5, (NUM_CLASSES, 1)) + rng.normal(0.0, 0.2, (NUM_CLASSES, 2))
        for a, b in (*SAR_ONLY_PAIRS, *OPTICAL_ONLY_PAIRS):
            offset[b] = offset[a]
        self.s1_means = (means + offset).astype(np.float32)  # [4, 19, 2]
        self.s1_slope = slope.astype(np.float32)  # [19, 2]

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
        streams, see :meth:`season_streams`), ``structure`` (the location's structure key
        and pixel-scale textures: the same in every season).
        """
        if isinstance(index, bool) or not isinstance(index, int | np.integer) or index < 0:
            raise ConfigError(
                f"location index must be a non-negative integer, got {index!r}", key="index"
            )
        top = np.random.default_rng([self.seed, int(index)])
        lc, season, layout, seasons, structure = top.spawn(5)
        return {
            "land_cover": lc,
            "season": season,
            "layout": layout,
            "seasons": seasons,
            "structure": structure,
        }

    def season_streams(self, index: int, season: int) -> dict[str, np.random.Generator]:
        """Generators for one season of location ``index``: ``events`` (cloudy? snowy?),
        ``s2``, ``s1``, ``clouds``, ``snow``."""
        parent = self.streams(index)["seasons"].spawn(4)[_check_season(season)]
        events, s2, s1, clouds, snow = parent.spawn(5)
        return {"events": events, "s2": s2, "s1": s1, "clouds": clouds, "snow": snow}

    # -- land cover -----------------------------------------------------------------------

    def land_cover(self, rng: np.random.Generator, size: int | tuple[int, int] = 120) -> np.ndarray:
        """A 19-class land-cover map: the argmax of per-class score fields.

        1–5 classes are drawn (imbalanced frequencies, landscape co-occurrence). Scores:
        managed classes (:data:`MANAGED_CLASSES`) are constant on coarse Voronoi blocks
        (35–70 px, straight edges) plus a little smooth noise; natural classes are smooth
        random fields (σ 14–36 px: CORINE's minimum mapping unit is 25 ha); water is a river
        (a meandering band 3–10 px wide), a lake (a blob) or a coastline
        (:data:`WATER_SHAPES`), and beaches and coastal wetlands become a strip along a
        coastline. Any class that ends below :data:`LABEL_MIN_FRACTION` of the pixels
        is removed and its pixels go to the next-highest score, so every class in the map is
        a valid label.

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
        key = int(rng.integers(1 << 62))
        # CORINE polygons (the labels' source) are at least 25 ha, 50 x 50 px: regions are
        # coarse
        scale = rng.uniform(14.0, 36.0)
        scores = smooth_fields(rng, k, (H, W), scale)  # [k, H, W]
        block, angle = rng.uniform(35.0, 70.0), rng.uniform(0.0, math.pi)
        yy, xx = (a.astype(np.float64).ravel() for a in np.mgrid[0:H, 0:W])
        shore: np.ndarray | None = None
        cells: tuple[np.ndarray, np.ndarray] | None = None
        for j, c in enumerate(classes.tolist()):
            if c in WATER_CLASSES:
                kind = int(rng.choice(3, p=WATER_SHAPES[c]))
                inside, t = _water_shape(rng, kind, (H, W))
                scores[j] = np.where(inside, 2.5, -2.5) + 0.3 * scores[j]
                if t is not None and shore is None:
                    shore = t
            elif c in MANAGED_CLASSES:
                if cells is None:
                    cells = landscape.voronoi(key, 11, yy, xx, block, 1.0, angle, edges=False)[:2]
                v = (landscape.hash_uniform(key, 20 + c, *cells) - 0.5) * math.sqrt(12.0)
                scores[j] = v.reshape(H, W) + 0.25 * scores[j]
        if shore is not None:
            for j, c in enumerate(classes.tolist()):
                if c in SHORE_CLASSES:
                    width = rng.uniform(6.0, 20.0)
                    strip = (shore >= 0) & (shore < width)
                    scores[j] = np.where(strip, 2.0, -2.5) + 0.3 * scores[j]
        scores += rng.normal(0.0, 0.5, (k, 1, 1)).astype(np.float32)
        active = np.ones(k, bool)
        min_pixels = LABEL_MIN_FRACTION * H * W
        while True:
            arg = np.argmax(np.where(active[:, None, None], scores, -np.inf), axis=0)  # [H, W]
            counts = np.bincount(arg.ravel(), minlength=k)
            small = active & (counts < min_pixels)
            if not small.any():
                break
            active[np.flatnonzero(small)[np.argmin(counts[small])]] = False
        return classes[arg]

    # -- pixels ---------------------------------------------------------------------------

    def structure(
        self, rng: np.random.Generator, shape: tuple[int, int]
    ) -> tuple[int, dict[str, np.ndarray]]:
        """The structure key and pixel-scale texture fields of a location (or scene block).

        Returns:
            ``(key, fields)``, see :func:`.landscape.fine_fields`.
        """
        key = int(rng.integers(1 << 62))
        return key, landscape.fine_fields(rng, shape)

    def render(
        self,
        land_cover: np.ndarray,
        season: int,
        key: int,
        fields: dict[str, np.ndarray],
        s2_acquisition: acq.S2Acquisition,
        s1_acquisition: acq.S1Acquisition,
        s2_rng: np.random.Generator,
        s1_rng: np.random.Generator,
        origin: tuple[int, int] = (0, 0),
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cloud-free Sentinel-2 and Sentinel-1 of a land-cover map (Eq. 1 and 2 of
        :mod:`.acquisition`).

        Args:
            land_cover: int64 [H, W].
            season: 0–3.
            key: structure key (parcels, grids, terrain; :meth:`structure`).
            fields: pixel-scale textures [H, W] (:meth:`structure`).
            s2_acquisition, s1_acquisition: the acquisitions (:func:`.acquisition.draw_s2`,
                :func:`.acquisition.draw_s1`).
            s2_rng, s1_rng: sensor noise and speckle.
            origin: global pixel coordinates of the upper-left pixel (scene blocks).

        Returns:
            ``(s2 float32 [13, H, W] reflectance x 10000 in [0, 10000], s1 float32 [2, H, W]
            VV, VH in dB)``.
        """
        s = _check_season(season)
        H, W = land_cover.shape
        ys = np.arange(origin[0], origin[0] + H)
        xs = np.arange(origin[1], origin[1] + W)
        params = landscape.LocationParams.from_key(key)
        ctx = landscape.Context(
            key, s, ys, xs, land_cover, fields, params,
            shadow=s2_acquisition.shadow, look=s1_acquisition.look,
        )  # fmt: skip
        frac, bright, radar = landscape.compose(ctx)  # [M, H, W], [H, W], [2, H, W]
        east, north = acq.terrain_gradient(key, params.relief, ys, xs)

        # Sentinel-2, Eq. 1
        spectra = location_spectra(np.random.default_rng([key & 0xFFFFFFFF, key >> 32]),
                                   self.spectra)  # [13, M]  # fmt: skip
        # Eq. 1 of .materials (einsum: no BLAS threads in many worker processes)
        x = np.einsum("bm,mp->bp", spectra, frac.reshape(NUM_MATERIALS, -1))
        x = x.reshape(NUM_S2_BANDS, H, W)
        bright *= acq.shading(east, north, s2_acquisition)
        x *= bright
        x *= s2_acquisition.gain[:, None, None]
        x += s2_acquisition.haze[:, None, None]
        noise = s2_rng.random(x.shape, dtype=np.float32)  # uniform, std 1 below
        noise -= np.float32(0.5)
        noise *= np.float32(math.sqrt(12.0))
        noise *= x * np.float32(0.01) + np.float32(15.0)
        x += noise
        s2 = np.clip(x, 0.0, 10000.0, out=x)

        # Sentinel-1, Eq. 2
        sa = s1_acquisition
        db = np.take(self.s1_means[s].T, land_cover, axis=1)  # [2, H, W]
        db += np.take(self.s1_slope.T, land_cover, axis=1) * np.float32(sa.incidence - 38.0)
        land = ~np.isin(land_cover, WATER_CLASSES)
        db += np.float32(sa.moisture) * land
        db += radar
        db += acq.radar_terrain(east, north, sa)
        lin = np.power(np.float32(10.0), db / np.float32(10.0))
        lin *= acq.speckle(s1_rng, (H, W))
        s1 = np.float32(10.0) * np.log10(np.maximum(lin, np.float32(1e-6)))
        s1 = acq.shift_image(s1.astype(np.float32, copy=False), sa.shift)
        return s2.astype(np.float32, copy=False), s1

    # -- clouds and snow ------------------------------------------------------------------

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

    # -- geography ------------------------------------------------------------------------

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

    def acquisitions(
        self, index: int, season: int, geo: GeoInfo | None = None
    ) -> tuple[acq.S2Acquisition, acq.S1Acquisition]:
        """The S2 and S1 acquisitions of location ``index`` in ``season`` (drawn from the
        first values of the season's ``s2`` and ``s1`` streams)."""
        geo = geo or self.geo(index, season)
        ss = self.season_streams(index, season)
        return (
            acq.draw_s2(ss["s2"], geo.latitude, season),
            acq.draw_s1(ss["s1"]),
        )

    def location(self, index: int, size: int = 120, season: int | None = None) -> Location:
        """Generate location ``index``: land cover, S2 (snow and clouds applied), S1, flags.

        Args:
            index: location index (≥ 0).
            size: patch side on the 10 m grid.
            season: 0–3 to force a season (land cover and structure are the same in every
                season); ``None`` draws it from the location's ``season`` stream.
        """
        st = self.streams(index)
        lc = self.land_cover(st["land_cover"], size)  # [H, W]
        if season is None:
            season = int(st["season"].integers(4))
        season = _check_season(season)
        geo = self.geo(index, season, lc.shape[0])
        ss = self.season_streams(index, season)
        u_cloud, u_snow = ss["events"].random(2)
        key, fields = self.structure(st["structure"], lc.shape)
        s2_acq = acq.draw_s2(ss["s2"], geo.latitude, season)
        s1_acq = acq.draw_s1(ss["s1"])
        s2_clear, s1 = self.render(
            lc, season, key, fields, s2_acq, s1_acq, ss["s2"], ss["s1"]
        )  # [13, H, W], [2, H, W]
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
            geo=geo,
            s2_acquisition=s2_acq,
            s1_acquisition=s1_acq,
        )


def _water_shape(
    rng: np.random.Generator, kind: int, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """A river (kind 0), lake (1) or sea beyond a coastline (2).

    Returns:
        ``(inside bool [H, W], t)``: ``t`` float [H, W] is the signed distance (pixels,
        positive on land) from the coastline for kind 2, else None.
    """
    H, W = shape
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    phi = rng.uniform(0.0, math.pi)
    cy, cx = rng.uniform(0.25, 0.75) * H, rng.uniform(0.25, 0.75) * W
    u = (xx - cx) * math.cos(phi) + (yy - cy) * math.sin(phi)
    v = -(xx - cx) * math.sin(phi) + (yy - cy) * math.cos(phi)
    if kind == 0:  # river: meandering band
        lam, amp = rng.uniform(40.0, 120.0), rng.uniform(2.0, 12.0)
        p1, p2 = rng.uniform(0, 2 * math.pi, 2)
        centre = amp * np.sin(2 * math.pi * u / lam + p1)
        centre += 0.4 * amp * np.sin(2 * math.pi * u / (0.37 * lam) + p2)
        width = rng.uniform(4.0, 12.0)
        return np.abs(v - centre) < width / 2, None
    if kind == 1:  # lake: a blob
        f = smooth_fields(rng, 1, shape, rng.uniform(10.0, 20.0))[0]
        cover = rng.uniform(0.2, 0.6)
        return f > np.quantile(f, 1.0 - cover), None
    # coastline: the sea on one side of a wiggly line
    t = u + 4.0 * smooth_fields(rng, 1, shape, 12.0)[0]
    t -= np.quantile(t, rng.uniform(0.3, 0.7))
    return t < 0, t


def _check_season(season: int) -> int:
    if isinstance(season, bool) or not isinstance(season, int | np.integer) or not 0 <= season < 4:
        raise ConfigError(
            f"season must be 0–3 ({', '.join(SEASONS)}), got {season!r}", key="season"
        )
    return int(season)
