"""Masked-autoencoder reconstruction loss (He et al. 2022, MAE ``forward_loss``).

For target patches ``x`` [B, L, P] (pixels of each patch in ``(p, q, c)`` order, see
:func:`rsfuse.models.vit.patchify`), predictions ``x̂`` [B, L, P] and the mask ``M`` [B, L]
(1 = patch removed from the encoder's input):

    loss = Σ_{b,l} M_bl · mean_p (x̂_blp − x_blp)² / Σ_{b,l} M_bl

i.e. the mean over *masked* patches of the per-patch MSE. With ``norm_pix`` the target is
normalised per patch first: ``(x − μ) / sqrt(σ² + 1e-6)`` with the unbiased variance.
"""

from __future__ import annotations

from torch import Tensor, nn

from rsfuse.errors import DataError


def normalize_patches(patches: Tensor, eps: float = 1e-6) -> Tensor:
    """Per-patch ``(x − μ) / sqrt(σ² + eps)`` over the last dim (σ² unbiased), [B, L, P]."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True, unbiased=True)
    return (patches - mean) / (var + eps) ** 0.5


class MAEReconstructionLoss(nn.Module):
    """Mean squared error over the masked patches only.

    Args:
        norm_pix: normalise each target patch by its own mean and variance (MAE option;
            MGSViT's code trains without it).
    """

    def __init__(self, norm_pix: bool = False) -> None:
        super().__init__()
        self.norm_pix = norm_pix

    def forward(self, target: Tensor, pred: Tensor, mask: Tensor) -> Tensor:
        """Loss for target patches [B, L, P], predictions [B, L, P] and mask [B, L]."""
        if target.shape != pred.shape or mask.shape != target.shape[:2]:
            raise DataError(
                f"MAE loss shapes disagree: target {tuple(target.shape)}, pred "
                f"{tuple(pred.shape)}, mask {tuple(mask.shape)}"
            )
        if self.norm_pix:
            target = normalize_patches(target)
        per_patch = (pred - target).pow(2).mean(dim=-1)  # [B, L]
        mask = mask.to(per_patch.dtype)
        return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)

    def extra_repr(self) -> str:
        return f"norm_pix={self.norm_pix}"
