"""BigEarthNet v1 (BigEarthNet-MM) and v2 (reBEN) readers: Sentinel-1, Sentinel-2 or both.

Both datasets read the published on-disk layouts (paths from
:mod:`rsfuse.data.bigearthnet_layout`, described in ``shared/REFERENCE.md``) and return
samples in the contract of :mod:`rsfuse.data.sample`:

========== ======================= ========================================================
key        type                    content
========== ======================= ========================================================
``s1``     float32 [2, 120, 120]   VV then VH backscatter in dB
``s2``     float32 [C, 120, 120]   L2A bands in the order of the resolved ``s2_bands``;
                                   20 m and 60 m bands resampled to the 10 m grid
``label``  float32 [19]            multi-hot, BigEarthNet 19-class nomenclature
``present`` dict[str, bool]        ``{"s1": ..., "s2": ...}``
``valid``  bool [120, 120]         S2 validity per pixel (only with ``clouds`` other than
                                   ``none``; see :mod:`rsfuse.data.clouds`)
``meta``   dict                    ``id``, ``s1_id``, ``s2_id``, ``crs``, ``transform``
                                   (of the 10 m grid), ``cloudy`` / ``snow`` (the dataset's
                                   flags of the patch)
========== ======================= ========================================================

Flagged patches. BigEarthNet v1 lists the patches fully covered by seasonal snow or by
cloud and shadow in two CSV files; reBEN keeps them out of ``metadata.parquet`` altogether,
in ``metadata_for_patches_with_snow_cloud_or_shadow.parquet`` beside it (same columns).
``include_snow`` / ``include_cloudy`` bring them back (reading that second file for v2).
With ``clouds="metadata"`` a patch flagged cloudy has ``present["s2"] = False``;
``clouds="detector"`` finds the clouds of every patch's pixels instead (``valid``).

Per-sample work is cheap: paths are built directly (no directory listing), one small file
opened per band, plus one JSON file per v1 sample for its labels. The sample index is held
in NumPy byte-string arrays, so DataLoader workers forked from the main process do not
copy it page by page through Python reference counting.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from matplotlib.figure import Figure
from torch import Tensor
from torch.utils.data import Dataset

from rsfuse.bands import BANDS, S1_ORDER, check_modalities
from rsfuse.bands import s2_bands as resolve_s2_bands
from rsfuse.data import bigearthnet_layout as layout
from rsfuse.data.classes import BEN19, ben19_indices, ben43_to_19, multi_hot
from rsfuse.data.clouds import DEFAULT_MAX_CLOUD_FRACTION, CloudValidity
from rsfuse.data.sample import Sample, check_same_crs, check_sample, check_unique_ids
from rsfuse.data.sample_ids import SampleIdArray
from rsfuse.data.skipping import SkipBadSamples
from rsfuse.errors import ConfigError, DataError
from rsfuse.io.geotiff import probe_header, read_band_stack

log = logging.getLogger(__name__)

RESAMPLINGS: tuple[str, ...] = ("nearest", "bilinear", "cubic")
SPLITS: tuple[str, ...] = ("train", "val", "test")


def _as_bytes_array(names: Sequence[str]) -> np.ndarray:
    """Names as a fixed-width byte-string array (fork-friendly: no per-item refcounts)."""
    return np.array([n.encode() for n in names], dtype=np.bytes_)


def _with_sample(err: DataError, sample_id: str) -> DataError:
    """A copy of ``err`` whose message also names ``sample_id`` (keeps ``err.path``)."""
    if err.sample is not None:
        return err
    new = DataError(str(err), sample=sample_id)
    new.path = err.path
    return new


class BigEarthNetBase(SampleIdArray, SkipBadSamples, Dataset[Sample]):
    """Shared reader logic of BigEarthNet v1 and v2; use a subclass.

    Args:
        root: dataset root folder in the published layout.
        split: ``train``, ``val`` or ``test``.
        modalities: non-empty subset of ``("s1", "s2")``.
        s2_bands: S2 band subset name (``all``, ``hr9``, ``10m``, ``10m20m``, ``rgb``) or a
            list of L2A band names; sets the channel order of ``s2``.
        resampling: how 20 m and 60 m bands reach the 10 m grid: ``nearest``, ``bilinear``
            or ``cubic``.
        include_snow: keep patches flagged with seasonal snow.
        include_cloudy: keep patches flagged with cloud or shadow.
        on_error: ``raise`` a :class:`~rsfuse.errors.DataError` on a bad sample, or
            ``skip`` it: log a warning, record ``(sample_id, message)`` in :attr:`skipped`
            and return the next good sample (wrapping around). With DataLoader workers each
            worker keeps its own :attr:`skipped` list; call :meth:`scan` up front to find
            bad samples once.
        check_finite: check every band file for NaN/inf while reading, so the error names
            the file. When False, samples may carry NaN/inf values and only the structure
            of the sample (dtypes, shapes) is checked.
        clouds: where S2 validity comes from (:class:`~rsfuse.data.clouds.CloudValidity`):
            ``none`` (default), ``metadata`` (the dataset's cloud flag: a flagged patch
            has ``present["s2"] = False``) or ``detector`` (a cloud detector on the
            pixels; adds ``valid``).
        max_cloud_fraction: above this fraction of invalid pixels ``present["s2"]`` is
            False (:func:`~rsfuse.data.clouds.s2_usable`).

    Raises:
        ConfigError: bad split, modalities, band subset, resampling, on_error or clouds.
        DataError: missing root, index or metadata file; a split without samples.
    """

    classes: ClassVar[tuple[str, ...]] = BEN19
    num_classes: ClassVar[int] = len(BEN19)
    image_size: ClassVar[int] = layout.PATCH_SIZE_10M
    stats_name: ClassVar[str] = ""

    #: attributes that hold one entry per sample (filtered together)
    _index_fields: ClassVar[tuple[str, ...]] = (
        "_ids", "_s1_names", "_s2_names", "_cloudy", "_snow",
    )  # fmt: skip

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        modalities: Sequence[str] = ("s1", "s2"),
        s2_bands: str | Sequence[str] = "all",
        resampling: str = "bilinear",
        include_snow: bool = False,
        include_cloudy: bool = False,
        on_error: str = "raise",
        check_finite: bool = True,
        clouds: str = "none",
        max_cloud_fraction: float = DEFAULT_MAX_CLOUD_FRACTION,
    ) -> None:
        if split not in SPLITS:
            raise ConfigError(
                f"unknown split {split!r}; expected one of {list(SPLITS)}", key="split"
            )
        if isinstance(modalities, str):
            modalities = (modalities,)
        self.modalities: tuple[str, ...] = check_modalities(modalities)
        self.s2_band_names: tuple[str, ...] = resolve_s2_bands(s2_bands, "L2A")
        if resampling not in RESAMPLINGS:
            raise ConfigError(
                f"unknown resampling {resampling!r}; expected one of {list(RESAMPLINGS)}",
                key="resampling",
            )
        self._init_skipping(on_error)
        self.root = Path(root)
        self.split = split
        self.resampling = resampling
        self.include_snow = bool(include_snow)
        self.include_cloudy = bool(include_cloudy)
        self.check_finite = bool(check_finite)
        if clouds == "mask":
            raise ConfigError("BigEarthNet has no cloud masks; use metadata or detector", "clouds")
        self.validity = CloudValidity(clouds, max_cloud_fraction, product="L2A")
        if not self.root.is_dir():
            raise DataError("dataset root folder not found", path=self.root)
        self._ids: np.ndarray
        self._s1_names: np.ndarray
        self._s2_names: np.ndarray
        self._cloudy: np.ndarray  # bool [N]: the dataset flags the patch cloud/shadow
        self._snow: np.ndarray  # bool [N]: seasonal snow
        self.index_file: Path = self._load_index()
        if len(self._ids) == 0:
            raise DataError(
                f"split {split!r} has no samples{self._filter_note()}", path=self.index_file
            )

    # ----------------------------------------------------------------- subclass hooks
    def _load_index(self) -> Path:
        """Fill the per-sample arrays of :attr:`_index_fields`; return the index file."""
        raise NotImplementedError

    def _s2_path(self, i: int, band: str) -> Path:
        raise NotImplementedError

    def _s1_path(self, i: int, band: str) -> Path:
        raise NotImplementedError

    def _label_indices(self, i: int, from_s2: bool) -> list[int]:
        """19-class label indices of sample ``i`` (``from_s2``: the S2 side is read)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- helpers
    def _filter_note(self) -> str:
        excluded = [
            n
            for n, inc in (("snow", self.include_snow), ("cloud/shadow", self.include_cloudy))
            if not inc
        ]
        return f" after filtering (excluded: {', '.join(excluded)})" if excluded else ""

    def _select(self, keep: np.ndarray) -> None:
        for name in self._index_fields:
            setattr(self, name, getattr(self, name)[keep])

    def _str(self, arr: np.ndarray, i: int) -> str:
        return arr[i].decode()

    @property
    def cloudy_flags(self) -> np.ndarray:
        """bool [N]: the dataset flags the patch as cloud / shadow (index order)."""
        return self._cloudy.copy()

    @property
    def snow_flags(self) -> np.ndarray:
        """bool [N]: the dataset flags the patch with seasonal snow (index order)."""
        return self._snow.copy()

    def _files(self, i: int) -> list[tuple[Path, tuple[int, int], tuple[str, ...]]]:
        """Raster files of sample ``i`` for the requested modalities with native sizes and
        published dtypes."""
        out = []
        if "s2" in self.modalities:
            for band in self.s2_band_names:
                n = layout.native_size(BANDS[band].resolution)
                out.append((self._s2_path(i, band), (n, n), layout.S2_DTYPES))
        if "s1" in self.modalities:
            self._check_s1_name(i)
            n = layout.native_size(BANDS["VV"].resolution)
            out.extend((self._s1_path(i, band), (n, n), layout.S1_DTYPES) for band in S1_ORDER)
        return out

    def _check_s1_name(self, i: int) -> None:
        if not self._s1_names[i]:
            raise DataError(
                "Sentinel-1 requested but no s1_name is listed for this patch",
                path=self.index_file,
                sample=self.sample_id(i),
            )

    # ----------------------------------------------------------------- reading
    def _read_stack(
        self,
        files: list[tuple[Path, int]],
        grid: tuple[str | None, tuple] | None,
        dtypes: tuple[str, ...],
        crs: list[tuple[Path, str | None]],
    ) -> tuple[Tensor, tuple[str | None, tuple]]:
        """Read single-band files (path, resolution in m) onto the 10 m grid: [C, 120, 120].

        Each file must be stored as one of ``dtypes``; its CRS is appended to ``crs``.
        Returns the stack and the grid (CRS, transform) of the first file read, unless
        ``grid`` was already known.
        """
        size = self.image_size
        native = [(path, layout.native_size(resolution)) for path, resolution in files]
        out, profiles = read_band_stack(
            native, size, resample=self.resampling, check_finite=self.check_finite, dtypes=dtypes
        )
        crs.extend((path, profile["crs"]) for (path, _), profile in zip(files, profiles))
        if grid is None:
            grid = (profiles[0]["crs"], profiles[0]["grid_transform"])
        return torch.from_numpy(out), grid

    def _read(self, i: int) -> Sample:
        sid = self.sample_id(i)
        sample: Sample = {}
        present = {"s1": False, "s2": False}
        grid: tuple[str | None, tuple] | None = None
        crs: list[tuple[Path, str | None]] = []
        try:
            if "s2" in self.modalities:
                files = [(self._s2_path(i, b), BANDS[b].resolution) for b in self.s2_band_names]
                sample["s2"], grid = self._read_stack(files, grid, layout.S2_DTYPES, crs)
                present["s2"] = True
            if "s1" in self.modalities:
                self._check_s1_name(i)
                files = [(self._s1_path(i, b), BANDS[b].resolution) for b in S1_ORDER]
                sample["s1"], grid = self._read_stack(files, grid, layout.S1_DTYPES, crs)
                present["s1"] = True
            check_same_crs(crs)
            labels = self._label_indices(i, from_s2="s2" in self.modalities)
        except DataError as e:
            raise _with_sample(e, sid) from e
        assert grid is not None
        sample["label"] = torch.from_numpy(multi_hot(labels, self.num_classes))
        sample["present"] = present
        sample["meta"] = {
            "id": sid,
            "s1_id": self._str(self._s1_names, i) or None,
            "s2_id": self._str(self._s2_names, i),
            "crs": grid[0],
            "transform": grid[1],
            "cloudy": bool(self._cloudy[i]),
            "snow": bool(self._snow[i]),
        }
        self.validity.apply(sample, self.s2_band_names)
        check_sample(sample, source=sid, check_finite=self.check_finite)
        return sample

    def _all_bad_where(self) -> tuple[str, Path | None]:
        return f" of split {self.split!r}", self.index_file

    def scan(self) -> list[tuple[str, str]]:
        """Check every sample's files without decoding pixels.

        Checks existence, raster size (from the header) and truncation of every band file
        of the requested modalities, and the label source of each sample. With
        ``on_error="skip"`` the bad samples are dropped from the index and recorded in
        :attr:`skipped`.

        Returns:
            ``(sample_id, message)`` per bad sample; the message names the file(s).

        Raises:
            DataError: with ``on_error="skip"``, when every sample is bad.
        """
        bad: list[tuple[str, str]] = []
        keep = np.ones(len(self), dtype=bool)
        for i in range(len(self)):
            problems: list[str] = []
            try:
                problems += [
                    m
                    for path, shape, dtypes in self._files(i)
                    if (m := probe_header(path, shape, dtypes)) is not None
                ]
            except DataError as e:
                problems.append(str(e))
            try:
                self._label_indices(i, from_s2="s2" in self.modalities)
            except DataError as e:
                problems.append(str(e))
            if problems:
                keep[i] = False
                bad.append((self.sample_id(i), "; ".join(problems)))
        if self.on_error == "skip" and bad:
            if not keep.any():
                raise DataError(
                    f"every one of the {len(self)} samples of split "
                    f"{self.split!r} is bad; first: {bad[0][1]}",
                    path=self.index_file,
                )
            for sid, msg in bad:
                self._record_skip(sid, msg)
            self._select(keep)
        return bad

    # ----------------------------------------------------------------- plotting
    def plot(
        self,
        sample: Sample,
        prediction: Tensor | np.ndarray | Sequence[float] | None = None,
        show_titles: bool = True,
    ) -> Figure:
        """Plot a sample: S2 true colour and S1 false colour, with its labels beside them.

        S2 is shown as true colour (B04, B03, B02) with one stretch shared by the three
        bands, computed on the clear pixels, when those bands are in the sample, else its
        first band in grey; S1 as R = VV, G = VH, B = VV − VH over fixed dB ranges
        (:mod:`rsfuse.data.composites`). The labels are listed with their BigEarthNet
        colours (:mod:`rsfuse.data.palettes`); a prediction adds the predicted labels,
        ticked where they are right.

        Args:
            sample: a sample of this dataset (not a batch).
            prediction: multi-hot vector, probabilities or logits [19]; values outside
                [0, 1] are taken as logits (sigmoid), then thresholded at 0.5.
            show_titles: add panel titles and the sample id.

        Returns:
            The figure, one axis per modality in the sample and one for the labels.
        """
        from matplotlib.patches import Patch

        from rsfuse.data.composites import panel_figure, sample_composites
        from rsfuse.data.palettes import class_colours

        s2 = np.asarray(sample["s2"], dtype=np.float32) if "s2" in sample else None
        s1 = np.asarray(sample["s1"], dtype=np.float32) if "s1" in sample else None
        panels = sample_composites(s2, list(self.s2_band_names), s1)
        has_labels = "label" in sample
        fig = panel_figure(panels, 3.4, 3.6 if has_labels else 0.0, show_titles)
        if has_labels:
            truth = np.asarray(sample["label"], dtype=np.float32).reshape(-1) >= 0.5
            colours = class_colours(BEN19)
            handles = [
                Patch(facecolor=colours[i], edgecolor="0.4", linewidth=0.5, label=BEN19[i])
                for i in np.flatnonzero(truth)
                if i < len(BEN19)
            ]
            title = "labels"
            if prediction is not None:
                p = np.asarray(prediction, dtype=np.float32).reshape(-1)
                if p.size and (p.min() < 0 or p.max() > 1):
                    p = 1.0 / (1.0 + np.exp(-p))
                pred = p >= 0.5
                title = "labels (✓ also predicted)"
                for h, i in zip(handles, np.flatnonzero(truth)):
                    if i < pred.size and pred[i]:
                        h.set_label("✓ " + h.get_label())
                wrong = [i for i in np.flatnonzero(pred) if i < len(BEN19) and not truth[i]]
                handles += [
                    Patch(
                        facecolor=colours[i],
                        edgecolor="0.4",
                        hatch="//",
                        linewidth=0.5,
                        label="✗ " + BEN19[i] + " (predicted, not a label)",
                    )
                    for i in wrong
                ]
            fig.legend(
                handles=[_wrapped(h) for h in handles] or [Patch(color="white", label="(none)")],
                loc="outside right center",
                fontsize=8,
                frameon=False,
                title=title,
                title_fontsize=9,
            )
        if show_titles:
            sid = sample.get("meta", {}).get("id", "")
            fig.suptitle(f"{type(self).__name__} {sid}".strip(), fontsize=10)
        return fig


def _wrapped(handle: Any, width: int = 34) -> Any:
    """A legend patch whose long label is wrapped onto several lines."""
    import textwrap

    handle.set_label(textwrap.fill(handle.get_label(), width))
    return handle


class BigEarthNetV1(BigEarthNetBase):
    """BigEarthNet v1.0 / BigEarthNet-MM (Sumbul et al.), 43 labels mapped to 19.

    Layout (see :mod:`rsfuse.data.bigearthnet_layout`): ``BigEarthNet-v1.0/<s2>/`` and
    ``BigEarthNet-S1-v1.0/<s1>/`` patch folders, split CSVs ``s2_name,s1_name`` without a
    header (``train.csv`` or TorchGeo's ``bigearthnet-train.csv``), and the optional
    ``patches_with_seasonal_snow.csv`` / ``patches_with_cloud_and_shadow.csv`` lists.

    Labels come from ``<s2>_labels_metadata.json`` when S2 is read, else from the S1
    patch's JSON; the 43 CLC names are mapped with
    :func:`rsfuse.data.classes.ben43_to_19`. The sample id is the S2 patch name.

    See :class:`BigEarthNetBase` for the arguments.
    """

    stats_name: ClassVar[str] = "bigearthnet-v1"

    def _load_index(self) -> Path:
        candidates = [self.root / name for name in layout.V1_SPLIT_FILES[self.split]]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise DataError(
                f"split file for {self.split!r} not found (looked for "
                f"{', '.join(p.name for p in candidates)})",
                path=candidates[0],
            )
        s2_names: list[str] = []
        s1_names: list[str] = []
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read split file: {e}", path=path) from e
        for lineno, line in enumerate(lines, 1):
            fields = [f.strip() for f in line.split(",")]
            if not fields[0] or fields[0] in ("s2_name", "patch_id"):
                continue  # blank line or a header
            if len(fields) > 2:
                raise DataError(
                    f"line {lineno}: expected 's2_name,s1_name', got {line!r}", path=path
                )
            s2_names.append(fields[0])
            s1_names.append(fields[1] if len(fields) == 2 else "")
        if "s1" in self.modalities and any(not n for n in s1_names):
            raise DataError(
                "Sentinel-1 requested but the split file has no s1_name column "
                "(expected 's2_name,s1_name' per line)",
                path=path,
            )
        check_unique_ids(s2_names, path, what="s2_name")
        self._s2_names = _as_bytes_array(s2_names)
        self._s1_names = _as_bytes_array(s1_names)
        self._ids = self._s2_names
        snow = self._read_patch_list(self.root / layout.V1_SNOW_FILE)
        cloudy = self._read_patch_list(self.root / layout.V1_CLOUD_FILE)
        self._snow = np.array([n in snow for n in s2_names], dtype=bool)
        self._cloudy = np.array([n in cloudy for n in s2_names], dtype=bool)
        excluded: set[str] = set()
        if not self.include_snow:
            excluded |= snow
        if not self.include_cloudy:
            excluded |= cloudy
        if excluded:
            keep = np.array([n not in excluded for n in s2_names], dtype=bool)
            self._select(keep)
        return path

    @staticmethod
    def _read_patch_list(path: Path) -> set[str]:
        """S2 patch names listed one per line (first column); empty if the file is absent."""
        if not path.is_file():
            log.debug("optional patch list %s not found; nothing excluded", path)
            return set()
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read patch list: {e}", path=path) from e
        return {s for line in lines if (s := line.split(",")[0].strip())}

    def _s2_path(self, i: int, band: str) -> Path:
        return layout.v1_s2_band(self.root, self._str(self._s2_names, i), band)

    def _s1_path(self, i: int, band: str) -> Path:
        return layout.v1_s1_band(self.root, self._str(self._s1_names, i), band)

    def _label_file(self, i: int, from_s2: bool) -> Path:
        if from_s2:
            return layout.v1_s2_metadata(self.root, self._str(self._s2_names, i))
        return layout.v1_s1_metadata(self.root, self._str(self._s1_names, i))

    def _label_indices(self, i: int, from_s2: bool) -> list[int]:
        path = self._label_file(i, from_s2)
        try:
            with open(path, encoding="utf-8") as f:
                meta = json.load(f)
        except FileNotFoundError as e:
            raise DataError("label metadata file not found", path=path) from e
        except (OSError, ValueError) as e:
            raise DataError(f"cannot parse label metadata JSON: {e}", path=path) from e
        labels = meta.get("labels") if isinstance(meta, dict) else None
        if not isinstance(labels, list):
            raise DataError("label metadata has no 'labels' list", path=path)
        return ben43_to_19(labels, source=str(path))


class BigEarthNetV2(BigEarthNetBase):
    """BigEarthNet v2.0 / reBEN (Clasen et al. 2024), 19 classes.

    Layout (see :mod:`rsfuse.data.bigearthnet_layout`): ``metadata.parquet`` (one row per
    patch: ``patch_id``, ``labels`` as 19-class names, ``split`` in
    train/validation/test, ``s1_name``, ``contains_seasonal_snow``,
    ``contains_cloud_or_shadow``, …) of the clear patches,
    ``metadata_for_patches_with_snow_cloud_or_shadow.parquet`` (same columns) of the flagged
    ones (read only when ``include_snow`` / ``include_cloudy`` ask for them),
    ``BigEarthNet-S2/<tile>/<patch_id>/`` and
    ``BigEarthNet-S1/<product>/<s1_name>/`` patch folders. The split ``val`` selects the
    rows whose ``split`` is ``validation``. Labels of the selected rows are checked when
    the dataset is built. The sample id is ``patch_id``.

    See :class:`BigEarthNetBase` for the arguments.
    """

    stats_name: ClassVar[str] = "bigearthnet-v2"
    _index_fields: ClassVar[tuple[str, ...]] = (*BigEarthNetBase._index_fields, "_labels")

    _FLAGS: ClassVar[tuple[str, str]] = ("contains_seasonal_snow", "contains_cloud_or_shadow")

    def _read_metadata(self, path: Path) -> pd.DataFrame:
        """The index columns of one metadata parquet (flag columns when it has them).

        Raises:
            DataError: a missing required column or an unreadable file, naming it.
        """
        required = ["patch_id", "labels", "split", "s1_name"]
        if not self.include_snow:
            required.append(self._FLAGS[0])
        if not self.include_cloudy:
            required.append(self._FLAGS[1])
        try:
            columns = pq.read_schema(path).names
            missing = [c for c in required if c not in columns]
            if missing:
                raise DataError(f"metadata lacks column(s) {missing}", path=path)
            wanted = required + [c for c in self._FLAGS if c in columns and c not in required]
            df = pd.read_parquet(path, columns=wanted)
        except DataError:
            raise
        except Exception as e:  # pyarrow raises many types for a corrupt file
            raise DataError(f"cannot read metadata parquet: {e}", path=path) from e
        for c in self._FLAGS:
            df[c] = df[c].fillna(False).astype(bool) if c in df else False
        df["_file"] = path.name
        return df

    def _load_index(self) -> Path:
        path = self.root / layout.V2_METADATA
        if not path.is_file():
            raise DataError("metadata file not found", path=path)
        frames = [self._read_metadata(path)]
        flagged = self.root / layout.V2_FLAGGED_METADATA
        if (self.include_snow or self.include_cloudy) and flagged.is_file():
            frames.append(self._read_metadata(flagged))
        elif self.include_snow or self.include_cloudy:
            log.info("%s not found: flagged patches come from %s only", flagged, path.name)
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        dup = df["patch_id"].duplicated(keep=False)
        if dup.any():
            pid = str(df["patch_id"][dup].iloc[0])
            files = sorted(set(df.loc[df["patch_id"] == pid, "_file"]))
            raise DataError(
                f"patch_id {pid!r} is listed {int((df['patch_id'] == pid).sum())} times "
                f"({int(dup.sum())} rows share an id; in {' and '.join(files)})",
                path=path if len(files) == 1 and files[0] == path.name else flagged,
            )
        df = df[df["split"] == layout.V2_SPLIT_VALUES[self.split]]
        if not self.include_snow:
            df = df[~df[self._FLAGS[0]]]
        if not self.include_cloudy:
            df = df[~df[self._FLAGS[1]]]
        df = df.reset_index(drop=True)
        self._ids = _as_bytes_array(df["patch_id"].astype(str).tolist())
        self._s2_names = self._ids
        self._s1_names = _as_bytes_array(df["s1_name"].fillna("").astype(str).tolist())
        self._snow = df[self._FLAGS[0]].to_numpy(dtype=bool)
        self._cloudy = df[self._FLAGS[1]].to_numpy(dtype=bool)
        self._labels = self._multi_hot(df, path)
        return path

    @staticmethod
    def _multi_hot(df: pd.DataFrame, path: Path) -> np.ndarray:
        """[N, 19] uint8 multi-hot labels of the rows of ``df`` (vectorised)."""
        index = {n: i for i, n in enumerate(BEN19)}
        out = np.zeros((len(df), len(BEN19)), dtype=np.uint8)
        exploded = df["labels"].explode()
        exploded = exploded[exploded.notna()]
        try:
            cols = exploded.map(index)
        except TypeError:  # an unhashable entry (a list, dict …) where a name belongs
            row, value = next((k, v) for k, v in exploded.items() if not isinstance(v, str))
            raise DataError(
                f"labels of patch {df['patch_id'].iloc[row]!r} hold a "
                f"{type(value).__name__}, not class names",
                path=path,
            ) from None
        unknown = cols.isna()
        if unknown.any():
            row = int(exploded.index[np.flatnonzero(unknown.to_numpy())[0]])
            pid = str(df["patch_id"].iloc[row])
            try:
                ben19_indices(list(df["labels"].iloc[row]), source=str(path))
            except DataError as e:
                e2 = DataError(str(e), sample=pid)
                e2.path = path
                raise e2 from e
        out[exploded.index.to_numpy(dtype=np.int64), cols.to_numpy(dtype=np.int64)] = 1
        return out

    def _s2_path(self, i: int, band: str) -> Path:
        return layout.v2_s2_band(self.root, self._str(self._s2_names, i), band)

    def _s1_path(self, i: int, band: str) -> Path:
        return layout.v2_s1_band(self.root, self._str(self._s1_names, i), band)

    def _label_indices(self, i: int, from_s2: bool) -> list[int]:
        return np.flatnonzero(self._labels[i]).tolist()


__all__ = ["BigEarthNetBase", "BigEarthNetV1", "BigEarthNetV2"]
