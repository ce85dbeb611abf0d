"""The one encoder factory: every image encoder of rsfuse is a timm model.

timm builds the network — its own models (``vit_small_patch16_224``, ``resnet50`` …) and
rsfuse's :class:`~rsfuse.models.vit.GatedViT` family, registered with timm as
``gated_vit``, ``gated_vit_small_patch16`` and ``gated_vit_base_patch16``
(:mod:`rsfuse.models.vit`). rsfuse only decides ``in_chans`` from the bands
(:class:`~rsfuse.inputs.InputSpec`), asks for pooled features (``num_classes=0``) and never
downloads weights (``pretrained=False``; published weights come in through
``encoder_checkpoints`` files).
"""

from __future__ import annotations

from typing import Any

import timm
from torch import nn

import rsfuse.models.vit  # registers the gated_vit family with timm
from rsfuse.errors import ConfigError

#: Names of rsfuse's registered GatedViT family (accept ``shortcut_every`` and ``gate``).
GATED_VIT_NAMES: tuple[str, ...] = tuple(rsfuse.models.vit.GATED_VIT_VARIANTS)


def is_gated_vit(name: str) -> bool:
    """True for a registered GatedViT name (``gated_vit``, ``gated_vit_small_patch16`` …)."""
    return name in GATED_VIT_NAMES


def create_encoder(
    name: str, in_chans: int, kwargs: dict[str, Any] | None = None, num_classes: int = 0
) -> nn.Module:
    """A timm model mapping [B, ``in_chans``, H, W] to pooled features (or logits).

    Args:
        name: timm model name, e.g. ``gated_vit``, ``vit_small_patch16_224``, ``resnet50``.
        in_chans: input channels (the bands of the input specification).
        kwargs: further constructor arguments (``img_size``, ``patch_size``,
            ``embed_dim``, ``depth``, ``num_heads``, ``global_pool``, ``drop_path_rate``;
            GatedViT also ``shortcut_every``, ``gate``, ``class_token``).
        num_classes: head size (0: no head, pooled features).

    Raises:
        ConfigError: unknown model name or argument.
    """
    if name not in timm.list_models():
        raise ConfigError(f"unknown encoder {name!r}: not a timm model name", key="backbone")
    try:
        return timm.create_model(
            name, pretrained=False, in_chans=in_chans, num_classes=num_classes, **(kwargs or {})
        )
    except (TypeError, ValueError, AssertionError) as e:
        raise ConfigError(f"bad arguments for encoder {name!r}: {e}", key="backbone_kwargs") from e
