"""Colour tables: one per class nomenclature, the inference-path colours, lookup by names.

Every picture rsfuse draws of classes takes its colours from here, so a class has the same
colour in a dataset's ``plot()``, a segmentation task's ``samples.png``, the colour table of
``rsfuse predict``'s class map (and of the synthetic scenes' reference rasters) and the
scene quick-look. The nomenclatures are those of :mod:`rsfuse.data.classes`:

* **CORINE Land Cover / BigEarthNet 43** (``clc43``): the European Environment Agency's
  CLC legend colours (the ``COPERNICUS/CORINE`` palette of the Earth Engine catalogue), in
  :data:`~rsfuse.data.classes.BEN43` order (level-3 classes 111 … 523 without 335
  Glaciers, which BigEarthNet does not use).
* **BigEarthNet 19** (``ben19``): the colours of Table 1 of the BigEarthNet v2 description
  (Clasen et al. 2024, *reBEN: Refined BigEarthNet Dataset for Remote Sensing Image
  Analysis*), each the CLC colour of one level-3 class of the group (Urban fabric = 111,
  Inland waters = 512, Marine waters = 523 …).
* **Dynamic World** (``dw``): the palette Dynamic World publishes with its ``label`` band
  (Brown et al. 2022, *Dynamic World, Near real-time global 10 m land use land cover
  mapping*; Earth Engine catalogue ``GOOGLE/DYNAMICWORLD/V1``).
* **DFC2020 / simplified IGBP** (``dfc2020``): the palette of the DFC2020 baseline code of
  SEN12MS (Schmitt et al. 2019, *SEN12MS – A Curated Dataset of Georeferenced
  Multi-Spectral Sentinel-1/2 Imagery for Deep Learning and Data Fusion*), i.e. the MODIS
  IGBP colours of the class each simplified class stands for. The 8 classes CromSS trains
  on keep the colours of their names.
* **OpenStreetMap 13** (``osm13``, SSL4EO-S12@OSM): no palette is published. Each class
  takes the Dynamic World colour of the DW class it corresponds to (CromSS, Table I), and
  where two OSM classes share a DW class the second takes the CORINE colour of its land use
  (Industrial = CLC 121, Artificial vegetation = CLC 141 green urban areas, Dump site =
  CLC 132) or a darker shade (Permanent crops); Coastal takes CLC 511's cyan. Water is
  Dynamic World's blue.

Unlabelled / ignored pixels are white (:data:`IGNORE_COLOUR`), as Dynamic World draws them.
Class names that belong to no nomenclature get :data:`FALLBACK_COLOURS` in order.

Inference paths (:data:`PATH_COLOURS`) use three dark colours that no class of any table
uses (each at least 25 CIE76 ΔE from every class colour, checked by the tests), and are
always drawn with a legend of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rsfuse.data.classes import BEN19, BEN43, DFC2020_10, DW9, OSM13

__all__ = [
    "FALLBACK_COLOURS",
    "IGNORE_COLOUR",
    "PALETTES",
    "PATH_COLOURS",
    "PATH_LABELS",
    "Palette",
    "class_colours",
    "class_legend",
    "class_rgb",
    "colour_table",
    "colourise",
    "hex_to_rgb",
    "palette_for",
    "path_legend",
]

#: Colour of unlabelled / ignored pixels and of the "no data" legend entry.
IGNORE_COLOUR = "#ffffff"

#: Colour of each inference path (codes of :data:`rsfuse.inference.outputs.PATH_CODES`).
PATH_COLOURS: dict[str, str] = {"s1+s2": "#002060", "s1": "#ff009f", "s2": "#604000"}
#: Legend text of each inference path.
PATH_LABELS: dict[str, str] = {
    "s1+s2": "S1 + S2",
    "s1": "S1 only (cloud or no S2 data)",
    "s2": "S2 only (no S1 data)",
}

#: Colours of class names outside every nomenclature (a qualitative palette, in order).
FALLBACK_COLOURS: tuple[str, ...] = (
    "#1f77b4", "#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#bcbd22",
    "#7f7f7f", "#aec7e8", "#98df8a", "#ff9896", "#ffbb78", "#c5b0d5", "#c49c94", "#9edae5",
    "#dbdb8d", "#c7c7c7",
)  # fmt: skip

_CLC43: tuple[str, ...] = (
    "#e6004d", "#ff0000", "#cc4df2", "#cc0000", "#e6cccc", "#e6cce6", "#a600cc", "#a64dcc",
    "#ff4dff", "#ffa6ff", "#ffe6ff", "#ffffa8", "#ffff00", "#e6e600", "#e68000", "#f2a64d",
    "#e6a600", "#e6e64d", "#ffe6a6", "#ffe64d", "#e6cc4d", "#f2cca6", "#80ff00", "#00a600",
    "#4dff00", "#ccf24d", "#a6ff80", "#a6e64d", "#a6f200", "#e6e6e6", "#cccccc", "#ccffcc",
    "#000000", "#a6a6ff", "#4d4dff", "#ccccff", "#e6e6ff", "#a6a6e6", "#00ccf2", "#80f2e6",
    "#00ffa6", "#a6ffe6", "#e6f2ff",
)  # fmt: skip
_BEN19: tuple[str, ...] = (
    "#e6004d", "#cc4df2", "#ffffa8", "#e68000", "#e6e64d", "#ffe64d", "#e6cc4d", "#f2cca6",
    "#80ff00", "#00a600", "#4dff00", "#ccf24d", "#a6ff80", "#a6f200", "#e6e6e6", "#a6a6ff",
    "#ccccff", "#80f2e6", "#e6f2ff",
)  # fmt: skip
_DW9: tuple[str, ...] = (
    "#419bdf", "#397d49", "#88b053", "#7a87c6", "#e49635", "#dfc35a", "#c4281b", "#a59b8f",
    "#b39fe1",
)  # fmt: skip
_DFC2020_10: tuple[str, ...] = (
    "#009900", "#c6b044", "#fbff13", "#b6ff05", "#27ff87", "#c24f44", "#a5a5a5", "#69fff8",
    "#f9ffa4", "#1c0dff",
)  # fmt: skip
_OSM13: tuple[str, ...] = (
    "#c4281b", "#cc4df2", "#e49635", "#ffa6ff", "#397d49", "#a64dcc", "#419bdf", "#a59b8f",
    "#88b053", "#dfc35a", "#b35806", "#7a87c6", "#00ccf2",
)  # fmt: skip


@dataclass(frozen=True)
class Palette:
    """The colour table of one nomenclature.

    Attributes:
        name: short key (``dw``, ``dfc2020`` …).
        classes: class names in the nomenclature's order.
        colours: ``#rrggbb`` per class.
        source: where the colours come from.
    """

    name: str
    classes: tuple[str, ...]
    colours: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        if len(self.classes) != len(self.colours):
            raise ValueError(
                f"palette {self.name}: {len(self.classes)} classes, {len(self.colours)} colours"
            )

    def colour(self, class_name: str) -> str:
        """The ``#rrggbb`` colour of a class of this nomenclature (KeyError if none)."""
        return self.colours[self.classes.index(class_name)]

    def covers(self, class_names: Sequence[str]) -> bool:
        """True when every name is a class of this nomenclature."""
        return all(n in self.classes for n in class_names)


#: The colour tables, by key (see the module docstring for their sources).
PALETTES: dict[str, Palette] = {
    p.name: p
    for p in (
        Palette("dfc2020", DFC2020_10, _DFC2020_10, "DFC2020 baseline (SEN12MS), IGBP colours"),
        Palette("dw", DW9, _DW9, "Dynamic World label palette"),
        Palette("osm13", OSM13, _OSM13, "rsfuse: Dynamic World colours via CromSS Table I"),
        Palette("ben19", BEN19, _BEN19, "BigEarthNet v2 description, Table 1 (CLC colours)"),
        Palette("clc43", BEN43, _CLC43, "CORINE Land Cover legend (EEA)"),
    )
}


def hex_to_rgb(colour: str) -> tuple[float, float, float]:
    """``#rrggbb`` → (r, g, b) in [0, 1]."""
    c = colour.lstrip("#")
    return tuple(int(c[i : i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]


def palette_for(class_names: Sequence[str], nomenclature: str | None = None) -> Palette | None:
    """The nomenclature whose classes include every name, or None.

    Args:
        class_names: names as a task or dataset lists them (any subset, any order).
        nomenclature: a key of :data:`PALETTES` to use (its classes must include the names).

    Returns:
        The first palette (in :data:`PALETTES` order) that covers ``class_names``; names
        such as ``Water`` that several nomenclatures share are resolved by the other names.
    """
    if nomenclature is not None:
        p = PALETTES.get(nomenclature)
        return p if p is not None and p.covers(class_names) else None
    for p in PALETTES.values():
        if class_names and p.covers(class_names):
            return p
    return None


def class_colours(class_names: Sequence[str], nomenclature: str | None = None) -> list[str]:
    """``#rrggbb`` per class name: its nomenclature's colour, else :data:`FALLBACK_COLOURS`.

    Args:
        class_names: K names.
        nomenclature: optional key of :data:`PALETTES`.

    Returns:
        K colours, in the order of ``class_names``.
    """
    p = palette_for(class_names, nomenclature)
    if p is not None:
        return [p.colour(n) for n in class_names]
    return [FALLBACK_COLOURS[i % len(FALLBACK_COLOURS)] for i in range(len(class_names))]


def class_rgb(class_names: Sequence[str], with_ignore: bool = False) -> np.ndarray:
    """[K, 3] float RGB in [0, 1] of :func:`class_colours` (``with_ignore``: a (K+1)-th row,
    :data:`IGNORE_COLOUR`)."""
    colours = class_colours(class_names)
    if with_ignore:
        colours = [*colours, IGNORE_COLOUR]
    return np.array([hex_to_rgb(c) for c in colours], dtype=np.float64).reshape(-1, 3)


def colour_table(class_names: Sequence[str], nodata: int = 255) -> dict[int, tuple[int, ...]]:
    """A GDAL colour table of a class raster: value ``i`` → the colour of class ``i`` (RGBA,
    0–255), ``nodata`` transparent."""
    out: dict[int, tuple[int, ...]] = {}
    for i, c in enumerate(class_colours(class_names)):
        out[i] = (*(round(255 * v) for v in hex_to_rgb(c)), 255)
    out[nodata] = (0, 0, 0, 0)
    return out


def colourise(mask: np.ndarray, class_names: Sequence[str], ignore_index: int = 255) -> np.ndarray:
    """Class mask [H, W] → RGB [H, W, 3] in the classes' colours
    (:func:`rsfuse.data.palettes.class_colours`); ignored (or out-of-range) pixels white."""
    k = len(class_names)
    colours = class_rgb(class_names, with_ignore=True)
    m = np.asarray(mask)
    idx = np.where((m >= 0) & (m < k) & (m != ignore_index), m, k)
    return colours[idx]


def class_legend(
    class_names: Sequence[str], unlabelled: bool = True, present: Sequence[int] | None = None
) -> list:
    """Legend handles (matplotlib patches) of the classes, and of "unlabelled" (white).

    Args:
        class_names: K names.
        unlabelled: add the white "unlabelled" entry.
        present: class indices to list (None: all).
    """
    from matplotlib.patches import Patch

    colours = class_colours(class_names)
    keep = range(len(class_names)) if present is None else sorted(set(present))
    handles = [
        Patch(facecolor=colours[i], edgecolor="0.4", linewidth=0.5, label=class_names[i])
        for i in keep
    ]
    if unlabelled:
        handles.append(
            Patch(
                facecolor=IGNORE_COLOUR,
                edgecolor="0.4",
                linewidth=0.5,
                label="unlabelled / ignored",
            )
        )
    return handles


def path_legend(paths: Sequence[str] = ("s1+s2", "s1", "s2")) -> list:
    """Legend handles of inference paths (keys of :data:`PATH_COLOURS`), for a legend of
    their own (never mixed with the classes)."""
    from matplotlib.patches import Patch

    return [
        Patch(facecolor=PATH_COLOURS[p], edgecolor="0.4", linewidth=0.5, label=PATH_LABELS[p])
        for p in paths
    ]
