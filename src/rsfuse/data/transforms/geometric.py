"""Geometric augmentations: exact 90° rotations and kornia's RandomResizedCrop for batches.

Flips, affine rotations and crops are kornia's own; these two fill gaps (exact quarter
turns that keep mask labels, an ``int`` size and batched cropping by default). They run in
:class:`~rsfuse.data.transforms.pipelines.BatchAugmentation`, which applies the same
geometry to every spatial key of a sample.
"""

from __future__ import annotations

from typing import Any

import kornia.augmentation as K
import torch
from torch import Tensor


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
