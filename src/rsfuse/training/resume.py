"""Exact resume: a run killed at any step and resumed ends as if it had never stopped.

What a Lightning checkpoint lacks, and where rsfuse adds it:

* **The run folder.** Lightning logs every run into a new ``version_N/`` and puts its
  checkpoints there, so ``--ckpt_path last`` looks into a fresh folder. rsfuse writes the
  checkpoints of a run into ``<trainer.default_root_dir>/checkpoints/`` (every
  :class:`~lightning.pytorch.callbacks.ModelCheckpoint` without its own ``dirpath``:
  :func:`place_checkpoints`); logs still go to ``version_N/``. ``last`` is the newest
  ``last*.ckpt`` there (:func:`resolve_ckpt_path`): ``fit`` without one starts from the
  beginning, ``validate`` / ``test`` without one are an error.
* **A recent checkpoint.** :class:`LastCheckpoint` writes ``last.ckpt`` at the end of every
  training epoch (after validation, whatever the monitored metric did) and every
  ``every_n_train_steps`` optimiser steps.
* **The random state.** :class:`ExactResume` saves the global generators of torch (CPU and
  every CUDA device), NumPy and Python in every checkpoint and restores them when the
  resumed fit starts training (``on_train_start``: after the sanity check, before the
  first batch is read), so dropout, masks, crops and the device-side batch augmentation
  draw what they would have drawn.
* **The data order and the step within the epoch.** The datamodule's sampler
  (:class:`~rsfuse.data.datamodules.sampler.ResumableSampler`) permutes from
  ``(seed, epoch)`` and the datamodule saves the samples already consumed
  (:meth:`~rsfuse.data.datamodules.base.RsfuseDataModule.training_order_state`); Lightning's
  loop state gives the step.

Lightning 2.6 resumes a loader mid-epoch only if the loader itself has
``state_dict``/``load_state_dict``, and then loses that state whenever
``configure_optimizers`` reads ``trainer.estimated_stepping_batches`` (every rsfuse module
does: Lightning issue 20550); the datamodule's state is restored before any loader exists.

Bitwise equality holds on CPU with ``num_workers: 0`` (what ``tests/training/test_resume.py``
checks). With worker processes the dataset must draw no random numbers of its own per
sample (the shipped BigEarthNet and DFC2020 readers draw none; SSL4EO-S12 ``season: random``
does). Batch transforms that run in the workers (``speed.transforms_in_workers``, the CPU
default with workers) seed their draws from the run's seed and the batch's sample ids
(:func:`rsfuse.data.datamodules.base.batch_seed`), so a resumed run draws the same clouds,
sensor drops and augmentations; that path is tested for equal draws, not by a kill test.
Work a module does in ``on_train_batch_end`` runs after the step checkpoint of that batch
was written (Lightning calls callbacks first): per-step updates belong in ``training_step``
or ``optimizer_step``.
"""

from __future__ import annotations

import os
import random
import re
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from rsfuse.errors import CheckpointError, ConfigError

__all__ = [
    "CHECKPOINT_FOLDER",
    "ExactResume",
    "LastCheckpoint",
    "capture_rng",
    "check_fits",
    "checkpoint_folder",
    "checkpoint_folders",
    "find_last_checkpoint",
    "place_checkpoints",
    "resolve_ckpt_path",
    "restore_rng",
]

#: Checkpoints of a run: ``<trainer.default_root_dir>/<CHECKPOINT_FOLDER>/``.
CHECKPOINT_FOLDER = "checkpoints"

#: ``last.ckpt`` and the versions Lightning numbers when the name is taken (``last-v1.ckpt``).
_LAST = re.compile(r"^last(-v\d+)?\.ckpt$")

#: Lightning's warning for mid-epoch resumes with loaders it cannot resume itself.
_NOT_RESUMABLE = "You're resuming from a checkpoint that ended before the epoch ended"


# --------------------------------------------------------------------------- random state
def capture_rng() -> dict[str, Any]:
    """The global random state of torch (CPU and initialised CUDA devices), NumPy and
    Python, as tensors and plain data (loadable with ``torch.load(weights_only=True)``)."""
    np_state = np.random.get_state(legacy=False)
    version, py_state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss": gauss},
    }  # fmt: skip


def restore_rng(state: dict[str, Any]) -> None:
    """Set the global generators to ``state`` (from :func:`capture_rng`); CUDA states only
    when this process sees as many CUDA devices as the one that saved them."""
    torch.set_rng_state(state["torch"])
    cuda = list(state.get("cuda") or [])
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": int(n["pos"])},
            "has_gauss": int(n["has_gauss"]),
            "gauss": float(n["gauss"]),
        }
    )
    p = state["python"]
    random.setstate((int(p["version"]), tuple(int(v) for v in p["state"].tolist()), p["gauss"]))


class ExactResume(Callback):
    """Save the global random state in every checkpoint; restore it when a resumed fit
    starts training (see the module docstring).

    Every rsfuse run has one (:class:`rsfuse.training.cli.RsfuseCLI` adds it); it has no
    settings.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"rng": capture_rng()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict.get("rng")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Restore the checkpoint's random state: nothing the restart itself does (model
        construction, sanity check, loader set-up) shifts what training draws next."""
        if self._pending is None:
            return
        restore_rng(self._pending)
        self._pending = None
        sampler = getattr(trainer.train_dataloader, "sampler", None)
        if hasattr(sampler, "start"):  # the datamodule continues the epoch's order itself
            warnings.filterwarnings("ignore", message=re.escape(_NOT_RESUMABLE))


# --------------------------------------------------------------------------- last.ckpt
class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt`` at the end of every training epoch and every ``every_n_train_steps``
    optimiser steps, whatever a monitored metric does (no other files).

    Lightning's ``ModelCheckpoint(monitor=…, save_last=True)`` rewrites ``last.ckpt`` only
    when it saves a top-k file, i.e. when the metric improves. This one saves at
    ``on_train_epoch_end`` (after the epoch's validation) and after the configured steps;
    a step that ends an epoch is left to the epoch-end save.

    Args:
        every_n_train_steps: optimiser steps between mid-epoch saves (0: only at epoch
            ends).
        dirpath: the folder (default: ``<default_root_dir>/checkpoints``, see
            :func:`place_checkpoints`).
    """

    def __init__(self, every_n_train_steps: int = 1000, dirpath: str | None = None) -> None:
        if every_n_train_steps < 0:
            raise ConfigError(
                f"every_n_train_steps must be >= 0, got {every_n_train_steps}",
                key="every_n_train_steps",
            )
        super().__init__(
            dirpath=dirpath,
            save_top_k=0,
            save_last=True,
            every_n_train_steps=every_n_train_steps,
            save_on_train_epoch_end=True,
        )

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        progress = trainer.fit_loop.epoch_loop.batch_progress
        if progress.is_last_batch or progress.current.ready >= trainer.num_training_batches:
            return  # on_train_epoch_end saves after this epoch's validation
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


# --------------------------------------------------------------------------- run folder
def checkpoint_folder(trainer: pl.Trainer) -> str:
    """``<trainer.default_root_dir>/checkpoints`` (absolute for local folders)."""
    root = str(trainer.default_root_dir)
    if "://" in root:
        return root.rstrip("/") + "/" + CHECKPOINT_FOLDER
    return os.path.realpath(os.path.join(root, CHECKPOINT_FOLDER))


def place_checkpoints(trainer: pl.Trainer) -> None:
    """Point every :class:`ModelCheckpoint` without a ``dirpath`` at the run's checkpoint
    folder (:func:`checkpoint_folder`), the same for every run with the same
    ``default_root_dir``."""
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.dirpath is None:
            cb.dirpath = checkpoint_folder(trainer)


def checkpoint_folders(trainer: pl.Trainer) -> list[str]:
    """The folders the trainer's checkpoint callbacks write to (the run's folder if none)."""
    dirs = {str(cb.dirpath) for cb in trainer.checkpoint_callbacks
            if isinstance(cb, ModelCheckpoint) and cb.dirpath}  # fmt: skip
    return sorted(dirs) or [checkpoint_folder(trainer)]


def find_last_checkpoint(folders: list[str]) -> Path | None:
    """The newest ``last.ckpt`` (or ``last-vN.ckpt``) in local ``folders``, or None."""
    found = [p for d in folders if "://" not in d and Path(d).is_dir()
             for p in Path(d).iterdir() if _LAST.match(p.name) and p.is_file()]  # fmt: skip
    return max(found, key=lambda p: (p.stat().st_mtime_ns, p.name)) if found else None


def resolve_ckpt_path(
    trainer: pl.Trainer, ckpt_path: Any, stage: str, model: pl.LightningModule | None = None
) -> Any:
    """``ckpt_path`` with ``last`` replaced by the run's newest last checkpoint.

    The file found is checked like any ``--ckpt_path`` file (a Lightning checkpoint that
    loads with ``weights_only=True``, see :mod:`rsfuse.io.checkpoint_file`) and, given the
    ``model``, against its weights (:func:`check_fits`). Other values are returned
    unchanged.

    Args:
        trainer: the run's trainer (its checkpoint callbacks placed).
        ckpt_path: the ``ckpt_path`` of the subcommand.
        stage: ``fit``, ``validate`` or ``test``.
        model: the model the checkpoint will be restored into.

    Returns:
        The checkpoint file, ``None`` for a ``fit`` with nothing to resume (it starts from
        the beginning), or ``ckpt_path`` itself.

    Raises:
        CheckpointError: ``validate`` / ``test`` with ``last`` and no last checkpoint
            (naming the folder), or a last checkpoint that is bad or does not fit the model
            (naming the file).
    """
    if ckpt_path != "last":
        return ckpt_path
    folders = checkpoint_folders(trainer)
    if any("://" in d for d in folders):
        return ckpt_path  # remote folders: Lightning looks itself
    found = find_last_checkpoint(folders)
    where = ", ".join(folders)
    if found is None:
        if stage != "fit":
            raise CheckpointError(
                f"--ckpt_path last: no last checkpoint (last.ckpt) in {where}; nothing to "
                f"{stage}. Train first with rsfuse fit and the same "
                "--trainer.default_root_dir, or pass --ckpt_path FILE"
            )
        _say(trainer, f"--ckpt_path last: no last checkpoint in {where}; training from the start")
        return None
    from rsfuse.io.checkpoint_file import load_checkpoint_safely

    ckpt = load_checkpoint_safely(found, lightning=True)
    if model is not None:
        check_fits(ckpt["state_dict"], model, found)
    del ckpt
    _say(trainer, f"--ckpt_path last: {'resuming from' if stage == 'fit' else 'loading'} {found}")
    return str(found)


def check_fits(state: dict[str, torch.Tensor], model: torch.nn.Module, path: Path) -> None:
    """Raise unless the checkpoint weights ``state`` have the keys and shapes of ``model``.

    Raises:
        CheckpointError: naming ``path``, the first missing, unexpected and mismatched
            keys, and the likely cause (another run's checkpoint in the same folder).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]  # fmt: skip
    if not (missing or unexpected or shapes):
        return
    found = {"missing": missing, "unexpected": unexpected, "shapes": shapes}
    parts = [f"{name} {items[:3]}" for name, items in found.items() if items]
    raise CheckpointError(
        f"checkpoint {path} does not fit {type(model).__name__} ({'; '.join(parts)}): "
        "written by another run in the same folder? Give each run its own "
        "--trainer.default_root_dir"
    )


def _say(trainer: pl.Trainer, text: str) -> None:
    if trainer.is_global_zero:
        print(f"[rsfuse] {text}")
