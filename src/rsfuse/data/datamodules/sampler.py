"""The training order of every rsfuse datamodule, reproducible and resumable mid-epoch.

:class:`ResumableSampler` is torch's :class:`~torch.utils.data.DistributedSampler` (shuffle
from ``seed + epoch``, this rank's share) that can start an epoch after the samples a
checkpoint says were already consumed. The order of epoch ``e`` therefore depends only on
``(seed, e)`` — not on the global random state — and a run resumed at batch ``k`` of epoch
``e`` reads batches ``k, k+1, …`` of the same permutation as the run that was interrupted.

It also owns the DataLoader's ``generator`` (:attr:`ResumableSampler.generator`, reseeded from
``(seed, epoch)`` at every :meth:`~ResumableSampler.set_epoch`), so creating the loader's
iterator draws nothing from the global generator either.

Being a :class:`~torch.utils.data.DistributedSampler`, Lightning keeps it under DDP (it
would wrap any other custom sampler); the datamodule passes the trainer's world size and
rank.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

import numpy as np
import torch
from torch.utils.data import DistributedSampler

__all__ = ["ResumableSampler"]


class ResumableSampler(DistributedSampler):
    """Shuffled indices of ``dataset`` for one rank, from ``(seed, epoch)``, resumable.

    Args:
        dataset: the training dataset (only its length is used).
        seed: seed of every epoch's permutation (the same on all ranks).
        epoch: the epoch the first iteration belongs to.
        start: samples of that epoch this rank already consumed (skipped once).
        num_replicas: ranks sharing the epoch (world size).
        rank: this process's rank.
    """

    def __init__(
        self,
        dataset: Sized,
        *,
        seed: int = 0,
        epoch: int = 0,
        start: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        super().__init__(
            dataset,  # type: ignore[arg-type]
            num_replicas=num_replicas,
            rank=rank,
            shuffle=True,
            seed=int(seed),
            drop_last=False,
        )
        #: the DataLoader's generator (base seeds of its worker processes)
        self.generator = torch.Generator()
        self.set_epoch(int(epoch))
        #: samples of the current epoch to skip at the next iteration
        self.start = max(0, int(start))

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch`` (called by Lightning before every epoch); a
        pending ``start`` survives only if the epoch is the one it belongs to."""
        if epoch != self.epoch:
            self.start = 0
        super().set_epoch(epoch)
        seed = np.random.SeedSequence([self.seed, epoch]).generate_state(1, np.uint64)[0]
        self.generator.manual_seed(int(seed) >> 1)

    def __iter__(self) -> Iterator[int]:
        """This rank's indices of the current epoch, after the first ``start`` of them
        (``start`` then returns to 0: the next iteration is a whole epoch)."""
        indices = list(super().__iter__())
        start, self.start = self.start, 0
        return iter(indices[start:])
