"""ViT-S of the self-supervised methods (DINO-MM, MoCo-MM) and its export description.

A plain :class:`~rsfuse.models.vit.GatedViT` (no shortcuts, CLS token, CLS pooling) built
through the timm factory (:func:`~rsfuse.models.encoders.create_encoder`), with DINO's or
MoCo v3's ViT-S defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rsfuse.models.encoders import create_encoder
from rsfuse.models.vit import GatedViT

__all__ = ["MOCO_VIT_SMALL", "VIT_SMALL", "build_vit", "eval_backbone_kwargs", "vit_export_config"]

#: ViT-S/16 with a CLS token, as in DINO-MM (the released run used patch 8).
VIT_SMALL: dict[str, Any] = {
    "patch_size": 16,
    "embed_dim": 384,
    "depth": 12,
    "num_heads": 6,
    "class_token": True,
    "global_pool": "token",
    "drop_path_rate": 0.1,
}


#: ViT-S/16 of MoCo v3's recipe (``vits.vit_small``): 12 heads (DINO's ViT-S has 6) and no
#: stochastic depth; MoCo-MM's default backbone.
MOCO_VIT_SMALL: dict[str, Any] = {**VIT_SMALL, "num_heads": 12, "drop_path_rate": 0.0}


def build_vit(
    in_chans: int,
    backbone_kwargs: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
) -> GatedViT:
    """A plain :class:`GatedViT` (no shortcuts) with ViT-S defaults, CLS token and CLS pooling.

    ``backbone_kwargs`` override ``defaults`` (:data:`VIT_SMALL`, DINO's ViT-S, unless given;
    ``img_size`` is best left unset during pretraining so that global and local crops keep
    their sizes).

    Raises:
        ConfigError: bad arguments.
    """
    kwargs = {**(VIT_SMALL if defaults is None else defaults), **(backbone_kwargs or {})}
    return create_encoder("gated_vit", in_chans, kwargs)  # type: ignore[return-value]


def vit_export_config(vit: GatedViT, channels: Sequence[str], modalities: Sequence[str]) -> dict:
    """The encoder JSON of an exported early-fusion ViT (class, arguments, bands)."""
    return {
        "class": "rsfuse.models.vit.GatedViT",
        "timm_name": "gated_vit",
        "kwargs": dict(getattr(vit, "init_kwargs", {})),
        "modality": "".join(sorted(modalities)),
        "bands": list(channels),
    }


def eval_backbone_kwargs(
    backbone_kwargs: dict[str, Any] | None = None,
    img_size: int | None = None,
    defaults: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``backbone_kwargs`` for a classification task that loads an exported backbone.

    The pretraining ViT's architecture (with ``defaults`` filled in: :data:`VIT_SMALL` for
    DINO-MM, :data:`MOCO_VIT_SMALL` for a MoCo-MM encoder) with ``img_size`` set (inputs are
    resized to it, e.g. 120 → 128 as DINO-MM does; the weights do not depend on it) and no
    stochastic depth.
    """
    kwargs = {**(VIT_SMALL if defaults is None else defaults), **(backbone_kwargs or {})}
    kwargs["drop_path_rate"] = 0.0
    kwargs["img_size"] = img_size
    return kwargs
