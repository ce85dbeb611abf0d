"""Write the synthetic Sentinel world in the layouts of SSL4EO-S12 (v1.0, v1.1), NoLDO-S12
and DFC2020, with pixel masks from the world's land-cover maps.

The world's 19-class land cover (BigEarthNet nomenclature) becomes Dynamic World 9-class
(:data:`BEN19_TO_DW9`), DFC2020 10-class (:data:`BEN19_TO_DFC10`) and OSM 13-class
(:data:`BEN19_TO_OSM13`) masks; winter snow (cover > 0.5) becomes Snow & Ice (DW) / Snow/Ice
(DFC2020). Every location has 4 seasons with the same land cover (``world.location(i, size,
season)``); season ``k`` is acquired in the ``k``-th season window of 2020/21 (winter,
spring, summer, autumn), so chronological order is season order.

Layouts (see the readers for the file formats):

* ``ssl4eo-s12`` (:func:`write_ssl4eo_s12`): ``{s1,s2c,s2a}/{7-digit id}/{product}/{band}.tif``,
  S2 uint16 at native 264 / 132 / 44 px (block means), S1 float32 dB 264 px.
* ``ssl4eo-s12-v1.1`` (:func:`write_ssl4eo_s12_zarr`): ``train/{S1GRD,S2L1C,S2L2A}/
  ssl4eos12_train_seasonal_data_NNNNNN.zarr.zip`` written with zarr's ``ZipStore`` (zarr
  format 2 like the published files): ``bands`` (sample, time, band, y, x) S2 int16 = DN + 1000,
  S1 float16 dB, ``cloud_mask`` (0 clear, 1 cloud, 3 shadow) in S2 files, coordinates.
* ``noldo-s12`` (:func:`write_noldo_s12`): the pretraining split as the LMDBs of pickled uint8
  arrays, plus ``dw_complete_ids.csv`` (with ``geotiff=True`` also the GeoTIFF form: folders
  ``s1``/``s2c`` + ``dw_noisy_labels``) with the noise-free labels beside the noisy ones
  (``dw_labels_clean.lmdb``, ``dw_clean_labels``); noisy labels from
  :func:`~rsfuse.data.synthetic.noisy_labels.dynamic_world_noise` (~70 % pixel accuracy).
  Plus the downstream splits ``dw_{train,test}`` / ``osm_{train,test}`` (LMDBs; the GeoTIFF
  folders they are built from are kept with ``geotiff=True``), clean labels with unlabelled
  blobs (0), from further world locations.
* ``dfc2020`` (:func:`write_dfc2020`):
  ``ROIs0000_{validation,test}/{s1,s2,dfc}_<scene>/…_p<n>.tif``, 256 px, one random season
  per patch.

``patch_size`` shrinks patches for tests (a multiple of 6 for the SSL4EO/NoLDO layouts).
Output is a pure function of ``(seed, n, patch_size)``.
"""

from __future__ import annotations

import math
import os
import pickle
import shutil
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from rsfuse.bands import BANDS, S1_ORDER, S2_L1C_ORDER, S2_L2A_ORDER
from rsfuse.data.noldo import (
    NOL_IDS_CSV,
    NOL_LABEL_DIRS,
    NOL_LMDB,
    UINT8_S1_STATS,
    UINT8_S2_STATS,
    physical_to_uint8,
)
from rsfuse.data.ssl4eo import V10_DIRS, V11_DIRS, V11_S2_OFFSET, file_band_name
from rsfuse.data.synthetic.driver import check_counts, is_int, run_parallel
from rsfuse.data.synthetic.driver import world as synthetic_world
from rsfuse.data.synthetic.fields import smooth_fields
from rsfuse.data.synthetic.noisy_labels import dynamic_world_noise
from rsfuse.data.synthetic.world import Location, SyntheticWorld
from rsfuse.errors import ConfigError
from rsfuse.io.atomic import write_atomic
from rsfuse.io.geotiff import write_geotiff

#: BigEarthNet 19-class index → Dynamic World 9-class index.
BEN19_TO_DW9: tuple[int, ...] = (6, 6, 4, 4, 2, 4, 4, 1, 1, 1, 1, 2, 5, 5, 7, 3, 3, 0, 0)
#: BigEarthNet 19-class index → DFC2020 label value 1–10 (agro-forestry → 3 Savanna).
BEN19_TO_DFC10: tuple[int, ...] = (7, 7, 6, 6, 4, 6, 6, 3, 1, 1, 1, 4, 2, 2, 9, 5, 5, 10, 10)
#: BigEarthNet 19-class index → OSM 13-class index (0-based, :data:`~rsfuse.data.classes.OSM13`).
BEN19_TO_OSM13: tuple[int, ...] = (0, 1, 2, 10, 8, 2, 2, 10, 4, 4, 4, 7, 9, 9, 7, 11, 12, 6, 6)
SNOW_DW, SNOW_DFC = 8, 8
#: First day of each season's acquisition window (season order = time order).
SEASON_DATES: tuple[datetime, ...] = (
    datetime(2020, 12, 10), datetime(2021, 3, 10), datetime(2021, 6, 10), datetime(2021, 9, 10),
)  # fmt: skip
NOL_PATCH = 264
DFC_PATCH = 256
_L2A_IN_L1C = tuple(S2_L1C_ORDER.index(b) for b in S2_L2A_ORDER)
_UNLABELLED_COVER = {"dw": 0.15, "osm": 0.3}


# ---------------------------------------------------------------------------------------
# labels


def dw_labels(loc: Location) -> np.ndarray:
    """Clean Dynamic World labels of a location: uint8 [H, W] 0–8 (snow → 8)."""
    lab = np.asarray(BEN19_TO_DW9, np.uint8)[loc.land_cover]
    lab[loc.snow > 0.5] = SNOW_DW
    return lab


def dfc_labels(loc: Location) -> np.ndarray:
    """DFC2020 label values 1–10 of a location: uint8 [H, W] (snow → 8)."""
    lab = np.asarray(BEN19_TO_DFC10, np.uint8)[loc.land_cover]
    lab[loc.snow > 0.5] = SNOW_DFC
    return lab


def osm_labels(loc: Location) -> np.ndarray:
    """OSM 13-class indices (0-based) of a location: uint8 [H, W]."""
    return np.asarray(BEN19_TO_OSM13, np.uint8)[loc.land_cover]


def _unlabelled(rng: np.random.Generator, shape: tuple[int, int], cover: float) -> np.ndarray:
    """Smooth blobs covering about ``cover`` of the patch (areas an annotator left blank)."""
    f = smooth_fields(rng, 1, shape, 8.0)[0]
    return f > np.quantile(f, 1.0 - cover)


# ---------------------------------------------------------------------------------------
# names and pixels


def _stamp(t: datetime) -> str:
    return t.strftime("%Y%m%dT%H%M%S")


def acquisition(world_seed: int, index: int, season: int) -> tuple[datetime, datetime]:
    """S2 and S1 acquisition times of a location in a season (deterministic)."""
    rng = np.random.default_rng([world_seed, index, season, 0x55])
    day = SEASON_DATES[season] + timedelta(days=int(rng.integers(0, 20)))
    t2 = day + timedelta(hours=10, seconds=int(rng.integers(0, 3600)))
    t1 = day + timedelta(days=int(rng.integers(-2, 3)), hours=17, seconds=int(rng.integers(3600)))
    return t2, t1


def s2_product_name(t: datetime, tile: str) -> str:
    """SSL4EO-S12 S2 season folder name (GEE product id), e.g. ``20210310T101021_…_T33UUP``."""
    return f"{_stamp(t)}_{_stamp(t + timedelta(seconds=5))}_T{tile}"


def s1_product_name(t: datetime, index: int) -> str:
    """SSL4EO-S12 S1 season folder name (GEE product id)."""
    end = t + timedelta(seconds=25)
    orbit, crc = 30000 + index % 9000, index % 65536
    return f"S1A_IW_GRDH_1SDV_{_stamp(t)}_{_stamp(end)}_{orbit:06d}_03A1B2_{crc:04X}"


def s2_native(s2: np.ndarray, bands: Sequence[str]) -> dict[str, np.ndarray]:
    """S2 bands at native size (block means of the 10 m field) as uint16.

    Args:
        s2: float32 [13, H, W] L1C-order reflectance x 10000 (H, W multiples of 6).
        bands: band names to return.
    """
    _, H, W = s2.shape
    out = {}
    for b in bands:
        f = BANDS[b].resolution // 10
        x = s2[S2_L1C_ORDER.index(b)]
        if f > 1:
            x = x.reshape(H // f, f, W // f, f).mean(axis=(1, 3))
        out[b] = np.rint(np.clip(x, 0, 65535)).astype(np.uint16)
    return out


def _write_v10_location(
    world: SyntheticWorld, root: Path, index: int, size: int, products: Sequence[str]
) -> list[Location]:
    """Write one SSL4EO-S12 v1.0 location (4 seasons); returns the 4 Locations."""
    sid = f"{index:07d}"
    locs = []
    for s in range(4):
        loc = world.location(index, size=size, season=s)
        geo = loc.geo
        t2, t1 = acquisition(world.seed, index, s)
        for prod in products:
            if prod == "s1":
                folder = root / V10_DIRS["s1"] / sid / s1_product_name(t1, index)
                for c, b in enumerate(S1_ORDER):
                    write_geotiff(
                        folder / f"{b}.tif",
                        np.ascontiguousarray(loc.s1[c]),
                        crs=geo.crs,
                        transform=geo.transform(10),
                        compress=None,
                    )
            else:
                bands = S2_L1C_ORDER if prod == "s2c" else S2_L2A_ORDER
                folder = root / prod / sid / s2_product_name(t2, geo.tile)
                for b, x in s2_native(loc.s2, bands).items():
                    write_geotiff(
                        folder / f"{file_band_name(b)}.tif",
                        x,
                        crs=geo.crs,
                        transform=geo.transform(BANDS[b].resolution),
                        compress=None,
                    )
        locs.append(loc)
    return locs


# ---------------------------------------------------------------------------------------
# parallel driver


def _check(n: int, seed: int, workers: int, size: int, multiple: int) -> None:
    check_counts(n, seed, workers)
    if not is_int(size) or size < multiple or size % multiple:
        raise ConfigError(
            f"patch_size must be a positive multiple of {multiple}, got {size!r}",
            key="patch_size",
        )


class _LMDBWriter:
    """Write ``pickle.dumps((bytes, shape, id))`` entries (the authors' format), atomically:
    into ``<name>.tmp-<pid>``, renamed when closed."""

    def __init__(self, path: Path, map_size: int) -> None:
        import shutil

        import lmdb

        self.path = path
        self.tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.env = lmdb.open(str(self.tmp), map_size=map_size)
        self.txn = self.env.begin(write=True)
        self.count = 0

    def put(self, key: str, arr: np.ndarray, ident: Any) -> None:
        obj = (arr.tobytes(), tuple(int(v) for v in arr.shape), ident)
        self.txn.put(key.encode(), pickle.dumps(obj))
        self.count += 1
        if self.count % 200 == 0:
            self.txn.commit()
            self.txn = self.env.begin(write=True)

    def close(self) -> None:
        import shutil

        self.txn.commit()
        self.env.sync()
        self.env.close()
        shutil.rmtree(self.path, ignore_errors=True)
        os.replace(self.tmp, self.path)


def _map_size(n: int, per_item: int) -> int:
    return int(max(64 << 20, 2 * n * per_item + (16 << 20)))


# ---------------------------------------------------------------------------------------
# SSL4EO-S12 v1.0


def _v10_task(seed: int, root: str, index: int, size: int, products: tuple[str, ...]) -> None:
    _write_v10_location(synthetic_world(seed), Path(root), index, size, products)


def write_ssl4eo_s12(
    root: str | Path,
    n: int,
    seed: int,
    workers: int = 1,
    progress: bool = True,
    patch_size: int = NOL_PATCH,
    products: Sequence[str] = ("s1", "s2c", "s2a"),
) -> Path:
    """Write ``n`` synthetic locations in the SSL4EO-S12 v1.0 layout (4 seasons each).

    Args:
        root: output folder.
        n: number of locations (ids ``0000000 …``).
        seed: world seed.
        workers: parallel processes.
        progress: show a progress bar.
        patch_size: 10 m patch side (264; a multiple of 6).
        products: subset of ``s1``, ``s2c`` (L1C), ``s2a`` (L2A).

    Returns:
        ``root``.

    Raises:
        ConfigError: bad arguments.
    """
    _check(n, seed, workers, patch_size, 6)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    prods = tuple(products)
    tasks = [(seed, str(root), i, patch_size, prods) for i in range(n)]
    run_parallel(_v10_task, tasks, workers, progress, "synth ssl4eo-s12")
    return root


# ---------------------------------------------------------------------------------------
# SSL4EO-S12 v1.1 (zarr.zip)


def _v11_location(seed: int, index: int, size: int) -> dict[str, Any]:
    world = synthetic_world(seed)
    s1, l1c, cm, times, crs = [], [], [], [], 0
    for s in range(4):
        loc = world.location(index, size=size, season=s)
        s1.append(loc.s1)
        l1c.append(loc.s2)
        m = np.zeros(loc.cloud.shape, np.uint8)
        m[loc.cloud > 0.05] = 1
        m[loc.shadow] = 3
        cm.append(m)
        times.append(np.datetime64(acquisition(seed, index, s)[0], "ns"))
        crs = loc.geo.epsg
    return {"s1": np.stack(s1), "s2": np.stack(l1c), "cloud": np.stack(cm), "time": times,
            "crs": crs, "id": f"{index:07d}"}  # fmt: skip


def _write_zarr_zip(path: Path, variables: dict[str, tuple[np.ndarray, list[str]]]) -> None:
    """Write arrays with xarray-style ``_ARRAY_DIMENSIONS`` into a zarr.zip, atomically."""
    import zarr
    from zarr.storage import ZipStore

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        store = ZipStore(tmp, mode="w")
        g = zarr.open_group(store, mode="w", zarr_format=2)
        for name, (arr, dims) in variables.items():
            chunks = arr.shape
            if dims[:2] == ["sample", "time"]:
                chunks = (1, 1, *arr.shape[2:])  # one chunk per sample and time stamp
            a = g.create_array(
                name,
                shape=arr.shape,
                dtype=arr.dtype,
                chunks=chunks,
                attributes={"_ARRAY_DIMENSIONS": dims},
            )
            a[...] = arr
        store.close()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_ssl4eo_s12_zarr(
    root: str | Path,
    n: int,
    seed: int,
    workers: int = 1,
    progress: bool = True,
    patch_size: int = NOL_PATCH,
    split: str = "train",
    samples_per_file: int = 64,
) -> Path:
    """Write ``n`` synthetic locations in the SSL4EO-S12 v1.1 zarr.zip layout.

    Files ``root/{split}/{S1GRD,S2L1C,S2L2A}/ssl4eos12_{split}_seasonal_data_NNNNNN.zarr.zip``
    hold ``samples_per_file`` locations each (the last file fewer).

    Args:
        root: output folder.
        n: number of locations.
        seed: world seed.
        workers: parallel processes (pixel generation).
        progress: show a progress bar.
        patch_size: patch side (264).
        split: split folder name.
        samples_per_file: locations per file (64 in the published data).

    Returns:
        ``root``.
    """
    _check(n, seed, workers, patch_size, 1)
    root = Path(root)
    base = root / split
    for f0 in range(0, n, samples_per_file):
        idx = list(range(f0, min(n, f0 + samples_per_file)))
        desc = f"synth ssl4eo-s12 v1.1 file {f0 // samples_per_file + 1}"
        locs = run_parallel(
            _v11_location, [(seed, i, patch_size) for i in idx], workers, progress, desc
        )
        name = f"ssl4eos12_{split}_seasonal_data_{f0 // samples_per_file + 1:06d}.zarr.zip"
        common = {
            "sample": (np.array([r["id"] for r in locs], dtype="<U7"), ["sample"]),
            "time": (np.arange(4, dtype=np.int64), ["time"]),
            "time_": (np.array([r["time"] for r in locs], dtype="datetime64[ns]"),
                      ["sample", "time"]),
            "crs": (np.array([r["crs"] for r in locs], dtype=np.int64), ["sample"]),
        }  # fmt: skip
        s2 = np.stack([r["s2"] for r in locs])  # [S, 4, 13, H, W]
        # round the reflectance first: DN + 1000 in float32 can land on .5 and round the
        # other way than the DN itself
        s2 = np.clip(np.rint(s2) + V11_S2_OFFSET, 0, 32767).astype(np.int16)
        cloud = (np.stack([r["cloud"] for r in locs]), ["sample", "time", "y", "x"])
        dims = ["sample", "time", "band", "y", "x"]
        _write_zarr_zip(base / V11_DIRS["s1"] / name, {
            **common,
            "band": (np.array(["vv", "vh"], dtype="<U2"), ["band"]),
            "bands": (np.stack([r["s1"] for r in locs]).astype(np.float16), dims),
        })  # fmt: skip
        _write_zarr_zip(base / V11_DIRS["L1C"] / name, {
            **common,
            "band": (np.array(S2_L1C_ORDER, dtype="<U3"), ["band"]),
            "bands": (s2, dims),
            "cloud_mask": cloud,
        })  # fmt: skip
        _write_zarr_zip(base / V11_DIRS["L2A"] / name, {
            **common,
            "band": (np.array(S2_L2A_ORDER, dtype="<U3"), ["band"]),
            "bands": (np.ascontiguousarray(s2[:, :, list(_L2A_IN_L1C)]), dims),
            "cloud_mask": cloud,
        })  # fmt: skip
    return root


# ---------------------------------------------------------------------------------------
# NoLDO-S12


def _nol_task(seed: int, root: str, index: int, size: int, geotiff: bool) -> dict[str, Any]:
    """Render one pretraining location (4 seasons), write its GeoTIFF form when ``geotiff``,
    and return its LMDB arrays."""
    world = synthetic_world(seed)
    r = Path(root)
    if geotiff:
        locs = _write_v10_location(world, r, index, size, ("s1", "s2c"))
    else:
        locs = [world.location(index, size=size, season=s) for s in range(4)]
    sid = f"{index:07d}"
    subs = [s2_product_name(acquisition(seed, index, s)[0], locs[s].geo.tile) for s in range(4)]
    rng = world.streams(index)["layout"]
    clean = np.stack([dw_labels(loc) for loc in locs])  # [4, H, W]
    noisy = np.stack([dynamic_world_noise(c, rng) for c in clean]).astype(np.uint8)
    for s, loc in enumerate(locs if geotiff else []):
        for kind, lab in (("mask", noisy[s]), ("mask_clean", clean[s])):
            write_geotiff(
                r / NOL_LABEL_DIRS[kind] / sid / subs[s] / "label.tif",
                lab,
                crs=loc.geo.crs,
                transform=loc.geo.transform(10),
            )
    s1 = np.stack([physical_to_uint8(loc.s1, *UINT8_S1_STATS) for loc in locs])
    s2 = np.stack([physical_to_uint8(loc.s2, *UINT8_S2_STATS) for loc in locs])
    return {"id": index, "subs": subs, "s1": s1, "s2": s2, "mask": noisy, "mask_clean": clean}


def _downstream_task(seed: int, root: str, index: int, size: int, split: str) -> str:
    """Write one SSL4EO-S12@DW / @OSM tile (GeoTIFF form); returns its name."""
    world = synthetic_world(seed)
    loc = world.location(index, size=size)
    geo = loc.geo
    t2, _ = acquisition(seed, index, loc.season)
    name = f"{geo.ulx / 1e5:.10f}_{geo.uly / 1e5:.10f}-{t2.strftime('%Y%m%d')}"
    rng = world.streams(index)["layout"]
    labels = {"dw": dw_labels(loc) + 1, "osm": osm_labels(loc) + 1}
    for kind, lab in labels.items():
        lab = lab.astype(np.uint8)
        lab[_unlabelled(rng, lab.shape, _UNLABELLED_COVER[kind])] = 0
        folder = Path(root) / f"{kind}_{split}"
        common = {"crs": geo.crs, "transform": geo.transform(10)}
        write_geotiff(folder / f"label_{kind}" / f"{kind}_{name}.tif", lab, **common)
        write_geotiff(folder / "image_s1" / f"s1_{name}.tif", loc.s1.astype(np.float32), **common)
        s2 = np.rint(np.clip(loc.s2, 0, 65535)).astype(np.uint16)
        write_geotiff(folder / "image_s2" / f"s2_{name}.tif", s2, **common)
    return name


def _downstream_lmdb(root: Path, kind: str, split: str, names: list[str]) -> None:
    """Build ``{kind}_{split}_lmdb`` from the GeoTIFF folder (the authors' own route)."""
    import rasterio

    folder = root / f"{kind}_{split}"
    label_kinds = ["dw", "osm"] if kind == "osm" else ["dw"]
    with rasterio.open(folder / "image_s2" / f"s2_{names[0]}.tif") as src:
        per = src.count * src.width * src.height * 2 * 3
    w = _LMDBWriter(root / f"{kind}_{split}_lmdb", _map_size(len(names), per))
    try:
        for i, name in enumerate(names):
            for m, dtype in (("s1", np.float32), ("s2", np.uint16)):
                with rasterio.open(folder / f"image_{m}" / f"{m}_{name}.tif") as src:
                    w.put(f"{m}_{i}", src.read().astype(dtype), f"{m}_{name}")
            for lk in label_kinds:
                src_folder = folder if lk == kind else root / f"dw_{split}"
                with rasterio.open(src_folder / f"label_{lk}" / f"{lk}_{name}.tif") as src:
                    w.put(f"{lk}_{i}", src.read(1).astype(np.uint8), f"{lk}_{name}")
    finally:
        w.close()


def write_noldo_s12(
    root: str | Path,
    n: int,
    seed: int,
    workers: int = 1,
    progress: bool = True,
    patch_size: int = NOL_PATCH,
    n_downstream: int | None = None,
    geotiff: bool = False,
) -> Path:
    """Write synthetic NoLDO-S12: the pretraining split and the downstream splits.

    Pretraining: locations ``0 … n-1``, 4 seasons, S1 + S2 L1C, noisy DW labels (~70 % pixel
    accuracy) and the clean ones, in the LMDB form (what the readers' ``format="auto"``
    reads); with ``geotiff`` also in the GeoTIFF form (the same data again: about twice the
    disk). Downstream: ``n_downstream`` further locations (default ``max(4, n // 4)``), one
    random season each, 3/4 ``train`` and 1/4 ``test`` (at least one), as ``dw_{split}_lmdb``
    and ``osm_{split}_lmdb`` (built from GeoTIFF folders, the authors' route; the folders are
    kept only with ``geotiff``; downstream tiles have ``patch_size`` pixels, not the real
    510 / 512).

    Args:
        root: output folder.
        n: number of pretraining locations.
        seed: world seed.
        workers: parallel processes.
        progress: show a progress bar.
        patch_size: patch side (264; a multiple of 6).
        n_downstream: number of downstream tiles.
        geotiff: also keep the GeoTIFF form of the pretraining and downstream splits.

    Returns:
        ``root``.
    """
    _check(n, seed, workers, patch_size, 6)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tasks = [(seed, str(root), i, patch_size, bool(geotiff)) for i in range(n)]
    recs = run_parallel(_nol_task, tasks, workers, progress, "synth noldo-s12")
    per = 4 * (2 + 13 + 2) * patch_size * patch_size + 4096
    writers = {k: _LMDBWriter(root / NOL_LMDB[k], _map_size(n, per)) for k in NOL_LMDB}
    try:
        for i, r in enumerate(recs):
            for k in NOL_LMDB:
                writers[k].put(str(i), np.ascontiguousarray(r[k]).astype(np.uint8), r["id"])
    finally:
        for w in writers.values():
            w.close()
    lines = ["ids,sub1,sub2,sub3,sub4"] + [f"{r['id']},{','.join(r['subs'])}" for r in recs]
    write_atomic(root / NOL_IDS_CSV, "\n".join(lines) + "\n")
    m = max(4, n // 4) if n_downstream is None else int(n_downstream)
    if m > 0:
        n_test = max(1, m // 4)
        splits = ["train"] * (m - n_test) + ["test"] * n_test
        tasks = [(seed, str(root), n + j, patch_size, splits[j]) for j in range(m)]
        names = run_parallel(
            _downstream_task, tasks, workers, progress, "synth noldo-s12 downstream"
        )
        for split in ("train", "test"):
            sel = [nm for nm, sp in zip(names, splits) if sp == split]
            for kind in ("dw", "osm"):
                _downstream_lmdb(root, kind, split, sel)
        if not geotiff:  # the LMDBs were built from the GeoTIFF folders: one form is kept
            for split in ("train", "test"):
                for kind in ("dw", "osm"):
                    shutil.rmtree(root / f"{kind}_{split}", ignore_errors=True)
    return root


# ---------------------------------------------------------------------------------------
# DFC2020


def _dfc_task(
    seed: int, root: str, index: int, size: int, roi: str, scene: int, patch: int
) -> None:
    loc = synthetic_world(seed).location(index, size=size)
    geo = loc.geo
    common = {"crs": geo.crs, "transform": geo.transform(10)}
    base = Path(root) / roi
    stem = f"{scene}_p{patch}"
    write_geotiff(
        base / f"s1_{scene}" / f"{roi}_s1_{stem}.tif", loc.s1.astype(np.float32), **common
    )
    s2 = np.rint(np.clip(loc.s2, 0, 65535)).astype(np.uint16)
    write_geotiff(base / f"s2_{scene}" / f"{roi}_s2_{stem}.tif", s2, **common)
    write_geotiff(base / f"dfc_{scene}" / f"{roi}_dfc_{stem}.tif", dfc_labels(loc), **common)


def write_dfc2020(
    root: str | Path,
    n: int,
    seed: int,
    workers: int = 1,
    progress: bool = True,
    patch_size: int = DFC_PATCH,
    patches_per_scene: int = 8,
) -> Path:
    """Write ``n`` synthetic patches in the DFC2020 (SEN12MS-style) layout.

    The first ``ceil(n / 2)`` patches go to ``ROIs0000_validation`` (the CromSS training
    set), the rest to ``ROIs0000_test``; ``patches_per_scene`` consecutive patches share a
    scene folder. One random season per patch.

    Returns:
        ``root``.
    """
    _check(n, seed, workers, patch_size, 1)
    root = Path(root)
    n_val = math.ceil(n / 2)
    tasks = []
    for i in range(n):
        roi = "ROIs0000_validation" if i < n_val else "ROIs0000_test"
        j = i if i < n_val else i - n_val
        tasks.append((seed, str(root), i, patch_size, roi, j // patches_per_scene, j + 1))
    run_parallel(_dfc_task, tasks, workers, progress, "synth dfc2020")
    return root


__all__ = [
    "BEN19_TO_DFC10",
    "BEN19_TO_DW9",
    "BEN19_TO_OSM13",
    "dfc_labels",
    "dw_labels",
    "osm_labels",
    "write_dfc2020",
    "write_noldo_s12",
    "write_ssl4eo_s12",
    "write_ssl4eo_s12_zarr",
]
