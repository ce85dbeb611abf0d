"""The network behind a backbone state dict, rebuilt as a timm / smp module.

After a layout has unwrapped a published checkpoint (:mod:`rsfuse.weights.layouts`), its
backbone keys are those of the authors' model class, which for every supported source are
timm's (or torchvision's, the same for ResNets):

* **ViT** (MoCo v3 ``vits.VisionTransformerMoCo`` and MAE ``MaskedAutoencoderViT`` subclass or
  copy timm's ``VisionTransformer``; DINO's ``vision_transformer.VisionTransformer`` uses the
  same names) → timm ``vit_*``;
* **BEiT** (data2vec's ``VisionTransformerForCyclicalTraining``: shared relative position
  bias, layer scale ``gamma_1/2``, ``q_bias``/``v_bias``) → timm ``beit_*`` (timm's BEiT
  port keeps the names; its ``relative_position_index`` is a non-persistent buffer);
* **ResNet** (torchvision ``resnet50`` with a new ``conv1``; smp's ResNet encoders subclass
  it) → timm ``resnet*``, whose keys are torchvision's minus ``fc``; the same file loads
  into smp's ``resnet*`` encoder.

:func:`infer_architecture` reads the sizes from the tensor shapes (width, depth, patch,
input channels, positions, block counts). The number of attention heads is not in the
weights: it comes from the source (``num_heads``) or the standard table
(:data:`VIT_HEADS`); a wrong value changes the outputs, which the tests check.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import timm
import torch
from torch import Tensor, nn

from rsfuse.errors import CheckpointError

__all__ = ["VIT_HEADS", "Architecture", "build", "infer_architecture"]

#: Attention heads of the standard ViT widths (ViT-S 6 as in SSL4EO-S12 / DINO / MAE,
#: ViT-B 12, ViT-L 16, ViT-H/14 16).
VIT_HEADS: dict[int, int] = {384: 6, 768: 12, 1024: 16, 1280: 16}

#: (patch, width, depth) → timm name of the standard ViTs.
_VIT_NAMES: dict[tuple[int, int, int], str] = {
    (16, 384, 12): "vit_small_patch16_224",
    (8, 384, 12): "vit_small_patch8_224",
    (16, 768, 12): "vit_base_patch16_224",
    (8, 768, 12): "vit_base_patch8_224",
    (16, 1024, 24): "vit_large_patch16_224",
    (14, 1280, 32): "vit_huge_patch14_224",
}

#: (block, layers) → timm / smp name of the standard ResNets.
_RESNET_NAMES: dict[tuple[str, tuple[int, ...]], str] = {
    ("basic", (2, 2, 2, 2)): "resnet18",
    ("basic", (3, 4, 6, 3)): "resnet34",
    ("bottleneck", (3, 4, 6, 3)): "resnet50",
    ("bottleneck", (3, 4, 23, 3)): "resnet101",
    ("bottleneck", (3, 8, 36, 3)): "resnet152",
}

#: Keys of timm modules that are buffers recomputed at construction (never loaded).
_RECOMPUTED = re.compile(r"(^|\.)relative_position_index$")


@dataclass
class Architecture:
    """A backbone architecture read from a state dict.

    Attributes:
        family: ``vit``, ``beit`` or ``resnet``.
        timm_name: timm model name the file loads into.
        kwargs: timm constructor arguments (without ``in_chans`` / ``num_classes``).
        in_chans: input channels of the weights.
        first_layer: key of the first (input) layer's weight.
        smp_encoder: smp encoder name loading the same keys (ResNets), else ``None``.
        fillable: keys the published files may lack that keep their initial value (ViT
            final ``norm``, as TorchGeo's loader allows).
        notes: what was inferred and how.
    """

    family: str
    timm_name: str
    kwargs: dict[str, Any]
    in_chans: int
    first_layer: str
    smp_encoder: str | None = None
    fillable: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)

    def usage(self) -> dict[str, Any]:
        """The rsfuse task arguments that build a matching encoder."""
        out: dict[str, Any] = {
            "classification": {"backbone": self.timm_name, "backbone_kwargs": dict(self.kwargs)}
        }
        if self.family == "resnet":
            out["segmentation"] = (
                {"encoder": self.smp_encoder} if self.smp_encoder else None
            )  # smp encoders take no size arguments
        else:
            out["segmentation"] = {
                "architecture": "upernet",
                "encoder": self.timm_name,
                "encoder_kwargs": dict(self.kwargs),
            }
        return out


def _count(state: dict[str, Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    found = {int(m.group(1)) for k in state if (m := rx.match(k))}
    if found and found != set(range(len(found))):
        raise CheckpointError(f"non-contiguous block indices {sorted(found)} ({pattern})")
    return len(found)


def _heads(width: int, num_heads: int | None, notes: list[str]) -> int:
    if num_heads is not None:
        heads = int(num_heads)
        notes.append(f"num_heads {heads} given by the source")
    elif width in VIT_HEADS:
        heads = VIT_HEADS[width]
        notes.append(f"num_heads {heads}: the standard for width {width}")
    else:
        heads = max(1, width // 64)
        notes.append(f"num_heads {heads}: width {width} / 64 (no standard for this width)")
    if width % heads:
        raise CheckpointError(f"width {width} is not divisible by {heads} heads")
    return heads


def _grid(n_positions: int, what: str) -> int:
    side = math.isqrt(n_positions)
    if side * side != n_positions:
        raise CheckpointError(f"{what}: {n_positions} positions are not a square grid")
    return side


def _patch_embed(state: dict[str, Tensor]) -> tuple[int, int, int, int]:
    """``(width, in_chans, patch, depth)`` of a ViT-like (ViT, BEiT) state dict."""
    w = state["patch_embed.proj.weight"]  # [width, in_chans, patch, patch]
    depth = _count(state, r"blocks\.(\d+)\.")
    return int(w.shape[0]), int(w.shape[1]), int(w.shape[-1]), depth


def _transformer_kwargs(
    state: dict[str, Tensor],
    width: int,
    patch: int,
    depth: int,
    grid: int,
    heads: int,
    **family: Any,
) -> dict[str, Any]:
    """timm keyword arguments of a ViT-like model: the shared size, depth, heads, MLP ratio
    and pooling (``avg`` where the state has ``fc_norm`` instead of ``norm``), with the
    family's own ``family`` arguments before ``global_pool``."""
    pool = "avg" if "fc_norm.weight" in state and "norm.weight" not in state else "token"
    return {
        "img_size": grid * patch,
        "patch_size": patch,
        "embed_dim": width,
        "depth": depth,
        "num_heads": heads,
        "mlp_ratio": float(state["blocks.0.mlp.fc1.weight"].shape[0] / width),
        **family,
        "global_pool": pool,
    }


def _infer_vit(state: dict[str, Tensor], num_heads: int | None) -> Architecture:
    notes: list[str] = []
    width, in_chans, patch, depth = _patch_embed(state)
    prefix = 1 if "cls_token" in state else 0
    if "pos_embed" not in state:
        raise CheckpointError("a ViT without 'pos_embed' is not supported")
    grid = _grid(int(state["pos_embed"].shape[1]) - prefix, "pos_embed")
    heads = _heads(width, num_heads, notes)
    kwargs = _transformer_kwargs(
        state, width, patch, depth, grid, heads,
        qkv_bias="blocks.0.attn.qkv.bias" in state, class_token=bool(prefix),
    )  # fmt: skip
    pool = kwargs["global_pool"]
    name = _VIT_NAMES.get((patch, width, depth), "vit_small_patch16_224")
    fill = () if pool == "avg" else ("norm.weight", "norm.bias")
    return Architecture("vit", name, kwargs, in_chans, "patch_embed.proj.weight", None, fill, notes)


def _infer_beit(state: dict[str, Tensor], num_heads: int | None) -> Architecture:
    notes: list[str] = []
    width, in_chans, patch, depth = _patch_embed(state)
    shared = "rel_pos_bias.relative_position_bias_table" in state
    per_block = "blocks.0.attn.relative_position_bias_table" in state
    table_key = (
        "rel_pos_bias.relative_position_bias_table"
        if shared
        else "blocks.0.attn.relative_position_bias_table"
        if per_block
        else None
    )
    if table_key is not None:
        side = _grid(int(state[table_key].shape[0]) - 3, table_key)
        grid = (side + 1) // 2
    elif "pos_embed" in state:
        grid = _grid(int(state["pos_embed"].shape[1]) - 1, "pos_embed")
    else:
        raise CheckpointError("a BEiT without position information is not supported")
    heads = _heads(width, num_heads, notes)
    if table_key is not None and int(state[table_key].shape[1]) != heads:
        raise CheckpointError(
            f"{table_key} has {state[table_key].shape[1]} heads but {heads} were expected"
        )
    kwargs = _transformer_kwargs(
        state, width, patch, depth, grid, heads,
        use_abs_pos_emb="pos_embed" in state,
        use_rel_pos_bias=per_block,
        use_shared_rel_pos_bias=shared,
        init_values=0.1 if "blocks.0.gamma_1" in state else None,
    )  # fmt: skip
    notes.append("init_values only switches layer scale on; gamma_1 / gamma_2 are loaded")
    first = "patch_embed.proj.weight"
    return Architecture("beit", "beit_base_patch16_224", kwargs, in_chans, first, None, (), notes)


def _infer_resnet(state: dict[str, Tensor]) -> Architecture:
    w = state["conv1.weight"]
    if tuple(w.shape[2:]) != (7, 7) or int(w.shape[0]) != 64:
        raise CheckpointError(
            f"conv1.weight {tuple(w.shape)}: only the standard 7x7, 64-channel ResNet stem "
            "is supported"
        )
    block = "bottleneck" if "layer1.0.conv3.weight" in state else "basic"
    layers = tuple(_count(state, rf"layer{i}\.(\d+)\.") for i in range(1, 5))
    if min(layers) == 0:
        raise CheckpointError(f"ResNet stages with no block: {layers}")
    # inner width of the first stage = base_width (torchvision's width_per_group) for
    # bottlenecks; 64 for the standard ResNets
    base_width = int(state["layer1.0.conv1.weight"].shape[0]) if block == "bottleneck" else 64
    standard = _RESNET_NAMES.get((block, layers)) if base_width == 64 else None
    base = "resnet50" if block == "bottleneck" else "resnet18"
    kwargs: dict[str, Any] = {}
    if not standard:
        kwargs["layers"] = list(layers)
        if base_width != 64:
            kwargs["base_width"] = base_width
    notes = [f"{block} blocks per stage {list(layers)}, base width {base_width}"]
    return Architecture(
        "resnet", standard or base, kwargs, int(w.shape[1]), "conv1.weight", standard, (), notes
    )


def infer_architecture(state: dict[str, Tensor], num_heads: int | None = None) -> Architecture:
    """The architecture of a backbone state dict (timm / torchvision key names).

    Args:
        state: backbone tensors, heads removed.
        num_heads: attention heads (ViT / BEiT), when the source defines them.

    Raises:
        CheckpointError: keys of no supported family, or unsupported sizes.
    """
    if "patch_embed.proj.weight" in state:
        beit = any(k.endswith(("attn.q_bias", "gamma_1")) for k in state) or any(
            "relative_position_bias_table" in k for k in state
        )
        return _infer_beit(state, num_heads) if beit else _infer_vit(state, num_heads)
    if "conv1.weight" in state and "layer1.0.conv1.weight" in state:
        return _infer_resnet(state)
    sample = ", ".join(sorted(state)[:6])
    raise CheckpointError(
        f"unrecognised backbone keys ({sample}, …): expected a ViT (patch_embed.proj.*), "
        "BEiT or ResNet (conv1.*, layer1.*) state dict"
    )


def build(arch: Architecture, in_chans: int | None = None) -> nn.Module:
    """The timm module of ``arch`` without a head (``num_classes=0``), random weights."""
    return timm.create_model(
        arch.timm_name,
        pretrained=False,
        num_classes=0,
        in_chans=arch.in_chans if in_chans is None else in_chans,
        **arch.kwargs,
    )


def load_into(module: nn.Module, arch: Architecture, state: dict[str, Tensor]) -> list[str]:
    """Load a backbone state dict into ``module`` requiring every key and shape.

    Recomputed buffers (``relative_position_index``) are skipped; keys in
    ``arch.fillable`` may be absent and keep their initial value (returned).

    Raises:
        CheckpointError: missing, unexpected or mis-shaped keys, each named.
    """
    state = {k: v for k, v in state.items() if not _RECOMPUTED.search(k)}
    own = module.state_dict()
    filled = sorted(k for k in arch.fillable if k in own and k not in state)
    missing = sorted(set(own) - set(state) - set(filled))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"the weights do not fit timm {arch.timm_name} {arch.kwargs}: missing "
            f"{missing[:6]}, unexpected {unexpected[:6]}, shape mismatches {shapes[:6]}"
        )
    merged = {**own, **{k: v.to(own[k].dtype) for k, v in state.items()}}
    module.load_state_dict(merged, strict=True)
    return filled


def resample_positions(
    arch: Architecture, state: dict[str, Tensor], img_size: int
) -> dict[str, Tensor]:
    """Resample a ViT's learned / fixed position embedding to ``img_size`` (timm's
    ``resample_abs_pos_embed``, bicubic) and record it in ``arch``.

    Raises:
        CheckpointError: not a ViT, or a size that is no multiple of the patch.
    """
    from timm.layers import resample_abs_pos_embed

    if arch.family != "vit":
        raise CheckpointError(f"img_size can only be changed for ViTs, not {arch.family}")
    patch = int(arch.kwargs["patch_size"])
    if img_size % patch:
        raise CheckpointError(f"img_size {img_size} is not a multiple of the patch {patch}")
    old = int(arch.kwargs["img_size"])
    if img_size == old:
        return state
    prefix = 1 if arch.kwargs["class_token"] else 0
    g = img_size // patch
    with torch.no_grad():
        pos = resample_abs_pos_embed(
            state["pos_embed"].float(), new_size=[g, g], num_prefix_tokens=prefix
        )
    arch.kwargs["img_size"] = img_size
    arch.notes.append(f"position embedding resampled (bicubic) from {old} to {img_size} px")
    return {**state, "pos_embed": pos.to(state["pos_embed"].dtype)}
