"""Fast defaults on a GPU, as config switches: the ``speed:`` section of every run.

``rsfuse fit`` (and every run :func:`rsfuse.training.cli.build_run` builds) has a top-level
``speed`` section holding one :class:`SpeedSettings` callback. Each switch is ``null``
(auto: **on when the run trains on a CUDA device**, off on a CPU) or ``true`` / ``false``:

==================== ======================================================================
``compile``          ``torch.compile`` of the model's networks, in place (forward only; never
                     the data code): the transformer blocks one by one for ViTs (regional
                     compilation: one compiled graph serves every block), the whole network
                     for ConvNets (:func:`compile_targets`). Checkpoint keys do not change.
``channels_last``    ConvNets (models with ``BatchNorm2d``) in channels-last memory format.
``fused_optimizer``  the fused AdamW / Adam kernel (:func:`rsfuse.training.optim.
                     build_optimizer`).
``pin_memory``       the DataLoaders pin their batches, so Lightning's non-blocking copy to
                     the GPU overlaps the step.
``tf32``             ``torch.set_float32_matmul_precision("high")``: TF32 tensor cores for
                     the float32 matmuls left outside bf16 autocast.
==================== ======================================================================

One switch is the other way round: ``transforms_in_workers`` (``null``: **on when the run
trains on a CPU** with loader workers) normalises and augments batches in the loader
workers instead of after the transfer (:class:`~rsfuse.data.datamodules.base.
WorkerTransforms`), so on a CPU they overlap the step rather than adding to it.

``prefetch_factor`` (batches each loader worker keeps ready; ``null``: PyTorch's 2) and
``compile_mode`` (``torch.compile`` mode) are passed as given. bf16 autocast is the
trainer's ``precision: bf16-mixed``, which every full-size config sets.

Examples::

    rsfuse fit --config classification/ben_v2_s1s2_early_fusion --speed.compile=false
    rsfuse fit --config ... --speed.prefetch_factor=4

``rsfuse benchmark train`` measures what the switches give (``docs/performance.md``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer
from torch import nn

from rsfuse.errors import ConfigError

__all__ = [
    "ResolvedSpeed",
    "SpeedSettings",
    "apply_channels_last",
    "compile_in_place",
    "compile_targets",
    "is_convnet",
]

#: ``torch.compile`` modes (``None``: the default mode).
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class ResolvedSpeed:
    """The switches of one run after ``auto`` was decided for its device."""

    compile: bool = False
    compile_mode: str | None = None
    channels_last: bool = False
    fused_optimizer: bool | None = None  # None: build_optimizer's own rule (on for CUDA)
    pin_memory: bool = False
    prefetch_factor: int | None = None
    tf32: bool = False
    transforms_in_workers: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_convnet(module: nn.Module) -> bool:
    """True for networks with 2-D batch normalisation (ResNets, U-Nets …), not for ViTs."""
    return any(isinstance(m, nn.BatchNorm2d) for m in module.modules())


def _is_block(m: nn.Module) -> bool:
    from timm.models.vision_transformer import Block

    return isinstance(m, Block)


def compile_targets(module: nn.Module) -> list[nn.Module]:
    """The sub-networks :func:`compile_in_place` compiles.

    * every transformer block (timm ``Block``: GatedViT, timm ViTs, the MAE decoder) when
      there are any — regional compilation: the blocks share their code, so one graph
      (per input shape) is compiled and reused by all of them;
    * else the encoders of a classifier (``module.model.encoders``: they map tensors to
      features, while the classifier reads whole batch dicts with sample ids);
    * else the network ``module.model`` (smp segmentation models, CromSS U-Nets).

    A module may define ``compile_targets()`` itself to choose otherwise.
    """
    own = getattr(module, "compile_targets", None)
    if callable(own):
        return list(own())
    blocks = [m for m in module.modules() if _is_block(m)]
    if blocks:
        return blocks
    model = getattr(module, "model", None)
    encoders = getattr(model, "encoders", None)
    if isinstance(encoders, nn.ModuleDict):
        return list(encoders.values())
    return [model] if isinstance(model, nn.Module) else []


def compile_in_place(module: nn.Module, mode: str | None = None) -> list[nn.Module]:
    """``nn.Module.compile`` (in place: parameter names unchanged) on
    :func:`compile_targets`; returns the compiled modules."""
    if mode not in COMPILE_MODES:
        raise ConfigError(f"unknown compile mode {mode!r}; expected {COMPILE_MODES}", "compile")
    targets = compile_targets(module)
    for t in targets:
        t.compile(mode=None if mode == "default" else mode)
    return targets


def apply_channels_last(module: nn.Module) -> None:
    """Channels-last memory format for every 4-D parameter and buffer of ``module``; convs
    then run channels-last and hand that format on through the network."""
    module.to(memory_format=torch.channels_last)


class SpeedSettings(Callback):
    """The ``speed`` section: fast GPU defaults as switches (see the module docstring).

    Args:
        compile: ``torch.compile`` the networks (``null``: on for CUDA).
        compile_mode: ``torch.compile`` mode (``null``: the default mode).
        channels_last: channels-last ConvNets (``null``: on for CUDA and a ConvNet).
        fused_optimizer: fused Adam(W) (``null``: on for CUDA).
        pin_memory: pinned loader batches (``null``: on for CUDA).
        prefetch_factor: batches per loader worker kept ready (``null``: PyTorch's default).
        tf32: TF32 float32 matmuls (``null``: on for CUDA).
        transforms_in_workers: normalise and augment in the loader workers (``null``: on
            for a CPU).
    """

    def __init__(
        self,
        compile: bool | None = None,
        compile_mode: str | None = None,
        channels_last: bool | None = None,
        fused_optimizer: bool | None = None,
        pin_memory: bool | None = None,
        prefetch_factor: int | None = None,
        tf32: bool | None = None,
        transforms_in_workers: bool | None = None,
    ) -> None:
        if compile_mode not in COMPILE_MODES:
            raise ConfigError(
                f"unknown compile_mode {compile_mode!r}; expected one of {COMPILE_MODES}",
                key="speed.compile_mode",
            )
        if prefetch_factor is not None and prefetch_factor < 1:
            raise ConfigError(
                f"prefetch_factor must be >= 1, got {prefetch_factor}", key="speed.prefetch_factor"
            )
        self.compile = compile
        self.compile_mode = compile_mode
        self.channels_last = channels_last
        self.fused_optimizer = fused_optimizer
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        self.tf32 = tf32
        self.transforms_in_workers = transforms_in_workers
        self.resolved: ResolvedSpeed | None = None

    def resolve(self, device: torch.device, module: nn.Module) -> ResolvedSpeed:
        """The switches for a run on ``device`` (``auto`` → on for CUDA)."""
        cuda = device.type == "cuda"

        def pick(v: bool | None, auto: bool) -> bool:
            return auto if v is None else bool(v)

        return ResolvedSpeed(
            compile=pick(self.compile, cuda),
            compile_mode=self.compile_mode,
            channels_last=pick(self.channels_last, cuda and is_convnet(module)),
            fused_optimizer=self.fused_optimizer,
            pin_memory=pick(self.pin_memory, cuda),
            prefetch_factor=self.prefetch_factor,
            tf32=pick(self.tf32, cuda),
            transforms_in_workers=pick(self.transforms_in_workers, device.type == "cpu"),
        )

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Decide the switches for the trainer's device and apply them, once per module:
        memory format and compilation of the model (``fit`` only), loader settings on the
        datamodule, the optimiser choice on the module (read by ``configure_optimizers``)."""
        res = self.resolve(trainer.strategy.root_device, pl_module)
        self.resolved = res
        pl_module.speed = res  # type: ignore[assignment]
        if res.tf32:
            torch.set_float32_matmul_precision("high")
        dm = getattr(trainer, "datamodule", None)
        if dm is not None:
            dm.pin_memory = res.pin_memory
            dm.prefetch_factor = res.prefetch_factor
            dm.transforms_in_workers = res.transforms_in_workers
        if stage != "fit" or getattr(pl_module, "_rsfuse_speed_applied", False):
            return
        if res.channels_last:
            apply_channels_last(pl_module)
        if res.compile:
            compile_in_place(pl_module, res.compile_mode)
        pl_module._rsfuse_speed_applied = True  # type: ignore[assignment]
