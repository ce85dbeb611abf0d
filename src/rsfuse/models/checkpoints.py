"""Saving and loading encoder weights with key checks.

An encoder file holds one encoder's ``state_dict``: a ``.safetensors`` file, or a torch file
(loaded with ``weights_only=True``) that is either a plain state dict or a Lightning
checkpoint (its ``state_dict`` entry). ``prefix`` selects one encoder inside a larger model
(e.g. ``model.encoders.s1.``). Every mismatch raises :class:`~rsfuse.errors.CheckpointError`
naming the file and the missing, unexpected or mis-shaped keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rsfuse.errors import CheckpointError
from rsfuse.io.atomic import atomic_output, write_atomic


def save_encoder(module: nn.Module, path: str | Path) -> Path:
    """Write ``module.state_dict()`` to ``path`` (safetensors if it ends so, else torch).

    Written under a temporary name beside ``path`` and renamed (with the user's umask), so
    an interrupted save never leaves a file that looks complete.
    """
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_output(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, str(tmp))
        else:
            torch.save(state, tmp)
    return path


#: ``format`` value of the JSON that describes an exported encoder.
ENCODER_FORMAT = "rsfuse-encoder/1"


def encoder_config_path(path: str | Path) -> Path:
    """The JSON beside an exported encoder: ``enc.safetensors`` → ``enc.json``."""
    return Path(path).with_suffix(".json")


def export_encoder(module: nn.Module, path: str | Path, config: dict[str, Any]) -> Path:
    """Write an encoder's weights (safetensors) and a JSON of its config beside them.

    The JSON holds ``format``, the encoder ``class`` and constructor ``kwargs``, the
    ``modality`` and its ``bands`` in channel order, plus whatever else ``config`` gives
    (method, epochs, …). Both files are written under temporary names and renamed, the
    JSON last, so a complete JSON means complete weights.

    Args:
        module: the encoder.
        path: weight file; ``.safetensors`` is appended if missing.
        config: JSON-serialisable description; must contain ``bands``.

    Returns:
        The weight file's path.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    if "bands" not in config:
        raise CheckpointError(f"exporting {path}: the encoder config needs its 'bands'")
    save_encoder(module, path)
    meta = {"format": ENCODER_FORMAT, "weights": path.name, **config}
    write_atomic(encoder_config_path(path), json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def read_encoder_config(path: str | Path) -> dict[str, Any] | None:
    """The JSON beside an encoder file, or ``None`` when there is none.

    Raises:
        CheckpointError: the JSON exists but is not a valid rsfuse encoder description.
    """
    json_path = encoder_config_path(path)
    if not json_path.is_file():
        return None
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read encoder config {json_path}: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != ENCODER_FORMAT:
        raise CheckpointError(f"{json_path} is not an rsfuse encoder config ({ENCODER_FORMAT})")
    return meta


def check_encoder_bands(path: str | Path, expected: tuple[str, ...] | list[str]) -> None:
    """Raise when the JSON beside ``path`` lists other bands than ``expected``.

    Files without a JSON (plain state dicts, Lightning checkpoints) pass: there is nothing
    to compare against.
    """
    meta = read_encoder_config(path)
    if meta is None:
        return
    bands = list(meta.get("bands", []))
    if bands != list(expected):
        raise CheckpointError(
            f"encoder {path} was trained on bands {bands} but the model feeds {list(expected)}"
        )


def read_state_dict(path: str | Path, prefix: str = "") -> dict[str, Tensor]:
    """Read the tensors of an encoder file, keeping the keys under ``prefix`` (stripped).

    Raises:
        CheckpointError: the file is absent, unreadable, or has no key under ``prefix``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"encoder checkpoint {path} not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch / safetensors raise many types for a corrupt file
        raise CheckpointError(f"cannot read encoder checkpoint {path}: {e}") from e
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not state:
            raise CheckpointError(f"{path} has no key starting with {prefix!r}")
    return state


def _names(keys: list[str], limit: int = 8) -> str:
    more = f" … (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_encoder(module: nn.Module, path: str | Path, prefix: str = "") -> None:
    """Load an encoder file into ``module``, requiring the same keys and shapes.

    Args:
        module: the encoder.
        path: ``.safetensors``, torch state dict or Lightning checkpoint.
        prefix: key prefix of the encoder inside the file (stripped before matching).

    Raises:
        CheckpointError: absent or unreadable file; missing, unexpected or mis-shaped keys
            (each named).
    """
    state = read_state_dict(path, prefix)
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    problems = []
    if missing:
        problems.append(f"missing keys: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_names(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches (file vs model): {_names(shapes)}")
    if problems:
        raise CheckpointError(
            f"encoder checkpoint {path} does not match {type(module).__name__}: "
            + "; ".join(problems)
        )
    module.load_state_dict(state, strict=True)
