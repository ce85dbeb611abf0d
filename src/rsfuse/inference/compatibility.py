"""Does a scene look like the data a bundle was trained on? Product level, bands, resolution.

``rsfuse predict`` runs any co-registered scene through a bundle, but a model trained on
L2A (surface reflectance) gives wrong maps on an L1C (top-of-atmosphere) scene without any
error, as does one trained on 10 m pixels on a 20 m grid or one fed reflectance in 0–1
instead of × 10000. :func:`scene_mismatches` compares what the scene tells about itself with
the bundle's ``s2_product``, band units (S2 reflectance × 10000, S1 dB; checked on a
decimated read) and training resolution (``resolution_m``, 10 m for every rsfuse dataset)
and returns one sentence per disagreement; ``rsfuse predict`` warns with them, or refuses
the scene with ``--strict``.

The scene's S2 product level is read, in this order, from

1. its metadata: a ``PROCESSING_LEVEL`` / ``PRODUCT_TYPE`` / ``PRODUCT`` tag of the S2 raster
   (``Level-2A``, ``S2MSI1C``, ``L1C`` …), or the ``product`` of a ``scene.json`` beside it
   (``rsfuse synth --layout scene``);
2. its file or folder names: ``MSIL1C`` / ``MSIL2A`` (Sentinel-2 ``.SAFE`` products);
3. its bands: ``B10`` (cirrus) exists in L1C products only, ``SCL`` / ``AOT`` / ``WVP`` in
   L2A products only.

When none of these tells, the level is unknown and nothing is said about it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError

__all__ = ["InputMismatchWarning", "scene_mismatches", "scene_product"]

#: Relative difference of pixel sizes above which a scene's resolution counts as different.
RESOLUTION_TOLERANCE = 0.05
#: Training resolution of bundles that do not record one (every rsfuse dataset: 10 m).
DEFAULT_RESOLUTION_M = 10.0

_NAME_RE = re.compile(r"MSIL(1C|2A)", re.I)
_L2A_ONLY = ("SCL", "AOT", "WVP")


class InputMismatchWarning(UserWarning):
    """The scene differs from the bundle's training data (product level, bands, resolution)."""


def _level_from_text(text: str) -> str | None:
    """``L1C`` / ``L2A`` from a tag value such as ``Level-2A``, ``S2MSI1C`` or ``L1C``."""
    t = text.strip().upper()
    if t in ("L1C", "L2A"):
        return t
    m = _NAME_RE.search(t) or re.search(r"LEVEL[-_ ]?(1C|2A)", t) or re.search(r"MSI(1C|2A)", t)
    return f"L{m.group(1).upper()}" if m else None


def _from_metadata(path: Path) -> tuple[str, str] | None:
    files = [path] if path.is_file() else sorted(path.glob("*.tif"))[:1]
    for f in files:
        try:
            with rasterio.open(f) as ds:
                tags = {k.upper(): v for k, v in ds.tags().items()}
        except RasterioError:
            continue
        for key in ("PROCESSING_LEVEL", "PRODUCT_TYPE", "PRODUCT"):
            level = _level_from_text(str(tags.get(key, "")))
            if level:
                return level, f"its {key} tag ({f.name})"
    sidecar = (path.parent if path.is_file() else path) / "scene.json"
    if sidecar.is_file():
        try:
            level = _level_from_text(str(json.loads(sidecar.read_text()).get("product", "")))
        except (OSError, ValueError, AttributeError):
            level = None
        if level:
            return level, f"{sidecar}"
    return None


def _from_names(path: Path) -> tuple[str, str] | None:
    for part in (path.resolve(), *path.resolve().parents):
        m = _NAME_RE.search(part.name)
        if m:
            return f"L{m.group(1).upper()}", f"the name {part.name}"
    return None


def _from_bands(names: list[str]) -> tuple[str, str] | None:
    upper = [n.upper() for n in names]
    if "B10" in upper:
        return "L1C", "its band B10 (cirrus; L1C products only)"
    extra = [b for b in _L2A_ONLY if b in upper]
    if extra:
        return "L2A", f"its band {extra[0]} (L2A products only)"
    return None


def scene_product(path: str | Path | None, band_names: list[str]) -> tuple[str | None, str]:
    """The S2 product level of a scene input and how it was found.

    Args:
        path: the S2 raster or folder of band files (None: no S2).
        band_names: every S2 band the input holds (not only the model's).

    Returns:
        (``L1C`` / ``L2A`` or None, a few words saying why).
    """
    if path is None:
        return None, "no S2 input"
    p = Path(path)
    for found in (_from_metadata(p), _from_names(p), _from_bands(band_names)):
        if found is not None:
            return found
    return None, "nothing in the S2 input names its product level"


def _resolution_m(grid: Any) -> tuple[float | None, str]:
    crs = grid.crs
    if crs is None:
        return None, "the scene has no CRS"
    if crs.is_geographic:
        return None, "the scene's CRS is geographic (degrees)"
    factor = crs.linear_units_factor[1] if hasattr(crs, "linear_units_factor") else 1.0
    return float(max(grid.resolution)) * float(factor), ""


def _value_mismatches(scene: Any, side: int = 256) -> list[str]:
    """Units of the band values, from a decimated read: S2 as reflectance × 10000 (not 0–1),
    S1 in dB (not linear power)."""
    from rasterio.enums import Resampling

    out: list[str] = []
    f = max(1, -(-max(scene.height, scene.width) // side))
    shape = (max(1, scene.height // f), max(1, scene.width // f))

    def median(sources: Any, nodata: float | None) -> float | None:
        src = sources[0]
        v = src.reader.read(src.index, out_shape=shape, resampling=Resampling.nearest)
        v = v[np.isfinite(v)]
        if nodata is not None:
            v = v[v != nodata]
        return float(np.median(v)) if v.size else None

    if scene.has_s2:
        m = median(scene.s2_sources, 0.0 if scene.s2_nodata is None else scene.s2_nodata)
        if m is not None and m < 2.0:
            out.append(
                f"the scene's S2 values look like reflectance in 0–1 (median {m:.3g} in "
                f"{scene.s2_bands[0]}); the model expects reflectance × 10000 (digital numbers)"
            )
    if scene.has_s1:
        m = median(scene.s1_sources, scene.s1_nodata)
        if m is not None and m > 0.0:
            out.append(
                f"the scene's S1 VV looks like linear power, not dB (median {m:.3g} > 0); the "
                "model expects backscatter in dB (10 · log10)"
            )
    return out


def scene_mismatches(bundle: Any, scene: Any) -> list[str]:
    """Sentences naming each way the scene differs from the bundle's training data.

    Args:
        bundle: the :class:`~rsfuse.inference.bundle.Bundle`.
        scene: the open :class:`~rsfuse.inference.scene.SceneInputs`.

    Returns:
        Empty when product level (as far as the scene tells), bands and resolution agree.
    """
    out: list[str] = []
    trained = bundle.config.get("s2_product")
    if scene.has_s2 and trained:
        level, why = scene_product(scene.s2_path, list(scene.s2_available_bands))
        if level is not None and level != trained:
            out.append(
                f"the model was trained on Sentinel-2 {trained} but the scene is {level} "
                f"(from {why}); {'surface' if trained == 'L2A' else 'top-of-atmosphere'} "
                f"reflectance is what the model expects, so its map will be wrong"
            )
    out += _value_mismatches(scene)
    res_trained = float(bundle.config.get("resolution_m") or DEFAULT_RESOLUTION_M)
    res, why = _resolution_m(scene.grid)
    if res is None:
        out.append(
            f"cannot compare the scene's pixel size with the training {res_trained:g} m: "
            f"{why}; reproject it to a projected grid of {res_trained:g} m pixels"
        )
    elif abs(res - res_trained) > RESOLUTION_TOLERANCE * res_trained:
        out.append(
            f"the scene has {res:g} m pixels but the model was trained on {res_trained:g} m "
            f"pixels; resample the scene to {res_trained:g} m"
        )
    return out
