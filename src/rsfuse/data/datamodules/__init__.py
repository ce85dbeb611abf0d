"""LightningDataModules: dataset → DataLoader, and normalisation/augmentation on the device.

Per-sample work in the loader workers is only file reading. Normalisation and augmentation
run on whole batches after the transfer to the accelerator
(``on_after_batch_transfer``), as TorchGeo does. Each datamodule holds the
:class:`~rsfuse.inputs.InputSpec` of what it reads (sensors, S2 bands in order), which the
model compares with its own when a run starts.
"""

from rsfuse.data.datamodules.cache import InMemoryCache
from rsfuse.data.datamodules.classification import BigEarthNetDataModule
from rsfuse.data.datamodules.cromss import CromSSDataModule
from rsfuse.data.datamodules.segmentation import SEGMENTATION_DATASETS, SegmentationDataModule

__all__ = [
    "SEGMENTATION_DATASETS",
    "BigEarthNetDataModule",
    "CromSSDataModule",
    "InMemoryCache",
    "SegmentationDataModule",
]
