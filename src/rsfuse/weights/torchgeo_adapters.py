"""Interoperation with TorchGeo datasets, datamodules and trainers.

TorchGeo and rsfuse stack the same bands differently:

* rsfuse samples keep the sensors apart: ``s1`` = ``VV, VH`` (always), ``s2`` = bands in
  registry order (:mod:`rsfuse.data.sample`); early fusion stacks S2 first, then ``VV, VH``;
* TorchGeo's ``BigEarthNet`` (v1) returns one ``image``: with ``bands="all"`` the S1 files
  sorted by path, then the S2 files sorted with ``sort_sentinel2_bands``
  (torchgeo/datasets/bigearthnet.py ``_load_paths``) — so ``VH, VV, B01 … B08, B8A, B09,
  B11, B12``: S1 first and **VH before VV** (the class docstring says ``VV, VH``; the file
  sort decides). ``BigEarthNetV2`` returns ``image_s1`` (``VH, VV``, same sort) and
  ``image_s2``; ``SSL4EOS12`` returns one sensor per split, S1 as ``VV, VH`` (its
  ``metadata`` band list), S2 ``B1 … B12`` (L1C 13, L2A 12), ``seasons`` stacked.

This module converts both ways:

* :class:`TorchGeoDataModule` wraps an rsfuse datamodule so a TorchGeo trainer
  (``ClassificationTask``, ``MultiLabelClassificationTask``, ``SemanticSegmentationTask``)
  trains on it: each batch, after rsfuse's normalisation and augmentation, becomes
  ``{"image": [B, C, H, W] in TorchGeo's channel order, "label" (long multi-hot) or "mask"}``;
* :class:`FromTorchGeo` wraps a TorchGeo ``BigEarthNet``, ``BigEarthNetV2`` or
  ``SSL4EOS12`` dataset so rsfuse's tasks read it: samples split into ``s1`` (``VV, VH``) and
  ``s2`` (registry order), labels mapped to rsfuse's 19 classes by name;
  :class:`FromTorchGeoDataModule` serves such datasets with rsfuse's collate and
  normalisation.

TorchGeo is optional (the ``[bench]`` extra): nothing here imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from rsfuse import bands as registry
from rsfuse.data.classes import BEN19
from rsfuse.data.sample import Batch, Sample, collate
from rsfuse.data.transforms import Normalize
from rsfuse.errors import ConfigError, DataError
from rsfuse.weights.channels import canonical_bands

__all__ = [
    "TORCHGEO_BIGEARTHNET_ORDER",
    "FromTorchGeo",
    "FromTorchGeoDataModule",
    "TorchGeoDataModule",
    "stack_image",
    "torchgeo_channels",
]

#: TorchGeo ``BigEarthNet(bands="all")`` channel order (see the module docstring).
TORCHGEO_BIGEARTHNET_ORDER: tuple[str, ...] = ("VH", "VV", *registry.S2_L2A_ORDER)


def torchgeo_channels(
    modalities: Sequence[str], s2_bands: Sequence[str], order: str = "torchgeo"
) -> tuple[str, ...]:
    """Channel names of the stacked ``image``.

    Args:
        modalities: sensors in the batch.
        s2_bands: the batch's S2 bands, in its order.
        order: ``torchgeo`` (S1 ``VH, VV`` first, then S2 — TorchGeo's BigEarthNet stack) or
            ``rsfuse`` (S2 first, then ``VV, VH`` — rsfuse's early fusion, DINO-MM).

    Raises:
        ConfigError: unknown order.
    """
    mods = registry.check_modalities(modalities)
    s2 = tuple(s2_bands) if "s2" in mods else ()
    if order == "torchgeo":
        s1 = ("VH", "VV") if "s1" in mods else ()
        return (*s1, *s2)
    if order == "rsfuse":
        return registry.early_fusion_channels(mods, s2)
    raise ConfigError(f"unknown channel order {order!r}; expected torchgeo or rsfuse", "order")


def stack_image(batch: Batch, channels: Sequence[str], s2_bands: Sequence[str]) -> Tensor:
    """Stack a batch's ``s1`` / ``s2`` into one tensor in the order of ``channels``.

    Args:
        batch: rsfuse batch (``s1`` [B, 2, H, W] as VV, VH; ``s2`` [B, C, H, W]).
        channels: output channel names.
        s2_bands: names of the batch's S2 channels, in order.

    Returns:
        [B, len(channels), H, W].

    Raises:
        DataError: a channel the batch does not have.
    """
    index: dict[str, tuple[str, int]] = {}
    if "s1" in batch:
        index.update({b: ("s1", i) for i, b in enumerate(registry.S1_ORDER)})
    if "s2" in batch:
        if batch["s2"].shape[1] != len(s2_bands):
            raise DataError(f"s2 has {batch['s2'].shape[1]} channels but {len(s2_bands)} names")
        index.update({b: ("s2", i) for i, b in enumerate(s2_bands)})
    missing = [c for c in channels if c not in index]
    if missing:
        raise DataError(f"the batch has no channel(s) {missing} (has {sorted(index)})")
    return torch.stack([batch[index[c][0]][:, index[c][1]] for c in channels], dim=1)


class TorchGeoDataModule(LightningDataModule):
    """An rsfuse datamodule seen by TorchGeo trainers.

    Delegates the datasets and loaders to ``datamodule``; after its normalisation and
    augmentation (its ``on_after_batch_transfer``), each batch becomes
    ``{"image", "label" | "mask"}`` in TorchGeo's conventions.

    Args:
        datamodule: an rsfuse datamodule (``BigEarthNetDataModule``,
            ``SegmentationDataModule``, …).
        order: ``torchgeo`` (default) or ``rsfuse`` channel order (:func:`torchgeo_channels`).

    Attributes:
        channels: the ``image`` channel names in order.
    """

    def __init__(self, datamodule: LightningDataModule, order: str = "torchgeo") -> None:
        super().__init__()
        self.inner = datamodule
        mods = getattr(datamodule, "modalities", None)
        if mods is None:
            raise ConfigError(f"{type(datamodule).__name__} has no 'modalities'", "datamodule")
        self.s2_band_names = tuple(getattr(datamodule, "s2_band_names", ()))
        self.channels = torchgeo_channels(mods, self.s2_band_names, order)

    def prepare_data(self) -> None:
        self.inner.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self.inner.setup(stage)

    def train_dataloader(self) -> Any:
        return self.inner.train_dataloader()

    def val_dataloader(self) -> Any:
        return self.inner.val_dataloader()

    def test_dataloader(self) -> Any:
        return self.inner.test_dataloader()

    def predict_dataloader(self) -> Any:
        return self.inner.predict_dataloader()

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> dict[str, Tensor]:
        """rsfuse normalisation / augmentation, then TorchGeo's keys."""
        self.inner.trainer = self.trainer
        batch = self.inner.on_after_batch_transfer(batch, dataloader_idx)
        out = {"image": stack_image(batch, self.channels, self.s2_band_names)}
        if "label" in batch:
            out["label"] = batch["label"].long()  # TorchGeo's datasets give long multi-hot
        if "mask" in batch:
            out["mask"] = batch["mask"]
        return out

    def state_dict(self) -> dict[str, Any]:
        return {**self.inner.state_dict(), "channels": list(self.channels)}


def _ben19_index(torchgeo_names: Sequence[str]) -> Tensor:
    """Positions in rsfuse's ``BEN19`` of TorchGeo's 19 class names (by name)."""
    pos = {n: i for i, n in enumerate(BEN19)}
    missing = [n for n in torchgeo_names if n not in pos]
    if missing or len(torchgeo_names) != len(BEN19):
        raise DataError(
            f"TorchGeo's 19 classes {missing or list(torchgeo_names)} differ from rsfuse's"
        )
    return torch.tensor([pos[n] for n in torchgeo_names])


class FromTorchGeo(Dataset):
    """A TorchGeo ``BigEarthNet``, ``BigEarthNetV2`` or ``SSL4EOS12`` dataset as rsfuse
    samples.

    ``s1`` comes out as ``VV, VH`` (TorchGeo's BigEarthNet readers give ``VH, VV``), ``s2``
    in registry order, ``label`` float32 in rsfuse's 19-class order (mapped by name),
    ``present`` flags, ``meta["id"]`` = ``"torchgeo:<index>"``.

    Args:
        dataset: the TorchGeo dataset (``BigEarthNet`` with ``bands`` ``all`` / ``s1`` /
            ``s2`` and ``num_classes=19``; ``BigEarthNetV2``; ``SSL4EOS12`` with
            ``seasons=1``).

    Raises:
        ConfigError: an unsupported dataset class or setting.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        name = type(dataset).__name__
        self.kind = name
        if name == "BigEarthNet":
            if getattr(dataset, "num_classes", 19) != 19:
                raise ConfigError("use TorchGeo's BigEarthNet with num_classes=19", "dataset")
            b = dataset.bands
            layouts = {"all": (("s1", 2), ("s2", 12)), "s1": (("s1", 2),), "s2": (("s2", 12),)}
            self.layout = layouts[b]
            self.s1_names = ("VH", "VV")
            self.s2_names = registry.S2_L2A_ORDER
            self.label_index = _ben19_index(type(dataset).class_sets[19])
        elif name == "BigEarthNetV2":
            self.layout = ()
            self.s1_names = ("VH", "VV")
            self.s2_names = registry.S2_L2A_ORDER
            self.label_index = _ben19_index(type(dataset).class_set)
        elif name == "SSL4EOS12":
            if getattr(dataset, "seasons", 1) != 1:
                raise ConfigError("use TorchGeo's SSL4EOS12 with seasons=1", "dataset")
            names = canonical_bands(dataset.bands)
            sensor = "s1" if dataset.split == "s1" else "s2"
            self.layout = ((sensor, len(names)),)
            self.s1_names = names if sensor == "s1" else ("VV", "VH")
            self.s2_names = names if sensor == "s2" else ()
            self.label_index = None
        else:
            raise ConfigError(
                f"unsupported TorchGeo dataset {name}; expected BigEarthNet, BigEarthNetV2 or "
                "SSL4EOS12",
                key="dataset",
            )

    def __len__(self) -> int:
        return len(self.dataset)

    def _s1(self, x: Tensor) -> Tensor:
        return x[[self.s1_names.index(b) for b in registry.S1_ORDER]].float()

    def _s2(self, x: Tensor) -> Tensor:
        order = {b: i for i, b in enumerate(registry.S2_L1C_ORDER)}
        idx = sorted(range(len(self.s2_names)), key=lambda i: order[self.s2_names[i]])
        return x[idx].float()

    def __getitem__(self, index: int) -> Sample:
        raw = self.dataset[index]
        sample: Sample = {}
        if self.kind == "BigEarthNetV2":
            parts = {k[len("image_") :]: v for k, v in raw.items() if k.startswith("image_")}
            if "image" in raw:
                parts[self.dataset.bands] = raw["image"]
        else:
            parts, start = {}, 0
            for sensor, n in self.layout:
                parts[sensor] = raw["image"][start : start + n]
                start += n
            if start != raw["image"].shape[0]:
                raise DataError(
                    f"TorchGeo sample has {raw['image'].shape[0]} channels, expected {start}",
                    sample=str(index),
                )
        if "s1" in parts:
            sample["s1"] = self._s1(parts["s1"])
        if "s2" in parts:
            sample["s2"] = self._s2(parts["s2"])
        if "label" in raw and self.label_index is not None:
            label = torch.zeros(len(BEN19), dtype=torch.float32)
            label[self.label_index] = raw["label"].float()
            sample["label"] = label
        sample["present"] = {m: m in sample for m in registry.MODALITIES}
        sample["meta"] = {"id": f"torchgeo:{index}"}
        return sample

    @property
    def s2_bands(self) -> tuple[str, ...]:
        """S2 bands of the samples, in order."""
        order = {b: i for i, b in enumerate(registry.S2_L1C_ORDER)}
        return tuple(sorted(self.s2_names, key=order.__getitem__))


class FromTorchGeoDataModule(LightningDataModule):
    """TorchGeo datasets served to rsfuse tasks: rsfuse collate, normalisation on the device.

    Args:
        train, val, test: :class:`FromTorchGeo` datasets (any may be ``None``).
        stats: statistics name in :mod:`rsfuse.bands` (e.g. ``bigearthnet-v1``).
        normalization: ``standardize`` or ``dino-mm``.
        batch_size: samples per batch.
        num_workers: DataLoader workers.
        patch_size: sample side in pixels (recorded for bundles).
    """

    def __init__(
        self,
        train: FromTorchGeo | None = None,
        val: FromTorchGeo | None = None,
        test: FromTorchGeo | None = None,
        stats: str = "bigearthnet-v1",
        normalization: str = "standardize",
        batch_size: int = 32,
        num_workers: int = 0,
        patch_size: int = 120,
    ) -> None:
        super().__init__()
        self.splits = {"train": train, "val": val, "test": test}
        first = next((d for d in self.splits.values() if d is not None), None)
        if first is None:
            raise ConfigError("give at least one dataset", key="train")
        probe = first[0]
        self.modalities = tuple(m for m in registry.MODALITIES if m in probe)
        self.s2_band_names = first.s2_bands if "s2" in probe else ()
        self.normalize = Normalize.from_stats(
            stats, self.s2_band_names, mode=normalization, s1="s1" in self.modalities
        )
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.patch_size = patch_size

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = self.splits[split]
        if ds is None:
            raise ConfigError(f"no {split} dataset was given", key=split)
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        return self.normalize(batch)

    def state_dict(self) -> dict[str, Any]:
        return {"normalization": self.normalize.describe(), "patch_size": self.patch_size}
