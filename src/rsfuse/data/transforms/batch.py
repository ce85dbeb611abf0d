"""Batch-level helpers of the transforms: presence flags, absent sensors, shallow copies.

A collated batch (:mod:`rsfuse.data.sample`) carries ``s1`` [B, 2, H, W] and/or ``s2``
[B, C, H, W] and ``present`` flags per sensor. Every transform works on whole batches on
their device and never mutates its input.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rsfuse.data.sample import Batch
from rsfuse.errors import DataError

#: Batch keys of the images, S1 then S2.
IMAGE_KEYS: tuple[str, ...] = ("s1", "s2")


def presence(batch: Batch, key: str, batch_size: int, device: torch.device) -> Tensor:
    """Per-sample presence flags of ``key`` as a bool tensor [B] on ``device``.

    A batch without ``present`` (or without an entry for ``key``) counts every sample whose
    modality key is in the batch as present.
    """
    if key not in batch:
        return torch.zeros(batch_size, dtype=torch.bool, device=device)
    flags = batch.get("present", {}).get(key)
    if flags is None:
        return torch.ones(batch_size, dtype=torch.bool, device=device)
    flags = torch.as_tensor(flags)
    if flags.shape != (batch_size,):
        raise DataError(
            f"present[{key!r}] must have shape [{batch_size}], got {tuple(flags.shape)}"
        )
    return flags.to(device=device, dtype=torch.bool, non_blocking=True)


def zero_absent(x: Tensor, present: Tensor) -> Tensor:
    """Set samples with ``present == False`` to exactly zero. x: [B, C, H, W], present: [B]."""
    return torch.where(
        present.view(-1, 1, 1, 1), x, torch.zeros((), dtype=x.dtype, device=x.device)
    )


def copy_batch(batch: Batch) -> Batch:
    """Shallow copy of a batch (and of its ``present`` dict) so transforms never mutate input."""
    out = dict(batch)
    if isinstance(out.get("present"), dict):
        out["present"] = dict(out["present"])
    return out
