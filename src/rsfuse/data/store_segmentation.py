"""Segmentation stores written by ``rsfuse convert`` (DFC2020, SSL4EO-S12@DW / @OSM, NoLDO-S12).

Layout (see ``docs/store.md``): the zarr v3 sharded format of :mod:`rsfuse.data.store`, one
group of arrays per split (``STORE/<split>/s2`` …; splits may differ in patch size):

============== ============================== =============================================
array          dtype, per sample              content
============== ============================== =============================================
``s2``         uint16 [13, H, W]              L1C digital numbers, registry band order
``s1``         float32 [2, H, W]              VV, VH in dB
``mask``       uint8 [H, W]                   class index, 255 = unlabelled
``mask_clean`` uint8 [H, W]                   noise-free labels (synthetic NoLDO-S12 only)
============== ============================== =============================================

Seasonal splits (NoLDO-S12 pretraining) add a leading season axis: ``[4, 13, H, W]``,
``[4, 2, H, W]``, ``[4, H, W]``; NoLDO-S12's LMDB form keeps its scaled uint8 images (encoding
``ssl4eo-uint8``), de-scaled on read exactly as :class:`~rsfuse.data.noldo.NoLDOS12` does.
``index.parquet`` holds per sample ``id``, ``split``, ``row`` (in its split's arrays), ``crs``,
``t0``-``t5`` and ``meta`` (the reader's metadata as JSON, without the source ``files``).

:class:`SegmentationStoreDataset` gives the samples of the GeoTIFF / LMDB readers
(:mod:`rsfuse.data.ssl4eo` contract: same arrays bit for bit, mask int64 with 255 kept, the
same season draw for ``season="random"`` with the same ``seed``), so
``SegmentationDataModule(store=...)`` switches a config to the store with one line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rsfuse.data.ssl4eo import SegmentationDatasetBase
from rsfuse.data.store import INDEX, ShardedArray, StoreFiles, read_manifest
from rsfuse.errors import ConfigError, DataError

#: Encoding of image arrays whose stored values are NoLDO-S12's scaled uint8.
SSL4EO_UINT8 = "ssl4eo-uint8"
_MASKS = ("mask", "mask_clean")


class SegmentationStoreDataset(SegmentationDatasetBase):
    """Random-access samples of a segmentation store, in the segmentation readers' contract.

    Args:
        root: store folder or fsspec URL.
        split: a split name the dataset's reader accepts (e.g. DFC2020 ``validation`` or its
            aliases ``train`` / ``val``; ``train`` / ``test`` for the others).
        modalities: non-empty subset of ``("s1", "s2")``.
        s2_bands: S2 L1C band subset name or list (channel order of ``s2``).
        season: ``"random"``, 0–3 or ``"all"`` (seasonal splits; ignored otherwise), drawn
            exactly as the reader does (see :class:`~rsfuse.data.ssl4eo.
            SegmentationDatasetBase`).
        scaling: ``physical`` or ``uint8``, as :class:`~rsfuse.data.noldo.NoLDOS12`; applies
            to ``ssl4eo-uint8`` arrays only (other stores hold physical values).
        seed: seed of the random season draw.
        on_error: ``raise`` or ``skip`` bad samples.
        check_finite: reject NaN/inf pixel values (as the readers).
        dataset: expected dataset name (``dfc2020`` …), or None to accept any.

    Raises:
        DataError: the store is missing, incomplete or unreadable, or has no such split.
        ConfigError: not a segmentation store, another dataset, an unknown split name, or
            bad modalities, bands, season or scaling.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        modalities: Sequence[str] = ("s1", "s2"),
        s2_bands: str | Sequence[str] = "all",
        season: int | str = "random",
        scaling: str = "physical",
        seed: int | None = None,
        on_error: str = "raise",
        check_finite: bool = True,
        dataset: str | None = None,
    ) -> None:
        super().__init__(modalities, s2_bands, "L1C", season, seed, on_error, check_finite)
        if scaling not in ("physical", "uint8"):
            raise ConfigError(
                f"scaling must be 'physical' or 'uint8', got {scaling!r}", key="scaling"
            )
        self.root = str(root)
        self.scaling = scaling
        self.manifest = read_manifest(self.root)
        self.files = StoreFiles(self.root)
        m = self.manifest
        if m.get("kind") != "segmentation":
            raise ConfigError(
                f"store {self.root} holds {m.get('dataset')!r}, not a segmentation dataset "
                "(read it with rsfuse.data.store.StoreDataset)",
                key="store",
            )
        if dataset is not None and m["dataset"] != dataset:
            raise ConfigError(
                f"store {self.root} holds {m['dataset']!r}, not {dataset!r}", key="store"
            )
        aliases: dict[str, str] = m["split_aliases"]
        if split not in aliases:
            raise ConfigError(
                f"unknown split {split!r} for {m['dataset']}; expected one of {list(aliases)}",
                key="split",
            )
        self.split = aliases[split]
        if self.split not in m["parts"]:
            raise DataError(
                f"split {split!r} is not in the store (it holds {list(m['parts'])})",
                path=self.files.path("rsfuse_store.json"),
            )
        part = m["parts"][self.split]
        self.classes = tuple(m["classes"])  # type: ignore[misc]
        self.num_seasons = int(part["num_seasons"])  # type: ignore[misc]
        self.stats_name = m.get("stats_name", "ssl4eo-s12-l1c")  # type: ignore[misc]
        self.dataset_name = m.get("dataset_name", m["dataset"])  # type: ignore[misc]
        self._prefix: str = part["prefix"]
        self._spec: dict[str, dict[str, Any]] = part["arrays"]
        stored = tuple(m["s2_bands"])
        self._band_index = [stored.index(b) for b in self.s2_band_names]
        self._masks = [k for k in _MASKS if k in self._spec]
        try:
            index = pd.read_parquet(
                self.files.path(INDEX), filesystem=self.files._fs if not self.files._local else None
            )
        except Exception as e:  # pyarrow raises many types
            raise DataError(f"cannot read store index: {e}", path=self.files.path(INDEX)) from e
        sub = index[index["split"].to_numpy() == self.split]
        if len(sub) == 0:
            raise DataError(f"split {split!r} has no samples", path=self.files.path(INDEX))
        # fork-friendly per-sample arrays (no per-item Python objects)
        self._ids = np.array([s.encode() for s in sub["id"]], dtype=np.bytes_)
        self._rows = sub["row"].to_numpy(dtype=np.int64)
        self._meta = np.array([s.encode() for s in sub["meta"]], dtype=np.bytes_)
        self._arrays: dict[str, ShardedArray] | None = None

    def _open(self) -> dict[str, ShardedArray]:
        if self._arrays is None:
            names = [*self.modalities, *self._masks]
            self._arrays = {n: ShardedArray(self.files, self._prefix + n) for n in names}
        return self._arrays

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = None  # reopened lazily in each worker
        return state

    def _all_bad_where(self) -> tuple[str, Path | None]:
        return f" of split {self.split!r} of store {self.root}", None

    def _read_arrays(self, i: int, seasons: list[int]) -> dict[str, Any]:
        from rsfuse.data.noldo import UINT8_S1_STATS, UINT8_S2_STATS, uint8_to_physical

        arrays = self._open()
        row = int(self._rows[i])
        sid = self.sample_id(i)
        seasonal = self.num_seasons > 1
        out: dict[str, Any] = {}
        for m in self.modalities:
            x = arrays[m].read(row, sid)
            x = x[seasons] if seasonal else x[None]
            if m == "s2":
                x = x[:, self._band_index]
            if self._spec[m].get("encoding") == SSL4EO_UINT8 and self.scaling == "physical":
                mean, std = UINT8_S1_STATS if m == "s1" else UINT8_S2_STATS
                if m == "s2":
                    mean = tuple(mean[j] for j in self._band_index)
                    std = tuple(std[j] for j in self._band_index)
                x = uint8_to_physical(x, mean, std)
            else:
                x = x.astype(np.float32)
            out[m] = x
        for k in self._masks:
            y = arrays[k].read(row, sid)
            out[k] = (y[seasons] if seasonal else y[None]).astype(np.int64)
        meta = json.loads(self._meta[i])
        if "transform" in meta and meta["transform"] is not None:
            meta["transform"] = tuple(meta["transform"])
        if seasonal and isinstance(meta.get("products"), dict):
            meta["products"] = {
                m: [v[s] for s in seasons]
                for m, v in meta["products"].items()
                if m in self.modalities
            }
        out["meta"] = meta
        return out


__all__ = ["SSL4EO_UINT8", "SegmentationStoreDataset"]
