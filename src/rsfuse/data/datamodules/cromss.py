"""NoLDO-S12 pretraining batches for CromSS: noisy labels with their spatial-temporal prior."""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from rsfuse.data.datamodules.segmentation import SegmentationDataModule
from rsfuse.data.label_smoothing import (
    PRIOR_KEY,
    PriorKind,
    SeasonalLabelPrior,
    SpatialTemporalLabelSmoothing,
)
from rsfuse.data.transforms import segmentation_augmentation
from rsfuse.errors import ConfigError


class CromSSDataModule(SegmentationDataModule):
    """NoLDO-S12 pretraining data with CromSS's label prior (``label_prior`` in batches).

    A :class:`~rsfuse.data.datamodules.SegmentationDataModule` on ``noldo-s12`` whose
    training / validation samples come from :class:`SeasonalLabelPrior` (one random season
    per read, the prior of Eq. 14–15 beside it); the training augmentation (crop, flips,
    rotations) transforms ``label_prior`` and ``mask_clean`` with the images.

    Args:
        prior: ``"spatial"``, ``"temporal"``, ``"spatial-temporal"`` or ``"none"`` (no prior
            key: plain one-season batches).
        sigma: Gaussian σ of the prior (3).
        **kwargs: :class:`SegmentationDataModule` arguments (``dataset`` must be noldo-s12).
    """

    def __init__(
        self,
        prior: PriorKind = "spatial-temporal",
        sigma: float = 3.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dataset", "noldo-s12")
        if kwargs["dataset"] != "noldo-s12":
            raise ConfigError("CromSSDataModule reads noldo-s12 only", key="dataset")
        super().__init__(**kwargs)
        self.prior = prior
        self.smoothing = SpatialTemporalLabelSmoothing(
            self.num_classes, alpha=0.0 if prior == "none" else 0.15, prior=prior, sigma=sigma
        )
        if prior != "none" and self.cache:
            raise ConfigError(
                "cache=True would freeze the random season of every sample; use cache=False",
                key="cache",
            )
        if self.augmentation is not None and kwargs.get("augmentation", "cromss") == "cromss":
            # CromSS's recipe, with the label prior moved together with the images
            self.augmentation = segmentation_augmentation(
                self.crop_size, spatial_keys=(PRIOR_KEY,), rotation=self.rotation
            )
        elif self.augmentation is not None:
            geometric = prior != "none" and self.augmentation.geometric is not None
            if geometric and PRIOR_KEY not in self.augmentation.spatial_keys:
                raise ConfigError(
                    f"the augmentation must list '{PRIOR_KEY}' in spatial_keys so the "
                    "label prior is cropped / flipped / rotated with the images",
                    key="augmentation",
                )

    def _source(self, split: str) -> Dataset:
        from rsfuse.data.noldo import NoLDOS12

        if split == "test" or self.prior == "none":
            return super()._source(split)
        kw = {} if self.patch_size is None else {"patch_size": self.patch_size}
        full = NoLDOS12(
            self.root,
            format=self.format,
            season="all",
            modalities=self.modalities,
            s2_bands=self.s2_bands,
            on_error=self.on_error,
            **kw,
        )
        return SeasonalLabelPrior(full, self.smoothing, seed=self.seed)
