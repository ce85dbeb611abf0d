"""Segmentation figures: a confusion matrix and a grid of inputs, reference and prediction.

Both use matplotlib's Agg backend and are written to a temporary name, then renamed
(:func:`rsfuse.plots.common.save_figure`), so a killed run never leaves a half-written PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rsfuse.data.composites import s1_false_colour, true_colour
from rsfuse.data.palettes import class_legend, colourise
from rsfuse.plots.common import pyplot as _pyplot
from rsfuse.plots.common import save_figure


def plot_confusion_matrix(
    cm: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    title: str = "confusion matrix",
) -> Path:
    """Row-normalised confusion matrix (rows = reference), the fraction written in each cell.

    Rows of classes with no reference pixel in the split are labelled "(none)".

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
    size = max(4.5, 0.6 * k + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the reference row")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(class_names, rotation=45, ha="right", fontsize=9)
    ylabels = [n if rows[i, 0] > 0 else f"{n} (none)" for i, n in enumerate(class_names)]
    ax.set_yticklabels(ylabels, fontsize=9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    if k <= 16:
        for i in range(k):
            for j in range(k):
                if cm[i, j] > 0:
                    text = f"{norm[i, j]:.2f}" if norm[i, j] >= 0.005 else "<.01"
                    colour = "white" if norm[i, j] > 0.5 else "black"
                    ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


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
    ids: Sequence[str] | None = None,
) -> Path:
    """Grid, one row per sample: S2 true colour, S1 false colour, reference, prediction.

    S2 is drawn with one joint stretch over its clear pixels and S1 as R = VV, G = VH,
    B = VV − VH over fixed dB ranges (:mod:`rsfuse.data.composites`); classes in their
    nomenclature's colours (:mod:`rsfuse.data.palettes`), the legend beside the grid
    listing the classes that occur in the reference or the prediction.

    Args:
        s2: [N, C, H, W] S2 digital numbers (reflectance × 10000) or None.
        s1: [N, 2, H, W] S1 (VV, VH in dB) or None.
        target: [N, H, W] reference classes, ``ignore_index`` = unlabelled (white).
        pred: [N, H, W] predicted classes.
        class_names: K names for the legend.
        path: output PNG.
        rgb_index: indices of B04, B03, B02 in the S2 channels (None: no S2 panel).
        ignore_index: unlabelled value in ``target``.
        title: figure title.
        ids: sample ids, written at the left of each row.
    """
    plt = _pyplot()
    k = len(class_names)
    n = target.shape[0]
    panels: list[str] = []
    if s2 is not None and rgb_index is not None:
        panels.append("S2 true colour\n(B04, B03, B02)")
    if s1 is not None:
        panels.append("S1 false colour\n(VV, VH, VV − VH)")
    panels += ["reference", "prediction"]
    side = 2.4
    fig, axes = plt.subplots(
        n,
        len(panels),
        figsize=(side * len(panels), side * n + (0.5 if title else 0.2)),
        squeeze=False,
    )
    for r in range(n):
        for c, name in enumerate(panels):
            ax = axes[r, c]
            if name.startswith("S2"):
                img = true_colour(np.moveaxis(s2[r][list(rgb_index)], 0, -1))
            elif name.startswith("S1"):
                img = s1_false_colour(s1[r])
            elif name == "reference":
                img = colourise(target[r], class_names, ignore_index)
            else:
                img = colourise(pred[r], class_names, ignore_index)
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
            if c == 0 and ids is not None and r < len(ids):
                ax.set_ylabel(str(ids[r]), fontsize=7)
    seen = np.concatenate([np.asarray(target).ravel(), np.asarray(pred).ravel()])
    present = [int(v) for v in np.unique(seen) if 0 <= v < k]
    fig.legend(
        handles=class_legend(
            class_names, unlabelled=bool((target == ignore_index).any()), present=present
        ),
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        fontsize=8,
        frameon=False,
        title="classes",
        title_fontsize=8,
    )
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
