"""Band registry: the one place where channel names, order and statistics are decided.

Sentinel-1 channels are ``VV`` then ``VH`` (backscatter in dB), always. Sentinel-2 channels
follow the ESA band numbering ``B01 … B8A … B12``; Level-1C (L1C) has 13 bands, Level-2A
(L2A, the BigEarthNet product) has 12 (no cirrus band ``B10``). Every reader, writer,
transform and model asks this module for channel order instead of spelling it out.

Statistics are per dataset and per band (mean, std of the raw values: S2 digital numbers
= reflectance x 10000, S1 in dB), copied from the dataset authors' published code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rsfuse.errors import ConfigError


@dataclass(frozen=True)
class Band:
    """One sensor channel.

    Attributes:
        name: band name as it appears in file names (``B02``, ``VV``).
        sensor: ``"s1"`` or ``"s2"``.
        resolution: native ground sampling distance in metres.
        wavelength_nm: centre wavelength in nanometres (S1: C-band radar, 5.405 GHz).
        description: human-readable name.
    """

    name: str
    sensor: str
    resolution: int
    wavelength_nm: float
    description: str


S1_BANDS: tuple[Band, ...] = (
    Band("VV", "s1", 10, 5.5465763e7, "C-band SAR, vertical transmit / vertical receive (dB)"),
    Band("VH", "s1", 10, 5.5465763e7, "C-band SAR, vertical transmit / horizontal receive (dB)"),
)

S2_BANDS: tuple[Band, ...] = (
    Band("B01", "s2", 60, 442.7, "coastal aerosol"),
    Band("B02", "s2", 10, 492.4, "blue"),
    Band("B03", "s2", 10, 559.8, "green"),
    Band("B04", "s2", 10, 664.6, "red"),
    Band("B05", "s2", 20, 704.1, "vegetation red edge 1"),
    Band("B06", "s2", 20, 740.5, "vegetation red edge 2"),
    Band("B07", "s2", 20, 782.8, "vegetation red edge 3"),
    Band("B08", "s2", 10, 832.8, "near infrared"),
    Band("B8A", "s2", 20, 864.7, "narrow near infrared"),
    Band("B09", "s2", 60, 945.1, "water vapour"),
    Band("B10", "s2", 60, 1373.5, "SWIR cirrus"),
    Band("B11", "s2", 20, 1613.7, "SWIR 1"),
    Band("B12", "s2", 20, 2202.4, "SWIR 2"),
)

BANDS: dict[str, Band] = {b.name: b for b in S1_BANDS + S2_BANDS}

S1_ORDER: tuple[str, ...] = ("VV", "VH")
S2_L1C_ORDER: tuple[str, ...] = tuple(b.name for b in S2_BANDS)
S2_L2A_ORDER: tuple[str, ...] = tuple(n for n in S2_L1C_ORDER if n != "B10")

#: Named S2 band subsets per product. Each is returned in registry order.
S2_SUBSETS: dict[str, tuple[str, ...]] = {
    "all": S2_L2A_ORDER,  # resolved per product in :func:`s2_bands`
    "hr9": ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12"),
    "10m": ("B02", "B03", "B04", "B08"),
    "10m20m": ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"),
    "rgb": ("B04", "B03", "B02"),
}

PRODUCTS: dict[str, tuple[str, ...]] = {"L1C": S2_L1C_ORDER, "L2A": S2_L2A_ORDER}


def s2_bands(subset: str | Sequence[str] = "all", product: str = "L2A") -> tuple[str, ...]:
    """Resolve an S2 band subset to an ordered tuple of band names.

    Args:
        subset: a subset name (``all``, ``hr9`` = the 9 high-resolution bands B2–B8, B11, B12,
            ``10m``, ``10m20m``, ``rgb``) or an explicit list of band names.
        product: ``L1C`` (13 bands) or ``L2A`` (12 bands, no B10).

    Returns:
        Band names; named subsets other than ``rgb`` come in registry order, explicit lists
        keep the order given.

    Raises:
        ConfigError: unknown subset, product or band, or a band the product lacks.
    """
    if product not in PRODUCTS:
        raise ConfigError(
            f"unknown S2 product {product!r}; expected one of {list(PRODUCTS)}", key="product"
        )
    available = PRODUCTS[product]
    if isinstance(subset, str):
        if subset == "all":
            return available
        if subset not in S2_SUBSETS:
            raise ConfigError(
                f"unknown S2 band subset {subset!r}; expected one of {list(S2_SUBSETS)} "
                "or a list of band names",
                key="s2_bands",
            )
        names = S2_SUBSETS[subset]
    else:
        names = tuple(subset)
    for n in names:
        if n not in available:
            raise ConfigError(
                f"band {n!r} is not in S2 {product} ({', '.join(available)})", key="s2_bands"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate band in {list(names)}", key="s2_bands")
    return tuple(names)


@dataclass(frozen=True)
class BandStats:
    """Per-band mean and standard deviation of raw values for one dataset."""

    mean: dict[str, float]
    std: dict[str, float]

    def select(self, names: Sequence[str]) -> tuple[list[float], list[float]]:
        """Means and stds for ``names`` in that order.

        Raises:
            ConfigError: a band without statistics in this dataset.
        """
        missing = [n for n in names if n not in self.mean]
        if missing:
            raise ConfigError(f"no statistics for band(s) {missing}", key="stats")
        return [self.mean[n] for n in names], [self.std[n] for n in names]


def _stats(*rows: tuple[str, float, float]) -> BandStats:
    """A :class:`BandStats` from ``(band, mean, std)`` rows."""
    return BandStats({b: m for b, m, _ in rows}, {b: s for b, _, s in rows})


#: Dataset statistics, one ``(band, mean, std)`` row per band. Sources: BigEarthNet v1 —
#: TU Berlin BigEarthNet-S2/S1 model code; BigEarthNet v2 — ConfigILM ``BENv2``
#: (nearest-interpolated 120x120, train split); SSL4EO-S12 — zhu-xlab/SSL4EO-S12 (L1C
#: ``s2c``, L2A ``s2a``, S1); DINO-MM — zhu-xlab/DINO-MM S1 statistics (S2 as SSL4EO-S12 L1C).
# fmt: off
STATS: dict[str, BandStats] = {
    "bigearthnet-v1": _stats(
        ('B01', 340.76769064, 554.81258967),
        ('B02', 429.9430203, 572.41639287),
        ('B03', 614.21682446, 582.87945694),
        ('B04', 590.23569706, 675.88746967),
        ('B05', 950.68368468, 729.89827633),
        ('B06', 1792.46290469, 1096.01480586),
        ('B07', 2075.46795189, 1273.45393088),
        ('B08', 2218.94553375, 1365.45589904),
        ('B8A', 2266.46036911, 1356.13789355),
        ('B09', 2246.0605464, 1302.3292881),
        ('B11', 1594.42694882, 1079.19066363),
        ('B12', 1009.32729131, 818.86747235),
        ('VV', -12.619993741972035, 5.115911777546365),
        ('VH', -19.29044597721542, 5.464428464912864),
    ),
    "bigearthnet-v2": _stats(
        ('B01', 361.0767822265625, 575.0687255859375),
        ('B02', 438.3720703125, 607.02685546875),
        ('B03', 614.0556640625, 603.2968139648438),
        ('B04', 588.4096069335938, 684.56884765625),
        ('B05', 942.8433227539062, 738.4326782226562),
        ('B06', 1769.931640625, 1100.4560546875),
        ('B07', 2049.551513671875, 1275.805419921875),
        ('B08', 2193.2919921875, 1369.3717041015625),
        ('B8A', 2235.556640625, 1356.5440673828125),
        ('B09', 2241.455322265625, 1316.393310546875),
        ('B11', 1568.226806640625, 1070.1612548828125),
        ('B12', 997.7324829101562, 813.5276489257812),
        ('VV', -12.643863677978516, 5.133493900299072),
        ('VH', -19.352558135986328, 5.590505599975586),
    ),
    "ssl4eo-s12-l1c": _stats(
        ('B01', 1612.9, 791.0),
        ('B02', 1397.6, 854.3),
        ('B03', 1322.3, 878.7),
        ('B04', 1373.1, 1144.9),
        ('B05', 1561.0, 1127.5),
        ('B06', 2108.4, 1164.2),
        ('B07', 2390.7, 1276.0),
        ('B08', 2318.7, 1249.5),
        ('B8A', 2581.0, 1345.9),
        ('B09', 837.7, 577.5),
        ('B10', 22.0, 47.5),
        ('B11', 2195.2, 1340.0),
        ('B12', 1537.4, 1142.9),
        ('VV', -12.59, 5.26),
        ('VH', -20.26, 5.91),
    ),
    "ssl4eo-s12-l2a": _stats(
        ('B01', 756.4, 1111.4),
        ('B02', 889.6, 1159.1),
        ('B03', 1151.7, 1188.1),
        ('B04', 1307.6, 1375.2),
        ('B05', 1637.6, 1376.6),
        ('B06', 2212.6, 1358.6),
        ('B07', 2442.0, 1418.4),
        ('B08', 2538.9, 1476.4),
        ('B8A', 2602.9, 1439.9),
        ('B09', 2666.8, 1582.1),
        ('B11', 2388.8, 1460.7),
        ('B12', 1821.5, 1352.2),
        ('VV', -12.59, 5.26),
        ('VH', -20.26, 5.91),
    ),
}
# fmt: on
#: DINO-MM: the SSL4EO-S12 L1C S2 statistics with DINO-MM's own S1 statistics.
STATS["dino-mm"] = BandStats(
    {**STATS["ssl4eo-s12-l1c"].mean, "VV": -12.59, "VH": -19.22},
    {**STATS["ssl4eo-s12-l1c"].std, "VV": 5.04, "VH": 5.42},
)


def stats(dataset: str) -> BandStats:
    """Statistics of a dataset by name (see :data:`STATS`).

    Raises:
        ConfigError: unknown dataset name.
    """
    if dataset not in STATS:
        raise ConfigError(
            f"no statistics for dataset {dataset!r}; known: {list(STATS)}", key="stats"
        )
    return STATS[dataset]


MODALITIES: tuple[str, ...] = ("s1", "s2")


def check_modalities(modalities: Sequence[str]) -> tuple[str, ...]:
    """Validate a modality list and return it in canonical order (``s1`` before ``s2``).

    Raises:
        ConfigError: empty, duplicate or unknown modality.
    """
    mods = tuple(modalities)
    unknown = [m for m in mods if m not in MODALITIES]
    if unknown or not mods or len(set(mods)) != len(mods):
        raise ConfigError(
            f"modalities must be a non-empty subset of {list(MODALITIES)}, got {list(mods)}",
            key="modalities",
        )
    return tuple(m for m in MODALITIES if m in mods)


def early_fusion_channels(
    modalities: Sequence[str], s2: Sequence[str] = S2_L2A_ORDER
) -> tuple[str, ...]:
    """Channel names of the early-fused (stacked) input: S2 bands first, then S1 VV, VH.

    S2-first follows DINO-MM's channel layout; within each sensor the registry order holds.
    """
    mods = check_modalities(modalities)
    out: tuple[str, ...] = ()
    if "s2" in mods:
        out += tuple(s2)
    if "s1" in mods:
        out += S1_ORDER
    return out
