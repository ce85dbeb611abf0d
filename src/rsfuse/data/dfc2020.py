"""DFC2020 (IEEE GRSS Data Fusion Contest 2020) reader, SEN12MS-style folders.

Layout: ``ROIs0000_{validation,test}/{s1,s2,dfc}_<scene>/ROIs0000_{split}_{s1|s2|dfc}_<scene>
_p<n>.tif``, 256 x 256 px: ``s1`` float32 2 bands (VV, VH in dB), ``s2`` 13 bands L1C
(reflectance x 10000, registry order), ``dfc`` 1 band of labels 1–10
(:data:`~rsfuse.data.classes.DFC2020_10`). Any ``ROIs*_{split}`` folder under ``root`` is read
(the published validation and test sets are each one ROI folder).

Labels are mapped to the 8 classes CromSS trains on (:data:`~rsfuse.data.classes.DFC2020`,
:data:`~rsfuse.data.classes.DFC2020_REMAP`): Savanna (3), Snow/Ice (8) and 0 (no data) become
255 (ignored); a value above 10 is a :class:`~rsfuse.errors.DataError`.

Splits: ``validation`` (986 patches; CromSS fine-tunes on it) and ``test`` (5,128); ``train``
is an alias of ``validation`` (the CromSS protocol) and ``val`` of ``validation``.

Samples: ``s1`` [2, H, W], ``s2`` [C, H, W], ``mask`` int64 [H, W], ``present``, ``meta``
(``id`` = file stem without the modality, ``crs``, ``transform``, ``files``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rsfuse.bands import S2_L1C_ORDER
from rsfuse.data.classes import DFC2020, DFC2020_REMAP, remap_labels
from rsfuse.data.sample import check_same_crs
from rsfuse.data.ssl4eo import S1_DTYPES, S2_DTYPES, SegmentationDatasetBase
from rsfuse.errors import ConfigError, DataError
from rsfuse.io.geotiff import read_band, read_multiband

PATCH_SIZE = 256
SPLIT_FOLDERS: dict[str, str] = {
    "validation": "validation",
    "train": "validation",
    "val": "validation",
    "test": "test",
}
LABEL_DIRS: tuple[str, ...] = ("dfc",)
_NAME = re.compile(r"^(?P<roi>ROIs\d+_[a-z]+)_dfc_(?P<scene>\d+)_p(?P<patch>\d+)\.tif$")


def dfc2020_path(root: Path, roi: str, modality: str, scene: str, patch: str) -> Path:
    """Path of one DFC2020 file.

    Returns:
        ``root/<roi>/<modality>_<scene>/<roi>_<modality>_<scene>_p<patch>.tif``.
    """
    return root / roi / f"{modality}_{scene}" / f"{roi}_{modality}_{scene}_p{patch}.tif"


class DFC2020Dataset(SegmentationDatasetBase):
    """DFC2020 land-cover segmentation, S1 + S2, 8 classes (see the module docstring).

    Args:
        root: folder holding ``ROIs0000_validation`` and/or ``ROIs0000_test``.
        split: ``validation`` (alias ``train``, ``val``) or ``test``.
        modalities: sensors to read.
        s2_bands: S2 L1C band subset or list.
        patch_size: raster side (256).
        on_error: ``raise`` or ``skip``.
        check_finite: reject NaN/inf pixels.

    Raises:
        ConfigError: unknown split.
        DataError: missing root or ROI folder, no label files.
    """

    classes: ClassVar[tuple[str, ...]] = DFC2020
    num_seasons: ClassVar[int] = 1
    dataset_name: ClassVar[str] = "DFC2020"

    def __init__(
        self,
        root: str | Path,
        split: str = "validation",
        modalities: Sequence[str] = ("s1", "s2"),
        s2_bands: str | Sequence[str] = "all",
        patch_size: int = PATCH_SIZE,
        on_error: str = "raise",
        check_finite: bool = True,
    ) -> None:
        super().__init__(modalities, s2_bands, "L1C", 0, None, on_error, check_finite)
        if split not in SPLIT_FOLDERS:
            raise ConfigError(
                f"unknown split {split!r}; expected one of {list(SPLIT_FOLDERS)}", key="split"
            )
        self.root = Path(root)
        self.split = split
        self.patch_size = int(patch_size)
        if not self.root.is_dir():
            raise DataError("dataset root folder not found", path=self.root)
        rois = sorted(p for p in self.root.glob(f"ROIs*_{SPLIT_FOLDERS[split]}") if p.is_dir())
        if not rois:
            raise DataError(f"no ROIs*_{SPLIT_FOLDERS[split]} folder", path=self.root)
        entries: list[tuple[str, str, str]] = []
        for roi in rois:
            for f in roi.glob("dfc_*/*.tif"):
                m = _NAME.match(f.name)
                if m and m.group("roi") == roi.name:
                    entries.append((roi.name, m.group("scene"), m.group("patch")))
        entries.sort(key=lambda e: (e[0], int(e[1]), int(e[2])))
        if not entries:
            raise DataError("no dfc_* label files", path=rois[0])
        self._entries = entries
        self._ids = np.array([f"{r}_{s}_p{p}".encode() for r, s, p in entries], dtype=np.bytes_)
        self._band_index = [S2_L1C_ORDER.index(b) for b in self.s2_band_names]

    def _read_arrays(self, i: int, seasons: list[int]) -> dict[str, Any]:
        roi, scene, patch = self._entries[i]
        size = (self.patch_size, self.patch_size)
        out: dict[str, Any] = {}
        lab_path = dfc2020_path(self.root, roi, "dfc", scene, patch)
        lab, profile = read_band(lab_path, expected_shape=size)
        out["mask"] = remap_labels(lab, DFC2020_REMAP, str(lab_path), what="DFC2020 label")[None]
        meta: dict[str, Any] = {
            "crs": profile["crs"],
            "transform": profile["transform"],
            "files": {"mask": str(lab_path)},
        }
        crs: list[tuple[Path, str | None]] = [(lab_path, profile["crs"])]
        for m, c in (("s1", 2), ("s2", len(S2_L1C_ORDER))):
            if m not in self.modalities:
                continue
            path = dfc2020_path(self.root, roi, m, scene, patch)
            dtypes = S1_DTYPES if m == "s1" else S2_DTYPES
            x, prof = read_multiband(path, c, size, dtypes=dtypes)
            crs.append((path, prof["crs"]))
            if m == "s2":
                x = x[self._band_index]
            self._finite(x, m, path)
            out[m] = x[None]
            meta["files"][m] = str(path)
        check_same_crs(crs)
        out["meta"] = meta
        return out


__all__ = ["PATCH_SIZE", "DFC2020Dataset", "dfc2020_path"]
