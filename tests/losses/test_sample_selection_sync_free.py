"""The sync-free class-balanced selection equals its per-class definition (Eq. 11)."""

from __future__ import annotations

import pytest
import torch

from rsfuse.losses.sample_selection import class_balanced_selection


def _per_class(conf: torch.Tensor, labels: torch.Tensor, ratio: float, k_max: int) -> torch.Tensor:
    """Eq. 11 class by class, as written (one topk per class; host reads)."""
    w = torch.zeros_like(conf)
    fc, fy, fw = conf.reshape(-1), labels.reshape(-1), w.view(-1)
    for k in range(k_max):
        idx = (fy == k).nonzero(as_tuple=True)[0]
        n = int(idx.numel() * ratio)
        if idx.numel() == 0 or n == 0:
            continue
        vals = fc[idx]
        tau = torch.topk(vals, n, sorted=True).values[-1]
        fw[idx] = 1.0 if float(tau) == 0.0 else (vals / tau).clamp(0.0, 1.0)
    return w * (labels != 255)


@pytest.mark.parametrize("ratio", [0.0, 0.13, 0.5, 0.8, 1.0])
def test_matches_the_per_class_definition(ratio: float) -> None:
    g = torch.Generator().manual_seed(int(ratio * 100))
    labels = torch.randint(0, 6, (3, 17, 13), generator=g)  # class 5 of 6: not a class
    labels[labels == 5] = 255  # unlabelled pixels
    labels[0, :4] = 2  # a large class
    conf = torch.rand(3, 17, 13, generator=g)
    conf[conf < 0.2] = 0.0  # zero confidences (τ = 0 cases)
    conf[1, 2:6] = 0.5  # ties
    got = class_balanced_selection(conf, labels, ratio, num_classes=5)
    torch.testing.assert_close(got, _per_class(conf, labels, ratio, 5), rtol=0, atol=0)
