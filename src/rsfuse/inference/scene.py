"""Co-registered Sentinel-1 / Sentinel-2 scenes, read strip by strip with rasterio.

Inputs, each either one multi-band GeoTIFF or a folder of per-band files as Sentinel
products ship them:

* S2: a multi-band raster whose band descriptions name the bands (``B02``, ``B8A`` …; or
  pass the names with ``s2_bands``), or a folder with one file per band whose name
  contains ``_B02``, ``_B8A`` … (``.tif`` / ``.jp2``; 20 m and 60 m bands are resampled
  bilinearly onto the 10 m grid on the fly, as the training readers do). Digital numbers
  (reflectance × 10000); 0 is no data.
* S1: a 2-band raster (descriptions ``VV``, ``VH``; without descriptions the order VV, VH
  is assumed) or a folder with ``*VV*`` and ``*VH*`` files, backscatter in dB. NaN or the
  file's nodata value is no data.
* an optional cloud mask (:mod:`rsfuse.inference.clouds`).

:class:`SceneInputs` checks everything before any work: files exist and open, the bands
the model needs are there, and S1, S2 (every band file) and the mask share CRS,
resolution and extent. Each problem raises :class:`~rsfuse.errors.DataError` naming the
file and the mismatch. :meth:`SceneInputs.read` then returns one strip of rows of every
input; memory is bounded by the strip, never the scene.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from rsfuse.errors import DataError
from rsfuse.inference.clouds import CloudSpec, band_cloud_mask, s2_cloud_test

_BAND_RE = re.compile(r"(?:^|[_\-.])(B(?:0[1-9]|1[0-2]|8A))(?=$|[_\-.])", re.IGNORECASE)
_POL_RE = re.compile(r"(?:^|[_\-.])(VV|VH)(?=$|[_\-.])", re.IGNORECASE)
_RASTER_SUFFIXES = (".tif", ".tiff", ".jp2")
#: Relative tolerance (in pixels) when comparing grid origins and extents.
_GRID_TOL = 1e-3


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS, affine transform and size."""

    crs: Any
    transform: Any
    width: int
    height: int

    @classmethod
    def of(cls, ds: Any) -> Grid:
        return cls(ds.crs, ds.transform, ds.width, ds.height)

    @property
    def resolution(self) -> tuple[float, float]:
        return (abs(self.transform.a), abs(self.transform.e))

    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        x0, y0 = t @ (0, 0)
        x1, y1 = t @ (self.width, self.height)
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


#: GDAL drivers a file named ``.tif`` / ``.tiff`` must open with (a PNG renamed to .tif
#: would otherwise be read without georeferencing).
_TIFF_DRIVERS = ("GTiff", "COG")


def _open(path: Path, what: str) -> Any:
    if not path.exists():
        raise DataError(f"{what} not found", path=path)
    if path.is_dir():
        raise DataError(f"{what} is a folder, expected a raster file", path=path)
    try:
        ds = rasterio.open(path)
    except RasterioError as e:
        raise DataError(f"cannot open {what} as a raster: {e}", path=path) from e
    if path.suffix.lower() in (".tif", ".tiff") and ds.driver not in _TIFF_DRIVERS:
        ds.close()
        raise DataError(f"{what} is named .tif but is a {ds.driver} file", path=path)
    return ds


def _check_unique(names: Sequence[str], path: Path, what: str) -> None:
    """Two bands under one name: which one the model reads would be a guess."""
    seen: dict[str, int] = {}
    for i, n in enumerate(names, start=1):
        if n in seen:
            raise DataError(
                f"{what}: bands {seen[n]} and {i} are both named {n!r}; band names must be "
                f"unique (they are {list(names)})",
                path=path,
            )
        seen[n] = i


def _crs_name(crs: Any) -> str:
    return "none" if crs is None else crs.to_string()


def _check_crs(ref: Grid, ref_path: Path, other: Grid, other_path: Path) -> None:
    if ref.crs is None or other.crs is None or ref.crs != other.crs:
        raise DataError(
            f"CRS mismatch: {other_path} is {_crs_name(other.crs)} but {ref_path} is "
            f"{_crs_name(ref.crs)}",
            path=other_path,
        )


def check_same_grid(ref: Grid, ref_path: Path, other: Grid, other_path: Path) -> None:
    """Raise :class:`DataError` unless ``other`` has ``ref``'s CRS, resolution and extent."""
    _check_crs(ref, ref_path, other, other_path)
    rx, ry = ref.resolution
    if not np.allclose(other.resolution, ref.resolution, rtol=1e-6):
        raise DataError(
            f"resolution mismatch: {other_path} has {other.resolution[0]:g} x "
            f"{other.resolution[1]:g} m pixels but {ref_path} has {rx:g} x {ry:g} m",
            path=other_path,
        )
    tol = _GRID_TOL * max(rx, ry)
    if (other.width, other.height) != (ref.width, ref.height) or not np.allclose(
        other.bounds(), ref.bounds(), atol=tol
    ):
        raise DataError(
            f"extent mismatch: {other_path} covers {other.bounds()} ({other.width} x "
            f"{other.height} px) but {ref_path} covers {ref.bounds()} ({ref.width} x "
            f"{ref.height} px); the inputs must be co-registered on one grid",
            path=other_path,
        )


def _check_covers(ref: Grid, ref_path: Path, other: Grid, other_path: Path) -> None:
    """A coarser band file must share the CRS and cover the 10 m grid's extent."""
    _check_crs(ref, ref_path, other, other_path)
    tol = _GRID_TOL * max(*ref.resolution, *other.resolution)
    if not np.allclose(other.bounds(), ref.bounds(), atol=tol):
        raise DataError(
            f"extent mismatch: {other_path} covers {other.bounds()} but {ref_path} covers "
            f"{ref.bounds()}",
            path=other_path,
        )


class _BandSource:
    """One input band: a band of an open dataset, reprojected onto the grid if needed."""

    def __init__(self, ds: Any, index: int, path: Path, grid: Grid | None) -> None:
        self.ds, self.index, self.path = ds, index, path
        self.reader = ds
        if grid is not None and Grid.of(ds) != grid:
            self.reader = WarpedVRT(
                ds,
                crs=grid.crs,
                transform=grid.transform,
                width=grid.width,
                height=grid.height,
                resampling=Resampling.bilinear,
            )

    def read(self, y0: int, h: int, width: int) -> np.ndarray:
        try:
            return self.reader.read(self.index, window=Window(0, y0, width, h))
        except RasterioError as e:
            raise DataError(f"cannot read rows {y0}-{y0 + h}: {e}", path=self.path) from e


def _read_sources(sources: Sequence[_BandSource], y0: int, h: int, w: int, out: np.ndarray) -> None:
    """Rows ``[y0, y0 + h)`` of every source into ``out`` [C, h, W]. Bands of one raster
    are read in one call: GDAL then decodes each (pixel-interleaved) tile once, not once
    per band."""
    groups: dict[int, list[int]] = {}
    for c, src in enumerate(sources):
        groups.setdefault(id(src.reader), []).append(c)
    for chans in groups.values():
        first = sources[chans[0]]
        if len(chans) == 1:
            out[chans[0]] = first.read(y0, h, w)
            continue
        try:
            data = first.reader.read([sources[c].index for c in chans], window=Window(0, y0, w, h))
        except RasterioError as e:
            raise DataError(f"cannot read rows {y0}-{y0 + h}: {e}", path=first.path) from e
        out[chans] = data


def _band_name(name: str) -> str:
    """Canonical S2 band name: ``b2`` / ``B2`` → ``B02``, ``b8a`` → ``B8A``."""
    n = name.strip().upper()
    m = re.fullmatch(r"B(\d)", n)
    return f"B0{m.group(1)}" if m else n


def _raster_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _RASTER_SUFFIXES)


@dataclass
class Strip:
    """Rows ``y0 … y0 + h`` of every input.

    Attributes:
        s2: float32 [C, h, W] digital numbers in the model's band order, or None.
        s1: float32 [2, h, W] dB (no-data pixels set to 0), or None.
        s2_valid: bool [h, W] S2 has data (not all bands 0 / nodata).
        s1_valid: bool [h, W] S1 has data (finite, not nodata).
        cloud: bool [h, W] under cloud.
    """

    y0: int
    s2: np.ndarray | None
    s1: np.ndarray | None
    s2_valid: np.ndarray
    s1_valid: np.ndarray
    cloud: np.ndarray


class SceneInputs:
    """The inputs of one scene, checked up front and read by strips.

    Args:
        s2: S2 raster or folder of band files (None: no S2).
        s1: S1 raster or folder (None: no S1).
        s2_bands: S2 band names the model needs, in its channel order (empty: none).
        need_s1: whether the model takes S1.
        clouds: ``--clouds`` value (see :mod:`rsfuse.inference.clouds`).
        s2_band_names: names of a multi-band S2 file's bands when it has no descriptions.
        cloud_dilate: dilation of the built-in cloud test, in pixels.

    Raises:
        DataError: a missing / unreadable file, missing bands, a grid mismatch, or no input
            the model can use.
    """

    def __init__(
        self,
        s2: str | Path | None,
        s1: str | Path | None,
        s2_bands: Sequence[str],
        need_s1: bool,
        clouds: str | None = "auto",
        s2_band_names: Sequence[str] | None = None,
        cloud_dilate: int = 2,
    ) -> None:
        self.s2_path = Path(s2) if s2 is not None else None
        self.s1_path = Path(s1) if s1 is not None else None
        self.s2_bands = tuple(s2_bands)
        self.cloud_spec = CloudSpec.parse(clouds)
        self.cloud_dilate = int(cloud_dilate)
        self.s2_band_names_override = (
            [_band_name(b) for b in s2_band_names] if s2_band_names else None
        )
        self._open: list[Any] = []
        self.s2_sources: list[_BandSource] = []
        self.s1_sources: list[_BandSource] = []
        self.cloud_source: _BandSource | None = None
        self.s2_nodata: float | None = None
        self.s1_nodata: float | None = None
        self.cloud_note = ""
        takes = " and ".join(m for m, on in (("S2", bool(self.s2_bands)), ("S1", need_s1)) if on)
        if self.s2_bands and self.s2_path is None:
            raise DataError(f"the model takes {takes}, but no S2 input was given (--s2)")
        if need_s1 and self.s1_path is None:
            raise DataError(f"the model takes {takes}, but no S1 input was given (--s1)")
        try:
            self.grid, self.grid_path = self._open_s2() if self._use_s2 else (None, None)
            if need_s1 and self.s1_path is not None:
                self._open_s1()
            if self.grid is None:
                raise DataError("the model's inputs are missing: give --s1 or --s2")
            self._open_clouds()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ opening
    @property
    def _use_s2(self) -> bool:
        return bool(self.s2_bands) and self.s2_path is not None

    @property
    def has_s2(self) -> bool:
        return bool(self.s2_sources)

    @property
    def has_s1(self) -> bool:
        return bool(self.s1_sources)

    def _track(self, path: Path, what: str) -> Any:
        ds = _open(path, what)
        self._open.append(ds)
        return ds

    def _open_s2(self) -> tuple[Grid, Path]:
        path = self.s2_path
        assert path is not None
        if path.is_dir():
            return self._open_s2_folder(path)
        ds = self._track(path, "S2 raster")
        names = self._s2_names(ds, path)
        missing = [b for b in self.s2_bands if b not in names]
        if missing:
            raise DataError(
                f"S2 lacks bands {missing} that the model needs (it has {names}; the model "
                f"takes {list(self.s2_bands)})",
                path=path,
            )
        grid = Grid.of(ds)
        self.s2_sources = [_BandSource(ds, names.index(b) + 1, path, None) for b in self.s2_bands]
        self.s2_nodata = ds.nodata
        return grid, path

    def _s2_names(self, ds: Any, path: Path) -> list[str]:
        desc = [_band_name(d or "") for d in ds.descriptions]
        if self.s2_band_names_override is not None:
            names = list(self.s2_band_names_override)
            if len(names) != ds.count:
                raise DataError(
                    f"--s2-bands names {len(names)} bands but the file has {ds.count}", path=path
                )
            _check_unique(names, path, "--s2-bands")
            if all(desc) and desc != names:
                raise DataError(
                    f"--s2-bands gives the order {names} but the file's band descriptions say "
                    f"{desc}; leave --s2-bands out or fix the descriptions",
                    path=path,
                )
            return names
        if all(desc):
            _check_unique(desc, path, "S2 band descriptions")
            return desc
        raise DataError(
            f"the S2 raster's {ds.count} bands have no descriptions naming them (B02, B03 …); "
            "pass their names in order with --s2-bands",
            path=path,
        )

    def _open_s2_folder(self, folder: Path) -> tuple[Grid, Path]:
        files: dict[str, Path] = {}
        for p in _raster_files(folder):
            m = _BAND_RE.search(p.stem)
            if m:
                band = m.group(1).upper()
                if band in files and band in self.s2_bands:
                    raise DataError(
                        f"S2 folder holds two files for band {band}: {files[band].name} and "
                        f"{p.name}; which one to read would be a guess",
                        path=folder,
                    )
                files.setdefault(band, p)
        missing = [b for b in self.s2_bands if b not in files]
        if missing:
            raise DataError(
                f"S2 folder lacks band files for {missing} (found {sorted(files)}); the model "
                f"takes {list(self.s2_bands)}",
                path=folder,
            )
        opened = {b: self._track(files[b], f"S2 band {b}") for b in self.s2_bands}
        finest = min(opened, key=lambda b: opened[b].res[0])
        grid, ref_path = Grid.of(opened[finest]), files[finest]
        for b, ds in opened.items():
            if ds.count != 1:
                raise DataError(f"S2 band file has {ds.count} bands, expected 1", path=files[b])
            _check_covers(grid, ref_path, Grid.of(ds), files[b])
        self.s2_sources = [_BandSource(opened[b], 1, files[b], grid) for b in self.s2_bands]
        self.s2_nodata = opened[finest].nodata
        return grid, ref_path

    def _open_s1(self) -> None:
        path = self.s1_path
        assert path is not None
        if path.is_dir():
            files: dict[str, Path] = {}
            for p in _raster_files(path):
                m = _POL_RE.search(p.stem)
                if m:
                    pol = m.group(1).upper()
                    if pol in files:
                        raise DataError(
                            f"S1 folder holds two {pol} files: {files[pol].name} and {p.name}",
                            path=path,
                        )
                    files[pol] = p
            missing = [b for b in ("VV", "VH") if b not in files]
            if missing:
                raise DataError(f"S1 folder lacks {missing} files (found {sorted(files)})", path)
            dss = {b: self._track(files[b], f"S1 {b}") for b in ("VV", "VH")}
            srcs = [(dss[b], 1, files[b]) for b in ("VV", "VH")]
        else:
            ds = self._track(path, "S1 raster")
            desc = [(d or "").strip().upper() for d in ds.descriptions]
            if all(desc):
                _check_unique(desc, path, "S1 band descriptions")
                missing = [b for b in ("VV", "VH") if b not in desc]
                if missing:
                    raise DataError(
                        f"S1 lacks {missing} (its bands are {desc}); rsfuse needs VV and VH",
                        path=path,
                    )
                srcs = [(ds, desc.index(b) + 1, path) for b in ("VV", "VH")]
            elif ds.count == 2:
                srcs = [(ds, 1, path), (ds, 2, path)]
            else:
                raise DataError(
                    f"S1 has {ds.count} bands without descriptions; expected 2 (VV, VH)", path
                )
        for ds, _, p in srcs:
            if not np.issubdtype(np.dtype(ds.dtypes[0]), np.floating):
                raise DataError(
                    f"S1 must be backscatter in dB as floats, got {ds.dtypes[0]}", path=p
                )
        if self.grid is None:
            self.grid, self.grid_path = Grid.of(srcs[0][0]), srcs[0][2]
        for ds, _, p in srcs:
            check_same_grid(self.grid, self.grid_path, Grid.of(ds), p)
        self.s1_sources = [_BandSource(ds, i, p, None) for ds, i, p in srcs]
        self.s1_nodata = srcs[0][0].nodata

    def _open_clouds(self) -> None:
        spec = self.cloud_spec
        if spec.kind == "file":
            assert spec.path is not None
            ds = self._track(spec.path, "cloud mask")
            check_same_grid(self.grid, self.grid_path, Grid.of(ds), spec.path)
            self.cloud_source = _BandSource(ds, 1, spec.path, None)
        elif spec.kind == "band":
            if self.s2_path is None or self.s2_path.is_dir():
                raise DataError(
                    f"--clouds band:{spec.band} needs a multi-band S2 raster (--s2 FILE)"
                )
            ds = _open(self.s2_path, "S2 raster")
            self._open.append(ds)
            names = self._s2_names(ds, self.s2_path)
            if spec.band.upper() not in names:
                raise DataError(
                    f"--clouds band:{spec.band}: no band of that name (it has {names})",
                    path=self.s2_path,
                )
            index = names.index(spec.band.upper()) + 1
            self.cloud_source = _BandSource(ds, index, self.s2_path, None)
        elif spec.kind == "auto" and (
            not self.has_s2
            or s2_cloud_test(np.zeros((len(self.s2_bands), 1, 1)), self.s2_bands) is None
        ):
            # the built-in test needs B02, B03, B04, B11 among the model's bands
            self.cloud_spec = CloudSpec("none")
            self.cloud_note = (
                "the built-in cloud test needs S2 bands B02, B03, B04 and B11; no cloud mask"
            )

    # ------------------------------------------------------------------ reading
    @property
    def width(self) -> int:
        return self.grid.width

    @property
    def height(self) -> int:
        return self.grid.height

    def _read_s2(self, y0: int, h: int) -> tuple[np.ndarray, np.ndarray]:
        w = self.width
        s2 = np.empty((len(self.s2_sources), h, w), np.float32)  # [C, h, W]
        _read_sources(self.s2_sources, y0, h, w, s2)
        nodata = 0.0 if self.s2_nodata is None else float(self.s2_nodata)
        valid = np.any(s2 != nodata, axis=0) & np.all(np.isfinite(s2), axis=0)
        if not valid.all():
            s2[:, ~valid] = 0.0
        return s2, valid

    def _read_s1(self, y0: int, h: int) -> tuple[np.ndarray, np.ndarray]:
        w = self.width
        s1 = np.empty((2, h, w), np.float32)  # [2, h, W]
        _read_sources(self.s1_sources, y0, h, w, s1)
        valid = np.all(np.isfinite(s1), axis=0)
        if self.s1_nodata is not None and np.isfinite(self.s1_nodata):
            valid &= np.all(s1 != self.s1_nodata, axis=0)
        if not valid.all():
            s1[:, ~valid] = 0.0
        return s1, valid

    def read(self, y0: int, h: int) -> Strip:
        """Rows ``[y0, y0 + h)`` of every input (see :class:`Strip`)."""
        w = self.width
        ones = np.ones((h, w), bool)
        s2 = s1 = None
        s2_valid = s1_valid = ones
        cloud = None
        if self.has_s2:
            if self.cloud_source is None and self.cloud_spec.kind == "auto":
                # the built-in test is dilated: read a margin of rows with the strip (one
                # read, no copy) so a pixel's result never depends on the strip it is in
                m = self.cloud_dilate
                top, bottom = min(m, y0), min(m, self.height - (y0 + h))
                ext, ext_valid = self._read_s2(y0 - top, top + h + bottom)
                test = s2_cloud_test(ext, self.s2_bands, dilate=m)
                assert test is not None
                cloud = test[top : top + h]
                s2, s2_valid = ext[:, top : top + h], ext_valid[top : top + h]
            else:
                s2, s2_valid = self._read_s2(y0, h)
        if self.has_s1:
            s1, s1_valid = self._read_s1(y0, h)
        if cloud is None:
            cloud = self._cloud_mask(y0, h)
        return Strip(y0, s2, s1, s2_valid, s1_valid, cloud)

    def _cloud_mask(self, y0: int, h: int) -> np.ndarray:
        """The cloud mask of a file or band (``none``: all clear)."""
        spec, w = self.cloud_spec, self.width
        if self.cloud_source is None:
            return np.zeros((h, w), bool)
        values = self.cloud_source.read(y0, h, w)
        if spec.kind == "band":
            return band_cloud_mask(values, spec.band or "")
        return values != 0

    def close(self) -> None:
        for ds in self._open:
            ds.close()
        self._open = []

    def __enter__(self) -> SceneInputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
