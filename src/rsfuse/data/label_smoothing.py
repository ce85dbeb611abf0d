"""CromSS's spatial-temporal label smoothing (CromSS §III-C, Eq. 13–15).

With ``y`` the one-hot noisy label of the season ``t`` drawn for the sample, the smoothed
label is (Eq. 13)::

    y' = y · (1 − α − β) + α · prior + β / C        (α = 0.15, β = 0.05, C = 9)

and the prior is built from the 4 seasonal label masks of the location (Eq. 14–15)::

    spatial  = N(G_σ ∗ onehot(y_t))                       (Eq. 14)
    temporal = N(G_σ ∗ 1/4 Σ_s onehot(y_s))               (Eq. 15)
    both     = (spatial + temporal) / 2

``G_σ`` a per-class Gaussian filter (σ = 3, truncated at 4σ: 25 × 25, SciPy's 'reflect'
border) and ``N`` the renormalisation over classes (pixels whose filtered sum is 0 get the
uniform 1/C). Unlabelled pixels (255) are zero vectors before filtering.

The prior is computed on the data side per sample (:class:`SeasonalLabelPrior` wraps a
``season="all"`` NoLDO-S12 reader and draws one random season per read) and travels as the
float spatial key ``label_prior`` [B, C, H, W] through
:class:`~rsfuse.data.transforms.BatchAugmentation`, so crops, flips and rotations apply to
image and prior together; :meth:`SpatialTemporalLabelSmoothing.smooth` then forms Eq. 13
on the device. These semantics reproduce ``zhu-xlab/CromSS``
``get_smoothed_maps`` (``tests/data/conformance/cromss.npz``).
"""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch import Tensor
from torch.utils.data import Dataset

from rsfuse.errors import ConfigError

__all__ = [
    "PRIOR_KEY",
    "SeasonalLabelPrior",
    "SpatialTemporalLabelSmoothing",
    "gaussian_class_prior",
]

#: Batch key of the label prior [B, C, H, W].
PRIOR_KEY = "label_prior"
IGNORE_INDEX = 255
PriorKind = Literal["spatial", "temporal", "spatial-temporal", "none"]


def gaussian_class_prior(
    class_maps: np.ndarray, sigma: float = 3.0, truncate: float = 4.0
) -> np.ndarray:
    """Per-class Gaussian filtering and renormalisation over classes (``N(G_σ ∗ m)``).

    Args:
        class_maps: class frequencies / one-hot float [C, H, W].
        sigma: Gaussian σ in pixels (0: no filtering).
        truncate: kernel radius in σ (SciPy's ``truncate``; 4 → 25 × 25 for σ = 3).

    Returns:
        float32 [C, H, W] summing to 1 over classes at every pixel.
    """
    m = np.asarray(class_maps, dtype=np.float64)
    if sigma > 0:
        m = np.stack([gaussian_filter(ch, sigma, truncate=truncate, mode="reflect") for ch in m])
    s = m.sum(0, keepdims=True)
    c = m.shape[0]
    out = np.where(s > 0, m / np.where(s > 0, s, 1.0), 1.0 / c)
    return out.astype(np.float32)


def _one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """[..., H, W] int → [..., C, H, W] float64, zeros where the label is not a class."""
    lab = np.asarray(labels).astype(np.int64)
    eye = np.concatenate([np.eye(num_classes), np.zeros((1, num_classes))])
    idx = np.where((lab >= 0) & (lab < num_classes), lab, num_classes)
    return np.moveaxis(eye[idx], -1, -3)


class SpatialTemporalLabelSmoothing:
    """Spatial-temporal label smoothing of CromSS (Eq. 13–15).

    Args:
        num_classes: C (Dynamic World: 9).
        alpha: weight α of the spatial-temporal prior (CromSS: 0.15).
        beta: weight β of the uniform distribution (CromSS: 0.05).
        prior: ``"spatial"`` (Eq. 14), ``"temporal"`` (Eq. 15), ``"spatial-temporal"``
            (their mean, the default) or ``"none"`` (α must then be 0).
        sigma: Gaussian σ in pixels (3).
        truncate: kernel radius in σ (4).
        ignore_index: label of unlabelled pixels.

    Raises:
        ConfigError: α, β negative or α + β > 1, unknown prior.
    """

    def __init__(
        self,
        num_classes: int = 9,
        alpha: float = 0.15,
        beta: float = 0.05,
        prior: PriorKind = "spatial-temporal",
        sigma: float = 3.0,
        truncate: float = 4.0,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        if alpha < 0 or beta < 0 or alpha + beta > 1:
            raise ConfigError(f"need α, β >= 0 and α + β <= 1, got {alpha}, {beta}", "alpha")
        if prior not in ("spatial", "temporal", "spatial-temporal", "none"):
            raise ConfigError(f"unknown prior {prior!r}", key="prior")
        if prior == "none" and alpha > 0:
            raise ConfigError("prior='none' needs alpha = 0", key="alpha")
        self.num_classes = num_classes
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.prior_kind = prior
        self.sigma = float(sigma)
        self.truncate = float(truncate)
        self.ignore_index = ignore_index

    def temporal_prior(self, seasonal_labels: np.ndarray) -> np.ndarray:
        """Eq. 15: ``N(G_σ ∗ mean_s onehot(y_s))`` from labels [T, H, W] → [C, H, W]."""
        freq = _one_hot(seasonal_labels, self.num_classes).mean(0)
        return gaussian_class_prior(freq, self.sigma, self.truncate)

    def spatial_prior(self, labels: np.ndarray) -> np.ndarray:
        """Eq. 14: ``N(G_σ ∗ onehot(y_t))`` from labels [H, W] → [C, H, W]."""
        return gaussian_class_prior(_one_hot(labels, self.num_classes), self.sigma, self.truncate)

    def prior(self, seasonal_labels: np.ndarray, season: int) -> np.ndarray:
        """The configured prior [C, H, W] for ``season`` of labels [T, H, W]."""
        if self.prior_kind == "spatial":
            return self.spatial_prior(seasonal_labels[season])
        if self.prior_kind == "temporal":
            return self.temporal_prior(seasonal_labels)
        if self.prior_kind == "spatial-temporal":
            sp = self.spatial_prior(seasonal_labels[season])
            return (sp + self.temporal_prior(seasonal_labels)) / 2
        c = self.num_classes
        return np.full((c, *seasonal_labels.shape[-2:]), 1.0 / c, np.float32)

    def smooth(self, labels: Tensor, prior: Tensor | None = None) -> Tensor:
        """Eq. 13 on a batch: ``y (1 − α − β) + α · prior + β / C``.

        Args:
            labels: int64 [B, H, W] (255 = unlabelled: the output there is 0).
            prior: [B, C, H, W] (required when α > 0).

        Returns:
            float [B, C, H, W], summing to 1 over classes at labelled pixels.
        """
        c = self.num_classes
        valid = labels != self.ignore_index
        safe = torch.where(valid, labels, torch.zeros_like(labels))
        oh = torch.nn.functional.one_hot(safe, c).permute(0, 3, 1, 2).float()
        out = oh * (1.0 - self.alpha - self.beta) + self.beta / c
        if self.alpha > 0:
            if prior is None:
                raise ValueError("label smoothing with alpha > 0 needs the label prior")
            out = out + self.alpha * prior.float()
        return out * valid.unsqueeze(1)

    def __call__(self, labels: Tensor, prior: Tensor | None = None) -> Tensor:
        return self.smooth(labels, prior)


class SeasonalLabelPrior(Dataset):
    """One random season per read from a ``season="all"`` reader, plus its label prior.

    Wraps a 4-season reader (e.g. :class:`~rsfuse.data.noldo.NoLDOS12` with
    ``season="all"``) whose samples hold ``s1`` [T, 2, H, W], ``s2`` [T, C, H, W] and
    ``mask`` [T, H, W]; returns the arrays of one season drawn per read, ``season`` and
    ``label_prior`` float32 [K, H, W] (:meth:`SpatialTemporalLabelSmoothing.prior`).

    Args:
        dataset: the season-stacked reader.
        smoothing: the label smoothing (its prior kind is used).
        seed: seed of the season draw (None: torch's global generator, reseeded per worker).
    """

    def __init__(
        self, dataset: Dataset, smoothing: SpatialTemporalLabelSmoothing, seed: int | None = None
    ) -> None:
        self.dataset = dataset
        self.smoothing = smoothing
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self._rng_key: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def _season(self, n: int) -> int:
        if self.seed is None:
            return int(torch.randint(n, (1,)).item())
        info = torch.utils.data.get_worker_info()
        key = (os.getpid(), info.id if info is not None else -1)
        if self._rng is None or self._rng_key != key:
            wseed = info.seed % (1 << 63) if info is not None else 0
            self._rng = np.random.default_rng([int(self.seed), key[1] + 1, wseed])
            self._rng_key = key
        return int(self._rng.integers(n))

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.dataset[index]
        masks = sample["mask"].numpy()  # [T, H, W]
        t = self._season(masks.shape[0])
        out: dict[str, Any] = {}
        for key in ("s1", "s2", "mask", "mask_clean", "cloud_mask"):
            if key in sample:
                out[key] = sample[key][t]
        out["present"] = sample.get("present", {m: m in out for m in ("s1", "s2")})
        out["season"] = torch.tensor(t, dtype=torch.int64)
        out[PRIOR_KEY] = torch.from_numpy(self.smoothing.prior(masks, t))
        meta = dict(sample.get("meta", {}))
        meta["season"] = t
        out["meta"] = meta
        return out
