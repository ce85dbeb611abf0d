"""Optimisers and learning-rate schedules of every task and method.

Parameter groups come from timm (``param_groups_weight_decay``): weight decay on weights
only — never on norms, biases, position embeddings or tokens. The learning rate may follow
the linear scaling rule, ``lr = base_lr × global batch / 256`` with the global batch
counting devices *and* gradient accumulation (:func:`global_batch_size`). Schedules
(:class:`OptimSettings` ``schedule``) are timm's ``CosineLRScheduler`` or torch's
``ReduceLROnPlateau``:

* ``warmup_cosine`` — per optimiser step: linear warm-up from 0 over ``warmup_epochs``, then
  a half cosine to ``min_lr`` (MAE, MoCo v3, DINO and MGSViT adjust the learning rate per
  iteration this way);
* ``cosine_to_floor`` — per epoch: a half cosine from ``lr`` to ``final_lr`` over
  ``cosine_epochs``, then flat (the CromSS fine-tuning code);
* ``plateau`` — ``ReduceLROnPlateau`` on a monitored metric (CromSS pretraining);
* ``constant``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

import torch
from timm.optim import param_groups_weight_decay
from timm.scheduler import CosineLRScheduler
from torch import nn

from rsfuse.errors import ConfigError

#: Name fragments of parameters that never get weight decay (besides 1-D tensors).
NO_DECAY_NAMES = ("pos_embed", "cls_token", "mask_token", "dist_token", "reg_token")

OptimizerName = Literal["adamw", "adam", "sgd"]
ScheduleName = Literal["warmup_cosine", "cosine_to_floor", "plateau", "constant"]


def param_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """A decayed and a non-decayed group of the trainable parameters (timm's split), the
    decayed one first.

    Biases and other 1-D tensors, and tokens / position embeddings (:data:`NO_DECAY_NAMES`),
    are not decayed; parameters with ``requires_grad=False`` are left out.
    """
    names = [n for n, _ in module.named_parameters() if any(k in n for k in NO_DECAY_NAMES)]
    groups = param_groups_weight_decay(module, weight_decay, no_weight_decay_list=names)
    # the decayed group first (schedules of the weight decay address it by position)
    return sorted((g for g in groups if g["params"]), key=lambda g: g["weight_decay"] == 0)


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
    """AdamW, Adam or SGD over :func:`param_groups` of ``module``.

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


def scaled_lr(base_lr: float, total_batch: int) -> float:
    """Linear scaling rule of Goyal et al.: ``base_lr × total_batch / 256``."""
    return base_lr * total_batch / 256


def global_batch_size(trainer: Any, default: int = 256) -> int:
    """Samples per optimiser step over all devices: per-device batch (the datamodule's
    ``batch_size``) × world size × gradient accumulation."""
    dm = getattr(trainer, "datamodule", None)
    per_device = int(getattr(dm, "batch_size", default) or default)
    return per_device * int(trainer.world_size) * int(trainer.accumulate_grad_batches)


@dataclass
class OptimSettings:
    """What a module asks of its optimiser and learning-rate schedule.

    Attributes:
        name: ``adamw``, ``adam`` or ``sgd``.
        lr: learning rate (the base rate per 256 samples when ``scale_by_batch``).
        weight_decay: weight decay of the decayed group.
        betas: Adam(W) betas.
        momentum: SGD momentum.
        scale_by_batch: ``lr × global batch / 256`` (:func:`global_batch_size`).
        schedule: ``warmup_cosine``, ``cosine_to_floor``, ``plateau`` or ``constant``.
        warmup_epochs: ``warmup_cosine`` warm-up length in epochs (fractional allowed).
        min_lr: ``warmup_cosine`` final rate (absolute); ``min_lr_ratio`` if None.
        min_lr_ratio: ``warmup_cosine`` final rate as a fraction of the peak.
        cosine_epochs: ``cosine_to_floor`` T (None: the trainer's ``max_epochs``).
        final_lr: ``cosine_to_floor`` floor.
        monitor: ``plateau`` metric (minimised).
        patience: ``plateau`` patience in epochs.
        factor: ``plateau`` decay factor.
    """

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9
    scale_by_batch: bool = False
    schedule: str = "warmup_cosine"
    warmup_epochs: float = 0.0
    min_lr: float | None = None
    min_lr_ratio: float = 0.0
    cosine_epochs: int | None = None
    final_lr: float = 0.0
    monitor: str = "val/loss"
    patience: int = 10
    factor: float = 0.5

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any], **fixed: Any) -> OptimSettings:
        """Settings from a module's hyper-parameters of the same names (``optimizer`` gives
        ``name``), then ``fixed``. For modules whose hyper-parameters mean what these fields
        mean (the downstream tasks)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in hparams.items() if k in names}
        if "optimizer" in hparams:
            values["name"] = hparams["optimizer"]
        return cls(**{**values, **fixed})

    def check(self) -> None:
        """Raise :class:`ConfigError` on a value no run can use."""
        if self.schedule not in ("warmup_cosine", "cosine_to_floor", "plateau", "constant"):
            raise ConfigError(
                f"unknown schedule {self.schedule!r}; expected warmup_cosine, "
                "cosine_to_floor, plateau or constant",
                key="schedule",
            )
        if not self.lr > 0:
            raise ConfigError(f"the learning rate must be > 0, got {self.lr}", key="lr")
        if self.weight_decay < 0:
            raise ConfigError(
                f"weight_decay must be >= 0, got {self.weight_decay}", key="weight_decay"
            )
        if self.warmup_epochs < 0:
            raise ConfigError(
                f"warmup_epochs must be >= 0, got {self.warmup_epochs}", key="warmup_epochs"
            )


def configure(module: nn.Module, settings: OptimSettings, trainer: Any) -> dict[str, Any]:
    """What ``LightningModule.configure_optimizers`` returns for ``settings``.

    The optimiser holds ``module``'s trainable parameters; the schedule is built for the
    trainer's length (``estimated_stepping_batches`` and ``max_epochs``).
    """
    settings.check()
    lr = settings.lr
    if settings.scale_by_batch:
        lr = scaled_lr(lr, global_batch_size(trainer))
    opt = build_optimizer(
        module,
        name=settings.name,
        lr=lr,
        weight_decay=settings.weight_decay,
        betas=tuple(settings.betas),
        momentum=settings.momentum,
    )
    if settings.schedule == "constant":
        return {"optimizer": opt}
    if settings.schedule == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=settings.factor, patience=settings.patience
        )
        return {
            "optimizer": opt,
            "lr_scheduler": {
                "scheduler": sched,
                "monitor": settings.monitor,
                "interval": "epoch",
                "strict": False,
            },
        }
    epochs = max(1, int(trainer.max_epochs or 1))
    if settings.schedule == "cosine_to_floor":
        t = int(settings.cosine_epochs if settings.cosine_epochs is not None else epochs)
        sched = CosineLRScheduler(opt, t_initial=max(1, t), lr_min=settings.final_lr)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
    total = max(1, int(trainer.estimated_stepping_batches))
    warmup = round(total * settings.warmup_epochs / epochs)
    floor = settings.min_lr if settings.min_lr is not None else lr * settings.min_lr_ratio
    sched = CosineLRScheduler(
        opt,
        t_initial=max(1, total - warmup),
        lr_min=floor,
        warmup_t=warmup,
        warmup_lr_init=0.0,
        warmup_prefix=True,
        t_in_epochs=False,
    )
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def step_scheduler(scheduler: Any, interval: str, step: int, epoch: int, metric: Any) -> None:
    """Advance a scheduler built by :func:`configure` (Lightning's ``lr_scheduler_step``).

    timm's schedulers take the step or epoch count (``step_update`` / ``step``); torch's
    ReduceLROnPlateau takes the monitored metric.
    """
    if isinstance(scheduler, CosineLRScheduler):
        if interval == "step":
            scheduler.step_update(step)
        else:
            scheduler.step(epoch)
    elif metric is None:
        scheduler.step()
    else:
        scheduler.step(metric)


@torch.no_grad()
def clip_gradients(module: nn.Module, clip: float) -> None:
    """DINO's gradient clipping: every parameter's gradient norm is clipped *separately*.

    ``g ← g · min(1, clip / (‖g‖₂ + 1e-6))`` per parameter tensor (not one global norm as
    ``torch.nn.utils.clip_grad_norm_``); no host synchronisation.
    """
    for p in module.parameters():
        if p.grad is not None:
            p.grad.mul_((clip / (p.grad.norm(2) + 1e-6)).clamp(max=1.0))
