"""Spatial structure of the synthetic world: what each land-cover class looks like inside.

A class is not a spectrum but an arrangement of materials (:mod:`.materials`), and it is the
arrangement that identifies it, as in real imagery:

=========================== ==================================================================
class (BigEarthNet-19)      structure
=========================== ==================================================================
Arable land                 field parcels (Voronoi cells, straight boundaries, 140–300 m,
                            one dominant orientation, elongated) with a crop each (winter
                            cereal, summer crop, root crop, grass ley, fallow) that follows its
                            calendar: bare in one season, green in another, stubble after the
                            harvest; hedges or tracks on the boundaries
Complex cultivation         the same crops in small parcels (60–120 m) of any orientation, with
patterns                    natural and orchard parcels among them
Permanent crops             parcels of vine / orchard / olive rows (a 22–40 m periodic pattern)
Pastures, Natural           large grass parcels of uneven vigour, hedgerows, scattered trees
grassland
Agriculture with natural    medium parcels, about half crop and half natural mosaic
vegetation
Agro-forestry               dry grassland with scattered tree crowns (dehesa)
Broad-leaved, Coniferous,   stands of different age and density (100–250 m), groups of
Mixed forest                crowns and gaps (σ ≈ 30 m) with shadows that deepen with a low
                            sun, clearings and forest tracks; broad-leaved canopy loses its
                            leaves in winter; mixed forest is groups of both kinds of trees
Transitional woodland/shrub mosaic of young trees, shrubs and grass at 30 m scale
Moors and heathland         heather and shrubs with dry and bare patches
Beaches, dunes, sands       sand with dune ripples and sparse dune vegetation
Inland wetlands             peat and marsh vegetation with pools and shrub hummocks
Coastal wetlands            salt marsh cut by meandering tidal channels
Inland / Marine waters      water with a turbidity gradient towards the shore (coastal
                            gradient) and wind texture in SAR
Urban fabric, Industrial    a street grid (50–120 m blocks) of asphalt streets; blocks with
                            roofs (grey or red tiles) and gardens; bright radar scatterers on
                            block edges that face the sensor (cardinal effect)
=========================== ==================================================================

The region geometry (rivers as lines, lakes as blobs, coastlines, straight-edged managed
land) is drawn with the land-cover map in :meth:`SyntheticWorld.land_cover`.

Designed ambiguity is kept (see :mod:`rsfuse.data.synthetic.world`): the members of a
SAR-only pair use the same optical recipe (so only their radar means differ), and the members
of an optical-only pair share one radar texture that does not depend on their optical
structure (so only optical data tells them apart).

Large structures (parcels, street grids, tracks, terrain) are pure functions of global pixel
coordinates and a 62-bit key (integer hashing, :func:`hash_uniform`), so a whole scene
generated block by block has no seams; pixel-scale textures (σ ≤ 6 px) come from a random
generator per block (:func:`fine_fields`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from rsfuse.data.synthetic.fields import smooth_fields
from rsfuse.data.synthetic.materials import NUM_MATERIALS, M

_MASK64 = (1 << 64) - 1
_G = np.uint64(0x9E3779B97F4A7C15)
_K1 = np.uint64(0xBF58476D1CE4E5B9)
_K2 = np.uint64(0x94D049BB133111EB)


# ---------------------------------------------------------------------------------------
# coordinate hashing


def _splitmix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(30))
    h = h * _K1
    h = h ^ (h >> np.uint64(27))
    h = h * _K2
    return h ^ (h >> np.uint64(31))


def hash_uniform(key: int, salt: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Uniform numbers in [0, 1) that depend only on ``(key, salt, i, j)`` (integer arrays).

    A SplitMix64 hash of the four integers: the same cell of a lattice gets the same value
    in every block of a scene.

    Returns:
        float64 array of the broadcast shape of ``i`` and ``j``.
    """
    seed = ((int(key) * 0x9E3779B97F4A7C15) ^ (int(salt) * 0xD1B54A32D192ED03)) & _MASK64
    iu = np.asarray(i, np.int64).astype(np.uint64)
    ju = np.asarray(j, np.int64).astype(np.uint64)
    h = _splitmix(np.uint64(seed) ^ (iu * _G))
    h = _splitmix(h ^ (ju * _K2))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def value_noise(key: int, salt: int, ys: np.ndarray, xs: np.ndarray, spacing: float) -> np.ndarray:
    """Smooth noise of unit variance at pixel rows ``ys`` [h] and columns ``xs`` [w].

    Lattice values (hashed, uniform, zero mean) every ``spacing`` pixels, interpolated with
    smoothstep weights; a function of global coordinates, so seamless across blocks.

    Returns:
        float32 [h, w].
    """
    u = np.asarray(ys, np.float64) / spacing
    v = np.asarray(xs, np.float64) / spacing
    iu, iv = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    fu, fv = u - iu, v - iv
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    u0, v0 = int(iu.min()), int(iv.min())
    ci = np.arange(u0, int(iu.max()) + 2)[:, None]
    cj = np.arange(v0, int(iv.max()) + 2)[None, :]
    lat = hash_uniform(key, salt, ci, cj) - 0.5  # [nu, nv]
    a, b = iu - u0, iv - v0
    top = lat[a][:, b] * (1 - fv) + lat[a][:, b + 1] * fv  # [h, w]
    bot = lat[a + 1][:, b] * (1 - fv) + lat[a + 1][:, b + 1] * fv
    out = top * (1 - fu)[:, None] + bot * fu[:, None]
    # variance of smoothstep-interpolated uniform(-0.5, 0.5) lattice ≈ 1/12 * 0.54²
    return (out / 0.1565).astype(np.float32)


def voronoi(
    key: int,
    salt: int,
    yy: np.ndarray,
    xx: np.ndarray,
    size: float,
    elongation: float = 1.0,
    angle: float = 0.0,
    edges: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Parcels: jittered-lattice Voronoi cells of mean side ``size`` px (straight edges).

    The lattice is rotated by ``angle`` and stretched by ``elongation`` along it (cells
    ``size·√e`` long and ``size/√e`` wide), one seed per lattice cell at a hashed position;
    each pixel belongs to the nearest seed in lattice units (an affine image of a Voronoi
    diagram, so every boundary is a straight segment).

    Args:
        yy, xx: float pixel coordinates [n] (global).

    Returns:
        ``(cu, cv, edge)``: int64 [n] lattice cell of the parcel, float32 [n] approximate
        distance in pixels to the parcel's boundary (None unless ``edges``).
    """
    lu, lv = size * math.sqrt(elongation), size / math.sqrt(elongation)
    c, s = math.cos(angle), math.sin(angle)
    u = (xx * c + yy * s) / lu
    v = (-xx * s + yy * c) / lv
    iu, iv = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    u0, v0 = int(iu.min()) - 1, int(iv.min()) - 1
    cu = np.arange(u0, int(iu.max()) + 2)[:, None]
    cv = np.arange(v0, int(iv.max()) + 2)[None, :]
    # seed positions in lattice units, relative to the lower corner of the lattice range
    su = (cu - u0 + 0.1 + 0.8 * hash_uniform(key, salt, cu, cv)).astype(np.float32)
    sv = (cv - v0 + 0.1 + 0.8 * hash_uniform(key, salt + 1, cu, cv)).astype(np.float32)
    du = np.array([-1, -1, -1, 0, 0, 0, 1, 1, 1])[:, None]
    dv = np.array([-1, 0, 1, -1, 0, 1, -1, 0, 1])[:, None]
    a = (iu - u0)[None] + du  # [9, n] lattice cells around each pixel
    b = (iv - v0)[None] + dv
    pu = (u - u0).astype(np.float32) - su[a, b]
    pv = (v - v0).astype(np.float32) - sv[a, b]
    d = pu * pu + pv * pv  # [9, n] squared distances in lattice units
    k = np.argmin(d, axis=0)
    edge = None
    if edges:
        two = np.partition(d, 1, axis=0)[:2]
        edge = (np.sqrt(two[1]) - np.sqrt(two[0])) * np.float32(0.5 * size)
    return iu + du[k, 0], iv + dv[k, 0], edge


def street_grid(
    yy: np.ndarray, xx: np.ndarray, angle: float, sx: float, sy: float, offset: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A rotated rectangular street grid of ``sx`` x ``sy`` px blocks.

    Returns:
        ``(bi, bj, dist, along)``: int64 block indices [n], float32 distance in pixels to
        the nearest street centre line [n], and which family of streets is nearer
        (bool [n], True for the ``sx`` family).
    """
    c, s = math.cos(angle), math.sin(angle)
    u = xx * c + yy * s + offset
    v = -xx * s + yy * c + offset * 0.61
    bi, bj = np.floor(u / sx), np.floor(v / sy)
    du, dv = u - bi * sx, v - bj * sy
    du = np.minimum(du, sx - du)
    dv = np.minimum(dv, sy - dv)
    return bi.astype(np.int64), bj.astype(np.int64), np.minimum(du, dv).astype(np.float32), du < dv


# ---------------------------------------------------------------------------------------
# per-location parameters and per-block fields


@dataclass(frozen=True)
class LocationParams:
    """Landscape parameters of one location (or one whole scene), drawn from its key."""

    field_angle: float
    field_elongation: float
    arable_size: float
    complex_size: float
    grass_size: float
    permanent_size: float
    mosaic_size: float
    crop_weights: tuple[float, ...]
    hedge: float  # share of parcel boundaries that are hedgerows (else tracks)
    boundary: float  # share of boundary pixels drawn at all
    grass_trees: float  # density of scattered trees in grassland
    grid_angle: float
    block_x: float
    block_y: float
    roof: float  # mean roof cover of a block
    tile: float  # share of red-tile blocks
    clearing: float  # forest cover of clearings
    tracks: bool
    conifer_share: float  # in mixed forest and transitional woodland
    stand_size: float  # forest stands (px)
    tree_density: float  # agro-forestry
    relief: float  # terrain amplitude (m)
    phase: float  # phenology ahead (+) or behind (-) of the calendar, in seasons
    dryness: float  # summer drought: share of herbaceous green cover lost (at most)

    @classmethod
    def from_key(cls, key: int) -> LocationParams:
        r = np.random.default_rng([key & 0xFFFFFFFF, key >> 32, 0x1A4D])
        w = r.dirichlet((4.0, 3.0, 1.0, 1.5, 1.0))
        return cls(
            field_angle=float(r.uniform(0, math.pi)),
            field_elongation=float(r.uniform(1.0, 2.5)),
            arable_size=float(r.uniform(14, 30)),
            complex_size=float(r.uniform(6, 12)),
            grass_size=float(r.uniform(16, 36)),
            permanent_size=float(r.uniform(8, 16)),
            mosaic_size=float(r.uniform(8, 18)),
            crop_weights=tuple(float(v) for v in w),
            hedge=float(r.uniform(0, 1)),
            boundary=float(r.uniform(0.3, 1.0)),
            grass_trees=float(r.uniform(0.0, 0.04)),
            grid_angle=float(r.uniform(0, math.pi / 2)),
            block_x=float(r.uniform(5, 12)),
            block_y=float(r.uniform(5, 12)),
            roof=float(r.uniform(0.35, 0.8)),
            tile=float(r.uniform(0, 1)),
            clearing=float(r.uniform(0.0, 0.15)),
            tracks=bool(r.random() < 0.5),
            conifer_share=float(r.uniform(0.3, 0.7)),
            stand_size=float(r.uniform(10, 25)),
            tree_density=float(r.uniform(0.08, 0.3)),
            relief=float(math.exp(r.uniform(math.log(2.0), math.log(50.0)))),
            phase=float(r.uniform(-0.4, 0.4)),
            dryness=float(r.uniform(0.0, 0.45)),
        )


#: σ (pixels) of the per-block fine fields, by name.
FINE_SCALES: dict[str, float] = {"f07": 0.7, "f15": 1.5, "f3": 3.0, "f6": 6.0}


def fine_fields(rng: np.random.Generator, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Unit-variance smooth noise fields [H, W] at the :data:`FINE_SCALES` (crowns, shrubs,
    pools, clearings), drawn from ``rng``."""
    return {k: smooth_fields(rng, 1, shape, s)[0] for k, s in FINE_SCALES.items()}


@dataclass
class Context:
    """What a class recipe may read for one block.

    Attributes:
        key: the location's (or scene's) structure key.
        season: 0–3.
        ys, xs: global pixel rows [h] and columns [w] of the block.
        land_cover: int64 [h, w] 19-class map of the block.
        fields: :func:`fine_fields` of the block.
        params: the location's :class:`LocationParams`.
        shadow: strength of crown / building shadows (1 at a 45° sun, more when lower).
        look: radar look azimuth (radians from north, clockwise).
    """

    key: int
    season: int
    ys: np.ndarray
    xs: np.ndarray
    land_cover: np.ndarray
    fields: dict[str, np.ndarray]
    params: LocationParams
    shadow: float = 1.0
    look: float = math.pi / 2

    @property
    def grass(self) -> float:
        """Green cover of grassland in this season: :data:`GRASS_GREEN` at the location's
        phenological phase, dried by its summer drought (:data:`DROUGHT`)."""
        g = float(_seasonal(GRASS_GREEN, self.season, np.float32(self.params.phase)))
        return g * (1 - self.params.dryness * DROUGHT[self.season])

    @property
    def leaves(self) -> float:
        """Leaf cover of broad-leaved trees in this season (:data:`BROADLEAF_LEAVES` at the
        location's phenological phase)."""
        return float(_seasonal(BROADLEAF_LEAVES, self.season, np.float32(self.params.phase)))

    def coords(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Global float coordinates (rows, columns) of the flat block indices ``idx``."""
        w = len(self.xs)
        return (
            self.ys[idx // w].astype(np.float64),
            self.xs[idx % w].astype(np.float64),
        )

    def field(self, name: str, idx: np.ndarray) -> np.ndarray:
        return self.fields[name].reshape(-1)[idx]


@dataclass
class Part:
    """A recipe's output for its pixels.

    Attributes:
        frac: float32 [M, n] material fractions (columns sum to 1).
        bright: float32 [n] multiplicative brightness (texture, shadows).
        vv, vh: float32 [n] radar offsets in dB (structure within the class).
    """

    frac: np.ndarray
    bright: np.ndarray
    vv: np.ndarray
    vh: np.ndarray


def _part(n: int) -> Part:
    return Part(
        np.zeros((NUM_MATERIALS, n), np.float32),
        np.ones(n, np.float32),
        np.zeros(n, np.float32),
        np.zeros(n, np.float32),
    )


def _normalise(frac: np.ndarray) -> np.ndarray:
    np.clip(frac, 0.0, None, out=frac)
    frac /= np.maximum(frac.sum(0, keepdims=True), 1e-6)
    return frac


def _seasonal(
    table: tuple[float, float, float, float], season: int, phase: np.ndarray
) -> np.ndarray:
    """Circular linear interpolation of a per-season value at ``season + phase``."""
    t = np.asarray(table, np.float32)
    pos = (season + phase) % 4.0
    lo = np.floor(pos).astype(np.int64) % 4
    w = (pos - np.floor(pos)).astype(np.float32)
    return t[lo] * (1 - w) + t[(lo + 1) % 4] * w


# ---------------------------------------------------------------------------------------
# agriculture

#: Crop calendars: (green cover, dry cover) per season (winter, spring, summer, autumn); the
#: rest is bare soil.
CROPS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "winter cereal": ((0.35, 0.90, 0.10, 0.15), (0.05, 0.05, 0.80, 0.30)),
    "summer crop": ((0.00, 0.10, 0.90, 0.25), (0.30, 0.05, 0.05, 0.65)),
    "root crop": ((0.00, 0.30, 0.85, 0.45), (0.10, 0.00, 0.05, 0.20)),
    "grass ley": ((0.55, 0.85, 0.80, 0.70), (0.30, 0.10, 0.15, 0.20)),
    "fallow": ((0.30, 0.50, 0.35, 0.35), (0.40, 0.30, 0.55, 0.45)),
}
_CROP_GREEN = np.array([c[0] for c in CROPS.values()], np.float32)  # [5, 4]
_CROP_DRY = np.array([c[1] for c in CROPS.values()], np.float32)
#: Grassland greenness per season.
GRASS_GREEN = (0.60, 0.90, 0.72, 0.72)
#: Broad-leaved canopy: leaf cover per season (the rest is bare branches; autumn partly dry).
BROADLEAF_LEAVES = (0.15, 0.80, 0.97, 0.60)
#: Weight of a location's summer drought per season (Mediterranean and continental summers
#: brown the grass and the crops that are not irrigated).
DROUGHT = (0.0, 0.2, 1.0, 0.6)


def _crops(
    ctx: Context, key: int, cu: np.ndarray, cv: np.ndarray, salt: int, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Green, dry and soil cover of crop parcels (calendar of a hashed crop, hashed phase)."""
    u = hash_uniform(key, salt, cu, cv)
    crop = np.searchsorted(np.cumsum(weights) / weights.sum(), u, side="right").clip(0, 4)
    phase = (hash_uniform(key, salt + 1, cu, cv) - 0.5) * 0.8 + ctx.params.phase  # seasons
    vigour = 0.75 + 0.3 * hash_uniform(key, salt + 2, cu, cv)
    vigour *= 1 - 0.5 * ctx.params.dryness * DROUGHT[ctx.season]
    pos = (ctx.season + phase) % 4.0
    lo = np.floor(pos).astype(np.int64) % 4
    w = (pos - np.floor(pos)).astype(np.float32)
    green = (_CROP_GREEN[crop, lo] * (1 - w) + _CROP_GREEN[crop, (lo + 1) % 4] * w) * vigour
    dry = _CROP_DRY[crop, lo] * (1 - w) + _CROP_DRY[crop, (lo + 1) % 4] * w
    dry = np.minimum(dry, 1 - green)
    return green.astype(np.float32), dry.astype(np.float32), (1 - green - dry).astype(np.float32)


def _boundaries(ctx: Context, p: Part, edge: np.ndarray, idx: np.ndarray, salt: int) -> None:
    """Hedgerows or tracks on parcel boundaries (≈ 1 px wide)."""
    pr = ctx.params
    on = edge < 0.55
    if not on.any():
        return
    yy, xx = ctx.coords(idx[on])
    # boundary stretches (coarse hashed cells) are drawn, hedges or tracks
    cell_y, cell_x = np.floor(yy / 24), np.floor(xx / 24)
    drawn = hash_uniform(ctx.key, salt, cell_y, cell_x) < pr.boundary
    hedge = hash_uniform(ctx.key, salt + 1, cell_y, cell_x) < pr.hedge
    sel = np.flatnonzero(on)[drawn]
    hedge = hedge[drawn]
    f = np.zeros((NUM_MATERIALS, len(sel)), np.float32)
    leaves = ctx.leaves
    f[M["green"]] = np.where(hedge, 0.35, 0.25)
    f[M["shrub"]] = np.where(hedge, 0.35, 0.0)
    f[M["broadleaf"]] = np.where(hedge, 0.30 * leaves, 0.0)
    f[M["leafoff"]] = np.where(hedge, 0.30 * (1 - leaves), 0.0)
    f[M["soil"]] = np.where(hedge, 0.0, 0.45)
    f[M["dry"]] = np.where(hedge, 0.0, 0.30)
    # a hedge or track is narrower than a 10 m pixel: half the pixel stays parcel
    p.frac[:, sel] = 0.5 * p.frac[:, sel] + 0.5 * f
    p.bright[sel] = np.where(hedge, 0.92, 1.02)


def _crop_parcels(
    ctx: Context,
    idx: np.ndarray,
    size: float,
    elong: float,
    angle: float,
    salt: int,
    natural: float = 0.0,
    orchard: float = 0.0,
) -> Part:
    """Parcels of crops (calendar per parcel), optionally with natural and orchard parcels,
    and hedges or tracks on their boundaries."""
    yy, xx = ctx.coords(idx)
    cu, cv, edge = voronoi(ctx.key, salt, yy, xx, size, elong, angle)
    p = _part(len(idx))
    weights = np.asarray(ctx.params.crop_weights, np.float64)
    green, dry, _ = _crops(ctx, ctx.key, cu, cv, salt + 10, weights)
    kind = hash_uniform(ctx.key, salt + 20, cu, cv)
    nat = kind < natural
    orch = (kind >= natural) & (kind < natural + orchard)
    wiggle = ctx.field("f3", idx)
    green = np.clip(green * (1 + 0.08 * wiggle), 0, 1)
    p.frac[M["green"]] = green
    p.frac[M["dry"]] = np.minimum(dry, 1 - green)
    p.frac[M["soil"]] = np.clip(1 - green - dry, 0, 1)
    moist = 0.8 + 0.4 * hash_uniform(ctx.key, salt + 21, cu, cv)  # soil moisture per parcel
    p.bright = (moist * (1 + 0.03 * ctx.field("f07", idx))).astype(np.float32)
    if nat.any():
        _natural_mosaic(ctx, p, idx, np.flatnonzero(nat))
    if orch.any():
        sel = np.flatnonzero(orch)
        rows = _rows(yy[sel], xx[sel], angle, 3.0)
        _orchard(ctx, p, sel, rows, cover=0.45)
    _boundaries(ctx, p, edge, idx, salt + 30)
    return p


def _natural_mosaic(ctx: Context, p: Part, idx: np.ndarray, sel: np.ndarray) -> None:
    """Shrub / tree / grass mosaic at σ 1.5 px on the pixels ``sel`` of a part."""
    f15 = ctx.field("f15", idx[sel])
    leaves = ctx.leaves
    tree = np.clip(0.5 + 0.6 * f15, 0, 1)
    f = np.zeros((NUM_MATERIALS, len(sel)), np.float32)
    f[M["broadleaf"]] = tree * 0.6 * leaves
    f[M["leafoff"]] = tree * 0.6 * (1 - leaves)
    f[M["shrub"]] = tree * 0.4 + (1 - tree) * 0.4
    f[M["green"]] = (1 - tree) * 0.6 * ctx.grass
    f[M["dry"]] = (1 - tree) * 0.6 * (1 - ctx.grass)
    p.frac[:, sel] = f
    p.bright[sel] = 1 + 0.12 * ctx.field("f07", idx[sel])
    p.vv[sel] += 1.5
    p.vh[sel] += 2.0


def _rows(yy: np.ndarray, xx: np.ndarray, angle: float, period: float) -> np.ndarray:
    """Planting rows: 0.5 + 0.5 sin(2π d / period) across the direction ``angle``."""
    d = -xx * math.sin(angle) + yy * math.cos(angle)
    return (0.5 + 0.5 * np.sin(d * (2 * math.pi / period))).astype(np.float32)


def _orchard(ctx: Context, p: Part, sel: np.ndarray, rows: np.ndarray, cover: float) -> None:
    leaves = ctx.leaves
    canopy = cover * (0.3 + 0.7 * rows)
    f = np.zeros((NUM_MATERIALS, len(sel)), np.float32)
    f[M["broadleaf"]] = canopy * leaves
    f[M["leafoff"]] = canopy * (1 - leaves)
    inter = 1 - canopy
    g = 0.5 if ctx.season in (0, 1) else 0.15  # cover crop between the rows
    f[M["green"]] = inter * g
    f[M["dry"]] = inter * (1 - g) * 0.4
    f[M["soil"]] = inter * (1 - g) * 0.6
    p.frac[:, sel] = f
    p.bright[sel] = 1.0


def arable(ctx: Context, idx: np.ndarray) -> Part:
    """Arable land: crop parcels of the location's size and orientation."""
    pr = ctx.params
    p = _crop_parcels(ctx, idx, pr.arable_size, pr.field_elongation, pr.field_angle, 100)
    _radar_texture(ctx, p, idx, "f3", 1.0)  # no parcel pattern in S1: see the module doc
    return p


def complex_cultivation(ctx: Context, idx: np.ndarray) -> Part:
    """Complex cultivation patterns: small parcels of any orientation, some natural ones."""
    pr = ctx.params
    angle = pr.field_angle + 0.7
    p = _crop_parcels(ctx, idx, pr.complex_size, 1.3, angle, 200, natural=0.15, orchard=0.1)
    p.vv[:] = 0.0  # optical-only partner of arable land: the same radar texture
    p.vh[:] = 0.0
    _radar_texture(ctx, p, idx, "f3", 1.0)
    return p


def permanent_crops(ctx: Context, idx: np.ndarray) -> Part:
    """Permanent crops: parcels of vine / orchard / olive rows."""
    pr = ctx.params
    yy, xx = ctx.coords(idx)
    cu, cv, edge = voronoi(ctx.key, 300, yy, xx, pr.permanent_size, 1.5, pr.field_angle)
    p = _part(len(idx))
    kind = hash_uniform(ctx.key, 301, cu, cv)
    period = 2.2 + 1.8 * hash_uniform(ctx.key, 302, cu, cv)
    tilt = (hash_uniform(ctx.key, 303, cu, cv) - 0.5) * 0.3
    d = -xx * np.sin(pr.field_angle + tilt) + yy * np.cos(pr.field_angle + tilt)
    rows = (0.5 + 0.5 * np.sin(2 * math.pi * d / period)).astype(np.float32)
    vine = kind < 0.5
    olive = kind > 0.8
    cover = np.where(vine, (0.10, 0.35, 0.60, 0.45)[ctx.season], 0.5)
    canopy = cover * (0.3 + 0.7 * rows)
    leaves = np.where(olive, 1.0, ctx.leaves)
    p.frac[M["broadleaf"]] = canopy * leaves * np.where(olive, 0.4, 1.0)
    p.frac[M["shrub"]] = canopy * np.where(olive, 0.6, 0.0)
    p.frac[M["leafoff"]] = canopy * (1 - leaves)
    inter = 1 - canopy
    g = 0.45 if ctx.season in (0, 1) else 0.12
    p.frac[M["green"]] = inter * g
    p.frac[M["dry"]] = inter * (1 - g) * 0.45
    p.frac[M["soil"]] = inter * (1 - g) * 0.55
    _boundaries(ctx, p, edge, idx, 330)
    _parcel_radar(ctx, p, idx, hash_uniform(ctx.key, 304, cu, cv), 3.0, 0.6)
    return p


def grassland(ctx: Context, idx: np.ndarray) -> Part:
    """Pastures and natural grassland (one optical recipe: a SAR-only pair)."""
    pr = ctx.params
    yy, xx = ctx.coords(idx)
    cu, cv, edge = voronoi(ctx.key, 400, yy, xx, pr.grass_size, 1.4, pr.field_angle + 0.3)
    p = _part(len(idx))
    # parcels differ: lush, grazed, cut for silage or hay
    vigour = 0.55 + 0.6 * hash_uniform(ctx.key, 401, cu, cv)
    green = np.clip(ctx.grass * vigour * (1 + 0.04 * ctx.field("f3", idx)), 0, 1)
    p.frac[M["green"]] = green
    p.frac[M["dry"]] = 1 - green
    trees = ctx.field("f07", idx) > _norm_quantile(1 - pr.grass_trees)
    if trees.any():
        leaves = ctx.leaves
        p.frac[:, trees] = 0
        p.frac[M["broadleaf"], trees] = leaves
        p.frac[M["leafoff"], trees] = 1 - leaves
        p.bright[trees] = 0.85
        p.vv[trees] += 2.0
        p.vh[trees] += 3.0
    _boundaries(ctx, p, edge, idx, 430)
    _parcel_radar(ctx, p, idx, hash_uniform(ctx.key, 402, cu, cv), 2.6, 0.5)
    return p


def agriculture_natural(ctx: Context, idx: np.ndarray) -> Part:
    """Land principally occupied by agriculture with significant natural vegetation."""
    pr = ctx.params
    p = _crop_parcels(ctx, idx, pr.mosaic_size, 1.3, pr.field_angle + 0.2, 500, natural=0.45)
    _radar_texture(ctx, p, idx, "f3", 0.8)
    return p


def agro_forestry(ctx: Context, idx: np.ndarray) -> Part:
    """Agro-forestry: dry grassland under scattered tree crowns."""
    pr = ctx.params
    p = _part(len(idx))
    g = (0.45, 0.65, 0.25, 0.35)[ctx.season]
    p.frac[M["green"]] = g
    p.frac[M["dry"]] = (1 - g) * 0.8
    p.frac[M["soil"]] = (1 - g) * 0.2
    trees = ctx.field("f07", idx) > _norm_quantile(1 - pr.tree_density)
    p.frac[:, trees] = 0
    p.frac[M["broadleaf"], trees] = 0.55
    p.frac[M["shrub"], trees] = 0.45
    p.bright[trees] = 0.8 / ctx.shadow**0.3
    p.vv[trees] += 2.5
    p.vh[trees] += 3.5
    _radar_texture(ctx, p, idx, "f3", 0.6)
    return p


# ---------------------------------------------------------------------------------------
# forests and natural vegetation


def _forest_layout(ctx: Context, p: Part, idx: np.ndarray) -> np.ndarray:
    """Clearings (σ 6 px blobs) and tracks (edges of 80 px cells); returns the canopy mask.

    Shared by every forest class, so the radar (which sees clearings and tracks) has the
    same statistics for broad-leaved and coniferous forest.
    """
    pr = ctx.params
    open_ = ctx.field("f6", idx) > _norm_quantile(1 - pr.clearing)
    if pr.tracks:
        yy, xx = ctx.coords(idx)
        _, _, edge = voronoi(ctx.key, 600, yy, xx, 80.0)
        track = edge < 0.6
    else:
        track = np.zeros(len(idx), bool)
    if open_.any():
        f15 = ctx.field("f15", idx[open_])
        young = np.clip(0.4 + 0.4 * f15, 0, 1)
        f = np.zeros((NUM_MATERIALS, int(open_.sum())), np.float32)
        f[M["shrub"]] = young * 0.6
        f[M["green"]] = (1 - young) * 0.5 + young * 0.2
        f[M["dry"]] = (1 - young) * 0.3 + young * 0.2
        f[M["soil"]] = (1 - young) * 0.2
        p.frac[:, open_] = f
        p.vv[open_] -= 2.5
        p.vh[open_] -= 3.0
    if track.any():
        p.frac[:, track] = 0
        p.frac[M["soil"], track] = 0.6
        p.frac[M["dry"], track] = 0.4
        p.vv[track] -= 2.0
        p.vh[track] -= 2.5
    canopy = ~(open_ | track)
    tex = ctx.field("f15", idx)
    p.vv += 0.8 * tex
    p.vh += 0.8 * tex
    return canopy


def _canopy(
    ctx: Context, p: Part, idx: np.ndarray, canopy: np.ndarray, conifer: np.ndarray
) -> None:
    """Broad-leaved / coniferous canopy with crown texture and crown shadows."""
    sel = np.flatnonzero(canopy)
    if not sel.size:
        return
    con = conifer[sel]
    leaves = ctx.leaves
    f = np.zeros((NUM_MATERIALS, len(sel)), np.float32)
    f[M["conifer"]] = con
    bl = 1 - con
    f[M["broadleaf"]] = bl * leaves
    f[M["leafoff"]] = bl * (1 - leaves) * (0.6 if ctx.season == 3 else 1.0)
    f[M["dry"]] = bl * (1 - leaves) * (0.4 if ctx.season == 3 else 0.0)
    # stands (hashed cells of 10–25 px): age and density change brightness and leave some
    # understorey (shrub, grass) visible
    yy, xx = ctx.coords(idx[sel])
    cu, cv, _ = voronoi(ctx.key, 610, yy, xx, ctx.params.stand_size, 1.3, 0.0, edges=False)
    stand = hash_uniform(ctx.key, 611, cu, cv)
    density = 0.75 + 0.25 * hash_uniform(ctx.key, 612, cu, cv)
    f *= density
    f[M["shrub"]] += (1 - density) * 0.6
    f[M["green"]] += (1 - density) * 0.4 * (0.3 if ctx.season == 0 else 1.0)
    f[M["dry"]] += (1 - density) * 0.4 * (0.7 if ctx.season == 0 else 0.0)
    p.frac[:, sel] = f
    # groups of crowns and gaps (σ 3 px) over a weaker crown-scale texture (σ 1.5 px)
    crown = 0.8 * ctx.field("f3", idx[sel]) + 0.6 * ctx.field("f15", idx[sel])
    depth = np.where(con > 0.5, 0.08, 0.05) * ctx.shadow
    gap = crown < -1.4
    b = 0.85 + 0.3 * stand + depth * crown - np.where(gap, 0.15 * ctx.shadow, 0.0)
    p.bright[sel] = np.clip(b, 0.3, 1.6)


def broadleaf_forest(ctx: Context, idx: np.ndarray) -> Part:
    p = _part(len(idx))
    canopy = _forest_layout(ctx, p, idx)
    _canopy(ctx, p, idx, canopy, np.zeros(len(idx), np.float32))
    return p


def coniferous_forest(ctx: Context, idx: np.ndarray) -> Part:
    p = _part(len(idx))
    canopy = _forest_layout(ctx, p, idx)
    _canopy(ctx, p, idx, canopy, np.ones(len(idx), np.float32))
    return p


def mixed_forest(ctx: Context, idx: np.ndarray) -> Part:
    """Mixed forest: groups (σ 3 px) of coniferous and broad-leaved trees."""
    p = _part(len(idx))
    canopy = _forest_layout(ctx, p, idx)
    t = _norm_quantile(1 - ctx.params.conifer_share)
    con = (ctx.field("f3", idx) > t).astype(np.float32)
    _canopy(ctx, p, idx, canopy, con)
    return p


def transitional(ctx: Context, idx: np.ndarray) -> Part:
    """Transitional woodland/shrub: young trees, shrubs and grass at σ 3 px."""
    p = _part(len(idx))
    f3 = 0.8 * ctx.field("f6", idx) + 0.6 * ctx.field("f3", idx)
    tree = np.clip(f3 - 0.3, 0, 1)
    grass = np.clip(-f3 - 0.4, 0, 1)
    shrub = np.clip(1 - tree - grass, 0, 1)
    leaves = ctx.leaves
    cs = ctx.params.conifer_share
    p.frac[M["conifer"]] = tree * cs
    p.frac[M["broadleaf"]] = tree * (1 - cs) * leaves
    p.frac[M["leafoff"]] = tree * (1 - cs) * (1 - leaves)
    p.frac[M["shrub"]] = shrub
    p.frac[M["green"]] = grass * ctx.grass
    p.frac[M["dry"]] = grass * (1 - ctx.grass)
    p.bright = (1 + 0.12 * ctx.shadow * ctx.field("f07", idx)).astype(np.float32)
    _radar_texture(ctx, p, idx, "f3", 1.2)
    return p


def _shrubland_radar(ctx: Context, p: Part, idx: np.ndarray) -> None:
    """The radar texture shared by moors and beaches (an optical-only pair)."""
    _radar_texture(ctx, p, idx, "f3", 1.0)


def moors(ctx: Context, idx: np.ndarray) -> Part:
    """Moors and heathland: heather with dry and bare patches."""
    p = _part(len(idx))
    f3, f6 = ctx.field("f3", idx), ctx.field("f6", idx)
    dry = np.clip(0.3 + 0.3 * f3 + (0.15 if ctx.season == 0 else 0.0), 0, 1)
    bare = np.clip(f6 - 1.0, 0, 0.8)
    p.frac[M["shrub"]] = (1 - dry) * (1 - bare)
    p.frac[M["dry"]] = dry * (1 - bare)
    p.frac[M["soil"]] = bare
    p.bright = (1 + 0.08 * ctx.field("f07", idx)).astype(np.float32)
    _shrubland_radar(ctx, p, idx)
    return p


def beaches(ctx: Context, idx: np.ndarray) -> Part:
    """Beaches, dunes, sands: sand with dune ripples and sparse dune grass."""
    p = _part(len(idx))
    yy, xx = ctx.coords(idx)
    ripple = _rows(yy, xx, ctx.params.field_angle, 4.5)
    veg = np.clip(ctx.field("f15", idx) - 0.8, 0, 0.5)
    p.frac[M["sand"]] = 1 - veg
    p.frac[M["shrub"]] = veg * 0.5
    p.frac[M["dry"]] = veg * 0.5
    p.bright = (0.95 + 0.1 * ripple).astype(np.float32)
    _shrubland_radar(ctx, p, idx)
    return p


def inland_wetlands(ctx: Context, idx: np.ndarray) -> Part:
    """Inland wetlands: peat and marsh vegetation, pools and shrub hummocks."""
    p = _part(len(idx))
    pool = ctx.field("f3", idx) > _norm_quantile(0.85)
    hummock = ctx.field("f15", idx) > 1.0
    p.frac[M["wetveg"]] = 0.7
    p.frac[M["green"]] = 0.3 * ctx.grass
    p.frac[M["dry"]] = 0.3 * (1 - ctx.grass)
    p.frac[:, hummock] = 0
    p.frac[M["shrub"], hummock] = 1.0
    _flood(p, pool, "water", 8.0, 6.0)
    _radar_texture(ctx, p, idx, "f3", 0.8)
    return p


def coastal_wetlands(ctx: Context, idx: np.ndarray) -> Part:
    """Coastal wetlands: salt marsh and mud cut by meandering tidal channels."""
    p = _part(len(idx))
    f6 = ctx.field("f6", idx)
    channel = np.abs(f6) < 0.12
    marsh = np.clip(0.6 + 0.4 * ctx.field("f15", idx), 0, 1)
    p.frac[M["wetveg"]] = marsh * 0.6
    p.frac[M["green"]] = marsh * 0.4 * ctx.grass
    p.frac[M["dry"]] = marsh * 0.4 * (1 - ctx.grass)
    p.frac[M["turbid"]] = (1 - marsh) * 0.5
    p.frac[M["soil"]] = (1 - marsh) * 0.5
    _flood(p, channel, "turbid", 6.0, 5.0)
    _radar_texture(ctx, p, idx, "f3", 0.8)
    return p


def water(ctx: Context, idx: np.ndarray) -> Part:
    """Inland and marine waters (one optical recipe: a SAR-only pair): turbid near the
    shore, clearer away from it; wind texture in the radar."""
    p = _part(len(idx))
    wet = np.isin(ctx.land_cover, WATER_CLASSES)
    if (~wet).any():
        dist = ndimage.distance_transform_edt(wet).reshape(-1)[idx]
    else:
        dist = np.full(len(idx), 50.0)
    turbid = (0.7 * np.exp(-dist / 8.0)).astype(np.float32)
    p.frac[M["water"]] = 1 - turbid
    p.frac[M["turbid"]] = turbid
    p.bright = (1 + 0.04 * ctx.field("f3", idx)).astype(np.float32)
    wind = 1.5 * ctx.field("f6", idx)
    p.vv += wind
    p.vh += 0.6 * wind
    return p


# ---------------------------------------------------------------------------------------
# built-up land


def built_up(ctx: Context, idx: np.ndarray) -> Part:
    """Urban fabric and industrial units (one optical recipe: a SAR-only pair)."""
    pr = ctx.params
    yy, xx = ctx.coords(idx)
    off = hash_uniform(ctx.key, 700, np.zeros(1), np.zeros(1))[0] * 20
    bi, bj, dist, _ = street_grid(yy, xx, pr.grid_angle, pr.block_x, pr.block_y, off)
    p = _part(len(idx))
    street = dist < 0.6
    roof = np.clip(pr.roof + 0.5 * (hash_uniform(ctx.key, 701, bi, bj) - 0.5), 0.05, 0.95)
    tile = hash_uniform(ctx.key, 702, bi, bj) < pr.tile
    f07 = ctx.field("f07", idx)
    cover = np.clip(roof + 0.25 * f07, 0, 1)
    leaves = ctx.leaves
    p.frac[M["tile"]] = np.where(tile, cover, 0)
    p.frac[M["roof"]] = np.where(tile, 0, cover)
    garden = 1 - cover
    p.frac[M["green"]] = garden * 0.55
    p.frac[M["broadleaf"]] = garden * 0.3 * leaves
    p.frac[M["leafoff"]] = garden * 0.3 * (1 - leaves)
    p.frac[M["asphalt"]] = garden * 0.15
    p.frac[:, street] = 0
    p.frac[M["asphalt"], street] = 1.0
    p.bright = np.clip(1 + 0.1 * f07 - 0.08 * ctx.shadow * (dist < 1.6), 0.5, 1.5).astype(
        np.float32
    )
    # radar: double bounce on block edges facing the sensor (cardinal effect)
    facing = abs(math.cos(pr.grid_angle - ctx.look))
    facing = max(facing, abs(math.sin(pr.grid_angle - ctx.look)))  # the nearer street family
    edge = (dist >= 0.6) & (dist < 1.1)
    boost = 3.0 + 7.0 * (facing - 0.7071) / 0.2929
    p.vv += np.where(street, -3.0, 0.0) + np.where(edge, boost, 0.0) + 1.5 * f07
    p.vh += np.where(street, -3.0, 0.0) + np.where(edge, 0.6 * boost, 0.0) + 1.5 * f07
    return p


# ---------------------------------------------------------------------------------------
# assembly


def _radar_texture(ctx: Context, p: Part, idx: np.ndarray, field: str, db: float) -> None:
    t = db * ctx.field(field, idx)
    p.vv += t
    p.vh += t


def _flood(p: Part, sel: np.ndarray, material: str, vv_db: float, vh_db: float) -> None:
    """Pools or channels: the pixels ``sel`` become pure ``material`` (a water) and their
    VV and VH backscatter drop by ``vv_db`` and ``vh_db`` (smooth surface)."""
    p.frac[:, sel] = 0
    p.frac[M[material], sel] = 1.0
    p.vv[sel] -= vv_db
    p.vh[sel] -= vh_db


def _parcel_radar(
    ctx: Context, p: Part, idx: np.ndarray, u: np.ndarray, spread_db: float, texture_db: float
) -> None:
    """Per-parcel roughness / moisture: VV and VH offset by ``(u − 0.5) · spread_db`` dB
    (``u`` a per-parcel uniform draw per pixel), then the fine radar texture of ``texture_db``."""
    off = (u - 0.5) * spread_db
    p.vv += off
    p.vh += off
    _radar_texture(ctx, p, idx, "f3", texture_db)


def _norm_quantile(q: float) -> float:
    """Standard normal quantile (the fine fields are close to Gaussian)."""
    q = min(max(q, 1e-6), 1 - 1e-6)
    from statistics import NormalDist

    return NormalDist().inv_cdf(q)


WATER_CLASSES = (17, 18)

#: 19-class index → recipe. SAR-only pairs (0, 1), (4, 11), (17, 18) share a recipe;
#: optical-only pairs (8, 9), (2, 5), (12, 14) share their radar texture.
RECIPES: dict[int, Callable[[Context, np.ndarray], Part]] = {
    0: built_up,
    1: built_up,
    2: arable,
    3: permanent_crops,
    4: grassland,
    5: complex_cultivation,
    6: agriculture_natural,
    7: agro_forestry,
    8: broadleaf_forest,
    9: coniferous_forest,
    10: mixed_forest,
    11: grassland,
    12: moors,
    13: transitional,
    14: beaches,
    15: inland_wetlands,
    16: coastal_wetlands,
    17: water,
    18: water,
}


def compose(ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Material fractions, brightness and radar offsets of a whole block.

    Returns:
        ``(frac float32 [M, h, w], bright float32 [h, w], radar float32 [2, h, w])`` (radar:
        VV and VH offsets in dB within each class).
    """
    h, w = ctx.land_cover.shape
    frac = np.zeros((NUM_MATERIALS, h * w), np.float32)
    bright = np.ones(h * w, np.float32)
    radar = np.zeros((2, h * w), np.float32)
    flat = ctx.land_cover.reshape(-1)
    for c in np.unique(flat):
        idx = np.flatnonzero(flat == c)
        part = RECIPES[int(c)](ctx, idx)
        frac[:, idx] = _normalise(part.frac)
        bright[idx] = part.bright
        radar[0, idx] = part.vv
        radar[1, idx] = part.vh
    return frac.reshape(NUM_MATERIALS, h, w), bright.reshape(h, w), radar.reshape(2, h, w)


__all__ = [
    "CROPS",
    "FINE_SCALES",
    "RECIPES",
    "Context",
    "LocationParams",
    "Part",
    "compose",
    "fine_fields",
    "hash_uniform",
    "street_grid",
    "value_noise",
    "voronoi",
]
