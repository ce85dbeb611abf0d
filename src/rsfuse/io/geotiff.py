"""GeoTIFF reading and writing with rasterio, with the project's errors and atomic writes.

Reading names the file in every error: missing, truncated/corrupt, not a GeoTIFF (GDAL
opens a PNG or JPEG named ``.tif`` without complaint), a band count other than expected
(a multi-band file where one band is published would otherwise be read as its band 1), a
stored dtype the dataset does not publish (e.g. uint8 where uint16 is published: an 8-bit
export would be read as reflectance x 10000 without a word), wrong size, NaN/inf.
Writing goes to a temporary name in the same folder and is renamed into place, so an
interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.transform import Affine

from rsfuse.errors import ConfigError, DataError
from rsfuse.io.atomic import atomic_output

# Opening thousands of small files: never list the folder on open (GDAL would, per file).
os.environ.setdefault("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")

RESAMPLING: dict[str, Resampling] = {
    "nearest": Resampling.nearest,
    "bilinear": Resampling.bilinear,
    "cubic": Resampling.cubic,
    "average": Resampling.average,
}


def resampling(name: str) -> Resampling:
    """The rasterio resampling method called ``name``.

    Raises:
        ConfigError: unknown name.
    """
    if name not in RESAMPLING:
        raise ConfigError(
            f"unknown resampling {name!r}; expected one of {list(RESAMPLING)}", key="resampling"
        )
    return RESAMPLING[name]


#: GDAL drivers a GeoTIFF opens with.
GEOTIFF_DRIVERS: tuple[str, ...] = ("GTiff", "COG")


def check_dataset(
    src: Any,
    path: Path,
    *,
    count: int | None = 1,
    dtypes: Sequence[str] | None = None,
    what: str = "",
) -> None:
    """Check an open rasterio dataset: a GeoTIFF, ``count`` bands, a published dtype.

    Args:
        src: the open dataset.
        path: its file (named in the error).
        count: the number of bands it must have (None: any).
        dtypes: the stored dtypes the dataset publishes for this file (None: any).
        what: words naming the file's role in the messages (``S2 band B02`` …).

    Raises:
        DataError: another format, band count or dtype.
    """
    role = f"{what}: " if what else ""
    if src.driver not in GEOTIFF_DRIVERS:
        raise DataError(f"{role}is a {src.driver} file, not a GeoTIFF", path=path)
    if count is not None and src.count != count:
        raise DataError(
            f"{role}has {src.count} bands, expected {count}"
            + (" (a single-band file: refusing to read only band 1)" if count == 1 else ""),
            path=path,
        )
    if dtypes is not None and src.dtypes[0] not in tuple(dtypes):
        raise DataError(
            f"{role}stored as {src.dtypes[0]}, but the dataset publishes "
            f"{' / '.join(dtypes)} here (a rescaled or converted copy?)",
            path=path,
        )


def read_band(
    path: str | Path,
    *,
    expected_shape: tuple[int, int] | None = None,
    out_shape: tuple[int, int] | None = None,
    resample: str = "bilinear",
    check_finite: bool = True,
    dtypes: Sequence[str] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Read the band of a single-band GeoTIFF as float32.

    Args:
        path: the file.
        expected_shape: native (height, width) the file must have.
        out_shape: (height, width) to resample to while reading (GDAL overview/warp-free
            decimated read, the same as TorchGeo's ``out_shape`` read).
        resample: resampling method name when ``out_shape`` differs from the native size.
        check_finite: raise on NaN or inf values.
        dtypes: stored dtypes the dataset publishes for this file (None: any).

    Returns:
        ``(array [H, W] float32, profile)`` where profile holds ``crs`` (str or None),
        ``transform`` (6 floats of the file's native grid) and ``dtype`` (the stored dtype).

    Raises:
        DataError: the file is missing, unreadable, not a GeoTIFF, not single-band, of
            another dtype than ``dtypes``, of the wrong size or has NaN/inf.
    """
    p = Path(path)
    with _open_checked(p, 1, expected_shape, dtypes) as src:
        if out_shape is not None and tuple(out_shape) != (src.height, src.width):
            arr = src.read(
                1,
                out_shape=tuple(out_shape),
                resampling=resampling(resample),
                out_dtype="float32",
            )
        else:
            arr = src.read(1, out_dtype="float32")
        profile = _profile(src)
    if check_finite and not np.isfinite(arr).all():
        n = int((~np.isfinite(arr)).sum())
        raise DataError(f"{n} NaN/inf pixel values", path=p)
    return arr, profile


def read_band_stack(
    files: Sequence[tuple[Path, int]],
    size: int,
    *,
    resample: str = "bilinear",
    check_finite: bool = True,
    dtypes: Sequence[str] | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Single-band GeoTIFFs of different resolutions read onto one grid, as :func:`read_band`.

    Args:
        files: ``(path, native side n)`` per channel; each file must be n x n.
        size: side of the common grid (e.g. the 10 m grid of a Sentinel-2 patch).
        resample, check_finite, dtypes: as :func:`read_band`.

    Returns:
        ``(array [C, size, size] float32, profiles)``: one :func:`read_band` profile per
        file, with ``grid_transform`` added: the file's transform scaled to the common grid.
    """
    out = np.empty((len(files), size, size), dtype=np.float32)
    profiles = []
    for c, (path, n) in enumerate(files):
        out[c], profile = read_band(
            path,
            expected_shape=(n, n),
            out_shape=(size, size),
            resample=resample,
            check_finite=check_finite,
            dtypes=dtypes,
        )
        s = n / size
        a, b, c0, d, e, f = profile["transform"]
        profile["grid_transform"] = (a * s, b * s, c0, d * s, e * s, f)
        profiles.append(profile)
    return out, profiles


def read_multiband(
    path: Path,
    count: int,
    shape: tuple[int, ...],
    *,
    dtypes: Sequence[str] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """All bands of a multi-band GeoTIFF as float32 [count, H, W].

    Args:
        path: the file.
        count: the number of bands it must have.
        shape: the (height, width) it must have.
        dtypes: stored dtypes the dataset publishes for this file (None: any).

    Returns:
        ``(array, profile)``, profile as :func:`read_band`'s.

    Raises:
        DataError: missing/corrupt file, not a GeoTIFF, wrong band count, dtype or size.
    """
    with _open_checked(Path(path), count, shape, dtypes) as src:
        return src.read(out_dtype="float32"), _profile(src)


@contextlib.contextmanager
def _open_checked(
    path: Path, count: int, shape: Sequence[int] | None, dtypes: Sequence[str] | None
) -> Iterator[DatasetReader]:
    """The open GeoTIFF ``path`` once :func:`check_dataset` (``count`` bands, ``dtypes``)
    passed and its size is ``shape`` (None: any); rasterio's errors, in the block too,
    become :class:`~rsfuse.errors.DataError` naming the file."""
    if not path.is_file():
        raise DataError("file not found", path=path)
    try:
        with rasterio.open(path) as src:
            check_dataset(src, path, count=count, dtypes=dtypes)
            if shape is not None and (src.height, src.width) != tuple(shape):
                raise DataError(
                    f"raster is {src.height}x{src.width}, expected {shape[0]}x{shape[1]}",
                    path=path,
                )
            yield src
    except DataError:
        raise
    except (RasterioError, OSError, ValueError) as e:
        raise DataError(f"cannot read GeoTIFF (corrupt or truncated?): {e}", path=path) from e


def _profile(src: DatasetReader) -> dict[str, Any]:
    """``crs`` (str or None), ``transform`` (6 floats) and stored ``dtype`` of a file."""
    return {
        "crs": src.crs.to_string() if src.crs else None,
        "transform": tuple(src.transform)[:6],
        "dtype": src.dtypes[0],
    }


def probe_header(
    path: Path, expected_shape: tuple[int, int], dtypes: Sequence[str] | None = None
) -> str | None:
    """Cheaply check a single-band GeoTIFF without decoding pixels.

    Opens the file (header and IFD only), checks its format, band count, dtype and raster
    size, and checks that every pixel block listed in the TIFF directory lies inside the
    file, which catches truncated files whose header is intact.

    Args:
        path: the GeoTIFF.
        expected_shape: the (height, width) it must have.
        dtypes: stored dtypes the dataset publishes for this file (None: any).

    Returns:
        None when the file looks fine, else a message that names the file.
    """
    if not path.is_file():
        return f"[file {path}] file not found"
    try:
        size = path.stat().st_size
        with rasterio.open(path) as src:
            try:
                check_dataset(src, path, count=1, dtypes=dtypes)
            except DataError as e:
                return str(e)
            if (src.height, src.width) != tuple(expected_shape):
                return (
                    f"[file {path}] raster is {src.height}x{src.width}, expected "
                    f"{expected_shape[0]}x{expected_shape[1]}"
                )
            bh, bw = src.block_shapes[0]
            for y in range(math.ceil(src.height / bh)):
                for x in range(math.ceil(src.width / bw)):
                    off = src.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=1)
                    n = src.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=1)
                    if off is not None and n is not None and int(off) + int(n) > size:
                        return (
                            f"[file {path}] truncated: pixel block ({x}, {y}) ends at byte "
                            f"{int(off) + int(n)} but the file has {size} bytes"
                        )
    except (RasterioError, OSError, ValueError) as e:
        return f"[file {path}] cannot read GeoTIFF header (corrupt or truncated?): {e}"
    return None


def write_geotiff(
    path: str | Path,
    array: np.ndarray,
    *,
    crs: str | None,
    transform: Affine | Sequence[float],
    nodata: float | None = None,
    compress: str | None = "deflate",
    extra_tags: dict[str, str] | None = None,
) -> Path:
    """Write a [H, W] or [C, H, W] array as a GeoTIFF, atomically.

    Args:
        path: destination.
        array: pixel values; dtype is kept.
        crs: CRS as a rasterio-understood string (``EPSG:32633``) or None.
        transform: affine transform of the pixel grid.
        nodata: nodata value to record.
        compress: GDAL compression or None.
        extra_tags: dataset-level metadata tags.

    Returns:
        The final path.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    arr = array[None] if array.ndim == 2 else array
    if not isinstance(transform, Affine):
        transform = Affine(*transform)
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "height": arr.shape[1],
        "width": arr.shape[2],
        "count": arr.shape[0],
        "dtype": arr.dtype.name,
        "crs": crs,
        "transform": transform,
    }
    if compress:
        profile["compress"] = compress
    if nodata is not None:
        profile["nodata"] = nodata
    with atomic_output(p) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(arr)
        if extra_tags:
            dst.update_tags(**extra_tags)
    return p
