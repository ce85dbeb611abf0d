"""Saving and loading encoder weights with key checks.

An encoder file holds one encoder's ``state_dict``: a ``.safetensors`` file, or a torch file
(loaded with ``weights_only=True``) that is either a plain state dict or a Lightning
checkpoint (its ``state_dict`` entry). ``prefix`` selects one encoder inside a larger model
(e.g. ``model.encoders.s1.``). Every mismatch raises :class:`~rsfuse.errors.CheckpointError`
naming the file and the missing, unexpected or mis-shaped keys.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from rsfuse.errors import CheckpointError


def save_encoder(module: nn.Module, path: str | Path) -> Path:
    """Write ``module.state_dict()`` to ``path`` (safetensors if it ends so, else torch).

    The file is written under a temporary name and renamed, so an interrupted save never
    leaves a file that looks complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(tmp))
    else:
        torch.save(state, tmp)
    os.replace(tmp, path)
    return path


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
