"""Checkpoints in the published layouts, built at test time (the real files cannot be
downloaded here).

Each builder makes the model class the authors used (timm ``VisionTransformer`` for MoCo v3 /
DINO / MAE ViTs, timm ``Beit`` for data2vec, torchvision ``ResNet`` for MoCo v2 / DINO
ResNets, smp ResNet encoder + ``UnetDecoder`` for CromSS), wraps it exactly as the authors'
training code saves it (wrapper keys, ``module.`` / ``backbone.`` / ``encoder_q.`` prefixes,
heads, momentum encoders, queues, optimiser state, ``args`` Namespace) and returns the
checkpoint with a function computing the source model's features. Sizes are reduced where
the key names stay those of the real files: ViTs keep ViT-S's width 384 (6 heads) with 2
blocks and 32-px inputs, ResNets keep ResNet-50's bottleneck keys with one block per stage
and a narrow inner width. Every parameter and BatchNorm statistic is randomised so that a
swapped or skipped key changes the outputs.
"""

from __future__ import annotations

import argparse
import copy
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import timm
import torch
from torch import Tensor, nn

VIT_WIDTH = 384  # ViT-S, 6 heads
IMG = 32


@dataclass
class Fake:
    """A published-layout checkpoint and its source model.

    Attributes:
        ckpt: what ``torch.save`` writes.
        features: the source model's pooled features of an input in the *source* channel
            order, [B, C_src, H, W] → [B, D].
        in_chans: source input channels.
        model: the source backbone module.
    """

    ckpt: Any
    features: Callable[[Tensor], Tensor]
    in_chans: int
    model: nn.Module


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random values for every parameter and BatchNorm statistic (deterministic)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
    return module.eval()


def _ddp(state: dict[str, Tensor]) -> OrderedDict[str, Tensor]:
    return OrderedDict((f"module.{k}", v) for k, v in state.items())


def _prefixed(prefix: str, module_or_state: Any) -> dict[str, Tensor]:
    sd = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    return {f"{prefix}{k}": v.clone() for k, v in sd.items()}


def _args(**kw: Any) -> argparse.Namespace:
    return argparse.Namespace(seed=42, lr=0.0005, output_dir="/p/scratch/out", **kw)


# ------------------------------------------------------------------ models
def vit(in_chans: int, patch: int = 16, num_classes: int = 0, seed: int = 0) -> nn.Module:
    """timm ``VisionTransformer`` with ViT-S width, 2 blocks, ``IMG``-px inputs."""
    m = timm.create_model(
        "vit_small_patch16_224",
        pretrained=False,
        img_size=IMG,
        patch_size=patch,
        in_chans=in_chans,
        embed_dim=VIT_WIDTH,
        depth=2,
        num_heads=6,
        num_classes=num_classes,
    )
    return randomize(m, seed)


def vit_features(m: nn.Module) -> Callable[[Tensor], Tensor]:
    """CLS token after the final norm (what MoCo v3 / DINO / MAE linear probes read)."""
    return lambda x: m.forward_head(m.forward_features(x), pre_logits=True)


def beit(in_chans: int, seed: int = 0) -> nn.Module:
    """data2vec's ``beit_small_patch16_224`` keys: shared relative position bias, no
    absolute positions, layer scale, q/v biases (timm's BEiT port)."""
    m = timm.create_model(
        "beit_base_patch16_224",
        pretrained=False,
        img_size=IMG,
        in_chans=in_chans,
        embed_dim=VIT_WIDTH,
        depth=2,
        num_heads=6,
        use_abs_pos_emb=False,
        use_rel_pos_bias=False,
        use_shared_rel_pos_bias=True,
        init_values=0.1,
        global_pool="token",
        num_classes=0,
    )
    return randomize(m, seed)


def torchvision_resnet(in_chans: int, num_classes: int = 1000, seed: int = 0) -> nn.Module:
    """torchvision ResNet with ResNet-50's bottleneck keys, one block per stage, inner
    width 8, and ``conv1`` replaced for ``in_chans`` as the SSL4EO-S12 code does."""
    from torchvision.models.resnet import Bottleneck, ResNet

    m = ResNet(Bottleneck, [1, 1, 1, 1], num_classes=num_classes, width_per_group=8)
    m.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return randomize(m, seed)


def resnet_features(m: nn.Module) -> Callable[[Tensor], Tensor]:
    def f(x: Tensor) -> Tensor:
        fc, m.fc = m.fc, nn.Identity()
        try:
            return m(x)
        finally:
            m.fc = fc

    return f


def _bn_mlp(dims: list[int], last_bn_affine: bool = False) -> nn.Sequential:
    """MoCo v3's ``_build_mlp``: Linear(no bias) → BN → ReLU …, last BN without affine."""
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1], bias=False))
        if i < len(dims) - 2:
            layers += [nn.BatchNorm1d(dims[i + 1]), nn.ReLU(inplace=True)]
        else:
            layers.append(nn.BatchNorm1d(dims[i + 1], affine=last_bn_affine))
    return nn.Sequential(*layers)


# ------------------------------------------------------------------ layouts
def moco_v3_vit(in_chans: int = 13, seed: int = 0) -> Fake:
    """SSL4EO-S12 ``pretrain_moco_v3_s2c.py``: ``MoCo_ViT`` in DDP, saved with
    ``{'epoch', 'arch', 'state_dict', 'optimizer', 'scaler'}``."""
    base = vit(in_chans, seed=seed)
    mlp, dim = 64, 32
    base.head = _bn_mlp([VIT_WIDTH, mlp, mlp, dim])
    randomize(base.head, seed + 1)
    momentum = copy.deepcopy(base)
    predictor = randomize(_bn_mlp([dim, mlp, dim]), seed + 2)
    state = {
        **_prefixed("base_encoder.", base),
        **_prefixed("momentum_encoder.", momentum),
        **_prefixed("predictor.", predictor),
    }
    opt = torch.optim.AdamW(base.parameters(), lr=1.5e-4)
    ckpt = {
        "epoch": 100,
        "arch": "vit_small",
        "state_dict": _ddp(state),
        "optimizer": opt.state_dict(),
        "scaler": {"scale": 65536.0, "growth_factor": 2.0, "_growth_tracker": 10},
    }
    head = base.head
    base.head = nn.Identity()
    f = vit_features(base)
    _ = head
    return Fake(ckpt, f, in_chans, base)


def moco_v2_resnet(in_chans: int = 13, seed: int = 0) -> Fake:
    """SSL4EO-S12 ``pretrain_moco_v2_s2c.py --mlp``: ``MoCo`` (encoder_q / encoder_k with an
    MLP ``fc``, ``queue``, ``queue_ptr``) in DDP, saved with
    ``{'epoch', 'arch', 'state_dict', 'optimizer'}``."""
    q = torchvision_resnet(in_chans, num_classes=128, seed=seed)
    q.fc = nn.Sequential(nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 128))
    randomize(q.fc, seed + 1)
    k = copy.deepcopy(q)
    state = {
        **_prefixed("encoder_q.", q),
        **_prefixed("encoder_k.", k),
        "queue": torch.randn(128, 256),
        "queue_ptr": torch.zeros(1, dtype=torch.long),
    }
    opt = torch.optim.SGD(q.parameters(), lr=0.03, momentum=0.9)
    ckpt = {
        "epoch": 100,
        "arch": "resnet50",
        "state_dict": _ddp(state),
        "optimizer": opt.state_dict(),
    }
    return Fake(ckpt, resnet_features(q), in_chans, q)


def _dino_head_state(in_dim: int, out_dim: int = 64, seed: int = 0) -> dict[str, Tensor]:
    """DINO's ``DINOHead``: 3-layer MLP and a weight-normed last layer (old-style
    ``weight_g`` / ``weight_v`` names)."""
    g = torch.Generator().manual_seed(seed)
    hidden, bottleneck = 96, 32
    shapes = {
        "mlp.0.weight": (hidden, in_dim),
        "mlp.0.bias": (hidden,),
        "mlp.2.weight": (hidden, hidden),
        "mlp.2.bias": (hidden,),
        "mlp.4.weight": (bottleneck, hidden),
        "mlp.4.bias": (bottleneck,),
        "last_layer.weight_g": (out_dim, 1),
        "last_layer.weight_v": (out_dim, bottleneck),
    }
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


def dino(
    backbone: nn.Module, features: Callable[[Tensor], Tensor], in_chans: int, ddp_teacher: bool
) -> Fake:
    """DINO ``main_dino.py``: ``MultiCropWrapper(backbone, DINOHead)`` for student (DDP) and
    teacher (DDP only when the backbone has BatchNorm, i.e. ResNets); saved with
    ``{'student', 'teacher', 'optimizer', 'epoch', 'args', 'dino_loss'}``."""
    dim = VIT_WIDTH if hasattr(backbone, "blocks") else 2048
    wrapped = {**_prefixed("backbone.", backbone), **_prefixed("head.", _dino_head_state(dim))}
    student = {k: v + 0.01 for k, v in wrapped.items()}
    teacher = _ddp(wrapped) if ddp_teacher else OrderedDict(wrapped)
    ckpt = {
        "student": _ddp(student),
        "teacher": teacher,
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.0005, "params": [0, 1]}]},
        "epoch": 100,
        "args": _args(arch="vit_small", patch_size=16, out_dim=64, n_channels=in_chans),
        "dino_loss": {"center": torch.randn(1, 64)},
    }
    return Fake(ckpt, features, in_chans, backbone)


def dino_vit(in_chans: int = 13, patch: int = 16, seed: int = 0) -> Fake:
    m = vit(in_chans, patch=patch, seed=seed)
    return dino(m, vit_features(m), in_chans, ddp_teacher=False)


def dino_resnet(in_chans: int = 13, seed: int = 0) -> Fake:
    m = torchvision_resnet(in_chans, seed=seed)
    m.fc = nn.Identity()  # DINO's MultiCropWrapper: backbone.fc = Identity
    return dino(m, lambda x: m(x), in_chans, ddp_teacher=True)


def mae_vit(in_chans: int = 13, seed: int = 0) -> Fake:
    """MAE ``main_pretrain.py``: ``MaskedAutoencoderViT`` (encoder keys as timm, plus
    ``mask_token`` and ``decoder_*``), saved with
    ``{'model', 'optimizer', 'epoch', 'scaler', 'args'}``."""
    enc = vit(in_chans, seed=seed)
    dec_dim, n_pos = 64, (IMG // 16) ** 2 + 1
    decoder_blocks = nn.ModuleList(
        [timm.models.vision_transformer.Block(dec_dim, 4, qkv_bias=True) for _ in range(2)]
    )
    g = torch.Generator().manual_seed(seed + 1)
    state = {k: v.clone() for k, v in enc.state_dict().items() if not k.startswith("head")}
    state.update(
        {
            "mask_token": torch.randn(1, 1, dec_dim, generator=g),
            "decoder_embed.weight": torch.randn(dec_dim, VIT_WIDTH, generator=g),
            "decoder_embed.bias": torch.randn(dec_dim, generator=g),
            "decoder_pos_embed": torch.randn(1, n_pos, dec_dim, generator=g),
            **_prefixed("decoder_blocks.", randomize(decoder_blocks, seed + 2)),
            "decoder_norm.weight": torch.randn(dec_dim, generator=g),
            "decoder_norm.bias": torch.randn(dec_dim, generator=g),
            "decoder_pred.weight": torch.randn(16 * 16 * in_chans, dec_dim, generator=g),
            "decoder_pred.bias": torch.randn(16 * 16 * in_chans, generator=g),
        }
    )
    ckpt = {
        "model": state,
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0]}]},
        "epoch": 99,
        "scaler": {"scale": 1024.0},
        "args": _args(model="mae_vit_small_patch16_dec512d8b", mask_ratio=0.75),
    }
    return Fake(ckpt, vit_features(enc), in_chans, enc)


def data2vec_beit(in_chans: int = 13, seed: int = 0) -> Fake:
    """data2vec ``pretrain_data2vec.py`` (BEiT ``utils.save_model``):
    ``{'model', 'optimizer', 'epoch', 'scaler', 'args'}``; the model also holds
    ``mask_token``, ``lm_head`` and the persistent ``relative_position_index``."""
    m = beit(in_chans, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    state = {k: v.clone() for k, v in m.state_dict().items()}
    state["rel_pos_bias.relative_position_index"] = m.rel_pos_bias.relative_position_index.clone()
    state["mask_token"] = torch.randn(1, 1, VIT_WIDTH, generator=g)
    state["lm_head.weight"] = torch.randn(VIT_WIDTH, VIT_WIDTH, generator=g)
    state["lm_head.bias"] = torch.randn(VIT_WIDTH, generator=g)
    ckpt = {
        "model": state,
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0]}]},
        "epoch": 99,
        "scaler": {"scale": 1024.0},
        "args": _args(model="beit_small_patch16_224", layer_scale_init_value=1e-4),
    }
    return Fake(ckpt, lambda x: m.forward_head(m.forward_features(x), pre_logits=True), in_chans, m)


def timm_state_dict(model: nn.Module, keep_head: bool = False) -> dict[str, Tensor]:
    """A TorchGeo-style file: the timm model's state dict (classifier optionally kept)."""
    return {
        k: v.clone()
        for k, v in model.state_dict().items()
        if keep_head or not k.startswith(("fc.", "head."))
    }


def timm_resnet(in_chans: int = 13, num_classes: int = 0, seed: int = 0) -> nn.Module:
    m = timm.create_model(
        "resnet50",
        pretrained=False,
        in_chans=in_chans,
        num_classes=num_classes,
        layers=[1, 1, 1, 1],
        base_width=8,
    )
    return randomize(m, seed)


# ------------------------------------------------------------------ CromSS
def smp_resnet_encoder(in_chans: int, seed: int = 0, full: str | None = None) -> nn.Module:
    """smp's ResNet encoder (torchvision ResNet minus ``fc``): ResNet-50 keys with one
    bottleneck per stage and inner width 8, or the full ``full`` encoder."""
    import segmentation_models_pytorch as smp
    from segmentation_models_pytorch.encoders.resnet import ResNetEncoder
    from torchvision.models.resnet import Bottleneck

    if full is not None:
        enc = smp.encoders.get_encoder(full, in_channels=in_chans, weights=None)
    else:
        enc = ResNetEncoder(
            out_channels=[3, 64, 256, 512, 1024, 2048],
            block=Bottleneck,
            layers=[1, 1, 1, 1],
            width_per_group=8,
        )
        enc.set_in_channels(in_chans, pretrained=False)
    return randomize(enc, seed)


class CromSSUNetBranch(nn.Module):
    """One modality's path of the authors' ``Unet_midF_2branch`` / ``Unet_lateF_2branch``:
    ``segmentation_head(decoder(*encoder(x)))``."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder, self.decoder, self.head = encoder, decoder, head

    def forward(self, x: Tensor) -> Tensor:
        feats = self.encoder(x)
        try:
            out = self.decoder(feats)
        except TypeError:  # smp < 0.5 takes the features unpacked
            out = self.decoder(*feats)
        return self.head(out)


def _unet_parts(encoder: nn.Module, classes: int, seed: int) -> tuple[nn.Module, nn.Module]:
    from segmentation_models_pytorch.base import SegmentationHead
    from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder

    dec = (32, 16, 16, 8, 8)
    decoder = UnetDecoder(encoder_channels=encoder.out_channels, decoder_channels=dec, n_blocks=5)
    head = SegmentationHead(in_channels=dec[-1], out_channels=classes, kernel_size=3)
    return randomize(decoder, seed), randomize(head, seed + 1)


def cromss(
    fusion: str, s2_chans: int = 13, classes: int = 9, seed: int = 0, full: str | None = None
) -> tuple[dict, dict[str, nn.Module]]:
    """A CromSS Lightning checkpoint (``pl_pretrain_mm_sscom.Unet_mm``, attribute ``net``).

    Args:
        fusion: ``middle`` (``net.encoder1`` S1, ``net.encoder`` S2, shared ``net.decoder`` /
            ``net.segmentation_head``), ``late`` (``net.model1`` S1 / ``net.model2`` S2
            U-Nets) or ``single`` (one U-Net ``net.*`` for S2).
        s2_chans: 13 or 9.
        full: an smp encoder name for full-size encoders (default: narrow ResNet-50 keys).

    Returns:
        (checkpoint, {modality: the source branch, logits of [B, C, H, W]}).
    """
    branches: dict[str, nn.Module] = {}
    state: dict[str, Tensor] = {}
    if fusion == "middle":
        e1 = smp_resnet_encoder(2, seed, full)
        e2 = smp_resnet_encoder(s2_chans, seed + 1, full)
        dec, head = _unet_parts(e2, classes, seed + 2)
        state.update(_prefixed("net.encoder1.", e1))
        state.update(_prefixed("net.encoder.", e2))
        state.update(_prefixed("net.decoder.", dec))
        state.update(_prefixed("net.segmentation_head.", head))
        branches = {"s1": CromSSUNetBranch(e1, dec, head), "s2": CromSSUNetBranch(e2, dec, head)}
    elif fusion == "late":
        for i, (m, c) in enumerate((("s1", 2), ("s2", s2_chans)), start=1):
            e = smp_resnet_encoder(c, seed + 10 * i, full)
            dec, head = _unet_parts(e, classes, seed + 10 * i + 1)
            state.update(_prefixed(f"net.model{i}.encoder.", e))
            state.update(_prefixed(f"net.model{i}.decoder.", dec))
            state.update(_prefixed(f"net.model{i}.segmentation_head.", head))
            branches[m] = CromSSUNetBranch(e, dec, head)
    else:
        e = smp_resnet_encoder(s2_chans, seed, full)
        dec, head = _unet_parts(e, classes, seed + 2)
        state.update(_prefixed("net.encoder.", e))
        state.update(_prefixed("net.decoder.", dec))
        state.update(_prefixed("net.segmentation_head.", head))
        branches = {"s2": CromSSUNetBranch(e, dec, head)}
    ckpt = {
        "epoch": 199,
        "global_step": 162000,
        "pytorch-lightning_version": "2.0.8",
        "state_dict": OrderedDict(state),
        "loops": {
            "fit_loop": {"state_dict": {}, "epoch_progress": {"current": {"completed": 199}}}
        },
        "callbacks": {
            "ModelCheckpoint{'monitor': None}": {"best_model_score": None, "dirpath": "/p/x"}
        },
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.005, "params": [0]}]}],
        "lr_schedulers": [{"patience": 30, "factor": 0.5}],
        "hparams_name": "args",
        "hyper_parameters": {"args": _args(mt="resnet50", n_channels=s2_chans, n_classes=classes)},
    }
    return ckpt, branches


def save(obj: Any, path: Any) -> Any:
    torch.save(obj, path)
    return path
