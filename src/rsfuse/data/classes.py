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
    out: set[int] = set()
    for n in names:
        if n not in _BEN43_INDEX:
            raise DataError(f"unknown BigEarthNet 43-class label {n!r}", path=source)
        j = BEN43_TO_19.get(_BEN43_INDEX[n])
        if j is not None:
            out.add(j)
    return sorted(out)


def ben19_indices(names: Iterable[str], source: str | None = None) -> list[int]:
    """Indices of BigEarthNet 19-class label names (as in v2 ``metadata.parquet``).

    Raises:
        DataError: a name that is not one of the 19 classes.
    """
    out: set[int] = set()
    for n in names:
        if n not in _BEN19_INDEX:
            raise DataError(f"unknown BigEarthNet 19-class label {n!r}", path=source)
        out.add(_BEN19_INDEX[n])
    return sorted(out)


def multi_hot(indices: Sequence[int], num_classes: int) -> np.ndarray:
    """A float32 multi-hot vector of length ``num_classes`` with ones at ``indices``."""
    v = np.zeros(num_classes, dtype=np.float32)
    v[list(indices)] = 1.0
    return v
