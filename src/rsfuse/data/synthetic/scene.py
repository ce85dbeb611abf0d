"""Whole-scene layout: large, georeferenced, co-registered Sentinel-1 + Sentinel-2 GeoTIFFs.

>>> from rsfuse.data.synthetic import synthesize
>>> synthesize("scene", "data/scenes", n=2, seed=0, size=4096, workers=2)  # doctest: +SKIP

Each scene ``i`` of world ``seed`` lands in ``root/scene_{i:03d}/``::

    s2.tif                 uint16 [13 | 12, size, size] reflectance x 10000 (L1C | L2A order),
                           band descriptions = band names, clouds and shadows applied
    s1.tif                 float32 [2, size, size] VV, VH in dB (never clouded)
    cloud_mask.tif         uint8 0 clear, 1 cloud (opacity > 0.05), 2 shadow
    reference_dw.tif       uint8 Dynamic World 9 classes (0–8), colour table, CLASS_NAMES tag
    reference_dfc2020.tif  uint8 the 8 DFC2020 training classes (0–7), 255 ignored
                           (Savanna), colour table, CLASS_NAMES tag
    S2/T{tile}_{time}_{band}_{10m|20m|60m}.tif   with ``per_band=True``: one uint16 file per
                           band at its native resolution (block means of the 10 m values)
    S1/{product}_VV.tif, S1/{product}_VH.tif      with ``per_band=True``: float32 dB, 10 m
    scene.json             grid, bands, season, measured cloud fraction, files, classes;
                           written last, so a folder without it is an incomplete scene

Every raster shares one grid: the scene's CRS is the UTM zone of a Sentinel-2 tile of the
world (:data:`~rsfuse.data.synthetic.world.TILES`, scene ``i`` takes tile ``i mod 12`` and
its upper-left corner from :meth:`SyntheticWorld.geo`), transform
``Affine(10, 0, ulx, 0, -10, uly)`` (20 / 60 m pixels for the native-resolution files, same
upper-left corner). The 10 m rasters are tiled 256 x 256 and deflate-compressed
(predictor 2 for integers, 3 for floats); the 20 / 60 m per-band files are tiled 128 x 128.

How a scene is made
    * Land cover (19 BigEarthNet classes) is the argmax of per-class scores: a landscape
      zone field per class group (σ ≈ 500 px: urban, agricultural, forest, natural, coastal
      and water areas), an independent field per class at σ 150 px and σ 45 px, a fine
      σ 12 px boundary texture, and a per-class bias from the BigEarthNet class frequency.
      Every smooth field is white noise on a coarse grid for the **whole scene** (small,
      built once), Gaussian filtered and linearly interpolated per block, so there are no
      seams at block boundaries.
    * Clouds: one whole-scene field (σ 200, 60 and 15 px; large blobs with ragged edges),
      thresholded at its quantile so that about ``cloud_cover`` of the scene has opacity
      > 0.05; shadows are the clouds shifted by 20–60 px (the same field read at shifted
      coordinates, so also seamless) where there is no cloud.
    * Per block (768 x 768 px; a multiple of the 256 px tiles and of the 6 px 60 m pixels),
      S2 and S1 come from :meth:`SyntheticWorld.render` of the world ``seed``: the class
      recipes of :mod:`.landscape` (parcels, street grids, forest stands, … at the block's
      global pixel coordinates, so they continue across blocks), one S2 and one S1
      acquisition for the whole scene (gain, haze, sun, incidence, orbit; no S1/S2
      misregistration), terrain, noise and speckle. Pixel-scale textures (σ ≤ 6 px), noise
      and speckle come from generators seeded by ``(seed, i, season, block row, block col)``,
      so the only per-block randomness is at the pixel scale (and the water's turbidity
      gradient is measured within a block). No snow is generated (the DW class Snow & Ice
      never occurs).
    * L2A is the L1C values without ``B10`` (no atmospheric correction is simulated).

Random streams: land cover grids from ``world.streams(i)["land_cover"]``, clouds from
``world.season_streams(i, season)["clouds"]``, blocks from
``default_rng([seed, i, season, 0x5CE7E, block row, block col])``; S1 never depends on the
clouds, so scenes with the same seed but different ``cloud_cover`` share land cover and S1.
Arrays are the same for a seed whatever ``workers`` is. Memory is bounded by a few blocks
(about 0.5 GB per worker process for any scene size): blocks are written with windowed writes
as they arrive, and at most ``2 x workers`` finished blocks wait in the writer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.transform import Affine
from rasterio.windows import Window
from scipy import ndimage

from rsfuse.bands import BANDS, S1_ORDER, S2_L1C_ORDER, S2_L2A_ORDER
from rsfuse.data.classes import DFC2020, DFC2020_REMAP, DW9
from rsfuse.data.palettes import colour_table
from rsfuse.data.synthetic import acquisition as acq
from rsfuse.data.synthetic import landscape
from rsfuse.data.synthetic.driver import check_counts, is_int, process_pool, progress_bar
from rsfuse.data.synthetic.driver import world as synthetic_world
from rsfuse.data.synthetic.fields import gauss_norm
from rsfuse.data.synthetic.segmentation import BEN19_TO_DFC10, BEN19_TO_DW9
from rsfuse.data.synthetic.world import (
    CLASS_FREQUENCY,
    CLASS_GROUP,
    NUM_CLASSES,
    SEASONS,
    SyntheticWorld,
)
from rsfuse.errors import ConfigError
from rsfuse.io.atomic import write_atomic

#: Side of a generation block (pixels): a multiple of the 256 px tiles and of 6 (60 m).
BLOCK = 768
#: Tile side of the 10 m rasters and of the 20 / 60 m per-band files.
TILE_10M, TILE_NATIVE = 256, 128
#: Cloud opacity above which a pixel counts as cloud in ``cloud_mask.tif``.
CLOUD_OPACITY_MIN = 0.05
#: Mask values of ``cloud_mask.tif``.
CLEAR, CLOUD, SHADOW = 0, 1, 2

# land-cover field scales (σ in pixels) and weights
_ZONE_SCALE, _ZONE_WEIGHT = 500.0, 1.3
_LARGE_SCALE, _MID_SCALE, _MID_WEIGHT = 150.0, 45.0, 0.55
_FINE_SCALE, _FINE_WEIGHT, _FINE_RANK = 12.0, 0.3, 6
_SCORE_STEP = 16
#: Exponent of the class frequency in the class bias (0: uniform, 1: proportional).
_BIAS_POWER = 0.35
# cloud field scales and weights; opacity ramps from 0 to 1 over this many field units
_CLOUD_SCALES: tuple[tuple[float, float], ...] = ((200.0, 1.0), (60.0, 0.45), (15.0, 0.18))
_CLOUD_EDGE = 0.6
_SHADOW_SHIFT = (20, 61)
#: Margin (pixels) of the whole-scene grids beyond the scene (shadow shifts read there).
_MARGIN = 64
_GDAL_CACHE_MB = 256
#: Deflate level: faster than the default 6; the noisy rasters compress about as well.
_ZLEVEL = 1


# ---------------------------------------------------------------------------------------
# whole-scene smooth fields, interpolated per block


@dataclass(frozen=True)
class _Grid:
    """Gaussian-filtered white noise on a coarse grid covering a whole scene (+ margin).

    Coarse node ``j`` sits at pixel coordinate ``(j - pad) * step``; values are unit variance.

    Attributes:
        values: float32 [count, mh, mw].
        step: node spacing in pixels.
        pad: nodes before pixel 0.
    """

    values: np.ndarray
    step: int
    pad: int

    @classmethod
    def noise(
        cls, rng: np.random.Generator, count: int, shape: tuple[int, int], scale: float
    ) -> _Grid:
        """Fields of correlation length ``scale`` px (σ of the Gaussian) over ``shape``.

        The same construction as :func:`~rsfuse.data.synthetic.world.smooth_fields`, with
        a margin of :data:`_MARGIN` pixels around the scene.
        """
        H, W = shape
        step = max(1, int(scale // 2))
        sc = scale / step
        pad = math.ceil(4.0 * sc) + 1 + math.ceil(_MARGIN / step)
        mh = math.ceil((H - 1) / step) + 2 + 2 * pad
        mw = math.ceil((W - 1) / step) + 2 + 2 * pad
        n = rng.random((count, mh, mw), dtype=np.float32)  # [count, mh, mw]
        n -= np.float32(0.5)
        g = ndimage.gaussian_filter(n, (0, sc, sc), mode="nearest", truncate=4.0)
        g *= np.float32(math.sqrt(12.0) / gauss_norm(sc))
        return cls(g, step, pad)

    def at(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Bilinear values at the pixel rows ``ys`` [h] and columns ``xs`` [w].

        Returns:
            float32 [count, h, w].
        """
        iy, wy = self._index(ys)
        ix, wx = self._index(xs)
        lo, hi = int(ix.min()), int(ix.max()) + 2
        g = self.values[:, :, lo:hi]  # only the columns the block needs
        ix = ix - lo
        # columns first, on the few coarse rows the block needs: [count, rows, w]
        r0, r1 = int(iy.min()), int(iy.max()) + 2
        g = g[:, r0:r1]
        iy = iy - r0
        cols = np.take(g, ix, axis=2)
        cols *= 1 - wx
        cols += np.take(g, ix + 1, axis=2) * wx
        out = np.take(cols, iy, axis=1)  # [count, h, w], C-contiguous
        out *= (1 - wy)[:, None]
        out += np.take(cols, iy + 1, axis=1) * wy[:, None]
        return out

    def _index(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = np.asarray(p, np.float64) / self.step + self.pad
        lo = np.floor(u).astype(np.intp)
        return lo, (u - lo).astype(np.float32)


@dataclass(frozen=True)
class _Plan:
    """Everything a worker needs to generate any block of one scene.

    Only coarse grids (about 70 MB for an 8192² scene), handed to the worker processes once.
    """

    seed: int
    index: int
    size: int
    season: int
    bands: tuple[str, ...]
    per_band: bool
    smooth: _Grid  # [19] zone + large + mid fields + bias of each class, every 16 px
    fine: _Grid  # [_FINE_RANK]
    fine_mix: np.ndarray  # float32 [19, _FINE_RANK]
    clouds: tuple[_Grid, ...]  # empty when cloud_cover == 0
    cloud_threshold: float
    shadow_shift: tuple[int, int]
    key: int  # structure key of the scene (parcels, grids, terrain)
    s2_acquisition: acq.S2Acquisition
    s1_acquisition: acq.S1Acquisition

    def land_cover(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """19-class land cover at rows ``ys`` [h], columns ``xs`` [w]: int64 [h, w]."""
        score = self.smooth.at(ys, xs)  # [19, h, w]
        fine = self.fine.at(ys, xs)  # [rank, h, w]
        score += np.tensordot(self.fine_mix, fine, axes=1)
        return np.argmax(score, axis=0).astype(np.int64)

    def cloud_field(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Cloud field (unthresholded) at rows ``ys`` [h], columns ``xs`` [w]: [h, w]."""
        out = np.zeros((len(ys), len(xs)), np.float32)
        for grid, (_, weight) in zip(self.clouds, _CLOUD_SCALES, strict=True):
            out += np.float32(weight) * grid.at(ys, xs)[0]
        return out

    def opacity(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Cloud opacity in [0, 1]: float32 [h, w]."""
        f = self.cloud_field(ys, xs)
        f -= np.float32(self.cloud_threshold)
        f *= np.float32(1.0 / _CLOUD_EDGE)
        return np.clip(f, 0.0, 1.0, out=f)


def _smooth_scores(
    size: int, zones: _Grid, large: _Grid, mid: _Grid, group: np.ndarray, bias: np.ndarray
) -> _Grid:
    """The smooth part of the class scores on a :data:`_SCORE_STEP` px grid of the scene.

    ``zone[group[c]] x _ZONE_WEIGHT + large[c] + mid[c] x _MID_WEIGHT + bias[c]`` is smooth
    at ≥ 45 px, so it is evaluated once every 16 px (in strips, bounded memory) and blocks
    interpolate one grid instead of three.

    Returns:
        grid of float32 [19, m, m] values, node ``j`` at pixel ``j x _SCORE_STEP``.
    """
    m = math.ceil((size - 1) / _SCORE_STEP) + 2
    p = np.arange(m) * _SCORE_STEP
    out = np.empty((NUM_CLASSES, m, m), np.float32)
    for r in range(0, m, 128):
        ys = p[r : r + 128]
        score = large.at(ys, p)  # [19, h, m]
        score += np.float32(_MID_WEIGHT) * mid.at(ys, p)
        score += np.float32(_ZONE_WEIGHT) * zones.at(ys, p)[group]
        score += bias[:, None, None]
        out[:, r : r + 128] = score
    return _Grid(out, _SCORE_STEP, 0)


def _plan(
    world: SyntheticWorld,
    index: int,
    size: int,
    season: int,
    bands: tuple[str, ...],
    per_band: bool,
    cloud_cover: float,
) -> _Plan:
    """The whole-scene fields of scene ``index``: land-cover scores, clouds, shadow shift.

    The cloud threshold puts opacity > :data:`CLOUD_OPACITY_MIN` on ``cloud_cover`` of the
    scene (measured on every pixel up to 512², else on a regular sample of 512² pixels).
    """
    shape = (size, size)
    groups = sorted(set(CLASS_GROUP))
    group = np.array([groups.index(g) for g in CLASS_GROUP], np.intp)
    rng = world.streams(index)["land_cover"]
    zones = _Grid.noise(rng, len(groups), shape, _ZONE_SCALE)
    large = _Grid.noise(rng, NUM_CLASSES, shape, _LARGE_SCALE)
    mid = _Grid.noise(rng, NUM_CLASSES, shape, _MID_SCALE)
    fine = _Grid.noise(rng, _FINE_RANK, shape, _FINE_SCALE)
    mix = rng.normal(0.0, 1.0, (NUM_CLASSES, _FINE_RANK))
    mix *= _FINE_WEIGHT / np.linalg.norm(mix, axis=1, keepdims=True)
    freq = np.asarray(CLASS_FREQUENCY, np.float64)
    bias = _BIAS_POWER * np.log(freq / freq.max()) + rng.normal(0.0, 0.15, NUM_CLASSES)
    clouds: tuple[_Grid, ...] = ()
    threshold = math.inf
    shift = (0, 0)
    if cloud_cover > 0:
        crng = world.season_streams(index, season)["clouds"]
        clouds = tuple(_Grid.noise(crng, 1, shape, s) for s, _ in _CLOUD_SCALES)
        shift = tuple(  # type: ignore[assignment]
            int(v) for v in crng.integers(*_SHADOW_SHIFT, 2) * crng.choice([-1, 1], 2)
        )
    smooth = _smooth_scores(size, zones, large, mid, group, bias.astype(np.float32))
    key = int(world.streams(index)["structure"].integers(1 << 62))
    ss = world.season_streams(index, season)
    s1_acq = dataclasses.replace(acq.draw_s1(ss["s1"]), shift=(0, 0))
    plan = _Plan(
        seed=world.seed, index=index, size=size, season=season, bands=bands,
        per_band=per_band, smooth=smooth, fine=fine, fine_mix=mix.astype(np.float32),
        clouds=clouds, cloud_threshold=threshold, shadow_shift=shift, key=key,
        s2_acquisition=acq.draw_s2(ss["s2"], world.geo(index, season).latitude, season),
        s1_acquisition=s1_acq,
    )  # fmt: skip
    if clouds:
        step = max(1, size // 512)
        p = np.arange(step // 2, size, step)
        q = float(np.quantile(plan.cloud_field(p, p), 1.0 - cloud_cover))
        threshold = q - CLOUD_OPACITY_MIN * _CLOUD_EDGE
        plan = dataclasses.replace(plan, cloud_threshold=threshold)
    return plan


# ---------------------------------------------------------------------------------------
# one block


def _native_factor(band: str) -> int:
    return BANDS[band].resolution // 10


def _block(plan: _Plan, y0: int, x0: int, h: int, w: int) -> dict[str, Any]:
    """Generate the block of rows ``y0:y0+h`` and columns ``x0:x0+w`` of a scene.

    Returns:
        ``{"s2": uint16 [B, h, w], "s1": float32 [2, h, w], "mask": uint8 [h, w],
        "dw": uint8 [h, w], "dfc": uint8 [h, w], "native": {band: uint16 [h/f, w/f]}}``
        (``native`` holds the 20 / 60 m bands when ``plan.per_band``).
    """
    world = synthetic_world(plan.seed)
    ys, xs = np.arange(y0, y0 + h), np.arange(x0, x0 + w)
    lc = plan.land_cover(ys, xs)  # [h, w]
    key = [plan.seed, plan.index, plan.season, 0x5CE7E, y0 // BLOCK, x0 // BLOCK]
    r2, r1, rf = np.random.default_rng(key).spawn(3)
    fields = landscape.fine_fields(rf, (h, w))
    s2, s1 = world.render(
        lc,
        plan.season,
        plan.key,
        fields,
        plan.s2_acquisition,
        plan.s1_acquisition,
        r2,
        r1,
        origin=(y0, x0),
    )  # [13, h, w], [2, h, w]
    mask = np.zeros((h, w), np.uint8)
    if plan.clouds:
        opacity = plan.opacity(ys, xs)  # [h, w]
        dy, dx = plan.shadow_shift
        shadow = (plan.opacity(ys - dy, xs - dx) > 0.3) & (opacity == 0)
        cloudy = opacity > CLOUD_OPACITY_MIN
        if cloudy.any() or shadow.any():
            s2 = world.apply_clouds(s2, opacity, shadow)
        mask[shadow] = SHADOW
        mask[cloudy] = CLOUD
    keep = [S2_L1C_ORDER.index(b) for b in plan.bands]
    native: dict[str, np.ndarray] = {}
    if plan.per_band:
        for b in plan.bands:
            f = _native_factor(b)
            if f > 1:
                x = s2[S2_L1C_ORDER.index(b)].reshape(h // f, f, w // f, f).mean(axis=(1, 3))
                native[b] = np.rint(x).astype(np.uint16)
    s2 = s2[keep] if len(keep) < len(S2_L1C_ORDER) else s2
    return {
        "s2": np.rint(s2).astype(np.uint16),  # values are clipped to [0, 10000]
        "s1": s1,
        "mask": mask,
        "dw": np.asarray(BEN19_TO_DW9, np.uint8)[lc],
        "dfc": np.asarray(DFC2020_REMAP, np.uint8)[np.asarray(BEN19_TO_DFC10, np.intp)][lc],
        "native": native,
    }


_PLAN: _Plan | None = None


def _init_worker(plan: _Plan) -> None:
    global _PLAN
    _PLAN = plan


def _worker_block(window: tuple[int, int, int, int]) -> tuple[tuple[int, ...], dict[str, Any]]:
    assert _PLAN is not None
    return window, _block(_PLAN, *window)


def _windows(size: int) -> list[tuple[int, int, int, int]]:
    """``(y0, x0, h, w)`` of the blocks of a scene, row-major."""
    starts = range(0, size, BLOCK)
    return [(y, x, min(BLOCK, size - y), min(BLOCK, size - x)) for y in starts for x in starts]


def _blocks(
    plan: _Plan, workers: int
) -> Iterator[tuple[tuple[int, int, int, int], dict[str, Any]]]:
    """Blocks of a scene in row-major order, generated in ``workers`` processes; at most
    ``2 x workers`` finished blocks are held at once."""
    windows = _windows(plan.size)
    if workers == 1 or len(windows) == 1:
        for win in windows:
            yield win, _block(plan, *win)
        return
    with process_pool(workers, len(windows), _init_worker, (plan,)) as pool:
        pending: list[Any] = []
        it = iter(windows)
        for win in it:
            pending.append(pool.apply_async(_worker_block, (win,)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            win, out = pending.pop(0).get()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.apply_async(_worker_block, (nxt,)))
            yield win, out


# ---------------------------------------------------------------------------------------
# writing


def _stamp(t: Any) -> str:
    return t.strftime("%Y%m%dT%H%M%S")


class _Rasters:
    """The open output rasters of one scene, written through temporary names."""

    def __init__(self, folder: Path, names: dict[str, str], profiles: dict[str, dict]) -> None:
        self.folder = folder
        self.names = names
        self.stack = contextlib.ExitStack()
        self.tmp: dict[str, Path] = {}
        self.ds: dict[str, Any] = {}
        for key, profile in profiles.items():
            final = folder / names[key]
            final.parent.mkdir(parents=True, exist_ok=True)
            self.tmp[key] = final.with_name(f".{final.name}.tmp-{os.getpid()}")
            self.ds[key] = self.stack.enter_context(rasterio.open(self.tmp[key], "w", **profile))

    def close(self, ok: bool) -> None:
        self.stack.close()
        for key, tmp in self.tmp.items():
            if ok:
                os.replace(tmp, self.folder / self.names[key])
            elif tmp.exists():
                tmp.unlink()


def _profile(
    dtype: str, count: int, size: int, res: int, crs: str, ulx: float, uly: float, workers: int
) -> dict[str, Any]:
    integer = np.issubdtype(np.dtype(dtype), np.integer)
    tile = TILE_10M if res == 10 else TILE_NATIVE
    return {
        "driver": "GTiff",
        "height": size * 10 // res,
        "width": size * 10 // res,
        "count": count,
        "dtype": dtype,
        "crs": crs,
        "transform": Affine(res, 0.0, ulx, 0.0, -res, uly),
        "tiled": True,
        "blockxsize": tile,
        "blockysize": tile,
        "compress": "deflate",
        "predictor": 2 if integer else 3,
        "zlevel": _ZLEVEL,
        "bigtiff": "IF_SAFER",
        "num_threads": str(workers),
    }


def _write_scene(
    world: SyntheticWorld,
    folder: Path,
    index: int,
    size: int,
    product: str,
    per_band: bool,
    season: int,
    cloud_cover: float,
    workers: int,
    bar: Any,
) -> dict[str, Any]:
    """Write one scene into ``folder``; returns its ``scene.json`` record."""
    bands = S2_L1C_ORDER if product == "L1C" else S2_L2A_ORDER
    plan = _plan(world, index, size, season, bands, per_band, cloud_cover)
    geo = world.geo(index, season)
    crs, ulx, uly = geo.crs, geo.ulx, geo.uly
    p = geo.product
    names = {
        "s2": "s2.tif",
        "s1": "s1.tif",
        "mask": "cloud_mask.tif",
        "dw": "reference_dw.tif",
        "dfc": "reference_dfc2020.tif",
    }
    prof = functools.partial(_profile, size=size, crs=crs, ulx=ulx, uly=uly, workers=workers)
    profiles = {
        "s2": prof("uint16", len(bands), res=10),
        "s1": prof("float32", 2, res=10),
        "mask": prof("uint8", 1, res=10),
        "dw": prof("uint8", 1, res=10),
        "dfc": prof("uint8", 1, res=10),
    }
    if per_band:
        s2_stem = f"T{geo.tile}_{_stamp(p.s2_time)}"
        s1_stem = (
            f"{p.s1_platform}_IW_GRDH_1SDV_{_stamp(p.s1_time)}_"
            f"{_stamp(p.s1_time + timedelta(seconds=25))}_{p.s1_absolute_orbit:06d}_"
            f"{p.s1_datatake:06X}"
        )
        for b in bands:
            res = BANDS[b].resolution
            names[b] = f"S2/{s2_stem}_{b}_{res}m.tif"
            profiles[b] = prof("uint16", 1, res=res)
        for b in S1_ORDER:
            names[b] = f"S1/{s1_stem}_{b}.tif"
            profiles[b] = prof("float32", 1, res=10)
    counts = np.zeros(3, np.int64)
    dw_counts = np.zeros(len(DW9), np.int64)
    out = _Rasters(folder, names, profiles)
    ok = False
    try:
        ds = out.ds
        ds["s2"].descriptions = bands
        ds["s1"].descriptions = S1_ORDER
        ds["mask"].descriptions = ("cloud_mask",)
        ds["mask"].update_tags(1, VALUES=json.dumps({"0": "clear", "1": "cloud", "2": "shadow"}))
        for key, classes in (("dw", DW9), ("dfc", DFC2020)):
            # the colours of every rsfuse figure and of rsfuse predict's class maps
            ds[key].write_colormap(1, colour_table(classes, 255))
            ds[key].descriptions = ("label",)
            ds[key].update_tags(1, CLASS_NAMES=json.dumps(list(classes)), IGNORE_INDEX="255")
        if per_band:
            for b in (*bands, *S1_ORDER):
                ds[b].descriptions = (b,)
        for (y0, x0, h, w), blk in _blocks(plan, workers):
            win = Window(x0, y0, w, h)
            ds["s2"].write(blk["s2"], window=win)
            ds["s1"].write(blk["s1"], window=win)
            ds["mask"].write(blk["mask"], 1, window=win)
            ds["dw"].write(blk["dw"], 1, window=win)
            ds["dfc"].write(blk["dfc"], 1, window=win)
            counts += np.bincount(blk["mask"].ravel(), minlength=3)[:3]
            dw_counts += np.bincount(blk["dw"].ravel(), minlength=len(DW9))[: len(DW9)]
            if per_band:
                for c, b in enumerate(bands):
                    f = _native_factor(b)
                    x = blk["s2"][c] if f == 1 else blk["native"][b]
                    ds[b].write(x, 1, window=Window(x0 // f, y0 // f, w // f, h // f))
                for c, b in enumerate(S1_ORDER):
                    ds[b].write(blk["s1"][c], 1, window=win)
            bar.update(1)
        ok = True
    finally:
        out.close(ok)
    total = float(size * size)
    transform = Affine(10.0, 0.0, ulx, 0.0, -10.0, uly)
    return {
        "layout": "rsfuse-scene",
        "version": 1,
        "seed": world.seed,
        "index": index,
        "size": size,
        "height": size,
        "width": size,
        "resolution": 10,
        "crs": crs,
        "epsg": geo.epsg,
        "transform": list(transform)[:6],
        "bounds": [ulx, uly - 10 * size, ulx + 10 * size, uly],
        "tile": geo.tile,
        "country": geo.country,
        "product": product,
        "s2_bands": list(bands),
        "s1_bands": list(S1_ORDER),
        "season": season,
        "season_name": SEASONS[season],
        "s2_time": p.s2_time.isoformat(),
        "s1_time": p.s1_time.isoformat(),
        "cloud_cover_target": cloud_cover,
        "cloud_fraction": counts[CLOUD] / total,
        "shadow_fraction": counts[SHADOW] / total,
        "cloud_mask_values": {"clear": CLEAR, "cloud": CLOUD, "shadow": SHADOW},
        "dw_fractions": (dw_counts / total).round(6).tolist(),
        "files": names,
        "classes": {"dw": list(DW9), "dfc2020": list(DFC2020)},
        "ignore_index": 255,
    }


def _check(
    n: Any, seed: Any, workers: Any, size: Any, product: Any, per_band: Any, season: Any, cover: Any
) -> None:
    check_counts(n, seed, workers, what="number of scenes n")
    if not is_int(size) or size < 64:
        raise ConfigError(f"scene size must be an integer >= 64, got {size!r}", key="size")
    if per_band and size % 6:
        raise ConfigError(
            f"scene size must be a multiple of 6 with per_band=True (60 m pixels), got {size}",
            key="size",
        )
    if product not in ("L1C", "L2A"):
        raise ConfigError(f"product must be 'L1C' or 'L2A', got {product!r}", key="product")
    if not is_int(season) or not 0 <= season < 4:
        raise ConfigError(f"season must be 0–3 ({', '.join(SEASONS)}), got {season!r}", "season")
    ok = isinstance(cover, int | float | np.floating) and not isinstance(cover, bool)
    if not ok or not 0.0 <= float(cover) < 1.0:
        raise ConfigError(f"cloud_cover must be in [0, 1), got {cover!r}", key="cloud_cover")


def write_scene(
    root: str | Path,
    n: int = 1,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
    *,
    size: int = 2048,
    product: str = "L1C",
    per_band: bool = False,
    season: int = 2,
    cloud_cover: float = 0.25,
) -> Path:
    """Write ``n`` whole scenes (co-registered S1 + S2 GeoTIFFs and references) of world ``seed``.

    Args:
        root: output folder; scene ``i`` goes to ``root/scene_{i:03d}/``.
        n: number of scenes.
        seed: world seed.
        workers: processes generating blocks (the main process writes; GDAL compresses
            with ``workers`` threads). The arrays do not depend on it.
        progress: show a progress bar (blocks of all scenes).
        size: scene side in 10 m pixels (≥ 64; a multiple of 6 with ``per_band``).
        product: ``"L1C"`` (13 bands) or ``"L2A"`` (12 bands, no ``B10``).
        per_band: also write Sentinel-like per-band files at native resolution (``S2/``,
            ``S1/``).
        season: 0–3 (winter, spring, summer, autumn): class spectra and backscatter.
        cloud_cover: target fraction of the scene under cloud (opacity > 0.05), in [0, 1);
            0 writes no clouds at all.

    Returns:
        ``root`` as a Path.

    Raises:
        ConfigError: bad ``n``, ``seed``, ``workers``, ``size``, ``product``, ``season`` or
            ``cloud_cover`` (the error's key names the argument).
    """
    _check(n, seed, workers, size, product, per_band, season, cloud_cover)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    world = synthetic_world(int(seed))
    bar = progress_bar(int(n) * len(_windows(int(size))), progress, "synth scene")
    try:
        with rasterio.Env(GDAL_CACHEMAX=_GDAL_CACHE_MB):
            for i in range(int(n)):
                folder = root / f"scene_{i:03d}"
                (folder / "scene.json").unlink(missing_ok=True)
                record = _write_scene(
                    world, folder, i, int(size), product, bool(per_band), int(season),
                    float(cloud_cover), int(workers), bar,
                )  # fmt: skip
                write_atomic(folder / "scene.json", json.dumps(record, indent=2) + "\n")
    finally:
        bar.close()
    return root
