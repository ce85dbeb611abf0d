"""Small helpers for code that runs the same under one process and under DDP.

Contrastive losses compare each query with the keys of the *whole* global batch (MoCo v3
gathers keys from all ranks), so :func:`concat_all_gather` is the one place that talks to
``torch.distributed``. Without an initialised process group every helper is the identity,
so single-process runs and tests need no special casing.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """True when a ``torch.distributed`` process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of processes in the default group (1 without DDP)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """Rank of this process in the default group (0 without DDP)."""
    return dist.get_rank() if is_distributed() else 0


@torch.no_grad()
def concat_all_gather(x: Tensor) -> Tensor:
    """Concatenate ``x`` [N, ...] from every rank along dim 0 → [world_size · N, ...].

    No gradient flows through the gather (MoCo v3 keys come from the momentum encoder and
    are detached anyway). Rank ``r``'s rows sit at ``r·N … (r+1)·N − 1``. Every rank must
    pass the same N.
    """
    if not is_distributed() or world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)
