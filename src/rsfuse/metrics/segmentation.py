"""Semantic-segmentation metrics of CromSS (§IV-A): OA, AA, mIoU, mF1.

Every number is derived from one confusion matrix accumulated over the whole split
(torchmetrics ``MulticlassConfusionMatrix`` with the ignore index, so unlabelled pixels
never count), never averaged per batch. Convention (rows = reference, columns =
prediction, as torchmetrics), with ``n_ij`` the pixels of reference class ``i`` predicted
as ``j``, ``tp_i = n_ii``, ``fn_i = Σ_j n_ij − n_ii`` and ``fp_i = Σ_j n_ji − n_ii``:

* **OA** (overall accuracy) ``= Σ_i tp_i / Σ_ij n_ij``;
* recall ``tp_i / (tp_i + fn_i)``, precision ``tp_i / (tp_i + fp_i)``,
  **IoU_i** ``= tp_i / (tp_i + fp_i + fn_i)``, **F1_i** ``= 2 tp_i / (2 tp_i + fp_i + fn_i)``;
* **AA** (average accuracy) = mean recall; **mIoU**, **mF1** = mean IoU, mean F1.

Where a ratio is 0/0 — a class absent from both reference and prediction, or the recall of
a class that is only predicted — two conventions exist (``absent``):

* ``"one"`` (default, **the CromSS code**: ``utils/evaluates.py`` with smp's metrics and
  ``zero_division=1``): the ratio counts as 1 and every mean runs over all K classes. This
  reproduces the authors' published numbers (``tests/data/conformance/segmetrics.npz``).
* ``"exclude"``: the ratio is undefined (NaN in the per-class output) and left out of the
  mean; a class only predicted still counts with IoU = F1 = 0. Use it to compare models on
  a split that lacks some classes (a small test region, a DFC2020 subset without Snow):
  under ``"one"`` every absent class adds a perfect 1 to mIoU / mF1 / AA, so the means move
  with the number of absent classes, not with the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

#: Conventions for 0/0 ratios of classes absent from a split (see the module docstring).
ABSENT_CONVENTIONS: tuple[str, ...] = ("one", "exclude")


def _nanmean(x: Tensor) -> float:
    v = x[~torch.isnan(x)]
    return float(v.mean()) if v.numel() else float("nan")


def _ratio(num: Tensor, den: Tensor, absent: str) -> Tensor:
    """``num / den`` per class, with 0/0 → 1 (``"one"``) or NaN (``"exclude"``)."""
    fill = torch.tensor(1.0 if absent == "one" else float("nan"), dtype=torch.float64)
    return torch.where(den > 0, num / den.clamp_min(1), fill)


def metrics_from_confusion(
    cm: Tensor,
    class_names: Sequence[str] | None = None,
    absent: Literal["one", "exclude"] = "one",
) -> dict[str, object]:
    """OA, AA, mIoU, mF1 and per-class recall / precision / IoU / F1 of a confusion matrix.

    Args:
        cm: [K, K] counts, rows = reference class, columns = predicted class (ignored
            pixels already left out).
        class_names: K names for the per-class entries (default ``class_0`` …).
        absent: ``"one"`` (CromSS code, default) or ``"exclude"``; see the module docstring.

    Returns:
        ``{"OA", "AA", "mIoU", "mF1"}`` as floats in [0, 1] (NaN for an empty matrix), plus
        ``"recall"``, ``"precision"``, ``"IoU"``, ``"F1"``: dicts class name → float, and
        ``"confusion"``: the matrix as nested int lists.

    Raises:
        ValueError: unknown ``absent`` convention.
    """
    if absent not in ABSENT_CONVENTIONS:
        raise ValueError(f"absent must be one of {list(ABSENT_CONVENTIONS)}, got {absent!r}")
    cm = cm.detach().to(torch.float64).cpu()
    k = cm.shape[0]
    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(k)]
    tp = cm.diagonal()
    fn = cm.sum(dim=1) - tp
    fp = cm.sum(dim=0) - tp
    total = cm.sum()
    recall = _ratio(tp, tp + fn, absent)
    precision = _ratio(tp, tp + fp, absent)
    iou = _ratio(tp, tp + fp + fn, absent)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn, absent)
    return {
        "OA": float(tp.sum() / total) if total > 0 else float("nan"),
        "AA": _nanmean(recall),
        "mIoU": _nanmean(iou),
        "mF1": _nanmean(f1),
        "recall": dict(zip(names, recall.tolist())),
        "precision": dict(zip(names, precision.tolist())),
        "IoU": dict(zip(names, iou.tolist())),
        "F1": dict(zip(names, f1.tolist())),
        "confusion": cm.to(torch.int64).tolist(),
    }
