"""Self-describing model bundles: ``rsfuse export`` and :func:`load_bundle`.

A bundle is a folder with two files:

* ``model.safetensors``: the network's weights (``task.model.state_dict()``), no pickle;
* ``bundle.json``: everything needed to use them without training code or config files:
  the task (``classification`` / ``segmentation``), the task class and its constructor
  arguments (the architecture), class names, the modalities and S2 / S1 bands in channel
  order, the normalisation statistics (:meth:`rsfuse.data.transforms.Normalize.describe`),
  the training patch size, and provenance (source checkpoint, rsfuse version, SHA-256 of
  the weights).

``rsfuse export CHECKPOINT --out DIR`` reads a Lightning checkpoint of
:class:`~rsfuse.tasks.classification.MultiLabelClassificationTask` or
:class:`~rsfuse.tasks.segmentation.SegmentationTask` with ``torch.load(weights_only=True)``;
the datamodule's normalisation and patch size come from the checkpoint too (rsfuse
datamodules save them), or from ``--stats`` / ``--normalization`` / ``--patch-size``.
The weights are written first and the JSON last, each under a temporary name then renamed,
so a folder with a ``bundle.json`` is complete.

Export and load refuse an incoherent bundle with a :class:`~rsfuse.errors.CheckpointError`
naming the file: normalisation statistics that are not finite (a NaN mean) or not
positive; S2 bands of the data the statistics were computed on (recorded by rsfuse
datamodules in the checkpoint as ``{"bands": {"s2": [...], "s1": [...]}}``) in another
order than the model's ``s2_band_names``; a ``bundle.json`` whose band list disagrees with
its statistics' or with the rebuilt model's.

>>> from rsfuse import load_bundle
>>> b = load_bundle("bundles/dfc2020-unet")  # doctest: +SKIP
>>> b.task, b.class_names, b.s2_bands  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rsfuse import __version__, bands
from rsfuse.data.transforms import NORMALIZE_MODES, Normalize
from rsfuse.errors import CheckpointError, ConfigError, RsfuseError
from rsfuse.io.atomic import atomic_output, write_atomic
from rsfuse.io.checkpoint_file import load_checkpoint_safely
from rsfuse.io.paths import check_not_input, check_output_folder

#: ``format`` of ``bundle.json``.
BUNDLE_FORMAT = "rsfuse-bundle/1"
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "bundle.json"

#: Task classes a bundle may name, by kind. Subclasses defined in rsfuse are accepted too.
TASK_CLASSES: dict[str, str] = {
    "classification": "rsfuse.tasks.classification.MultiLabelClassificationTask",
    "segmentation": "rsfuse.tasks.segmentation.SegmentationTask",
}

#: Constructor arguments that point at training-time files; a bundle clears them (the
#: weights are in the bundle) so rebuilding needs no other file.
_FILE_ARGS: dict[str, Any] = {
    "encoder_checkpoints": None,
    "encoder_checkpoint": None,
    "plot_dir": None,
    "export_path": None,
}


def _import_class(path: str, where: str) -> type:
    """Import ``package.module.Class``, only from rsfuse (a bundle never runs foreign code)."""
    module, _, name = path.rpartition(".")
    if not module.startswith("rsfuse."):
        raise CheckpointError(f"{where}: task class {path!r} is not an rsfuse class")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise CheckpointError(f"{where}: cannot import task class {path!r}: {e}") from e


def _task_kind(cls: type, where: str) -> str:
    for kind, path in TASK_CLASSES.items():
        if issubclass(cls, _import_class(path, where)):
            return kind
    raise CheckpointError(
        f"{where}: {cls.__module__}.{cls.__qualname__} is not a classification or "
        "segmentation task; only those can be exported for inference"
    )


def _class_path_of(hparams: dict[str, Any], where: str) -> str:
    """The task class of a checkpoint: LightningCLI's ``_class_path``, else by its arguments."""
    path = hparams.get("_class_path")
    if isinstance(path, str):
        return path
    if "architecture" in hparams:
        return TASK_CLASSES["segmentation"]
    if "fusion" in hparams:
        return TASK_CLASSES["classification"]
    raise CheckpointError(
        f"{where}: cannot tell the task of this checkpoint (no '_class_path' and neither "
        "'architecture' nor 'fusion' in its hyper-parameters)"
    )


def _jsonable(value: Any, key: str, where: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: hyper-parameter {key!r} is not JSON data: {e}") from e


def _normalize(description: Any, where: str) -> Normalize:
    """The :class:`Normalize` of a description, its statistics checked finite and positive.

    Raises:
        CheckpointError: an invalid description, a NaN / inf statistic or a std <= 0,
            naming ``where`` and the band.
    """
    if not isinstance(description, dict):
        raise CheckpointError(f"{where}: the normalisation is not a description dict")
    for key in ("s1_mean", "s1_std", "s2_mean", "s2_std"):
        values = description.get(key)
        if values is None:
            continue
        if not isinstance(values, list | tuple) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        ):
            raise CheckpointError(f"{where}: normalisation {key} is not a list of numbers")
        bad = [i for i, v in enumerate(values) if v != v or v in (float("inf"), float("-inf"))]
        if bad:
            raise CheckpointError(
                f"{where}: normalisation {key} is not finite at channel(s) {bad[:5]} "
                f"({[values[i] for i in bad[:5]]}); refusing to use NaN / inf statistics"
            )
        if key.endswith("std") and any(v <= 0 for v in values):
            raise CheckpointError(f"{where}: normalisation {key} has values <= 0: {values}")
    try:
        return Normalize.from_description(description)
    except ConfigError as e:
        raise CheckpointError(f"{where}: invalid normalisation: {e}") from e


def _check_band_order(model_bands: Sequence[str], data_bands: Any, where: str, what: str) -> None:
    """The data's S2 bands (the statistics' order) must be the model's, in the same order.

    Raises:
        CheckpointError: another order or set, naming both.
    """
    if data_bands is None:
        return
    if not isinstance(data_bands, list | tuple) or not all(isinstance(b, str) for b in data_bands):
        raise CheckpointError(f"{where}: {what} is not a list of band names")
    if list(data_bands) != list(model_bands):
        raise CheckpointError(
            f"{where}: the model takes S2 bands {list(model_bands)} but {what} is "
            f"{list(data_bands)} (band order, not only count, must agree: the statistics "
            "and inputs would be mixed up)"
        )


def _datamodule_state(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The rsfuse datamodule state saved in a checkpoint (normalisation, patch size), or {}."""
    for k, v in ckpt.items():
        if k.endswith("DataModule") and isinstance(v, dict) and "normalization" in v:
            return v
    return {}


@dataclass
class Bundle:
    """A model rebuilt from a bundle, with what inference needs to feed it.

    Attributes:
        path: the bundle folder.
        config: the parsed ``bundle.json``.
        model: the task module (eval mode, on ``device``); call it on a normalised batch
            dict (``s1`` [B, 2, H, W], ``s2`` [B, C, H, W], ``present``) for logits
            [B, K] (classification) or [B, K, H, W] (segmentation).
        normalize: the training normalisation.
    """

    path: Path
    config: dict[str, Any]
    model: nn.Module
    normalize: Normalize = field(repr=False)

    @property
    def task(self) -> str:
        """``classification`` or ``segmentation``."""
        return str(self.config["task"])

    @property
    def class_names(self) -> list[str]:
        return list(self.config["class_names"])

    @property
    def num_classes(self) -> int:
        return len(self.config["class_names"])

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.config["modalities"])

    @property
    def s2_bands(self) -> tuple[str, ...]:
        """S2 band names in the model's channel order (empty without S2)."""
        return tuple(self.config["s2_bands"])

    @property
    def s1_bands(self) -> tuple[str, ...]:
        return tuple(self.config["s1_bands"])

    @property
    def patch_size(self) -> int:
        return int(self.config["patch_size"])

    @property
    def fixed_size(self) -> bool:
        """True when the model only takes ``patch_size`` inputs (ViTs with fixed positions)."""
        return bool(self.config.get("fixed_size", False))

    @property
    def pad_multiple(self) -> int:
        """Window sides should be multiples of this (the network's stride)."""
        return int(self.config.get("pad_multiple", 1))


def _fixed_size(task: nn.Module) -> bool:
    """Whether the network needs inputs of the training size (ViT position embeddings)."""
    from rsfuse.models.vit import GatedViT

    return any(
        isinstance(m, GatedViT) or type(m).__name__ == "VisionTransformer" for m in task.modules()
    )


def _build_task(cls: type, init_args: dict[str, Any], where: str) -> nn.Module:
    try:
        return cls(**init_args)
    except RsfuseError as e:
        raise CheckpointError(f"{where}: cannot rebuild the model: {e}") from e
    except TypeError as e:
        raise CheckpointError(f"{where}: the task's arguments do not match: {e}") from e


def _load_weights(model: nn.Module, state: dict[str, Tensor], where: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in set(own) & set(state) if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{where}: weights do not match the architecture: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shape mismatches {sorted(shapes)[:5]}"
        )
    model.load_state_dict(state, strict=True)


def export_bundle(
    checkpoint: str | Path,
    out: str | Path,
    *,
    stats: str | None = None,
    normalization: str | None = None,
    patch_size: int | None = None,
) -> Path:
    """Write the bundle of a Lightning checkpoint of a classification or segmentation task.

    Args:
        checkpoint: ``.ckpt`` file of :class:`MultiLabelClassificationTask` or
            :class:`SegmentationTask` (or an rsfuse subclass), loaded with
            ``weights_only=True``.
        out: bundle folder (created; an existing bundle there is replaced file by file).
        stats: statistics name in :mod:`rsfuse.bands` when the checkpoint has no datamodule
            state (else it must not be given).
        normalization: ``standardize`` or ``dino-mm`` with ``stats``.
        patch_size: training patch size, when the checkpoint does not record it.

    Returns:
        The bundle folder.

    Raises:
        CheckpointError: unreadable checkpoint, not a supported task, weights that do not
            rebuild, or missing normalisation / patch size.
    """
    from safetensors.torch import save_file

    checkpoint, out = Path(checkpoint), Path(out)
    where = str(checkpoint)
    if not checkpoint.is_file():
        raise CheckpointError(f"checkpoint {checkpoint} not found")
    check_output_folder(out, key="out")
    check_not_input([out / WEIGHTS_NAME, out / CONFIG_NAME], [checkpoint], key="out")
    ckpt = load_checkpoint_safely(checkpoint)
    hparams = dict(ckpt.get("hyper_parameters") or {})
    class_path = _class_path_of(hparams, where)
    cls = _import_class(class_path, where)
    kind = _task_kind(cls, where)
    init_args = {k: _jsonable(v, k, where) for k, v in hparams.items() if not k.startswith("_")}
    init_args.update({k: v for k, v in _FILE_ARGS.items() if k in init_args})
    dm = _datamodule_state(ckpt)
    dm_names = dm.get("class_names")
    if (
        init_args.get("class_names") is None
        and dm_names
        and len(dm_names) == init_args.get("num_classes")
    ):  # the task was built with generic names; the datamodule knows the real ones
        init_args["class_names"] = list(dm_names)
    task = _build_task(cls, init_args, where)
    state = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    _load_weights(task.model, state, where)

    if dm and stats is not None:
        raise CheckpointError(
            f"{where} records its normalisation; --stats would contradict it, leave it out"
        )
    s2_names = list(task.s2_band_names)
    if dm:
        norm = _normalize(dm["normalization"], where)
        data_bands = dm.get("bands")
        if data_bands is not None and not isinstance(data_bands, dict):
            raise CheckpointError(f"{where}: the datamodule's 'bands' is not a dict")
        if data_bands and s2_names:
            _check_band_order(s2_names, data_bands.get("s2"), where, "the data's S2 band order")
        if data_bands and "s1" in task.modalities:
            s1 = data_bands.get("s1")
            if s1 is not None and list(s1) != list(bands.S1_ORDER):
                raise CheckpointError(
                    f"{where}: the data's S1 bands are {s1}, not {list(bands.S1_ORDER)}"
                )
    elif stats is not None:
        mode = normalization or "standardize"
        if mode not in NORMALIZE_MODES:
            raise ConfigError(f"unknown normalisation {mode!r}", key="normalization")
        norm = Normalize.from_stats(stats, task.s2_band_names, mode=mode)
    else:
        raise CheckpointError(
            f"{where} has no rsfuse datamodule state (normalisation statistics); pass "
            "--stats NAME (e.g. bigearthnet-v2, ssl4eo-s12-l1c) and --normalization"
        )
    size = patch_size or dm.get("patch_size")
    if not size:
        raise CheckpointError(f"{where} does not record its patch size; pass --patch-size")
    if s2_names and (not norm.has_s2 or norm.s2_mean.numel() != len(s2_names)):
        raise CheckpointError(
            f"{where}: the normalisation has {norm.s2_mean.numel()} S2 bands but the model "
            f"takes {len(s2_names)}"
        )
    if "s1" in task.modalities and not norm.has_s1:
        raise CheckpointError(f"{where}: the normalisation has no S1 statistics")

    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in task.model.state_dict().items()}
    with atomic_output(out / WEIGHTS_NAME) as tmp:  # beside the target, with the user's umask
        save_file(weights, str(tmp))
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    description = norm.describe()
    description["s2_bands"] = s2_names  # the order the statistics are in
    config = {
        "format": BUNDLE_FORMAT,
        "task": kind,
        "class_path": f"{cls.__module__}.{cls.__qualname__}",
        "init_args": init_args,
        "class_names": list(task.class_names),
        "modalities": list(task.modalities),
        "s2_bands": s2_names,
        "s2_product": init_args.get("s2_product"),
        "s1_bands": list(bands.S1_ORDER) if "s1" in task.modalities else [],
        "channels": list(task.channels),
        "normalization": description,
        "patch_size": int(size),
        "fixed_size": _fixed_size(task),
        "pad_multiple": int(getattr(task.model, "pad_multiple", 1)),
        "ignore_index": init_args.get("ignore_index"),
        "threshold": init_args.get("threshold", 0.5) if kind == "classification" else None,
        "weights": WEIGHTS_NAME,
        "weights_sha256": digest,
        "source_checkpoint": checkpoint.name,
        "epoch": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
        "rsfuse_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        text = json.dumps(config, indent=2, allow_nan=False) + "\n"
    except ValueError as e:  # a NaN / inf that slipped into a hyper-parameter
        raise CheckpointError(f"{where}: the bundle would hold NaN / inf values: {e}") from e
    write_atomic(out / CONFIG_NAME, text)
    return out


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a bundle may hold")


def read_bundle_config(path: str | Path) -> dict[str, Any]:
    """Parse and check ``bundle.json`` of a bundle folder.

    Raises:
        CheckpointError: no folder, no / unreadable / invalid JSON, or missing keys.
    """
    path = Path(path)
    cfg_path = path / CONFIG_NAME
    if not path.is_dir():
        raise CheckpointError(f"bundle {path} not found (expected a folder from rsfuse export)")
    if not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path} not found: {path} is not a complete rsfuse bundle")
    try:
        config = json.loads(cfg_path.read_text(), parse_constant=_refuse_constant)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {cfg_path}: {e}") from e
    if not isinstance(config, dict) or config.get("format") != BUNDLE_FORMAT:
        raise CheckpointError(f"{cfg_path} is not an rsfuse bundle ({BUNDLE_FORMAT})")
    need = ("task", "class_path", "init_args", "class_names", "modalities", "s2_bands")
    need += ("s1_bands", "normalization", "patch_size", "weights")
    missing = [k for k in need if k not in config]
    if missing:
        raise CheckpointError(f"{cfg_path} lacks {missing}")
    s2 = config["s2_bands"]
    if not isinstance(s2, list) or not all(isinstance(b, str) for b in s2):
        raise CheckpointError(f"{cfg_path}: s2_bands is not a list of band names")
    if len(set(s2)) != len(s2):
        raise CheckpointError(f"{cfg_path}: s2_bands lists a band twice: {s2}")
    norm = config["normalization"]
    if isinstance(norm, dict) and "s2_bands" in norm:
        _check_band_order(s2, norm["s2_bands"], str(cfg_path), "the statistics' band order")
    return config


def load_bundle(path: str | Path, device: str | torch.device = "cpu") -> Bundle:
    """Rebuild a bundle's model from its folder alone.

    Args:
        path: bundle folder written by :func:`export_bundle` / ``rsfuse export``.
        device: where to put the model.

    Returns:
        A :class:`Bundle` with the model in eval mode.

    Raises:
        CheckpointError: a missing or invalid file, a weight file whose checksum differs
            from the JSON, or weights that do not fit the architecture (names the file).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    config = read_bundle_config(path)
    weights = path / str(config["weights"])
    if not weights.is_file():
        raise CheckpointError(f"bundle weights {weights} not found")
    data = weights.read_bytes()
    expected = config.get("weights_sha256")
    if expected and hashlib.sha256(data).hexdigest() != expected:
        raise CheckpointError(f"{weights} is corrupt: its SHA-256 differs from {CONFIG_NAME}")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {weights}: {e}") from e
    cls = _import_class(str(config["class_path"]), str(path))
    init_args = dict(config["init_args"])
    if init_args.get("fusion") == "gmu" and "gmu_gate_input" not in init_args:
        # rsfuse 0.1 computed the GMU gate from the raw features (Eq. 4 as printed); later
        # versions default to MGSViT's code (the tanh outputs): keep the trained behaviour.
        init_args["gmu_gate_input"] = "eq4"
    task = _build_task(cls, init_args, str(path))
    _check_band_order(
        list(getattr(task, "s2_band_names", ())), config["s2_bands"], str(path / CONFIG_NAME),
        "s2_bands",
    )  # fmt: skip
    _load_weights(task.model, state, str(weights))
    norm = _normalize(config["normalization"], str(path / CONFIG_NAME))
    n_s2 = len(config["s2_bands"])
    if n_s2 and (not norm.has_s2 or norm.s2_mean.numel() != n_s2):
        raise CheckpointError(
            f"{path / CONFIG_NAME}: the statistics have {norm.s2_mean.numel()} S2 bands but "
            f"s2_bands lists {n_s2}"
        )
    task.eval().to(device)
    return Bundle(path, config, task, norm)
