"""Intensity augmentations for any number of channels (kornia augmentation subclasses).

Each draws its random parameters with kornia's samplers (per sample, on the CPU; see
:class:`~rsfuse.data.transforms.pipelines.BatchAugmentation`) and works on a plain
[B, C, H, W] tensor like any kornia augmentation: brightness and contrast (the papers'
text: one or the other, additive; the authors' code: multiplicative, both), grayscale as
the band mean, Gaussian blur, solarisation.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import kornia.augmentation as K
import torch
from kornia.augmentation import random_generator as rg
from torch import Tensor

from rsfuse.errors import ConfigError


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
