"""Surface materials of the synthetic world: Sentinel-2 reflectance spectra and their variability.

Every pixel of the world is a mixture of a few *materials* (linear mixing, Eq. 1); the land
cover only decides which materials, in which spatial arrangement (see
:mod:`rsfuse.data.synthetic.landscape`). A class therefore has no spectrum of its own:
grass in a pasture, a clearing, a garden or a ley field is the same material, and classes
overlap pixel by pixel.

    ρ(p) = Σ_m f_m(p) · E_m,        Σ_m f_m(p) = 1, f_m ≥ 0                          (1)

with ``E`` [13, M] the spectra of one location. Spectra are surface (L2A, bottom-of-
atmosphere) reflectance x 10000 in :data:`rsfuse.bands.S2_L1C_ORDER` (B10, the cirrus band,
is near zero at the surface). The values are typical of European land covers and were set
against the six real BigEarthNet patches and the published BigEarthNet statistics (see
``docs/world.md``): e.g. dense Irish pasture in June reaches 4600–4900 in B08/B8A, conifer
canopy stays below 2000, wet soil is darker than dry soil in every band.

Per location the spectra vary (:func:`location_spectra`): soil brightness and redness
(soil type, moisture), vegetation vigour (NIR and red edge up, visible down), water
turbidity, roof colours, plus a small world-level perturbation of every spectrum
(:func:`world_perturbation`).
"""

from __future__ import annotations

import numpy as np

from rsfuse.bands import S2_L1C_ORDER

NUM_BANDS = len(S2_L1C_ORDER)

#: Material names, in the order of the fraction arrays.
MATERIALS: tuple[str, ...] = (
    "green",  # dense green herbaceous canopy: grass, crops, gardens
    "broadleaf",  # broad-leaved tree canopy in leaf
    "conifer",  # coniferous tree canopy
    "shrub",  # shrubs, heather, maquis
    "dry",  # senescent vegetation, stubble, straw, dry grass
    "soil",  # bare soil (per-location brightness and colour)
    "water",  # clear deep water
    "turbid",  # turbid or shallow water
    "roof",  # concrete, grey roofs, pavement
    "tile",  # red tile roofs
    "asphalt",  # roads, dark roofs
    "sand",  # beach and dune sand
    "wetveg",  # peat, marsh, flooded vegetation
    "leafoff",  # deciduous canopy without leaves: branches over litter
)
M = {name: i for i, name in enumerate(MATERIALS)}
NUM_MATERIALS = len(MATERIALS)

# Reflectance x 10000 in S2_L1C_ORDER:
#   B01   B02   B03   B04   B05   B06   B07   B08   B8A   B09  B10   B11   B12
SPECTRA: dict[str, tuple[float, ...]] = {
    "green": (290, 320, 700, 400, 1300, 3450, 4250, 4450, 4650, 4550, 14, 2200, 1120),
    "broadleaf": (210, 250, 500, 270, 850, 2800, 3500, 3700, 3850, 3800, 12, 1700, 760),
    "conifer": (150, 170, 320, 180, 520, 1350, 1650, 1750, 1850, 1800, 10, 820, 370),
    "shrub": (260, 300, 480, 440, 820, 1600, 1900, 2050, 2150, 2100, 11, 1950, 1150),
    "dry": (480, 600, 850, 1050, 1350, 1700, 1900, 2050, 2150, 2150, 14, 2750, 2050),
    "soil": (650, 780, 1050, 1300, 1500, 1650, 1800, 1900, 2000, 2000, 13, 2550, 2200),
    "water": (280, 380, 420, 230, 180, 120, 100, 80, 70, 60, 4, 35, 20),
    "turbid": (420, 540, 720, 580, 540, 300, 240, 200, 170, 150, 5, 60, 40),
    "roof": (1150, 1250, 1350, 1450, 1550, 1650, 1750, 1850, 1900, 1900, 14, 2150, 1950),
    "tile": (650, 680, 880, 1450, 1750, 1850, 1950, 2050, 2100, 2100, 14, 2550, 2150),
    "asphalt": (580, 620, 680, 720, 770, 820, 870, 920, 950, 950, 9, 1050, 980),
    "sand": (1350, 1650, 2050, 2450, 2750, 2950, 3050, 3150, 3250, 3250, 18, 3750, 3150),
    "wetveg": (200, 240, 400, 300, 620, 1350, 1650, 1750, 1850, 1800, 9, 900, 430),
    "leafoff": (380, 430, 580, 640, 880, 1200, 1350, 1500, 1600, 1600, 11, 1950, 1350),
}
for _name, _v in SPECTRA.items():
    assert len(_v) == NUM_BANDS, _name
assert tuple(SPECTRA) == MATERIALS

#: Spectra as an array [13, M] (float32).
SPECTRA_ARRAY = np.ascontiguousarray(
    np.array([SPECTRA[m] for m in MATERIALS], np.float32).T
)  # [13, M]

_VIS = np.array([b in ("B01", "B02", "B03", "B04") for b in S2_L1C_ORDER])
_NIR = np.array([b in ("B06", "B07", "B08", "B8A", "B09") for b in S2_L1C_ORDER])
_RED = np.array([b in ("B04", "B05") for b in S2_L1C_ORDER])
_VEGETATION = ("green", "broadleaf", "conifer", "shrub", "wetveg")


def world_perturbation(rng: np.random.Generator, sigma: float = 0.04) -> np.ndarray:
    """A world's fixed perturbation of every spectrum: factor [13, M] = exp(N(0, sigma))."""
    return np.exp(rng.normal(0.0, sigma, (NUM_BANDS, NUM_MATERIALS))).astype(np.float32)


def location_spectra(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """The spectra of one location: ``base`` [13, M] with per-location variability.

    * soil: brightness x U(0.65, 1.6) (moisture, organic matter, parent rock) and redness (visible
      red bands x U(0.9, 1.25));
    * vegetation vigour v ~ U(-1, 1): NIR / red edge x (1 + 0.2 v), visible x (1 - 0.12 v);
    * water: a mix of clear and turbid water of U(0, 0.6) turbidity in the clear spectrum;
    * roofs and tiles: brightness x U(0.8, 1.25).

    Returns:
        float32 [13, M].
    """
    e = base.astype(np.float32, copy=True)
    soil = e[:, M["soil"]]
    soil *= np.float32(rng.uniform(0.65, 1.6))
    soil[_RED] *= np.float32(rng.uniform(0.9, 1.25))
    v = np.float32(rng.uniform(-1.0, 1.0))
    for name in _VEGETATION:
        col = e[:, M[name]]
        col[_NIR] *= 1 + 0.2 * v
        col[_VIS] *= 1 - 0.12 * v
    t = np.float32(rng.uniform(0.0, 0.6))
    e[:, M["water"]] = (1 - t) * e[:, M["water"]] + t * e[:, M["turbid"]]
    for name in ("roof", "tile"):
        e[:, M[name]] *= np.float32(rng.uniform(0.8, 1.25))
    return e


__all__ = [
    "MATERIALS",
    "NUM_MATERIALS",
    "SPECTRA",
    "SPECTRA_ARRAY",
    "location_spectra",
    "world_perturbation",
]
