"""Quick-look PNGs of whole-scene predictions (``rsfuse predict --quicklook``, the demo).

Segmentation (:func:`plot_scene_quicklook`): the scene's S2 true colour (or S1 false colour
for a model without S2), the class map and — when more than one occurs — the inference path
of every pixel. Classification (:func:`plot_cells_quicklook`): the same background, the
highest-scoring label of every cell above the threshold, and the cells' paths.

Rasters are read decimated to at most :data:`QUICKLOOK_SIDE` pixels a side (average for
images, nearest for classes). S2 is drawn with one joint stretch computed on clear pixels
only (no data, clouds of the scene's cloud mask, pixels the model sent through its S1-only
path and very bright pixels left out; :func:`rsfuse.data.composites.true_colour`), so
clouds no longer darken the land. Classes take their nomenclature's colours
(:mod:`rsfuse.data.palettes`, the same table as the class map's COG colour table); paths
take colours no class uses and have a legend of their own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling

from rsfuse.data.composites import s1_false_colour, true_colour
from rsfuse.data.palettes import (
    PATH_COLOURS,
    PATH_LABELS,
    class_legend,
    colourise,
    hex_to_rgb,
    path_legend,
)
from rsfuse.plots.common import pyplot, save_figure

#: Longest side of the quick-look rasters, in pixels.
QUICKLOOK_SIDE = 1024
#: Path codes of the ``*_path.tif`` raster (as :data:`rsfuse.inference.outputs.PATH_CODES`).
_PATH_KEYS: dict[int, str] = {1: "s1+s2", 2: "s1", 3: "s2"}


def _decimated(reader: Any, index: int, shape: tuple[int, int], resampling: Resampling) -> Any:
    return reader.read(index, out_shape=shape, resampling=resampling)


def _shape(scene: Any) -> tuple[tuple[int, int], int]:
    f = max(1, math.ceil(max(scene.height, scene.width) / QUICKLOOK_SIDE))
    return (max(1, scene.height // f), max(1, scene.width // f)), f


def _background(
    scene: Any, shape: tuple[int, int], not_clear: np.ndarray | None
) -> tuple[str, np.ndarray] | None:
    """(title, [h, w, 3] image): S2 true colour if the model reads B04, B03, B02, else S1
    false colour, else None."""
    rgb_bands = ("B04", "B03", "B02")
    if scene.has_s2 and all(b in scene.s2_bands for b in rgb_bands):
        srcs = [scene.s2_sources[scene.s2_bands.index(b)] for b in rgb_bands]
        rgb = np.stack(
            [_decimated(s.reader, s.index, shape, Resampling.average) for s in srcs], axis=-1
        ).astype(np.float32)
        nodata = 0.0 if scene.s2_nodata is None else float(scene.s2_nodata)
        valid = None
        if scene.cloud_source is not None:
            from rsfuse.data.clouds import band_cloud_mask

            src = scene.cloud_source
            raw = _decimated(src.reader, src.index, shape, Resampling.nearest)
            if scene.cloud_spec.kind == "band":
                valid = ~band_cloud_mask(raw, scene.cloud_spec.band or "")
            else:
                valid = raw == 0
        if not_clear is not None:
            valid = ~not_clear if valid is None else valid & ~not_clear
        title = "Sentinel-2 true colour (B04, B03, B02;\none stretch over clear pixels)"
        return title, true_colour(rgb, valid=valid, nodata=nodata)
    if scene.has_s1:
        s1 = np.stack(
            [_decimated(s.reader, s.index, shape, Resampling.average) for s in scene.s1_sources]
        ).astype(np.float32)
        return "Sentinel-1 false colour\n(R VV, G VH, B VV − VH)", s1_false_colour(s1)
    return None


def _path_rgb(codes: np.ndarray) -> np.ndarray:
    """Path codes [h, w] → RGB; no data white."""
    out = np.ones((*codes.shape, 3), dtype=np.float64)
    for code, key in _PATH_KEYS.items():
        out[codes == code] = hex_to_rgb(PATH_COLOURS[key])
    return out


def _draw(
    panels: list[tuple[str, np.ndarray]],
    class_handles: list,
    paths_present: list[str],
    path_panel: bool,
    title: str,
    out: Path,
) -> Path:
    """Panels side by side; below them the class legend and, apart, the path legend."""
    import textwrap

    plt = pyplot()
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.4 * n, 5.6), squeeze=False, layout="constrained")
    for ax, (name, img) in zip(axes[0], panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_axis_off()
    for h in class_handles:
        h.set_label(textwrap.fill(h.get_label(), 32))
    fig.legend(
        handles=class_handles,
        loc="outside lower left" if path_panel else "outside lower center",
        ncol=min(4, max(1, (len(class_handles) + 3) // 4), n + 1),
        fontsize=8,
        frameon=False,
        title="classes",
        title_fontsize=9,
    )
    if path_panel:
        fig.legend(
            handles=path_legend(paths_present),
            loc="outside lower right",
            fontsize=8,
            frameon=False,
            title="inference path",
            title_fontsize=9,
        )
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, out)


def _path_words(paths_present: list[str], scene: Any) -> str:
    """The figure title's words on paths when the path panel is left out."""
    if not paths_present:
        return "no pixel had usable input"
    if len(paths_present) > 1:
        return ""
    only = paths_present[0]
    if only == "s2" and not scene.has_s1:
        return "the model reads S2 only (one inference path)"
    if only == "s1" and not scene.has_s2:
        return "the model reads S1 only (one inference path)"
    return f"inference path: {PATH_LABELS[only]} everywhere"


def plot_scene_quicklook(
    scene: Any,
    map_path: Path,
    path_path: Path,
    class_names: Sequence[str],
    out: Path,
    reference: Path | None = None,
) -> Path:
    """Write the background image, the class map and (if more than one occurs) the path map.

    Args:
        scene: the open :class:`~rsfuse.inference.scene.SceneInputs`.
        map_path: the class-map COG (values 0 … K − 1, 255 no data).
        path_path: the path COG (0 no data, 1 S1+S2, 2 S1 only, 3 S2 only).
        class_names: the K class names (their nomenclature sets the colours).
        out: PNG path.
        reference: a reference class raster on the scene's grid (same classes), drawn
            between the background and the prediction.

    Returns:
        ``out``.
    """
    shape, f = _shape(scene)
    with rasterio.open(map_path) as ds:
        cls = ds.read(1, out_shape=shape, resampling=Resampling.nearest)
    with rasterio.open(path_path) as ds:
        pth = ds.read(1, out_shape=shape, resampling=Resampling.nearest)
    panels: list[tuple[str, np.ndarray]] = []
    bg = _background(scene, shape, not_clear=(pth == 2) if scene.has_s1 else None)
    if bg is not None:
        panels.append(bg)
    ref = None
    if reference is not None:
        with rasterio.open(reference) as ds:
            ref = ds.read(1, out_shape=shape, resampling=Resampling.nearest)
        panels.append(("reference classes", colourise(ref, class_names)))
    panels.append(("predicted classes", colourise(cls, class_names)))
    paths_present = [_PATH_KEYS[c] for c in sorted(_PATH_KEYS) if (pth == c).any()]
    path_panel = len(paths_present) > 1
    if path_panel:
        panels.append(("inference path per pixel", _path_rgb(pth)))
    both = cls if ref is None else np.concatenate([cls.ravel(), ref.ravel()])
    present = [int(v) for v in np.unique(both) if v < len(class_names)]
    handles = class_legend(class_names, unlabelled=bool((both == 255).any()), present=present)
    words = _path_words(paths_present, scene)
    title = f"{scene.height} x {scene.width} px scene (shown at 1/{f})"
    return _draw(
        panels, handles, paths_present, path_panel, title + (f"; {words}" if words else ""), out
    )


def plot_cells_quicklook(
    scene: Any,
    cells: Sequence[dict[str, Any]],
    class_names: Sequence[str],
    out: Path,
) -> Path:
    """Quick-look of multi-label classification cells: the background image, the
    highest-scoring label of each cell above the threshold, and the cells' paths.

    Args:
        scene: the open :class:`~rsfuse.inference.scene.SceneInputs`.
        cells: cell dicts of ``rsfuse predict`` (``y0``, ``x0``, ``h``, ``w``,
            ``path_code``, ``scores``, ``labels``).
        class_names: the K class names.
        out: PNG path.

    Returns:
        ``out``.
    """
    shape, f = _shape(scene)
    h, w = shape
    top = np.full(shape, 255, np.int64)  # 255: no label above the threshold / no data
    pth = np.zeros(shape, np.uint8)
    for c in cells:
        ys = slice(c["y0"] // f, min(h, (c["y0"] + c["h"]) // f))
        xs = slice(c["x0"] // f, min(w, (c["x0"] + c["w"]) // f))
        pth[ys, xs] = c["path_code"]
        if c["scores"] is not None and c["labels"]:
            top[ys, xs] = int(np.argmax(c["scores"]))
    panels: list[tuple[str, np.ndarray]] = []
    bg = _background(scene, shape, not_clear=None)
    if bg is not None:
        panels.append(bg)
    panels.append(
        (
            "highest-scoring label per cell\n(white: none above the threshold)",
            colourise(top, class_names),
        )
    )
    paths_present = [_PATH_KEYS[c] for c in sorted(_PATH_KEYS) if (pth == c).any()]
    path_panel = len(paths_present) > 1
    if path_panel:
        panels.append(("inference path per cell", _path_rgb(pth)))
    present = [int(v) for v in np.unique(top) if v < len(class_names)]
    handles = class_legend(class_names, unlabelled=False, present=present)
    words = _path_words(paths_present, scene)
    title = f"{len(cells)} cells over a {scene.height} x {scene.width} px scene (shown at 1/{f})"
    return _draw(
        panels, handles, paths_present, path_panel, title + (f"; {words}" if words else ""), out
    )
