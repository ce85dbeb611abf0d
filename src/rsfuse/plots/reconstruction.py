"""The MAE visual check: input, masked input and reconstruction side by side.

The encoder's (normalised) input is drawn: S2 as B04, B03, B02 with one stretch shared by
the three channels (the 2–98 % percentiles of their pooled values, as
:func:`rsfuse.data.composites.stretch_joint`), S1 as VV, VH, VV − VH with one stretch per
channel. Every panel of a row uses the input's stretch, so colours are comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

from rsfuse.models.vit import patchify
from rsfuse.plots.common import pyplot, save_figure

MASKED_GREY = 0.5


def unpatchify(patches: Tensor, patch_size: int, channels: int, grid: tuple[int, int]) -> Tensor:
    """Inverse of :func:`rsfuse.models.vit.patchify`: [B, L, p·p·C] → [B, C, H, W]."""
    b = patches.shape[0]
    p, (gh, gw) = patch_size, grid
    x = patches.reshape(b, gh, gw, p, p, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, gh * p, gw * p)


def display_channels(band_names: Sequence[str]) -> tuple[list[int], str]:
    """Channel indices of the RGB composite and its name for a band list."""
    names = list(band_names)
    if names == ["VV", "VH"]:
        return [0, 1], "false colour (VV, VH, VV−VH)"
    if all(b in names for b in ("B04", "B03", "B02")):
        return [names.index(b) for b in ("B04", "B03", "B02")], "true colour (B04, B03, B02)"
    return [0, 1, 2][: len(names)], f"bands {names[:3]}"


def _rgb(img: np.ndarray, channels: list[int]) -> np.ndarray:
    """[C, H, W] → [H, W, 3] before stretching."""
    if len(channels) == 2:  # S1: VV, VH, VV − VH
        a, b = img[channels[0]], img[channels[1]]
        return np.stack([a, b, a - b], axis=-1)
    return np.stack([img[c] for c in channels], axis=-1)


def _stretch_like(img: np.ndarray, ref: np.ndarray, joint: bool) -> np.ndarray:
    """Stretch ``img`` [H, W, 3] with the 2–98 % percentiles of ``ref``: of the pooled
    channels (``joint``, one offset and gain: hues kept) or per channel."""
    out = np.empty_like(img, dtype=np.float64)
    for c in range(3):
        lo, hi = np.percentile(ref if joint else ref[..., c], [2, 98])
        out[..., c] = np.clip((img[..., c] - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    return out


def plot_reconstruction(
    x: Tensor,
    pred: Tensor,
    mask: Tensor,
    patch_size: int,
    band_names: Sequence[str],
    path: str | Path,
    norm_pix: bool = False,
) -> Path:
    """One row per sample: input, masked input (removed patches grey), reconstruction.

    The reconstruction panel shows the predicted pixels on removed patches and the input on
    kept ones (as MAE's figures do). With ``norm_pix`` the predictions are mapped back with
    each target patch's own mean and standard deviation.

    Args:
        x: input [B, C, H, W] (what the encoder saw).
        pred: predicted patches [B, L, p·p·C].
        mask: [B, L], 1 = removed.
        patch_size: p.
        band_names: channel names of ``x`` (picks the RGB composite).
        path: PNG to write (atomically).
        norm_pix: predictions are normalised patches.

    Returns:
        ``path``.
    """
    b, c, h, w = x.shape
    grid = (h // patch_size, w // patch_size)
    target = patchify(x, patch_size)
    if norm_pix:
        mean = target.mean(-1, keepdim=True)
        std = (target.var(-1, keepdim=True, unbiased=True) + 1e-6) ** 0.5
        pred = pred * std + mean
    m = mask[..., None].to(pred.dtype)
    recon = unpatchify(target * (1 - m) + pred * m, patch_size, c, grid)
    pixel_mask = unpatchify(m.expand_as(target), patch_size, c, grid)[:, 0] > 0.5  # [B, H, W]
    channels, name = display_channels(band_names)
    joint = len(channels) == 3 and name.startswith("true colour")
    plt = pyplot()
    fig, axes = plt.subplots(b, 3, figsize=(7.5, 2.5 * b + 0.4), squeeze=False)
    for i in range(b):
        ref = _rgb(x[i].numpy(), channels)
        shown = _stretch_like(ref, ref, joint)
        masked = shown.copy()
        masked[pixel_mask[i].numpy()] = MASKED_GREY
        rec = _stretch_like(_rgb(recon[i].numpy(), channels), ref, joint)
        for ax, img, title in zip(
            axes[i], (shown, masked, rec), ("input", "masked input", "reconstruction + visible")
        ):
            ax.imshow(img)
            ax.set_axis_off()
            if i == 0:
                ax.set_title(title, fontsize=9)
    ratio = float(mask.float().mean())
    fig.suptitle(f"normalised input, {name}; {ratio:.0%} of patches removed", fontsize=10)
    return save_figure(fig, path)
