"""``rsfuse export --format timm|torchgeo``: rsfuse encoders for timm and TorchGeo.

The encoders of a trained task (a Lightning checkpoint of the classification or segmentation
task, or its bundle) or an rsfuse encoder file are written so the other library loads them
unchanged:

* ``timm``: ``NAME.safetensors`` holding the timm model's state dict without a classifier,
  loaded by::

      timm.create_model(MODEL, pretrained=True, num_classes=0, in_chans=C, **KWARGS,
                        pretrained_cfg_overlay=dict(file="NAME.safetensors",
                                                    num_classes=0, input_size=(C, H, W)))

  (``num_classes=0`` in the overlay keeps timm's loading strict: every key must match);
* ``torchgeo``: ``NAME.ckpt``, the checkpoint layout TorchGeo's trainers read from a path
  (``torchgeo.trainers.utils.extract_backbone``: ``hyper_parameters["model"]`` and
  ``state_dict`` keys ``model.*``), so ``ClassificationTask(model=MODEL, weights="NAME.ckpt",
  in_channels=C, …)`` and, for ResNets, ``SemanticSegmentationTask(model="unet",
  backbone=MODEL, weights="NAME.ckpt", …)`` load it; plus ``NAME.pth``, the plain timm
  state dict TorchGeo hosts its own weights as (``model.load_state_dict(torch.load(…))``
  after ``torchgeo.models.resnet50(in_chans=C)`` / ``timm.create_model``).

Beside each, ``NAME.json`` records the bands in channel order, the normalisation the encoder
was trained with (a ``Normalize.describe()`` dict), the model name and constructor
arguments, and a usage line. ``channel_order`` permutes the first layer so the encoder takes
another band order exactly (e.g. TorchGeo's BigEarthNet stack ``VH, VV, B01 … B12``).

Supported encoders: timm backbones (``vit_*``, ``resnet*``, ``beit_*``, … as built by the
tasks) and smp ResNet encoders (same keys as timm's ``resnet*`` minus ``fc``). rsfuse's own
``GatedViT`` (MGSViT) has no timm equivalent (linear patch embedding, gated shortcuts):
export it as a bundle.
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
from rsfuse.io.atomic import write_atomic
from rsfuse.weights.channels import ChannelPlan, canonical_bands
from rsfuse.weights.torchgeo_adapters import TORCHGEO_BIGEARTHNET_ORDER

__all__ = ["EXPORT_FORMATS", "ExportableEncoder", "export_encoders", "read_encoders"]

EXPORT_FORMATS = ("timm", "torchgeo")
_SMP_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


@dataclass
class ExportableEncoder:
    """An encoder to export, as a timm model description and its weights.

    Attributes:
        name: file stem (``s1``, ``s2``, ``early``, ``encoder``).
        timm_name: timm model name.
        kwargs: timm constructor arguments (without ``in_chans`` / ``num_classes``).
        state: timm state dict (no classifier).
        channels: input band names in channel order.
        normalization: ``Normalize.describe()`` of the training data, if known.
        first_layer: key of the input layer's weight.
        origin: where it came from (file, task key).
    """

    name: str
    timm_name: str
    kwargs: dict[str, Any]
    state: dict[str, Tensor]
    channels: tuple[str, ...]
    normalization: dict[str, Any] | None
    first_layer: str
    origin: str


def _first_layer(timm_name: str) -> str:
    """Key of a timm model's input layer weight (its pretrained config's ``first_conv``)."""
    from timm.models import get_pretrained_cfg_value

    first = get_pretrained_cfg_value(timm_name, "first_conv")
    if isinstance(first, (list, tuple)):
        first = first[0]
    if not first:
        raise CheckpointError(f"timm model {timm_name} declares no first_conv")
    return f"{first}.weight"


def _from_module(
    name: str,
    module: nn.Module,
    kind: str,
    kwargs: dict[str, Any],
    channels: Sequence[str],
    normalization: dict[str, Any] | None,
    origin: str,
) -> ExportableEncoder:
    """Describe a task's encoder module as a timm model."""
    from rsfuse.models.vit import GatedViT

    if isinstance(module, GatedViT):
        raise ConfigError(
            f"{origin}: encoder {name!r} is rsfuse's GatedViT (MGSViT), which has no timm / "
            "TorchGeo equivalent; export it as a bundle (rsfuse export CKPT --out DIR)",
            key="format",
        )
    state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    arch = (getattr(module, "pretrained_cfg", None) or {}).get("architecture")
    if arch is not None:  # a timm model built by rsfuse.models.backbones
        timm_name = str(arch)
        kw = {k: v for k, v in kwargs.items() if k not in ("in_chans", "num_classes")}
    elif kind in _SMP_RESNETS:  # smp ResNet encoder: torchvision keys minus fc = timm's
        timm_name, kw = kind, {}
    else:
        raise ConfigError(
            f"{origin}: encoder {name!r} ({type(module).__name__}, {kind!r}) has no timm "
            f"export; supported: timm backbones and smp encoders {list(_SMP_RESNETS)}",
            key="format",
        )
    first = _first_layer(timm_name)
    return ExportableEncoder(
        name, timm_name, kw, state, tuple(channels), normalization, first, origin
    )


def _task_encoders(task: nn.Module, config: dict[str, Any], origin: str) -> list[ExportableEncoder]:
    init = config["init_args"]
    norm = config.get("normalization")
    s2 = tuple(config["s2_bands"])
    if config["task"] == "classification":
        out = []
        for key, enc in task.model.encoders.items():
            channels = (
                tuple(config["channels"])
                if key == "early"
                else (registry.S1_ORDER if key == "s1" else s2)
            )
            kw = dict(init.get("backbone_kwargs") or {})
            out.append(_from_module(key, enc, init.get("backbone", ""), kw, channels, norm, origin))
        return out
    encoder = task.model.encoder
    kw = dict(init.get("encoder_kwargs") or {})
    return [
        _from_module(
            "encoder", encoder, init.get("encoder", ""), kw, tuple(config["channels"]), norm, origin
        )
    ]


def _encoder_file(path: Path) -> list[ExportableEncoder]:
    """An rsfuse encoder file (safetensors + JSON: imported or exported by pretraining)."""
    from rsfuse.models.checkpoints import read_encoder_config, read_state_dict

    meta = read_encoder_config(path)
    if meta is None:
        raise CheckpointError(f"{path} has no encoder JSON beside it; cannot tell the model")
    state = read_state_dict(path)
    cls = meta.get("class")
    name = path.stem
    norm = meta.get("normalization")
    channels = tuple(meta["bands"])
    if cls == "timm":
        kw = {k: v for k, v in meta["kwargs"].items() if k not in ("in_chans", "num_classes")}
        timm_name = str(meta["model"])
    elif cls == "smp" and meta.get("encoder") in _SMP_RESNETS:
        timm_name, kw = str(meta["encoder"]), {}
    else:
        raise ConfigError(
            f"{path}: encoder class {cls!r} has no timm export (supported: timm backbones, "
            f"smp encoders {list(_SMP_RESNETS)})",
            key="format",
        )
    first = _first_layer(timm_name)
    return [ExportableEncoder(name, timm_name, kw, state, channels, norm, first, str(path))]


def read_encoders(
    src: str | Path,
    *,
    stats: str | None = None,
    normalization: str | None = None,
    patch_size: int | None = None,
) -> list[ExportableEncoder]:
    """The exportable encoders of a task checkpoint, a bundle folder or an encoder file.

    Args:
        src: Lightning ``.ckpt`` of a classification / segmentation task, a bundle folder,
            or an rsfuse encoder ``.safetensors`` with its JSON.
        stats, normalization, patch_size: for checkpoints that do not record them (see
            :func:`rsfuse.inference.bundle.export_bundle`).

    Raises:
        CheckpointError, ConfigError: unreadable input or an encoder without timm export.
    """
    from rsfuse.inference.bundle import export_bundle, load_bundle

    src = Path(src)
    if src.is_dir():
        b = load_bundle(src)
        return _task_encoders(b.model, b.config, str(src))
    if src.suffix == ".safetensors":
        return _encoder_file(src)
    with tempfile.TemporaryDirectory() as tmp:
        out = export_bundle(
            src, Path(tmp) / "bundle", stats=stats, normalization=normalization,
            patch_size=patch_size,
        )  # fmt: skip
        b = load_bundle(out)
        return _task_encoders(b.model, b.config, str(src))


def _order(enc: ExportableEncoder, channel_order: str | Sequence[str] | None) -> ChannelPlan:
    if channel_order is None or channel_order == "rsfuse":
        target = enc.channels
    elif channel_order == "torchgeo-bigearthnet":
        target = tuple(b for b in TORCHGEO_BIGEARTHNET_ORDER if b in enc.channels)
        missing = [b for b in enc.channels if b not in target]
        if missing:
            raise ConfigError(f"TorchGeo's BigEarthNet stack has no {missing}", key="channel_order")
    else:
        names = channel_order.split(",") if isinstance(channel_order, str) else channel_order
        target = canonical_bands([n for n in names if n.strip()])
    return ChannelPlan(enc.channels, target, adapt=False)


def _usage(fmt: str, enc: ExportableEncoder, stem: str, c: int) -> str:
    kw = "".join(f", {k}={v!r}" for k, v in enc.kwargs.items())
    if fmt == "timm":
        size = enc.kwargs.get("img_size", 224)
        return (
            f"timm.create_model({enc.timm_name!r}, pretrained=True, num_classes=0, in_chans={c}"
            f"{kw}, pretrained_cfg_overlay=dict(file='{stem}.safetensors', num_classes=0, "
            f"input_size=({c}, {size}, {size})))"
        )
    return (
        f"torchgeo.trainers.ClassificationTask(model={enc.timm_name!r}, "
        f"weights='{stem}.ckpt', in_channels={c}, num_classes=K)"
        + (
            f"; SemanticSegmentationTask(model='unet', backbone={enc.timm_name!r}, "
            f"weights='{stem}.ckpt', in_channels={c}, num_classes=K)"
            if enc.timm_name in _SMP_RESNETS
            else ""
        )
        + f"; or timm.create_model({enc.timm_name!r}, in_chans={c}, num_classes=0{kw})"
        f".load_state_dict(torch.load('{stem}.pth'))"
    )


def _save_torch(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def export_encoders(
    src: str | Path,
    out: str | Path,
    fmt: str = "timm",
    *,
    channel_order: str | Sequence[str] | None = None,
    stats: str | None = None,
    normalization: str | None = None,
    patch_size: int | None = None,
) -> list[Path]:
    """Write the encoders of ``src`` for timm or TorchGeo into the folder ``out``.

    Args:
        src: task checkpoint, bundle folder or rsfuse encoder file.
        out: output folder (created).
        fmt: ``timm`` or ``torchgeo``.
        channel_order: ``rsfuse`` (default), ``torchgeo-bigearthnet`` (``VH, VV, B01 …``)
            or an explicit list of the same bands in another order.
        stats, normalization, patch_size: see :func:`read_encoders`.

    Returns:
        The weight files written (``.safetensors`` for timm, ``.ckpt`` for TorchGeo).

    Raises:
        ConfigError: unknown format or channel order, or ``out`` inside / equal to ``src``.
    """
    from safetensors.torch import save_file

    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; expected one of {EXPORT_FORMATS}", "format")
    src, out = Path(src), Path(out)
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise ConfigError(f"the output {out} would be written inside the input {src}", "out")
    encoders = read_encoders(src, stats=stats, normalization=normalization, patch_size=patch_size)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for enc in encoders:
        plan = _order(enc, channel_order)
        state = dict(enc.state)
        state[enc.first_layer] = plan.remap(state[enc.first_layer], enc.first_layer)
        c = len(plan.target)
        norm = enc.normalization
        if norm is not None and not plan.identity:
            norm = {**norm, "channel_order_note": "statistics listed S2 then S1 (VV, VH)"}
        meta = {
            "format": f"rsfuse-{fmt}-export/1",
            "library": fmt,
            "model": enc.timm_name,
            "kwargs": {"in_chans": c, "num_classes": 0, **enc.kwargs},
            "bands": list(plan.target),
            "normalization": norm,
            "source": enc.origin,
            "encoder": enc.name,
            "rsfuse_version": __version__,
            "usage": _usage(fmt, enc, enc.name, c),
        }
        if fmt == "timm":
            path = out / f"{enc.name}.safetensors"
            tmp = path.with_name(f".{path.name}.tmp")
            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
            tmp.replace(path)
            size = int(enc.kwargs.get("img_size", 224))
            meta["pretrained_cfg_overlay"] = {
                "file": path.name,
                "num_classes": 0,
                "input_size": [c, size, size],
            }
        else:
            path = out / f"{enc.name}.ckpt"
            hp = {"model": enc.timm_name, "backbone": enc.timm_name, "in_channels": c}
            sd = {f"model.{k}": v for k, v in state.items()}
            _save_torch({"hyper_parameters": hp, "state_dict": sd}, path)
            _save_torch(state, out / f"{enc.name}.pth")
            meta["files"] = {"trainer_weights": path.name, "state_dict": f"{enc.name}.pth"}
        write_atomic(out / f"{enc.name}.json", json.dumps(meta, indent=2) + "\n")
        written.append(path)
    return written
