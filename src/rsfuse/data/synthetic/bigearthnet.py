"""Write the synthetic Sentinel world in the on-disk layouts of BigEarthNet v1 and v2 (reBEN).

Every path comes from :mod:`rsfuse.data.bigearthnet_layout` and every GeoTIFF is written by
:func:`rsfuse.io.geotiff.write_geotiff` (atomically), so readers and writers cannot drift
apart. Location ``i`` of a world seed has the same pixels in both layouts.

Per location (see :class:`~rsfuse.data.synthetic.world.SyntheticWorld`):

* S2: the 12 L2A bands (:data:`rsfuse.bands.S2_L2A_ORDER`, the world's 13 bands minus B10) as
  uint16 GeoTIFFs at native size: 10 m bands 120 x 120, 20 m bands 60 x 60 (2 x 2 block mean
  of the 10 m field), 60 m bands 20 x 20 (6 x 6 block mean), rounded; each with the tile's
  UTM CRS and the transform of its own pixel size at the patch origin.
* S1: VV and VH float32 GeoTIFFs (dB) 120 x 120 on the 10 m grid of the S2 patch.
* labels: the 19-class labels of the land-cover map. v1 stores 43-class (CLC level-3) names:
  each 19-class label is written as one of its 43-class sources (:data:`BEN43_TO_19`), and in
  ≈ 5 % of the patches one extra name that the 43 → 19 mapping drops (e.g. ``Airports``) is
  added. v2 stores 19-class names and a reference map of CLC codes whose 43-class choice per
  19-class label is the same as v1's.

Metadata (split CSVs / snow and cloud lists for v1, ``metadata.parquet`` for v2) is written
last, through a temporary name and :func:`os.replace`: a folder with its metadata is complete.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from rsfuse.bands import BANDS, S1_ORDER, S2_L1C_ORDER, S2_L2A_ORDER
from rsfuse.data import bigearthnet_layout as layout
from rsfuse.data.classes import BEN19, BEN43, BEN43_TO_19
from rsfuse.data.synthetic.driver import check_counts, process_pool, progress_bar
from rsfuse.data.synthetic.driver import world as synthetic_world
from rsfuse.data.synthetic.world import GeoInfo, Location, SyntheticWorld
from rsfuse.errors import ConfigError
from rsfuse.io.atomic import write_atomic
from rsfuse.io.geotiff import write_geotiff

#: CORINE Land Cover level-3 code of each BigEarthNet 43-class index (same order as BEN43).
CLC_CODES: tuple[int, ...] = (
    111, 112, 121, 122, 123, 124, 131, 132, 133, 141, 142, 211, 212, 213, 221, 222, 223, 231,
    241, 242, 243, 244, 311, 312, 313, 321, 322, 323, 324, 331, 332, 333, 334, 411, 412, 421,
    422, 423, 511, 512, 521, 522, 523,
)  # fmt: skip
#: The 43-class source most often used for each 19-class label (the others come with
#: probability :data:`_OTHER_SOURCE_P`): CLC 112, 121, 211, 221, 231, 242, 243, 244, 311,
#: 312, 313, 321, 322, 324, 331, 411, 421, 511, 523.
PRIMARY_SOURCE: tuple[int, ...] = (
    1, 2, 11, 14, 17, 19, 20, 21, 22, 23, 24, 25, 26, 28, 29, 33, 35, 38, 42,
)  # fmt: skip
#: 43-class indices the 43 → 19 mapping drops (3–10, 30, 32, 37).
DROPPED_43: tuple[int, ...] = tuple(i for i in range(len(BEN43)) if i not in BEN43_TO_19)
#: Probability that a v1 label list gets an extra dropped 43-class name.
DROPPED_LABEL_P = 0.05
_OTHER_SOURCE_P = 0.3
_SOURCES_19: tuple[tuple[int, ...], ...] = tuple(
    tuple(sorted(i for i, j in BEN43_TO_19.items() if j == c)) for c in range(len(BEN19))
)
_L2A_IN_L1C = tuple(S2_L1C_ORDER.index(b) for b in S2_L2A_ORDER)
DEFAULT_SPLITS: tuple[float, float, float] = (0.6, 0.2, 0.2)
#: Band files are stored uncompressed, like the published BigEarthNet GeoTIFFs (noisy pixels
#: barely compress, and writing is ~1.5x faster); reference maps are deflated.
_COMPRESS: str | None = None
_SPLIT_KEYS = ("train", "val", "test")


# ---------------------------------------------------------------------------------------
# names


def _stamp(t: Any) -> str:
    return t.strftime("%Y%m%dT%H%M%S")


def v1_s2_name(geo: GeoInfo) -> str:
    """BigEarthNet v1 S2 patch name, e.g. ``S2A_MSIL2A_20170613T101031_26_57``."""
    p = geo.product
    return f"{p.s2_platform}_MSIL2A_{_stamp(p.s2_time)}_{geo.row}_{geo.col}"


def v2_patch_id(geo: GeoInfo) -> str:
    """reBEN S2 patch id, e.g. ``S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57``."""
    p = geo.product
    return (
        f"{p.s2_platform}_MSIL2A_{_stamp(p.s2_time)}_N9999_R{p.relative_orbit:03d}"
        f"_T{geo.tile}_{geo.row}_{geo.col}"
    )


def s1_name(geo: GeoInfo) -> str:
    """S1 patch name (v1 and v2), e.g. ``S1A_IW_GRDH_1SDV_20170613T165043_33UUP_26_57``."""
    p = geo.product
    return f"{p.s1_platform}_IW_GRDH_1SDV_{_stamp(p.s1_time)}_{geo.tile}_{geo.row}_{geo.col}"


def _s1_scene(geo: GeoInfo) -> str:
    p = geo.product
    end = p.s1_time + timedelta(seconds=25)
    crc = (p.s1_datatake * 7919 + p.s1_absolute_orbit) % 0x10000
    return (
        f"{p.s1_platform}_IW_GRDH_1SDV_{_stamp(p.s1_time)}_{_stamp(end)}_"
        f"{p.s1_absolute_orbit:06d}_{p.s1_datatake:06X}_{crc:04X}"
    )


def _s2_tile_source(geo: GeoInfo) -> str:
    p = geo.product
    t = _stamp(p.s2_time)
    return f"{p.s2_platform}_MSIL1C_{t}_N0205_R{p.relative_orbit:03d}_T{geo.tile}_{t}.SAFE"


@lru_cache(maxsize=64)
def _wkt(epsg: int) -> str:
    from rasterio.crs import CRS

    return CRS.from_epsg(epsg).to_wkt()


# ---------------------------------------------------------------------------------------
# labels


def choose_sources(rng: np.random.Generator, labels: Sequence[int]) -> dict[int, int]:
    """Pick one 43-class source for each 19-class label (the primary one ~70 % of the time).

    Returns:
        ``{19-class index: 43-class index}``.
    """
    out = {}
    for c in labels:
        sources = _SOURCES_19[c]
        if len(sources) > 1 and rng.random() < _OTHER_SOURCE_P:
            out[c] = int(rng.choice(sources))
        else:
            out[c] = PRIMARY_SOURCE[c]
    return out


def _labels_43(rng: np.random.Generator, loc: Location) -> tuple[dict[int, int], list[str]]:
    """43-class source per label, and the v1 name list (with an occasional dropped name)."""
    sources = choose_sources(rng, loc.labels)
    idx = set(sources.values())
    if rng.random() < DROPPED_LABEL_P:
        idx.add(int(rng.choice(DROPPED_43)))
    return sources, [BEN43[i] for i in sorted(idx)]


def reference_map(land_cover: np.ndarray, sources: dict[int, int]) -> np.ndarray:
    """uint16 [H, W] CLC codes: each pixel's 19-class label written as its 43-class source."""
    lut = np.zeros(len(BEN19), np.uint16)
    for c, i in sources.items():
        lut[c] = CLC_CODES[i]
    return lut[land_cover]


# ---------------------------------------------------------------------------------------
# pixels


def s2_native(s2: np.ndarray) -> dict[str, np.ndarray]:
    """The 12 L2A bands at native size as uint16: 10 m as is, 20/60 m as block means.

    Args:
        s2: float32 [13, H, W] L1C-order reflectance x 10000 on the 10 m grid (H, W multiples
            of 6).

    Returns:
        ``{band: uint16 [H * 10 / res, W * 10 / res]}`` in :data:`S2_L2A_ORDER`.
    """
    _, H, W = s2.shape
    out = {}
    for b, i in zip(S2_L2A_ORDER, _L2A_IN_L1C):
        f = BANDS[b].resolution // 10
        x = s2[i]
        if f > 1:
            x = x.reshape(H // f, f, W // f, f).mean(axis=(1, 3))  # [H/f, W/f]
        out[b] = np.rint(np.clip(x, 0, 65535)).astype(np.uint16)
    return out


def _write_s2(paths: Callable[[str], Path], loc: Location) -> None:
    geo = loc.geo
    for b, x in s2_native(loc.s2).items():
        write_geotiff(
            paths(b),
            x,
            crs=geo.crs,
            transform=geo.transform(BANDS[b].resolution),
            compress=_COMPRESS,
        )


def _write_s1(paths: Callable[[str], Path], loc: Location) -> None:
    geo = loc.geo
    for i, b in enumerate(S1_ORDER):
        write_geotiff(
            paths(b),
            np.ascontiguousarray(loc.s1[i]),
            crs=geo.crs,
            transform=geo.transform(10),
            compress=_COMPRESS,
        )


def _coordinates(geo: GeoInfo) -> dict[str, int]:
    ulx, uly, lrx, lry = geo.bounds
    return {"ulx": int(ulx), "uly": int(uly), "lrx": int(lrx), "lry": int(lry)}


# ---------------------------------------------------------------------------------------
# one location per layout


def _record(loc: Location) -> dict[str, Any]:
    return {
        "index": loc.index,
        "labels": list(loc.labels),
        "snow": loc.has_snow,
        "cloud": loc.has_cloud,
        "country": loc.geo.country,
    }


def _write_v1_location(world: SyntheticWorld, root: Path, index: int) -> dict[str, Any]:
    loc = world.location(index, size=layout.PATCH_SIZE_10M)
    geo = loc.geo
    _, names43 = _labels_43(world.streams(index)["layout"], loc)
    s2n, s1n = v1_s2_name(geo), s1_name(geo)
    _write_s2(lambda b: layout.v1_s2_band(root, s2n, b), loc)
    _write_s1(lambda b: layout.v1_s1_band(root, s1n, b), loc)
    p = geo.product
    coords, wkt = _coordinates(geo), _wkt(geo.epsg)
    s2_meta = {
        "labels": names43,
        "coordinates": coords,
        "projection": wkt,
        "tile_source": _s2_tile_source(geo),
        "acquisition_date": p.s2_time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    s1_meta = {
        "labels": names43,
        "coordinates": coords,
        "projection": wkt,
        "corresponding_s2_patch": s2n,
        "scene_source": _s1_scene(geo),
        "acquisition_time": p.s1_time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_atomic(layout.v1_s2_metadata(root, s2n), json.dumps(s2_meta))
    write_atomic(layout.v1_s1_metadata(root, s1n), json.dumps(s1_meta))
    return {**_record(loc), "s2_name": s2n, "s1_name": s1n}


def _write_v2_location(world: SyntheticWorld, root: Path, index: int) -> dict[str, Any]:
    loc = world.location(index, size=layout.PATCH_SIZE_10M)
    geo = loc.geo
    sources, _ = _labels_43(world.streams(index)["layout"], loc)
    pid, s1n = v2_patch_id(geo), s1_name(geo)
    _write_s2(lambda b: layout.v2_s2_band(root, pid, b), loc)
    _write_s1(lambda b: layout.v2_s1_band(root, s1n, b), loc)
    write_geotiff(
        layout.v2_reference_map(root, pid),
        reference_map(loc.land_cover, sources),
        crs=geo.crs,
        transform=geo.transform(10),
        compress="deflate",
    )
    return {**_record(loc), "patch_id": pid, "s1_name": s1n, "s2v1_name": v1_s2_name(geo)}


_WRITERS: dict[str, Callable[[SyntheticWorld, Path, int], dict[str, Any]]] = {
    "bigearthnet-v1": _write_v1_location,
    "bigearthnet-v2": _write_v2_location,
}


def _write_chunk(task: tuple[str, str, int, Sequence[int]]) -> list[dict[str, Any]]:
    """Worker: write the locations ``indices`` of one layout (top level, so it pickles)."""
    name, root, seed, indices = task
    world, writer = synthetic_world(seed), _WRITERS[name]
    return [writer(world, Path(root), i) for i in indices]


# ---------------------------------------------------------------------------------------
# driver


def _check_args(n: int, seed: int, workers: int, splits: Sequence[float]) -> tuple[float, ...]:
    check_counts(n, seed, workers)
    try:
        fr = tuple(float(x) for x in splits)
    except (TypeError, ValueError):
        raise ConfigError(
            f"splits must be 3 numbers (train, val, test), got {splits!r}", key="splits"
        ) from None
    if (
        len(fr) != 3
        or not all(math.isfinite(x) and x >= 0 for x in fr)
        or abs(sum(fr) - 1.0) > 1e-6
    ):
        raise ConfigError(
            f"splits must be 3 non-negative fractions (train, val, test) summing to 1, "
            f"got {splits!r}",
            key="splits",
        )
    return fr


def assign_splits(n: int, seed: int, splits: Sequence[float] = DEFAULT_SPLITS) -> list[str]:
    """Split of each location index (``train``/``val``/``test``): a seeded permutation cut at
    the rounded fractions, so the counts are exact and v1/v2 agree."""
    fr = _check_args(n, seed, 1, splits)
    n_train = round(n * fr[0])
    n_val = min(n - n_train, round(n * fr[1]))
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x5EED, 1)))
    perm = rng.permutation(n)
    out = ["test"] * n
    for i in perm[:n_train]:
        out[i] = "train"
    for i in perm[n_train : n_train + n_val]:
        out[i] = "val"
    return out


def _generate(
    name: str, root: Path, n: int, seed: int, workers: int, progress: bool
) -> list[dict[str, Any]]:
    """Write all locations with ``workers`` processes; records sorted by index."""
    root.mkdir(parents=True, exist_ok=True)
    chunk = max(1, min(32, math.ceil(n / (workers * 8))))
    tasks = [(name, str(root), seed, range(i, min(n, i + chunk))) for i in range(0, n, chunk)]
    bar = progress_bar(n, progress, f"synth {name}")
    records: list[dict[str, Any]] = []
    try:
        if workers == 1 or len(tasks) == 1:
            for t in tasks:
                records += _write_chunk(t)
                bar.update(len(t[3]))
        else:
            with process_pool(workers, len(tasks)) as pool:
                for recs in pool.imap_unordered(_write_chunk, tasks):
                    records += recs
                    bar.update(len(recs))
    finally:
        bar.close()
    records.sort(key=lambda r: r["index"])
    return records


def write_bigearthnet_v1(
    root: str | Path,
    n: int,
    seed: int,
    workers: int = 1,
    splits: Sequence[float] = DEFAULT_SPLITS,
    progress: bool = True,
) -> Path:
    """Write ``n`` synthetic locations in the BigEarthNet v1 (BigEarthNet-MM) layout.

    Args:
        root: output folder (created; existing files of the same names are replaced).
        n: number of locations (indices ``0 … n-1``).
        seed: world seed.
        workers: parallel processes.
        splits: train, val, test fractions (sum 1).
        progress: show a progress bar.

    Returns:
        ``root``.

    Raises:
        ConfigError: bad ``n``, ``seed``, ``workers`` or ``splits``.
    """
    root = Path(root)
    _check_args(n, seed, workers, splits)
    split_of = assign_splits(n, seed, splits)
    recs = _generate("bigearthnet-v1", root, n, seed, workers, progress)
    for key in _SPLIT_KEYS:
        lines = [f"{r['s2_name']},{r['s1_name']}\n" for r in recs if split_of[r["index"]] == key]
        write_atomic(root / layout.V1_SPLIT_FILES[key][0], "".join(lines))
    write_atomic(
        root / layout.V1_SNOW_FILE, "".join(f"{r['s2_name']}\n" for r in recs if r["snow"])
    )
    write_atomic(
        root / layout.V1_CLOUD_FILE, "".join(f"{r['s2_name']}\n" for r in recs if r["cloud"])
    )
    return root


def write_bigearthnet_v2(
    root: str | Path,
    n: int,
    seed: int,
    workers: int = 1,
    splits: Sequence[float] = DEFAULT_SPLITS,
    progress: bool = True,
) -> Path:
    """Write ``n`` synthetic locations in the BigEarthNet v2 (reBEN) layout.

    ``metadata.parquet`` has one row per clear location (as in the release, the snowy and
    cloudy ones are in ``metadata_for_patches_with_snow_cloud_or_shadow.parquet``, same
    columns), in index order, with ``patch_id``,
    ``labels`` (list of 19-class names in class order), ``split`` (``train``,
    ``validation``, ``test``), ``country``, ``s1_name``, ``s2v1_name`` (the v1 name of the
    same patch), ``contains_seasonal_snow`` and ``contains_cloud_or_shadow`` (bool).

    Args:
        root: output folder (created; existing files of the same names are replaced).
        n: number of locations (indices ``0 … n-1``).
        seed: world seed.
        workers: parallel processes.
        splits: train, val, test fractions (sum 1).
        progress: show a progress bar.

    Returns:
        ``root``.

    Raises:
        ConfigError: bad ``n``, ``seed``, ``workers`` or ``splits``.
    """
    import pandas as pd

    root = Path(root)
    _check_args(n, seed, workers, splits)
    split_of = assign_splits(n, seed, splits)
    recs = _generate("bigearthnet-v2", root, n, seed, workers, progress)
    df = pd.DataFrame({
        "patch_id": [r["patch_id"] for r in recs],
        "labels": [[BEN19[c] for c in r["labels"]] for r in recs],
        "split": [layout.V2_SPLIT_VALUES[split_of[r["index"]]] for r in recs],
        "country": [r["country"] for r in recs],
        "s1_name": [r["s1_name"] for r in recs],
        "s2v1_name": [r["s2v1_name"] for r in recs],
        "contains_seasonal_snow": [bool(r["snow"]) for r in recs],
        "contains_cloud_or_shadow": [bool(r["cloud"]) for r in recs],
    })  # fmt: skip
    flagged = df["contains_seasonal_snow"] | df["contains_cloud_or_shadow"]  # as reBEN splits
    for name, part in (
        (layout.V2_FLAGGED_METADATA, df[flagged]),
        (layout.V2_METADATA, df[~flagged]),
    ):
        path = root / name
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            part.to_parquet(tmp, index=False)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    return root
