"""What every rsfuse datamodule shares: loaders, the device-side pipeline, its checkpoint state.

A subclass reads its splits (:meth:`RsfuseDataModule.split_dataset`) and sets, in ``__init__``,
``input_spec`` (:class:`~rsfuse.inputs.InputSpec`), ``normalize``
(:class:`~rsfuse.data.transforms.Normalize`), ``augmentation`` (or None), ``batch_size``
and ``num_workers``. This base then serves the loaders, normalises every batch on its
device and augments training batches (``on_after_batch_transfer``), and saves the
normalisation, bands and patch size in every checkpoint, so ``rsfuse export`` can write a
self-describing model bundle.
"""

from __future__ import annotations

from typing import Any

from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset

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
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate,
            persistent_workers=self.num_workers > 0,
            drop_last=shuffle and len(ds) > self.batch_size,  # type: ignore[arg-type]
        )

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
        bands in order, the training patch size (and :meth:`extra_state`)."""
        spec = self.input_spec
        return {
            "normalization": self.normalize.describe(),
            "patch_size": self.training_patch_size,
            "bands": {"s1": list(spec.s1_bands), "s2": list(spec.s2_bands)},
            "input_spec": spec.to_dict(),
            **self.extra_state(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Nothing to restore: the normalisation follows from the constructor arguments."""
