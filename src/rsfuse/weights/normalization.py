"""The input normalisation each published checkpoint expects, as rsfuse ``Normalize``
descriptions.

A recipe becomes the ``normalization`` entry of an imported encoder's JSON, in the format of
:meth:`rsfuse.data.transforms.Normalize.describe`, so ``Normalize.from_description(...)``
rebuilds it; ``normalization_recipe`` names it and ``normalization_note`` says where it was
read and what rsfuse does not reproduce (the authors' uint8 quantisation).

Recipes (sources in ``docs/weights.md``):

* ``divide-10000``: S2 digital numbers / 10000 — the SSL4EO-S12 S2 checkpoints (their LMDB
  stores ``x / 10000 · 255`` as uint8 and the loader divides by 255; README: "input clip to
  [0,1] by dividing 10000"; TorchGeo's ``K.Normalize(mean=0, std=10000)``).
  ``(x - 0) / 10000`` in ``standardize`` mode.
* ``ssl4eo-window``: per band ``clip((x - (μ - 2σ)) / 4σ, 0, 1)`` with the SSL4EO-S12 50k-subset
  statistics — the SSL4EO-S12 S1 checkpoints (uint8 S1 LMDB) and CromSS (compressed uint8
  SSL4EO-S12, / 255). rsfuse's ``dino-mm`` mode with the S1 percentile clip switched off
  (``s1_percentiles = (0, 1)``).
* ``dino-mm``: the same ±2σ window, S2 with BigEarthNet v1 statistics, S1 first clipped per
  image to its 1st–99th percentile, S1 statistics of DINO-MM — rsfuse's ``dino-mm`` mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rsfuse import bands as registry
from rsfuse.data.transforms import Normalize

__all__ = ["RECIPES", "SSL4EO_50K_STATS", "Recipe", "recipe"]

_L1C = registry.S2_L1C_ORDER
_L2A = registry.S2_L2A_ORDER

#: SSL4EO-S12 band statistics "calculated from 50k subset" (zhu-xlab/SSL4EO-S12
#: src/benchmark/pretrain_ssl/datasets/SSL4EO/ssl4eo_dataset.py, S2C_* / S2A_* / S1_*; the
#: same numbers in zhu-xlab/CromSS dataset/ssl4eo_dataset_lmdb.py). (mean, std) per band.
SSL4EO_50K_STATS: dict[str, dict[str, tuple[float, float]]] = {
    "s2-l1c": dict(
        zip(
            _L1C,
            zip(
                (1605.57504906, 1390.78157673, 1314.8729939, 1363.52445545, 1549.44374991,
                 2091.74883118, 2371.7172463, 2299.90463006, 2560.29504086, 830.06605044,
                 22.10351321, 2177.07172323, 1524.06546312),
                (786.78685367, 850.34818441, 875.06484736, 1138.84957046, 1122.17775652,
                 1161.59187054, 1274.39184232, 1248.42891965, 1345.52684884, 577.31607053,
                 51.15431158, 1336.09932639, 1136.53823676),
            ),
        )
    ),
    "s2-l2a": dict(
        zip(
            _L2A,
            zip(
                (752.40087073, 884.29673756, 1144.16202635, 1297.47289228, 1624.90992062,
                 2194.6423161, 2422.21248945, 2517.76053101, 2581.64687018, 2645.51888987,
                 2368.51236873, 1805.06846033),
                (1108.02887453, 1155.15170768, 1183.6292542, 1368.11351514, 1370.265037,
                 1355.55390699, 1416.51487101, 1474.78900051, 1439.3086061, 1582.28010962,
                 1455.52084939, 1343.48379601),
            ),
        )
    ),
    "s1": {"VV": (-12.54847273, 5.25697717), "VH": (-20.19237134, 5.91150917)},
}  # fmt: skip

#: DINO-MM's S1 statistics, given there as VH, VV (zhu-xlab/DINO-MM
#: datasets/BigEarthNet/bigearthnet_dataset_seco_lmdb_B14.py MEAN_S1 / STD_S1).
DINO_MM_S1: dict[str, tuple[float, float]] = {"VV": (-12.59, 5.04), "VH": (-19.22, 5.42)}


@dataclass(frozen=True)
class Recipe:
    """One published input normalisation.

    Attributes:
        name: recipe id (``divide-10000``, ``ssl4eo-window``, ``dino-mm``).
        mode: rsfuse ``Normalize`` mode.
        s1_percentiles: S1 per-image percentile clip (``(0, 1)`` = none).
        s2_stats: band → (mean, std) for S2 bands (``None``: the same pair for every band).
        s2_default: (mean, std) for every S2 band when ``s2_stats`` is ``None``.
        s1_stats: ``VV`` / ``VH`` → (mean, std).
        note: where it comes from and what rsfuse does not reproduce.
    """

    name: str
    mode: str
    s1_percentiles: tuple[float, float]
    s2_stats: Mapping[str, tuple[float, float]] | None
    s2_default: tuple[float, float] | None
    s1_stats: Mapping[str, tuple[float, float]] | None
    note: str

    def _pair(self, band: str) -> tuple[float, float] | None:
        if registry.BANDS[band].sensor == "s1":
            return None if self.s1_stats is None else self.s1_stats.get(band)
        if self.s2_stats is None:
            return self.s2_default
        return self.s2_stats.get(band)

    def describe(self, channels: Sequence[str], unused: Sequence[str] = ()) -> dict[str, Any]:
        """The ``Normalize.describe()`` dict for these channels (S2 bands in channel order,
        then S1 as VV, VH).

        Args:
            channels: the model's input channels.
            unused: channels the model ignores (zero weights): a band without statistics
                there gets mean 0, std 1.

        Raises:
            KeyError: a used channel the recipe has no statistics for.
        """
        s2 = [b for b in channels if registry.BANDS[b].sensor == "s2"]
        s1 = [b for b in registry.S1_ORDER if b in channels]

        def pairs(names: list[str]) -> tuple[list[float], list[float]] | tuple[None, None]:
            if not names:
                return None, None
            out = []
            for b in names:
                p = self._pair(b)
                if p is None:
                    if b not in unused:
                        raise KeyError(f"recipe {self.name!r} has no statistics for band {b}")
                    p = (0.0, 1.0)
                out.append(p)
            return [float(m) for m, _ in out], [float(s) for _, s in out]

        s2_mean, s2_std = pairs(s2)
        s1_mean, s1_std = pairs(s1)
        norm = Normalize(s1_mean, s1_std, s2_mean, s2_std, self.mode, self.s1_percentiles)
        return norm.describe()


def _ben_v1_s2() -> dict[str, tuple[float, float]]:
    st = registry.stats("bigearthnet-v1")
    return {b: (st.mean[b], st.std[b]) for b in _L2A}


RECIPES: dict[str, Recipe] = {
    "divide-10000": Recipe(
        "divide-10000",
        "standardize",
        (0.01, 0.99),
        None,
        (0.0, 10000.0),
        None,
        "S2 digital numbers divided by 10000 (SSL4EO-S12 pretraining: uint8 LMDB of "
        "x / 10000 * 255, divided by 255 when read; the uint8 quantisation is not reproduced)",
    ),
    "ssl4eo-window": Recipe(
        "ssl4eo-window",
        "dino-mm",
        (0.0, 1.0),
        {**SSL4EO_50K_STATS["s2-l1c"]},
        None,
        SSL4EO_50K_STATS["s1"],
        "per band clip((x - (mean - 2 std)) / (4 std), 0, 1) with the SSL4EO-S12 50k-subset "
        "statistics (S2 L1C for S2, dB for S1): the uint8 SSL4EO-S12 data divided by 255; "
        "the uint8 quantisation is not reproduced",
    ),
    "dino-mm": Recipe(
        "dino-mm",
        "dino-mm",
        (0.01, 0.99),
        _ben_v1_s2(),
        None,
        DINO_MM_S1,
        "DINO-MM: S2 per band clip((x - (mean - 2 std)) / (4 std), 0, 1) with BigEarthNet v1 "
        "statistics; S1 (dB) first clipped per image to its 1st-99th percentile, then the same "
        "window with DINO-MM's S1 statistics; the uint8 quantisation is not reproduced",
    ),
}


def recipe(name: str) -> Recipe:
    """A recipe by name (see :data:`RECIPES`)."""
    return RECIPES[name]
