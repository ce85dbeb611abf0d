"""Heads that sit on an encoder during pretraining.

* :func:`projection_mlp` — MoCo v3's projector and predictor MLPs (Chen, Xie & He 2021):
  Linear (no bias) → BatchNorm → ReLU for every hidden layer, and a final Linear followed by
  a BatchNorm without affine parameters. MoCo v3's ViT variant (``MoCo_ViT``) and MGSViT's
  pretraining model (``MCMAE._build_mlp``) keep that last BatchNorm in the projector *and*
  the predictor; only MoCo v3's ResNet variant builds its predictor without it.
* :class:`MAEDecoder` — MAE's light transformer decoder (He et al. 2022): embeds the kept
  tokens, puts a learned mask token at every removed position, adds fixed sin-cos positions
  and predicts the pixels of every patch.
"""

from __future__ import annotations

from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from rsfuse.errors import ConfigError
from rsfuse.models.vit import sincos_pos_embed_2d


def projection_mlp(
    num_layers: int, in_dim: int, hidden_dim: int, out_dim: int, last_bn: bool = True
) -> nn.Sequential:
    """MoCo v3 MLP: ``num_layers`` Linear layers, BN + ReLU between, optional affine-free BN.

    MoCo v3 (ViT) and MGSViT: projector ``projection_mlp(3, D, 4096, 256)``, predictor
    ``projection_mlp(2, 256, 4096, 256)`` (both with the last BatchNorm; MoCo v3's ResNet
    predictor passes ``last_bn=False``). Layer indices follow the reference code, so its
    state dicts load unchanged (``0`` Linear, ``1`` BatchNorm, ``2`` ReLU, …).

    Args:
        num_layers: Linear layers (≥ 1).
        in_dim: input width.
        hidden_dim: width of the hidden layers.
        out_dim: output width.
        last_bn: a ``BatchNorm1d(out_dim, affine=False)`` after the last Linear.

    Returns:
        [N, in_dim] → [N, out_dim].
    """
    if num_layers < 1:
        raise ConfigError(f"an MLP needs at least one layer, got {num_layers}")
    layers: list[nn.Module] = []
    for i in range(num_layers):
        d_in = in_dim if i == 0 else hidden_dim
        d_out = out_dim if i == num_layers - 1 else hidden_dim
        layers.append(nn.Linear(d_in, d_out, bias=False))
        if i < num_layers - 1:
            layers += [nn.BatchNorm1d(d_out), nn.ReLU(inplace=True)]
        elif last_bn:
            layers.append(nn.BatchNorm1d(d_out, affine=False))
    return nn.Sequential(*layers)


class MAEDecoder(nn.Module):
    """MAE decoder: kept tokens + mask tokens → pixels of every patch.

    Args:
        embed_dim: encoder width ``D``.
        patch_dim: pixels per patch, ``p · p · C``.
        decoder_dim: decoder width (MGSViT / MAE-light: 384; MAE default 512).
        depth: decoder blocks (MGSViT: 2; MAE default 8).
        num_heads: decoder attention heads (MGSViT: 6).
        mlp_ratio: MLP hidden width / decoder width.
        num_prefix_tokens: CLS-like tokens in front of the patch tokens (0 or 1).
    """

    def __init__(
        self,
        embed_dim: int,
        patch_dim: int,
        decoder_dim: int = 384,
        depth: int = 2,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        num_prefix_tokens: int = 0,
    ) -> None:
        super().__init__()
        if decoder_dim % num_heads:
            raise ConfigError(
                f"decoder_dim {decoder_dim} is not a multiple of decoder heads {num_heads}"
            )
        self.decoder_dim = decoder_dim
        self.num_prefix_tokens = num_prefix_tokens
        self.embed = nn.Linear(embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.ModuleList(
            Block(decoder_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, norm_layer=norm)
            for _ in range(depth)
        )
        self.norm = norm(decoder_dim)
        self.pred = nn.Linear(decoder_dim, patch_dim)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, tokens: Tensor, ids_restore: Tensor, grid: tuple[int, int]) -> Tensor:
        """Predict every patch.

        Args:
            tokens: encoder output for the kept tokens [B, P + L_keep, D] (P prefix tokens).
            ids_restore: [B, L] from :func:`rsfuse.models.vit.random_masking`.
            grid: (rows, cols) of the patch grid, rows · cols = L.

        Returns:
            Pixel predictions [B, L, p · p · C] in the original patch order.
        """
        p = self.num_prefix_tokens
        x = self.embed(tokens)  # [B, P + L_keep, Dd]
        b, n_keep = x.shape[0], x.shape[1] - p
        n = ids_restore.shape[1]
        mask_tokens = self.mask_token.to(x.dtype).expand(b, n - n_keep, -1)
        patches = torch.cat([x[:, p:], mask_tokens], dim=1)  # [B, L, Dd], shuffled order
        index = ids_restore[..., None].expand(-1, -1, x.shape[-1])
        patches = torch.gather(patches, 1, index)  # [B, L, Dd], original order
        pos = sincos_pos_embed_2d(grid[0], grid[1], self.decoder_dim).to(x.device, x.dtype)
        x = torch.cat([x[:, :p], patches + pos[None]], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.pred(self.norm(x))[:, p:]  # [B, L, p·p·C]


class DINOHead(nn.Module):
    """DINO projection head (Caron et al. 2021): MLP, L2-normalise, weight-normalised Linear.

    ::

        z = MLP(x)                      # [N, bottleneck_dim]; Linear-GELU ×(nlayers−1), Linear
        z = z / ‖z‖₂
        y = (g · v / ‖v‖) z             # weight-normalised last layer, no bias, [N, out_dim]

    With ``norm_last_layer=True`` (DINO default) the norm ``g`` of every output row is fixed
    at 1, which stabilises training. DINO-MM freezes the last layer's gradients during the
    first epoch (done by the training module, see ``last_layer``). Linear weights are drawn
    from a truncated normal with std 0.02 and biases start at 0, as in the DINO code.

    Args:
        in_dim: backbone feature width (ViT-S: 384).
        out_dim: K, prototypes (DINO / DINO-MM: 65536).
        use_bn: BatchNorm after each hidden Linear (DINO ViT: off).
        norm_last_layer: freeze the weight-norm scale ``g`` at 1.
        nlayers: Linear layers of the MLP (≥ 1; DINO: 3).
        hidden_dim: hidden width (2048).
        bottleneck_dim: width before the last layer (256).

    Shapes:
        [N, in_dim] → [N, out_dim].
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 65536,
        use_bn: bool = False,
        norm_last_layer: bool = True,
        nlayers: int = 3,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
    ) -> None:
        super().__init__()
        from timm.layers import trunc_normal_

        nlayers = max(nlayers, 1)
        layers: list[nn.Module] = []
        d_in = in_dim
        for _ in range(nlayers - 1):
            layers.append(nn.Linear(d_in, hidden_dim))
            if use_bn:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.GELU())
            d_in = hidden_dim
        layers.append(nn.Linear(d_in, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        last = nn.Linear(bottleneck_dim, out_dim, bias=False)
        trunc_normal_(last.weight, std=0.02)
        self.last_layer = nn.utils.parametrizations.weight_norm(last)
        g = self.last_layer.parametrizations.weight.original0  # [out_dim, 1], the norms
        with torch.no_grad():
            g.fill_(1.0)
        if norm_last_layer:
            g.requires_grad_(False)
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        """[N, in_dim] → [N, out_dim]."""
        z = nn.functional.normalize(self.mlp(x), dim=-1, p=2)
        return self.last_layer(z)


__all__ = ["DINOHead", "MAEDecoder", "projection_mlp"]
