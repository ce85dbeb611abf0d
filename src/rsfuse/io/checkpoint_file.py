"""Check a Lightning checkpoint file before anything else loads it.

``rsfuse fit / validate / test --ckpt_path FILE`` hands the file to Lightning, which loads
it with ``torch.load(weights_only=False)``: a hostile file runs code, and a missing,
truncated or foreign one ends in a library traceback. :func:`check_checkpoint_file` loads
it first with ``weights_only=True`` (memory-mapped, so a large checkpoint costs little),
which unpickles only tensors and plain data, and checks that it is a Lightning
checkpoint. Every problem is a :class:`~rsfuse.errors.CheckpointError` naming the file.
Whether the weights fit the model can only be told once the model is built; the ``rsfuse``
command turns that mismatch into a :class:`~rsfuse.errors.CheckpointError` too.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from rsfuse.errors import CheckpointError

#: ``ckpt_path`` values Lightning resolves itself (no file to check here).
LIGHTNING_CKPT_NAMES: tuple[str, ...] = ("last", "best", "hpc", "registry")


def is_special_ckpt_path(value: str | None) -> bool:
    """Whether ``value`` is empty or a name Lightning resolves (``last``, ``best`` …)."""
    if value is None:
        return True
    v = str(value).strip()
    return v in ("", "null", "None") or v in LIGHTNING_CKPT_NAMES or v.startswith("registry:")


#: Sentences of torch's load errors that say nothing about the file.
_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")


def _reason(e: BaseException, limit: int = 200) -> str:
    """The informative sentence of torch's (long, multi-paragraph) load errors."""
    for line in str(e).splitlines():
        line = line.split("WeightsUnpickler error:", 1)[-1].strip()
        if line and not line.startswith(_BOILERPLATE):
            why = line.split(". ")[0]
            return why if len(why) <= limit else why[:limit] + "…"
    return type(e).__name__


def load_checkpoint_safely(path: str | Path, lightning: bool = False) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (memory-mapped when possible).

    Args:
        path: the checkpoint file.
        lightning: also require what a Trainer needs to restore from it (the
            ``pytorch-lightning_version`` key a bare ``{"state_dict": ...}`` lacks).

    Returns:
        The checkpoint dict.

    Raises:
        CheckpointError: missing, a folder, unreadable, truncated, not a torch file,
            holding objects other than tensors and plain data (e.g. a code-executing
            pickle), or without a ``state_dict`` of tensors, naming the file.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} not found")
    if p.is_dir():
        raise CheckpointError(f"checkpoint {p} is a folder, not a checkpoint file")
    if not os.access(p, os.R_OK):
        raise CheckpointError(f"checkpoint {p} is not readable (permissions)")
    if p.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {p} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pickle-protocol notes
            try:
                ckpt = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e):
                    raise
                ckpt = torch.load(p, map_location="cpu", weights_only=True)  # legacy format
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"checkpoint {p} holds objects other than tensors and plain data; refusing to "
            f"load it (a code-executing pickle, or not a checkpoint): {_reason(e)}"
        ) from e
    except Exception as e:  # torch raises many types for truncated or foreign files
        raise CheckpointError(
            f"cannot read checkpoint {p} (truncated, or not a torch checkpoint): "
            f"{type(e).__name__}: {_reason(e)}"
        ) from e
    if not isinstance(ckpt, dict):
        raise CheckpointError(
            f"checkpoint {p} holds a {type(ckpt).__name__}, not a Lightning checkpoint dict"
        )
    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(
            f"checkpoint {p} is not a Lightning checkpoint: it has no 'state_dict' "
            f"(keys: {sorted(map(str, ckpt))[:8]})"
        )
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint {p}: state_dict entries {bad[:5]} are not tensors")
    if lightning and "pytorch-lightning_version" not in ckpt:
        raise CheckpointError(
            f"checkpoint {p} was not written by a Lightning Trainer (no "
            "'pytorch-lightning_version'; a bare state_dict?): it cannot be restored with "
            "--ckpt_path"
        )
    return ckpt


def check_checkpoint_file(path: str | Path) -> Path:
    """Check that ``path`` is a Lightning Trainer checkpoint that loads safely
    (:func:`load_checkpoint_safely` with ``lightning=True``), dropping what was loaded.

    Returns:
        ``path``.

    Raises:
        CheckpointError: see :func:`load_checkpoint_safely`.
    """
    load_checkpoint_safely(path, lightning=True)
    return Path(path)


__all__ = [
    "LIGHTNING_CKPT_NAMES",
    "check_checkpoint_file",
    "is_special_ckpt_path",
    "load_checkpoint_safely",
]
