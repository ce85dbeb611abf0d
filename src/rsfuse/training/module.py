"""The base LightningModule of every rsfuse task and pretraining method.

:class:`RsfuseModule` holds what all of them share, once:

* the **input specification** (:class:`~rsfuse.inputs.InputSpec`: sensors, S2 bands in
  order, product) and its check against the datamodule when a fit / validate / test /
  predict starts (:meth:`RsfuseModule.setup`) — sensors and band *order*, not only the
  channel count — and against every batch's channel count (:meth:`check_batch`);
* the **optimiser and learning-rate schedule**, declared by each module as
  :class:`~rsfuse.training.optim.OptimSettings` (:meth:`optim_settings`) and built by
  :func:`rsfuse.training.optim.configure`: scaled learning rate counting devices and
  gradient accumulation, timm's cosine schedules stepped by :meth:`lr_scheduler_step`;
* **progress counters**: :attr:`total_steps`, :attr:`steps_per_epoch` and
  :meth:`fractional_epoch`, read once per fit;
* **encoder export** in one format (safetensors + JSON with the encoder's constructor,
  sensor and bands; :func:`rsfuse.models.checkpoints.export_encoder`), printed where it
  went: :meth:`write_encoder`.

A module that augments its own views (the self-supervised methods) sets
``augments_views = True``; the check then refuses a datamodule that would augment the
training batches a second time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning import LightningModule
from torch import nn

from rsfuse.errors import ConfigError
from rsfuse.inputs import InputSpec
from rsfuse.models.checkpoints import export_encoder
from rsfuse.training.optim import OptimSettings, configure, step_scheduler

__all__ = ["RsfuseModule"]


class RsfuseModule(LightningModule):
    """Base of :mod:`rsfuse.tasks` and :mod:`rsfuse.methods` (see the module docstring).

    Subclasses call :meth:`set_input_spec` in ``__init__`` and implement
    :meth:`optim_settings`; :meth:`optimized_module` narrows what the optimiser sees.
    """

    #: True for modules that augment their own training views (SSL methods).
    augments_views: bool = False

    _input_spec: InputSpec | None = None

    # ------------------------------------------------------------------ input
    def set_input_spec(self, spec: InputSpec) -> None:
        """Bind the model's input (call once in ``__init__``)."""
        self._input_spec = spec

    @property
    def input_spec(self) -> InputSpec:
        """The sensors and bands the model reads."""
        if self._input_spec is None:
            raise ConfigError(f"{type(self).__name__} did not set its input specification")
        return self._input_spec

    @property
    def modalities(self) -> tuple[str, ...]:
        """The model's sensors (``s1`` before ``s2``)."""
        return self.input_spec.modalities

    @property
    def s2_band_names(self) -> tuple[str, ...]:
        """The model's S2 bands in channel order (empty without S2)."""
        return self.input_spec.s2_bands

    @property
    def channels(self) -> tuple[str, ...]:
        """Channel names of the early-fused input (S2 bands, then VV, VH)."""
        return self.input_spec.channels

    def check_batch(self, batch: dict) -> None:
        """Raise when a batch lacks a sensor or its S2 channel count differs from the bands."""
        self.input_spec.check_batch(batch)

    def sensor_batch(self, batch: dict) -> dict:
        """The (checked) batch reduced to this model's sensors and their ``present`` flags."""
        self.check_batch(batch)
        present = batch.get("present", {})
        out: dict = {m: batch[m] for m in self.modalities}
        out["present"] = {m: present[m] for m in self.modalities if m in present}
        return out

    def setup(self, stage: str) -> None:
        """Compare the datamodule's input with the model's, once per stage.

        Raises:
            ConfigError: other sensors or S2 bands (or band order) than the model's, or a
                datamodule that augments the training batches of a module that augments its
                own views.
        """
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        spec = getattr(dm, "input_spec", None)
        if isinstance(spec, InputSpec):
            spec.check_feeds(self.input_spec, f"the datamodule {type(dm).__name__}")
        if stage == "fit" and self.augments_views and getattr(dm, "augmentation", None) is not None:
            raise ConfigError(
                f"{type(self).__name__} augments its own views; the datamodule would augment "
                "the training batches a second time: set data augmentation to null",
                key="data.augmentation",
            )

    # ------------------------------------------------------------------ optimisation
    def optim_settings(self) -> OptimSettings:
        """The optimiser and schedule this module trains with."""
        raise NotImplementedError

    def optimized_module(self) -> nn.Module:
        """The parameters the optimiser updates (default: the whole module)."""
        return self

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = configure(self.optimized_module(), self.optim_settings(), self.trainer)
        self._lr_interval = cfg.get("lr_scheduler", {}).get("interval", "step")
        return cfg

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        """Step timm's schedulers by optimiser step or epoch, torch's by metric."""
        interval = getattr(self, "_lr_interval", "step")
        step_scheduler(scheduler, interval, self.global_step, self.current_epoch + 1, metric)

    # ------------------------------------------------------------------ progress
    def on_fit_start(self) -> None:
        self._progress = None  # a new fit: read the trainer's length again when asked

    def _read_progress(self) -> tuple[int, float]:
        cached = getattr(self, "_progress", None)
        if cached is not None and cached[0] is self.trainer:
            return cached[1]
        total = max(1, int(self.trainer.estimated_stepping_batches))
        per_epoch = total / max(1, int(self.trainer.max_epochs or 1))
        self._progress = (self.trainer, (total, per_epoch))
        return total, per_epoch

    @property
    def total_steps(self) -> int:
        """Optimiser steps of the whole fit (read once per fit)."""
        return self._read_progress()[0]

    @property
    def steps_per_epoch(self) -> float:
        """Optimiser steps per epoch."""
        return self._read_progress()[1]

    def fractional_epoch(self, step: int | None = None) -> float:
        """Epochs done after ``step`` optimiser steps (default: now), e.g. 2.5."""
        return (self.global_step if step is None else step) / self.steps_per_epoch

    # ------------------------------------------------------------------ export
    def write_encoder(self, module: nn.Module, path: str | Path, config: dict[str, Any]) -> Path:
        """Export an encoder (safetensors + JSON; the one format) and print where it went.

        ``config`` describes the encoder (``class``, constructor arguments, ``modality``,
        ``bands``); the method's name and the epoch are added.
        """
        meta = {"method": type(self).__name__, **config}
        if self._trainer is not None:
            meta.setdefault("epochs", int(self.current_epoch))
            meta.setdefault("global_step", int(self.global_step))
        out = export_encoder(module, path, meta)
        print(f"[rsfuse] exported {meta.get('modality', 'encoder')} encoder to {out}")
        return out
