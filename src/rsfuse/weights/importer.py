"""``rsfuse weights import``: published checkpoints → rsfuse encoder files (or a bundle).

:func:`import_weights` reads a published file without running code from it
(:mod:`~rsfuse.weights.checkpoint_io`), recognises its source and layout
(:mod:`~rsfuse.weights.sources`, :mod:`~rsfuse.weights.layouts`), rebuilds each backbone as
a timm module (:mod:`~rsfuse.weights.architectures`), maps its input channels onto rsfuse's
order (:mod:`~rsfuse.weights.channels`), loads it with every key and shape checked, and
writes it with :func:`rsfuse.models.checkpoints.export_encoder`: ``ENC.safetensors`` plus
``ENC.json`` holding

* ``bands``: the input channels in the order the encoder is fed (rsfuse order: S2 bands in
  registry order, then ``VV``, ``VH``); the classification task refuses an encoder whose
  bands differ from its own;
* ``normalization``: what the weights expect, as a ``Normalize.describe()`` dict, with
  ``normalization_recipe`` / ``normalization_note``;
* ``source``: publisher, file name, SHA-256, layout, paper, code, what was dropped;
* ``channel_mapping``: source channels, adaptations, whether the mapping is exact;
* ``usage``: the task arguments that build a matching encoder (``backbone`` /
  ``backbone_kwargs`` for classification, ``encoder`` / ``encoder_kwargs`` for
  segmentation).

Those files load through the tasks' existing keys: ``encoder_checkpoints`` (classification)
and ``encoder_checkpoint`` (segmentation). A CromSS checkpoint holds a whole U-Net, so it can
also become a segmentation bundle (``bundle=True``) that ``rsfuse predict`` runs as is.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rsfuse import __version__
from rsfuse import bands as registry
from rsfuse.errors import CheckpointError, ConfigError
from rsfuse.models.checkpoints import export_encoder
from rsfuse.weights.architectures import (
    Architecture,
    build,
    infer_architecture,
    load_into,
    resample_positions,
)
from rsfuse.weights.channels import ChannelPlan, canonical_bands, rsfuse_order
from rsfuse.weights.checkpoint_io import read_checkpoint, sha256_of
from rsfuse.weights.layouts import Extracted, extract
from rsfuse.weights.normalization import RECIPES
from rsfuse.weights.sources import INPUTS, Source, resolve_source, torchgeo_entry

__all__ = ["ImportedEncoder", "import_weights", "prepare"]


@dataclass
class ImportedEncoder:
    """One backbone ready to be written.

    Attributes:
        name: ``""`` or the modality of a multi-encoder source (CromSS ``s1`` / ``s2``).
        module: the timm module with the weights loaded (input channels = ``plan.target``).
        arch: its architecture.
        plan: the channel mapping applied.
        input_kind: the published input kind (:data:`~rsfuse.weights.sources.INPUTS`).
        config: the encoder JSON (without ``format`` / ``weights``).
    """

    name: str
    module: nn.Module
    arch: Architecture
    plan: ChannelPlan
    input_kind: str
    config: dict[str, Any]


def _modality(channels: Sequence[str]) -> str:
    sensors = {registry.BANDS[b].sensor for b in channels}
    return "s1s2" if sensors == {"s1", "s2"} else sensors.pop()


def _product(channels: Sequence[str]) -> str | None:
    s2 = [b for b in channels if registry.BANDS[b].sensor == "s2"]
    if not s2:
        return None
    return "L1C" if "B10" in s2 else "L2A"


def _target_bands(source_channels: tuple[str, ...], bands: Sequence[str] | None) -> tuple[str, ...]:
    if bands is None:
        return rsfuse_order(source_channels)
    wanted = canonical_bands(bands)
    sensors = {registry.BANDS[b].sensor for b in wanted}
    if "s1" not in sensors:  # S2 bands given for a joint source: keep its S1 channels
        wanted = (*wanted, *[b for b in registry.S1_ORDER if b in source_channels])
    if "s2" not in sensors:
        s2 = [b for b in rsfuse_order(source_channels) if registry.BANDS[b].sensor == "s2"]
        wanted = (*s2, *wanted)
    return wanted


def _input_kind(src: Source, arch: Architecture, given: str | None, where: str) -> str:
    if given is not None:
        if given not in src.inputs:
            raise ConfigError(
                f"{src.name} publishes inputs {sorted(src.inputs)}, not {given!r}", key="input"
            )
        kind = given
    elif arch.in_chans in src.by_channels:
        kind = src.by_channels[arch.in_chans]
    else:
        raise ConfigError(
            f"{where}: {arch.in_chans} input channels match no input of {src.name} "
            f"({dict(src.by_channels)}); pass --input",
            key="input",
        )
    n = len(INPUTS[kind][1])
    if n != arch.in_chans:
        raise CheckpointError(
            f"{where}: input {kind!r} has {n} channels but the weights take {arch.in_chans}"
        )
    return kind


def prepare(
    src: str | Path,
    *,
    source: str | None = None,
    input_kind: str | None = None,
    bands: Sequence[str] | None = None,
    adapt: bool = False,
    modalities: Sequence[str] | None = None,
    img_size: int | None = None,
    num_heads: int | None = None,
) -> tuple[list[ImportedEncoder], Extracted, Source]:
    """Read a published checkpoint and rebuild its backbone(s) with rsfuse's channel order.

    Args:
        src: the published file.
        source: source id (:data:`~rsfuse.weights.sources.SOURCES`); ``None`` = recognise it.
        input_kind: what the channels are (``s2-l1c``, ``s2-l2a``, ``s2-rgb``, ``s2-hr9``,
            ``s1``, ``s2-l2a+s1-vhvv``); ``None`` = from the source and channel count.
        bands: the bands the rsfuse model will be fed, in order (default: the published
            bands in rsfuse order); S1-only or S2-only lists apply to that sensor.
        adapt: allow a different band set (zero weights for extra bands, dropped weights
            for missing ones; see :mod:`~rsfuse.weights.channels`).
        modalities: for multi-encoder sources (CromSS), which encoders to keep.
        img_size: resample a ViT's position embedding to this input size.
        num_heads: attention heads, overriding the source / standard table.

    Returns:
        (encoders, what the layout extracted, the source).

    Raises:
        CheckpointError: unreadable file, unexpected structure, keys or shapes.
        ConfigError: unknown source / input, or bands that differ without ``adapt``.
    """
    src = Path(src)
    ckpt = read_checkpoint(src)
    source_obj, layout = resolve_source(source, src, ckpt)
    extracted = extract(ckpt, layout, str(src))
    digest = sha256_of(src)
    tg = torchgeo_entry(src) if source_obj.name == "torchgeo" else None
    if tg is not None and input_kind is None:
        input_kind = tg[1]
    names = list(extracted.backbones)
    if modalities is not None:
        names = [n for n in names if n in modalities]
        if not names:
            raise ConfigError(
                f"{src} has encoders {list(extracted.backbones)}, none of {list(modalities)}",
                key="modality",
            )
    out = []
    for name in names:
        state = dict(extracted.backbones[name])
        where = f"{src}" + (f" ({name} encoder)" if name else "")
        arch = infer_architecture(state, num_heads or source_obj.num_heads)
        kind = _input_kind(source_obj, arch, input_kind if len(names) == 1 else None, where)
        source_channels = INPUTS[kind][1]
        target = _target_bands(source_channels, bands) if _applies(bands, kind) else None
        plan = ChannelPlan(source_channels, target or rsfuse_order(source_channels), adapt)
        state[arch.first_layer] = plan.remap(state[arch.first_layer], arch.first_layer)
        if img_size is not None:
            state = resample_positions(arch, state, img_size)
        module = build(arch, in_chans=len(plan.target))
        filled = load_into(module, arch, state)
        module.eval()
        recipe = RECIPES[source_obj.inputs[kind]]
        modality = _modality(plan.target)
        config: dict[str, Any] = {
            "class": "timm",
            "model": arch.timm_name,
            "kwargs": {"in_chans": len(plan.target), **arch.kwargs},
            "family": arch.family,
            "smp_encoder": arch.smp_encoder,
            "modality": modality,
            "bands": list(plan.target),
            "s2_product": _product(plan.target),
            "normalization": recipe.describe(plan.target, unused=plan.added),
            "normalization_recipe": recipe.name,
            "normalization_note": recipe.note,
            "channel_mapping": {**plan.describe(), "input_kind": kind},
            "usage": arch.usage(),
            "source": {
                "name": source_obj.name,
                "title": source_obj.title,
                "paper": source_obj.paper,
                "code": source_obj.code,
                "files": source_obj.files,
                "file": src.name,
                "sha256": digest,
                "layout": layout,
                "encoder": name or None,
                "dropped": extracted.dropped,
                "filled_with_initial_values": filled,
                "torchgeo_weights": tg[0] if tg else None,
                "notes": [*arch.notes, *source_obj.notes],
                **{k: v for k, v in extracted.meta.items() if k != "fusion"},
            },
            "method": source_obj.name,
            "rsfuse_version": __version__,
        }
        if "fusion" in extracted.meta:
            config["source"]["fusion"] = extracted.meta["fusion"]
        out.append(ImportedEncoder(name, module, arch, plan, kind, config))
    return out, extracted, source_obj


def _applies(bands: Sequence[str] | None, kind: str) -> bool:
    """Whether a ``bands`` list is meant for an encoder of this input kind."""
    if bands is None:
        return False
    sensors = {registry.BANDS[b].sensor for b in canonical_bands(bands)}
    modality = INPUTS[kind][0]
    return modality == "s1s2" or modality in sensors


def _out_paths(out: Path, names: list[str]) -> dict[str, Path]:
    base = out.with_suffix("") if out.suffix == ".safetensors" else out
    if len(names) == 1:
        return {names[0]: base.with_name(base.name + ".safetensors")}
    return {n: base.with_name(f"{base.name}_{n}.safetensors") for n in names}


def _check_not_input(src: Path, outs: Sequence[Path]) -> None:
    s = src.resolve()
    for o in outs:
        r = o.resolve()
        if r == s or s in r.parents or r.with_suffix(".json") == s:
            raise ConfigError(f"the output {o} would overwrite the input {src}", key="out")


def import_weights(
    src: str | Path,
    out: str | Path,
    *,
    source: str | None = None,
    input_kind: str | None = None,
    bands: Sequence[str] | None = None,
    adapt: bool = False,
    modalities: Sequence[str] | None = None,
    img_size: int | None = None,
    num_heads: int | None = None,
    bundle: bool = False,
    patch_size: int | None = None,
) -> list[Path]:
    """Import a published checkpoint as rsfuse encoder file(s) or a segmentation bundle.

    Args:
        src: the published file (``.pth``, ``.pth.tar``, ``.ckpt``, ``.safetensors``).
        out: encoder path (``ENC`` or ``ENC.safetensors``; a two-encoder source writes
            ``ENC_s1.safetensors`` and ``ENC_s2.safetensors``), or the bundle folder.
        bundle: write a segmentation bundle (sources with a whole network: CromSS) of the
            one encoder chosen by ``modalities`` (default ``s2``).
        patch_size: the bundle's patch size (default: CromSS's 256-pixel crops).
        source, input_kind, bands, adapt, modalities, img_size, num_heads: see
            :func:`prepare`.

    Returns:
        The written weight files (encoders) or ``[bundle folder]``.

    Raises:
        CheckpointError, ConfigError: see :func:`prepare`; also an output that would
            overwrite the input, or ``bundle`` for a source without a whole network.
    """
    src, out = Path(src), Path(out)
    if bundle:
        modalities = list(modalities or ["s2"])
        if len(modalities) != 1:
            raise ConfigError("a bundle holds one network: give one modality", key="modality")
    encoders, extracted, source_obj = prepare(
        src,
        source=source,
        input_kind=input_kind,
        bands=bands,
        adapt=adapt,
        modalities=modalities,
        img_size=img_size,
        num_heads=num_heads,
    )
    if bundle:
        _check_not_input(src, [out / "bundle.json"])
        return [_write_bundle(encoders[0], extracted, source_obj, src, out, patch_size or 256)]
    paths = _out_paths(out, [e.name for e in encoders])
    _check_not_input(src, list(paths.values()))
    written = []
    for enc in encoders:
        written.append(export_encoder(enc.module, paths[enc.name], enc.config))
    return written


def _decoder_channels(rest: dict[str, Tensor]) -> list[int]:
    """U-Net decoder widths from ``decoder.blocks.{i}.conv1.0.weight`` [out, in, 3, 3]."""
    widths = []
    while (w := rest.get(f"decoder.blocks.{len(widths)}.conv1.0.weight")) is not None:
        widths.append(int(w.shape[0]))
    if not widths:
        raise CheckpointError("no U-Net decoder blocks (decoder.blocks.0.conv1.0.weight)")
    return widths


def _segmentation_task(
    enc: ImportedEncoder, num_classes: int, class_names: list[str], decoder: list[int]
) -> Any:
    from rsfuse.tasks.segmentation import SegmentationTask

    if enc.arch.family != "resnet" or enc.arch.smp_encoder is None:
        raise ConfigError("bundles need a standard smp ResNet encoder", key="bundle")
    modality = enc.config["modality"]
    s2 = [b for b in enc.plan.target if registry.BANDS[b].sensor == "s2"]
    return SegmentationTask(
        modalities=[modality],
        s2_bands=s2 or "all",
        s2_product=enc.config["s2_product"] or "L1C",
        num_classes=num_classes,
        class_names=class_names,
        architecture="unet",
        encoder=enc.arch.smp_encoder,
        decoder_kwargs={"encoder_depth": len(decoder), "decoder_channels": decoder},
        plot_samples=0,
    )


def _write_bundle(
    enc: ImportedEncoder,
    extracted: Extracted,
    source_obj: Source,
    src: Path,
    out: Path,
    patch_size: int,
) -> Path:
    """A segmentation bundle of a whole published U-Net (CromSS), through
    :func:`rsfuse.inference.bundle.export_bundle`."""
    from rsfuse.data.classes import DW9
    from rsfuse.inference.bundle import CONFIG_NAME, export_bundle
    from rsfuse.io.atomic import write_atomic

    rest = extracted.heads.get(enc.name)
    if not rest:
        raise ConfigError(
            f"{src} ({source_obj.name}) holds an encoder only; a bundle needs a whole "
            "network (CromSS checkpoints have one)",
            key="bundle",
        )
    if not enc.plan.exact or enc.plan.added:
        raise ConfigError("a bundle keeps the published bands: drop --bands / --adapt", "bands")
    head = rest["segmentation_head.0.weight"]
    k = int(head.shape[0])
    names = list(DW9) if k == len(DW9) else [f"class_{i}" for i in range(k)]
    task = _segmentation_task(enc, k, names, _decoder_channels(rest))
    state: dict[str, Tensor] = {f"encoder.{n}": v for n, v in enc.module.state_dict().items()}
    state.update(rest)
    own = task.model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{src}: the U-Net does not fit smp Unet({enc.arch.smp_encoder}): missing "
            f"{missing[:6]}, unexpected {unexpected[:6]}, shape mismatches {shapes[:6]}"
        )
    task.model.load_state_dict(state, strict=True)
    hparams = {**dict(task.hparams), "_class_path": "rsfuse.tasks.segmentation.SegmentationTask"}
    ckpt = {
        "state_dict": {f"model.{n}": v for n, v in task.model.state_dict().items()},
        "hyper_parameters": hparams,
        "ImportedDataModule": {
            "normalization": enc.config["normalization"],
            "patch_size": patch_size,
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp_ckpt = Path(tmp) / src.name
        torch.save(ckpt, tmp_ckpt)
        export_bundle(tmp_ckpt, out)
    cfg_path = out / CONFIG_NAME
    cfg = json.loads(cfg_path.read_text())
    cfg["source"] = enc.config["source"]
    cfg["normalization_recipe"] = enc.config["normalization_recipe"]
    cfg["normalization_note"] = enc.config["normalization_note"]
    write_atomic(cfg_path, json.dumps(cfg, indent=2) + "\n")
    return out
