"""Segmentation networks: smp decoders over any smp encoder, UPerNet over a ViT.

:func:`build_segmentation_model` is the one factory of the segmentation networks of
:class:`~rsfuse.tasks.segmentation.SegmentationTask` (CromSS §IV-A): PSPNet, DeepLabV3+,
FPN, U-Net or UPerNet from segmentation-models-pytorch over any smp encoder (``resnet50``
as in the paper), and UPerNet over a ViT encoder (the GatedViT family or a timm ViT,
:class:`~rsfuse.models.upernet.ViTUPerNet`). Every network has an ``encoder`` attribute and
a ``pad_multiple``: inputs are padded to it (:func:`pad_to_multiple`) and logits cropped
back, so any patch size works.
"""

from __future__ import annotations

from typing import Any, Literal

import segmentation_models_pytorch as smp
import torch.nn.functional as F
from torch import Tensor, nn

from rsfuse.errors import ConfigError
from rsfuse.models.encoders import create_encoder, is_gated_vit
from rsfuse.models.upernet import ViTUPerNet

__all__ = ["SMP_ARCHITECTURES", "build_segmentation_model", "is_vit_encoder", "pad_to_multiple"]

Architecture = Literal["unet", "pspnet", "deeplabv3plus", "fpn", "upernet"]

#: rsfuse architecture name → smp model class name.
SMP_ARCHITECTURES: dict[str, str] = {
    "unet": "Unet",
    "pspnet": "PSPNet",
    "deeplabv3plus": "DeepLabV3Plus",
    "fpn": "FPN",
    "upernet": "UPerNet",
}

_VIT_PREFIXES = ("vit_", "deit", "beit", "eva")


def is_vit_encoder(name: str) -> bool:
    """True for the GatedViT family and timm ViT names (``vit_*``, ``deit*``, ``beit*``,
    ``eva*``): encoders that need the UPerNet decoder."""
    return is_gated_vit(name) or name.startswith(_VIT_PREFIXES)


def build_segmentation_model(
    architecture: str,
    encoder: str,
    in_channels: int,
    num_classes: int,
    encoder_kwargs: dict[str, Any] | None = None,
    decoder_kwargs: dict[str, Any] | None = None,
    encoder_weights: str | None = None,
) -> nn.Module:
    """A segmentation network with an ``encoder`` attribute and a ``pad_multiple``.

    Args:
        architecture: ``unet``, ``pspnet``, ``deeplabv3plus``, ``fpn`` or ``upernet``.
        encoder: smp encoder name (``resnet50``, ``tu-resnet10t`` …), or, with
            ``upernet``, ``gated_vit`` or a timm ViT name.
        in_channels: input channels (early-fused bands).
        num_classes: output classes K.
        encoder_kwargs: ViT constructor arguments (GatedViT / timm), or extra arguments of
            smp's timm-universal (``tu-``) encoders.
        decoder_kwargs: smp architecture arguments (``encoder_depth``,
            ``decoder_channels``, ``encoder_output_stride`` …); for a ViT UPerNet
            ``out_indices`` and ``decoder_channels``.
        encoder_weights: smp encoder weights name (None: random; downloads are the user's
            business and impossible offline).

    Returns:
        A module mapping [B, C, H, W] (H, W multiples of ``pad_multiple``) to logits
        [B, K, H, W].

    Raises:
        ConfigError: unknown architecture or encoder, or bad arguments.
    """
    if architecture not in SMP_ARCHITECTURES:
        raise ConfigError(
            f"unknown architecture {architecture!r}; expected one of {list(SMP_ARCHITECTURES)}",
            key="architecture",
        )
    ekw = dict(encoder_kwargs or {})
    dkw = dict(decoder_kwargs or {})
    if is_vit_encoder(encoder):
        if architecture != "upernet":
            raise ConfigError(
                f"ViT encoder {encoder!r} needs architecture='upernet', not {architecture!r}",
                key="architecture",
            )
        enc = create_encoder(encoder, in_channels, ekw)
        try:
            return ViTUPerNet(enc, num_classes, **dkw)
        except TypeError as e:
            raise ConfigError(f"bad UPerNet arguments: {e}", key="decoder_kwargs") from e
    if not encoder.startswith("tu-") and encoder not in smp.encoders.get_encoder_names():
        raise ConfigError(
            f"unknown encoder {encoder!r}: not an smp encoder, 'tu-<timm name>', "
            "'gated_vit' or a timm ViT",
            key="encoder",
        )
    try:
        model = smp.create_model(
            SMP_ARCHITECTURES[architecture],
            encoder_name=encoder,
            encoder_weights=encoder_weights,
            in_channels=in_channels,
            classes=num_classes,
            **dkw,
            **ekw,
        )
    except (TypeError, ValueError, KeyError) as e:
        raise ConfigError(
            f"cannot build {architecture} with encoder {encoder!r}: {e}", key="decoder_kwargs"
        ) from e
    model.pad_multiple = int(model.encoder.output_stride)
    return model


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Pad [B, C, H, W] at the bottom/right to multiples of ``multiple``.

    Reflect padding where the pad is smaller than the side, else zeros (the dataset mean
    after normalisation).

    Returns:
        (padded tensor, original (H, W)).
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "constant"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)
