"""DINO's multi-crop wrapper: one backbone and head over crops of several sizes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["MultiCropWrapper"]


class MultiCropWrapper(nn.Module):
    """Backbone + head over a list of crops of different sizes (DINO's ``MultiCropWrapper``).

    Consecutive crops of the same size are concatenated and passed through the backbone
    together; the head then runs once on all pooled features.

    Args:
        backbone: images [N, C, h, w] → pooled features [N, D].
        head: [N, D] → [N, K].
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, crops: Sequence[Tensor]) -> Tensor:
        """crops: V tensors [B, C, h_v, w_v] → [V·B, K] (crop-major)."""
        feats = []
        start = 0
        while start < len(crops):
            end = start + 1
            while end < len(crops) and crops[end].shape[-2:] == crops[start].shape[-2:]:
                end += 1
            feats.append(self.backbone(torch.cat(list(crops[start:end]), dim=0)))
            start = end
        return self.head(torch.cat(feats, dim=0))
