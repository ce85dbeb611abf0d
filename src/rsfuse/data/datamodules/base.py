"""What every rsfuse datamodule shares: loaders, the device-side pipeline, its checkpoint state.

A subclass reads its splits (:meth:`RsfuseDataModule.split_dataset`) and sets, in ``__init__``,
``input_spec`` (:class:`~rsfuse.inputs.InputSpec`), ``normalize``
(:class:`~rsfuse.data.transforms.Normalize`), ``augmentation`` (or None), ``batch_size``
and ``num_workers``, and may call :meth:`RsfuseDataModule.set_robustness` (S2 validity,
sensor drop, cloud augmentation). This base then serves the loaders, pastes clouds on raw
training batches, normalises every batch on its device and augments training batches
(``on_after_batch_transfer``), and saves the normalisation, bands, patch size and S2
validity rule in every checkpoint, so ``rsfuse export`` can write a self-describing model
bundle and ``rsfuse predict`` routes as training did.

The training order is a :class:`~rsfuse.data.datamodules.sampler.ResumableSampler`: the
permutation of epoch ``e`` follows from the run's seed and ``e`` alone, and every checkpoint
records the epoch and the samples already consumed (``train_order``), so a run resumed
mid-epoch reads the rest of the same permutation. Every loader has its own generator: no
loader draws from the global random state (which a checkpoint restores, see
:mod:`rsfuse.training.resume`).

Loaders pin their batches when the run's ``speed.pin_memory`` switch is on (set as
:attr:`RsfuseDataModule.pin_memory` by :class:`~rsfuse.training.speed.SpeedSettings`; on by
default on a GPU, so Lightning's non-blocking copy overlaps the step), keep their workers
between epochs and prefetch ``prefetch_factor`` batches per worker. Under DDP the
validation and test loaders give each sample to exactly one rank
(Lightning's ``UnrepeatedDistributedSampler``): a split's metrics, accumulated over all
ranks, then equal the single-process metrics — the default ``DistributedSampler`` would
pad the split with repeated samples to equal lengths.

When the run trains on a CPU with loader workers (the ``speed.transforms_in_workers``
switch, on by default there), normalisation and augmentation run in the workers instead,
right after collation (:class:`WorkerTransforms`): the "device" is then the main process's
CPU, and the workers prepare the next batches while it computes the step, instead of the
step waiting for them. Batches are the same either way.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Sampler

from rsfuse.data.clouds import CloudValidity
from rsfuse.data.datamodules.sampler import ResumableSampler
from rsfuse.data.sample import Batch, collate
from rsfuse.data.transforms import BatchAugmentation, Normalize, RandomClouds, RandomSensorDrop
from rsfuse.errors import ConfigError, DataError
from rsfuse.inputs import InputSpec

__all__ = ["RsfuseDataModule", "WorkerTransforms"]


class RsfuseDataModule(LightningDataModule):
    """Base of :mod:`rsfuse.data.datamodules` (see the module docstring)."""

    input_spec: InputSpec
    normalize: Normalize
    augmentation: BatchAugmentation | None
    batch_size: int
    num_workers: int
    #: how S2 validity enters the samples (:mod:`rsfuse.data.clouds`)
    validity: CloudValidity = CloudValidity("none")
    #: clouds pasted onto raw training batches, before normalisation (or None)
    cloud_augmentation: RandomClouds | None = None
    #: pin loader batches (the run's ``speed.pin_memory``; off outside such a run).
    pin_memory: bool = False
    #: batches each loader worker keeps ready (None: PyTorch's default, 2).
    prefetch_factor: int | None = None
    #: normalise / augment in the loader workers (the run's ``speed.transforms_in_workers``:
    #: CPU runs with workers); else after the transfer to the device.
    transforms_in_workers: bool = False

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

    def set_robustness(
        self,
        clouds: str,
        max_cloud_fraction: float,
        sensor_drop: float,
        sensor_drop_s2: float,
        cloud_augmentation: float,
        product: str,
    ) -> None:
        """Training that expects missing or clouded sensors (call after ``augmentation``).

        Args:
            clouds: S2 validity source (:class:`~rsfuse.data.clouds.CloudValidity`).
            max_cloud_fraction: invalid fraction above which ``present["s2"]`` is False.
            sensor_drop: probability that a two-sensor training sample loses one sensor
                (:class:`~rsfuse.data.transforms.RandomSensorDrop`, appended to the
                augmentation).
            sensor_drop_s2: probability that the dropped sensor is S2.
            cloud_augmentation: probability that a training sample gets clouds
                (:class:`~rsfuse.data.transforms.RandomClouds`; needs S2).
            product: the S2 product (picks the cloud detector).

        Raises:
            ConfigError: bad probabilities or source.
        """
        self.validity = CloudValidity(clouds, max_cloud_fraction, product=product)
        spec = self.input_spec
        drop = RandomSensorDrop.for_sensors(spec.modalities, sensor_drop, sensor_drop_s2)
        if drop is not None and sensor_drop > 0:
            if self.augmentation is None:
                self.augmentation = BatchAugmentation(sensor_drop=drop)
            else:
                self.augmentation.sensor_drop = drop
        self.cloud_augmentation = None
        if cloud_augmentation > 0:
            if "s2" not in spec.modalities:
                raise ConfigError("cloud_augmentation needs S2 among the modalities", "modalities")
            self.cloud_augmentation = RandomClouds(
                spec.s2_bands, p=cloud_augmentation, max_cloud_fraction=max_cloud_fraction
            )

    # ------------------------------------------------------------------ loaders
    @property
    def _in_workers(self) -> bool:
        return bool(self.transforms_in_workers and self.num_workers > 0)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = self.split_dataset(split)
        sampler = self._training_order(ds) if shuffle else _unrepeated_sampler(ds)
        collate_fn: Any = collate
        if self._in_workers:
            train = split == "train"
            collate_fn = WorkerTransforms(
                self.normalize,
                self.augmentation if train else None,
                self.cloud_augmentation if train else None,
            )
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_fn,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            prefetch_factor=self.prefetch_factor if self.num_workers > 0 else None,
            drop_last=shuffle and len(ds) > self.batch_size,  # type: ignore[arg-type]
            generator=(
                sampler.generator
                if isinstance(sampler, ResumableSampler)
                else torch.Generator().manual_seed(run_seed())
            ),
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
    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        """Move a batch of the rsfuse contract to ``device``: its tensors and ``present``
        flags (non-blocking: pinned batches overlap the step), ``meta`` as it is.

        Lightning's generic transfer walks every entry of every ``meta`` dict in Python each
        step; anything else than this contract still goes that way.
        """
        if not isinstance(batch, dict):
            return super().transfer_batch_to_device(batch, device, dataloader_idx)
        nb = device.type != "cpu"
        out: dict[str, Any] = {}
        for k, v in batch.items():
            if isinstance(v, torch.Tensor):
                out[k] = v.to(device, non_blocking=nb)
            elif k == "meta":
                out[k] = v
            elif k == "present" and isinstance(v, dict):
                out[k] = {
                    m: f.to(device, non_blocking=nb) if isinstance(f, torch.Tensor) else f
                    for m, f in v.items()
                }
            else:
                out[k] = super().transfer_batch_to_device(v, device, dataloader_idx)
        return out

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        """Paste clouds on raw training batches, normalise every batch on its device,
        augment training batches (unless the loader workers did all three:
        :attr:`transforms_in_workers`)."""
        if self._in_workers:
            return batch
        trainer = getattr(self, "trainer", None)
        training = trainer is not None and trainer.training
        if training and self.cloud_augmentation is not None:
            batch = self.cloud_augmentation(batch)
        batch = self.normalize(batch)
        if training and self.augmentation is not None:
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
            "clouds": self.validity.describe(),
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


def batch_seed(batch: Batch) -> int:
    """A seed for the random transforms of a training batch in a loader worker: SHA-256 of
    the run's seed (:func:`run_seed`) and the batch's sample ids in order, first 8 bytes.

    Different batches, epochs (the permutation changes) and ranks (they read other samples)
    get different draws; the same batch of the same run gets the same draws, also after a
    resume. A batch holding the whole training split in the same order in two epochs would
    repeat its draws (only possible with a split no larger than the batch).
    """
    ids = "|".join(str(m.get("id", "")) for m in batch.get("meta", []))
    digest = hashlib.sha256(f"{run_seed()}|{ids}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def run_seed() -> int:
    """The run's seed (``seed_everything``; Lightning's ``PL_GLOBAL_SEED``), else 0 — the
    same on every rank, as Lightning's own distributed sampler."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


class WorkerTransforms:
    """A loader's ``collate_fn`` that also pastes clouds, normalises and augments (training
    batches), in the worker process:
    ``augmentation(normalize(cloud_augmentation(collate(samples))))``.

    Args:
        normalize: the datamodule's :class:`~rsfuse.data.transforms.Normalize`.
        augmentation: its training augmentation, or None (validation / test loaders).
        cloud_augmentation: its :class:`~rsfuse.data.transforms.RandomClouds` on raw
            training batches, or None.
    """

    def __init__(
        self,
        normalize: Normalize,
        augmentation: BatchAugmentation | None,
        cloud_augmentation: RandomClouds | None = None,
    ) -> None:
        self.normalize = normalize
        self.augmentation = augmentation
        self.cloud_augmentation = cloud_augmentation

    def __call__(self, samples: Any) -> Batch:
        with torch.no_grad():
            batch = collate(samples)
            if self.augmentation is not None or self.cloud_augmentation is not None:
                # the worker's random state is in no checkpoint: draw from one that follows
                # from the run's seed and the batch's samples, so a resumed run (which reads
                # the same batches, see ResumableSampler) draws the same clouds, sensor drops
                # and augmentations
                torch.manual_seed(batch_seed(batch))
            if self.cloud_augmentation is not None:
                batch = self.cloud_augmentation(batch)
            batch = self.normalize(batch)
            return self.augmentation(batch) if self.augmentation is not None else batch


def _unrepeated_sampler(ds: Dataset) -> Sampler | None:
    """Under DDP: a sampler that gives every sample of ``ds`` to exactly one rank, in order
    (rank ``r`` reads ``r, r + W, r + 2W …``; ranks may get one sample more or less), so
    nothing is evaluated twice. None without DDP (the loader reads ``ds`` in order)."""
    from rsfuse.distributed import is_distributed, world_size

    if not is_distributed() or world_size() == 1:
        return None
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

    n = len(ds)  # type: ignore[arg-type]
    if 0 < n < world_size():
        raise DataError(
            f"an evaluation split of {n} sample(s) cannot be shared by {world_size()} "
            "processes (each needs at least one); evaluate with --trainer.devices=1 or "
            "hold out more samples"
        )
    return UnrepeatedDistributedSampler(ds, shuffle=False)
