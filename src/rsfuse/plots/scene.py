"""Quick-look PNG of a whole-scene prediction: S2 true colour beside the class map and the
inference path (``rsfuse predict --quicklook``, the demo's last stage)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling

from rsfuse.plots.common import pyplot, save_figure
from rsfuse.plots.segmentation import stretch

#: Longest side of the quick-look rasters, in pixels.
QUICKLOOK_SIDE = 1024


def _decimated(reader: Any, index: int, shape: tuple[int, int], resampling: Resampling) -> Any:
    return reader.read(index, out_shape=shape, resampling=resampling)


def _palette(path: Path) -> np.ndarray:
    """[256, 4] RGBA palette of a COG's colour table, as floats."""
    lut = np.zeros((256, 4), np.float32)
    with rasterio.open(path) as ds:
        for k, rgba in ds.colormap(1).items():
            lut[k] = np.asarray(rgba, np.float32) / 255.0
    return lut


def plot_scene_quicklook(
    scene: Any,
    map_path: Path,
    path_path: Path,
    class_names: Sequence[str],
    out: Path,
) -> Path:
    """Write S2 true colour (if the model reads B04, B03, B02), the class map and the path map.

    Args:
        scene: the open :class:`~rsfuse.inference.scene.SceneInputs`.
        map_path: the class-map COG.
        path_path: the path COG.
        class_names: legend entries.
        out: PNG path.

    Returns:
        ``out``.
    """
    H, W = scene.height, scene.width
    f = max(1, math.ceil(max(H, W) / QUICKLOOK_SIDE))
    shape = (max(1, H // f), max(1, W // f))
    panels: list[tuple[str, np.ndarray]] = []
    rgb_bands = ("B04", "B03", "B02")
    if scene.has_s2 and all(b in scene.s2_bands for b in rgb_bands):
        rgb = np.stack(
            [
                _decimated(scene.s2_sources[scene.s2_bands.index(b)].reader,
                           scene.s2_sources[scene.s2_bands.index(b)].index, shape,
                           Resampling.average).astype(np.float32)
                for b in rgb_bands
            ]
        )  # fmt: skip
        panels.append(("Sentinel-2 true colour", stretch(rgb.transpose(1, 2, 0))))
    elif scene.has_s1:
        vv = _decimated(scene.s1_sources[0].reader, scene.s1_sources[0].index, shape,
                        Resampling.average)  # fmt: skip
        panels.append(("Sentinel-1 VV (dB)", stretch(vv[..., None].astype(np.float32))[..., 0]))
    with rasterio.open(map_path) as ds:
        cls = ds.read(1, out_shape=shape, resampling=Resampling.nearest)
    with rasterio.open(path_path) as ds:
        pth = ds.read(1, out_shape=shape, resampling=Resampling.nearest)
    lut, plut = _palette(map_path), _palette(path_path)
    panels.append(("predicted classes", lut[cls]))
    panels.append(("inference path", plut[pth]))

    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5.6))
    for ax, (title, img) in zip(np.atleast_1d(axes), panels):
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
        ax.set_title(title)
        ax.set_axis_off()
    from matplotlib.patches import Patch

    handles = [Patch(color=lut[i], label=n) for i, n in enumerate(class_names)]
    handles += [
        Patch(color=plut[i], label=f"path: {n}")
        for i, n in ((1, "S1+S2"), (2, "S1 only"), (3, "S2 only"))
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=8)
    fig.suptitle(f"{H} x {W} px scene (shown at 1/{f})")
    return save_figure(fig, out)
