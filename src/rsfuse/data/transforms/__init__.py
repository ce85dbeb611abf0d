"""GPU batch transforms: normalisation, multispectral-aware augmentation, RandomSensorDrop.

One module per concern: :mod:`~rsfuse.data.transforms.normalize`,
:mod:`~rsfuse.data.transforms.intensity`, :mod:`~rsfuse.data.transforms.geometric`,
:mod:`~rsfuse.data.transforms.sensor_drop` and :mod:`~rsfuse.data.transforms.pipelines`
(batch augmentation, multi-crop views, the papers' recipes); everything is importable from
``rsfuse.data.transforms``.

Everything here works on a *collated batch* (see :mod:`rsfuse.data.sample`) on whatever device
the batch lives on, the way TorchGeo augments in ``on_after_batch_transfer``: whole-batch tensor
ops, no Python loop over samples, no read-back of tensor values to the host. The usual order is::

    batch = Normalize.from_stats("bigearthnet-v2", s2_bands)(batch)   # raw -> normalised
    batch = BatchAugmentation(geometric=[...], intensity=[...],
                              sensor_drop=RandomSensorDrop())(batch)

Conventions:

* ``s1`` float [B, 2, H, W] (VV, VH dB), ``s2`` float [B, C, H, W], optional ``mask`` int64
  [B, H, W] with 255 = ignore, ``present`` ``{"s1": bool[B], "s2": bool[B]}``.
* After :class:`Normalize`, a modality whose ``present`` flag is ``False`` for a sample is
  exactly zero for that sample (0 = the dataset mean in ``"standardize"`` mode, the bottom of the
  ±2σ window in ``"dino-mm"`` mode), which is also how :class:`RandomSensorDrop` and DINO-MM's
  missing-modality evaluation encode a missing sensor. :class:`BatchAugmentation` keeps such
  samples exactly zero through its intensity ops.
* The intensity augmentations are :class:`kornia.augmentation.IntensityAugmentationBase2D`
  subclasses that work for any channel count and can be used on a plain [B, C, H, W] tensor like
  any kornia augmentation. Their random parameters are drawn by kornia's parameter samplers,
  by default on the CPU (B numbers per call, copied to the device without blocking);
  :class:`BatchAugmentation` keeps them there even when it is moved to a GPU, because kornia's
  Gaussian blur validates ``sigma`` on the host and its crops read box corners on the host, which
  would each force a device synchronisation if the parameters lived on the GPU.
* Geometric augmentations are kornia geometric augmentations (flips, :class:`RandomRot90`,
  :class:`RandomResizedCrop`, or any other) applied by one
  :class:`kornia.augmentation.AugmentationSequential` to the channel-concatenated S1+S2 tensor
  and the mask, so every spatial key of a sample sees the same transform. Masks are resampled
  with nearest neighbour; pixels that a transform brings in from outside the image get 255.
"""

from rsfuse.data.transforms.geometric import RandomResizedCrop, RandomRot90, rot90_per_sample
from rsfuse.data.transforms.intensity import (
    RandomBrightness,
    RandomBrightnessContrast,
    RandomBrightnessOrContrast,
    RandomContrast,
    RandomGaussianBlur,
    RandomGrayscale,
    RandomSolarize,
    blur_kernel_size,
)
from rsfuse.data.transforms.normalize import NORMALIZE_MODES, Normalize, quantile_last_dim
from rsfuse.data.transforms.pipelines import (
    RECIPES,
    BatchAugmentation,
    MultiCropAugmentation,
    classification_augmentation,
    mgsvit_ssl_augmentation,
    resolve_augmentation,
    segmentation_augmentation,
)
from rsfuse.data.transforms.sensor_drop import RandomSensorDrop

__all__ = [
    "NORMALIZE_MODES",
    "RECIPES",
    "BatchAugmentation",
    "MultiCropAugmentation",
    "Normalize",
    "RandomBrightness",
    "RandomBrightnessContrast",
    "RandomBrightnessOrContrast",
    "RandomContrast",
    "RandomGaussianBlur",
    "RandomGrayscale",
    "RandomResizedCrop",
    "RandomRot90",
    "RandomSensorDrop",
    "RandomSolarize",
    "blur_kernel_size",
    "classification_augmentation",
    "mgsvit_ssl_augmentation",
    "quantile_last_dim",
    "resolve_augmentation",
    "rot90_per_sample",
    "segmentation_augmentation",
]
