"""Fusion of Sentinel-1 and Sentinel-2 inputs.

Early fusion stacks the sensors' channels into one input (DINO-MM, seed 002): S2 bands first,
then S1 VV, VH — the layout of :func:`rsfuse.bands.early_fusion_channels`. A sensor that is
absent from a sample (presence flag False) contributes zeros, which after normalisation is
the dataset mean: the same convention RandomSensorDrop uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rsfuse.bands import check_modalities
from rsfuse.errors import DataError


def early_fusion_input(batch: dict, modalities: Sequence[str]) -> Tensor:
    """Stack the requested modalities of a batch into one tensor.

    Args:
        batch: collated batch with ``s2`` [B, C, H, W] and/or ``s1`` [B, 2, H, W] and
            ``present`` flags.
        modalities: which sensors the model sees.

    Returns:
        [B, C_s2 + 2, H, W] (S2 first) or the single sensor's tensor. Channels of a sensor
        whose presence flag is False for a sample are zero for that sample.

    Raises:
        DataError: a requested modality is not in the batch.
    """
    parts = []
    for m in sorted(check_modalities(modalities), key=lambda m: m != "s2"):
        if m not in batch:
            raise DataError(
                f"the model needs modality {m!r} but the batch only has "
                f"{[k for k in ('s1', 's2') if k in batch]}"
            )
        x = batch[m]
        present = batch.get("present", {}).get(m)
        if present is not None:
            x = x * present.to(x.dtype).view(-1, 1, 1, 1)
        parts.append(x)
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
