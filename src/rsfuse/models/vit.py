"""GatedViT: the MGSViT encoder, a ViT with gated transformer shortcuts (MGSViT §3.1).

The encoder follows SatViT as the authors' code does: a *linear* patch embedding (each
``p × p × C`` patch flattened in ``(p1, p2, c)`` order, then one Linear to the width), fixed
2-D sin-cos position embeddings, no CLS token by default, and timm transformer blocks. Every
``N`` blocks a transformer-shortcut unit (TS, Eq. 1) adds the unit's input back, scaled by a
learned sigmoid gate::

    H_out = H_{n+N} + σ(F(H_n)) · H_n                                              (1)

``gate="token"`` (default, the authors' code): ``F`` is ``Linear(D → 1)`` without bias, one
scalar per token. ``gate="channel"`` (Eq. 1 as printed, one gate per feature): ``F`` is
``Linear(D → D)`` without bias. ``N = 0`` gives a plain ViT. When ``depth`` is not a
multiple of ``N``, the last ``depth mod N`` blocks run without a shortcut.

Paper sizes: depth 12, width 768, 12 heads, patch 16 on inputs resized to 224 × 224 (the
120 px BigEarthNet patches are resized inside the model when ``img_size`` is set).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

import torch
import torch.nn.functional as F
from timm.layers import build_sincos2d_pos_embed, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from rsfuse.errors import ConfigError, DataError

GateKind = Literal["token", "channel"]


#: Feature order of the 2-D sin-cos positions (:func:`sincos_pos_embed_2d`).
PosEmbedOrder = Literal["mae", "rows_first"]


def sincos_pos_embed_2d(grid_h: int, grid_w: int, dim: int, order: PosEmbedOrder = "mae") -> Tensor:
    """Fixed 2-D sin-cos position embedding, built by timm (``build_sincos2d_pos_embed``).

    Half of the features encode the column, half the row; each half is
    ``[sin(p·ω_k) …, cos(p·ω_k) …]`` with ``ω_k = 10000^(−k / (dim/4))``,
    ``k = 0 … dim/4 − 1``. ``order="mae"`` (default) puts the column half first, as MAE's
    ``get_2d_sincos_pos_embed`` does (used by SatViT and by MGSViT's code);
    ``"rows_first"`` puts the row half first (timm's own order; rsfuse 0.1's).

    Args:
        grid_h: rows of patches.
        grid_w: columns of patches.
        dim: embedding width, a multiple of 4.
        order: ``mae`` or ``rows_first``.

    Returns:
        [grid_h · grid_w, dim] float32, row-major over the patch grid.
    """
    if dim % 4:
        raise ConfigError(f"embed_dim must be a multiple of 4 for 2-D sin-cos, got {dim}")
    if order not in ("mae", "rows_first"):
        raise ConfigError(f"pos_embed_order must be 'mae' or 'rows_first', got {order!r}")
    # timm: row-major tokens, [row sin, row cos, col sin, col cos] with interleave_sin_cos
    pe = build_sincos2d_pos_embed([grid_h, grid_w], dim, interleave_sin_cos=True)
    if order == "mae":
        pe = torch.cat([pe[:, dim // 2 :], pe[:, : dim // 2]], dim=1)
    return pe


def patchify(x: Tensor, patch_size: int) -> Tensor:
    """``b c (h p1) (w p2) -> b (h w) (p1 p2 c)``: [B, C, H, W] → [B, L, p·p·C].

    Raises:
        DataError: H or W is not a multiple of ``patch_size``.
    """
    b, c, h, w = x.shape
    p = patch_size
    if h % p or w % p:
        raise DataError(f"input of {h}×{w} px is not a multiple of the patch size {p}")
    x = x.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def random_masking(
    tokens: Tensor, mask_ratio: float, noise: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """MAE per-sample random masking: keep a random subset of the tokens of each sample.

    Each sample draws uniform noise per token (or takes ``noise``); tokens are sorted by it
    and the ``round(L · (1 − mask_ratio))`` smallest are kept, in that order. (MAE's code
    truncates with ``int``; rounding avoids dropping one token to float error, e.g.
    ``100 · (1 − 0.9) = 9.999…``.)

    Args:
        tokens: [B, L, D].
        mask_ratio: fraction removed, in [0, 1).
        noise: [B, L] noise deciding the order (drawn uniformly if ``None``).

    Returns:
        kept [B, L_keep, D]; mask [B, L] with 1 on removed tokens and 0 on kept ones (in the
        original order); ids_restore [B, L], the permutation that puts the shuffled
        sequence (kept first, then removed) back in the original order.
    """
    b, n, d = tokens.shape
    if not 0.0 <= mask_ratio < 1.0:
        raise ConfigError(f"mask_ratio must lie in [0, 1), got {mask_ratio}", key="mask_ratio")
    n_keep = max(1, round(n * (1.0 - mask_ratio)))
    if noise is None:
        noise = torch.rand(b, n, device=tokens.device)
    elif noise.shape != (b, n):
        raise DataError(f"masking noise of shape {tuple(noise.shape)} for tokens [{b}, {n}, ·]")
    ids_shuffle = torch.argsort(noise, dim=1)  # ascending: small noise is kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :n_keep]
    kept = torch.gather(tokens, 1, ids_keep[..., None].expand(-1, -1, d))
    mask = torch.ones(b, n, device=tokens.device, dtype=tokens.dtype)
    mask[:, :n_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return kept, mask, ids_restore


class TransformerShortcut(nn.Module):
    """Transformer-shortcut (TS) unit, Eq. 1: ``H_out = Blocks(H_n) + σ(F(H_n)) · H_n``.

    Args:
        blocks: the ``N`` transformer blocks of the unit.
        dim: token width ``D``.
        gate: ``token`` (``F: D → 1``, one scalar per token; authors' code) or ``channel``
            (``F: D → D``, one gate per feature; Eq. 1 as printed). ``F`` has no bias.
    """

    def __init__(self, blocks: list[nn.Module], dim: int, gate: GateKind = "token") -> None:
        super().__init__()
        if gate not in ("token", "channel"):
            raise ConfigError(f"gate must be 'token' or 'channel', got {gate!r}", key="gate")
        self.blocks = nn.ModuleList(blocks)
        self.gate_kind = gate
        self.gate = nn.Linear(dim, 1 if gate == "token" else dim, bias=False)

    def gate_values(self, h: Tensor) -> Tensor:
        """σ(F(H_n)): [B, L, 1] (token) or [B, L, D] (channel) for H_n [B, L, D]."""
        return torch.sigmoid(self.gate(h))

    def forward(self, h: Tensor, hidden: list[Tensor] | None = None) -> Tensor:
        """[B, L, D] → [B, L, D]; appends each block's output to ``hidden`` if given.

        The last entry appended is the unit's gated output, not the last block's raw output.
        """
        out = h
        for blk in self.blocks:
            out = blk(out)
            if hidden is not None:
                hidden.append(out)
        out = out + self.gate_values(h) * h  # Eq. 1
        if hidden is not None:
            hidden[-1] = out
        return out


class GatedViT(nn.Module):
    """ViT encoder with gated transformer shortcuts for any number of input channels.

    Args:
        in_chans: input channels (S1: 2, S2: 12, early fusion: 14).
        img_size: if set, inputs of another size are resized (bilinear) to
            ``img_size × img_size`` first (the paper resizes 120 → 224). ``None`` keeps the
            input size; any size that is a multiple of ``patch_size`` works, because the
            sin-cos positions are computed for the actual grid.
        patch_size: patch side in pixels (paper: 16).
        embed_dim: width ``D`` (paper: 768); a multiple of 4.
        depth: number of transformer blocks (paper: 12).
        num_heads: attention heads (paper: 12).
        mlp_ratio: MLP hidden width / ``D``.
        shortcut_every: ``N`` of Eq. 1, blocks per TS unit; 0 = plain ViT (paper best: 4 at
            depth 12, 3 at depth 18).
        gate: ``token`` (default, authors' code) or ``channel`` (Eq. 1 as printed).
        class_token: prepend a learned CLS token (off by default, as in the authors' code).
        global_pool: ``avg`` (mean over patch tokens) or ``token`` (the CLS token).
        drop_path_rate: stochastic-depth rate, linearly increasing over the blocks.
        qkv_bias: bias in the attention projections.
        num_classes: if > 0, a Linear head on the pooled features (``forward`` then returns
            logits); 0 (default) makes ``forward`` return pooled features.
        pos_embed_order: feature order of the fixed sin-cos positions: ``mae`` (default,
            MAE's / SatViT's / MGSViT's code: column half first) or ``rows_first`` (the
            order of rsfuse 0.1; see :func:`sincos_pos_embed_2d`).
    """

    def __init__(
        self,
        in_chans: int,
        img_size: int | None = None,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        shortcut_every: int = 0,
        gate: GateKind = "token",
        class_token: bool = False,
        global_pool: Literal["avg", "token"] = "avg",
        drop_path_rate: float = 0.0,
        qkv_bias: bool = True,
        num_classes: int = 0,
        pos_embed_order: PosEmbedOrder = "mae",
    ) -> None:
        super().__init__()
        #: the constructor's arguments (written beside exported weights)
        self.init_kwargs = {
            "in_chans": in_chans, "img_size": img_size, "patch_size": patch_size,
            "embed_dim": embed_dim, "depth": depth, "num_heads": num_heads,
            "mlp_ratio": mlp_ratio, "shortcut_every": shortcut_every, "gate": gate,
            "class_token": class_token, "global_pool": global_pool,
            "drop_path_rate": drop_path_rate, "qkv_bias": qkv_bias,
            "pos_embed_order": pos_embed_order,
        }  # fmt: skip
        if shortcut_every < 0:
            raise ConfigError(f"shortcut_every must be >= 0, got {shortcut_every}")
        if global_pool not in ("avg", "token"):
            raise ConfigError(f"global_pool must be 'avg' or 'token', got {global_pool!r}")
        if global_pool == "token" and not class_token:
            raise ConfigError("global_pool='token' needs class_token=True")
        if embed_dim % num_heads:
            raise ConfigError(f"embed_dim {embed_dim} is not a multiple of num_heads {num_heads}")
        if img_size is not None and img_size % patch_size:
            raise ConfigError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        self.in_chans = in_chans
        self.img_size = img_size
        self.patch_size = patch_size
        self.embed_dim = self.num_features = embed_dim
        self.depth = depth
        self.shortcut_every = shortcut_every
        self.global_pool = global_pool
        self.num_prefix_tokens = 1 if class_token else 0
        self.pos_embed_order = pos_embed_order
        sincos_pos_embed_2d(1, 1, embed_dim, pos_embed_order)  # validates width and order

        self.patch_embed = nn.Linear(patch_size * patch_size * in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        self._pos_cache: dict[tuple[int, int], Tensor] = {}
        dpr = torch.linspace(0, drop_path_rate, depth).tolist() if depth else []
        blocks = [
            Block(
                embed_dim,
                num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                drop_path=dpr[i],
                norm_layer=partial(nn.LayerNorm, eps=1e-6),
            )
            for i in range(depth)
        ]
        # Group the blocks into TS units of N blocks; the remainder runs plain.
        units: list[nn.Module] = []
        n = shortcut_every
        n_units = depth // n if n > 0 else 0
        for u in range(n_units):
            units.append(TransformerShortcut(blocks[u * n : (u + 1) * n], embed_dim, gate))
        units.extend(blocks[n_units * n :])
        self.blocks = nn.ModuleList(units)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        w = self.patch_embed.weight.data  # MAE: xavier as if it were a flat Linear
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)
        for name, m in self.named_modules():
            if name == "patch_embed":
                continue
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ pieces
    def pos_embed(self, grid_h: int, grid_w: int, device: torch.device) -> Tensor:
        """[1, grid_h · grid_w, D] fixed sin-cos positions (cached per grid and device)."""
        key = (grid_h, grid_w)
        pe = self._pos_cache.get(key)
        if pe is None or pe.device != device:
            pe = sincos_pos_embed_2d(grid_h, grid_w, self.embed_dim, self.pos_embed_order)
            pe = pe.to(device)[None]
            self._pos_cache[key] = pe
        return pe

    def embed_patches(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Pixels [B, C, H, W] → patch tokens with positions [B, L, D] and the (rows, cols) grid.

        No prefix (CLS) token is added here.
        """
        if x.shape[1] != self.in_chans:
            raise DataError(f"GatedViT expects {self.in_chans} channels, got {x.shape[1]}")
        if self.img_size is not None and tuple(x.shape[-2:]) != (self.img_size,) * 2:
            x = F.interpolate(x, size=(self.img_size,) * 2, mode="bilinear", align_corners=False)
        p = self.patch_size
        grid = (x.shape[-2] // p, x.shape[-1] // p)
        tokens = self.patch_embed(patchify(x, p))  # [B, L, D]
        return tokens + self.pos_embed(*grid, x.device).to(tokens.dtype), grid

    def prepend_prefix(self, tokens: Tensor) -> Tensor:
        """[B, L, D] → [B, P + L, D]: the CLS token in front when the model has one."""
        if self.cls_token is None:
            return tokens
        cls = self.cls_token.to(tokens.dtype).expand(tokens.shape[0], -1, -1)
        return torch.cat([cls, tokens], dim=1)

    def embed(self, x: Tensor) -> Tensor:
        """Pixels [B, C, H, W] → tokens with positions [B, P + L, D] (P = 0 or 1 CLS)."""
        return self.prepend_prefix(self.embed_patches(x)[0])

    def run_blocks(self, h: Tensor, hidden: list[Tensor] | None = None) -> Tensor:
        """All blocks and TS units, then the final norm: [B, N, D] → [B, N, D].

        Appends each block's (or TS unit's gated) output to ``hidden`` when given.
        """
        for unit in self.blocks:
            if isinstance(unit, TransformerShortcut):
                h = unit(h, hidden)
            else:
                h = unit(h)
                if hidden is not None:
                    hidden.append(h)
        return self.norm(h)

    def forward_masked(
        self, x: Tensor, mask_ratio: float, noise: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor, tuple[int, int]]:
        """MAE encoder pass: only a random ``1 − mask_ratio`` of the patches is encoded.

        Args:
            x: [B, C, H, W].
            mask_ratio: fraction of patches removed (MAE / MGSViT: 0.75).
            noise: optional [B, L] uniform noise deciding the mask (see
                :func:`random_masking`).

        Returns:
            tokens [B, P + L_keep, D], mask [B, L] (1 = removed), ids_restore [B, L],
            grid (rows, cols).
        """
        tokens, grid = self.embed_patches(x)
        kept, mask, ids_restore = random_masking(tokens, mask_ratio, noise)
        return self.run_blocks(self.prepend_prefix(kept)), mask, ids_restore, grid

    def forward_features(
        self, x: Tensor, return_blocks: int = 0
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Encode pixels into normalised tokens.

        Args:
            x: [B, C, H, W].
            return_blocks: also return the outputs of the last ``k`` blocks (each passed
                through the final LayerNorm, as DINO's linear evaluation does); the output of
                a TS unit's last block is the unit's gated output (Eq. 1).

        Returns:
            tokens [B, P + L, D], or (tokens, list of k tensors [B, P + L, D], oldest first).
        """
        hidden: list[Tensor] | None = [] if return_blocks > 0 else None
        tokens = self.run_blocks(self.embed(x), hidden)
        if hidden is None:
            return tokens
        if return_blocks > len(hidden):
            raise ConfigError(f"asked for the last {return_blocks} blocks of {len(hidden)}")
        last = [self.norm(t) for t in hidden[-return_blocks:]]
        last[-1] = tokens
        return tokens, last

    def pool(self, tokens: Tensor) -> Tensor:
        """[B, P + L, D] → [B, D]: mean over patch tokens (``avg``) or the CLS token."""
        if self.global_pool == "token":
            return tokens[:, 0]
        return tokens[:, self.num_prefix_tokens :].mean(dim=1)

    def pooled_features(self, x: Tensor, last_k: int = 1) -> Tensor:
        """Pooled features [B, k·D]: the last ``k`` blocks' pooled outputs, concatenated."""
        if last_k <= 1:
            return self.pool(self.forward_features(x))
        _, last = self.forward_features(x, return_blocks=last_k)
        return torch.cat([self.pool(t) for t in last], dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """[B, C, H, W] → pooled features [B, D] (or logits [B, K] with a head)."""
        return self.head(self.pool(self.forward_features(x)))


# ---------------------------------------------------------------------------- timm registry
def _cfg(**kwargs: Any) -> dict[str, Any]:
    """timm pretrained config: no published weights (``url`` empty), no mean/std (the
    normalisation is rsfuse's, per dataset and band: :mod:`rsfuse.bands`)."""
    return {"url": "", "num_classes": 0, "first_conv": "patch_embed", "classifier": "head",
            **kwargs}  # fmt: skip


default_cfgs = generate_default_cfgs(
    {
        "gated_vit": _cfg(),
        "gated_vit_small_patch16": _cfg(),
        "gated_vit_base_patch16": _cfg(),
    }
)

#: Architecture defaults of the registered names (constructor arguments override them).
GATED_VIT_VARIANTS: dict[str, dict[str, Any]] = {
    "gated_vit": {},
    # ViT-S/16 as DINO / DINO-MM train it: CLS token, CLS pooling, drop-path 0.1
    "gated_vit_small_patch16": {
        "patch_size": 16, "embed_dim": 384, "depth": 12, "num_heads": 6,
        "class_token": True, "global_pool": "token", "drop_path_rate": 0.1,
    },
    # MGSViT's encoder: ViT-B/16, no CLS token, mean pooling, a TS unit every 4 blocks
    "gated_vit_base_patch16": {
        "patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12,
        "shortcut_every": 4, "class_token": False, "global_pool": "avg",
    },
}  # fmt: skip


def _create_gated_vit(variant: str, pretrained: bool = False, **kwargs: Any) -> GatedViT:
    """Build a registered GatedViT through timm (``timm.create_model("gated_vit…")``).

    ``pretrained=True`` loads the file given as ``pretrained_cfg_overlay=dict(file=…)``
    (timm's mechanism; rsfuse publishes no hosted weights).
    """
    args = {**GATED_VIT_VARIANTS[variant], **kwargs}
    args.setdefault("in_chans", 3)
    return build_model_with_cfg(GatedViT, variant, pretrained, **args)


@register_model
def gated_vit(pretrained: bool = False, **kwargs: Any) -> GatedViT:
    """GatedViT with every architecture argument from ``kwargs`` (paper defaults)."""
    return _create_gated_vit("gated_vit", pretrained, **kwargs)


@register_model
def gated_vit_small_patch16(pretrained: bool = False, **kwargs: Any) -> GatedViT:
    """GatedViT-S/16 (DINO's ViT-S: 384 wide, 12 blocks, 6 heads, CLS token)."""
    return _create_gated_vit("gated_vit_small_patch16", pretrained, **kwargs)


@register_model
def gated_vit_base_patch16(pretrained: bool = False, **kwargs: Any) -> GatedViT:
    """GatedViT-B/16 as MGSViT (768 wide, 12 blocks, 12 heads, TS unit every 4 blocks)."""
    return _create_gated_vit("gated_vit_base_patch16", pretrained, **kwargs)
