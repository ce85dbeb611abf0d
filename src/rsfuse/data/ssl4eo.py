"""SSL4EO-S12 readers (v1.0 GeoTIFF folders and v1.1 zarr.zip files) and the shared base of
the seasonal / segmentation readers (:mod:`rsfuse.data.noldo`, :mod:`rsfuse.data.dfc2020`).

Samples follow :mod:`rsfuse.data.sample`:

============== ======================= ====================================================
key            type                    content
============== ======================= ====================================================
``s1``         float32 [2, H, W]       VV then VH backscatter in dB
``s2``         float32 [C, H, W]       reflectance x 10000, bands in registry order of the
                                       resolved ``s2_bands`` (L1C 13 bands, L2A 12)
``mask``       int64 [H, W]            class indices, 255 = unlabelled (labelled sets)
``mask_clean`` int64 [H, W]            noise-free labels, only where the files hold them
                                       (synthetic NoLDO-S12)
``present``    dict[str, bool]         ``{"s1": ..., "s2": ...}``
``season``     int64 scalar            season index 0–3 (seasonal sets)
``meta``       dict                    ``id``, ``season``, ``crs``, ``transform``, ``files``
============== ======================= ====================================================

With ``season="all"`` every image key gains a leading season axis: ``s1`` [4, 2, H, W],
``s2`` [4, C, H, W], ``mask`` [4, H, W], ``season`` int64 [4] = ``[0, 1, 2, 3]``.

**Season order.** Season ``k`` is the ``k``-th acquisition of a location in time. SSL4EO-S12
v1.0 names each season folder after its product, whose name holds the acquisition time
(``20200104T101021_…`` for S2, ``S1A_IW_GRDH_1SDV_20200104T…`` for S1); folders are sorted
by that time, never by directory-listing order. v1.1 orders the ``time`` axis by ``time_``.

**SSL4EO-S12 v1.0** (``{s1,s2c,s2a}/{7-digit id}/{4 product folders}/{band}.tif``; band files
named ``B1 … B8A … B12``, ``VV``, ``VH``): native 264 / 132 / 44 px for 10 / 20 / 60 m bands,
resampled to ``patch_size`` (264) while reading (``resampling``, bilinear by default).

**SSL4EO-S12 v1.1** (``{split}/{S1GRD,S2L1C,S2L2A}/*.zarr.zip``, 64 samples per file, variable
``bands`` (sample, time, band, y, x): S2 int16 digital numbers with the +1000 offset of ESA
processing baseline ≥ 04.00, S1 float16 dB; ``cloud_mask`` (sample, time, y, x) in the S2
files). Bands are picked by the ``band`` coordinate (``B01`` …, ``vv``, ``vh``), so the file's
band order does not matter. ``s2_offset`` (default 1000) is subtracted from S2.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor
from torch.utils.data import Dataset

from rsfuse.bands import BANDS, S1_ORDER, check_modalities
from rsfuse.bands import s2_bands as resolve_s2_bands
from rsfuse.data.classes import IGNORE_LABEL, integral_labels
from rsfuse.data.sample import Sample, check_same_crs, check_sample, check_unique_ids
from rsfuse.data.sample_ids import SampleIdArray
from rsfuse.data.skipping import SkipBadSamples
from rsfuse.errors import ConfigError, DataError
from rsfuse.io.geotiff import read_band_stack

log = logging.getLogger(__name__)

NUM_SEASONS = 4
SEASON_MODES: tuple[str, ...] = ("random", "all")
RESAMPLINGS: tuple[str, ...] = ("nearest", "bilinear", "cubic")
#: SSL4EO-S12 v1.0 modality folders.
V10_DIRS: dict[str, str] = {"s1": "s1", "L1C": "s2c", "L2A": "s2a"}
#: SSL4EO-S12 v1.1 modality folders.
V11_DIRS: dict[str, str] = {"s1": "S1GRD", "L1C": "S2L1C", "L2A": "S2L2A"}
#: Side of an SSL4EO-S12 patch on the 10 m grid.
PATCH_SIZE = 264
#: S2 digital-number offset of SSL4EO-S12 v1.1 (processing baseline ≥ 04.00).
V11_S2_OFFSET = 1000.0
#: Stored dtypes of the published GeoTIFF images (SSL4EO-S12 v1.0 and the GeoTIFF forms of
#: NoLDO-S12 and DFC2020): S2 reflectance x 10000 as uint16, S1 dB as float32.
S2_DTYPES: tuple[str, ...] = ("uint16",)
S1_DTYPES: tuple[str, ...] = ("float32",)
_TIME = re.compile(r"(\d{8}T\d{6})")


def file_band_name(band: str) -> str:
    """SSL4EO-S12 v1.0 band file stem: ``B01`` → ``B1``, ``B8A`` and ``VV`` unchanged."""
    if re.fullmatch(r"B0\d", band):
        return "B" + band[2]
    return band


def native_size(resolution: int, patch_size: int = PATCH_SIZE) -> int:
    """Native raster side of a band of ``resolution`` m for a ``patch_size`` 10 m patch."""
    return patch_size * 10 // resolution


def acquisition_key(name: str) -> tuple[str, str]:
    """Sort key of a product folder name: its first ``YYYYMMDDTHHMMSS`` stamp, then the name.

    Raises:
        DataError: the name holds no time stamp.
    """
    m = _TIME.search(name)
    if m is None:
        raise DataError(f"season folder name {name!r} holds no acquisition time YYYYMMDDTHHMMSS")
    return m.group(1), name


def check_season(season: int | str) -> int | str:
    """Validate a ``season`` argument: 0–3, ``"random"`` or ``"all"``.

    Raises:
        ConfigError: anything else.
    """
    if isinstance(season, str) and season in SEASON_MODES:
        return season
    is_int = isinstance(season, int | np.integer) and not isinstance(season, bool)
    if is_int and 0 <= int(season) < NUM_SEASONS:
        return int(season)
    raise ConfigError(f"season must be 0–3, 'random' or 'all', got {season!r}", key="season")


def _to_tensor(x: np.ndarray | None) -> Tensor | None:
    return None if x is None else torch.from_numpy(np.ascontiguousarray(x))


def _check_seasonal_sizes(sample: Sample, sid: str) -> None:
    """A ``season="all"`` sample: every image and mask has the same [T, …, H, W] extent."""
    keys = ("s1", "s2", "mask", "mask_clean", "cloud_mask")
    sizes = {k: tuple(sample[k].shape[-2:]) for k in keys if k in sample}
    seasons = {k: int(sample[k].shape[0]) for k in keys if k in sample}
    if len(set(sizes.values())) > 1 or len(set(seasons.values())) > 1:
        shapes = {k: tuple(sample[k].shape) for k in keys if k in sample}
        files = {
            k: v[0] if isinstance(v, list) and v else v
            for k, v in sample.get("meta", {}).get("files", {}).items()
        }
        read = f" (read from {files})" if files else ""
        raise DataError(f"shapes differ between keys: {shapes}{read}", sample=sid)
    first = {k: v[0] for k, v in sample.items() if k in ("s1", "s2", "mask")}
    check_sample(first, source=sid, check_finite=False)


class SegmentationDatasetBase(SampleIdArray, SkipBadSamples, Dataset[Sample]):
    """Shared logic of the seasonal and segmentation readers; use a subclass.

    Subclasses fill :attr:`_ids` (one entry per sample) and implement :meth:`_read_arrays`.

    Args:
        modalities: non-empty subset of ``("s1", "s2")``.
        s2_bands: S2 band subset name or list of band names (sets the channel order).
        s2_product: ``L1C`` (13 bands) or ``L2A`` (12 bands).
        season: ``"random"`` (one season per read), an int 0–3, or ``"all"`` (stacks).
            Ignored by single-date datasets (``num_seasons == 1``).
        seed: seed of the random season draw. ``None`` uses torch's global generator
            (seeded per DataLoader worker by PyTorch, so workers differ and runs repeat
            under ``torch.manual_seed``); an int gives each process its own ``numpy``
            generator seeded with ``(seed, worker id, torch's worker seed)``: reproducible
            in the main process, and in workers under ``torch.manual_seed``, with new
            draws every epoch.
        on_error: ``raise`` a DataError on a bad sample, or ``skip`` it (logged, recorded in
            :attr:`skipped`) and return the next good one.
        check_finite: reject NaN/inf pixel values.

    Raises:
        ConfigError: bad modalities, bands, product, season or on_error.
    """

    classes: ClassVar[tuple[str, ...]] = ()
    num_seasons: ClassVar[int] = NUM_SEASONS
    stats_name: ClassVar[str] = "ssl4eo-s12-l1c"
    dataset_name: ClassVar[str] = ""
    #: Plot title of the ``mask`` panel (what the labels are).
    mask_title: ClassVar[str] = "labels"
    #: Title of the ``mask_clean`` panel.
    clean_mask_title: ClassVar[str] = "clean labels (noise-free reference)"

    def __init__(
        self,
        modalities: Sequence[str] = ("s1", "s2"),
        s2_bands: str | Sequence[str] = "all",
        s2_product: str = "L1C",
        season: int | str = "random",
        seed: int | None = None,
        on_error: str = "raise",
        check_finite: bool = True,
    ) -> None:
        if isinstance(modalities, str):
            modalities = (modalities,)
        self.modalities: tuple[str, ...] = check_modalities(modalities)
        self.s2_product = s2_product
        self.s2_band_names: tuple[str, ...] = resolve_s2_bands(s2_bands, s2_product)
        self.season = check_season(season)
        self._init_skipping(on_error)
        self.check_finite = bool(check_finite)
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self._rng_pid: tuple[int, int] | None = None
        self._ids: np.ndarray = np.array([], dtype=np.bytes_)

    # ----------------------------------------------------------------- subclass hooks
    def _read_arrays(self, i: int, seasons: list[int]) -> dict[str, Any]:
        """Arrays of sample ``i`` for ``seasons``.

        Returns:
            dict with ``s1`` float32 [T, 2, H, W], ``s2`` float32 [T, C, H, W] (for the
            requested modalities), optionally ``mask`` / ``mask_clean`` int64 [T, H, W] with
            255 = unlabelled, and ``meta`` (a dict).
        """
        raise NotImplementedError

    # ----------------------------------------------------------------- helpers
    @property
    def num_classes(self) -> int:
        """Number of classes of ``mask`` (0 for unlabelled datasets)."""
        return len(self.classes)

    def _generator(self) -> np.random.Generator:
        info = torch.utils.data.get_worker_info()
        wid = info.id if info is not None else -1
        key = (os.getpid(), wid)
        if self._rng is None or self._rng_pid != key:
            # in a worker, torch's per-iterator worker seed makes every epoch draw anew
            wseed = info.seed % (1 << 63) if info is not None else 0
            self._rng = np.random.default_rng([int(self.seed or 0), wid + 1, wseed])
            self._rng_pid = key
        return self._rng

    def _seasons(self) -> list[int]:
        if self.num_seasons == 1:
            return [0]
        if self.season == "all":
            return list(range(self.num_seasons))
        if self.season == "random":
            if self.seed is None:
                return [int(torch.randint(self.num_seasons, (1,)).item())]
            return [int(self._generator().integers(self.num_seasons))]
        return [int(self.season)]

    def _check_mask(self, mask: np.ndarray, source: str) -> np.ndarray:
        m = integral_labels(mask, source, what="mask")
        bad = (m >= len(self.classes)) & (m != IGNORE_LABEL) | (m < 0)
        if bad.any():
            vals = sorted({int(v) for v in m[bad].ravel()[:1000]})[:10]
            raise DataError(
                f"mask values {vals} outside the {len(self.classes)} classes and not "
                f"{IGNORE_LABEL}",
                path=source,
            )
        return m

    def _finite(self, x: np.ndarray, what: str, source: str | Path) -> None:
        if self.check_finite and not np.isfinite(x).all():
            n = int((~np.isfinite(x)).sum())
            raise DataError(f"{what} has {n} NaN/inf pixel values", path=source)

    def _read(self, i: int) -> Sample:
        sid = self.sample_id(i)
        seasons = self._seasons()
        try:
            arrays = self._read_arrays(i, seasons)
        except DataError as e:
            if e.sample is not None:
                raise
            err = DataError(str(e), sample=sid)
            err.path = e.path
            raise err from e
        single = self.season != "all" or self.num_seasons == 1
        sample: Sample = {}
        for key in ("s1", "s2", "mask", "mask_clean", "cloud_mask"):
            if key in arrays and arrays[key] is not None:
                x = arrays[key]
                sample[key] = _to_tensor(x[0] if single else x)
        sample["present"] = {m: m in sample for m in ("s1", "s2")}
        meta = dict(arrays.get("meta", {}))
        meta["id"] = sid
        if self.num_seasons > 1:
            if single:
                sample["season"] = torch.tensor(seasons[0], dtype=torch.int64)
                meta["season"] = seasons[0]
            else:
                sample["season"] = torch.tensor(seasons, dtype=torch.int64)
                meta["season"] = list(seasons)
        sample["meta"] = meta
        if single:
            check_sample(sample, source=sid, check_finite=self.check_finite)
        else:
            _check_seasonal_sizes(sample, sid)
        return sample

    # ----------------------------------------------------------------- plotting
    def plot(
        self,
        sample: Sample,
        prediction: Tensor | np.ndarray | None = None,
        show_titles: bool = True,
    ) -> Figure:
        """Plot a sample: S2 true colour, S1 false colour, the mask(s) with a class legend.

        S2 shows B04, B03, B02 with one stretch shared by the three bands, computed on the
        clear pixels (the sample's ``cloud_mask`` and very bright pixels left out), else
        its first band in grey; S1 shows R = VV, G = VH, B = VV − VH over fixed dB ranges
        (:mod:`rsfuse.data.composites`). Classes take their nomenclature's colours
        (:mod:`rsfuse.data.palettes`; the same as in ``samples.png``, ``rsfuse predict``'s
        colour table and quick-look). The title names the sample, its season and what the
        mask is (:attr:`mask_title`: e.g. Dynamic World *noisy* labels). A
        ``season="all"`` sample shows its first season.

        Args:
            sample: a sample of this dataset (not a batch).
            prediction: optional int [H, W] class map or [K, H, W] scores (argmax).
            show_titles: add panel titles and the figure title.

        Returns:
            The figure.
        """
        from rsfuse.data.composites import panel_figure, sample_composites
        from rsfuse.data.palettes import class_legend, colourise

        def first(x: Any, ndim: int) -> np.ndarray:
            a = np.asarray(x)
            return a[0] if a.ndim > ndim else a

        cloud = first(sample["cloud_mask"], 2) if "cloud_mask" in sample else None
        s2 = first(sample["s2"], 3) if "s2" in sample else None
        s1 = first(sample["s1"], 3) if "s1" in sample else None
        panels: list[tuple[str, np.ndarray]] = sample_composites(
            s2, list(self.s2_band_names), s1, cloud
        )
        masks: list[np.ndarray] = []
        for key, title in (("mask", self.mask_title), ("mask_clean", self.clean_mask_title)):
            if key in sample:
                masks.append(first(sample[key], 2).astype(np.int64))
                panels.append((title, colourise(masks[-1], self.classes)))
        if prediction is not None:
            p = np.asarray(prediction)
            masks.append((p.argmax(0) if p.ndim == 3 else p).astype(np.int64))
            panels.append(("prediction", colourise(masks[-1], self.classes)))
        legend = bool(self.classes) and bool(masks)
        fig = panel_figure(panels, 3.3, 2.4 if legend else 0.0, show_titles)
        if legend:
            seen = np.unique(np.concatenate([m.ravel() for m in masks]))
            present = [int(v) for v in seen if 0 <= v < len(self.classes)]
            handles = class_legend(self.classes, bool((seen == IGNORE_LABEL).any()), present)
            fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
        if show_titles:
            fig.suptitle(self._plot_title(sample), fontsize=10)
        return fig

    def _plot_title(self, sample: Sample) -> str:
        """``dataset id, season k of T (acquired YYYY-MM-DD)``."""
        meta = sample.get("meta", {})
        parts = [f"{self.dataset_name} {meta.get('id', '')}".strip()]
        season = meta.get("season")
        if isinstance(season, list):
            season = season[0] if season else None
        if season is not None and self.num_seasons > 1:
            text = f"season index {int(season)} (of {self.num_seasons})"
            products = meta.get("products", {})
            names = next(iter(products.values()), []) if isinstance(products, dict) else []
            m = _TIME.search(str(names[0])) if names else None
            if m:
                t = m.group(1)
                text += f", acquired {t[:4]}-{t[4:6]}-{t[6:8]}"
            parts.append(text)
        return ", ".join(parts)


# ---------------------------------------------------------------------------------------
# SSL4EO-S12 v1.0


class SSL4EOS12(SegmentationDatasetBase):
    """SSL4EO-S12 v1.0 (Wang et al. 2023): GeoTIFF folders, 4 seasons, no labels.

    Layout: ``root/{s1,s2c,s2a}/{7-digit id}/{product folder per season}/{band}.tif``, band
    files ``B1 … B12, B8A`` (S2), ``VV``, ``VH`` (S1). Sample ids are the 7-digit folder
    names present in the first requested modality's folder, sorted. Season folders are
    ordered by the acquisition time in their names (see the module docstring), S1 season
    ``k`` pairs with S2 season ``k``.

    Args:
        root: dataset root.
        patch_size: side of the 10 m grid (264); 20 m / 60 m files must be
            ``patch_size / 2`` / ``patch_size / 6`` and are resampled to ``patch_size``.
        resampling: ``nearest``, ``bilinear`` or ``cubic``.
        **kwargs: see :class:`SegmentationDatasetBase` (``s2_product`` picks ``s2c``/``s2a``).

    Raises:
        DataError: missing root or modality folder, or no samples.
    """

    dataset_name: ClassVar[str] = "SSL4EO-S12"

    def __init__(
        self,
        root: str | Path,
        modalities: Sequence[str] = ("s1", "s2"),
        s2_bands: str | Sequence[str] = "all",
        s2_product: str = "L1C",
        season: int | str = "random",
        patch_size: int = PATCH_SIZE,
        resampling: str = "bilinear",
        seed: int | None = None,
        on_error: str = "raise",
        check_finite: bool = True,
    ) -> None:
        super().__init__(modalities, s2_bands, s2_product, season, seed, on_error, check_finite)
        if resampling not in RESAMPLINGS:
            raise ConfigError(
                f"unknown resampling {resampling!r}; expected one of {list(RESAMPLINGS)}",
                key="resampling",
            )
        if patch_size < 6 or patch_size % 6:
            raise ConfigError(
                f"patch_size must be a positive multiple of 6, got {patch_size}", key="patch_size"
            )
        self.stats_name = "ssl4eo-s12-l1c" if s2_product == "L1C" else "ssl4eo-s12-l2a"
        self.root = Path(root)
        self.patch_size = int(patch_size)
        self.resampling = resampling
        if not self.root.is_dir():
            raise DataError("dataset root folder not found", path=self.root)
        dirs = {m: self.root / self._dir(m) for m in self.modalities}
        for d in dirs.values():
            if not d.is_dir():
                raise DataError("modality folder not found", path=d)
        # every location of any requested modality: one without its S1 (or S2) folder is a
        # bad sample (reading it names the missing folder), never silently left out
        found: set[str] = set()
        for d in dirs.values():
            found.update(p.name for p in d.iterdir() if p.is_dir() and p.name.isdigit())
        ids = sorted(found)
        if not ids:
            raise DataError("no 7-digit location folders", path=dirs[self.modalities[0]])
        self._ids = np.array([s.encode() for s in ids], dtype=np.bytes_)

    def _dir(self, modality: str) -> str:
        return V10_DIRS["s1" if modality == "s1" else self.s2_product]

    def season_folders(self, i: int, modality: str) -> list[Path]:
        """The 4 product folders of sample ``i`` for ``modality``, in season order.

        Raises:
            DataError: the location folder is missing or has not exactly 4 season folders.
        """
        loc = self.root / self._dir(modality) / self.sample_id(i)
        if not loc.is_dir():
            raise DataError("location folder not found", path=loc)
        subs = [p for p in loc.iterdir() if p.is_dir()]
        if len(subs) != self.num_seasons:
            raise DataError(
                f"expected {self.num_seasons} season folders, found {len(subs)}", path=loc
            )
        try:
            return sorted(subs, key=lambda p: acquisition_key(p.name))
        except DataError as e:
            raise DataError(str(e), path=loc) from e

    def _read_stack(
        self,
        folder: Path,
        bands: Sequence[str],
        dtypes: tuple[str, ...],
        crs: list[tuple[Path, str | None]],
    ) -> tuple[np.ndarray, dict[str, Any], list[str]]:
        size = self.patch_size
        paths = [folder / f"{file_band_name(band)}.tif" for band in bands]
        native = [(p, native_size(BANDS[band].resolution, size)) for p, band in zip(paths, bands)]
        out, profiles = read_band_stack(
            native, size, resample=self.resampling, check_finite=self.check_finite, dtypes=dtypes
        )
        crs.extend((path, profile["crs"]) for path, profile in zip(paths, profiles))
        first = profiles[0] if profiles else None
        grid = {"crs": first["crs"], "transform": first["grid_transform"]} if first else {}
        return out, grid, [str(p) for p in paths]

    def _read_arrays(self, i: int, seasons: list[int]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        meta: dict[str, Any] = {"files": {}, "products": {}}
        crs: list[tuple[Path, str | None]] = []
        for m in self.modalities:
            folders = self.season_folders(i, m)
            bands = S1_ORDER if m == "s1" else self.s2_band_names
            dtypes = S1_DTYPES if m == "s1" else S2_DTYPES
            stacks = []
            for s in seasons:
                x, grid, files = self._read_stack(folders[s], bands, dtypes, crs)
                stacks.append(x)
                meta["files"].setdefault(m, []).extend(files)
                meta["products"].setdefault(m, []).append(folders[s].name)
                if "crs" not in meta or m == "s2":
                    meta.update(grid)
            out[m] = np.stack(stacks)
        check_same_crs(crs)
        out["meta"] = meta
        return out


# ---------------------------------------------------------------------------------------
# SSL4EO-S12 v1.1


def _open_zarr_group(path: Path) -> Any:
    """Open a zarr.zip file read-only (zarr v2 or v3 format).

    Raises:
        DataError: missing or corrupt file.
    """
    import zarr
    from zarr.storage import ZipStore

    if not path.is_file():
        raise DataError("zarr.zip file not found", path=path)
    try:
        store = ZipStore(path, mode="r")
        return zarr.open_group(store, mode="r")
    except Exception as e:
        raise DataError(
            f"cannot open zarr.zip (corrupt?): {type(e).__name__}: {e}", path=path
        ) from e


def _zarr_read(group: Any, name: str, path: Path, index: tuple = ()) -> np.ndarray:
    try:
        arr = group[name]
    except KeyError as e:
        raise DataError(f"zarr.zip has no variable {name!r}", path=path) from e
    try:
        return np.asarray(arr[index] if index else arr[...])
    except Exception as e:
        raise DataError(f"cannot read variable {name!r}: {type(e).__name__}: {e}", path=path) from e


def _epsg(value: Any, path: Path) -> str:
    """``EPSG:<code>`` of a ``crs`` value: an integer code, or a string ``"32633"`` /
    ``"EPSG:32633"``.

    Raises:
        DataError: anything else, naming the file.
    """
    if isinstance(value, np.ndarray) and value.size != 1:
        raise DataError(f"variable 'crs' has shape {value.shape} per sample, not one code", path)
    v = value.item() if isinstance(value, np.ndarray | np.generic) else value
    if isinstance(v, bytes):
        v = v.decode(errors="replace")
    if isinstance(v, str):
        m = re.fullmatch(r"\s*(?:EPSG:)?(\d{4,6})\s*", v, flags=re.IGNORECASE)
        if m:
            return f"EPSG:{int(m.group(1))}"
    else:
        whole = isinstance(v, int | np.integer) and not isinstance(v, bool)
        whole |= isinstance(v, float) and v.is_integer()
        if whole and 1024 <= v <= 999999:
            return f"EPSG:{int(v)}"
    raise DataError(f"variable 'crs' holds {str(v)[:40]!r}, not an EPSG code", path=path)


class SSL4EOS12Zarr(SegmentationDatasetBase):
    """SSL4EO-S12 v1.1 (Blumenstiel et al. 2025): zarr.zip files of 64 samples x 4 times.

    Layout: ``root/{split}/{S1GRD,S2L1C,S2L2A}/<name>.zarr.zip`` with the same file names
    (and the same sample order) in every modality folder. Each file holds ``bands``
    (sample, time, band, y, x) with a ``band`` coordinate, ``sample`` ids, optionally
    ``time_`` (sample, time) datetimes, ``crs`` (sample) EPSG codes and, in S2 files,
    ``cloud_mask`` (sample, time, y, x).

    Args:
        root: dataset root (holding the split folders).
        split: split folder name (``train`` or ``val``).
        s2_offset: subtracted from S2 digital numbers (1000: v1.1's processing-baseline
            offset; 0 to keep the stored values).
        return_cloud_mask: add ``cloud_mask`` int64 [H, W] (or [4, H, W]) from the S2 file.
        **kwargs: see :class:`SegmentationDatasetBase`.

    Raises:
        DataError: missing folders or files, a file without ``bands``/``sample``, or
            modality files that disagree on their samples.
    """

    dataset_name: ClassVar[str] = "SSL4EO-S12 v1.1"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        modalities: Sequence[str] = ("s1", "s2"),
        s2_bands: str | Sequence[str] = "all",
        s2_product: str = "L1C",
        season: int | str = "random",
        s2_offset: float = V11_S2_OFFSET,
        return_cloud_mask: bool = False,
        seed: int | None = None,
        on_error: str = "raise",
        check_finite: bool = True,
    ) -> None:
        super().__init__(modalities, s2_bands, s2_product, season, seed, on_error, check_finite)
        self.stats_name = "ssl4eo-s12-l1c" if s2_product == "L1C" else "ssl4eo-s12-l2a"
        self.root = Path(root)
        self.split = split
        self.s2_offset = float(s2_offset)
        self.return_cloud_mask = bool(return_cloud_mask)
        base = self.root / split
        if not base.is_dir():
            raise DataError(f"split folder {split!r} not found", path=base)
        self._dirs = {
            m: base / V11_DIRS["s1" if m == "s1" else s2_product] for m in self.modalities
        }
        for d in self._dirs.values():
            if not d.is_dir():
                raise DataError("modality folder not found", path=d)
        first = self._dirs[self.modalities[0]]
        self.files: list[str] = sorted(p.name for p in first.glob("*.zarr.zip"))
        if not self.files:
            raise DataError("no *.zarr.zip files", path=first)
        for d in self._dirs.values():
            # a file present for one sensor only would silently drop (or fail) 64 samples
            other = sorted(p.name for p in d.glob("*.zarr.zip"))
            if other != self.files:
                lone = sorted(set(self.files) ^ set(other))
                where = d if lone[0] not in other else first
                raise DataError(
                    f"the {', '.join(self._dirs)} folders hold different *.zarr.zip files; "
                    f"{lone[0]} is missing here ({len(lone)} file(s) in one folder only)",
                    path=where,
                )
        ids: list[str] = []
        pos: list[tuple[int, int]] = []
        for f, name in enumerate(self.files):
            path = first / name
            samples = _zarr_read(_open_zarr_group(path), "sample", path)
            ids += [str(s) for s in samples]
            pos += [(f, k) for k in range(len(samples))]
        check_unique_ids(ids, first, what="sample")
        self._ids = np.array([s.encode() for s in ids], dtype=np.bytes_)
        self._pos = np.asarray(pos, dtype=np.int64).reshape(-1, 2)
        self._groups: dict[Path, Any] = {}
        self._groups_pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_groups"] = {}  # open zip handles stay in their process
        return state

    def _group(self, path: Path) -> Any:
        if self._groups_pid != os.getpid():  # a forked worker opens its own handles
            self._groups, self._groups_pid = {}, os.getpid()
        if path not in self._groups:
            self._groups[path] = _open_zarr_group(path)
        return self._groups[path]

    def _time_order(self, g: Any, path: Path, k: int) -> np.ndarray:
        if "time_" not in g:
            return np.arange(self.num_seasons)
        t = _zarr_read(g, "time_", path, (k,))
        return np.argsort(t, kind="stable")

    def _read_arrays(self, i: int, seasons: list[int]) -> dict[str, Any]:
        f, k = (int(v) for v in self._pos[i])
        out: dict[str, Any] = {}
        meta: dict[str, Any] = {"files": {}, "sample_index": k}
        sid = self.sample_id(i)
        for m in self.modalities:
            path = self._dirs[m] / self.files[f]
            g = self._group(path)
            samples = _zarr_read(g, "sample", path)
            if k >= len(samples) or str(samples[k]) != sid:
                raise DataError(f"sample {k} of this file is not {sid!r}", path=path)
            names = [str(b).upper() for b in _zarr_read(g, "band", path)]
            want = [b.upper() for b in (S1_ORDER if m == "s1" else self.s2_band_names)]
            missing = [b for b in want if b not in names]
            if missing:
                raise DataError(f"bands {missing} not in the file's bands {names}", path=path)
            x = _zarr_read(g, "bands", path, (k,))  # [T, C, H, W]
            if x.ndim != 4 or x.shape[0] != self.num_seasons or x.shape[1] != len(names):
                raise DataError(
                    f"bands of sample {k} have shape {x.shape}, expected "
                    f"({self.num_seasons}, {len(names)}, H, W)",
                    path=path,
                )
            order = self._time_order(g, path, k)
            t = [int(order[s]) for s in seasons]
            x = x[t][:, [names.index(b) for b in want]].astype(np.float32)  # [T', C, H, W]
            if m == "s2":
                x -= np.float32(self.s2_offset)
                if self.return_cloud_mask:
                    cm = _zarr_read(g, "cloud_mask", path, (k,))
                    out["cloud_mask"] = cm[t].astype(np.int64)
            self._finite(x, m, path)
            out[m] = x
            meta["files"][m] = str(path)
            if "crs" in g:
                crs = _epsg(_zarr_read(g, "crs", path, (k,)), path)
                if meta.get("crs", crs) != crs:
                    raise DataError(
                        f"CRS mismatch: sample {k} is {crs} here but {meta['crs']} in "
                        f"{meta['files'][self.modalities[0]]}",
                        path=path,
                    )
                meta["crs"] = crs
        out["meta"] = meta
        return out


__all__ = [
    "NUM_SEASONS",
    "PATCH_SIZE",
    "S1_DTYPES",
    "S2_DTYPES",
    "SSL4EOS12",
    "SSL4EOS12Zarr",
    "SegmentationDatasetBase",
    "acquisition_key",
    "check_season",
    "file_band_name",
    "native_size",
]
