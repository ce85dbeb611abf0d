"""Segmentation metrics against the CromSS code (``tests/data/conformance/segmetrics.npz``).

The authors score a class that is absent from reference and prediction as 1 on every
metric and average over all K classes (smp metrics, ``zero_division=1``); that is rsfuse's
default (``absent="one"``). ``absent="exclude"`` leaves such classes out of the means.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassConfusionMatrix

from rsfuse.metrics.segmentation import metrics_from_confusion
from tests.conformance import load

REF = load("segmetrics")
K = int(REF["num_classes"])


def _metrics(prefix: str, **kw: object) -> dict:
    target = torch.from_numpy(REF["target_masked" if prefix else "target"])
    cm = MulticlassConfusionMatrix(K, ignore_index=255)
    for p, t in zip(torch.from_numpy(REF["pred"]), target):  # one image per batch, as the code
        cm.update(p[None], t[None])
    return metrics_from_confusion(cm.compute(), [f"c{i}" for i in range(K)], **kw)


@pytest.mark.parametrize("prefix", ["", "masked_"])
def test_default_reproduces_the_cromss_code(prefix: str) -> None:
    m = _metrics(prefix)
    for ours, theirs in (("OA", "OA"), ("AA", "AA"), ("mIoU", "mIoU"), ("mF1", "mF1")):
        assert m[ours] == pytest.approx(float(REF[prefix + theirs]), abs=1e-6), ours
    for ours, theirs in (("IoU", "iou"), ("F1", "f1"), ("recall", "recall"),
                         ("precision", "precision")):  # fmt: skip
        got = np.array(list(m[ours].values()))
        np.testing.assert_allclose(got, REF[f"{prefix}{theirs}_per_class"], atol=1e-6)
    # the absent class 3 scores 1 everywhere; the only-predicted class 2 has recall 1
    assert m["IoU"]["c3"] == m["F1"]["c3"] == m["recall"]["c3"] == 1.0
    assert m["IoU"]["c2"] == 0.0 and m["recall"]["c2"] == 1.0


def test_exclude_drops_absent_classes_from_the_means() -> None:
    m = _metrics("", absent="exclude")
    iou = REF["iou_per_class"]
    assert m["mIoU"] == pytest.approx(float(iou[:3].mean()), abs=1e-6)  # class 3 left out
    assert math.isnan(m["IoU"]["c3"]) and math.isnan(m["recall"]["c2"])
    assert m["AA"] == pytest.approx(float(REF["recall_per_class"][:2].mean()), abs=1e-6)
    assert m["OA"] == pytest.approx(float(REF["OA"]), abs=1e-6)  # OA has no 0/0 case


def test_unknown_convention_is_refused() -> None:
    with pytest.raises(ValueError, match="absent"):
        metrics_from_confusion(torch.eye(2), absent="nan")
