"""Writers of ``rsfuse predict``'s outputs: Cloud-Optimised GeoTIFFs, GeoJSON and CSV.

Rasters stream: rows are written into a tiled GeoTIFF under a temporary name as they
become final, then GDAL's COG driver copies it into a Cloud-Optimised GeoTIFF (internal
tiles, overviews, header first) under another temporary name, which is renamed into place.
Nothing under the final name is ever half-written, and memory stays bounded by the rows
in flight (GDAL's block cache does the copy). The temporary files sit beside the target
(``.<name>.rows-<pid>.tif``, ``.<name>.cog-<pid>.tif``); those of a killed run are removed
by the next run writing the same output.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.transform import Affine
from rasterio.windows import Window

from rsfuse.errors import DataError
from rsfuse.io.atomic import apply_umask, clean_stale_temps, temp_path, write_atomic

#: Code of each inference path in the ``*_path.tif`` raster.
PATH_CODES: dict[str, int] = {"nodata": 0, "s1+s2": 1, "s1": 2, "s2": 3}
PATH_NAMES: dict[int, str] = {v: k for k, v in PATH_CODES.items()}
PATH_COLORS: dict[int, tuple[int, int, int, int]] = {
    0: (0, 0, 0, 0),
    1: (46, 139, 87, 255),
    2: (255, 140, 0, 255),
    3: (65, 105, 225, 255),
}
#: Class map value of pixels with no prediction.
NODATA_CLASS = 255
BLOCK = 512


def class_colormap(n: int) -> dict[int, tuple[int, int, int, int]]:
    """A colour per class (matplotlib's tab20 / tab10), nodata transparent."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    out = {i: (*tuple(round(255 * c) for c in cmap(i % cmap.N)[:3]), 255) for i in range(n)}
    out[NODATA_CLASS] = (0, 0, 0, 0)
    return out  # type: ignore[return-value]


class RasterSink:
    """A raster written by rows, finished as a COG.

    Args:
        path: final ``.tif`` path.
        crs, transform, width, height: the scene grid (copied from the input).
        count: bands.
        dtype: numpy dtype name.
        nodata: nodata value, or None.
        descriptions: band descriptions.
        colormap: palette of band 1 (single-band uint8 rasters).
        tags: dataset-level metadata tags; ``band_tags``: tags of band 1.
        overview_resampling: ``NEAREST`` for classes, ``AVERAGE`` for probabilities.
    """

    def __init__(
        self,
        path: Path,
        *,
        crs: Any,
        transform: Affine,
        width: int,
        height: int,
        count: int,
        dtype: str,
        nodata: float | None,
        descriptions: Sequence[str] = (),
        colormap: dict[int, tuple[int, int, int, int]] | None = None,
        tags: dict[str, str] | None = None,
        band_tags: dict[str, str] | None = None,
        overview_resampling: str = "NEAREST",
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(self.path)  # left by a killed run (its pid no longer runs)
        self.tmp = temp_path(self.path, "rows", ".tif")
        self.overview_resampling = overview_resampling
        block = BLOCK if min(width, height) >= BLOCK else 16 * max(1, min(width, height) // 16)
        profile = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "count": count,
            "dtype": dtype,
            "crs": crs,
            "transform": transform,
            "nodata": nodata,
            "compress": "deflate",
            "BIGTIFF": "IF_SAFER",
        }
        if block >= 16:
            profile.update(tiled=True, blockxsize=block, blockysize=block)
        try:
            self.ds = rasterio.open(self.tmp, "w", **profile)
        except rasterio.errors.RasterioError as e:
            raise DataError(f"cannot create output raster: {e}", path=self.path) from e
        for i, d in enumerate(descriptions, start=1):
            self.ds.set_band_description(i, d)
        if colormap is not None:
            self.ds.write_colormap(1, colormap)
        if tags:
            self.ds.update_tags(**tags)
        if band_tags:
            self.ds.update_tags(1, **band_tags)

    def write_rows(self, row0: int, values: np.ndarray) -> None:
        """Write ``values`` [count, rows, W] starting at scene row ``row0``."""
        _c, n, w = values.shape
        self.ds.write(values, window=Window(0, row0, w, n))

    def finish(self) -> Path:
        """Close, convert to a COG and rename into place; returns the final path."""
        self.ds.close()
        cog_tmp = temp_path(self.path, "cog", ".tif")
        try:
            rasterio.shutil.copy(
                self.tmp,
                cog_tmp,
                driver="COG",
                compress="DEFLATE",
                overview_resampling=self.overview_resampling,
                blocksize=BLOCK,
                BIGTIFF="IF_SAFER",
            )
            apply_umask(cog_tmp)
            os.replace(cog_tmp, self.path)
        finally:
            for p in (self.tmp, cog_tmp):
                if p.exists():
                    p.unlink()
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file (after an error)."""
        if not self.ds.closed:
            self.ds.close()
        if self.tmp.exists():
            self.tmp.unlink()


def cell_polygon(transform: Affine, row0: int, col0: int, rows: int, cols: int) -> list:
    """GeoJSON polygon ring (closed, counter-clockwise) of a pixel block in map coordinates."""
    corners = [(col0, row0 + rows), (col0 + cols, row0 + rows), (col0 + cols, row0), (col0, row0)]
    ring = [list(transform @ (c, r)) for c, r in corners]
    ring.append(ring[0])
    return [ring]


def write_cells(
    geojson_path: Path,
    csv_path: Path,
    cells: list[dict[str, Any]],
    class_names: Sequence[str],
    crs: Any,
) -> None:
    """Write classification cells as GeoJSON (input CRS, named in a ``crs`` member) and CSV.

    Each cell dict holds ``id``, ``row``, ``col``, ``bounds`` (minx, miny, maxx, maxy),
    ``polygon`` (GeoJSON coordinates), ``path``, ``cloud_fraction``, ``scores`` (list or
    None for nodata cells) and ``labels`` (class names above the threshold).
    """
    crs_name = crs.to_string() if crs is not None else None
    features = []
    for c in cells:
        props = {
            "id": c["id"],
            "row": c["row"],
            "col": c["col"],
            "path": c["path"],
            "cloud_fraction": round(float(c["cloud_fraction"]), 4),
            "labels": c["labels"],
        }
        if c["scores"] is not None:
            props.update({n: round(float(s), 5) for n, s in zip(class_names, c["scores"])})
        features.append(
            {
                "type": "Feature",
                "id": c["id"],
                "geometry": {"type": "Polygon", "coordinates": c["polygon"]},
                "properties": props,
            }
        )
    fc: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if crs_name:
        fc["crs"] = {"type": "name", "properties": {"name": crs_name}}
    write_atomic(geojson_path, json.dumps(fc) + "\n")

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            "id",
            "row",
            "col",
            "minx",
            "miny",
            "maxx",
            "maxy",
            "path",
            "cloud_fraction",
            "labels",
            *list(class_names),
        ]
    )
    for c in cells:
        scores = c["scores"] if c["scores"] is not None else [""] * len(class_names)
        w.writerow(
            [c["id"], c["row"], c["col"], *(f"{v:.3f}" for v in c["bounds"]), c["path"]]
            + [f"{c['cloud_fraction']:.4f}", ";".join(c["labels"])]
            + [s if s == "" else f"{float(s):.5f}" for s in scores]
        )
    write_atomic(csv_path, buf.getvalue())
