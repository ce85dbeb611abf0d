"""The published weight sources rsfuse imports: what each file is, which bands in which
order it was trained on, which normalisation it expects, and where that is written down.

A :class:`Source` ties a publisher's files to a layout (:mod:`rsfuse.weights.layouts`), the
input kinds it was published for (:data:`INPUTS`) and their normalisation recipes
(:mod:`rsfuse.weights.normalization`). :func:`resolve_source` picks the source of a file from
``--source``, the file name (TorchGeo's file names, :data:`TORCHGEO_FILES`) or the wrapper
structure. ``docs/weights.md`` lists every fact with the file it was read from.

MGSViT (wgd4510/MGSVit) publishes no weights (its repository has code only, no release or
link), so there is no MGSViT source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsfuse import bands as registry
from rsfuse.errors import ConfigError
from rsfuse.weights.layouts import detect_layout

__all__ = ["INPUTS", "SOURCES", "TORCHGEO_FILES", "Source", "resolve_source"]

#: Input kinds: name → (modality, channels in the authors' order).
INPUTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "s2-l1c": ("s2", registry.S2_L1C_ORDER),
    "s2-l2a": ("s2", registry.S2_L2A_ORDER),
    "s2-rgb": ("s2", registry.S2_SUBSETS["rgb"]),
    "s2-hr9": ("s2", registry.S2_SUBSETS["hr9"]),
    "s1": ("s1", registry.S1_ORDER),
    # DINO-MM: BigEarthNet S2 (12 bands, no B10) first, then S1 as VH, VV
    "s2-l2a+s1-vhvv": ("s1s2", (*registry.S2_L2A_ORDER, "VH", "VV")),
}


@dataclass(frozen=True)
class Source:
    """One publisher's weights.

    Attributes:
        name: source id (``--source``).
        title: what the files are.
        layouts: layouts the files come in (the wrapper decides which).
        inputs: input kind → normalisation recipe, for the kinds published.
        by_channels: input channel count → default input kind.
        paper: the paper, by title.
        code: where the format and the loading code were read.
        files: published file names (or their pattern) and where they are listed.
        num_heads: ViT heads when the source fixes them (else the standard table).
        notes: further facts shown by ``rsfuse weights sources``.
    """

    name: str
    title: str
    layouts: tuple[str, ...]
    inputs: Mapping[str, str]
    by_channels: Mapping[int, str]
    paper: str
    code: str
    files: str
    num_heads: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


_SSL4EO_PAPER = (
    "SSL4EO-S12: A Large-Scale Multi-Modal, Multi-Temporal Dataset for Self-Supervised "
    "Learning in Earth Observation (Wang et al. 2023)"
)
_SSL4EO_CODE = "https://github.com/zhu-xlab/SSL4EO-S12 (commit 2156913)"
_SSL4EO_FILES = (
    "README 'Pre-trained models' table (Google Drive, huggingface.co/wangyi111/SSL4EO-S12)"
)
_SSL4EO_INPUTS = {
    "s2-l1c": "divide-10000",
    "s2-l2a": "divide-10000",
    "s2-rgb": "divide-10000",
    "s1": "ssl4eo-window",
}
_SSL4EO_CHANNELS = {13: "s2-l1c", 12: "s2-l2a", 3: "s2-rgb", 2: "s1"}

SOURCES: dict[str, Source] = {
    "ssl4eo-moco": Source(
        "ssl4eo-moco",
        "SSL4EO-S12 MoCo full checkpoints: ResNet-50 (MoCo v2, encoder_q) and ViT-S/16 (MoCo v3, "
        "base_encoder)",
        ("moco-v2", "moco-v3"),
        _SSL4EO_INPUTS,
        _SSL4EO_CHANNELS,
        _SSL4EO_PAPER,
        _SSL4EO_CODE + ": transfer_classification/linear_BE_moco.py, linear_BE_moco_v3.py",
        _SSL4EO_FILES,
    ),
    "ssl4eo-dino": Source(
        "ssl4eo-dino",
        "SSL4EO-S12 DINO full checkpoints (ResNet-50, ViT-S/16): the teacher backbone",
        ("dino",),
        _SSL4EO_INPUTS,
        _SSL4EO_CHANNELS,
        _SSL4EO_PAPER,
        _SSL4EO_CODE + ": transfer_classification/models/dino/utils.py load_pretrained_weights",
        _SSL4EO_FILES,
    ),
    "ssl4eo-mae": Source(
        "ssl4eo-mae",
        "SSL4EO-S12 MAE full checkpoints (ViT-S/16, B/16, L/16, H/14; S2 L1C or S1): the encoder",
        ("mae",),
        _SSL4EO_INPUTS,
        _SSL4EO_CHANNELS,
        _SSL4EO_PAPER,
        _SSL4EO_CODE + ": transfer_classification/linear_BE_mae.py, models/mae/models_mae.py",
        _SSL4EO_FILES + "; B13_vits16_mae_ep99.pth, B2_vits16_mae_ep99.pth, …",
    ),
    "ssl4eo-data2vec": Source(
        "ssl4eo-data2vec",
        "SSL4EO-S12 data2vec full checkpoint (BEiT-style ViT-S/16 with shared relative "
        "position bias and layer scale)",
        ("data2vec",),
        _SSL4EO_INPUTS,
        _SSL4EO_CHANNELS,
        _SSL4EO_PAPER,
        _SSL4EO_CODE + ": transfer_classification/linear_BE_data2vec.py, "
        "pretrain_ssl/models/data2vec/modeling_cyclical.py (beit_small_patch16_224)",
        _SSL4EO_FILES,
    ),
    "ssl4eo-backbone": Source(
        "ssl4eo-backbone",
        "SSL4EO-S12 'backbone' files: the encoder alone as a torchvision / timm state dict "
        "(possibly under 'state_dict')",
        ("state-dict",),
        _SSL4EO_INPUTS,
        _SSL4EO_CHANNELS,
        _SSL4EO_PAPER,
        _SSL4EO_CODE + ": src/benchmark/utils/convert_model_torchvision.py",
        _SSL4EO_FILES,
    ),
    "torchgeo": Source(
        "torchgeo",
        "TorchGeo's re-hosted SSL4EO-S12 weights (timm-style state dicts of resnet18 / "
        "resnet50 / vit_*_patch16_224)",
        ("state-dict",),
        _SSL4EO_INPUTS,
        _SSL4EO_CHANNELS,
        _SSL4EO_PAPER,
        "https://github.com/microsoft/torchgeo (commit 7ea0616): torchgeo/models/resnet.py, vit.py",
        "the Weights enums' urls (TORCHGEO_FILES)",
        notes=(
            "TorchGeo's S1 transform standardises with mean (-12.59, -20.26) and std (5.26, "
            "5.91) (from DeCUR); the SSL4EO-S12 pretraining fed the +-2 sigma uint8 window "
            "(recipe ssl4eo-window), which rsfuse records as the weights' normalisation",
        ),
    ),
    "dino-mm": Source(
        "dino-mm",
        "DINO-MM joint SAR-optical ViT-S/8 (14 channels: BigEarthNet S2 12 bands, then S1 "
        "VH, VV): the teacher backbone",
        ("dino",),
        {"s2-l2a+s1-vhvv": "dino-mm"},
        {14: "s2-l2a+s1-vhvv"},
        "Self-supervised Vision Transformers for Joint SAR-optical Representation Learning "
        "(Wang et al. 2022)",
        "https://github.com/zhu-xlab/DINO-MM (commit 45975d8): main_dino_B14.py, "
        "datasets/BigEarthNet/bigearthnet_dataset_seco_lmdb_B14.py, linear_dino_B14.py",
        "README: huggingface.co/wangyi111/dino-mm B14_vits8_dinomm_ep99.pth",
    ),
    "cromss": Source(
        "cromss",
        "CromSS noisy-label pretrained smp U-Nets (ResNet-50 encoder per modality; S1 2 bands, "
        "S2 13 or 9 bands; middle or late fusion)",
        ("cromss",),
        {"s2-l1c": "ssl4eo-window", "s2-hr9": "ssl4eo-window", "s1": "ssl4eo-window"},
        {13: "s2-l1c", 9: "s2-hr9", 2: "s1"},
        "CromSS: Cross-modal pretraining with noisy labels for remote sensing image "
        "segmentation (Liu et al. 2025)",
        "https://github.com/zhu-xlab/CromSS (commit a5aab81): models/pl_pretrain_mm_sscom.py, "
        "models/multimodel/unet_midFusion.py, unet_lateFusion.py, utils/finetune.py, "
        "dataset/ssl4eo_dataset_lmdb.py",
        "README table: huggingface.co/datasets/vikki23/NoLDO-S12 "
        "weights-cromss-{13B,9B}-{midFusion,lateFusion}-epoch=199.ckpt",
    ),
}

#: TorchGeo's file names of SSL4EO-S12 weights → (Weights enum, input kind)
#: (torchgeo/models/resnet.py and vit.py at commit 7ea0616).
TORCHGEO_FILES: dict[str, tuple[str, str]] = {
    "resnet18_sentinel2_all_moco": ("ResNet18_Weights.SENTINEL2_ALL_MOCO", "s2-l1c"),
    "resnet18_sentinel2_rgb_moco": ("ResNet18_Weights.SENTINEL2_RGB_MOCO", "s2-rgb"),
    "resnet50_sentinel1_all_moco": ("ResNet50_Weights.SENTINEL1_ALL_MOCO", "s1"),
    "resnet50_sentinel2_all_dino": ("ResNet50_Weights.SENTINEL2_ALL_DINO", "s2-l1c"),
    "resnet50_sentinel2_all_moco": ("ResNet50_Weights.SENTINEL2_ALL_MOCO", "s2-l1c"),
    "resnet50_sentinel2_rgb_moco": ("ResNet50_Weights.SENTINEL2_RGB_MOCO", "s2-rgb"),
    "vit_small_patch16_224_sentinel2_all_dino": ("ViTSmall16_Weights.SENTINEL2_ALL_DINO", "s2-l1c"),
    "vit_small_patch16_224_sentinel2_all_moco": ("ViTSmall16_Weights.SENTINEL2_ALL_MOCO", "s2-l1c"),
    "B13_vits16_mae_ep99_enc": ("ViTSmall16_Weights.SENTINEL2_ALL_MAE", "s2-l1c"),
    "B2_vits16_mae_ep99_enc": ("ViTSmall16_Weights.SENTINEL1_GRD_MAE", "s1"),
    "B13_vitb16_mae_ep99_enc": ("ViTBase16_Weights.SENTINEL2_ALL_MAE", "s2-l1c"),
    "B2_vitb16_mae_ep99_enc": ("ViTBase16_Weights.SENTINEL1_GRD_MAE", "s1"),
    "B13_vitl16_mae_ep99_enc": ("ViTLarge16_Weights.SENTINEL2_ALL_MAE", "s2-l1c"),
    "B2_vitl16_mae_ep99_enc": ("ViTLarge16_Weights.SENTINEL1_GRD_MAE", "s1"),
    "B13_vith14_mae_ep199_enc": ("ViTHuge14_Weights.SENTINEL2_ALL_MAE", "s2-l1c"),
    "B2_vith14_mae_ep199_enc": ("ViTHuge14_Weights.SENTINEL1_GRD_MAE", "s1"),
}

#: Layout → source, when a file's wrapper names its method unambiguously.
_BY_LAYOUT = {
    "moco-v2": "ssl4eo-moco",
    "moco-v3": "ssl4eo-moco",
    "mae": "ssl4eo-mae",
    "data2vec": "ssl4eo-data2vec",
    "cromss": "cromss",
}


def torchgeo_entry(path: str | Path) -> tuple[str, str] | None:
    """(enum, input kind) of a TorchGeo file name (``…-<hash>.pth`` suffix ignored)."""
    stem = Path(path).name.split(".")[0]
    stem = stem.rsplit("-", 1)[0] if "-" in stem else stem
    return TORCHGEO_FILES.get(stem)


def resolve_source(name: str | None, path: str | Path, ckpt: Any) -> tuple[Source, str]:
    """The source and layout of a checkpoint.

    Args:
        name: ``--source`` (``None``: from the file name and structure).
        path: the file (its name identifies TorchGeo's files).
        ckpt: the loaded file.

    Raises:
        ConfigError: unknown source, a file whose structure does not fit it, or a file
            whose source cannot be told (the message lists the choices).
    """
    layout = detect_layout(ckpt)
    if name is not None:
        if name not in SOURCES:
            raise ConfigError(
                f"unknown source {name!r}; expected one of {sorted(SOURCES)}", key="source"
            )
        src = SOURCES[name]
        if layout not in src.layouts:
            raise ConfigError(
                f"{path} looks like a {layout or 'unknown'} checkpoint, but source {name!r} "
                f"publishes {list(src.layouts)} files",
                key="source",
            )
        return src, layout
    if layout == "state-dict" and torchgeo_entry(path) is not None:
        return SOURCES["torchgeo"], layout
    if layout == "dino":
        teacher = ckpt["teacher"]
        conv = [v for k, v in teacher.items() if str(k).endswith("patch_embed.proj.weight")]
        if conv and int(conv[0].shape[1]) == 14:
            return SOURCES["dino-mm"], layout
        return SOURCES["ssl4eo-dino"], layout
    if layout in _BY_LAYOUT:
        return SOURCES[_BY_LAYOUT[layout]], layout
    raise ConfigError(
        f"cannot tell the source of {path} (structure: {layout or 'unknown'}); pass "
        f"--source, one of {sorted(SOURCES)}",
        key="source",
    )
