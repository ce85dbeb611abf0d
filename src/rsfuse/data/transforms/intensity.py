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


def _uniform_sampler(ranges: dict[str, tuple[float, float]]) -> rg.PlainUniformGenerator:
    """kornia's uniform parameter sampler over named ``(low, high)`` ranges, with its range
    buffers re-registered as non-persistent.

    kornia registers the ranges as persistent buffers, so an augmentation held by a
    LightningModule would add (config-dependent) keys to every checkpoint.
    """
    gen = rg.PlainUniformGenerator(
        *((torch.tensor(r, dtype=torch.float32), name, None, None) for name, r in ranges.items())
    )
    for name, buf in list(gen.named_buffers(recurse=False)):
        gen.register_buffer(name, buf, persistent=False)
    return gen


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


def _channel_mean(x: Tensor) -> Tensor:
    """Per-sample per-channel spatial mean, [B, C, 1, 1]."""
    return x.mean(dim=(-2, -1), keepdim=True)


class IntensityOp(K.IntensityAugmentationBase2D):
    """Base of rsfuse's intensity augmentations: kornia's sampling, rsfuse's ``intensity``.

    Subclasses name the per-sample uniform parameters they draw (:meth:`ranges`) and map a
    batch with them (:meth:`intensity`); kornia applies the op to a sample with probability
    ``p`` and handles ``same_on_batch`` / ``keepdim``.
    """

    def __init__(self, p: float, same_on_batch: bool = False, keepdim: bool = False) -> None:
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        ranges = self.ranges()
        self.sampled = tuple(ranges)
        if ranges:
            self._param_generator = _uniform_sampler(ranges)

    def ranges(self) -> dict[str, tuple[float, float]]:
        """Name → ``(low, high)`` of each per-sample uniform parameter (none by default)."""
        return {}

    def intensity(self, x: Tensor, f: dict[str, Tensor]) -> Tensor:
        """The op on [B, C, H, W] ``x`` with its parameters ``f`` as [B, 1, 1, 1]."""
        raise NotImplementedError

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        f = {
            k: params[k].to(device=input.device, dtype=input.dtype).view(-1, 1, 1, 1)
            for k in self.sampled
        }
        return self.intensity(input, f)


class _DeltaOp(IntensityOp):
    """An :class:`IntensityOp` parametrised by one ``max_delta`` (brightness / contrast)."""

    default_p = 1.0
    factor = False  # max_delta is also a factor half-width around 1, so at most 1

    def __init__(
        self,
        max_delta: float = 0.4,
        p: float | None = None,
        same_on_batch: bool = False,
        keepdim: bool = False,
    ) -> None:
        self.max_delta = _check_delta(type(self).__name__, max_delta, self.factor)
        super().__init__(self.default_p if p is None else p, same_on_batch, keepdim)


class RandomBrightness(_DeltaOp):
    """Additive brightness shift for any channel count: ``x + δ``.

    ``δ ~ U(-max_delta, max_delta)`` is drawn per sample and shared by all channels of that
    sample. Unlike :class:`kornia.augmentation.RandomBrightness` the output is not clamped to
    [0, 1], so it suits standardised multispectral data. MGSViT §4.4 uses ``max_delta=0.4``.

    Args:
        max_delta: half-width of the shift range.
        p: probability of applying the shift to a sample (default 1).
        same_on_batch: draw one shift for the whole batch.
        keepdim: kornia's ``keepdim``.

    Shapes:
        [B, C, H, W] (or [C, H, W]) in, [B, C, H, W] out.
    """

    def ranges(self) -> dict[str, tuple[float, float]]:
        return {"brightness_delta": (-self.max_delta, self.max_delta)}

    def intensity(self, x: Tensor, f: dict[str, Tensor]) -> Tensor:
        return x + f["brightness_delta"]


class RandomContrast(_DeltaOp):
    """Contrast change around each band's mean for any channel count.

    ``(x - μ_c) · f + μ_c`` with ``f ~ U(1 - max_delta, 1 + max_delta)`` drawn per sample and
    ``μ_c`` the per-sample per-channel spatial mean (so the band means are preserved; torchvision's
    RGB contrast uses the grayscale mean instead). MGSViT §4.4 uses ``max_delta=0.4``.

    Args:
        max_delta: half-width of the factor range around 1 (must be <= 1).
        p: probability of applying the change to a sample (default 1).
        same_on_batch: draw one factor for the whole batch.
        keepdim: kornia's ``keepdim``.

    Shapes:
        [B, C, H, W] (or [C, H, W]) in, [B, C, H, W] out.
    """

    factor = True

    def ranges(self) -> dict[str, tuple[float, float]]:
        return {"contrast_factor": (1.0 - self.max_delta, 1.0 + self.max_delta)}

    def intensity(self, x: Tensor, f: dict[str, Tensor]) -> Tensor:
        mu = _channel_mean(x)
        return (x - mu) * f["contrast_factor"] + mu


class RandomBrightnessOrContrast(_DeltaOp):
    """Either a brightness shift or a contrast change, chosen 50/50 per sample (MGSViT §4.4).

    MGSViT (Liu et al. 2024, §4.4) applies "brightness or contrast" with maximum delta 0.4 and
    probability 0.8. With probability ``p`` a sample gets, with equal odds, either
    :class:`RandomBrightness`'s ``x + δ`` or :class:`RandomContrast`'s ``(x - μ_c)·f + μ_c``.
    Both are computed in one pass: ``x·f' + μ_c·(1 - f') + δ'`` with ``(f', δ') = (1, δ)`` or
    ``(f, 0)``.

    Args:
        max_delta: brightness shift half-width and contrast factor half-width (<= 1).
        p: probability of changing a sample at all (default 0.8).
        same_on_batch: share one draw across the batch.
        keepdim: kornia's ``keepdim``.

    Shapes:
        [B, C, H, W] (or [C, H, W]) in, [B, C, H, W] out.
    """

    default_p = 0.8
    factor = True

    def ranges(self) -> dict[str, tuple[float, float]]:
        d = self.max_delta
        return {"brightness_delta": (-d, d), "contrast_factor": (1.0 - d, 1.0 + d),
                "choice": (0.0, 1.0)}  # fmt: skip

    def intensity(self, x: Tensor, f: dict[str, Tensor]) -> Tensor:
        use_contrast = f["choice"] < 0.5  # [B, 1, 1, 1]
        factor = torch.where(use_contrast, f["contrast_factor"], torch.ones_like(f["choice"]))
        delta = torch.where(use_contrast, torch.zeros_like(f["choice"]), f["brightness_delta"])
        return x * factor + _channel_mean(x) * (1 - factor) + delta


class RandomBrightnessContrast(_DeltaOp):
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
        p: probability of changing a sample (default 0.8).
        same_on_batch: share one draw across the batch.
        keepdim: kornia's ``keepdim``.

    Shapes:
        [B, C, H, W] (or [C, H, W]) in, [B, C, H, W] out.
    """

    default_p = 0.8

    def ranges(self) -> dict[str, tuple[float, float]]:
        r = (max(0.0, 1.0 - self.max_delta), 1.0 + self.max_delta)
        return {"brightness_factor": r, "contrast_factor": r}

    def intensity(self, x: Tensor, f: dict[str, Tensor]) -> Tensor:
        y = x * f["brightness_factor"]
        mu = _channel_mean(y)
        return (y - mu) * f["contrast_factor"] + mu


class RandomGrayscale(IntensityOp):
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
        super().__init__(p=p, keepdim=keepdim)

    def intensity(self, x: Tensor, f: dict[str, Tensor]) -> Tensor:
        return x.mean(dim=-3, keepdim=True).expand_as(x).contiguous()


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


class RandomSolarize(IntensityOp):
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
        super().__init__(p=p, keepdim=keepdim)
        if direction not in ("above", "below"):
            raise ConfigError(
                f"solarize direction must be 'above' or 'below', got {direction!r}",
                key="direction",
            )
        self.threshold = float(threshold)
        self.upper = float(upper)
        self.direction = direction

    def intensity(self, x: Tensor, f: dict[str, Tensor]) -> Tensor:
        mirror = x >= self.threshold if self.direction == "above" else x < self.threshold
        return torch.where(mirror, self.upper - x, x)
