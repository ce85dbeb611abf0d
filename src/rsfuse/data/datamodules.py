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
        # delegate plot(), classes, skipped … to the wrapped dataset; never dunders such as
        # __getitems__ (the DataLoader would read batches from the source, past the cache)
        if name in ("dataset", "_cache") or name.startswith("__"):
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
        augmentation: BatchAugmentation | None = None,
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
            if split == "train" and self.train_fraction < 1.0:
                from rsfuse.data.subsets import label_fraction_subset

                ds = label_fraction_subset(ds, self.train_fraction, self.fraction_seed)
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

    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: the normalisation (:meth:`Normalize.describe`) and the
        patch size, so ``rsfuse export`` can write a self-describing model bundle."""
        return {"normalization": self.normalize.describe(), "patch_size": self.patch_size}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Nothing to restore: the normalisation follows from the constructor arguments."""

    @property
    def patch_size(self) -> int:
        """Side of the samples in pixels (BigEarthNet: 120 on the 10 m grid)."""
        return int(self.dataset_class.image_size)


# --------------------------------------------------------------------------------------------
# segmentation

#: Dataset names of :class:`SegmentationDataModule`.
SEGMENTATION_DATASETS: tuple[str, ...] = ("dfc2020", "ssl4eo-s12-dw", "ssl4eo-s12-osm", "noldo-s12")


def segmentation_augmentation(
    crop_size: int | None = None,
    rotate_p: float = 0.2,
    spatial_keys: Sequence[str] = (),
    rotation: Literal["any", "right_angles"] = "any",
    mask_keys: Sequence[str] = ("mask_clean",),
) -> BatchAugmentation:
    """CromSS's segmentation augmentation: random crop, flips (p = 0.5), rotations.

    ``rotation="any"`` (the CromSS code's albumentations ``A.Rotate(p=0.2)``): a rotation by
    an angle drawn uniformly in [−90°, 90°] with p = ``rotate_p``, bilinear for images and
    nearest for masks, the corners filled by reflection (albumentations reflects with
    ``BORDER_REFLECT_101``, torch's ``grid_sample`` about the pixel edges: the corner pixels
    differ by one). ``"right_angles"``: a random multiple of 90° (exact, no resampling).

    Args:
        crop_size: random crop (no resize) to this side, e.g. 256 from 264, or None.
        rotate_p: probability of rotating a sample (CromSS: 0.2).
        spatial_keys: extra float [B, K, H, W] keys cropped/flipped with the images.
        rotation: ``any`` (default) or ``right_angles``.
        mask_keys: extra label keys moved like ``mask`` (nearest; default ``mask_clean``).

    Returns:
        A :class:`BatchAugmentation`; ``mask`` follows the images, 255 where padded.
    """
    import kornia.augmentation as K

    from rsfuse.data.transforms import RandomRot90

    if rotation not in ("any", "right_angles"):
        raise ConfigError(
            f"rotation must be 'any' or 'right_angles', got {rotation!r}", key="rotation"
        )
    geometric: list[Any] = []
    if crop_size is not None:
        geometric.append(K.RandomCrop((int(crop_size), int(crop_size))))
    geometric += [K.RandomHorizontalFlip(p=0.5), K.RandomVerticalFlip(p=0.5)]
    if rotation == "any":
        geometric.append(K.RandomAffine(degrees=90.0, padding_mode="reflection", p=rotate_p))
    else:
        geometric.append(RandomRot90(p=rotate_p))
    return BatchAugmentation(geometric=geometric, spatial_keys=spatial_keys, mask_keys=mask_keys)


class SegmentationDataModule(LightningDataModule):
    """Semantic segmentation datasets (DFC2020, SSL4EO-S12@DW / @OSM, NoLDO-S12 pretraining).

    Splits per dataset (``val_fraction`` of the training samples, drawn with ``split_seed``,
    are held out for validation where the dataset has no validation split):

    ================== ======================== ================ =======================
    dataset            train                    val              test
    ================== ======================== ================ =======================
    ``dfc2020``        ``validation`` set       held out         ``test`` set
    ``ssl4eo-s12-dw``  ``train``                held out         ``test``
    ``ssl4eo-s12-osm`` ``train``                held out         ``test``
    ``noldo-s12``      SSL4EO-S12@NoL           held out (1 %    SSL4EO-S12@DW ``test``
                       (noisy labels)           in CromSS)       when present, else val
    ================== ======================== ================ =======================

    Batches: ``s1`` [B, 2, H, W], ``s2`` [B, C, H, W], ``mask`` int64 [B, H, W] (255 =
    unlabelled), ``present``, optional ``season`` [B] and ``mask_clean`` [B, H, W] (synthetic
    NoLDO-S12), ``meta``. Normalisation (``stats``) and, for training batches, augmentation run
    on the device in :meth:`on_after_batch_transfer`.

    Args:
        dataset: one of :data:`SEGMENTATION_DATASETS`.
        root: dataset root in the published layout.
        modalities: sensors to read.
        s2_bands: S2 band subset name or list (L1C).
        s2_product: S2 product; these datasets are ``L1C``.
        season: NoLDO-S12 season: ``"random"`` (CromSS) or 0–3.
        batch_size: samples per batch (per device).
        num_workers: DataLoader worker processes.
        crop_size: random training crop side (CromSS: 256 from 264), or None.
        stats: statistics name in :mod:`rsfuse.bands` (default ``ssl4eo-s12-l1c``).
        augment: augment training batches (crop, flips, rotations with p = 0.2).
        rotation: ``any`` angle in ±90° (CromSS code, default) or ``right_angles``; see
            :func:`segmentation_augmentation`.
        augmentation: a custom training :class:`BatchAugmentation` (overrides ``augment``).
        normalization: ``standardize`` or ``dino-mm``.
        format: NoLDO-S12 on-disk form: ``auto``, ``lmdb`` or ``geotiff``.
        patch_size: raster side the files must have (defaults: 264 NoLDO, 256 DFC2020).
        val_fraction: training samples held out for validation.
        split_seed: seed of the held-out draw.
        seed: seed of the random season (see :class:`~rsfuse.data.ssl4eo.
            SegmentationDatasetBase`).
        on_error: ``raise`` or ``skip`` bad samples.
        cache: keep decoded samples in memory (small datasets, ``num_workers=0``).
        store: read from a store made by ``rsfuse convert --dataset <dataset>`` (local path
            or fsspec URL) instead of the files under ``root``; the one line that switches
            a config to the store (:class:`~rsfuse.data.store_segmentation.
            SegmentationStoreDataset`: the same samples, season draw and batches).

    Raises:
        ConfigError: unknown dataset, product, season or bad numbers.
    """

    def __init__(
        self,
        dataset: str = "dfc2020",
        root: str = "data",
        modalities: Sequence[str] = ("s1", "s2"),
        s2_bands: str | list[str] = "all",
        s2_product: str = "L1C",
        season: int | str = "random",
        batch_size: int = 16,
        num_workers: int = 0,
        crop_size: int | None = None,
        stats: str | None = None,
        augment: bool = True,
        rotation: Literal["any", "right_angles"] = "any",
        augmentation: BatchAugmentation | None = None,
        normalization: str = "standardize",
        format: str = "auto",
        patch_size: int | None = None,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        seed: int | None = None,
        on_error: Literal["raise", "skip"] = "raise",
        cache: bool = False,
        store: str | None = None,
    ) -> None:
        super().__init__()
        if dataset not in SEGMENTATION_DATASETS:
            raise ConfigError(
                f"unknown dataset {dataset!r}; expected one of {list(SEGMENTATION_DATASETS)}",
                key="dataset",
            )
        if s2_product != "L1C":
            raise ConfigError(f"{dataset} has S2 L1C only, got {s2_product!r}", key="s2_product")
        if season == "all":
            raise ConfigError(
                "season='all' gives [4, C, H, W] samples; use 'random' or 0–3", key="season"
            )
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}", key="batch_size")
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}", "val_fraction")
        self.dataset = dataset
        self.rotation = rotation
        self.root = root
        self.modalities = bands.check_modalities(modalities)
        self.s2_bands = s2_bands
        self.s2_band_names = bands.s2_bands(s2_bands, "L1C") if "s2" in self.modalities else ()
        self.season = season
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.crop_size = crop_size
        self.format = format
        self.patch_size = patch_size
        self.val_fraction = float(val_fraction)
        self.split_seed = int(split_seed)
        self.seed = seed
        self.on_error = on_error
        self.cache = cache
        self.store = store
        self.stats = stats or "ssl4eo-s12-l1c"
        self.normalize = Normalize.from_stats(self.stats, self.s2_band_names, mode=normalization)
        if augmentation is not None:
            self.augmentation: BatchAugmentation | None = augmentation
        elif augment:
            self.augmentation = segmentation_augmentation(crop_size, rotation=rotation)
        else:
            self.augmentation = None
        self.datasets: dict[str, Dataset] = {}

    # ------------------------------------------------------------------ datasets
    @property
    def classes(self) -> tuple[str, ...]:
        """Class names of ``mask``."""
        from rsfuse.data.classes import DFC2020, DW9, OSM13

        return {"dfc2020": DFC2020, "ssl4eo-s12-osm": OSM13}.get(self.dataset, DW9)

    @property
    def num_classes(self) -> int:
        """Number of classes of ``mask``."""
        return len(self.classes)

    def _source(self, split: str) -> Dataset:
        """The dataset of a published split: ``train`` (before hold-out) or ``test``."""
        from rsfuse.data.dfc2020 import DFC2020Dataset
        from rsfuse.data.noldo import SSL4EOS12DW, SSL4EOS12OSM, NoLDOS12

        common: dict[str, Any] = {
            "modalities": self.modalities,
            "s2_bands": self.s2_bands,
            "on_error": self.on_error,
        }
        if self.store is not None:
            from rsfuse.data.store_segmentation import SegmentationStoreDataset

            return SegmentationStoreDataset(
                self.store,
                split="validation" if self.dataset == "dfc2020" and split == "train" else split,
                season=self.season,
                seed=self.seed,
                dataset=self.dataset,
                **common,
            )
        if self.dataset == "dfc2020":
            kw = {} if self.patch_size is None else {"patch_size": self.patch_size}
            return DFC2020Dataset(
                self.root, split="validation" if split == "train" else "test", **common, **kw
            )
        if self.dataset in ("ssl4eo-s12-dw", "ssl4eo-s12-osm"):
            cls = SSL4EOS12DW if self.dataset == "ssl4eo-s12-dw" else SSL4EOS12OSM
            return cls(self.root, split=split, format=self.format, seed=self.seed, **common)
        if split == "test":
            return SSL4EOS12DW(self.root, split="test", format=self.format, **common)
        kw = {} if self.patch_size is None else {"patch_size": self.patch_size}
        return NoLDOS12(
            self.root, format=self.format, season=self.season, seed=self.seed, **common, **kw
        )

    def _holdout(self, n: int) -> tuple[list[int], list[int]]:
        import numpy as np

        n_val = round(n * self.val_fraction)
        if self.val_fraction > 0:
            n_val = min(max(1, n_val), n - 1)
        perm = np.random.default_rng(self.split_seed).permutation(n)
        return sorted(perm[n_val:].tolist()), sorted(perm[:n_val].tolist())

    def _dataset(self, split: str) -> Dataset:
        from torch.utils.data import Subset

        if split in self.datasets:
            return self.datasets[split]
        ds: Dataset
        if split in ("train", "val"):
            full = self._source("train")
            train_idx, val_idx = self._holdout(len(full))  # type: ignore[arg-type]
            self.datasets["train"] = Subset(full, train_idx)
            self.datasets["val"] = Subset(full, val_idx) if val_idx else Subset(full, train_idx)
            ds = self.datasets[split]
        else:
            from rsfuse.errors import DataError

            try:
                ds = self._source("test")
            except DataError:
                if self.dataset != "noldo-s12":
                    raise
                log.info("no SSL4EO-S12@DW test split under %s; testing on val", self.root)
                ds = self._dataset("val")
        if self.cache:
            ds = InMemoryCache(ds).preload(desc=f"reading {split}")
        self.datasets[split] = ds
        return ds

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate"):
            self._dataset("train")
            self._dataset("val")
        if stage in (None, "test", "predict"):
            self._dataset("test")

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        ds = self._dataset(split)
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

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        """Normalise every batch on its device; augment training batches (``mask`` and
        ``mask_clean`` move with the images: nearest neighbour, 255 where padded)."""
        batch = self.normalize(batch)
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.training and self.augmentation is not None:
            batch = self.augment(batch)
        return batch

    def augment(self, batch: Batch) -> Batch:
        """Apply the training augmentation to a (normalised) batch."""
        assert self.augmentation is not None
        return self.augmentation(batch)

    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: the normalisation (:meth:`Normalize.describe`), the
        training patch size and the class names, so ``rsfuse export`` can write a
        self-describing model bundle."""
        return {
            "normalization": self.normalize.describe(),
            "patch_size": self.training_patch_size,
            "class_names": list(self.classes),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Nothing to restore: the normalisation follows from the constructor arguments."""

    @property
    def training_patch_size(self) -> int:
        """Side of the training inputs: the crop size, else the files' patch size."""
        if self.crop_size is not None:
            return int(self.crop_size)
        if self.patch_size is not None:
            return int(self.patch_size)
        from rsfuse.data.dfc2020 import PATCH_SIZE as DFC_PATCH
        from rsfuse.data.ssl4eo import PATCH_SIZE as NOL_PATCH

        return int(DFC_PATCH if self.dataset == "dfc2020" else NOL_PATCH)
