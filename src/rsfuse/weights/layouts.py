"""How each published checkpoint wraps its backbone, and how to take it out.

A *layout* turns what :func:`~rsfuse.weights.checkpoint_io.read_checkpoint` returns into
backbone state dicts with the model class's own key names (no wrapper, no ``module.`` /
``backbone.`` / ``encoder_q.`` prefix, no projection or prediction head). Each layout follows
the authors' own loading code (files in ``docs/weights.md``):

* ``moco-v2``: ``{"state_dict": {"module.encoder_q.*", "module.encoder_k.*", "module.queue",
  "module.queue_ptr"}, "optimizer", "epoch", "arch"}``; keeps ``module.encoder_q.*`` minus
  ``fc.*`` (the 2-layer MLP projector).
* ``moco-v3``: ``{"state_dict": {"module.base_encoder.*", "module.momentum_encoder.*",
  "module.predictor.*"}, "optimizer", "scaler", …}``; keeps ``module.base_encoder.*`` minus
  ``head.*`` (ViT projector) / ``fc.*`` (ResNet projector).
* ``dino``: ``{"teacher": {"backbone.*", "head.*"}, "student": {"module.backbone.*", …},
  "args": Namespace, "dino_loss", …}``; keeps the teacher with ``module.`` (a ResNet teacher
  is DDP-wrapped) and ``backbone.`` stripped, minus ``head.*`` (DINO head).
* ``mae``: ``{"model": {encoder, "mask_token", "decoder_*"}, "args", …}``; keeps ``model``
  minus ``decoder_*`` and ``mask_token``.
* ``data2vec``: ``{"model": {BEiT encoder, "mask_token", "lm_head.*"}, "args", …}``; keeps
  ``model`` (or ``module``) minus ``mask_token`` and ``lm_head.*``.
* ``state-dict``: a plain state dict (TorchGeo's files, the SSL4EO-S12 "backbone" files,
  possibly under ``state_dict``); strips a ``module.`` / ``backbone.`` prefix common to all
  keys and drops ``fc.*`` / ``head.*`` (classifiers).
* ``cromss``: a Lightning checkpoint ``{"state_dict": {"net.…"}, "hyper_parameters", …}``;
  middle fusion ``net.encoder1`` (S1), ``net.encoder`` (S2), shared ``net.decoder`` and
  ``net.segmentation_head``; late fusion ``net.model1.*`` (S1) and ``net.model2.*`` (S2);
  single-modal ``net.encoder``. Keeps one smp ResNet encoder per modality, and the U-Net
  decoder and head for bundles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from rsfuse.errors import CheckpointError

__all__ = ["LAYOUTS", "Extracted", "detect_layout", "extract"]


@dataclass
class Extracted:
    """Backbones taken out of a checkpoint.

    Attributes:
        backbones: name → backbone state dict (``""`` for the only one; ``s1`` / ``s2`` for
            CromSS).
        dropped: what was removed, as ``prefix (n keys)`` strings.
        heads: name → state dict of the rest of a full segmentation model (CromSS U-Net
            ``decoder.*`` and ``segmentation_head.*``), for bundles.
        meta: anything else read from the wrapper (epoch, arch, Lightning version).
    """

    backbones: dict[str, dict[str, Tensor]]
    dropped: list[str] = field(default_factory=list)
    heads: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def _tensors(obj: Any, where: str) -> dict[str, Tensor]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{where} is not a state dict (got {type(obj).__name__})")
    out = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not out:
        raise CheckpointError(f"{where} holds no tensors")
    return out


def _entry(ckpt: Any, keys: tuple[str, ...], where: str) -> tuple[str, dict[str, Tensor]]:
    if isinstance(ckpt, Mapping):
        for k in keys:
            if k in ckpt and isinstance(ckpt[k], Mapping):
                return k, _tensors(ckpt[k], f"{where}[{k!r}]")
    found = list(ckpt)[:8] if isinstance(ckpt, Mapping) else type(ckpt).__name__
    raise CheckpointError(f"{where}: expected a wrapper with one of {list(keys)}, found {found}")


def _under(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _without(
    state: dict[str, Tensor], prefixes: tuple[str, ...], dropped: list[str]
) -> dict[str, Tensor]:
    for p in prefixes:
        n = sum(k.startswith(p) for k in state)
        if n:
            dropped.append(f"{p}* ({n} keys)")
    return {k: v for k, v in state.items() if not k.startswith(prefixes)}


def _meta(ckpt: Any) -> dict[str, Any]:
    if not isinstance(ckpt, Mapping):
        return {}
    keep = ("epoch", "arch", "global_step", "pytorch-lightning_version")
    return {k: ckpt[k] for k in keep if isinstance(ckpt.get(k), (int, str, float))}


def _first_prefix(state: dict[str, Tensor], options: tuple[str, ...], where: str) -> str:
    for p in options:
        if any(k.startswith(p) for k in state):
            return p
    raise CheckpointError(f"{where}: no key starts with any of {list(options)}")


def _moco_v2(ckpt: Any, where: str) -> Extracted:
    _, sd = _entry(ckpt, ("state_dict",), where)
    prefix = _first_prefix(sd, ("module.encoder_q.", "encoder_q."), where)
    dropped = [
        f"{p}* ({n} keys)"
        for p in ("module.encoder_k.", "encoder_k.", "module.queue", "queue")
        if (n := sum(k.startswith(p) for k in sd))
    ]
    state = _without(_under(sd, prefix), ("fc.",), dropped)
    return Extracted({"": state}, dropped, meta=_meta(ckpt))


def _moco_v3(ckpt: Any, where: str) -> Extracted:
    _, sd = _entry(ckpt, ("state_dict",), where)
    prefix = _first_prefix(sd, ("module.base_encoder.", "base_encoder."), where)
    dropped = [
        f"{p}* ({n} keys)"
        for p in (
            "module.momentum_encoder.",
            "module.predictor.",
            "momentum_encoder.",
            "predictor.",
        )
        if (n := sum(k.startswith(p) for k in sd))
    ]
    state = _without(_under(sd, prefix), ("head.", "fc."), dropped)
    return Extracted({"": state}, dropped, meta=_meta(ckpt))


def _strip_common(state: dict[str, Tensor], prefixes: tuple[str, ...]) -> dict[str, Tensor]:
    changed = True
    while changed:
        changed = False
        for p in prefixes:
            if state and all(k.startswith(p) for k in state):
                state = _under(state, p)
                changed = True
    return state


def _dino(ckpt: Any, where: str, entry: str = "teacher") -> Extracted:
    key, sd = _entry(ckpt, (entry,), where)
    dropped = [f"{k!r} entry" for k in ("student",) if key != k and k in ckpt]
    # DINO's loader: replace "module." and "backbone." (teacher of a ResNet is DDP-wrapped)
    sd = _strip_common(sd, ("module.",))
    heads = {k: v for k, v in sd.items() if k.startswith("head.")}
    if heads:
        dropped.append(f"head.* ({len(heads)} keys: DINO projection head)")
    state = _under(sd, "backbone.")
    if not state:
        raise CheckpointError(f"{where}[{key!r}] has no 'backbone.' keys")
    state = _without(state, ("fc.", "head."), dropped)
    return Extracted({"": state}, dropped, meta=_meta(ckpt))


def _mae(ckpt: Any, where: str) -> Extracted:
    _, sd = _entry(ckpt, ("model",), where)
    dropped: list[str] = []
    state = _without(sd, ("decoder_", "mask_token", "head."), dropped)
    return Extracted({"": state}, dropped, meta=_meta(ckpt))


def _data2vec(ckpt: Any, where: str) -> Extracted:
    _, sd = _entry(ckpt, ("model", "module"), where)
    dropped: list[str] = []
    state = _without(sd, ("mask_token", "lm_head.", "head."), dropped)
    return Extracted({"": state}, dropped, meta=_meta(ckpt))


def _state_dict(ckpt: Any, where: str) -> Extracted:
    if isinstance(ckpt, Mapping) and any(isinstance(v, Tensor) for v in ckpt.values()):
        sd = _tensors(ckpt, where)
    else:
        _, sd = _entry(ckpt, ("state_dict", "model"), where)
    dropped: list[str] = []
    state = _without(_strip_common(sd, ("module.", "backbone.")), ("fc.", "head."), dropped)
    return Extracted({"": state}, dropped)


#: CromSS network prefixes: (fusion, modality) → (encoder, decoder, head) key prefixes.
CROMSS_PREFIXES: dict[str, dict[str, tuple[str, str, str]]] = {
    "middle": {
        "s1": ("net.encoder1.", "net.decoder.", "net.segmentation_head."),
        "s2": ("net.encoder.", "net.decoder.", "net.segmentation_head."),
    },
    "late": {
        "s1": ("net.model1.encoder.", "net.model1.decoder.", "net.model1.segmentation_head."),
        "s2": ("net.model2.encoder.", "net.model2.decoder.", "net.model2.segmentation_head."),
    },
}


def _cromss(ckpt: Any, where: str) -> Extracted:
    _, sd = _entry(ckpt, ("state_dict",), where)
    if any(k.startswith("net.model1.") for k in sd):
        fusion = "late"
    elif any(k.startswith("net.encoder1.") for k in sd):
        fusion = "middle"
    elif any(k.startswith("net.encoder.") for k in sd):
        fusion = "single"  # single-modal pretraining: one U-Net, modality by its channels
    else:
        raise CheckpointError(f"{where}: no CromSS network keys (net.encoder*, net.model1.*)")
    backbones, heads = {}, {}
    if fusion == "single":
        enc = _under(sd, "net.encoder.")
        m = "s1" if enc["conv1.weight"].shape[1] == 2 else "s2"
        backbones[m] = enc
        heads[m] = {
            **{f"decoder.{k}": v for k, v in _under(sd, "net.decoder.").items()},
            **{
                f"segmentation_head.{k}": v for k, v in _under(sd, "net.segmentation_head.").items()
            },
        }
    else:
        for m, (e, d, h) in CROMSS_PREFIXES[fusion].items():
            backbones[m] = _under(sd, e)
            heads[m] = {
                **{f"decoder.{k}": v for k, v in _under(sd, d).items()},
                **{f"segmentation_head.{k}": v for k, v in _under(sd, h).items()},
            }
    for m, b in backbones.items():
        if not b:
            raise CheckpointError(f"{where}: the {m} encoder has no keys")
    meta = {**_meta(ckpt), "fusion": fusion}
    return Extracted(backbones, [], heads, meta)


#: layout name → extractor(checkpoint, where) → :class:`Extracted`.
LAYOUTS: dict[str, Callable[[Any, str], Extracted]] = {
    "moco-v2": _moco_v2,
    "moco-v3": _moco_v3,
    "dino": _dino,
    "mae": _mae,
    "data2vec": _data2vec,
    "state-dict": _state_dict,
    "cromss": _cromss,
}


def detect_layout(ckpt: Any) -> str | None:
    """The layout a checkpoint's structure shows, or ``None`` when it is not clear."""
    if not isinstance(ckpt, Mapping):
        return None
    if isinstance(ckpt.get("teacher"), Mapping):
        return "dino"
    sd = ckpt.get("state_dict")
    if isinstance(sd, Mapping):
        keys = [str(k) for k in sd]
        if any(k.startswith(("module.encoder_q.", "encoder_q.")) for k in keys):
            return "moco-v2"
        if any(k.startswith(("module.base_encoder.", "base_encoder.")) for k in keys):
            return "moco-v3"
        if any(k.startswith("net.") for k in keys):
            return "cromss"
    model = ckpt.get("model")
    if isinstance(model, Mapping):
        keys = [str(k) for k in model]
        if any(k.startswith("decoder_") for k in keys):
            return "mae"
        if any(k.startswith("lm_head.") or k.endswith("attn.q_bias") for k in keys):
            return "data2vec"
    if any(isinstance(v, Tensor) for v in ckpt.values()) or isinstance(sd, Mapping):
        return "state-dict"
    return None


def extract(ckpt: Any, layout: str, where: str) -> Extracted:
    """Take the backbone(s) out of ``ckpt`` with a named layout.

    Raises:
        CheckpointError: unknown layout, or a file that does not have that structure.
    """
    if layout not in LAYOUTS:
        raise CheckpointError(f"unknown layout {layout!r}; expected one of {sorted(LAYOUTS)}")
    return LAYOUTS[layout](ckpt, where)
