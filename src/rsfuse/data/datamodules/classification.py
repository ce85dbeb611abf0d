"""BigEarthNet v1 / v2 (reBEN) for multi-label classification, on the device-side pipeline."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

from torch.utils.data import Dataset

from rsfuse.data.bigearthnet import BigEarthNetV1, BigEarthNetV2
from rsfuse.data.datamodules.base import RsfuseDataModule
from rsfuse.data.datamodules.cache import InMemoryCache
from rsfuse.data.transforms import BatchAugmentation, Normalize, resolve_augmentation
from rsfuse.errors import ConfigError
from rsfuse.inputs import InputSpec

log = logging.getLogger(__name__)


def store_dataset(
    store: str, split: str, kwargs: dict[str, Any], s2_dtype: str = "uint16"
) -> Dataset:
    """A :class:`~rsfuse.data.store.StoreDataset` with the GeoTIFF reader's arguments.

    S2 is read as ``s2_dtype`` (default uint16: the stored digital numbers travel to the
    device at half the size and :class:`Normalize` casts them there).
    """
    from rsfuse.data.store import StoreDataset

    if kwargs.get("on_error", "raise") != "raise":
        log.warning("on_error=%r is ignored when reading from a store", kwargs["on_error"])
    return StoreDataset(
        store,
        split=split,
        modalities=kwargs["modalities"],
        s2_bands=kwargs["s2_bands"],
        resampling=kwargs["resampling"],
        include_snow=kwargs["include_snow"],
        include_cloudy=kwargs["include_cloudy"],
        s2_dtype=s2_dtype,
    )


class BigEarthNetDataModule(RsfuseDataModule):
    """BigEarthNet v1 or v2 (reBEN) with S1, S2 or both, for multi-label classification.

    Args:
        root: dataset root in the published layout (see :mod:`rsfuse.data.bigearthnet_layout`).
        version: ``v1`` or ``v2``.
        modalities: sensors to read.
        s2_bands: S2 band subset name or list.
        batch_size: samples per batch (per device).
        num_workers: DataLoader worker processes.
        resampling: how 20 m / 60 m bands reach the 10 m grid.
        include_snow: keep patches flagged with seasonal snow.
        include_cloudy: keep patches flagged with cloud or shadow.
        on_error: ``raise`` on a bad sample, or ``skip`` it and report.
        normalization: ``standardize`` or ``dino-mm`` (see :class:`Normalize`).
        augmentation: batch augmentation of training batches: a
            :class:`~rsfuse.data.transforms.BatchAugmentation`, a recipe name
            (``flips_rot90``, the default: flips and 90° rotations; see
            :data:`~rsfuse.data.transforms.RECIPES`) or ``None`` for none (what the
            self-supervised methods need: they augment their own views).
        cache: keep decoded samples in memory (small datasets; use ``num_workers=0``).
        store: read from a store made by ``rsfuse convert`` (local path or fsspec URL)
            instead of the GeoTIFFs under ``root``; the one line that switches a config
            to the store (:class:`rsfuse.data.store.StoreDataset`, same samples).
        store_s2_dtype: dtype S2 leaves the store's loader workers in: ``uint16`` (default;
            the raw digital numbers, cast to float32 by :class:`Normalize` on the device in
            :meth:`on_after_batch_transfer`, so normalised batches equal the GeoTIFF
            reader's) or ``float32``. With ``cache=True`` the cache holds these raw samples;
            normalisation and augmentation only ever see the normalised float batch.
        train_fraction: fraction of the training split to use (label-fraction experiments,
            DINO-MM: 0.01 / 0.1 / 1), drawn without replacement
            (:func:`rsfuse.data.subsets.label_fraction_indices`).
        fraction_seed: seed of that draw.
    """

    def __init__(
        self,
        root: str,
        version: Literal["v1", "v2"] = "v2",
        modalities: Sequence[str] = ("s1", "s2"),
        s2_bands: str | list[str] = "all",
        batch_size: int = 32,
        num_workers: int = 0,
        resampling: str = "bilinear",
        include_snow: bool = False,
        include_cloudy: bool = False,
        on_error: Literal["raise", "skip"] = "raise",
        normalization: str = "standardize",
        augmentation: BatchAugmentation | str | None = "flips_rot90",
        cache: bool = False,
        store: str | None = None,
        store_s2_dtype: str = "uint16",
        train_fraction: float = 1.0,
        fraction_seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 < train_fraction <= 1.0:
            raise ConfigError(
                f"train_fraction must lie in (0, 1], got {train_fraction}", key="train_fraction"
            )
        self.train_fraction = float(train_fraction)
        self.fraction_seed = int(fraction_seed)
        from rsfuse.data.store import S2_DTYPES

        if store_s2_dtype not in S2_DTYPES:
            raise ConfigError(
                f"store_s2_dtype must be one of {list(S2_DTYPES)}, got {store_s2_dtype!r}",
                key="s2_dtype",
            )
        if version not in ("v1", "v2"):
            raise ConfigError(f"version must be 'v1' or 'v2', got {version!r}", key="version")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}", key="batch_size")
        self.root = root
        self.version = version
        self.input_spec = InputSpec.create(modalities, s2_bands, "L2A")
        self.modalities = self.input_spec.modalities
        self.s2_bands = s2_bands
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.cache = cache
        self.dataset_class = BigEarthNetV1 if version == "v1" else BigEarthNetV2
        self.dataset_kwargs = {
            "modalities": self.modalities,
            "s2_bands": s2_bands,
            "resampling": resampling,
            "include_snow": include_snow,
            "include_cloudy": include_cloudy,
            "on_error": on_error,
        }
        self.s2_band_names = self.input_spec.s2_bands
        self.normalize = Normalize.from_stats(
            self.dataset_class.stats_name, self.s2_band_names, mode=normalization
        )
        self.augmentation = resolve_augmentation(augmentation)
        self.store = store
        self.store_s2_dtype = store_s2_dtype

    def split_dataset(self, split: str) -> Dataset:
        if split not in self.datasets:
            ds: Dataset
            if self.store is not None:
                ds = store_dataset(self.store, split, self.dataset_kwargs, self.store_s2_dtype)
            else:
                ds = self.dataset_class(self.root, split=split, **self.dataset_kwargs)
            if split == "train" and self.train_fraction < 1.0:
                from rsfuse.data.subsets import label_fraction_subset

                ds = label_fraction_subset(ds, self.train_fraction, self.fraction_seed)
            if self.cache:
                ds = InMemoryCache(ds).preload(desc=f"reading {split}")
            self.datasets[split] = ds
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self.split_dataset("train")
            self.split_dataset("val")
        if stage in (None, "fit", "validate"):
            self.split_dataset("val")
        if stage in (None, "test"):
            self.split_dataset("test")
        if stage == "predict":
            self.split_dataset("test")

    @property
    def patch_size(self) -> int:
        """Side of the samples in pixels (BigEarthNet: 120 on the 10 m grid)."""
        return int(self.dataset_class.image_size)

    @property
    def training_patch_size(self) -> int:
        """Side of the training inputs (the patch size: no crop)."""
        return self.patch_size
