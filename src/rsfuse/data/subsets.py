"""Label-fraction subsets of a training split, drawn without replacement.

DINO-MM evaluates with 1 %, 10 % and 100 % of the BigEarthNet-MM training labels.
The authors' code drew those subsets *with* replacement, so a "10 %" subset held duplicates
and fewer distinct samples than it claimed (REFERENCE.md). Here a fraction ``f`` of a split
of ``N`` samples is the first ``n = max(1, round(f · N))`` indices of one seeded random
permutation of ``0 … N − 1``: distinct indices, the same for a given ``(N, f, seed)`` on every
machine, and nested (the 1 % subset is contained in the 10 % subset of the same seed).
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Subset

from rsfuse.errors import ConfigError

__all__ = ["label_fraction_indices", "label_fraction_subset"]


def label_fraction_indices(n: int, fraction: float, seed: int = 0) -> list[int]:
    """Distinct, sorted indices of a ``fraction`` of ``n`` samples.

    Args:
        n: size of the split.
        fraction: in (0, 1]; 1 returns every index.
        seed: seed of the permutation (a private ``torch.Generator``; the global RNG is
            untouched).

    Returns:
        ``max(1, round(fraction · n))`` distinct indices in increasing order.

    Raises:
        ConfigError: ``fraction`` outside (0, 1] or ``n < 1``.
    """
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"label fraction must lie in (0, 1], got {fraction}", key="fraction")
    if n < 1:
        raise ConfigError(f"cannot take a fraction of an empty split (n={n})", key="fraction")
    if fraction == 1.0:
        return list(range(n))
    k = max(1, round(fraction * n))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    return sorted(perm[:k].tolist())


def label_fraction_subset(dataset: Dataset, fraction: float, seed: int = 0) -> Dataset:
    """A :class:`~torch.utils.data.Subset` holding ``fraction`` of ``dataset`` (no duplicates).

    ``fraction == 1`` returns ``dataset`` itself.
    """
    if fraction == 1.0:
        return dataset
    n = len(dataset)  # type: ignore[arg-type]
    return Subset(dataset, label_fraction_indices(n, fraction, seed))
