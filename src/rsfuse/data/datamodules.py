"""LightningDataModules: dataset → DataLoader, and normalisation/augmentation on the device.

Per-sample work in the loader workers is only file reading. Normalisation and augmentation
run on whole batches after the transfer to the accelerator
(:meth:`on_after_batch_transfer`), as TorchGeo does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from rsfuse import bands
from rsfuse.data.bigearthnet import BigEarthNetV1, BigEarthNetV2
from rsfuse.data.sample import Batch, Sample, collate
from rsfuse.data.transforms import BatchAugmentation, Normalize, classification_augmentation
from rsfuse.errors import ConfigError

log = logging.getLogger(__name__)


class InMemoryCache(Dataset):
    """Keeps every decoded sample of a dataset in memory after its first read.

    Meant for small datasets (demo, tests) read with ``num_workers=0``: each loader worker
    would hold its own copy. :meth:`preload` fills the cache with threads (rasterio
    releases the GIL while decoding).
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._cache: dict[int, Sample] = {}

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Sample:
        if index not in self._cache:
            self._cache[index] = self.dataset[index]
        return self._cache[index]

    def preload(self, threads: int = 4, desc: str = "caching") -> InMemoryCache:
        """Read every sample once, in ``threads`` threads, with a progress bar."""
        todo = [i for i in range(len(self)) if i not in self._cache]
        with ThreadPoolExecutor(max(1, threads)) as pool:
            for i, s in tqdm(
                zip(todo, pool.map(self.dataset.__getitem__, todo)),
                total=len(todo),
                desc=desc,
                leave=False,
            ):
                self._cache[i] = s
        return self

    def __getattr__(self, name: str) -> Any:
        # delegate plot(), classes, skipped … to the wrapped dataset
        if name in ("dataset", "_cache"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def _store_dataset(
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


class BigEarthNetDataModule(LightningDataModule):
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
        augmentation: batch augmentation for training; default flips + 90° rotations.
        cache: keep decoded samples in memory (small datasets; use ``num_workers=0``).
        store: read from a store made by ``rsfuse convert`` (local path or fsspec URL)
            instead of the GeoTIFFs under ``root``; the one line that switches a config
            to the store (:class:`rsfuse.data.store.StoreDataset`, same samples).
        store_s2_dtype: dtype S2 leaves the store's loader workers in: ``uint16`` (default;
            the raw digital numbers, cast to float32 by :class:`Normalize` on the device in
            :meth:`on_after_batch_transfer`, so normalised batches equal the GeoTIFF
            reader's) or ``float32``. With ``cache=True`` the cache holds these raw samples;
            normalisation and augmentation only ever see the normalised float batch.
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
        augmentation: BatchAugmentation | None = None,
        cache: bool = False,
        store: str | None = None,
        store_s2_dtype: str = "uint16",
    ) -> None:
        super().__init__()
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
        self.modalities = bands.check_modalities(modalities)
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
        self.s2_band_names = bands.s2_bands(s2_bands, "L2A") if "s2" in self.modalities else ()
        self.normalize = Normalize.from_stats(
            self.dataset_class.stats_name, self.s2_band_names, mode=normalization
        )
        self.augmentation = (
            augmentation if augmentation is not None else (classification_augmentation())
        )
        self.datasets: dict[str, Dataset] = {}
        self.store = store
        self.store_s2_dtype = store_s2_dtype

    def _dataset(self, split: str) -> Dataset:
        if split not in self.datasets:
            ds: Dataset
            if self.store is not None:
                ds = _store_dataset(self.store, split, self.dataset_kwargs, self.store_s2_dtype)
            else:
                ds = self.dataset_class(self.root, split=split, **self.dataset_kwargs)
            if self.cache:
                ds = InMemoryCache(ds).preload(desc=f"reading {split}")
            self.datasets[split] = ds
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self._dataset("train")
            self._dataset("val")
        if stage in (None, "fit", "validate"):
            self._dataset("val")
        if stage in (None, "test"):
            self._dataset("test")
        if stage == "predict":
            self._dataset("test")

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self._dataset(split),
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate,
            persistent_workers=self.num_workers > 0,
            pin_memory=False,
            drop_last=shuffle and len(self._dataset(split)) > self.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        """Normalise every batch on its device; augment training batches."""
        batch = self.normalize(batch)
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.training and self.augmentation is not None:
            batch = self.augmentation(batch)
        return batch
