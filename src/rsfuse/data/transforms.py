"""GPU batch transforms: normalisation, multispectral-aware augmentation, RandomSensorDrop.

Everything here works on a *collated batch* (see :mod:`rsfuse.data.sample`) on whatever device
the batch lives on, the way TorchGeo augments in ``on_after_batch_transfer``: whole-batch tensor
ops, no Python loop over samples, no read-back of tensor values to the host. The usual order is::

    batch = Normalize.from_stats("bigearthnet-v2", s2_bands)(batch)   # raw -> normalised
    batch = BatchAugmentation(geometric=[...], intensity=[...],
                              sensor_drop=RandomSensorDrop())(batch)

Conventions:

* ``s1`` float [B, 2, H, W] (VV, VH dB), ``s2`` float [B, C, H, W], optional ``mask`` int64
  [B, H, W] with 255 = ignore, ``present`` ``{"s1": bool[B], "s2": bool[B]}``.
* After :class:`Normalize`, a modality whose ``present`` flag is ``False`` for a sample is
  exactly zero for that sample (0 = the dataset mean in ``"standardize"`` mode, the bottom of the
  ±2σ window in ``"dino-mm"`` mode), which is also how :class:`RandomSensorDrop` and DINO-MM's
  missing-modality evaluation encode a missing sensor. :class:`BatchAugmentation` keeps such
  samples exactly zero through its intensity ops.
* The intensity augmentations are :class:`kornia.augmentation.IntensityAugmentationBase2D`
  subclasses that work for any channel count and can be used on a plain [B, C, H, W] tensor like
  any kornia augmentation. Their random parameters are drawn by kornia's parameter samplers,
  by default on the CPU (B numbers per call, copied to the device without blocking);
  :class:`BatchAugmentation` keeps them there even when it is moved to a GPU, because kornia's
  Gaussian blur validates ``sigma`` on the host and its crops read box corners on the host, which
  would each force a device synchronisation if the parameters lived on the GPU.
* Geometric augmentations are kornia geometric augmentations (flips, :class:`RandomRot90`,
  :class:`RandomResizedCrop`, or any other) applied by one
  :class:`kornia.augmentation.AugmentationSequential` to the channel-concatenated S1+S2 tensor
  and the mask, so every spatial key of a sample sees the same transform. Masks are resampled
  with nearest neighbour; pixels that a transform brings in from outside the image get 255.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import kornia.augmentation as K
import torch
from kornia.augmentation import random_generator as rg
from kornia.augmentation._2d.base import _input_metadata_only
from torch import Tensor, nn

from rsfuse.bands import S1_ORDER, S2_L1C_ORDER, S2_L2A_ORDER, s2_bands, stats
from rsfuse.data.sample import IGNORE_INDEX, Batch
from rsfuse.errors import ConfigError, DataError

__all__ = [
    "BatchAugmentation",
    "MultiCropAugmentation",
    "Normalize",
    "RandomBrightness",
    "RandomBrightnessContrast",
    "RandomBrightnessOrContrast",
    "RandomContrast",
    "RandomGaussianBlur",
    "RandomGrayscale",
    "RandomResizedCrop",
    "RandomRot90",
    "RandomSensorDrop",
    "RandomSolarize",
    "classification_augmentation",
    "mgsvit_ssl_augmentation",
    "rot90_per_sample",
]

IMAGE_KEYS: tuple[str, ...] = ("s1", "s2")
NORMALIZE_MODES: tuple[str, ...] = ("standardize", "dino-mm")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _presence(batch: Batch, key: str, batch_size: int, device: torch.device) -> Tensor:
    """Per-sample presence flags of ``key`` as a bool tensor [B] on ``device``.

    A batch without ``present`` (or without an entry for ``key``) counts every sample whose
    modality key is in the batch as present.
    """
    if key not in batch:
        return torch.zeros(batch_size, dtype=torch.bool, device=device)
    flags = batch.get("present", {}).get(key)
    if flags is None:
        return torch.ones(batch_size, dtype=torch.bool, device=device)
    flags = torch.as_tensor(flags)
    if flags.shape != (batch_size,):
        raise DataError(
            f"present[{key!r}] must have shape [{batch_size}], got {tuple(flags.shape)}"
        )
    return flags.to(device=device, dtype=torch.bool, non_blocking=True)


def _zero_absent(x: Tensor, present: Tensor) -> Tensor:
    """Set samples with ``present == False`` to exactly zero. x: [B, C, H, W], present: [B]."""
    return torch.where(
        present.view(-1, 1, 1, 1), x, torch.zeros((), dtype=x.dtype, device=x.device)
    )


def _copy_batch(batch: Batch) -> Batch:
    """Shallow copy of a batch (and of its ``present`` dict) so transforms never mutate input."""
    out = dict(batch)
    if isinstance(out.get("present"), dict):
        out["present"] = dict(out["present"])
    return out


def _uniform_sampler(*ranges: tuple[Tensor, str, None, None]) -> rg.PlainUniformGenerator:
    """kornia's uniform parameter sampler, with its range buffers kept out of ``state_dict``.

    kornia registers the ranges as persistent buffers, so an augmentation held by a
    LightningModule would add (config-dependent) keys to every checkpoint.
    """
    gen = rg.PlainUniformGenerator(*ranges)
    for name, _ in gen.named_buffers(recurse=False):
        gen._non_persistent_buffers_set.add(name)
    return gen


def _param(params: dict[str, Tensor], name: str, like: Tensor) -> Tensor:
    """A per-sample parameter [B] as [B, 1, 1, 1] on ``like``'s device and dtype."""
    return (
        params[name].to(device=like.device, dtype=like.dtype, non_blocking=True).view(-1, 1, 1, 1)
    )


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


# --------------------------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------------------------


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
            names: Sequence[str] = _resolve_s2(s2_bands, product)
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
        out = _copy_batch(batch)
        for key in IMAGE_KEYS:
            if key not in batch:
                continue
            x = batch[key]
            y = self.normalize(key, x)
            out[key] = _zero_absent(y, _presence(batch, key, x.shape[0], x.device))
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


def _resolve_s2(subset: str, product: str) -> tuple[str, ...]:
    if subset == "all":
        return S2_L1C_ORDER if product == "L1C" else S2_L2A_ORDER
    return s2_bands(subset, product)


# --------------------------------------------------------------------------------------------
# intensity augmentations (any channel count)
# --------------------------------------------------------------------------------------------


def _check_delta(name: str, max_delta: float, factor: bool = False) -> float:
    """Validate a max_delta; ``factor``: it is also a factor half-width, so at most 1."""
    if not max_delta >= 0.0:  # also rejects NaN
        raise ConfigError(f"{name} max_delta must be >= 0, got {max_delta}", key="max_delta")
    if factor and max_delta > 1.0:
        raise ConfigError(
            f"{name} max_delta must be <= 1 (contrast factor >= 0), got {max_delta}",
            key="max_delta",
        )
    return float(max_delta)


class RandomBrightness(K.IntensityAugmentationBase2D):
    """Additive brightness shift for any channel count: ``x + δ``.

    ``δ ~ U(-max_delta, max_delta)`` is drawn per sample and shared by all channels of that
    sample. Unlike :class:`kornia.augmentation.RandomBrightness` the output is not clamped to
    [0, 1], so it suits standardised multispectral data. MGSViT §4.4 uses ``max_delta=0.4``.

    Args:
        max_delta: half-width of the shift range.
        p: probability of applying the shift to a sample.
        same_on_batch: draw one shift for the whole batch.
        keepdim: kornia's ``keepdim``.

    Shapes:
        [B, C, H, W] (or [C, H, W]) in, [B, C, H, W] out.
    """

    def __init__(
        self,
        max_delta: float = 0.4,
        p: float = 1.0,
        same_on_batch: bool = False,
        keepdim: bool = False,
    ) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        d = _check_delta("brightness", max_delta)
        self.max_delta = d
        self._param_generator = _uniform_sampler(
            (torch.tensor([-d, d]), "brightness_delta", None, None)
        )

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        return input + _param(params, "brightness_delta", input)


def _channel_mean(x: Tensor) -> Tensor:
    """Per-sample per-channel spatial mean, [B, C, 1, 1]."""
    return x.mean(dim=(-2, -1), keepdim=True)


class RandomContrast(K.IntensityAugmentationBase2D):
    """Contrast change around each band's mean for any channel count.

    ``(x - μ_c) · f + μ_c`` with ``f ~ U(1 - max_delta, 1 + max_delta)`` drawn per sample and
    ``μ_c`` the per-sample per-channel spatial mean (so the band means are preserved; torchvision's
    RGB contrast uses the grayscale mean instead). MGSViT §4.4 uses ``max_delta=0.4``.

    Args:
        max_delta: half-width of the factor range around 1 (must be <= 1).
        p: probability of applying the change to a sample.
        same_on_batch: draw one factor for the whole batch.
        keepdim: kornia's ``keepdim``.

    Shapes:
        [B, C, H, W] (or [C, H, W]) in, [B, C, H, W] out.
    """

    def __init__(
        self,
        max_delta: float = 0.4,
        p: float = 1.0,
        same_on_batch: bool = False,
        keepdim: bool = False,
    ) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        d = _check_delta("contrast", max_delta, factor=True)
        self.max_delta = d
        self._param_generator = _uniform_sampler(
            (torch.tensor([1.0 - d, 1.0 + d]), "contrast_factor", None, None)
        )

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        mu = _channel_mean(input)
        return (input - mu) * _param(params, "contrast_factor", input) + mu


class RandomBrightnessOrContrast(K.IntensityAugmentationBase2D):
    """Either a brightness shift or a contrast change, chosen 50/50 per sample (MGSViT §4.4).

    MGSViT (Liu et al. 2024, §4.4) applies "brightness or contrast" with maximum delta 0.4 and
    probability 0.8. With probability ``p`` a sample gets, with equal odds, either
    :class:`RandomBrightness`'s ``x + δ`` or :class:`RandomContrast`'s ``(x - μ_c)·f + μ_c``.
    Both are computed in one pass: ``x·f' + μ_c·(1 - f') + δ'`` with ``(f', δ') = (1, δ)`` or
    ``(f, 0)``.

    Args:
        max_delta: brightness shift half-width and contrast factor half-width (<= 1).
        p: probability of changing a sample at all.
        same_on_batch: share one draw across the batch.
        keepdim: kornia's ``keepdim``.

    Shapes:
        [B, C, H, W] (or [C, H, W]) in, [B, C, H, W] out.
    """

    def __init__(
        self,
        max_delta: float = 0.4,
        p: float = 0.8,
        same_on_batch: bool = False,
        keepdim: bool = False,
    ) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        d = _check_delta("brightness/contrast", max_delta, factor=True)
        self.max_delta = d
        self._param_generator = _uniform_sampler(
            (torch.tensor([-d, d]), "brightness_delta", None, None),
            (torch.tensor([1.0 - d, 1.0 + d]), "contrast_factor", None, None),
            (torch.tensor([0.0, 1.0]), "choice", None, None),
        )

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        use_contrast = _param(params, "choice", input) < 0.5  # [B, 1, 1, 1]
        one = torch.ones((), dtype=input.dtype, device=input.device)
        zero = torch.zeros((), dtype=input.dtype, device=input.device)
        f = torch.where(use_contrast, _param(params, "contrast_factor", input), one)
        delta = torch.where(use_contrast, zero, _param(params, "brightness_delta", input))
        return input * f + _channel_mean(input) * (1 - f) + delta


class RandomBrightnessContrast(K.IntensityAugmentationBase2D):
    """Multiplicative brightness, then contrast, applied together (the authors' code).

    MGSViT's and DINO-MM's training code apply ``RandomApply([RandomBrightness(0.4),
    RandomContrast(0.4)], p=0.8)``: with probability ``p`` a sample is first scaled,
    ``x · b``, then stretched around each band's mean, ``(y − μ_c) · c + μ_c`` (``μ_c`` the
    per-sample per-channel spatial mean of the scaled ``y``), with
    ``b, c ~ U(max(0, 1 − max_delta), 1 + max_delta)`` drawn per sample and shared by all
    channels. :class:`RandomBrightnessOrContrast` is the paper's text (one or the other,
    additive brightness).

    Args:
        max_delta: half-width of both factor ranges around 1.
        p: probability of changing a sample.
        same_on_batch: share one draw across the batch.
        keepdim: kornia's ``keepdim``.

    Shapes:
        [B, C, H, W] (or [C, H, W]) in, [B, C, H, W] out.
    """

    def __init__(
        self,
        max_delta: float = 0.4,
        p: float = 0.8,
        same_on_batch: bool = False,
        keepdim: bool = False,
    ) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        d = _check_delta("brightness/contrast", max_delta)
        self.max_delta = d
        lo = max(0.0, 1.0 - d)
        self._param_generator = _uniform_sampler(
            (torch.tensor([lo, 1.0 + d]), "brightness_factor", None, None),
            (torch.tensor([lo, 1.0 + d]), "contrast_factor", None, None),
        )

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        y = input * _param(params, "brightness_factor", input)
        mu = _channel_mean(y)
        return (y - mu) * _param(params, "contrast_factor", input) + mu


class RandomGrayscale(K.IntensityAugmentationBase2D):
    """Replace every channel by the per-pixel band mean, for any channel count.

    The multispectral analogue of RGB grayscale used by MoCo/DINO/MGSViT augmentation (p=0.2):
    all output channels of a transformed sample equal ``mean_c x[c]`` (equal band weights, also
    for three channels, unlike kornia's luminance weights).

    Args:
        p: probability of applying to a sample.
        keepdim: kornia's ``keepdim``.

    Shapes:
        [B, C, H, W] (or [C, H, W]) in, [B, C, H, W] out.
    """

    def __init__(self, p: float = 0.2, keepdim: bool = False) -> None:
        super().__init__(p=p, same_on_batch=False, keepdim=keepdim)

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        return input.mean(dim=-3, keepdim=True).expand_as(input).contiguous()


def blur_kernel_size(sigma_max: float) -> int:
    """Odd kernel size covering ±3σ: ``2·ceil(3σ) + 1`` (13 for σ = 2)."""
    return 2 * math.ceil(3.0 * sigma_max) + 1


class RandomGaussianBlur(K.RandomGaussianBlur):
    """Gaussian blur with a per-sample σ for any channel count (kornia's, with defaults).

    kornia's :class:`~kornia.augmentation.RandomGaussianBlur` already blurs every channel
    depthwise with one σ per sample; this subclass only (1) derives the kernel size from the
    largest σ when none is given, (2) shrinks the kernel for images too small for it (reflect
    padding needs ``kernel <= 2·min(H, W) - 1``), and (3) keeps its σ sampling on the CPU even
    after ``.to("cuda")``: kornia's ``gaussian_blur2d`` checks ``sigma > 0`` on the host, which
    would synchronise the device for a GPU-resident σ. MGSViT §4.4: σ ∈ [0.1, 2], p = 1.0.
    (DINO-MM's code used a fixed 3x3 kernel; this uses a kernel that fits the Gaussian.)

    Args:
        sigma: range of σ in pixels.
        p: probability of blurring a sample.
        kernel_size: odd kernel size; default ``2·ceil(3·σ_max) + 1``.
        border_type: ``reflect`` (default), ``constant``, ``replicate`` or ``circular``.
        same_on_batch: share one σ across the batch.
        keepdim: kornia's ``keepdim``.

    Shapes:
        [B, C, H, W] (or [C, H, W]) in, [B, C, H, W] out.
    """

    def __init__(
        self,
        sigma: tuple[float, float] = (0.1, 2.0),
        p: float = 1.0,
        kernel_size: int | None = None,
        border_type: str = "reflect",
        same_on_batch: bool = False,
        keepdim: bool = False,
    ) -> None:
        lo, hi = (float(s) for s in sigma)
        if not 0.0 < lo <= hi:
            raise ConfigError(f"sigma must satisfy 0 < min <= max, got {tuple(sigma)}", key="sigma")
        k = blur_kernel_size(hi) if kernel_size is None else int(kernel_size)
        if k < 1 or k % 2 == 0:
            raise ConfigError(
                f"kernel_size must be a positive odd integer, got {k}", key="kernel_size"
            )
        super().__init__(
            kernel_size=(k, k),
            sigma=(lo, hi),
            border_type=border_type,
            same_on_batch=same_on_batch,
            p=p,
            keepdim=keepdim,
        )
        self.kernel_size = k
        self.set_rng_device_and_dtype(torch.device("cpu"), torch.float32)

    def set_rng_device_and_dtype(self, device: torch.device, dtype: torch.dtype) -> None:
        """Keep σ sampling on the CPU in float32 (see the class docstring)."""
        super().set_rng_device_and_dtype(torch.device("cpu"), torch.float32)

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        h, w = input.shape[-2:]
        k = self.kernel_size
        if self.flags["border_type"].name.lower() in ("reflect", "circular"):
            k = min(k, max(1, 2 * min(h, w) - 1))
        sigma = params["sigma"].to(dtype=input.dtype).unsqueeze(-1).expand(-1, 2)
        if self.same_on_batch:
            sigma = sigma[:1]
        return self._gaussian_blur2d_fn(
            input,
            kernel_size=(k, k),
            sigma=sigma,
            border_type=self.flags["border_type"].name.lower(),
            separable=self.flags["separable"],
        )


class RandomSolarize(K.IntensityAugmentationBase2D):
    """Solarisation for any channel count: values on one side of a threshold are mirrored.

    ``direction="above"`` (torchvision / PIL, facebookresearch/dino): ``y = upper − x`` where
    ``x >= threshold``, else ``x`` (PIL on uint8 data is ``threshold = 128, upper = 255``).
    ``direction="below"`` (the DINO-MM code's ``Solarize(128)``): ``y = upper − x`` where
    ``x < threshold``, else ``x``. The threshold defaults suit data scaled to [0, 1]
    (DINO-MM's ``"dino-mm"`` normalisation): 0.5 and ``1 − x``. For standardised data use
    ``threshold = 0, upper = 0`` (values on that side change sign). DINO / DINO-MM solarise
    the second global crop with p = 0.2. :class:`BatchAugmentation` sets samples whose sensor
    is absent back to zero after its intensity ops, so an absent sensor stays absent.

    Args:
        threshold: where the mirroring starts.
        upper: the mirror ``upper − x``.
        p: probability of solarising a sample.
        keepdim: kornia's ``keepdim``.
        direction: ``"above"`` (mirror ``x >= threshold``) or ``"below"`` (``x < threshold``).

    Shapes:
        [B, C, H, W] (or [C, H, W]) in, [B, C, H, W] out.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        upper: float = 1.0,
        p: float = 0.2,
        keepdim: bool = False,
        direction: Literal["above", "below"] = "above",
    ) -> None:
        super().__init__(p=p, same_on_batch=False, keepdim=keepdim)
        if direction not in ("above", "below"):
            raise ConfigError(
                f"solarize direction must be 'above' or 'below', got {direction!r}",
                key="direction",
            )
        self.threshold = float(threshold)
        self.upper = float(upper)
        self.direction = direction

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        mirror = input >= self.threshold if self.direction == "above" else input < self.threshold
        return torch.where(mirror, self.upper - input, input)


# --------------------------------------------------------------------------------------------
# geometric augmentations
# --------------------------------------------------------------------------------------------


def rot90_per_sample(x: Tensor, k: Tensor) -> Tensor:
    """Rotate each sample by its own number of counter-clockwise quarter turns, exactly.

    Equivalent to ``torch.rot90(x[i], k[i], dims=(-2, -1))`` for every sample, computed as one
    gather of pixel indices (one pass over the data, no host sync), not as four rotations
    blended with :func:`torch.where`.

    Args:
        x: [B, C, H, W]; H == W unless every k is even.
        k: [B] integers in {0, 1, 2, 3}.

    Returns:
        [B, C, H, W] rotated copy.
    """
    b, c, h, w = x.shape
    ii = torch.arange(h, device=x.device).view(1, h, 1)
    jj = torch.arange(w, device=x.device).view(1, 1, w)
    kk = k.to(device=x.device).view(-1, 1, 1)
    # source pixel of output pixel (i, j) after k quarter turns (torch.rot90 convention)
    src_i = torch.where(
        kk == 1, jj, torch.where(kk == 2, h - 1 - ii, torch.where(kk == 3, w - 1 - jj, ii))
    )
    src_j = torch.where(
        kk == 1, w - 1 - ii, torch.where(kk == 2, w - 1 - jj, torch.where(kk == 3, ii, jj))
    )
    index = (src_i * w + src_j).view(b, 1, h * w).expand(b, c, h * w)
    return torch.gather(x.reshape(b, c, h * w), 2, index).view(b, c, h, w)


class RandomRot90(K.GeometricAugmentationBase2D):
    """Rotation by a random multiple of 90° (k ∈ {0, 1, 2, 3} uniform per sample), exact.

    kornia's :class:`~kornia.augmentation.RandomRotation90` warps through an affine grid
    (bilinear float noise, zero padding) and draws ``times`` from a continuous range that it
    rounds, so the end values are half as likely. This one permutes pixels with
    :func:`torch.rot90` (k counter-clockwise quarter turns, as displayed) and selects per sample
    with :func:`torch.where`, so values are exact and masks keep their labels. A non-square
    image only gets k ∈ {0, 2} (0° or 180°), so its shape is kept. Together with independent
    horizontal flips (p = 0.5) this samples the 8 symmetries of the square uniformly.

    Args:
        p: probability of rotating a sample (k = 0 is already drawn a quarter of the time).
        same_on_batch: one k for the whole batch.
        keepdim: kornia's ``keepdim``.

    Shapes:
        [B, C, H, W] in, [B, C, H, W] out.
    """

    _compute_matrix_lazily = True

    def __init__(self, p: float = 1.0, same_on_batch: bool = False, keepdim: bool = False) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, Tensor]:
        b = batch_shape[0]
        n = 1 if self.same_on_batch else b
        k = torch.randint(0, 4, (n,), device=self.device)
        return {"k": k.expand(b) if self.same_on_batch else k}

    @staticmethod
    def _effective_k(params: dict[str, Tensor], input: Tensor) -> Tensor:
        k = params["k"].to(device=input.device, non_blocking=True).long()
        if input.shape[-1] != input.shape[-2]:
            k = torch.div(k, 2, rounding_mode="floor") * 2
        return k

    @_input_metadata_only  # lets kornia's lazy matrix drop the input instead of holding it
    def compute_transformation(
        self, input: Tensor, params: dict[str, Tensor], flags: dict[str, Any]
    ) -> Tensor:
        k = self._effective_k(params, input).to(input.dtype)
        h, w = input.shape[-2:]
        half = torch.div(k, 2, rounding_mode="floor")
        odd = k - 2 * half
        sign = 1 - 2 * half
        cos, sin = (1 - odd) * sign, odd * sign
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        zero, one = torch.zeros_like(k), torch.ones_like(k)
        rows = [
            torch.stack([cos, sin, cx - cos * cx - sin * cy], -1),
            torch.stack([-sin, cos, cy + sin * cx - cos * cy], -1),
            torch.stack([zero, zero, one], -1),
        ]
        return torch.stack(rows, -2)  # [B, 3, 3]

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        return rot90_per_sample(input, self._effective_k(params, input))

    def inverse_transform(
        self,
        input: Tensor,
        flags: dict[str, Any],
        transform: Tensor | None = None,
        size: tuple[int, int] | None = None,
    ) -> Tensor:
        params = dict(self._params)
        params["k"] = (4 - params["k"]) % 4
        return self.apply_transform(input, params, flags)


class RandomResizedCrop(K.RandomResizedCrop):
    """kornia's RandomResizedCrop with an ``int`` size and batched cropping by default.

    Crops a random region of ``scale`` x area and aspect ``ratio`` and resizes it to ``size``
    (images bilinear; masks nearest inside :class:`BatchAugmentation`). The default
    ``cropping_mode="resample"`` crops the whole batch with one warp; kornia's own default
    (``"slice"``) loops over samples in Python.

    Args:
        size: output size, ``int`` (square) or ``(h, w)``.
        scale: range of the crop area as a fraction of the image.
        ratio: range of the crop aspect ratio.
        p: probability for the *batch* (kornia cannot mix crop sizes within a batch).
        cropping_mode: ``"resample"`` (default) or ``"slice"``.
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        p: float = 1.0,
        cropping_mode: str = "resample",
    ) -> None:
        hw = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        super().__init__(
            size=hw, scale=tuple(scale), ratio=tuple(ratio), p=p, cropping_mode=cropping_mode
        )


# --------------------------------------------------------------------------------------------
# RandomSensorDrop
# --------------------------------------------------------------------------------------------


class RandomSensorDrop(nn.Module):
    """Random Sensor Drop (DINO-MM, Wang et al. 2022, IGARSS; REFERENCE.md).

    For each sample that has both sensors, with probability ``p`` zero either all S2 channels
    (probability ``s2_prob``) or all S1 channels, and set that sensor's ``present`` flag to
    ``False``. With the defaults a sample keeps both sensors 50 % of the time and is S1-only
    or S2-only 25 % each, so one early-fusion encoder learns SAR-only, optical-only and joint
    inputs. Samples with a single sensor are never dropped. Run it *after* normalisation: a
    dropped sensor then reads 0 (the mean in ``"standardize"`` mode), like a missing one.
    Random numbers come from torch's generator of the batch's device, so the result is
    deterministic given that generator's state.

    Args:
        p: probability of dropping one sensor of a two-sensor sample.
        s2_prob: probability that the dropped sensor is S2 (otherwise S1).

    Shapes:
        ``s1`` [B, 2, H, W], ``s2`` [B, C, H, W], ``present`` bool [B] each; same out.
    """

    def __init__(self, p: float = 0.5, s2_prob: float = 0.5) -> None:
        super().__init__()
        for name, v in (("p", p), ("s2_prob", s2_prob)):
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {v}", key=name)
        self.p = float(p)
        self.s2_prob = float(s2_prob)

    def forward(self, batch: Batch) -> Batch:
        """Drop sensors in a (normalised) batch; returns a new batch dict."""
        out = _copy_batch(batch)
        if "s1" not in batch or "s2" not in batch:
            return out
        s1, s2 = batch["s1"], batch["s2"]
        b, device = s2.shape[0], s2.device
        has_s1 = _presence(batch, "s1", b, device)
        has_s2 = _presence(batch, "s2", b, device)
        u = torch.rand(2, b, device=device)
        drop = (u[0] < self.p) & has_s1 & has_s2
        drop_s2 = drop & (u[1] < self.s2_prob)
        drop_s1 = drop & ~drop_s2
        keep_s1, keep_s2 = has_s1 & ~drop_s1, has_s2 & ~drop_s2
        out["s1"] = _zero_absent(s1, keep_s1)
        out["s2"] = _zero_absent(s2, keep_s2)
        present = out.get("present")
        present = dict(present) if isinstance(present, dict) else {}
        present["s1"], present["s2"] = keep_s1, keep_s2
        out["present"] = present
        return out

    def extra_repr(self) -> str:
        return f"p={self.p}, s2_prob={self.s2_prob}"


# --------------------------------------------------------------------------------------------
# batch augmentation
# --------------------------------------------------------------------------------------------


class BatchAugmentation(nn.Module):
    """Augment a collated batch: joint geometry, per-sensor intensity, then sensor drop.

    1. ``geometric`` ops run as one :class:`kornia.augmentation.AugmentationSequential` on the
       channel-concatenated ``s1`` + ``s2`` (+ ``spatial_keys``) tensor and on the mask, so all
       spatial keys of a sample share the same flip / rotation / crop. The mask is resampled with
       nearest neighbour; pixels a transform brings in from outside become 255 (ignore).
    2. ``intensity`` ops run on ``s1`` and ``s2`` separately, each with its own random draw, so
       e.g. grayscale averages SAR bands and optical bands separately and never mixes them.
       With ``joint_intensity=True`` they run once on the stacked S2 + S1 channels instead
       (the DINO-MM code augments its 14-channel stack this way: one brightness / contrast
       draw per sample for both sensors, grayscale = mean of all 14 channels). Samples
       whose sensor is absent (``present`` False) are kept exactly zero.
    3. ``sensor_drop`` (e.g. :class:`RandomSensorDrop`) last.

    Batches with only ``s1``, only ``s2`` or both, with or without ``mask``, are accepted; other
    keys (``label``, ``meta``, ...) pass through. The input batch is not modified. Each op is a
    plain module, so a YAML config can build this with ``class_path``/``init_args`` lists.

    Args:
        geometric: kornia geometric augmentations (e.g. ``RandomHorizontalFlip``,
            :class:`RandomRot90`, :class:`RandomResizedCrop`).
        intensity: intensity augmentations for any channel count (this module's, or kornia's
            range-independent ones).
        sensor_drop: applied last, or ``None``.
        spatial_keys: extra float [B, K, H, W] keys (e.g. a CromSS label prior) transformed
            geometrically with the images (bilinear), without intensity changes.
        mask_keys: extra int64 [B, H, W] label keys (e.g. ``mask_clean``) transformed like
            ``mask``: nearest neighbour, 255 where a transform brings pixels in.
        joint_intensity: run the intensity ops on the stacked S2 + S1 channels of batches
            that hold both sensors (otherwise per sensor).

    Shapes:
        ``s1`` [B, 2, H, W], ``s2`` [B, C, H, W], ``mask`` int64 [B, H, W]; spatial size becomes
        the crop size if a crop is among ``geometric``.
    """

    def __init__(
        self,
        geometric: Sequence[nn.Module] = (),
        intensity: Sequence[nn.Module] = (),
        sensor_drop: RandomSensorDrop | None = None,
        spatial_keys: Sequence[str] = (),
        mask_keys: Sequence[str] = (),
        joint_intensity: bool = False,
    ) -> None:
        super().__init__()
        self.mask_keys = tuple(mask_keys)
        self.joint_intensity = bool(joint_intensity)
        geometric = list(geometric)
        self.geometric = K.AugmentationSequential(*geometric, data_keys=None) if geometric else None
        self.intensity = nn.ModuleList(intensity)
        self.sensor_drop = sensor_drop
        self.spatial_keys = tuple(spatial_keys)
        self._pin_rng_to_cpu()

    def _pin_rng_to_cpu(self) -> None:
        for m in self.modules():
            if isinstance(m, K.base._BasicAugmentationBase):
                m.set_rng_device_and_dtype(torch.device("cpu"), torch.float32)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> BatchAugmentation:
        # kornia moves its samplers to the module's device; keep them on the CPU (module notes).
        out = super()._apply(fn, *args, **kwargs)
        self._pin_rng_to_cpu()
        return out

    def _geometric(self, batch: Batch, out: Batch) -> None:
        assert self.geometric is not None
        keys = [k for k in (*IMAGE_KEYS, *self.spatial_keys) if k in batch]
        if not keys:
            raise DataError(
                f"geometric augmentation needs an image key ({list(IMAGE_KEYS)}) "
                f"in the batch, got {sorted(batch)}"
            )
        tensors = [batch[k] for k in keys]
        sizes = {k: tuple(t.shape[-2:]) for k, t in zip(keys, tensors)}
        masks = [k for k in ("mask", *self.mask_keys) if k in batch]
        sizes |= {k: tuple(batch[k].shape[-2:]) for k in masks}
        if len(set(sizes.values())) > 1:
            raise DataError(f"spatial sizes differ between batch keys: {sizes}")
        dtype = tensors[0].dtype
        x = torch.cat([t.to(dtype) for t in tensors], dim=1)
        if masks:
            # Shift so that ignore (255) is 0: anything a transform pads with zeros is then ignore.
            shifted = [(batch[k].to(x.dtype) - IGNORE_INDEX).unsqueeze(1) for k in masks]
            x, *moved = self.geometric(x, *shifted, data_keys=["input"] + ["mask"] * len(masks))
            for k, m in zip(masks, moved):
                out[k] = (m.squeeze(1).round() + IGNORE_INDEX).to(batch[k].dtype)
        else:
            x = self.geometric(x, data_keys=["input"])
        chunks = torch.split(x, [t.shape[1] for t in tensors], dim=1)
        for k, t, y in zip(keys, tensors, chunks):
            out[k] = y.to(t.dtype)

    def forward(self, batch: Batch) -> Batch:
        """Augment a batch; returns a new batch dict.

        Raises:
            DataError: geometric ops on a batch without image keys, or spatial sizes that differ.
        """
        out = _copy_batch(batch)
        if self.geometric is not None:
            self._geometric(batch, out)
        if len(self.intensity) > 0:
            joint = self.joint_intensity and all(k in out for k in IMAGE_KEYS)
            groups = [("s2", "s1")] if joint else [(k,) for k in IMAGE_KEYS if k in out]
            for keys in groups:
                x = torch.cat([out[k] for k in keys], dim=1)  # early-fusion order: S2, S1
                for op in self.intensity:
                    x = op(x)
                for k, y in zip(keys, torch.split(x, [out[k].shape[1] for k in keys], dim=1)):
                    out[k] = _zero_absent(y, _presence(batch, k, y.shape[0], y.device))
        if self.sensor_drop is not None:
            out = self.sensor_drop(out)
        return out


# --------------------------------------------------------------------------------------------
# factories
# --------------------------------------------------------------------------------------------


def classification_augmentation(crop_size: int | None = None) -> BatchAugmentation:
    """Flips and 90° rotations (the 8 symmetries of the square), optionally a resized crop.

    Args:
        crop_size: if given, first a :class:`RandomResizedCrop` to ``crop_size`` with scale
            (0.5, 1).

    Returns:
        A :class:`BatchAugmentation` without intensity ops or sensor drop.
    """
    geometric: list[nn.Module] = []
    if crop_size is not None:
        geometric.append(RandomResizedCrop(crop_size, scale=(0.5, 1.0)))
    geometric += [K.RandomHorizontalFlip(p=0.5), K.RandomVerticalFlip(p=0.5), RandomRot90(p=1.0)]
    return BatchAugmentation(geometric=geometric)


def mgsvit_ssl_augmentation(
    size: int,
    sensor_drop: RandomSensorDrop | None = None,
    recipe: Literal["code", "paper"] = "code",
    view: Literal[1, 2] = 1,
) -> BatchAugmentation:
    """One view of the MGSViT self-supervised augmentation (Liu et al. 2024).

    ``recipe="code"`` (default; the authors' ``ours_train_pretrain.py``): RandomResizedCrop
    to ``size`` with scale (0.2, 1.0); multiplicative brightness *and* contrast (0.4) with
    p = 0.8 (:class:`RandomBrightnessContrast`); grayscale (band mean) p = 0.2; Gaussian
    blur σ ∈ [0.1, 2] with p = 1.0 on view 1 and p = 0.1 on view 2; horizontal flip p = 0.5.

    ``recipe="paper"`` (§4.4 as printed): the same crop; brightness *or* contrast with
    maximum delta 0.4 and p = 0.8 (:class:`RandomBrightnessOrContrast`); grayscale p = 0.2;
    Gaussian blur σ ∈ [0.1, 2] with p = 1.0; both views alike, no flip.

    Args:
        size: output size of the crop (128 in the paper; 224 in the code's default).
        sensor_drop: optional :class:`RandomSensorDrop` appended (not part of MGSViT).
        recipe: ``code`` or ``paper``.
        view: 1 or 2 (the views differ in blur probability under ``code``).
    """
    if recipe not in ("code", "paper"):
        raise ConfigError(f"recipe must be 'code' or 'paper', got {recipe!r}", key="recipe")
    if view not in (1, 2):
        raise ConfigError(f"view must be 1 or 2, got {view!r}", key="view")
    geometric: list[nn.Module] = [RandomResizedCrop(size, scale=(0.2, 1.0))]
    if recipe == "code":
        geometric.append(K.RandomHorizontalFlip(p=0.5))
        color: nn.Module = RandomBrightnessContrast(max_delta=0.4, p=0.8)
        blur_p = 1.0 if view == 1 else 0.1
    else:
        color = RandomBrightnessOrContrast(max_delta=0.4, p=0.8)
        blur_p = 1.0
    return BatchAugmentation(
        geometric=geometric,
        intensity=[color, RandomGrayscale(p=0.2), RandomGaussianBlur(sigma=(0.1, 2.0), p=blur_p)],
        sensor_drop=sensor_drop,
    )


class MultiCropAugmentation(nn.Module):
    """DINO multi-crop views of one batch, made multispectral-aware (DINO-MM, seed 002).

    From one normalised batch, ``2`` global views of ``global_crops_size`` px (area scale
    ``global_crops_scale``) and ``local_crops_number`` local views of ``local_crops_size`` px
    (``local_crops_scale``) are drawn, each with its own random crop per sample and (DINO's
    augmentation, REFERENCE.md):

    ================================  =========  =========  =========
    op                                global 1   global 2   local
    ================================  =========  =========  =========
    horizontal flip                   0.5        0.5        0.5
    brightness and contrast (×, 0.4)  0.8        0.8        0.8
    grayscale (band mean)             0.2        0.2        0.2
    Gaussian blur σ ∈ [0.1, 2]        1.0        0.1        0.5
    solarize                          0          0.2        0
    RandomSensorDrop                  per view   per view   per view
    ================================  =========  =========  =========

    The defaults follow the DINO-MM code (``main_dino_B14.DataAugmentationDINO``), which
    augments the 14-channel S2 + S1 stack as one image: multiplicative brightness then
    contrast (``color="brightness_and_contrast"``, :class:`RandomBrightnessContrast`), one
    draw per sample for both sensors, grayscale over all 14 channels
    (``joint_sensors=True``), and a solarisation that mirrors the values *below* the
    threshold (``solarize_direction="below"``, the code's ``Solarize(128)``). The
    alternatives, one argument away: ``color="brightness_or_contrast"`` (additive brightness
    or contrast, the MGSViT paper's text), ``joint_sensors=False`` (intensity ops per sensor,
    so grayscale never mixes SAR and optical bands) and ``solarize_direction="above"``
    (torchvision / PIL, facebookresearch/dino). The crop is shared by both sensors of a
    sample within a view. ``sensor_drop`` draws independently for every view, so with the
    defaults each view is 50 % joint, 25 % SAR-only, 25 % optical-only. With
    ``local_crops_number = 0`` this gives MoCo v3's two views (blur 1.0 / 0.1, solarize 0 /
    0.2).

    Args:
        global_crops_size: output side of the global views (DINO-MM: 112).
        global_crops_scale: crop area range of the global views ((0.4, 1)).
        local_crops_number: number of local views (8).
        local_crops_size: output side of the local views (48).
        local_crops_scale: crop area range of the local views ((0.05, 0.4)).
        max_delta: brightness shift / contrast factor half-width (0.4).
        color_p: probability of the brightness-or-contrast op (0.8).
        grayscale_p: probability of grayscale (0.2).
        blur_p: blur probability for (global 1, global 2, local) views.
        blur_sigma: σ range of the blur.
        solarize_p: solarisation probability of global view 2 (0.2).
        solarize_threshold: see :class:`RandomSolarize` (0.5 for [0, 1] data).
        solarize_upper: see :class:`RandomSolarize` (1.0 for [0, 1] data).
        sensor_drop: a :class:`RandomSensorDrop` applied per view, or ``None``.
        color: ``brightness_and_contrast`` (the DINO-MM / MGSViT code) or
            ``brightness_or_contrast``.
        joint_sensors: run the intensity ops on the stacked S2 + S1 channels (DINO-MM code)
            instead of per sensor.
        solarize_direction: ``below`` (DINO-MM code) or ``above`` (PIL / DINO).

    Shapes:
        a batch with ``s1`` [B, 2, H, W] and/or ``s2`` [B, C, H, W] in; a list of
        ``2 + local_crops_number`` batches out (global views first), each with images of the
        view's size and consistent ``present`` flags.
    """

    def __init__(
        self,
        global_crops_size: int = 112,
        global_crops_scale: tuple[float, float] = (0.4, 1.0),
        local_crops_number: int = 8,
        local_crops_size: int = 48,
        local_crops_scale: tuple[float, float] = (0.05, 0.4),
        max_delta: float = 0.4,
        color_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_p: tuple[float, float, float] = (1.0, 0.1, 0.5),
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        solarize_p: float = 0.2,
        solarize_threshold: float = 0.5,
        solarize_upper: float = 1.0,
        sensor_drop: RandomSensorDrop | None = None,
        color: Literal["brightness_and_contrast", "brightness_or_contrast"] = (
            "brightness_and_contrast"
        ),
        joint_sensors: bool = True,
        solarize_direction: Literal["above", "below"] = "below",
    ) -> None:
        super().__init__()
        if color not in ("brightness_and_contrast", "brightness_or_contrast"):
            raise ConfigError(
                f"color must be 'brightness_and_contrast' or 'brightness_or_contrast', "
                f"got {color!r}",
                key="color",
            )
        if local_crops_number < 0:
            raise ConfigError(
                f"local_crops_number must be >= 0, got {local_crops_number}",
                key="local_crops_number",
            )
        if len(blur_p) != 3:
            raise ConfigError(f"blur_p needs 3 values, got {list(blur_p)}", key="blur_p")
        self.n_global = 2
        self.n_local = int(local_crops_number)
        self.global_crops_size = int(global_crops_size)
        self.local_crops_size = int(local_crops_size)

        def view(size: int, scale: tuple[float, float], blur: float, solar: float) -> nn.Module:
            color_op: nn.Module = (
                RandomBrightnessContrast(max_delta=max_delta, p=color_p)
                if color == "brightness_and_contrast"
                else RandomBrightnessOrContrast(max_delta=max_delta, p=color_p)
            )
            intensity: list[nn.Module] = [color_op, RandomGrayscale(p=grayscale_p)]
            if blur > 0:
                intensity.append(RandomGaussianBlur(sigma=tuple(blur_sigma), p=blur))
            if solar > 0:
                intensity.append(
                    RandomSolarize(
                        threshold=solarize_threshold,
                        upper=solarize_upper,
                        p=solar,
                        direction=solarize_direction,
                    )
                )
            return BatchAugmentation(
                geometric=[
                    RandomResizedCrop(size, scale=tuple(scale)),
                    K.RandomHorizontalFlip(p=0.5),
                ],
                intensity=intensity,
                sensor_drop=sensor_drop,
                joint_intensity=joint_sensors,
            )

        gs, ls = tuple(global_crops_scale), tuple(local_crops_scale)
        self.global_views = nn.ModuleList(
            [
                view(self.global_crops_size, gs, blur_p[0], 0.0),
                view(self.global_crops_size, gs, blur_p[1], solarize_p),
            ]
        )
        self.local_view = (
            view(self.local_crops_size, ls, blur_p[2], 0.0) if self.n_local > 0 else None
        )

    @property
    def n_crops(self) -> int:
        """Total views per batch: 2 global + local."""
        return self.n_global + self.n_local

    def forward(self, batch: Batch) -> list[Batch]:
        """``2 + local_crops_number`` augmented views of ``batch`` (global first)."""
        views = [aug(batch) for aug in self.global_views]
        if self.local_view is not None:
            views += [self.local_view(batch) for _ in range(self.n_local)]
        return views
