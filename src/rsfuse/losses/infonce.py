"""InfoNCE as MoCo v3 uses it (Chen, Xie & He 2021, Algorithm 1).

For L2-normalised queries ``q`` [N, D] and keys ``k`` [M, D] (M = world_size · N, keys
gathered from every rank), with this rank's positives at rows ``rank · N + i``:

    ctr(q, k) = CrossEntropy(q · kᵀ / τ, labels) · 2τ

The factor 2τ makes the gradient scale independent of τ (MoCo v3 code). The symmetric loss
of two views is ``ctr(q1, k2) + ctr(q2, k1)`` (:meth:`MoCoV3Loss.symmetric`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsfuse.distributed import concat_all_gather, rank
from rsfuse.errors import ConfigError


class MoCoV3Loss(nn.Module):
    """``ctr(q, k) = CE(q·kᵀ/τ, arange) · 2τ`` with keys gathered across DDP ranks.

    Args:
        temperature: τ (MoCo v3 paper, ViT: 0.2; MGSViT code: 1.0).
        gather: gather keys from all ranks (no-op without DDP).
    """

    def __init__(self, temperature: float = 0.2, gather: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}", key="temperature")
        self.temperature = temperature
        self.gather = gather

    def forward(self, q: Tensor, k: Tensor, gather: bool | None = None) -> Tensor:
        """ctr(q, k) for queries [N, D] and this rank's keys [N, D] (both un-normalised).

        ``gather=False`` (default: the module's ``gather``) keeps to this rank's keys, e.g.
        for validation batches, which ranks may have different numbers of.
        """
        gather = self.gather if gather is None else gather
        q = F.normalize(q, dim=1)
        k = F.normalize(k, dim=1)
        if gather:
            k = concat_all_gather(k)
        logits = q @ k.t() / self.temperature  # [N, world·N]
        n = q.shape[0]
        offset = rank() * n if gather else 0
        labels = torch.arange(n, device=q.device) + offset
        return F.cross_entropy(logits, labels) * (2 * self.temperature)

    def symmetric(
        self, q1: Tensor, q2: Tensor, k1: Tensor, k2: Tensor, gather: bool | None = None
    ) -> Tensor:
        """ctr(q1, k2) + ctr(q2, k1): each view's query against the other view's key."""
        return self(q1, k2, gather) + self(q2, k1, gather)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, gather={self.gather}"
