"""Augmentation pipelines of collated batches: joint geometry, intensity, sensor drop.

:class:`BatchAugmentation` applies one geometry to every spatial key of a sample, intensity
ops per sensor (or on the stacked channels) and a sensor drop; :class:`MultiCropAugmentation`
draws DINO's global and local views. The factories build the recipes of the papers, and
:data:`RECIPES` names the ones a config can ask for by name (``augmentation: flips_rot90``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import kornia.augmentation as K
import torch
from torch import nn

from rsfuse.data.sample import IGNORE_INDEX, Batch
from rsfuse.data.transforms.batch import IMAGE_KEYS, copy_batch, presence, zero_absent
from rsfuse.data.transforms.geometric import RandomResizedCrop, RandomRot90
from rsfuse.data.transforms.intensity import (
    RandomBrightnessContrast,
    RandomBrightnessOrContrast,
    RandomGaussianBlur,
    RandomGrayscale,
    RandomSolarize,
)
from rsfuse.data.transforms.sensor_drop import RandomSensorDrop
from rsfuse.errors import ConfigError, DataError


class BatchAugmentation(nn.Module):
    """Augment a collated batch: joint geometry, per-sensor intensity, then sensor drop.

    1. ``geometric`` ops run as one :class:`kornia.augmentation.AugmentationSequential` on the
       channel-concatenated ``s1`` + ``s2`` (+ ``spatial_keys``) tensor and on the mask, so all
       spatial keys of a sample share the same flip / rotation / crop. The mask is resampled with
       nearest neighbour; pixels a transform brings in from outside become 255 (ignore).
    2. ``intensity`` ops run on ``s1`` and ``s2`` separately, each with its own random draw, so
       e.g. grayscale averages SAR bands and optical bands separately and never mixes them.
       With ``joint_intensity=True`` they run once on the stacked S2 + S1 channels instead
       (the DINO-MM code augments its 14-channel stack this way: one brightness / contrast
       draw per sample for both sensors, grayscale = mean of all 14 channels). Samples
       whose sensor is absent (``present`` False) are kept exactly zero.
    3. ``sensor_drop`` (e.g. :class:`RandomSensorDrop`) last.

    Batches with only ``s1``, only ``s2`` or both, with or without ``mask``, are accepted; other
    keys (``label``, ``meta``, ...) pass through. The input batch is not modified. Each op is a
    plain module, so a YAML config can build this with ``class_path``/``init_args`` lists.

    Args:
        geometric: kornia geometric augmentations (e.g. ``RandomHorizontalFlip``,
            :class:`RandomRot90`, :class:`RandomResizedCrop`).
        intensity: intensity augmentations for any channel count (this module's, or kornia's
            range-independent ones).
        sensor_drop: applied last, or ``None``.
        spatial_keys: extra float [B, K, H, W] keys (e.g. a CromSS label prior) transformed
            geometrically with the images (bilinear), without intensity changes.
        mask_keys: extra int64 [B, H, W] label keys (e.g. ``mask_clean``) transformed like
            ``mask``: nearest neighbour, 255 where a transform brings pixels in.
        joint_intensity: run the intensity ops on the stacked S2 + S1 channels of batches
            that hold both sensors (otherwise per sensor).

    Shapes:
        ``s1`` [B, 2, H, W], ``s2`` [B, C, H, W], ``mask`` int64 [B, H, W]; spatial size becomes
        the crop size if a crop is among ``geometric``.
    """

    def __init__(
        self,
        geometric: Sequence[nn.Module] = (),
        intensity: Sequence[nn.Module] = (),
        sensor_drop: RandomSensorDrop | None = None,
        spatial_keys: Sequence[str] = (),
        mask_keys: Sequence[str] = (),
        joint_intensity: bool = False,
    ) -> None:
        super().__init__()
        self.mask_keys = tuple(mask_keys)
        self.joint_intensity = bool(joint_intensity)
        geometric = list(geometric)
        self.geometric = K.AugmentationSequential(*geometric, data_keys=None) if geometric else None
        self.intensity = nn.ModuleList(intensity)
        self.sensor_drop = sensor_drop
        self.spatial_keys = tuple(spatial_keys)
        self._pin_rng_to_cpu()

    def _pin_rng_to_cpu(self) -> None:
        for m in self.modules():
            if isinstance(m, K.base._BasicAugmentationBase):
                m.set_rng_device_and_dtype(torch.device("cpu"), torch.float32)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> BatchAugmentation:
        # kornia moves its samplers to the module's device; keep them on the CPU (module notes).
        out = super()._apply(fn, *args, **kwargs)
        self._pin_rng_to_cpu()
        return out

    def _geometric(self, batch: Batch, out: Batch) -> None:
        assert self.geometric is not None
        keys = [k for k in (*IMAGE_KEYS, *self.spatial_keys) if k in batch]
        if not keys:
            raise DataError(
                f"geometric augmentation needs an image key ({list(IMAGE_KEYS)}) "
                f"in the batch, got {sorted(batch)}"
            )
        tensors = [batch[k] for k in keys]
        sizes = {k: tuple(t.shape[-2:]) for k, t in zip(keys, tensors)}
        masks = [k for k in ("mask", *self.mask_keys) if k in batch]
        sizes |= {k: tuple(batch[k].shape[-2:]) for k in masks}
        if len(set(sizes.values())) > 1:
            raise DataError(f"spatial sizes differ between batch keys: {sizes}")
        dtype = tensors[0].dtype
        x = torch.cat([t.to(dtype) for t in tensors], dim=1)
        if masks:
            # Shift so that ignore (255) is 0: anything a transform pads with zeros is then ignore.
            shifted = [(batch[k].to(x.dtype) - IGNORE_INDEX).unsqueeze(1) for k in masks]
            x, *moved = self.geometric(x, *shifted, data_keys=["input"] + ["mask"] * len(masks))
            for k, m in zip(masks, moved):
                out[k] = (m.squeeze(1).round() + IGNORE_INDEX).to(batch[k].dtype)
        else:
            x = self.geometric(x, data_keys=["input"])
        chunks = torch.split(x, [t.shape[1] for t in tensors], dim=1)
        for k, t, y in zip(keys, tensors, chunks):
            out[k] = y.to(t.dtype)

    def forward(self, batch: Batch) -> Batch:
        """Augment a batch; returns a new batch dict.

        Raises:
            DataError: geometric ops on a batch without image keys, or spatial sizes that differ.
        """
        out = copy_batch(batch)
        if self.geometric is not None:
            self._geometric(batch, out)
        if len(self.intensity) > 0:
            joint = self.joint_intensity and all(k in out for k in IMAGE_KEYS)
            groups = [("s2", "s1")] if joint else [(k,) for k in IMAGE_KEYS if k in out]
            for keys in groups:
                x = torch.cat([out[k] for k in keys], dim=1)  # early-fusion order: S2, S1
                for op in self.intensity:
                    x = op(x)
                for k, y in zip(keys, torch.split(x, [out[k].shape[1] for k in keys], dim=1)):
                    out[k] = zero_absent(y, presence(batch, k, y.shape[0], y.device))
        if self.sensor_drop is not None:
            out = self.sensor_drop(out)
        return out


def classification_augmentation(crop_size: int | None = None) -> BatchAugmentation:
    """Flips and 90° rotations (the 8 symmetries of the square), optionally a resized crop.

    Args:
        crop_size: if given, first a :class:`RandomResizedCrop` to ``crop_size`` with scale
            (0.5, 1).

    Returns:
        A :class:`BatchAugmentation` without intensity ops or sensor drop.
    """
    geometric: list[nn.Module] = []
    if crop_size is not None:
        geometric.append(RandomResizedCrop(crop_size, scale=(0.5, 1.0)))
    geometric += [K.RandomHorizontalFlip(p=0.5), K.RandomVerticalFlip(p=0.5), RandomRot90(p=1.0)]
    return BatchAugmentation(geometric=geometric)


def mgsvit_ssl_augmentation(
    size: int,
    sensor_drop: RandomSensorDrop | None = None,
    recipe: Literal["code", "paper"] = "code",
    view: Literal[1, 2] = 1,
) -> BatchAugmentation:
    """One view of the MGSViT self-supervised augmentation (Liu et al. 2024).

    ``recipe="code"`` (default; the authors' ``ours_train_pretrain.py``): RandomResizedCrop
    to ``size`` with scale (0.2, 1.0); multiplicative brightness *and* contrast (0.4) with
    p = 0.8 (:class:`RandomBrightnessContrast`); grayscale (band mean) p = 0.2; Gaussian
    blur σ ∈ [0.1, 2] with p = 1.0 on view 1 and p = 0.1 on view 2; horizontal flip p = 0.5.

    ``recipe="paper"`` (§4.4 as printed): the same crop; brightness *or* contrast with
    maximum delta 0.4 and p = 0.8 (:class:`RandomBrightnessOrContrast`); grayscale p = 0.2;
    Gaussian blur σ ∈ [0.1, 2] with p = 1.0; both views alike, no flip.

    Args:
        size: output size of the crop (128 in the paper; 224 in the code's default).
        sensor_drop: optional :class:`RandomSensorDrop` appended (not part of MGSViT).
        recipe: ``code`` or ``paper``.
        view: 1 or 2 (the views differ in blur probability under ``code``).
    """
    if recipe not in ("code", "paper"):
        raise ConfigError(f"recipe must be 'code' or 'paper', got {recipe!r}", key="recipe")
    if view not in (1, 2):
        raise ConfigError(f"view must be 1 or 2, got {view!r}", key="view")
    geometric: list[nn.Module] = [RandomResizedCrop(size, scale=(0.2, 1.0))]
    if recipe == "code":
        geometric.append(K.RandomHorizontalFlip(p=0.5))
        color: nn.Module = RandomBrightnessContrast(max_delta=0.4, p=0.8)
        blur_p = 1.0 if view == 1 else 0.1
    else:
        color = RandomBrightnessOrContrast(max_delta=0.4, p=0.8)
        blur_p = 1.0
    return BatchAugmentation(
        geometric=geometric,
        intensity=[color, RandomGrayscale(p=0.2), RandomGaussianBlur(sigma=(0.1, 2.0), p=blur_p)],
        sensor_drop=sensor_drop,
    )


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


#: Augmentations a config can name (``augmentation: flips_rot90``): name → factory.
RECIPES: dict[str, Callable[[], BatchAugmentation]] = {
    "flips_rot90": classification_augmentation,
    "cromss": segmentation_augmentation,
}


def resolve_augmentation(value: BatchAugmentation | str | None) -> BatchAugmentation | None:
    """A datamodule's ``augmentation`` argument: a module, a :data:`RECIPES` name, or
    ``None`` (no augmentation at all).

    Raises:
        ConfigError: an unknown recipe name.
    """
    if value is None or isinstance(value, nn.Module):
        return value
    if value not in RECIPES:
        raise ConfigError(
            f"unknown augmentation {value!r}; name one of {sorted(RECIPES)}, give a "
            "BatchAugmentation, or null for none",
            key="augmentation",
        )
    return RECIPES[value]()


class MultiCropAugmentation(nn.Module):
    """DINO multi-crop views of one batch, made multispectral-aware (DINO-MM).

    From one normalised batch, ``2`` global views of ``global_crops_size`` px (area scale
    ``global_crops_scale``) and ``local_crops_number`` local views of ``local_crops_size`` px
    (``local_crops_scale``) are drawn, each with its own random crop per sample and (DINO's
    augmentation, REFERENCE.md):

    ================================  =========  =========  =========
    op                                global 1   global 2   local
    ================================  =========  =========  =========
    horizontal flip                   0.5        0.5        0.5
    brightness and contrast (×, 0.4)  0.8        0.8        0.8
    grayscale (band mean)             0.2        0.2        0.2
    Gaussian blur σ ∈ [0.1, 2]        1.0        0.1        0.5
    solarize                          0          0.2        0
    RandomSensorDrop                  per view   per view   per view
    ================================  =========  =========  =========

    The defaults follow the DINO-MM code (``main_dino_B14.DataAugmentationDINO``), which
    augments the 14-channel S2 + S1 stack as one image: multiplicative brightness then
    contrast (``color="brightness_and_contrast"``, :class:`RandomBrightnessContrast`), one
    draw per sample for both sensors, grayscale over all 14 channels
    (``joint_sensors=True``), and a solarisation that mirrors the values *below* the
    threshold (``solarize_direction="below"``, the code's ``Solarize(128)``). The
    alternatives, one argument away: ``color="brightness_or_contrast"`` (additive brightness
    or contrast, the MGSViT paper's text), ``joint_sensors=False`` (intensity ops per sensor,
    so grayscale never mixes SAR and optical bands) and ``solarize_direction="above"``
    (torchvision / PIL, facebookresearch/dino). The crop is shared by both sensors of a
    sample within a view. ``sensor_drop`` draws independently for every view, so with the
    defaults each view is 50 % joint, 25 % SAR-only, 25 % optical-only. With
    ``local_crops_number = 0`` this gives MoCo v3's two views (blur 1.0 / 0.1, solarize 0 /
    0.2).

    Args:
        global_crops_size: output side of the global views (DINO-MM: 112).
        global_crops_scale: crop area range of the global views ((0.4, 1)).
        local_crops_number: number of local views (8).
        local_crops_size: output side of the local views (48).
        local_crops_scale: crop area range of the local views ((0.05, 0.4)).
        max_delta: brightness shift / contrast factor half-width (0.4).
        color_p: probability of the brightness-or-contrast op (0.8).
        grayscale_p: probability of grayscale (0.2).
        blur_p: blur probability for (global 1, global 2, local) views.
        blur_sigma: σ range of the blur.
        solarize_p: solarisation probability of global view 2 (0.2).
        solarize_threshold: see :class:`RandomSolarize` (0.5 for [0, 1] data).
        solarize_upper: see :class:`RandomSolarize` (1.0 for [0, 1] data).
        sensor_drop: a :class:`RandomSensorDrop` applied per view, or ``None``.
        color: ``brightness_and_contrast`` (the DINO-MM / MGSViT code) or
            ``brightness_or_contrast``.
        joint_sensors: run the intensity ops on the stacked S2 + S1 channels (DINO-MM code)
            instead of per sensor.
        solarize_direction: ``below`` (DINO-MM code) or ``above`` (PIL / DINO).

    Shapes:
        a batch with ``s1`` [B, 2, H, W] and/or ``s2`` [B, C, H, W] in; a list of
        ``2 + local_crops_number`` batches out (global views first), each with images of the
        view's size and consistent ``present`` flags.
    """

    def __init__(
        self,
        global_crops_size: int = 112,
        global_crops_scale: tuple[float, float] = (0.4, 1.0),
        local_crops_number: int = 8,
        local_crops_size: int = 48,
        local_crops_scale: tuple[float, float] = (0.05, 0.4),
        max_delta: float = 0.4,
        color_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_p: tuple[float, float, float] = (1.0, 0.1, 0.5),
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        solarize_p: float = 0.2,
        solarize_threshold: float = 0.5,
        solarize_upper: float = 1.0,
        sensor_drop: RandomSensorDrop | None = None,
        color: Literal["brightness_and_contrast", "brightness_or_contrast"] = (
            "brightness_and_contrast"
        ),
        joint_sensors: bool = True,
        solarize_direction: Literal["above", "below"] = "below",
    ) -> None:
        super().__init__()
        if color not in ("brightness_and_contrast", "brightness_or_contrast"):
            raise ConfigError(
                f"color must be 'brightness_and_contrast' or 'brightness_or_contrast', "
                f"got {color!r}",
                key="color",
            )
        if local_crops_number < 0:
            raise ConfigError(
                f"local_crops_number must be >= 0, got {local_crops_number}",
                key="local_crops_number",
            )
        if len(blur_p) != 3:
            raise ConfigError(f"blur_p needs 3 values, got {list(blur_p)}", key="blur_p")
        self.n_global = 2
        self.n_local = int(local_crops_number)
        self.global_crops_size = int(global_crops_size)
        self.local_crops_size = int(local_crops_size)

        def view(size: int, scale: tuple[float, float], blur: float, solar: float) -> nn.Module:
            color_op: nn.Module = (
                RandomBrightnessContrast(max_delta=max_delta, p=color_p)
                if color == "brightness_and_contrast"
                else RandomBrightnessOrContrast(max_delta=max_delta, p=color_p)
            )
            intensity: list[nn.Module] = [color_op, RandomGrayscale(p=grayscale_p)]
            if blur > 0:
                intensity.append(RandomGaussianBlur(sigma=tuple(blur_sigma), p=blur))
            if solar > 0:
                intensity.append(
                    RandomSolarize(
                        threshold=solarize_threshold,
                        upper=solarize_upper,
                        p=solar,
                        direction=solarize_direction,
                    )
                )
            return BatchAugmentation(
                geometric=[
                    RandomResizedCrop(size, scale=tuple(scale)),
                    K.RandomHorizontalFlip(p=0.5),
                ],
                intensity=intensity,
                sensor_drop=sensor_drop,
                joint_intensity=joint_sensors,
            )

        gs, ls = tuple(global_crops_scale), tuple(local_crops_scale)
        self.global_views = nn.ModuleList(
            [
                view(self.global_crops_size, gs, blur_p[0], 0.0),
                view(self.global_crops_size, gs, blur_p[1], solarize_p),
            ]
        )
        self.local_view = (
            view(self.local_crops_size, ls, blur_p[2], 0.0) if self.n_local > 0 else None
        )

    @property
    def n_crops(self) -> int:
        """Total views per batch: 2 global + local."""
        return self.n_global + self.n_local

    def forward(self, batch: Batch) -> list[Batch]:
        """``2 + local_crops_number`` augmented views of ``batch`` (global first)."""
        views = [aug(batch) for aug in self.global_views]
        if self.local_view is not None:
            views += [self.local_view(batch) for _ in range(self.n_local)]
        return views
