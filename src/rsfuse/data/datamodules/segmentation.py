"""Semantic-segmentation datasets (DFC2020, SSL4EO-S12@DW / @OSM, NoLDO-S12 pretraining)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

from torch.utils.data import Dataset

from rsfuse.data.datamodules.base import RsfuseDataModule
from rsfuse.data.datamodules.cache import InMemoryCache
from rsfuse.data.transforms import (
    BatchAugmentation,
    Normalize,
    resolve_augmentation,
    segmentation_augmentation,
)
from rsfuse.errors import ConfigError
from rsfuse.inputs import InputSpec

log = logging.getLogger(__name__)

#: Dataset names of :class:`SegmentationDataModule`.
SEGMENTATION_DATASETS: tuple[str, ...] = ("dfc2020", "ssl4eo-s12-dw", "ssl4eo-s12-osm", "noldo-s12")


class SegmentationDataModule(RsfuseDataModule):
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
        augment: ``False`` turns every training augmentation off (same as
            ``augmentation=None``).
        rotation: ``any`` angle in ±90° (CromSS code, default) or ``right_angles``; see
            :func:`~rsfuse.data.transforms.segmentation_augmentation`.
        augmentation: augmentation of training batches: ``cromss`` (default: CromSS's
            crop to ``crop_size``, flips, rotations with p = 0.2), another recipe name, a
            :class:`~rsfuse.data.transforms.BatchAugmentation`, or ``None`` for none.
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
        augmentation: BatchAugmentation | str | None = "cromss",
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
        self.input_spec = InputSpec.create(modalities, s2_bands, "L1C")
        self.modalities = self.input_spec.modalities
        self.s2_bands = s2_bands
        self.s2_band_names = self.input_spec.s2_bands
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
        self.augmentation: BatchAugmentation | None
        if not augment or augmentation is None:
            self.augmentation = None
        elif augmentation == "cromss":
            self.augmentation = segmentation_augmentation(crop_size, rotation=rotation)
        else:
            self.augmentation = resolve_augmentation(augmentation)

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

    def split_dataset(self, split: str) -> Dataset:
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
                ds = self.split_dataset("val")
        if self.cache:
            ds = InMemoryCache(ds).preload(desc=f"reading {split}")
        self.datasets[split] = ds
        return ds

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate"):
            self.split_dataset("train")
            self.split_dataset("val")
        if stage in (None, "test", "predict"):
            self.split_dataset("test")

    def extra_state(self) -> dict[str, Any]:
        """Checkpoints also remember the class names of ``mask``."""
        return {"class_names": list(self.classes)}

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
