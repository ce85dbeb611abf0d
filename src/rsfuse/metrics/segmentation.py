"""Semantic-segmentation metrics of CromSS (seed 001, §IV-A): OA, AA, mIoU, mF1.

Every number is derived from one confusion matrix accumulated over the whole split
(torchmetrics ``MulticlassConfusionMatrix`` with the ignore index, so unlabelled pixels
never count), never averaged per batch. Convention (rows = reference, columns =
prediction, as torchmetrics), with ``n_ij`` the pixels of reference class ``i`` predicted
as ``j``, ``t_i = Σ_j n_ij`` (reference pixels) and ``p_i = Σ_j n_ji`` (predicted pixels):

* **OA** (overall accuracy) ``= Σ_i n_ii / Σ_ij n_ij``;
* **AA** (average accuracy) = mean over classes **present in the reference**
  (``t_i > 0``) of the recall ``n_ii / t_i``; a class never in the reference has no recall;
* **IoU_i** ``= n_ii / (t_i + p_i − n_ii)`` and **F1_i** ``= 2 n_ii / (t_i + p_i)``;
  **mIoU** and **mF1** are their means over the classes present in the reference *or* the
  prediction (``t_i + p_i > 0``). A class absent from both is excluded from every mean (its
  per-class IoU / F1 / recall is reported as NaN); a class only predicted counts with IoU =
  F1 = 0, so false alarms on a class the split lacks are penalised.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _nanmean(x: Tensor) -> float:
    v = x[~torch.isnan(x)]
    return float(v.mean()) if v.numel() else float("nan")


def metrics_from_confusion(
    cm: Tensor, class_names: Sequence[str] | None = None
) -> dict[str, object]:
    """OA, AA, mIoU, mF1 and per-class recall / IoU / F1 of a confusion matrix.

    Args:
        cm: [K, K] counts, rows = reference class, columns = predicted class (ignored
            pixels already left out).
        class_names: K names for the per-class entries (default ``class_0`` …).

    Returns:
        ``{"OA", "AA", "mIoU", "mF1"}`` as floats in [0, 1] (NaN for an empty matrix), plus
        ``"recall"``, ``"IoU"``, ``"F1"``: dicts class name → float (NaN where undefined,
        see the module docstring), and ``"confusion"``: the matrix as nested int lists.
    """
    cm = cm.detach().to(torch.float64).cpu()
    k = cm.shape[0]
    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(k)]
    diag = cm.diagonal()
    ref = cm.sum(dim=1)  # t_i
    pred = cm.sum(dim=0)  # p_i
    total = cm.sum()
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    recall = torch.where(ref > 0, diag / ref.clamp_min(1), nan)
    seen = (ref + pred) > 0
    iou = torch.where(seen, diag / (ref + pred - diag).clamp_min(1), nan)
    f1 = torch.where(seen, 2 * diag / (ref + pred).clamp_min(1), nan)
    return {
        "OA": float(diag.sum() / total) if total > 0 else float("nan"),
        "AA": _nanmean(recall),
        "mIoU": _nanmean(iou),
        "mF1": _nanmean(f1),
        "recall": dict(zip(names, recall.tolist())),
        "IoU": dict(zip(names, iou.tolist())),
        "F1": dict(zip(names, f1.tolist())),
        "confusion": cm.to(torch.int64).tolist(),
    }
