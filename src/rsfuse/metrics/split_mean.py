"""The mean of a per-batch value over a whole split, exact under DDP.

Validation and test losses are batch means; their mean over a split is
``Σ_b n_b · value_b / Σ_b n_b`` over the batches ``b`` of every rank. :class:`SplitMean`
keeps both sums as torchmetrics states reduced by summation across ranks, so ranks that
score different numbers of samples (no sampler padding) still give the exact split mean.
(Lightning's ``self.log(..., sync_dist=True)`` averages the per-rank sample counts in the
counts' integer dtype, which truncates them when ranks differ; torchmetrics' ``MeanMetric``
with ``nan_strategy="disable"`` drops the weights, and its other strategies read the values
on the host every update.)
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["SplitMean"]


class SplitMean(Metric):
    """Sample-weighted mean of batch means over a split: ``update(value, n)`` per batch.

    States ``total`` (Σ n·value) and ``count`` (Σ n), float32, summed over ranks.
    """

    full_state_update = False
    total: Tensor
    count: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, value: Tensor, n: int) -> None:
        """Add a batch of ``n`` samples whose mean is ``value`` (a 0-d tensor)."""
        self.total += value.detach().float() * n
        self.count += n

    def compute(self) -> Tensor:
        """Σ n·value / Σ n (NaN for an empty split)."""
        return self.total / self.count
