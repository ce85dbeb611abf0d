"""Where Sentinel-2 can be trusted: cloud masks, S2 validity and the routing rule.

One implementation serves the readers and datamodules (training and evaluation) and
``rsfuse predict``. A sample's S2 validity has two parts (the sample contract,
:mod:`rsfuse.data.sample`):

* ``valid`` bool [H, W]: pixels whose S2 is usable (not under cloud or shadow). The fusion
  modules zero S2 where it is False (:func:`rsfuse.models.fusion.sensor_input`) and the
  segmentation task routes those pixels through the model's S1-only path;
* ``present["s2"]``: False when the invalid fraction exceeds ``max_cloud_fraction``
  (:func:`s2_usable`): the whole sample then takes the S1-only path, as a classification
  cell of ``rsfuse predict`` does above ``--cloud-threshold``.

Sources of validity (:class:`CloudValidity`, ``source=``):

``none``
    no validity information (no ``valid`` key).
``metadata``
    the dataset's flags: BigEarthNet v1 lists the patches *fully* covered by cloud and
    shadow (``patches_with_cloud_and_shadow.csv``, 9,280 of 590,326 patches ≈ 1.6 %),
    reBEN flags ``contains_cloud_or_shadow``. A flagged patch gets ``present["s2"] =
    False``; ``valid`` stays all True (the flag says nothing about pixels).
``mask``
    a per-pixel cloud mask shipped with the data: SSL4EO-S12 v1.1 ``cloud_mask`` (0 clear,
    1 thick cloud, 2 thin cloud, 3 cloud shadow) read as ``cloud_mask`` in the sample.
``detector``
    a cloud detector on the S2 pixels (:func:`detect_clouds`): **s2cloudless** (Sentinel
    Hub's LightGBM pixel classifier, ``pip install rsfuse[clouds]``) on L1C top-of-atmosphere
    reflectance with its ten bands B01, B02, B04, B05, B08, B8A, B09, B10, B11, B12 (scaled
    / 10000); for L2A (no B10; s2cloudless is trained on L1C), missing bands or a missing
    package, the built-in spectral test :func:`s2_cloud_test` (thick clouds and cirrus, not
    shadows), with a warning saying why.

``rsfuse predict --clouds`` takes ``auto`` (the detector), ``spectral`` (the built-in test
whatever the product: fast), ``none``, ``band:NAME`` (a band
of the S2 file: ``SCL`` classes 3 shadow, 8, 9 cloud, 10 cirrus; any other band non-zero)
or a mask file (non-zero = cloud): :class:`CloudSpec`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from rsfuse.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "CLOUD_SOURCES",
    "DEFAULT_MAX_CLOUD_FRACTION",
    "S2CLOUDLESS_BANDS",
    "SCL_CLOUD_CLASSES",
    "CloudSpec",
    "CloudValidity",
    "ValidityDataset",
    "band_cloud_mask",
    "cloud_fraction",
    "detect_clouds",
    "s2_cloud_test",
    "s2_usable",
    "s2cloudless_mask",
    "ssl4eo_cloud",
]

#: SCL classes read as cloud: 3 cloud shadow, 8 / 9 cloud medium / high, 10 thin cirrus.
SCL_CLOUD_CLASSES: tuple[int, ...] = (3, 8, 9, 10)
#: Built-in test thresholds (reflectance × 10000).
CIRRUS_DN = 100.0
BRIGHT_VISIBLE_DN = 3000.0
SNOW_NDSI = 0.4
#: The bands s2cloudless reads, in its order (L1C).
S2CLOUDLESS_BANDS: tuple[str, ...] = (
    "B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
#: Validity sources of :class:`CloudValidity`.
CLOUD_SOURCES: tuple[str, ...] = ("none", "metadata", "mask", "detector")
#: Above this fraction of invalid pixels a sample's S2 is marked absent (S1-only path).
DEFAULT_MAX_CLOUD_FRACTION = 0.5

_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


# ---------------------------------------------------------------------------- the rule
def cloud_fraction(invalid: np.ndarray | torch.Tensor) -> float:
    """Fraction of pixels of a bool [H, W] mask that are set (e.g. cloud or no data)."""
    if isinstance(invalid, torch.Tensor):
        return float(invalid.float().mean()) if invalid.numel() else 0.0
    return float(np.mean(invalid)) if invalid.size else 0.0


def s2_usable(fraction: float | torch.Tensor, max_cloud_fraction: float) -> Any:
    """The routing rule: S2 is used while at most ``max_cloud_fraction`` of it is invalid.

    Works on a float or a tensor of fractions [B] (then returns bool [B]).
    """
    return fraction <= max_cloud_fraction


def check_max_cloud_fraction(value: float, key: str = "max_cloud_fraction") -> float:
    """Validate a cloud-fraction threshold (0 … 1).

    Raises:
        ConfigError: outside [0, 1].
    """
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise ConfigError(f"{key} must lie in [0, 1], got {value!r}", key=key)
    return v


# ---------------------------------------------------------------------------- detectors
def s2_cloud_test(s2: np.ndarray, band_names: Sequence[str], dilate: int = 2) -> np.ndarray | None:
    """A simple S2 cloud test on digital numbers (reflectance × 10000).

    A pixel is cloud when the cirrus band B10 exceeds :data:`CIRRUS_DN` (L1C), or when the
    visible bands B02, B03, B04 are all brighter than :data:`BRIGHT_VISIBLE_DN` and it is not
    snow (NDSI = (B03 − B11) / (B03 + B11) below :data:`SNOW_NDSI`). The mask is dilated by
    ``dilate`` pixels to catch the thin edges of clouds. Shadows are not detected.

    Args:
        s2: [C, H, W] digital numbers in ``band_names`` order.
        band_names: names of the channels of ``s2``.
        dilate: dilation radius in pixels (0: none).

    Returns:
        bool [H, W], or ``None`` when the bands the test needs (B02, B03, B04, B11) are
        missing.
    """
    idx = {b: i for i, b in enumerate(band_names)}
    if not all(b in idx for b in ("B02", "B03", "B04", "B11")):
        return None
    x = np.asarray(s2).astype(np.float32, copy=False)
    b2, b3, b4, b11 = (x[idx[b]] for b in ("B02", "B03", "B04", "B11"))
    ndsi = (b3 - b11) / np.maximum(b3 + b11, 1.0)
    cloud = (b2 > BRIGHT_VISIBLE_DN) & (b3 > BRIGHT_VISIBLE_DN) & (b4 > BRIGHT_VISIBLE_DN)
    cloud &= ndsi < SNOW_NDSI
    if "B10" in idx:
        cloud |= x[idx["B10"]] > CIRRUS_DN
    if dilate > 0 and cloud.any():
        cloud = ndimage.binary_dilation(cloud, iterations=dilate)
    return cloud


_S2CLOUDLESS: Any = None
#: s2cloudless runs on 60 m pixels (block means of 6 x 6 10 m pixels): its classifier is
#: per pixel and Sentinel Hub runs it at 60-160 m; 36 x fewer pixels than at 10 m.
S2CLOUDLESS_SCALE = 6


def _s2cloudless_detector() -> Any:
    """The s2cloudless detector (cached), or None when the package is not installed."""
    global _S2CLOUDLESS
    if _S2CLOUDLESS is None:
        try:
            from s2cloudless import S2PixelCloudDetector
        except ImportError:
            _S2CLOUDLESS = False
            return None
        # at 60 m: average over a 1 px disk (s2cloudless's default); dilation is ours, at 10 m
        _S2CLOUDLESS = S2PixelCloudDetector(
            threshold=0.4, average_over=1, dilation_size=None, all_bands=False
        )
    return _S2CLOUDLESS or None


def s2cloudless_mask(
    s2: np.ndarray, band_names: Sequence[str], dilate: int = 2
) -> np.ndarray | None:
    """s2cloudless's cloud mask of L1C digital numbers (reflectance × 10000).

    The ten bands are averaged over blocks of :data:`S2CLOUDLESS_SCALE` pixels (60 m),
    classified by s2cloudless (probability > 0.4, averaged over a 1 px disk), brought back to
    the input grid and dilated by ``dilate`` pixels.

    Args:
        s2: [C, H, W] L1C digital numbers in ``band_names`` order.
        band_names: names of the channels (must include :data:`S2CLOUDLESS_BANDS`).
        dilate: dilation radius in input pixels (0: none).

    Returns:
        bool [H, W], or ``None`` when bands are missing or s2cloudless is not installed.
    """
    idx = {b: i for i, b in enumerate(band_names)}
    if not all(b in idx for b in S2CLOUDLESS_BANDS):
        return None
    det = _s2cloudless_detector()
    if det is None:
        return None
    x = np.asarray(s2, dtype=np.float32)[[idx[b] for b in S2CLOUDLESS_BANDS]]  # [10, H, W]
    _, h, w = x.shape
    k = S2CLOUDLESS_SCALE
    ph, pw = (-h) % k, (-w) % k
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="edge")
    coarse = x.reshape(10, (h + ph) // k, k, (w + pw) // k, k).mean(axis=(2, 4))
    coarse = np.clip(coarse / 10000.0, 0.0, 1.0).transpose(1, 2, 0)[None]  # [1, h', w', 10]
    mask = det.get_cloud_masks(coarse)[0].astype(bool)
    mask = np.repeat(np.repeat(mask, k, axis=0), k, axis=1)[:h, :w]
    if dilate > 0 and mask.any():
        mask = ndimage.binary_dilation(mask, iterations=dilate)
    return mask


def detect_clouds(
    s2: np.ndarray, band_names: Sequence[str], product: str = "L1C", dilate: int = 2
) -> tuple[np.ndarray | None, str]:
    """Cloud mask of S2 digital numbers by the best detector the input allows.

    s2cloudless for L1C with its ten bands and the package installed; else the built-in
    spectral test (:func:`s2_cloud_test`), with a warning (once per reason) saying why.

    Args:
        s2: [C, H, W] digital numbers (reflectance × 10000).
        band_names: channel names of ``s2``.
        product: ``L1C`` or ``L2A``.
        dilate: dilation radius in pixels.

    Returns:
        ``(bool [H, W] or None, method)`` with method ``s2cloudless``, ``spectral`` or
        ``none`` (no detector can run on these bands).
    """
    if product == "L1C":
        missing = [b for b in S2CLOUDLESS_BANDS if b not in band_names]
        if not missing:
            mask = s2cloudless_mask(s2, band_names, dilate)
            if mask is not None:
                return mask, "s2cloudless"
            _warn_once(
                "package",
                "s2cloudless is not installed (pip install 'rsfuse[clouds]'); using the "
                "built-in spectral cloud test (thick clouds and cirrus, no shadows)",
            )
        else:
            _warn_once(
                f"bands:{missing}",
                f"s2cloudless needs S2 bands {missing}; using the built-in spectral cloud test",
            )
    else:
        _warn_once(
            f"product:{product}",
            f"s2cloudless works on L1C top-of-atmosphere reflectance, not {product}; using "
            "the built-in spectral cloud test (thick clouds and cirrus, no shadows)",
        )
    mask = s2_cloud_test(s2, band_names, dilate)
    return mask, ("spectral" if mask is not None else "none")


def detector_method(band_names: Sequence[str], product: str = "L1C") -> str:
    """The detector :func:`detect_clouds` would use on these bands (without running it)."""
    probe = np.zeros((len(band_names), 1, 1), np.float32)
    full = product == "L1C" and all(b in band_names for b in S2CLOUDLESS_BANDS)
    if full and _s2cloudless_detector() is not None:
        return "s2cloudless"
    return "spectral" if s2_cloud_test(probe, band_names, 0) is not None else "none"


def band_cloud_mask(values: np.ndarray, band_name: str) -> np.ndarray:
    """Cloud mask from a mask band: SCL classes :data:`SCL_CLOUD_CLASSES`, else non-zero.

    Args:
        values: [H, W] band values.
        band_name: the band's name (``SCL`` selects the class rule).

    Returns:
        bool [H, W].
    """
    if band_name.upper() == "SCL":
        return np.isin(values, SCL_CLOUD_CLASSES)
    return values != 0


def ssl4eo_cloud(mask: np.ndarray | torch.Tensor) -> np.ndarray:
    """SSL4EO-S12 v1.1 ``cloud_mask`` (0 clear, 1 thick, 2 thin cloud, 3 shadow) → bool
    [H, W] cloud or shadow."""
    return np.asarray(mask) != 0


# ---------------------------------------------------------------------------- --clouds
@dataclass(frozen=True)
class CloudSpec:
    """A parsed ``--clouds`` value: ``kind`` is ``none``, ``auto`` (:func:`detect_clouds`),
    ``spectral`` (the built-in test :func:`s2_cloud_test`, whatever the product), ``band``
    or ``file``."""

    kind: str
    band: str | None = None
    path: Path | None = None

    @classmethod
    def parse(cls, spec: str | None) -> CloudSpec:
        """Parse ``none`` / ``auto`` / ``spectral`` / ``band:NAME`` / a path.

        Raises:
            ConfigError: an empty band name.
        """
        if spec is None or spec == "none":
            return cls("none")
        if spec in ("auto", "spectral"):
            return cls(spec)
        if spec.startswith("band:"):
            name = spec[len("band:") :]
            if not name:
                raise ConfigError("--clouds band: needs a band name, e.g. band:SCL", key="clouds")
            return cls("band", band=name)
        return cls("file", path=Path(spec))


# ---------------------------------------------------------------------------- samples
@dataclass(frozen=True)
class CloudValidity:
    """How S2 validity enters the samples of a dataset (see the module docstring).

    Args:
        source: ``none``, ``metadata``, ``mask`` or ``detector``.
        max_cloud_fraction: above this invalid fraction ``present["s2"]`` becomes False.
        dilate: detector dilation in pixels.
        product: S2 product of the samples (``L1C`` / ``L2A``; picks the detector).

    Raises:
        ConfigError: an unknown source or a threshold outside [0, 1].
    """

    source: str = "none"
    max_cloud_fraction: float = DEFAULT_MAX_CLOUD_FRACTION
    dilate: int = 2
    product: str = "L2A"

    def __post_init__(self) -> None:
        if self.source not in CLOUD_SOURCES:
            raise ConfigError(
                f"unknown cloud source {self.source!r}; expected one of {list(CLOUD_SOURCES)}",
                key="clouds",
            )
        check_max_cloud_fraction(self.max_cloud_fraction)

    def invalid(
        self, sample: dict[str, Any], band_names: Sequence[str]
    ) -> tuple[np.ndarray | None, bool]:
        """``(invalid pixels bool [H, W] or None, flagged)`` of one sample."""
        flagged = bool(sample.get("meta", {}).get("cloudy", False))
        if self.source == "metadata":
            return None, flagged
        if self.source == "mask":
            if "cloud_mask" not in sample:
                raise ConfigError(
                    "clouds='mask' needs samples with a cloud_mask (SSL4EO-S12 v1.1 with "
                    "return_cloud_mask=True)",
                    key="clouds",
                )
            return ssl4eo_cloud(sample["cloud_mask"]), False
        s2 = sample["s2"]
        arr = s2.numpy() if isinstance(s2, torch.Tensor) else np.asarray(s2)
        mask, _ = detect_clouds(arr, band_names, self.product, self.dilate)
        return mask, False

    def apply(self, sample: dict[str, Any], band_names: Sequence[str]) -> dict[str, Any]:
        """Set ``present["s2"]`` by :func:`s2_usable` and, for the per-pixel sources
        (``mask``, ``detector``), add ``valid`` bool [H, W]; returns the sample (changed in
        place). Samples without S2 and ``source="none"`` pass unchanged; ``metadata`` adds
        no ``valid`` (a flag says nothing about pixels)."""
        if self.source == "none" or "s2" not in sample:
            return sample
        invalid, flagged = self.invalid(sample, band_names)
        usable = not flagged
        if invalid is not None:
            valid = torch.from_numpy(~np.asarray(invalid, dtype=bool))
            usable &= bool(s2_usable(cloud_fraction(~valid), self.max_cloud_fraction))
            sample["valid"] = valid
        present = dict(sample.get("present", {}))
        present["s2"] = bool(present.get("s2", True)) and usable
        sample["present"] = present
        return sample

    def describe(self) -> dict[str, Any]:
        """What a checkpoint / bundle remembers (the routing ``rsfuse predict`` repeats)."""
        return {
            "source": self.source,
            "max_cloud_fraction": self.max_cloud_fraction,
            "dilate": self.dilate,
        }


class ValidityDataset(Dataset):
    """A dataset whose samples gain S2 validity (:meth:`CloudValidity.apply`).

    Args:
        dataset: any dataset of the sample contract.
        validity: the rule.
        band_names: S2 channel names of its samples.
    """

    def __init__(
        self, dataset: Dataset, validity: CloudValidity, band_names: Sequence[str]
    ) -> None:
        self.dataset = dataset
        self.validity = validity
        self.band_names = tuple(band_names)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.validity.apply(dict(self.dataset[index]), self.band_names)

    def __getattr__(self, name: str) -> Any:
        # reader attributes (sample_ids, classes, plot …) stay reachable through the wrapper;
        # special names (``__getitems__``: the store's batched read) are not, or a loader
        # would read the wrapped dataset directly and skip the validity
        if name == "dataset" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)
