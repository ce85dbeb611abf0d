"""Optimiser and learning-rate schedule factory shared by every task and method.

AdamW (or SGD) with weight decay applied to weights only — never to norms, biases, position
embeddings or tokens — and a per-step linear warm-up followed by cosine decay, as MAE,
MoCo v3 and DINO train their ViTs. The learning rate may be scaled by batch size:
``lr = base_lr * total_batch / 256``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from rsfuse.errors import ConfigError

_NO_DECAY_NAMES = ("pos_embed", "cls_token", "mask_token", "dist_token", "reg_token")


def param_groups(
    modules: nn.Module | Iterable[tuple[str, nn.Parameter]], weight_decay: float
) -> list[dict]:
    """Split trainable parameters into a decayed and a non-decayed group.

    Parameters with fewer than 2 dimensions (biases, norm scales) and embedding tokens are
    not decayed.
    """
    named = modules.named_parameters() if isinstance(modules, nn.Module) else modules
    decay, no_decay = [], []
    for name, p in named:
        if not p.requires_grad:
            continue
        if p.ndim < 2 or any(k in name for k in _NO_DECAY_NAMES):
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the base lr at ``step``: linear warm-up, then cosine to ``min_ratio``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if total_steps <= warmup_steps:
        return 1.0
    t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def build_optimizer(
    module: nn.Module,
    *,
    name: str = "adamw",
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    betas: tuple[float, float] = (0.9, 0.999),
    momentum: float = 0.9,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """Build AdamW, Adam or SGD over :func:`param_groups` of ``module``.

    ``adam`` is torch's Adam with L2 weight decay (the CromSS code: ``Adam(lr,
    weight_decay=1e-8)``); ``adamw`` decouples the decay (MAE, MoCo v3, DINO, MGSViT).

    Args:
        fused: use the fused CUDA kernel (default: on when every parameter is on a GPU).

    Raises:
        ConfigError: unknown optimiser name.
    """
    groups = param_groups(module, weight_decay)
    params = [p for g in groups for p in g["params"]]
    on_cuda = bool(params) and all(p.is_cuda for p in params)
    use_fused = on_cuda if fused is None else fused and on_cuda
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=use_fused or None)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas, fused=use_fused or None)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    raise ConfigError(
        f"unknown optimizer {name!r}; expected 'adamw', 'adam' or 'sgd'", key="optimizer"
    )


def warmup_cosine_scheduler(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int,
    min_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR implementing :func:`warmup_cosine`."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, warmup_steps, total_steps, min_ratio)
    )


def scaled_lr(base_lr: float, total_batch: int) -> float:
    """Linear scaling rule of Goyal et al.: ``base_lr * total_batch / 256``."""
    return base_lr * total_batch / 256


def global_batch_size(trainer: Any, default: int = 256) -> int:
    """Samples per optimiser step over all devices: per-device batch (the datamodule's
    ``batch_size``) × world size × gradient accumulation."""
    dm = getattr(trainer, "datamodule", None)
    per_device = int(getattr(dm, "batch_size", default) or default)
    return per_device * trainer.world_size * trainer.accumulate_grad_batches


def warmup_cosine_config(
    optimizer: torch.optim.Optimizer, trainer: Any, warmup_epochs: float, min_ratio: float = 0.0
) -> dict[str, Any]:
    """What ``configure_optimizers`` returns for :func:`warmup_cosine` stepped per batch.

    The total is the trainer's ``estimated_stepping_batches``; ``warmup_epochs`` (fractional
    allowed) is converted to steps with the trainer's ``max_epochs``.
    """
    total = max(1, int(trainer.estimated_stepping_batches))
    epochs = max(1, trainer.max_epochs or 1)
    warmup = round(total * warmup_epochs / epochs)
    sched = warmup_cosine_scheduler(optimizer, warmup, total, min_ratio)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def cosine_to_floor(epoch: int, cosine_epochs: int, base_lr: float, final_lr: float) -> float:
    """Multiplier of ``base_lr`` at ``epoch`` for the CromSS fine-tuning schedule.

    ``lr(e) = final + ½ (base − final)(1 + cos(π · min(e, T) / T))``: a cosine from
    ``base_lr`` to ``final_lr`` over ``T = cosine_epochs`` epochs, then flat at ``final_lr``
    (the CromSS code's ``--scheduler_type cos --scheduler_values T [final]``, stepped per
    epoch).
    """
    t = min(epoch, cosine_epochs) / max(1, cosine_epochs)
    lr = final_lr + 0.5 * (base_lr - final_lr) * (1.0 + math.cos(math.pi * t))
    return lr / base_lr


def cosine_to_floor_config(
    optimizer: torch.optim.Optimizer,
    trainer: Any,
    base_lr: float,
    final_lr: float,
    cosine_epochs: int | None,
) -> dict[str, Any]:
    """What ``configure_optimizers`` returns for :func:`cosine_to_floor` stepped per epoch
    (``cosine_epochs=None``: the trainer's ``max_epochs``)."""
    t = int(cosine_epochs if cosine_epochs is not None else max(1, trainer.max_epochs or 1))
    sched = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: cosine_to_floor(e, t, base_lr, final_lr)
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
