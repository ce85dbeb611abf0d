"""``rsfuse convert``: turn a dataset rsfuse reads into a fast store (:mod:`rsfuse.data.store`).

One pass over every split, ``--workers`` processes each writing whole shards, a progress
bar, and resumable: a shard is marked done only after its data are written, so a re-run
after a kill redoes only unfinished shards. The store's manifest is written last; a store
without it is refused by readers. ``--verify`` re-reads every sample from the source and
from the store and checks they are identical (``torch.equal``, labels / masks and metadata
too).

Datasets (:data:`DATASETS`, one registry entry each, see :class:`SourceDataset`):

* ``bigearthnet-v1``, ``bigearthnet-v2``: read by :class:`~rsfuse.data.store.StoreDataset`.
* ``dfc2020``, ``ssl4eo-s12-dw``, ``ssl4eo-s12-osm``, ``noldo-s12``: segmentation stores, one
  group of arrays per split, read by
  :class:`~rsfuse.data.store_segmentation.SegmentationStoreDataset`
  (``SegmentationDataModule(store=...)``).

Example::

    rsfuse convert --dataset bigearthnet-v2 --root data/BigEarthNet-v2 --out data/ben-v2.store
    rsfuse convert --dataset bigearthnet-v2 --root data/BigEarthNet-v2 --out data/ben-v2.store \
        --verify
    rsfuse convert --dataset noldo-s12 --root data/NoLDO-S12 --out data/noldo.store --workers 8
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from rsfuse.data import store as st
from rsfuse.data.bigearthnet import BigEarthNetBase, BigEarthNetV1, BigEarthNetV2
from rsfuse.errors import ConfigError, DataError
from rsfuse.io.atomic import clean_stale_folder
from rsfuse.io.paths import check_not_input, check_output_folder

log = logging.getLogger(__name__)

#: BigEarthNet splits (a segmentation entry lists its own in ``splits``).
SPLITS = ("train", "val", "test")
#: Options of a conversion besides the dataset (recorded in the plan and the manifest).
Options = dict[str, Any]
#: Words of a reader's DataError that mean "this split is not in the source" (skipped).
_ABSENT = ("has no samples", "not found", "no samples", "no ROIs", "no dfc_", "no 7-digit")


def _absent(e: DataError) -> bool:
    return any(w in str(e) for w in _ABSENT)


def _lossless(x: np.ndarray, dtype: str, what: str, sid: str) -> np.ndarray:
    """``x`` cast to ``dtype``, checked to round-trip exactly (a DataError otherwise)."""
    y = x.astype(dtype)
    if not np.array_equal(y.astype(x.dtype), x):
        kind = np.dtype(dtype)
        raise DataError(
            f"{what} values are not exactly representable as {kind.name} (integers in "
            f"[{np.iinfo(kind).min if kind.kind in 'iu' else '-inf'}, "
            f"{np.iinfo(kind).max if kind.kind in 'iu' else 'inf'}]); they cannot be stored "
            "losslessly",
            sample=sid,
        )
    return y


def _jsonable(x: Any) -> Any:
    """Metadata as plain JSON types (numpy scalars → Python, tuples → lists)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    return x


class SourceDataset:
    """A ``--dataset`` registry entry: how its source is read and how its store is laid out.

    A conversion asks the entry for the samples of every split (:meth:`plan`), the stored
    arrays (:meth:`layout`: one or more *parts*, each a group of arrays with a name prefix
    covering a contiguous range of the plan's rows), the stored values and metadata of one
    sample (:meth:`encode`), the index and manifest (:meth:`index`, :meth:`manifest`), and,
    for ``--verify``, the reader and store dataset to compare (:meth:`verify_reader`,
    :meth:`store_reader`, :meth:`compare`). Workers look entries up by name in
    :data:`DATASETS`, so tasks stay small and picklable.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    stats_name: ClassVar[str] = ""
    #: Splits of the source, in store order.
    splits: ClassVar[tuple[str, ...]] = ()

    def options(self, resampling: str, patch_size: int | None, format: str) -> Options:
        """The options this dataset's conversion depends on (checked against a resumed plan).

        Raises:
            ConfigError: an option this dataset does not support.
        """
        raise NotImplementedError

    def reader(self, root: str, split: str, opts: Options) -> Dataset:
        """The source reader a conversion reads split ``split`` with (every band / season).

        Raises:
            DataError: the split is absent or unreadable.
        """
        raise NotImplementedError

    def verify_reader(self, root: str, split: str, opts: Options) -> Dataset:
        """The reader ``--verify`` compares the store with (the user-facing defaults)."""
        return self.reader(root, split, opts)

    def plan(self, root: str, opts: Options) -> pd.DataFrame:
        """Rows ``id``, ``split``, ``pos`` (index in the split's reader), in store order.

        Raises:
            DataError: no split has samples.
        """
        frames = []
        for split in self.splits:
            try:
                r = self.reader(root, split, opts)
            except DataError as e:
                if _absent(e):
                    log.info("%s: no %r split under %s (%s)", self.name, split, root, e)
                    continue
                raise
            ids = list(r.sample_ids)  # type: ignore[attr-defined]
            frames.append(
                pd.DataFrame(
                    {"id": ids, "split": split, "pos": np.arange(len(ids), dtype=np.int64)}
                )
            )
        if not frames:
            raise DataError("the source has no samples in any split", path=root)
        return pd.concat(frames, ignore_index=True)

    def layout(self, root: str, opts: Options, rows: pd.DataFrame) -> list[dict[str, Any]]:
        """The store's parts: ``prefix``, ``split`` (or None), ``start``, ``n``, ``arrays``
        (``[{"name", "sample_shape", "dtype", "encoding"}]``, names with the prefix) and any
        dataset-specific fields."""
        raise NotImplementedError

    def encode(
        self, sample: dict[str, Any], part: dict[str, Any]
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The stored arrays (name without prefix → array) and metadata of one sample.

        Raises:
            DataError: values that cannot be stored losslessly, or a shape that differs from
                the part's, naming the sample.
        """
        raise NotImplementedError

    def index(self, rows: pd.DataFrame, meta: list[dict[str, Any]]) -> pd.DataFrame:
        """The store's ``index.parquet`` from the plan rows and each sample's metadata."""
        raise NotImplementedError

    def manifest(self, rows: pd.DataFrame, parts: list[dict[str, Any]]) -> dict[str, Any]:
        """Dataset-specific manifest fields."""
        return {}

    def store_reader(self, out: str, split: str) -> Dataset:
        """The store dataset ``--verify`` reads split ``split`` with."""
        raise NotImplementedError

    def compare(self, a: dict[str, Any], b: dict[str, Any]) -> list[str]:
        """Names of what differs between source sample ``a`` and store sample ``b``."""
        keys = sorted(k for k in set(a) | set(b) if k not in ("meta", "present"))
        problems = [
            k
            for k in keys
            if k not in a or k not in b or not torch.equal(torch.as_tensor(a[k]), b[k])
        ]
        if self._comparable_meta(a["meta"]) != b["meta"]:
            problems.append("meta")
        if a["present"] != b["present"]:
            problems.append("present")
        return problems

    def _comparable_meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        return meta


# --------------------------------------------------------------------------- BigEarthNet
class BigEarthNetSource(SourceDataset):
    """BigEarthNet v1 / v2: S2 L2A uint16 [12, 120, 120] (resampled to 10 m), S1 float32,
    multi-hot labels uint8 [19]; snow / cloud flags in the index (read by
    :class:`~rsfuse.data.store.StoreDataset`)."""

    kind: ClassVar[str] = "bigearthnet"
    splits: ClassVar[tuple[str, ...]] = SPLITS
    reader_class: ClassVar[type[BigEarthNetBase]] = BigEarthNetV2

    def options(self, resampling: str, patch_size: int | None, format: str) -> Options:
        if patch_size is not None or format != "auto":
            raise ConfigError(
                f"{self.name}: --patch-size / --format do not apply to BigEarthNet", "format"
            )
        return {"resampling": resampling}

    def reader(self, root: str, split: str, opts: Options, **kw: Any) -> BigEarthNetBase:
        kw.setdefault("include_snow", True)
        kw.setdefault("include_cloudy", True)
        return self.reader_class(
            root,
            split=split,
            modalities=("s1", "s2"),
            s2_bands="all",
            resampling=opts["resampling"],
            **kw,
        )

    def plan(self, root: str, opts: Options) -> pd.DataFrame:
        """Rows also hold ``snow`` and ``cloud`` (flags of the patch)."""
        frames = []
        for split in SPLITS:
            try:
                full = self.reader(root, split, opts)
            except DataError as e:
                if "has no samples" in str(e):
                    continue
                raise
            ids = full.sample_ids

            def kept(snow: bool, cloud: bool, split: str = split) -> set[str]:
                try:
                    r = self.reader(root, split, opts, include_snow=snow, include_cloudy=cloud)
                except DataError as e:
                    if "has no samples" in str(e):
                        return set()
                    raise
                return set(r.sample_ids)

            no_snow, no_cloud = kept(False, True), kept(True, False)
            frames.append(
                pd.DataFrame(
                    {
                        "id": ids,
                        "split": split,
                        "pos": np.arange(len(ids), dtype=np.int64),
                        "snow": [i not in no_snow for i in ids],
                        "cloud": [i not in no_cloud for i in ids],
                    }
                )
            )
        if not frames:
            raise DataError("the source has no samples in any split", path=root)
        return pd.concat(frames, ignore_index=True)

    def layout(self, root: str, opts: Options, rows: pd.DataFrame) -> list[dict[str, Any]]:
        arrays = [
            {"name": s.name, "sample_shape": list(s.sample_shape), "dtype": s.dtype}
            for s in st.bigearthnet_specs()
        ]
        return [{"prefix": "", "split": None, "start": 0, "n": len(rows), "arrays": arrays}]

    def encode(
        self, sample: dict[str, Any], part: dict[str, Any]
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        m = sample["meta"]
        arrays = {
            "s2": _lossless(sample["s2"].numpy(), "uint16", "S2", m["id"]),
            "s1": sample["s1"].numpy(),
            "label": sample["label"].numpy().astype(np.uint8),
        }
        meta = {
            "s1_id": m["s1_id"],
            "s2_id": m["s2_id"],
            "crs": m["crs"],
            "transform": list(m["transform"]),
        }
        return arrays, meta

    def index(self, rows: pd.DataFrame, meta: list[dict[str, Any]]) -> pd.DataFrame:
        index = rows[["id", "split", "snow", "cloud"]].copy()
        index["s1_id"] = [m["s1_id"] for m in meta]
        index["s2_id"] = [m["s2_id"] for m in meta]
        index["crs"] = [m["crs"] for m in meta]
        tr = np.array([m["transform"] for m in meta], dtype=np.float64).reshape(len(meta), 6)
        for c in range(6):
            index[f"t{c}"] = tr[:, c]
        return index

    def manifest(self, rows: pd.DataFrame, parts: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "splits": {s: int((rows["split"] == s).sum()) for s in SPLITS},
            "s2_bands": list(st.S2_STORED),
        }

    def store_reader(self, out: str, split: str) -> Dataset:
        return st.StoreDataset(out, split=split, include_snow=True, include_cloudy=True)


class BigEarthNetV1Source(BigEarthNetSource):
    name: ClassVar[str] = "bigearthnet-v1"
    stats_name: ClassVar[str] = BigEarthNetV1.stats_name
    reader_class: ClassVar[type[BigEarthNetBase]] = BigEarthNetV1


class BigEarthNetV2Source(BigEarthNetSource):
    name: ClassVar[str] = "bigearthnet-v2"
    stats_name: ClassVar[str] = BigEarthNetV2.stats_name
    reader_class: ClassVar[type[BigEarthNetBase]] = BigEarthNetV2


# --------------------------------------------------------------------------- segmentation
#: Stored-value encodings of a segmentation store's image arrays.
IDENTITY, SSL4EO_UINT8 = "identity", "ssl4eo-uint8"


class SegmentationSource(SourceDataset):
    """A segmentation dataset (:mod:`rsfuse.data.ssl4eo` readers): one part per split.

    Each split ``S`` is a group ``S/`` of arrays (shapes may differ between splits):
    ``s2`` uint16 [13, H, W] (L1C digital numbers, registry order; checked integral),
    ``s1`` float32 [2, H, W] (dB), ``mask`` uint8 [H, W] (class index, 255 = unlabelled),
    ``mask_clean`` where the source has it; seasonal splits have a leading season axis
    ([4, 13, H, W] …). NoLDO-S12's LMDB form keeps its stored uint8 images (encoding
    ``ssl4eo-uint8``; de-scaled on read as the reader does). The index holds ``id``,
    ``split``, ``row``, ``crs``, ``t0``-``t5`` and the reader's metadata as JSON (``meta``,
    without ``files``: the source paths are not part of a store sample).

    Subclasses set :attr:`splits`, :attr:`split_aliases`, :attr:`classes`,
    :attr:`dataset_name` and implement :meth:`reader`.
    """

    kind: ClassVar[str] = "segmentation"
    stats_name: ClassVar[str] = "ssl4eo-s12-l1c"
    #: Every split name the reader accepts → the store split it reads.
    split_aliases: ClassVar[dict[str, str]] = {}
    classes: ClassVar[tuple[str, ...]] = ()
    dataset_name: ClassVar[str] = ""
    #: Per-season metadata fields (lists over seasons per modality), selected on read.
    seasonal_meta: ClassVar[tuple[str, ...]] = ("products",)

    def options(self, resampling: str, patch_size: int | None, format: str) -> Options:
        if resampling != "bilinear":
            raise ConfigError(
                f"{self.name}: --resampling applies to BigEarthNet only (the readers of this "
                "dataset resample bilinearly)",
                key="resampling",
            )
        return {"patch_size": patch_size, "format": format}

    def _encodings(self, reader: Dataset) -> dict[str, str]:
        return {"s2": IDENTITY, "s1": IDENTITY}

    def layout(self, root: str, opts: Options, rows: pd.DataFrame) -> list[dict[str, Any]]:
        parts = []
        for split in dict.fromkeys(rows["split"]):
            sel = np.flatnonzero((rows["split"] == split).to_numpy())
            reader = self.reader(root, split, opts)
            first = reader[int(rows["pos"].iloc[sel[0]])]
            seasons = int(getattr(reader, "num_seasons", 1))
            enc = self._encodings(reader)
            s2_dtype = "uint8" if enc["s2"] == SSL4EO_UINT8 else "uint16"
            s1_dtype = "uint8" if enc["s1"] == SSL4EO_UINT8 else "float32"
            masks = [m for m in ("mask", "mask_clean") if m in first]
            prefix = f"{split}/"
            specs = st.segmentation_specs(
                tuple(first["mask"].shape[-2:]), seasons, s2_dtype, s1_dtype, masks, prefix
            )
            arrays = [
                {
                    "name": s.name,
                    "sample_shape": list(s.sample_shape),
                    "dtype": s.dtype,
                    "encoding": enc.get(s.name[len(prefix) :], "class"),
                }
                for s in specs
            ]
            parts.append(
                {
                    "prefix": prefix,
                    "split": split,
                    "start": int(sel[0]),
                    "n": len(sel),
                    "num_seasons": seasons,
                    "arrays": arrays,
                }
            )
            if not (np.diff(sel) == 1).all():
                raise DataError(f"split {split!r} rows are not contiguous in the plan")
        return parts

    def encode(
        self, sample: dict[str, Any], part: dict[str, Any]
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        sid = sample["meta"]["id"]
        prefix = part["prefix"]
        arrays = {}
        for spec in part["arrays"]:
            key = spec["name"][len(prefix) :]
            if key not in sample:
                raise DataError(
                    f"has no {key!r} although the first sample of split {part['split']!r} has",
                    sample=sid,
                )
            x = sample[key].numpy()
            if list(x.shape) != spec["sample_shape"]:
                raise DataError(
                    f"{key} has shape {list(x.shape)}; the store's split {part['split']!r} "
                    f"holds {spec['sample_shape']} (from its first sample)",
                    sample=sid,
                )
            arrays[key] = _lossless(x, spec["dtype"], key, sid)
        meta = {k: v for k, v in sample["meta"].items() if k not in ("files", "id", "season")}
        return arrays, _jsonable(meta)

    def index(self, rows: pd.DataFrame, meta: list[dict[str, Any]]) -> pd.DataFrame:
        index = rows[["id", "split"]].copy()
        index["row"] = rows["pos"].astype(np.int64)
        index["crs"] = [m.get("crs") for m in meta]
        tr = np.array([m.get("transform") or [np.nan] * 6 for m in meta], dtype=np.float64).reshape(
            len(meta), 6
        )
        for c in range(6):
            index[f"t{c}"] = tr[:, c]
        index["meta"] = [json.dumps(m, sort_keys=True) for m in meta]
        return index

    def manifest(self, rows: pd.DataFrame, parts: list[dict[str, Any]]) -> dict[str, Any]:
        from rsfuse.bands import S2_L1C_ORDER

        return {
            "kind": self.kind,
            "dataset_name": self.dataset_name,
            "classes": list(self.classes),
            "splits": {p["split"]: p["n"] for p in parts},
            "split_aliases": dict(self.split_aliases),
            "s2_bands": list(S2_L1C_ORDER),
            "parts": {
                p["split"]: {
                    "prefix": p["prefix"],
                    "num_seasons": p["num_seasons"],
                    "arrays": {
                        a["name"][len(p["prefix"]) :]: {
                            "dtype": a["dtype"],
                            "sample_shape": a["sample_shape"],
                            "encoding": a["encoding"],
                        }
                        for a in p["arrays"]
                    },
                }
                for p in parts
            },
        }

    def store_reader(self, out: str, split: str) -> Dataset:
        from rsfuse.data.store_segmentation import SegmentationStoreDataset

        return SegmentationStoreDataset(out, split=split, season="all", dataset=self.name)

    def _comparable_meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in meta.items() if k != "files"}


class DFC2020Source(SegmentationSource):
    """DFC2020 (:class:`~rsfuse.data.dfc2020.DFC2020Dataset`): splits ``validation``, ``test``."""

    name: ClassVar[str] = "dfc2020"
    splits: ClassVar[tuple[str, ...]] = ("validation", "test")
    split_aliases: ClassVar[dict[str, str]] = {
        "validation": "validation",
        "train": "validation",
        "val": "validation",
        "test": "test",
    }
    dataset_name: ClassVar[str] = "DFC2020"

    def options(self, resampling: str, patch_size: int | None, format: str) -> Options:
        if format != "auto":
            raise ConfigError(f"{self.name}: --format does not apply", key="format")
        return super().options(resampling, patch_size, format)

    @property
    def classes(self) -> tuple[str, ...]:  # type: ignore[override]
        from rsfuse.data.classes import DFC2020

        return DFC2020

    def reader(self, root: str, split: str, opts: Options) -> Dataset:
        from rsfuse.data.dfc2020 import DFC2020Dataset

        kw = {} if opts.get("patch_size") is None else {"patch_size": opts["patch_size"]}
        return DFC2020Dataset(root, split=split, **kw)


class DownstreamSource(SegmentationSource):
    """SSL4EO-S12@DW / @OSM (:mod:`rsfuse.data.noldo`): splits ``train``, ``test``."""

    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    split_aliases: ClassVar[dict[str, str]] = {"train": "train", "test": "test"}
    reader_name: ClassVar[str] = ""

    def options(self, resampling: str, patch_size: int | None, format: str) -> Options:
        if patch_size is not None:
            raise ConfigError(f"{self.name}: --patch-size does not apply", key="patch_size")
        return super().options(resampling, patch_size, format)

    @property
    def _cls(self) -> Any:
        from rsfuse.data import noldo

        return getattr(noldo, self.reader_name)

    @property
    def classes(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self._cls.classes)

    @property
    def dataset_name(self) -> str:  # type: ignore[override]
        return str(self._cls.dataset_name)

    def reader(self, root: str, split: str, opts: Options) -> Dataset:
        return self._cls(root, split=split, format=opts.get("format", "auto"))


class DWSource(DownstreamSource):
    name: ClassVar[str] = "ssl4eo-s12-dw"
    reader_name: ClassVar[str] = "SSL4EOS12DW"


class OSMSource(DownstreamSource):
    name: ClassVar[str] = "ssl4eo-s12-osm"
    reader_name: ClassVar[str] = "SSL4EOS12OSM"


class NoLDOSource(SegmentationSource):
    """NoLDO-S12: ``train`` = SSL4EO-S12@NoL (4 seasons, noisy ``mask``, ``mask_clean`` when
    present), ``test`` = SSL4EO-S12@DW ``test`` when present (as ``SegmentationDataModule``
    tests on it). The LMDB form's uint8 images are stored as they are."""

    name: ClassVar[str] = "noldo-s12"
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    split_aliases: ClassVar[dict[str, str]] = {"train": "train", "test": "test"}
    dataset_name: ClassVar[str] = "NoLDO-S12 (SSL4EO-S12@NoL)"

    @property
    def classes(self) -> tuple[str, ...]:  # type: ignore[override]
        from rsfuse.data.classes import DW9

        return DW9

    def _reader(self, root: str, split: str, opts: Options, scaling: str) -> Dataset:
        from rsfuse.data.noldo import SSL4EOS12DW, NoLDOS12

        fmt = opts.get("format", "auto")
        if split == "test":
            return SSL4EOS12DW(root, split="test", format=fmt)
        kw = {} if opts.get("patch_size") is None else {"patch_size": opts["patch_size"]}
        return NoLDOS12(root, format=fmt, season="all", scaling=scaling, **kw)

    def reader(self, root: str, split: str, opts: Options) -> Dataset:
        return self._reader(root, split, opts, "uint8")

    def verify_reader(self, root: str, split: str, opts: Options) -> Dataset:
        return self._reader(root, split, opts, "physical")

    def _encodings(self, reader: Dataset) -> dict[str, str]:
        from rsfuse.data.noldo import NoLDOS12

        if isinstance(reader, NoLDOS12) and reader.format == "lmdb":
            return {"s2": SSL4EO_UINT8, "s1": SSL4EO_UINT8}
        return super()._encodings(reader)


#: ``--dataset`` name → registry entry.
DATASETS: dict[str, SourceDataset] = {
    e.name: e
    for e in (
        BigEarthNetV1Source(),
        BigEarthNetV2Source(),
        DFC2020Source(),
        DWSource(),
        OSMSource(),
        NoLDOSource(),
    )
}


def _entry(dataset: str) -> SourceDataset:
    if dataset not in DATASETS:
        raise ConfigError(
            f"unknown dataset {dataset!r}; expected one of {list(DATASETS)}", key="dataset"
        )
    return DATASETS[dataset]


def plan(
    dataset: str,
    root: str | Path,
    resampling: str = "bilinear",
    patch_size: int | None = None,
    format: str = "auto",
) -> pd.DataFrame:
    """Every sample of every split of the source, in store order.

    Returns:
        One row per sample: ``id``, ``split``, ``pos`` (index in the split's reader; for
        BigEarthNet with snowy and cloudy patches included), and for BigEarthNet ``snow``,
        ``cloud``.

    Raises:
        ConfigError: unknown dataset or an option it does not take.
        DataError: the source has no samples or an unreadable index.
    """
    entry = _entry(dataset)
    return entry.plan(str(root), entry.options(resampling, patch_size, format))


# --------------------------------------------------------------------------- workers
_READERS: dict[tuple[Any, ...], Any] = {}


def _cached(key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
    if key not in _READERS:
        _READERS[key] = make()
    return _READERS[key]


def _opts_key(opts: Options) -> tuple[Any, ...]:
    return tuple(sorted(opts.items()))


def _write_part_shard(
    out: Path, k: int, lo: int, arrays: dict[str, np.ndarray], meta: list[dict[str, Any]]
) -> None:
    """Write rows ``[lo, lo + n)`` of the named arrays, then the shard's per-sample metadata
    (``.done/meta-<k>.json``), then, last, shard ``k``'s completion marker ``.done/<k>``: a
    marker always means data and metadata are both on disk."""
    import zarr

    group = zarr.open_group(str(out), mode="r+", zarr_format=3)
    # every chunk is written, also one equal to the fill value (an all-0 mask): the fast
    # reader treats a missing chunk as an error, never as zeros
    with zarr.config.set({"array.write_empty_chunks": True}):
        for name, block in arrays.items():
            group[name][lo : lo + len(block)] = block
    n = len(next(iter(arrays.values())))
    st.write_json(out / st.DONE_DIR / f"meta-{k}.json", meta)
    st.write_json(out / st.DONE_DIR / str(k), {"shard": k, "samples": n})


def _done_shards(out: Path, sizes: dict[int, int]) -> set[int]:
    """Shards whose marker *and* readable metadata (one entry per sample) exist.

    A run killed between the two writes of an older rsfuse (marker first) left a marker
    without metadata; such a shard, or one whose metadata is unreadable, is redone.
    """
    done = set()
    for k in st.done_shards(out):
        meta = out / st.DONE_DIR / f"meta-{k}.json"
        try:
            rows = json.loads(meta.read_text())
        except (OSError, ValueError):
            log.info("shard %d has a marker but no readable %s: redoing it", k, meta.name)
            continue
        if isinstance(rows, list) and len(rows) == sizes.get(k, -1):
            done.add(k)
    return done


def _convert_shard(task: tuple[Any, ...]) -> int:
    """Read the samples of shard ``k`` from the source and write the shard."""
    dataset, root, out, opts, k, part, lo, rows = task
    entry = DATASETS[dataset]
    n = len(rows)
    prefix = part["prefix"]
    arrays = {
        a["name"][len(prefix) :]: np.empty((n, *a["sample_shape"]), dtype=a["dtype"])
        for a in part["arrays"]
    }
    meta: list[dict[str, Any]] = []
    for j, (split, pos) in enumerate(rows):
        reader = _cached(
            ("src", dataset, root, split, _opts_key(opts)),
            lambda split=split: entry.reader(root, split, opts),
        )
        values, m = entry.encode(reader[pos], part)
        for name, x in values.items():
            arrays[name][j] = x
        meta.append(m)
    (Path(out) / st.DONE_DIR).mkdir(exist_ok=True)
    _write_part_shard(Path(out), k, lo, {prefix + name: a for name, a in arrays.items()}, meta)
    return n


def _verify_chunk(task: tuple[Any, ...]) -> list[str]:
    """Compare store and source samples of one split at the given positions."""
    dataset, root, out, opts, split, positions = task
    entry = DATASETS[dataset]
    src = _cached(
        ("verify", dataset, root, split, _opts_key(opts)),
        lambda: entry.verify_reader(root, split, opts),
    )
    dst = _cached(("store", dataset, out, split), lambda: entry.store_reader(out, split))
    bad = []
    for pos in positions:
        a = src[pos]
        try:
            b = dst[pos]
        except DataError as e:  # a corrupt store chunk: reported with the other differences
            bad.append(f"sample {a['meta']['id']}: store unreadable ({e})")
            continue
        problems = entry.compare(a, b)
        if problems:
            bad.append(f"sample {a['meta']['id']}: {', '.join(problems)} differ")
    return bad


def _watch_parent(parent: int, interval: float = 1.0) -> None:
    """Worker initializer: exit when the converting process is gone.

    A worker blocked on its task queue never notices that the main process died (killed,
    out of memory, session closed); without this it would linger, and with
    ``multiprocessing.Pool`` each would crash with ``BrokenPipeError`` on returning its
    result. The shard it was writing has no completion marker, so a re-run redoes it.
    """

    def watch() -> None:
        while True:
            time.sleep(interval)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(3)
            except PermissionError:  # pid reused by another user's process
                os._exit(3)

    threading.Thread(target=watch, name="rsfuse-parent-watch", daemon=True).start()


class _TerminatedError(Exception):
    """SIGTERM / SIGHUP received by the converting process."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _TerminatedError(signal.Signals(signum).name)


def _pool_map(
    fn: Any, tasks: list[Any], workers: int, total: int, desc: str, weight: Any
) -> list[Any]:
    """Run ``fn`` over ``tasks`` in ``workers`` processes with a progress bar.

    Uses :class:`concurrent.futures.ProcessPoolExecutor` on a ``forkserver`` context
    (``fork`` after zarr's event-loop thread started deadlocks). Unlike
    ``multiprocessing.Pool``, which waits forever for the result of a worker that died
    (killed by the OOM killer, a signal …), a dead worker raises here, the other workers
    are stopped and the error says to re-run (the conversion resumes). SIGTERM and SIGHUP
    stop the workers cleanly instead of orphaning them.

    Raises:
        DataError: a worker died, or the run was terminated by a signal.
    """
    results: list[Any] = [None] * len(tasks)
    bar = tqdm(total=total, desc=desc, unit="sample", smoothing=0.05)
    try:
        if workers <= 1 or len(tasks) <= 1:
            for i, t in enumerate(tasks):
                results[i] = fn(t)
                bar.update(weight(t))
            return results
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["rsfuse.data.convert"])
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                previous[sig] = signal.signal(sig, _raise_terminated)
        pool = ProcessPoolExecutor(
            max_workers=min(workers, len(tasks)),
            mp_context=ctx,
            initializer=_watch_parent,
            initargs=(os.getpid(),),
        )
        try:
            futures = {pool.submit(fn, t): i for i, t in enumerate(tasks)}
            for fut in as_completed(futures):
                i = futures[fut]
                results[i] = fut.result()
                bar.update(weight(tasks[i]))
        except BrokenProcessPool as e:
            raise DataError(
                f"a worker process died during {desc} ({e}); the finished shards are kept: "
                "run the same command again to resume"
            ) from e
        except _TerminatedError as e:
            # the pool's workers are this process's multiprocessing children (the public
            # view of them; ProcessPoolExecutor has no terminate before Python 3.14); their
            # unfinished shards have no marker and are redone on resume
            for proc in mp.active_children():
                proc.terminate()
            raise DataError(
                f"{desc} interrupted by {e}; the finished shards are kept: run the same "
                "command again to resume"
            ) from e
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        bar.close()
    return results


# --------------------------------------------------------------------------- API
def convert(
    dataset: str,
    root: str | Path,
    out: str | Path,
    *,
    resampling: str = "bilinear",
    shard_size: int = st.DEFAULT_SHARD_SIZE,
    workers: int = 1,
    overwrite: bool = False,
    patch_size: int | None = None,
    format: str = "auto",
) -> Path:
    """Convert a dataset into a store, resuming an unfinished conversion at ``out``.

    Args:
        dataset: a key of :data:`DATASETS`.
        root: source dataset root.
        out: local store folder.
        resampling: how S2 20 m / 60 m bands reach the 10 m grid (BigEarthNet; stored
            resampled).
        shard_size: samples per shard file.
        workers: parallel processes.
        overwrite: delete an existing, different store at ``out`` first.
        patch_size: raster side the source files must have (DFC2020, NoLDO-S12 GeoTIFF
            form; default: the reader's).
        format: NoLDO-S12 / SSL4EO-S12@DW / @OSM on-disk form: ``auto``, ``lmdb`` or
            ``geotiff``.

    Returns:
        The store folder.

    Raises:
        DataError: a missing or corrupt source file (naming it), values that cannot be
            stored losslessly (naming the sample), or ``out`` holds a different conversion.
        ConfigError: bad arguments or an unknown dataset.
    """
    entry = _entry(dataset)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}", key="workers")
    if shard_size < 1:
        raise ConfigError(f"shard_size must be >= 1, got {shard_size}", key="shard_size")
    if not Path(root).is_dir():
        raise DataError("dataset root folder not found", path=root)
    # never write into, onto or around the source (--overwrite deletes --out)
    check_output_folder(out, key="out")
    check_not_input([out], [root], key="out", replaces=True)
    opts = entry.options(resampling, patch_size, format)
    root_s, out_p = str(Path(root).resolve()), Path(out)
    rows = entry.plan(root_s, opts)
    want: dict[str, Any] = {
        "dataset": dataset,
        "root": root_s,
        "resampling": resampling,
        "shard_size": shard_size,
        "n": len(rows),
        "ids": rows["id"].tolist(),
    }
    if entry.kind != "bigearthnet":
        want["options"] = opts
        want["splits"] = rows["split"].tolist()
    plan_file = out_p / st.PLAN
    if out_p.exists() and plan_file.is_file():
        have = json.loads(plan_file.read_text())
        if {k: have.get(k) for k in want if k != "root"} != {
            k: v for k, v in want.items() if k != "root"
        }:
            if not overwrite:
                raise DataError(
                    "the folder holds a different conversion (dataset, samples, options "
                    "or shard size differ); pass --overwrite or choose another --out",
                    path=out_p,
                )
            shutil.rmtree(out_p)
    elif out_p.exists() and any(out_p.iterdir()):
        if not overwrite:
            raise DataError("output folder exists and is not an rsfuse store", path=out_p)
        shutil.rmtree(out_p)
    out_p.mkdir(parents=True, exist_ok=True)
    if (out_p / st.MANIFEST).is_file():
        log.info("store %s is already complete", out_p)
        return out_p
    if plan_file.is_file():
        # a plan written before stores had parts (BigEarthNet) has the one-part layout
        parts = json.loads(plan_file.read_text()).get("parts") or entry.layout(root_s, opts, rows)
    else:
        parts = entry.layout(root_s, opts, rows)
        for p in parts:
            specs = [
                st.ArraySpec(a["name"], tuple(a["sample_shape"]), a["dtype"]) for a in p["arrays"]
            ]
            st.create_arrays(out_p, p["n"], specs, shard_size)
        st.write_json(plan_file, {**want, "parts": parts})
    clean_stale_folder(out_p / st.DONE_DIR)  # temporary files of a killed run
    sizes = {}
    k = 0
    for p in parts:
        for lo in range(0, p["n"], shard_size):
            sizes[k] = min(lo + shard_size, p["n"]) - lo
            k += 1
    done = _done_shards(out_p, sizes)
    pairs = list(zip(rows["split"], rows["pos"].astype(int)))
    tasks, k = [], 0
    for p in parts:
        for lo in range(0, p["n"], shard_size):
            if k not in done:
                a = p["start"] + lo
                b = p["start"] + min(lo + shard_size, p["n"])
                tasks.append((dataset, root_s, str(out_p), opts, k, p, lo, pairs[a:b]))
            k += 1
    n_shards = k
    if done:
        log.info("resuming: %d of %d shards already done", len(done), n_shards)
    _pool_map(
        _convert_shard,
        tasks,
        workers,
        sum(len(t[-1]) for t in tasks),
        "converting",
        lambda t: len(t[-1]),
    )
    _finalize(out_p, rows, n_shards, entry, parts, sizes)
    return out_p


def _finalize(
    out: Path,
    rows: pd.DataFrame,
    n_shards: int,
    entry: SourceDataset,
    parts: list[dict[str, Any]],
    sizes: dict[int, int],
) -> None:
    """Write the index, then the manifest (last: it marks the store complete)."""
    missing = sorted(set(range(n_shards)) - _done_shards(out, sizes))
    if missing:
        raise DataError(
            f"shards {missing[:10]} were not written; run the same command again to resume",
            path=out,
        )
    meta: list[dict[str, Any]] = []
    for k in range(n_shards):
        meta += json.loads((out / st.DONE_DIR / f"meta-{k}.json").read_text())
    st.write_index(out, entry.index(rows, meta))
    plan_info = json.loads((out / st.PLAN).read_text())
    manifest = {
        "format": "rsfuse-store",
        "version": st.STORE_VERSION,
        "dataset": entry.name,
        "stats_name": entry.stats_name,
        "source_root": plan_info["root"],
        "resampling": plan_info["resampling"],
        "shard_size": plan_info["shard_size"],
        "num_samples": len(rows),
        "arrays": {
            a["name"]: {"dtype": a["dtype"], "sample_shape": list(a["sample_shape"])}
            for p in parts
            for a in p["arrays"]
        },
        **entry.manifest(rows, parts),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if "options" in plan_info:
        manifest["options"] = plan_info["options"]
    st.write_json(out / st.MANIFEST, manifest)


def verify(
    dataset: str, root: str | Path, out: str | Path, *, workers: int = 1, chunk: int = 64
) -> int:
    """Re-read every sample from source and store and check they are identical.

    Returns:
        The number of samples checked.

    Raises:
        ConfigError: unknown dataset.
        DataError: the store is incomplete or any sample differs (names the samples).
    """
    entry = _entry(dataset)
    manifest = st.read_manifest(str(out))
    if manifest["dataset"] != dataset:
        raise DataError(f"store holds {manifest['dataset']!r}, not {dataset!r}", path=out)
    plan_info = json.loads((Path(out) / st.PLAN).read_text())
    opts = plan_info.get("options") or {"resampling": manifest["resampling"]}
    root_s = str(Path(root).resolve())
    rows = entry.plan(root_s, opts)
    if rows["id"].tolist() != plan_info["ids"]:
        raise DataError("the source's samples differ from the store's", path=out)
    tasks = []
    for split in dict.fromkeys(rows["split"]):
        pos = rows.loc[rows["split"] == split, "pos"].astype(int).tolist()
        tasks += [
            (dataset, root_s, str(out), opts, split, pos[i : i + chunk])
            for i in range(0, len(pos), chunk)
        ]
    bad = [
        b
        for r in _pool_map(
            _verify_chunk, tasks, workers, len(rows), "verifying", lambda t: len(t[-1])
        )
        for b in r
    ]
    if bad:
        raise DataError(
            f"{len(bad)} samples differ from the source: {'; '.join(bad[:5])}", path=out
        )
    return len(rows)


def build_parser() -> argparse.ArgumentParser:
    """The ``rsfuse convert`` argument parser."""
    p = argparse.ArgumentParser(
        prog="rsfuse convert",
        description=(
            "Convert a dataset that rsfuse reads into a compressed, sharded store (zarr v3 "
            "with sharding; see docs/store.md) for fast random access. Resumable: run the "
            "same command again after an interruption and it completes the unfinished "
            "shards. The store is marked complete (rsfuse_store.json) only after its last "
            "write."
        ),
        epilog=(
            "example: rsfuse convert --dataset bigearthnet-v2 --root data/BigEarthNet-v2 "
            "--out data/ben-v2.store --workers 8 && rsfuse convert --dataset "
            "bigearthnet-v2 --root data/BigEarthNet-v2 --out data/ben-v2.store --verify"
        ),
    )
    p.add_argument(
        "--dataset",
        required=True,
        choices=list(DATASETS),
        help="the source dataset's layout: bigearthnet-v1 / bigearthnet-v2 (read with "
        "StoreDataset / BigEarthNetDataModule(store=...)); dfc2020 (splits validation, "
        "test), ssl4eo-s12-dw and ssl4eo-s12-osm (train, test), noldo-s12 (SSL4EO-S12@NoL "
        "as train, 4 seasons, noisy and, when present, clean masks; SSL4EO-S12@DW test as "
        "test when present) (read with SegmentationStoreDataset / "
        "SegmentationDataModule(store=...))",
    )
    p.add_argument("--root", required=True, help="source dataset root folder")
    p.add_argument("--out", required=True, help="store folder to write (local path)")
    p.add_argument(
        "--verify",
        action="store_true",
        help="do not convert: re-read every sample from source and store and "
        "check they are bit-identical",
    )
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument(
        "--resampling",
        default="bilinear",
        choices=["nearest", "bilinear", "cubic"],
        help="BigEarthNet: how S2 20 m / 60 m bands reach the 10 m grid (default bilinear, "
        "as the readers)",
    )
    p.add_argument(
        "--patch-size",
        type=int,
        default=None,
        help="dfc2020 / noldo-s12 (GeoTIFF form): raster side of the source files "
        "(default: the reader's, 256 / 264)",
    )
    p.add_argument(
        "--format",
        default="auto",
        choices=["auto", "lmdb", "geotiff"],
        help="noldo-s12 / ssl4eo-s12-dw / ssl4eo-s12-osm: on-disk form of the source "
        "(default auto: LMDB when present)",
    )
    p.add_argument(
        "--shard-size",
        type=int,
        default=st.DEFAULT_SHARD_SIZE,
        help=f"samples per shard file (default {st.DEFAULT_SHARD_SIZE})",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace a different store or folder at --out"
    )
    return p


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``rsfuse convert``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.verify:
        n = verify(args.dataset, args.root, args.out, workers=args.workers)
        print(f"verified {n} samples of {args.out}: identical to {args.root}")
        return
    out = convert(
        args.dataset,
        args.root,
        args.out,
        resampling=args.resampling,
        shard_size=args.shard_size,
        workers=args.workers,
        overwrite=args.overwrite,
        patch_size=args.patch_size,
        format=args.format,
    )
    m = st.read_manifest(str(out))
    print(f"wrote {m['num_samples']} samples to {out} ({m['splits']})")


__all__ = [
    "DATASETS",
    "SourceDataset",
    "build_parser",
    "convert",
    "main",
    "plan",
    "verify",
]


if __name__ == "__main__":
    main()
