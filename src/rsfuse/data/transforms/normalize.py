"""Per-band normalisation of ``s1`` and ``s2`` on the device (standardise or DINO-MM's ±2σ)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from rsfuse.bands import S1_ORDER, S2_L1C_ORDER, S2_L2A_ORDER, s2_bands, stats
from rsfuse.data.sample import Batch
from rsfuse.data.transforms.batch import IMAGE_KEYS, copy_batch, presence, zero_absent
from rsfuse.errors import ConfigError, DataError

NORMALIZE_MODES: tuple[str, ...] = ("standardize", "dino-mm")


def quantile_last_dim(x: Tensor, q: Sequence[float]) -> Tensor:
    """Quantiles along the last dimension with linear interpolation (``numpy.quantile`` default).

    ``torch.quantile`` refuses inputs above 2**24 elements (a 256 x 2 x 224² S1 batch has more),
    so this sorts once and interpolates with Python-side indices: no host synchronisation.

    Args:
        x: [..., N] values.
        q: quantile levels in [0, 1].

    Returns:
        [len(q), ...] quantiles.
    """
    n = x.shape[-1]
    s = x.sort(dim=-1).values
    out = []
    for level in q:
        pos = level * (n - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        frac = pos - lo
        out.append(s[..., lo] + (s[..., hi] - s[..., lo]) * frac)
    return torch.stack(out)


class Normalize(nn.Module):
    """Per-band normalisation of ``s1`` and ``s2`` in a batch.

    Modes:

    * ``"standardize"``: ``(x - mean) / std`` per band.
    * ``"dino-mm"`` (DINO-MM, Wang et al. 2022, code zhu-xlab/DINO-MM; REFERENCE.md): every band
      is scaled linearly from ``[mean - 2σ, mean + 2σ]`` to ``[0, 1]`` and clipped to ``[0, 1]``.
      S1 (dB) is first clipped per image and per band to its own 1st–99th percentile (linear
      interpolation, as ``numpy.quantile``). The authors' uint8 quantisation (×255, cast) is
      not reproduced.

    Samples whose ``present`` flag is ``False`` come out exactly zero (see the module notes).

    Args:
        s1_mean: means of VV, VH (dB) in that order, or ``None`` if S1 is never used.
        s1_std: standard deviations of VV, VH.
        s2_mean: per-band means of the S2 bands in the batch's channel order, or ``None``.
        s2_std: per-band standard deviations.
        mode: ``"standardize"`` (default) or ``"dino-mm"``.
        s1_percentiles: percentile clip for S1 in ``"dino-mm"`` mode, as fractions.

    Raises:
        ConfigError: unknown mode, mismatched lengths, non-positive std.

    Shapes:
        ``s1`` [B, 2, H, W] and ``s2`` [B, C, H, W] in, same shapes (float) out.
    """

    s1_mean: Tensor
    s1_std: Tensor
    s2_mean: Tensor
    s2_std: Tensor

    def __init__(
        self,
        s1_mean: Sequence[float] | None = None,
        s1_std: Sequence[float] | None = None,
        s2_mean: Sequence[float] | None = None,
        s2_std: Sequence[float] | None = None,
        mode: str = "standardize",
        s1_percentiles: tuple[float, float] = (0.01, 0.99),
    ) -> None:
        super().__init__()
        if mode not in NORMALIZE_MODES:
            raise ConfigError(
                f"unknown normalisation mode {mode!r}; expected one of {list(NORMALIZE_MODES)}",
                key="mode",
            )
        lo, hi = s1_percentiles
        if not 0.0 <= lo < hi <= 1.0:
            raise ConfigError(
                f"s1_percentiles must satisfy 0 <= lo < hi <= 1, got {s1_percentiles}",
                key="s1_percentiles",
            )
        self.mode = mode
        self.s1_percentiles = (float(lo), float(hi))
        self.has_s1 = self._register("s1", s1_mean, s1_std)
        self.has_s2 = self._register("s2", s2_mean, s2_std)
        if self.has_s1 and self.s1_mean.numel() != len(S1_ORDER):
            raise ConfigError(
                f"s1 statistics need {len(S1_ORDER)} values (VV, VH), got {self.s1_mean.numel()}",
                key="s1_mean",
            )

    def _register(
        self, key: str, mean: Sequence[float] | None, std: Sequence[float] | None
    ) -> bool:
        if (mean is None) != (std is None):
            raise ConfigError(f"give both {key}_mean and {key}_std or neither", key=f"{key}_mean")
        if mean is None or std is None:
            self.register_buffer(f"{key}_mean", torch.zeros(0), persistent=False)
            self.register_buffer(f"{key}_std", torch.ones(0), persistent=False)
            return False
        m = torch.as_tensor(list(mean), dtype=torch.float32)
        s = torch.as_tensor(list(std), dtype=torch.float32)
        if m.ndim != 1 or m.shape != s.shape or m.numel() == 0:
            raise ConfigError(
                f"{key}_mean and {key}_std must be equal-length non-empty lists, got "
                f"{m.numel()} and {s.numel()} values",
                key=f"{key}_mean",
            )
        if not bool((s > 0).all()):
            raise ConfigError(f"{key}_std must be positive, got {s.tolist()}", key=f"{key}_std")
        self.register_buffer(f"{key}_mean", m, persistent=False)
        self.register_buffer(f"{key}_std", s, persistent=False)
        return True

    @classmethod
    def from_stats(
        cls,
        dataset: str,
        s2_bands: Sequence[str] | str = (),
        mode: str = "standardize",
        s1: bool = True,
    ) -> Normalize:
        """Build from the statistics of a dataset in :mod:`rsfuse.bands`.

        Args:
            dataset: a key of :data:`rsfuse.bands.STATS` (``bigearthnet-v2``, ``dino-mm``, ...).
            s2_bands: S2 band names in the batch's channel order, or a named subset of
                :func:`rsfuse.bands.s2_bands` (resolved for L1C when the dataset has B10
                statistics, else L2A). Empty: no S2 normalisation.
            mode: see the class docstring.
            s1: whether to normalise S1 (VV, VH).

        Raises:
            ConfigError: unknown dataset or a band without statistics.
        """
        st = stats(dataset)
        if isinstance(s2_bands, str):
            product = "L1C" if "B10" in st.mean else "L2A"
            names: Sequence[str] = resolve_s2(s2_bands, product)
        else:
            names = tuple(s2_bands)
        s2_mean = s2_std = s1_mean = s1_std = None
        if names:
            s2_mean, s2_std = st.select(names)
        if s1:
            s1_mean, s1_std = st.select(S1_ORDER)
        return cls(s1_mean, s1_std, s2_mean, s2_std, mode=mode)

    def normalize(self, key: str, x: Tensor) -> Tensor:
        """Normalise one modality tensor.

        Args:
            key: ``"s1"`` or ``"s2"``.
            x: [B, C, H, W] raw values.

        Returns:
            [B, C, H, W] normalised values, in ``x``'s floating dtype.

        Raises:
            ConfigError: no statistics for ``key``.
            DataError: channel count differs from the statistics.
        """
        if key not in IMAGE_KEYS:
            raise ConfigError(f"cannot normalise key {key!r}; expected one of {list(IMAGE_KEYS)}")
        if not (self.has_s1 if key == "s1" else self.has_s2):
            raise ConfigError(
                f"batch has {key!r} but Normalize has no {key} statistics", key=f"{key}_mean"
            )
        mean: Tensor = getattr(self, f"{key}_mean")
        std: Tensor = getattr(self, f"{key}_std")
        if x.ndim != 4 or x.shape[1] != mean.numel():
            raise DataError(
                f"{key} must be [B, {mean.numel()}, H, W] to match the normalisation "
                f"statistics, got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            x = x.float()
        mean = mean.to(device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        std = std.to(device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        if self.mode == "standardize":
            return (x - mean) / std
        # dino-mm
        if key == "s1":
            b, c = x.shape[:2]
            q = quantile_last_dim(x.reshape(b, c, -1), self.s1_percentiles)  # [2, B, C]
            x = torch.minimum(torch.maximum(x, q[0, :, :, None, None]), q[1, :, :, None, None])
        low = mean - 2 * std
        return ((x - low) / (4 * std)).clamp(0.0, 1.0)

    def forward(self, batch: Batch) -> Batch:
        """Normalise ``s1`` and ``s2`` where present; other keys pass through.

        Args:
            batch: a collated batch.

        Returns:
            A new batch dict (input tensors are not modified).
        """
        out = copy_batch(batch)
        for key in IMAGE_KEYS:
            if key not in batch:
                continue
            x = batch[key]
            y = self.normalize(key, x)
            out[key] = zero_absent(y, presence(batch, key, x.shape[0], x.device))
        return out

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable description: ``mode``, ``s1_percentiles`` and the statistics
        (``s1_mean``, ``s1_std``, ``s2_mean``, ``s2_std``; ``None`` where absent).

        :meth:`from_description` rebuilds an identical module; checkpoints and model bundles
        (:mod:`rsfuse.inference.bundle`) carry it so inference normalises as training did.
        """

        def values(name: str, present: bool) -> list[float] | None:
            return [float(v) for v in getattr(self, name).tolist()] if present else None

        return {
            "mode": self.mode,
            "s1_percentiles": list(self.s1_percentiles),
            "s1_mean": values("s1_mean", self.has_s1),
            "s1_std": values("s1_std", self.has_s1),
            "s2_mean": values("s2_mean", self.has_s2),
            "s2_std": values("s2_std", self.has_s2),
        }

    @classmethod
    def from_description(cls, d: dict[str, Any]) -> Normalize:
        """Rebuild from :meth:`describe`'s output.

        Raises:
            ConfigError: a missing key or invalid values.
        """
        try:
            return cls(
                d["s1_mean"],
                d["s1_std"],
                d["s2_mean"],
                d["s2_std"],
                mode=d["mode"],
                s1_percentiles=tuple(d.get("s1_percentiles", (0.01, 0.99))),
            )
        except (KeyError, TypeError) as e:
            raise ConfigError(f"invalid normalisation description: {e!r}") from e

    def extra_repr(self) -> str:
        return (
            f"mode={self.mode!r}, s1_channels={self.s1_mean.numel()}, "
            f"s2_channels={self.s2_mean.numel()}"
        )


def resolve_s2(subset: str, product: str) -> tuple[str, ...]:
    if subset == "all":
        return S2_L1C_ORDER if product == "L1C" else S2_L2A_ORDER
    return s2_bands(subset, product)
