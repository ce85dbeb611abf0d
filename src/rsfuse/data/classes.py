"""Class nomenclatures: BigEarthNet 43 (CLC level 3) and 19 classes and the 43 → 19 mapping.

The 19-class nomenclature and its mapping are those of Sumbul et al. (BigEarthNet-MM),
published as ``label_indices.json`` by TU Berlin; index order here is that file's order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from rsfuse.errors import DataError

BEN43: tuple[str, ...] = (
    "Continuous urban fabric",
    "Discontinuous urban fabric",
    "Industrial or commercial units",
    "Road and rail networks and associated land",
    "Port areas",
    "Airports",
    "Mineral extraction sites",
    "Dump sites",
    "Construction sites",
    "Green urban areas",
    "Sport and leisure facilities",
    "Non-irrigated arable land",
    "Permanently irrigated land",
    "Rice fields",
    "Vineyards",
    "Fruit trees and berry plantations",
    "Olive groves",
    "Pastures",
    "Annual crops associated with permanent crops",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland",
    "Moors and heathland",
    "Sclerophyllous vegetation",
    "Transitional woodland/shrub",
    "Beaches, dunes, sands",
    "Bare rock",
    "Sparsely vegetated areas",
    "Burnt areas",
    "Inland marshes",
    "Peatbogs",
    "Salt marshes",
    "Salines",
    "Intertidal flats",
    "Water courses",
    "Water bodies",
    "Coastal lagoons",
    "Estuaries",
    "Sea and ocean",
)

BEN19: tuple[str, ...] = (
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
)

#: 43-class index → 19-class index; 43-class indices absent here (3–10, 30, 32, 37) are dropped.
BEN43_TO_19: dict[int, int] = {
    0: 0,
    1: 0,
    2: 1,
    11: 2,
    12: 2,
    13: 2,
    14: 3,
    15: 3,
    16: 3,
    18: 3,
    17: 4,
    19: 5,
    20: 6,
    21: 7,
    22: 8,
    23: 9,
    24: 10,
    25: 11,
    31: 11,
    26: 12,
    27: 12,
    28: 13,
    29: 14,
    33: 15,
    34: 15,
    35: 16,
    36: 16,
    38: 17,
    39: 17,
    40: 18,
    41: 18,
    42: 18,
}

_BEN43_INDEX = {n: i for i, n in enumerate(BEN43)}
_BEN19_INDEX = {n: i for i, n in enumerate(BEN19)}


def ben43_to_19(names: Iterable[str], source: str | None = None) -> list[int]:
    """Map BigEarthNet 43-class label names to sorted, unique 19-class indices.

    Args:
        names: CLC level-3 names as in BigEarthNet v1 ``*_labels_metadata.json``.
        source: file the names came from, for the error message.

    Raises:
        DataError: a name that is not one of the 43 classes.
    """
    mapped = (BEN43_TO_19.get(i) for i in _indices(names, _BEN43_INDEX, "43", source))
    return sorted({j for j in mapped if j is not None})


def ben19_indices(names: Iterable[str], source: str | None = None) -> list[int]:
    """Indices of BigEarthNet 19-class label names (as in v2 ``metadata.parquet``).

    Raises:
        DataError: a name that is not one of the 19 classes.
    """
    return sorted(set(_indices(names, _BEN19_INDEX, "19", source)))


def _indices(
    names: Iterable[str], index: dict[str, int], nomenclature: str, source: str | None
) -> list[int]:
    """Index of each name in ``index`` (the BigEarthNet ``nomenclature``-class names)."""
    out = []
    for n in names:
        if not isinstance(n, str):
            raise DataError(f"label {_short(n)} is a {type(n).__name__}, not a name", path=source)
        if n not in index:
            raise DataError(f"unknown BigEarthNet {nomenclature}-class label {n!r}", path=source)
        out.append(index[n])
    return out


def _short(x: object, limit: int = 60) -> str:
    s = repr(x)
    return s if len(s) <= limit else s[:limit] + "…"


def multi_hot(indices: Sequence[int], num_classes: int) -> np.ndarray:
    """A float32 multi-hot vector of length ``num_classes`` with ones at ``indices``."""
    v = np.zeros(num_classes, dtype=np.float32)
    v[list(indices)] = 1.0
    return v


# ---------------------------------------------------------------------------------------
# Segmentation nomenclatures (CromSS / NoLDO-S12 and DFC2020; see shared/REFERENCE.md)

#: Dynamic World 9 classes, in the order of DW's ``label`` band (0 = Water … 8 = Snow & Ice).
#: NoLDO-S12 pretraining labels store these indices (0–8) directly; the downstream
#: SSL4EO-S12@DW files store them + 1 with 0 = unlabelled (and 10 = cloud, also unlabelled).
DW9: tuple[str, ...] = (
    "Water",
    "Trees",
    "Grass",
    "Flooded vegetation",
    "Crops",
    "Shrub & Scrub",
    "Built area",
    "Bare ground",
    "Snow & Ice",
)

#: OpenStreetMap land-use 13 classes of SSL4EO-S12@OSM (Schultz et al.), in the order of
#: their label IDs 1–13 as given by the OSM → DW table (CromSS paper, Table I): 1, 2 built
#: (urban, industrial), 3 crops, 4 trees/grass, 5 trees, 6 bare, 7 water, 8 bare/snow, 9 grass,
#: 10 grass/shrub, 11 trees/crops, 12 flooded vegetation, 13 water/flooded vegetation.
#: Files store the ID (1–13) with 0 = unlabelled; class index = ID - 1.
OSM13: tuple[str, ...] = (
    "Urban",
    "Industrial",
    "Arable",
    "Artificial vegetation",
    "Forest",
    "Dump site",
    "Water",
    "Open space",
    "Pasture",
    "Shrub",
    "Permanent crops",
    "Wetland",
    "Coastal",
)

#: DFC2020 label values 1–10 (simplified IGBP), as stored in the ``dfc_*`` files.
DFC2020_10: tuple[str, ...] = (
    "Forest",
    "Shrubland",
    "Savanna",
    "Grassland",
    "Wetlands",
    "Croplands",
    "Urban/Built-up",
    "Snow/Ice",
    "Barren",
    "Water",
)

#: The 8 DFC2020 classes CromSS trains on (Savanna and Snow/Ice are ignored).
DFC2020: tuple[str, ...] = tuple(n for n in DFC2020_10 if n not in ("Savanna", "Snow/Ice"))

#: Stored DFC2020 value (0–10) → class index in :data:`DFC2020`; 0 (no data), 3 (Savanna)
#: and 8 (Snow/Ice) → 255 (ignored).
DFC2020_REMAP: tuple[int, ...] = (255, 0, 1, 255, 2, 3, 4, 5, 255, 6, 7)

IGNORE_LABEL = 255


def integral_labels(
    values: np.ndarray, source: str | None = None, what: str = "label"
) -> np.ndarray:
    """Label values as int64, refusing any that is not a whole number.

    Label files are read as float32 (:func:`rsfuse.io.geotiff.read_band`); a cast would
    silently turn 2.7 into 2, so non-integral (and NaN / inf) values are an error.

    Raises:
        DataError: a non-integral value, naming the first few and ``source``.
    """
    v = np.asarray(values)
    if v.dtype.kind == "f":
        bad = ~np.isfinite(v) | (v != np.round(v))
        if bad.any():
            vals = sorted({float(x) for x in v[bad].ravel()[:1000]})[:5]
            raise DataError(
                f"{what} values {vals} are not integers ({int(bad.sum())} pixels); labels are "
                "class numbers, never truncated",
                path=source,
            )
    elif v.dtype.kind not in "iub":
        raise DataError(f"{what} values have dtype {v.dtype}, not integers", path=source)
    return v.astype(np.int64)


def remap_labels(
    values: np.ndarray, lut: Sequence[int], source: str | None = None, what: str = "label"
) -> np.ndarray:
    """Map stored label values through a look-up table; 255 stays 255 (unlabelled).

    Args:
        values: integer array of stored values.
        lut: ``lut[v]`` is the class index (or 255) of stored value ``v``.
        source: file or sample named in the error.
        what: name of the label kind for the error message.

    Returns:
        int64 array of class indices with 255 = unlabelled, same shape as ``values``.

    Raises:
        DataError: a value that is not an integer (a float label such as 2.7 is never
            truncated), or neither in the table nor 255.
    """
    v = integral_labels(values, source, what)
    table = np.full(256, -1, np.int64)
    table[: len(lut)] = np.asarray(lut, np.int64)
    table[IGNORE_LABEL] = IGNORE_LABEL
    bad = (v < 0) | (v > 255)
    out = table[np.clip(v, 0, 255)]
    bad |= out < 0
    if bad.any():
        vals = sorted({int(x) for x in v[bad].ravel()[:1000]})[:10]
        raise DataError(
            f"{what} values {vals} outside 0–{len(lut) - 1} and not {IGNORE_LABEL}", path=source
        )
    return out
