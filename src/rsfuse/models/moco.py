"""MoCo v3 (Chen, Xie & He 2021): an online encoder with projector and predictor against a
momentum encoder with its own projector, trained with the symmetric InfoNCE loss.

Per batch of two views ``x1``, ``x2`` (Algorithm 1 of MoCo v3; the contrastive half of
MGSViT's Algorithm 1)::

    q1 = predictor(projector(encoder(x1)))           # [N, out_dim]
    q2 = predictor(projector(encoder(x2)))
    with no_grad:
        momentum ← m · momentum + (1 − m) · online    # encoder and projector
        k1 = momentum_projector(momentum_encoder(x1))
        k2 = momentum_projector(momentum_encoder(x2))
    loss = ctr(q1, k2) + ctr(q2, k1)                  # rsfuse.losses.infonce.MoCoV3Loss

The encoder is any module mapping images [N, C, H, W] to pooled features [N, D]
(:class:`~rsfuse.models.vit.GatedViT` or a timm model with ``num_classes=0``). Under DDP the
keys are gathered from all ranks; use ``Trainer(sync_batchnorm=True)`` so the MLPs'
BatchNorms see the global batch, as MoCo v3 does.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rsfuse.losses.infonce import MoCoV3Loss
from rsfuse.models.heads import projection_mlp
from rsfuse.models.momentum import ema_update, momentum_copy


class MoCoV3(nn.Module):
    """Online encoder + projector + predictor, momentum encoder + projector, InfoNCE.

    Args:
        encoder: images [N, C, H, W] → pooled features [N, feature_dim]. Owned by this
            module (reach it as ``.encoder``).
        feature_dim: encoder output width ``D``.
        proj_layers: projector Linear layers (MoCo v3 ViT: 3).
        hidden_dim: hidden width of projector and predictor (4096).
        out_dim: projection width (256).
        pred_layers: predictor Linear layers (2).
        temperature: τ of ``ctr`` (MoCo v3 ViT: 0.2; MGSViT code: 1.0).
        gather_keys: gather keys from all DDP ranks.
        pred_last_bn: an affine-free BatchNorm after the predictor's last Linear (MoCo v3's
            ViT variant and MGSViT's code: yes, the default; MoCo v3's ResNet variant: no).
    """

    def __init__(
        self,
        encoder: nn.Module,
        feature_dim: int,
        proj_layers: int = 3,
        hidden_dim: int = 4096,
        out_dim: int = 256,
        pred_layers: int = 2,
        temperature: float = 0.2,
        gather_keys: bool = True,
        pred_last_bn: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = projection_mlp(proj_layers, feature_dim, hidden_dim, out_dim)
        self.predictor = projection_mlp(
            pred_layers, out_dim, hidden_dim, out_dim, last_bn=pred_last_bn
        )
        self.momentum_encoder = momentum_copy(encoder)
        self.momentum_projector = momentum_copy(self.projector)
        self.criterion = MoCoV3Loss(temperature, gather=gather_keys)

    def query(self, x: Tensor) -> Tensor:
        """predictor(projector(encoder(x))): [N, C, H, W] → [N, out_dim]."""
        return self.predictor(self.projector(self.encoder(x)))

    def key(self, x: Tensor) -> Tensor:
        """momentum_projector(momentum_encoder(x)) without gradients: → [N, out_dim]."""
        with torch.no_grad():
            return self.momentum_projector(self.momentum_encoder(x))

    def update_momentum(self, m: float) -> None:
        """θ_k ← m · θ_k + (1 − m) · θ_q for the encoder and the projector."""
        ema_update(self.momentum_encoder, self.encoder, m)
        ema_update(self.momentum_projector, self.projector, m)

    def forward(self, x1: Tensor, x2: Tensor, momentum: float | None = None) -> Tensor:
        """Symmetric contrastive loss of two views [N, C, H, W].

        Args:
            x1: first view.
            x2: second view.
            momentum: if given, the momentum networks are first moved with this ``m``
                (MoCo v3 updates them inside the forward pass, before computing keys).

        Returns:
            ``ctr(q1, k2) + ctr(q2, k1)``, a scalar.
        """
        q1, q2 = self.query(x1), self.query(x2)
        if momentum is not None:
            self.update_momentum(momentum)
        k1, k2 = self.key(x1), self.key(x2)
        return self.criterion.symmetric(q1, q2, k1, k2)
