"""What every rsfuse datamodule shares: loaders, the device-side pipeline, its checkpoint state.

A subclass reads its splits (:meth:`RsfuseDataModule.split_dataset`) and sets, in ``__init__``,
``input_spec`` (:class:`~rsfuse.inputs.InputSpec`), ``normalize``
(:class:`~rsfuse.data.transforms.Normalize`), ``augmentation`` (or None), ``batch_size``
and ``num_workers``. This base then serves the loaders, normalises every batch on its
device and augments training batches (``on_after_batch_transfer``), and saves the
normalisation, bands and patch size in every checkpoint, so ``rsfuse export`` can write a
self-describing model bundle.

The training order is a :class:`~rsfuse.data.datamodules.sampler.ResumableSampler`: the
permutation of epoch ``e`` follows from the run's seed and ``e`` alone, and every checkpoint
records the epoch and the samples already consumed (``train_order``), so a run resumed
mid-epoch reads the rest of the same permutation. Every loader has its own generator: no
loader draws from the global random state (which a checkpoint restores, see
:mod:`rsfuse.training.resume`).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from rsfuse.data.datamodules.sampler import ResumableSampler
from rsfuse.data.sample import Batch, collate
from rsfuse.data.transforms import BatchAugmentation, Normalize
from rsfuse.inputs import InputSpec

__all__ = ["RsfuseDataModule"]


class RsfuseDataModule(LightningDataModule):
    """Base of :mod:`rsfuse.data.datamodules` (see the module docstring)."""

    input_spec: InputSpec
    normalize: Normalize
    augmentation: BatchAugmentation | None
    batch_size: int
    num_workers: int

    def __init__(self) -> None:
        super().__init__()
        self.datasets: dict[str, Dataset] = {}
        self._train_sampler: ResumableSampler | None = None
        self._resume_order: dict[str, int] | None = None

    # ------------------------------------------------------------------ splits
    def split_dataset(self, split: str) -> Dataset:
        """The dataset of a split (``train``, ``val``, ``test``), read once."""
        raise NotImplementedError

    @property
    def training_patch_size(self) -> int:
        """Side of the training inputs in pixels."""
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        """More of what a checkpoint should remember (e.g. class names)."""
        return {}

    # ------------------------------------------------------------------ loaders
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = self.split_dataset(split)
        sampler = self._training_order(ds) if shuffle else None
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate,
            persistent_workers=self.num_workers > 0,
            drop_last=shuffle and len(ds) > self.batch_size,  # type: ignore[arg-type]
            generator=sampler.generator if sampler else torch.Generator().manual_seed(run_seed()),
        )

    def _training_order(self, ds: Dataset) -> ResumableSampler:
        """The training sampler: this run's seed, this rank's share, and the position a
        restored checkpoint recorded (once)."""
        trainer = self.trainer
        order, self._resume_order = self._resume_order or {}, None
        self._train_sampler = ResumableSampler(
            ds,  # type: ignore[arg-type]
            seed=int(order.get("seed", run_seed())),
            epoch=int(order.get("epoch", 0)),
            start=int(order.get("start", 0)),
            num_replicas=int(getattr(trainer, "world_size", 1)),
            rank=int(getattr(trainer, "global_rank", 0)),
        )
        return self._train_sampler

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    # ------------------------------------------------------------------ device side
    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        """Normalise every batch on its device; augment training batches."""
        batch = self.normalize(batch)
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.training and self.augmentation is not None:
            batch = self.augment(batch)
        return batch

    def augment(self, batch: Batch) -> Batch:
        """Apply the training augmentation to a (normalised) batch."""
        assert self.augmentation is not None
        return self.augmentation(batch)

    # ------------------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: the normalisation (:meth:`Normalize.describe`), the
        bands in order, the training patch size (and :meth:`extra_state`); during a fit also
        the training order (:meth:`training_order_state`)."""
        spec = self.input_spec
        state = {
            "normalization": self.normalize.describe(),
            "patch_size": self.training_patch_size,
            "bands": {"s1": list(spec.s1_bands), "s2": list(spec.s2_bands)},
            "input_spec": spec.to_dict(),
            **self.extra_state(),
        }
        order = self.training_order_state()
        if order is not None:
            state["train_order"] = order
        return state

    def training_order_state(self) -> dict[str, int] | None:
        """``{"seed", "epoch", "start"}``: the permutation and the samples of it this rank
        has consumed, read from the trainer's progress (None outside a fit).

        At the end of an epoch this is the start of the next one.
        """
        trainer = self.trainer
        sampler = self._train_sampler
        if sampler is None or not _fitting(trainer):
            return None
        done = int(trainer.fit_loop.epoch_loop.batch_progress.current.ready)
        epoch = int(trainer.current_epoch)
        if done >= trainer.num_training_batches:
            epoch, done = epoch + 1, 0
        return {"seed": int(sampler.seed), "epoch": epoch, "start": done * self.batch_size}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """When a fit resumes: keep the checkpoint's training order for its training loader
        (the normalisation follows from the constructor arguments)."""
        order = state_dict.get("train_order")
        fitting = _fitting(self.trainer)
        self._resume_order = dict(order) if fitting and isinstance(order, dict) else None


def _fitting(trainer: Any) -> bool:
    """Whether ``trainer`` (a Lightning Trainer, or None) is running a fit."""
    state = getattr(trainer, "state", None)
    return state is not None and getattr(state, "fn", None) == "fit"


def run_seed() -> int:
    """The run's seed (``seed_everything``; Lightning's ``PL_GLOBAL_SEED``), else 0 — the
    same on every rank, as Lightning's own distributed sampler."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))
