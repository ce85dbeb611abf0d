"""Segmentation figures: a confusion matrix and a grid of inputs, reference and prediction.

Both use matplotlib's Agg backend and are written to a temporary name, then renamed
(:func:`rsfuse.plots.common.save_figure`), so a killed run never leaves a half-written PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rsfuse.plots.common import pyplot as _pyplot
from rsfuse.plots.common import save_figure

IGNORE_COLOUR = (1.0, 1.0, 1.0)  # unlabelled pixels: white, as DW masks are drawn


def class_colours(n: int) -> np.ndarray:
    """[n, 3] RGB in [0, 1]: tab10 / tab20 colours, one per class."""
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return np.array([cmap(i % cmap.N)[:3] for i in range(n)])


def colourise(mask: np.ndarray, n_classes: int, ignore_index: int = 255) -> np.ndarray:
    """Class mask [H, W] → RGB [H, W, 3]; ignored (or out-of-range) pixels white."""
    colours = np.concatenate([class_colours(n_classes), np.array([IGNORE_COLOUR])])
    idx = np.where((mask >= 0) & (mask < n_classes) & (mask != ignore_index), mask, n_classes)
    return colours[idx]


def stretch(img: np.ndarray, lo: float = 2, hi: float = 98) -> np.ndarray:
    """Per-channel percentile stretch of [H, W, C] to [0, 1] (display only)."""
    out = np.empty_like(img, dtype=np.float64)
    for c in range(img.shape[-1]):
        a, b = np.percentile(img[..., c], [lo, hi])
        out[..., c] = np.clip((img[..., c] - a) / (b - a if b > a else 1.0), 0, 1)
    return out


def s1_false_colour(s1: np.ndarray) -> np.ndarray:
    """S1 [2, H, W] (VV, VH) → RGB [H, W, 3]: R = VV, G = VH, B = VV − VH (dB ratio)."""
    vv, vh = s1[0], s1[1]
    return stretch(np.stack([vv, vh, vv - vh], axis=-1))


def plot_confusion_matrix(
    cm: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    title: str = "confusion matrix",
) -> Path:
    """Row-normalised confusion matrix (rows = reference) with pixel counts in the cells.

    Args:
        cm: [K, K] counts, rows = reference class, columns = predicted class.
        class_names: K names.
        path: output PNG.
        title: figure title.
    """
    plt = _pyplot()
    cm = np.asarray(cm, dtype=np.float64)
    k = cm.shape[0]
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    size = max(4.0, 0.55 * k + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of reference pixels")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticklabels(class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    if k <= 16:
        for i in range(k):
            for j in range(k):
                if cm[i, j] > 0:
                    colour = "white" if norm[i, j] > 0.5 else "black"
                    ax.text(
                        j,
                        i,
                        f"{norm[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color=colour,
                    )
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def plot_segmentation_samples(
    s2: np.ndarray | None,
    s1: np.ndarray | None,
    target: np.ndarray,
    pred: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    rgb_index: Sequence[int] | None = None,
    ignore_index: int = 255,
    title: str | None = None,
) -> Path:
    """Grid, one row per sample: S2 true colour, S1 false colour, reference, prediction.

    Args:
        s2: [N, C, H, W] S2 (any scaling; stretched for display) or None.
        s1: [N, 2, H, W] S1 (VV, VH) or None.
        target: [N, H, W] reference classes, ``ignore_index`` = unlabelled (white).
        pred: [N, H, W] predicted classes.
        class_names: K names for the legend.
        path: output PNG.
        rgb_index: indices of B04, B03, B02 in the S2 channels (None: no S2 panel).
        ignore_index: unlabelled value in ``target``.
        title: figure title.
    """
    plt = _pyplot()
    from matplotlib.patches import Patch

    k = len(class_names)
    n = target.shape[0]
    panels: list[str] = []
    if s2 is not None and rgb_index is not None:
        panels.append("S2 true colour")
    if s1 is not None:
        panels.append("S1 false colour (VV, VH, VV−VH)")
    panels += ["reference", "prediction"]
    fig, axes = plt.subplots(
        n, len(panels), figsize=(2.6 * len(panels), 2.6 * n + 0.8), squeeze=False
    )
    for r in range(n):
        for c, name in enumerate(panels):
            ax = axes[r, c]
            if name.startswith("S2"):
                img = stretch(np.moveaxis(s2[r][list(rgb_index)], 0, -1))
            elif name.startswith("S1"):
                img = s1_false_colour(s1[r])
            elif name == "reference":
                img = colourise(target[r], k, ignore_index)
            else:
                img = colourise(pred[r], k, ignore_index)
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
    colours = class_colours(k)
    handles = [Patch(color=colours[i], label=class_names[i]) for i in range(k)]
    handles.append(Patch(facecolor=IGNORE_COLOUR, edgecolor="grey", label="unlabelled"))
    fig.legend(
        handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=8, frameon=False
    )
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06 + 0.02 * (len(handles) // 5), 1, 1))
    return save_figure(fig, path, dpi=90)
