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
* **means over a whole split** (:meth:`log_mean`): validation / test losses averaged over
  every sample of every rank, exactly — Lightning's ``sync_dist=True`` mean divides by
  an integer-truncated average sample count when ranks score different numbers of samples;
* **logging without host syncs**: :meth:`log` keeps Python numbers (learning rates,
  momenta, temperatures logged every step) on the host, where Lightning would copy each to
  the GPU — a copy that waits for every queued kernel;
* the **fast GPU switches** of the run's ``speed`` section
  (:class:`~rsfuse.training.speed.SpeedSettings`, set as :attr:`speed` before the
  optimiser is built): the fused optimiser is chosen here;
* **encoder export** in one format (safetensors + JSON with the encoder's constructor,
  sensor and bands; :func:`rsfuse.models.checkpoints.export_encoder`), printed where it
  went: :meth:`write_encoder`. A pretraining run exports into its **run folder**
  (``trainer.default_root_dir``, the working directory unless set): ``encoders/<name>`` by
  default, a relative export path under the run folder, an absolute one as given
  (:meth:`export_target`).

A module that augments its own views (the self-supervised methods) sets
``augments_views = True``; the check then refuses a datamodule that would augment the
training batches a second time.
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

import torch
from lightning import LightningModule
from torch import Tensor, nn

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

    #: The run's resolved ``speed`` switches (:class:`~rsfuse.training.speed.ResolvedSpeed`),
    #: set by :class:`~rsfuse.training.speed.SpeedSettings`; None outside such a run.
    speed: Any = None

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

    #: see :meth:`setup` (None: no datamodule with a validity rule; a batch with a ``valid``
    #: mask is then scored by subsets, see :meth:`scores_cloud_subsets`)
    score_cloud_subsets: bool | None = None

    def scores_cloud_subsets(self, batch: dict) -> bool:
        """Whether evaluation scores the clear and the clouded subsets of ``batch``: when the
        datamodule has a validity rule (:attr:`score_cloud_subsets`); without a datamodule
        (plain loaders) when the batch carries a ``valid`` mask."""
        if self.score_cloud_subsets is None:
            return "valid" in batch
        return self.score_cloud_subsets

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
        validity = getattr(dm, "validity", None)
        # the datamodule gives its samples S2 validity (a ``clouds`` rule other than ``none``):
        # the tasks then also score the clear and the clouded subsets. Decided here, from the
        # configuration, so that every rank decides the same.
        self.score_cloud_subsets = (
            None if validity is None else getattr(validity, "source", "none") != "none"
        )
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
        fused = getattr(self.speed, "fused_optimizer", None)
        cfg = configure(self.optimized_module(), self.optim_settings(), self.trainer, fused)
        self._lr_interval = cfg.get("lr_scheduler", {}).get("interval", "step")
        return cfg

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        """Step timm's schedulers by optimiser step or epoch, torch's by metric."""
        interval = getattr(self, "_lr_interval", "step")
        step_scheduler(scheduler, interval, self.global_step, self.current_epoch + 1, metric)

    # ------------------------------------------------------------------ logging
    def log_mean(self, name: str, value: Tensor, batch_size: int, **kwargs: Any) -> None:
        """Log ``name`` as the mean of ``value`` over every sample of the split, on all
        ranks: ``Σ value_b · n_b / Σ n_b`` over the batches ``b`` of every rank, reduced by
        :class:`~rsfuse.metrics.split_mean.SplitMean` when the epoch ends (sums of values and
        of counts: exact under DDP, and no host read per batch). ``value`` is a batch mean;
        ``kwargs`` go to :meth:`log` (e.g. ``prog_bar``).
        """
        from rsfuse.metrics.split_mean import SplitMean

        means = self.__dict__.get("_modules", {}).get("split_means")
        if means is None:
            means = nn.ModuleDict()
            self.split_means = means
        key = name.replace(".", "_")
        if key not in means:
            means[key] = SplitMean().to(value.device)
        metric = means[key]
        metric.update(value, batch_size)
        self.log(
            name, metric, on_step=False, on_epoch=True, batch_size=batch_size,
            metric_attribute=f"split_means.{key}", **kwargs,
        )  # fmt: skip

    def log(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        """``LightningModule.log``, with a Python number kept on the host as a 0-d CPU
        tensor instead of being copied to the module's device (a blocking host-to-device
        copy per call and step). Values reduced across ranks (``sync_dist=True``) go as
        Lightning sends them."""
        if (
            isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and not kwargs.get("sync_dist", False)
        ):
            value = torch.tensor(float(value), dtype=torch.get_default_dtype())
        super().log(name, value, *args, **kwargs)

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
    def run_folder(self) -> Path:
        """The run's folder: ``trainer.default_root_dir`` (where the checkpoints go, see
        :mod:`rsfuse.training.resume`), the working directory when no trainer is attached."""
        if self._trainer is None:
            return Path.cwd()
        return Path(self.trainer.default_root_dir)

    def export_target(self, path: str | Path | None, default: str) -> Path:
        """Where an export at the end of ``fit`` goes.

        Args:
            path: the method's ``export_path`` / ``export_dir``: ``None`` → ``encoders/<default>``
                in the run folder (:meth:`run_folder`); a relative path → under the run
                folder; an absolute path → unchanged.
            default: file stem (or folder name) used when ``path`` is ``None``.
        """
        if path is None or str(path) == "":
            return self.run_folder() / "encoders" / default
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.run_folder() / path

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
