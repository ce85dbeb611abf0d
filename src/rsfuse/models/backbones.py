"""Backbone factory: any timm model with the input channels of the chosen bands.

Kept deliberately thin: timm builds the network; rsfuse only decides ``in_chans`` from the
band registry and never downloads weights (``pretrained=False``).
"""

from __future__ import annotations

from typing import Any

import timm
from torch import nn

from rsfuse.errors import ConfigError


def build_backbone(
    name: str, in_chans: int, num_classes: int, kwargs: dict[str, Any] | None = None
) -> nn.Module:
    """Create a timm model by name.

    Args:
        name: timm model name, e.g. ``vit_small_patch16_224`` or ``resnet50``.
        in_chans: number of input channels.
        num_classes: size of the classification head (0 = no head, features only).
        kwargs: further timm constructor arguments (``img_size``, ``patch_size``,
            ``embed_dim``, ``depth``, ``num_heads``, ``global_pool``, ``drop_path_rate`` …).

    Raises:
        ConfigError: unknown model name or argument.
    """
    if name not in timm.list_models():
        raise ConfigError(f"unknown timm model {name!r}", key="backbone")
    try:
        return timm.create_model(
            name, pretrained=False, in_chans=in_chans, num_classes=num_classes, **(kwargs or {})
        )
    except TypeError as e:
        raise ConfigError(
            f"bad arguments for timm model {name!r}: {e}", key="backbone_kwargs"
        ) from e
