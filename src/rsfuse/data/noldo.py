"""NoLDO-S12 readers (CromSS, Liu et al. 2025): the noisy-label pretraining split
SSL4EO-S12@NoL and the downstream splits SSL4EO-S12@DW (9 classes) and SSL4EO-S12@OSM (13).

Both read the authors' LMDBs of pickled ``(array bytes, shape, id)`` tuples through
:func:`rsfuse.io.safe_pickle.safe_loads` (never :func:`pickle.loads`), or the GeoTIFF
folders the LMDBs were written from. Samples follow :mod:`rsfuse.data.ssl4eo`.

**SSL4EO-S12@NoL** (:class:`NoLDOS12`), 4 seasons per location, labels = Dynamic World
classes 0–8 (:data:`~rsfuse.data.classes.DW9`):

* LMDB form: ``0k_251k_uint8_s1.lmdb``, ``0k_251k_uint8_s2c.lmdb``, ``dw_labels.lmdb`` in
  ``root``; key ``str(i)``; arrays uint8 [4, C, 264, 264] (S1 VV, VH; S2 L1C 13 bands) and
  [4, 264, 264] labels. The uint8 images are SSL4EO-S12's scaled version: each band maps
  ``[mean - 2σ, mean + 2σ]`` linearly to 0–255. With ``scaling="physical"`` (default) the
  reader inverts that, as the authors' code does
  (``x = mean - 2σ + u8 · 4σ / 255`` with the CromSS statistics :data:`UINT8_S1_STATS`,
  :data:`UINT8_S2_STATS`), giving S1 in dB and S2 in reflectance x 10000, quantised to
  4σ/255 steps and clipped at ±2σ; with ``scaling="uint8"`` the stored values come back as
  float32 0–255 (e.g. for the authors' ``/255`` input).
* GeoTIFF form: SSL4EO-S12 v1.0 folders ``s1/``, ``s2c/`` (see :class:`~rsfuse.data.ssl4eo.
  SSL4EOS12`), the id list ``dw_complete_ids.csv`` (``ids,sub1,…,sub4``; header optional) and
  ``dw_noisy_labels/{7-digit id}/{season folder}/label.tif``.
* Synthetic data also carries the noise-free labels (``dw_labels_clean.lmdb`` /
  ``dw_clean_labels/``), returned as ``mask_clean`` so label noise can be measured.

**SSL4EO-S12@DW / @OSM** (:class:`SSL4EOS12DW`, :class:`SSL4EOS12OSM`), one date per tile,
510 px (train) / 512 px (test):

* LMDB form: ``{dw,osm}_{train,test}_lmdb`` with keys ``s1_{i}``, ``s2_{i}``, ``dw_{i}`` (and
  ``osm_{i}`` in the OSM LMDBs): S1 float32 [2, H, W] dB (VV, VH), S2 uint16 [13, H, W],
  labels uint8 [H, W].
* GeoTIFF form: ``{dw,osm}_{train,test}/image_s1/s1_<name>.tif`` (2 bands),
  ``image_s2/s2_<name>.tif`` (13 bands), ``label_dw/dw_<name>.tif`` or
  ``label_osm/osm_<name>.tif``.
* Stored labels: 0 = unlabelled, DW 1–9 (10 = cloud, also unlabelled), OSM 1–13; the reader
  returns ``value - 1`` with 255 = unlabelled.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rsfuse.bands import S1_ORDER, S2_L1C_ORDER
from rsfuse.data.classes import DW9, IGNORE_LABEL, OSM13, remap_labels
from rsfuse.data.sample import check_same_crs, check_unique_ids
from rsfuse.data.ssl4eo import (
    NUM_SEASONS,
    PATCH_SIZE,
    S1_DTYPES,
    S2_DTYPES,
    SSL4EOS12,
    SegmentationDatasetBase,
    acquisition_key,
)
from rsfuse.errors import ConfigError, DataError
from rsfuse.io.geotiff import read_band, read_multiband
from rsfuse.io.lmdb_file import check_lmdb_file
from rsfuse.io.safe_pickle import safe_loads
from rsfuse.io.shapes import checked_numel

FORMATS: tuple[str, ...] = ("auto", "lmdb", "geotiff")
SCALINGS: tuple[str, ...] = ("physical", "uint8")
#: LMDB file names of SSL4EO-S12@NoL (the authors' names).
NOL_LMDB: dict[str, str] = {
    "s1": "0k_251k_uint8_s1.lmdb",
    "s2": "0k_251k_uint8_s2c.lmdb",
    "mask": "dw_labels.lmdb",
    "mask_clean": "dw_labels_clean.lmdb",
}
NOL_IDS_CSV = "dw_complete_ids.csv"
NOL_LABEL_DIRS: dict[str, str] = {"mask": "dw_noisy_labels", "mask_clean": "dw_clean_labels"}
LABEL_FILE = "label.tif"
#: (mean, std) the uint8 S1 (VV, VH) of SSL4EO-S12 was scaled with (CromSS code).
UINT8_S1_STATS: tuple[tuple[float, ...], tuple[float, ...]] = (
    (-12.54847273, -20.19237134),
    (5.25697717, 5.91150917),
)
#: (mean, std) the uint8 S2 L1C (13 bands, registry order) was scaled with (CromSS code).
UINT8_S2_STATS: tuple[tuple[float, ...], tuple[float, ...]] = (
    (1605.57504906, 1390.78157673, 1314.8729939, 1363.52445545, 1549.44374991, 2091.74883118,
     2371.7172463, 2299.90463006, 2560.29504086, 830.06605044, 22.10351321, 2177.07172323,
     1524.06546312),
    (786.78685367, 850.34818441, 875.06484736, 1138.84957046, 1122.17775652, 1161.59187054,
     1274.39184232, 1248.42891965, 1345.52684884, 577.31607053, 51.15431158, 1336.09932639,
     1136.53823676),
)  # fmt: skip
#: Stored DW downstream value → class (0 and 10 = cloud → 255).
DW_DOWNSTREAM_LUT: tuple[int, ...] = (IGNORE_LABEL, *range(9), IGNORE_LABEL)
#: Stored OSM value → class (0 → 255).
OSM_DOWNSTREAM_LUT: tuple[int, ...] = (IGNORE_LABEL, *range(13))


def uint8_to_physical(x: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Invert SSL4EO-S12's uint8 scaling per band (axis -3): ``mean - 2σ + x · 4σ / 255``.

    Args:
        x: [..., C, H, W] stored values 0–255.
        mean: C band means.
        std: C band standard deviations.

    Returns:
        float32 array of the same shape in physical units.
    """
    m = np.asarray(mean, np.float32)[:, None, None]
    s = np.asarray(std, np.float32)[:, None, None]
    return (m - 2 * s + x.astype(np.float32) * (4 * s / 255)).astype(np.float32)


def physical_to_uint8(x: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """SSL4EO-S12's uint8 scaling per band (axis -3): ``[mean ± 2σ] → 0–255``, clipped, cast."""
    m = np.asarray(mean, np.float64)[:, None, None]
    s = np.asarray(std, np.float64)[:, None, None]
    y = (x - (m - 2 * s)) / (4 * s) * 255.0
    return np.clip(y, 0, 255).astype(np.uint8)


#: Open read-only environments of this process: LMDB refuses to open one path twice.
_ENVS: dict[tuple[int, str], tuple[tuple[int, int], Any]] = {}


def _open_env(path: Path) -> Any:
    """Open (or reuse) a read-only LMDB environment; reopened when the file was replaced.

    The data file is checked before it is mapped (:func:`~rsfuse.io.lmdb_file.
    check_lmdb_file`): a truncated file would otherwise kill the process with SIGBUS on
    the first read past its end.

    Raises:
        DataError: the LMDB cannot be opened or its data file is truncated.
    """
    import os

    import lmdb

    data = path / "data.mdb" if path.is_dir() else path
    try:
        st = data.stat()
    except OSError as e:
        raise DataError(f"cannot open LMDB: {e}", path=path) from e
    key, ident = (os.getpid(), str(path.resolve())), (st.st_ino, st.st_mtime_ns)
    for k in [k for k in _ENVS if k[1] == key[1] and k[0] != key[0]]:
        _ENVS.pop(k)[1].close()  # inherited through fork: py-lmdb would refuse a second open
    cached = _ENVS.get(key)
    if cached is not None:
        if cached[0] == ident:
            return cached[1]
        cached[1].close()
    check_lmdb_file(path)
    try:
        env = lmdb.open(
            str(path),
            readonly=True,
            lock=False,
            readahead=False,
            meminit=False,
            subdir=path.is_dir(),
            max_readers=64,
        )
    except lmdb.Error as e:
        raise DataError(f"cannot open LMDB (corrupt?): {e}", path=path) from e
    _ENVS[key] = (ident, env)
    return env


class LMDBArrays:
    """Read-only access to an LMDB of pickled ``(bytes, shape[, id])`` arrays.

    Handles are opened lazily per process, so a dataset holding one can be forked into
    DataLoader workers.

    Args:
        path: the LMDB folder (or file).

    Raises:
        DataError: the LMDB does not exist or cannot be opened.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DataError("LMDB not found", path=self.path)
        self._env: Any = None
        self._pid = -1
        self.env  # noqa: B018 - open once to fail early on a corrupt file

    @property
    def env(self) -> Any:
        """The process's environment for this LMDB (shared by every reader of the path)."""
        import os

        if self._env is None or self._pid != os.getpid():
            self._env = _open_env(self.path)
            self._pid = os.getpid()
        return self._env

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_env": None, "_pid": -1}

    def list_keys(self) -> list[bytes]:
        """Every key (cheap: no values are read)."""
        import lmdb

        try:
            with self.env.begin(write=False) as txn:
                return [bytes(k) for k in txn.cursor().iternext(keys=True, values=False)]
        except lmdb.Error as e:
            raise DataError(f"cannot list LMDB keys (corrupt?): {e}", path=self.path) from e

    def get(self, key: str, dtype: Any) -> tuple[np.ndarray, Any]:
        """The array stored under ``key`` and its id (None if the tuple has none).

        Raises:
            DataError: missing key, unsafe/corrupt pickle, or bytes that do not fit the shape.
        """
        import lmdb

        try:
            with self.env.begin(write=False) as txn:
                raw = txn.get(key.encode())
        except lmdb.Error as e:
            raise DataError(f"key {key!r}: cannot read LMDB: {e}", path=self.path) from e
        if raw is None:
            raise DataError(f"key {key!r} not found", path=self.path)
        value = safe_loads(raw, self.path, key)
        if not (isinstance(value, tuple) and len(value) in (2, 3)):
            raise DataError(f"key {key!r}: expected (bytes, shape[, id])", path=self.path)
        data, shape = value[0], value[1]
        if not (isinstance(data, bytes) and isinstance(shape, tuple)):
            raise DataError(f"key {key!r}: expected (bytes, shape[, id])", path=self.path)
        ident = value[2] if len(value) == 3 else None
        if not (ident is None or isinstance(ident, int | str | bytes)):
            raise DataError(
                f"key {key!r}: id is a {type(ident).__name__}, not an int or string",
                path=self.path,
            )
        dt = np.dtype(dtype)
        n = checked_numel(shape, path=self.path, what=f"key {key!r}")
        if len(data) != n * dt.itemsize:
            raise DataError(
                f"key {key!r}: {len(data)} bytes do not hold a {dt.name} array of shape "
                f"{shape} ({n * dt.itemsize} bytes)",
                path=self.path,
            )
        arr = np.frombuffer(data, dtype=dt).reshape(shape)
        return arr, ident


def _check_shape(x: np.ndarray, shape: tuple[int, ...], what: str, path: Path, key: str) -> None:
    if tuple(x.shape) != tuple(shape):
        raise DataError(f"key {key!r}: {what} has shape {x.shape}, expected {shape}", path=path)


class NoLDOS12(SegmentationDatasetBase):
    """SSL4EO-S12@NoL: S1, S2 L1C and Dynamic World noisy labels, 4 seasons per location.

    See the module docstring for both on-disk forms and the uint8 de-scaling.

    Args:
        root: folder holding the LMDBs or the GeoTIFF folders.
        format: ``lmdb``, ``geotiff`` or ``auto`` (LMDB when ``dw_labels.lmdb`` exists).
        modalities: sensors to read.
        s2_bands: S2 L1C band subset or list.
        season: ``"random"``, 0–3 or ``"all"``.
        scaling: ``physical`` (de-scale uint8 LMDB images to dB / reflectance x 10000) or
            ``uint8`` (stored values as float32); GeoTIFF images are always physical.
        patch_size: side of the 10 m grid in the GeoTIFF form (264).
        **kwargs: see :class:`~rsfuse.data.ssl4eo.SegmentationDatasetBase`.

    Raises:
        ConfigError: bad format or scaling.
        DataError: missing files, an empty dataset.
    """

    classes: ClassVar[tuple[str, ...]] = DW9
    dataset_name: ClassVar[str] = "NoLDO-S12 (SSL4EO-S12@NoL)"

    def __init__(
        self,
        root: str | Path,
        format: str = "auto",
        modalities: Sequence[str] = ("s1", "s2"),
        s2_bands: str | Sequence[str] = "all",
        season: int | str = "random",
        scaling: str = "physical",
        patch_size: int = PATCH_SIZE,
        seed: int | None = None,
        on_error: str = "raise",
        check_finite: bool = True,
    ) -> None:
        super().__init__(modalities, s2_bands, "L1C", season, seed, on_error, check_finite)
        if format not in FORMATS:
            raise ConfigError(f"format must be one of {list(FORMATS)}, got {format!r}", "format")
        if scaling not in SCALINGS:
            raise ConfigError(
                f"scaling must be one of {list(SCALINGS)}, got {scaling!r}", key="scaling"
            )
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError("dataset root folder not found", path=self.root)
        if format == "auto":
            format = "lmdb" if (self.root / NOL_LMDB["mask"]).exists() else "geotiff"
        self.format = format
        self.scaling = scaling
        self.patch_size = int(patch_size)
        self._band_index = [S2_L1C_ORDER.index(b) for b in self.s2_band_names]
        if format == "lmdb":
            self._lmdb = {"mask": LMDBArrays(self.root / NOL_LMDB["mask"])}
            for m in self.modalities:
                self._lmdb[m] = LMDBArrays(self.root / NOL_LMDB[m])
            if (self.root / NOL_LMDB["mask_clean"]).exists():
                self._lmdb["mask_clean"] = LMDBArrays(self.root / NOL_LMDB["mask_clean"])
            keys = sorted(int(k) for k in self._lmdb["mask"].list_keys() if k.isdigit())
            self._ids = np.array([str(k).encode() for k in keys], dtype=np.bytes_)
        else:
            self._images = SSL4EOS12(
                self.root,
                modalities=self.modalities,
                s2_bands=self.s2_band_names,
                s2_product="L1C",
                season=0,
                patch_size=self.patch_size,
                check_finite=check_finite,
            )
            ids = self._read_ids_csv()
            check_unique_ids(ids, self.root / NOL_IDS_CSV, what="location id")
            self._ids = np.array([s.encode() for s in ids], dtype=np.bytes_)
            self._images._ids = self._ids
        if len(self._ids) == 0:
            raise DataError("no samples", path=self.root)

    def _read_ids_csv(self) -> list[str]:
        path = self.root / NOL_IDS_CSV
        if not path.is_file():
            raise DataError("id list not found", path=path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read id list (not a UTF-8 CSV?): {e}", path=path) from e
        ids = []
        for lineno, line in enumerate(lines, 1):
            f = [v.strip() for v in line.split(",")]
            if not f[0] or not f[0].isdigit():
                if lineno == 1:
                    continue  # header
                raise DataError(f"line {lineno}: bad location id {f[0]!r}", path=path)
            ids.append(f"{int(f[0]):07d}")
        return ids

    # ----------------------------------------------------------------- LMDB form
    def _read_lmdb(self, i: int, seasons: list[int]) -> dict[str, Any]:
        key = self.sample_id(i)
        out: dict[str, Any] = {}
        lab, lab_id = self._lmdb["mask"].get(key, np.uint8)
        if lab.ndim != 3 or lab.shape[0] != NUM_SEASONS:
            raise DataError(
                f"key {key!r}: labels have shape {lab.shape}, expected (4, H, W)",
                path=self._lmdb["mask"].path,
            )
        hw = lab.shape[1:]
        out["mask"] = self._check_mask(lab[seasons], str(self._lmdb["mask"].path))
        meta: dict[str, Any] = {"location": lab_id, "files": {}}
        if "mask_clean" in self._lmdb:
            clean, _ = self._lmdb["mask_clean"].get(key, np.uint8)
            _check_shape(clean, lab.shape, "clean labels", self._lmdb["mask_clean"].path, key)
            out["mask_clean"] = self._check_mask(clean[seasons], str(self._lmdb["mask_clean"].path))
        for m in self.modalities:
            db = self._lmdb[m]
            x, img_id = db.get(key, np.uint8)
            c = len(S1_ORDER) if m == "s1" else len(S2_L1C_ORDER)
            _check_shape(x, (NUM_SEASONS, c, *hw), m, db.path, key)
            if img_id != lab_id:
                raise DataError(
                    f"key {key!r}: {m} id {img_id!r} differs from the label id {lab_id!r}",
                    path=db.path,
                )
            x = x[seasons]
            if m == "s2":
                x = x[:, self._band_index]
            if self.scaling == "physical":
                mean, std = UINT8_S1_STATS if m == "s1" else UINT8_S2_STATS
                if m == "s2":
                    mean = tuple(mean[j] for j in self._band_index)
                    std = tuple(std[j] for j in self._band_index)
                x = uint8_to_physical(x, mean, std)
            else:
                x = x.astype(np.float32)
            out[m] = x
            meta["files"][m] = str(db.path)
        meta["files"]["mask"] = str(self._lmdb["mask"].path)
        out["meta"] = meta
        return out

    # ----------------------------------------------------------------- GeoTIFF form
    def _label_folders(self, kind: str, sid: str) -> list[Path]:
        loc = self.root / NOL_LABEL_DIRS[kind] / sid
        if not loc.is_dir():
            raise DataError("label location folder not found", path=loc)
        subs = [p for p in loc.iterdir() if p.is_dir()]
        if len(subs) != NUM_SEASONS:
            raise DataError(f"expected {NUM_SEASONS} season folders, found {len(subs)}", path=loc)
        return sorted(subs, key=lambda p: acquisition_key(p.name))

    def _read_geotiff(self, i: int, seasons: list[int]) -> dict[str, Any]:
        sid = self.sample_id(i)
        out = self._images._read_arrays(i, seasons)
        size = self.patch_size
        files = out["meta"]["files"]
        first = files["s2"][0] if "s2" in files else files["s1"][0]
        crs: list[tuple[Path, str | None]] = [(Path(first), out["meta"].get("crs"))]
        for kind in ("mask", "mask_clean"):
            if kind == "mask_clean" and not (self.root / NOL_LABEL_DIRS[kind]).is_dir():
                continue
            folders = self._label_folders(kind, sid)
            masks = []
            for s in seasons:
                path = folders[s] / LABEL_FILE
                arr, profile = read_band(path, expected_shape=(size, size), check_finite=True)
                crs.append((path, profile["crs"]))
                masks.append(self._check_mask(arr, str(path)))
                out["meta"]["files"].setdefault(kind, []).append(str(path))
            out[kind] = np.stack(masks)
        check_same_crs(crs)
        return out

    def _read_arrays(self, i: int, seasons: list[int]) -> dict[str, Any]:
        if self.format == "lmdb":
            return self._read_lmdb(i, seasons)
        return self._read_geotiff(i, seasons)


class _NoLDODownstream(SegmentationDatasetBase):
    """SSL4EO-S12@DW / @OSM reader (one date per tile); use a subclass.

    Args:
        root: folder holding ``{kind}_{split}_lmdb`` or ``{kind}_{split}/`` folders.
        split: ``train`` or ``test``.
        format: ``lmdb``, ``geotiff`` or ``auto`` (LMDB when it exists).
        modalities: sensors to read.
        s2_bands: S2 L1C band subset or list.
        **kwargs: see :class:`~rsfuse.data.ssl4eo.SegmentationDatasetBase`.

    Raises:
        ConfigError: bad split or format.
        DataError: missing files, an empty split.
    """

    num_seasons: ClassVar[int] = 1
    kind: ClassVar[str] = ""
    lut: ClassVar[tuple[int, ...]] = ()

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        format: str = "auto",
        modalities: Sequence[str] = ("s1", "s2"),
        s2_bands: str | Sequence[str] = "all",
        seed: int | None = None,
        on_error: str = "raise",
        check_finite: bool = True,
    ) -> None:
        super().__init__(modalities, s2_bands, "L1C", 0, seed, on_error, check_finite)
        if split not in ("train", "test"):
            raise ConfigError(f"split must be 'train' or 'test', got {split!r}", key="split")
        if format not in FORMATS:
            raise ConfigError(f"format must be one of {list(FORMATS)}, got {format!r}", "format")
        self.root = Path(root)
        self.split = split
        if not self.root.is_dir():
            raise DataError("dataset root folder not found", path=self.root)
        lmdb_path = self.root / f"{self.kind}_{split}_lmdb"
        if format == "auto":
            format = "lmdb" if lmdb_path.exists() else "geotiff"
        self.format = format
        self._band_index = [S2_L1C_ORDER.index(b) for b in self.s2_band_names]
        if format == "lmdb":
            self._db = LMDBArrays(lmdb_path)
            pat = re.compile(rf"^{self.kind}_(\d+)$".encode())
            keys = sorted(int(m.group(1)) for k in self._db.list_keys() if (m := pat.match(k)))
            self._ids = np.array([str(k).encode() for k in keys], dtype=np.bytes_)
        else:
            self.folder = self.root / f"{self.kind}_{split}"
            lab_dir = self.folder / f"label_{self.kind}"
            if not lab_dir.is_dir():
                raise DataError("label folder not found", path=lab_dir)
            prefix = f"{self.kind}_"
            names = sorted(
                p.name[len(prefix) : -4]
                for p in lab_dir.glob(f"{prefix}*.tif")
                if not p.name.startswith(".")
            )
            self._ids = np.array([n.encode() for n in names], dtype=np.bytes_)
        if len(self._ids) == 0:
            raise DataError(f"split {split!r} has no samples", path=self.root)

    def _remap(self, lab: np.ndarray, source: str) -> np.ndarray:
        return remap_labels(lab, self.lut, source, what=f"{self.kind} label")

    def _read_arrays(self, i: int, seasons: list[int]) -> dict[str, Any]:
        sid = self.sample_id(i)
        out: dict[str, Any] = {}
        meta: dict[str, Any] = {"files": {}}
        if self.format == "lmdb":
            key = f"{self.kind}_{sid}"
            lab, lab_id = self._db.get(key, np.uint8)
            if lab.ndim != 2:
                raise DataError(
                    f"key {key!r}: label shape {lab.shape} is not (H, W)", self._db.path
                )
            out["mask"] = self._remap(lab, str(self._db.path))[None]
            meta["name"] = lab_id
            for m, dtype, c in (("s1", np.float32, 2), ("s2", np.uint16, len(S2_L1C_ORDER))):
                if m not in self.modalities:
                    continue
                k = f"{m}_{sid}"
                x, _ = self._db.get(k, dtype)
                _check_shape(x, (c, *lab.shape), m, self._db.path, k)
                x = x.astype(np.float32)
                if m == "s2":
                    x = x[self._band_index]
                self._finite(x, m, self._db.path)
                out[m] = x[None]
            meta["files"]["lmdb"] = str(self._db.path)
        else:
            lab_path = self.folder / f"label_{self.kind}" / f"{self.kind}_{sid}.tif"
            lab, profile = read_band(lab_path)
            out["mask"] = self._remap(lab, str(lab_path))[None]
            meta.update(crs=profile["crs"], transform=profile["transform"])
            meta["files"]["mask"] = str(lab_path)
            crs: list[tuple[Path, str | None]] = [(lab_path, profile["crs"])]
            for m, c in (("s1", 2), ("s2", len(S2_L1C_ORDER))):
                if m not in self.modalities:
                    continue
                path = self.folder / f"image_{m}" / f"{m}_{sid}.tif"
                dtypes = S1_DTYPES if m == "s1" else S2_DTYPES
                x, prof = read_multiband(path, c, lab.shape, dtypes=dtypes)
                crs.append((path, prof["crs"]))
                if m == "s2":
                    x = x[self._band_index]
                self._finite(x, m, path)
                out[m] = x[None]
                meta["files"][m] = str(path)
            check_same_crs(crs)
        out["meta"] = meta
        return out


class SSL4EOS12DW(_NoLDODownstream):
    """SSL4EO-S12@DW: expert Dynamic World labels, 9 classes (:data:`DW9`), 255 = unlabelled.

    See :class:`_NoLDODownstream` for the arguments and the module docstring for the layout.
    """

    classes: ClassVar[tuple[str, ...]] = DW9
    kind: ClassVar[str] = "dw"
    lut: ClassVar[tuple[int, ...]] = DW_DOWNSTREAM_LUT
    dataset_name: ClassVar[str] = "SSL4EO-S12@DW"


class SSL4EOS12OSM(_NoLDODownstream):
    """SSL4EO-S12@OSM: OpenStreetMap land use, 13 classes (:data:`OSM13`), 255 = unlabelled.

    See :class:`_NoLDODownstream` for the arguments and the module docstring for the layout.
    """

    classes: ClassVar[tuple[str, ...]] = OSM13
    kind: ClassVar[str] = "osm"
    lut: ClassVar[tuple[int, ...]] = OSM_DOWNSTREAM_LUT
    dataset_name: ClassVar[str] = "SSL4EO-S12@OSM"


__all__ = [
    "DW_DOWNSTREAM_LUT",
    "NOL_LMDB",
    "OSM_DOWNSTREAM_LUT",
    "SSL4EOS12DW",
    "SSL4EOS12OSM",
    "UINT8_S1_STATS",
    "UINT8_S2_STATS",
    "LMDBArrays",
    "NoLDOS12",
    "physical_to_uint8",
    "uint8_to_physical",
]
