"""UPerNet over a ViT encoder (CromSS, §IV-A: "UperNets for ViT backbones").

A plain ViT has one scale, 1/p of the input for patch size p. As BEiT, MAE and the CromSS
authors' mmsegmentation setup do, the token maps of 4 blocks (default evenly spaced over
the depth, e.g. blocks 3, 6, 9, 12 of 12) are turned into a 4-level pyramid by
:class:`ViTFeaturePyramid`:

    level 0: deconv ×2 → BN → GELU → deconv ×2   (4× the token grid)
    level 1: deconv ×2                            (2×)
    level 2: identity                             (1×)
    level 3: max-pool ×2                          (½×)

and decoded by segmentation-models-pytorch's ``UPerNetDecoder`` (PSP module on the
coarsest level, FPN over the others, fusion at the finest). smp's decoder skips the first
two entries of its feature list (the 1/1 and 1/2 maps of a CNN), so two placeholders are
passed in front of the four levels. Logits are upsampled bilinearly to the input size.

Encoders: :class:`~rsfuse.models.vit.GatedViT` (``forward_features(x, return_blocks=k)``)
or any timm ``VisionTransformer`` (a DINO-MM ViT; ``forward_intermediates``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from segmentation_models_pytorch.decoders.upernet.decoder import UPerNetDecoder
from torch import Tensor, nn

from rsfuse.errors import ConfigError
from rsfuse.models.vit import GatedViT


def default_out_indices(depth: int, n: int = 4) -> list[int]:
    """``n`` block indices (0-based) evenly spaced over ``depth``, ending at the last block.

    depth 12 → [2, 5, 8, 11]; depth 4 → [0, 1, 2, 3].
    """
    if depth < 1:
        raise ConfigError(f"a ViT of depth {depth} has no blocks to take features from")
    return [max(0, round(depth * (i + 1) / n) - 1) for i in range(n)]


def vit_depth(encoder: nn.Module) -> int:
    """Number of transformer blocks of a GatedViT or timm ViT."""
    if isinstance(encoder, GatedViT):
        return encoder.depth
    return len(encoder.blocks)


def vit_patch_size(encoder: nn.Module) -> int:
    """Patch side in pixels of a GatedViT or timm ViT."""
    if isinstance(encoder, GatedViT):
        return encoder.patch_size
    ps = encoder.patch_embed.patch_size
    return int(ps[0] if isinstance(ps, Sequence) else ps)


def vit_block_maps(encoder: nn.Module, x: Tensor, indices: Sequence[int]) -> list[Tensor]:
    """Token maps of the given blocks, each [B, D, H/p, W/p] (normed by the final norm).

    Args:
        encoder: GatedViT or timm VisionTransformer.
        x: [B, C, H, W]; H, W multiples of the patch size (or resized by the encoder's
            ``img_size``).
        indices: 0-based block indices.

    Returns:
        One [B, D, h, w] map per index, in the order given.
    """
    if isinstance(encoder, GatedViT):
        _, hidden = encoder.forward_features(x, return_blocks=encoder.depth)  # depth × [B,P+L,D]
        p = encoder.patch_size
        side = (encoder.img_size,) * 2 if encoder.img_size else tuple(x.shape[-2:])
        h, w = side[0] // p, side[1] // p
        out = []
        for i in indices:
            t = hidden[i][:, encoder.num_prefix_tokens :]  # [B, L, D]
            out.append(t.transpose(1, 2).reshape(t.shape[0], t.shape[2], h, w))
        return out
    if not hasattr(encoder, "forward_intermediates"):
        raise ConfigError(
            f"{type(encoder).__name__} is not a ViT with forward_intermediates", key="encoder"
        )
    pe = encoder.patch_embed
    fixed = getattr(pe, "img_size", None)
    resize = fixed is not None and not getattr(encoder, "dynamic_img_size", False)
    if resize and tuple(x.shape[-2:]) != tuple(fixed):
        x = F.interpolate(x, size=tuple(fixed), mode="bilinear", align_corners=False)
    return list(
        encoder.forward_intermediates(
            x, indices=list(indices), norm=True, output_fmt="NCHW", intermediates_only=True
        )
    )


class ViTFeaturePyramid(nn.Module):
    """Four single-scale ViT maps → a 4×, 2×, 1×, ½× pyramid (BEiT's multi-level neck).

    Args:
        dim: ViT width D (every level keeps D channels).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.up4 = nn.Sequential(
            nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2),
            nn.BatchNorm2d(dim),
            nn.GELU(),
            nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2),
        )
        self.up2 = nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2)
        self.same = nn.Identity()
        self.down2 = nn.MaxPool2d(kernel_size=2, stride=2)

    def forward(self, maps: Sequence[Tensor]) -> list[Tensor]:
        """4 × [B, D, h, w] → [B, D, 4h, 4w], [B, D, 2h, 2w], [B, D, h, w], [B, D, h/2, w/2]."""
        if len(maps) != 4:
            raise ConfigError(f"the pyramid needs 4 block maps, got {len(maps)}")
        return [self.up4(maps[0]), self.up2(maps[1]), self.same(maps[2]), self.down2(maps[3])]


class ViTUPerNet(nn.Module):
    """UPerNet segmentation network on a ViT encoder.

    Args:
        encoder: GatedViT or timm VisionTransformer (no head), ``in_chans`` input channels.
        num_classes: output classes K.
        out_indices: 4 block indices (0-based) whose outputs feed the pyramid (default:
            :func:`default_out_indices`).
        decoder_channels: UPerNet width (paper code: 512 in mmsegmentation; smp: 256).

    Attributes:
        encoder: the ViT (what checkpoints load into and ``freeze_encoder`` freezes).
        pad_multiple: inputs are padded by the task to a multiple of this (patch size × 2,
            so the ½× level is exact).
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        out_indices: Sequence[int] | None = None,
        decoder_channels: int = 256,
    ) -> None:
        super().__init__()
        depth = vit_depth(encoder)
        self.out_indices = list(out_indices) if out_indices is not None else None
        if self.out_indices is None:
            self.out_indices = default_out_indices(depth)
        if len(self.out_indices) != 4 or not all(0 <= i < depth for i in self.out_indices):
            raise ConfigError(
                f"out_indices must be 4 block indices in [0, {depth}), got {self.out_indices}",
                key="out_indices",
            )
        dim = int(encoder.num_features if hasattr(encoder, "num_features") else encoder.embed_dim)
        self.encoder = encoder
        self.pad_multiple = 2 * vit_patch_size(encoder)
        self.neck = ViTFeaturePyramid(dim)
        # smp skips entries 0 and 1 (a CNN's 1/1 and 1/2 maps): placeholders, sized 1.
        self.decoder = UPerNetDecoder(
            encoder_channels=[1, 1, dim, dim, dim, dim],
            encoder_depth=5,
            decoder_channels=decoder_channels,
        )
        self.head = nn.Conv2d(decoder_channels, num_classes, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        """[B, C, H, W] → logits [B, K, H, W]."""
        maps = vit_block_maps(self.encoder, x, self.out_indices)  # 4 × [B, D, h, w]
        levels = self.neck(maps)
        placeholder = levels[0][:, :1]
        y = self.decoder([placeholder, placeholder, *levels])  # [B, C_dec, 4h, 4w]
        y = self.head(y)
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
