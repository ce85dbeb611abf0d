"""Reading published checkpoint files without running code from them.

The weights the papers published are torch pickles, and their wrappers hold more than
tensors: DINO and MAE save the training ``args`` (an ``argparse.Namespace``), Lightning
checkpoints (CromSS) save hyper-parameters and callback states, some save numpy scalars.
``torch.load(weights_only=True)`` refuses every class outside its allow-list, and
``weights_only=False`` would execute whatever the pickle names.

:func:`read_checkpoint` takes the middle road: it loads with ``weights_only=True`` and
allow-lists each class the file names (``torch.serialization.get_unsafe_globals_in_checkpoint``)
*under a stand-in*: an inert :class:`ForeignObject` subclass that records the name and the
arguments and never calls the real class. Tensors, containers and primitives are rebuilt as
usual; every other object comes back as a ``ForeignObject``. Nothing from the file runs.

``.safetensors`` files are read with :mod:`safetensors` (tensors only).
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rsfuse.errors import CheckpointError

__all__ = ["ForeignObject", "read_checkpoint", "sha256_of", "tensor_items"]


class ForeignObject:
    """Inert stand-in for an object of a class that is not rebuilt (``argparse.Namespace``,
    numpy scalars, Lightning ``AttributeDict``, …).

    Attributes:
        qualname: the class or function the file names, e.g. ``argparse.Namespace``.
        args: positional arguments the pickle passed to it.
        state: the state the pickle set on it (``BUILD``), if any.
    """

    qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = kwargs or None

    def __new__(cls, *args: Any, **kwargs: Any) -> ForeignObject:
        return super().__new__(cls)

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __call__(self, *args: Any, **kwargs: Any) -> ForeignObject:
        return type(self)(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<foreign {self.qualname}>"


def _stand_in(name: str) -> type[ForeignObject]:
    return type(f"Foreign[{name}]", (ForeignObject,), {"qualname": name})


def sha256_of(path: str | Path) -> str:
    """SHA-256 of a file (hex), read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: torch's message for a class outside the allow-list.
_UNSUPPORTED = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
#: at most this many foreign classes per file (the published ones name fewer than 10).
_MAX_FOREIGN = 64


def _unsafe_globals(path: Path) -> list[str]:
    """Classes / functions a torch zip checkpoint names outside torch's allow-list."""
    if not zipfile.is_zipfile(path):
        return []  # legacy (pre-1.6) format: found one by one in read_checkpoint
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception as e:  # a corrupt zip raises many types
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e


def read_checkpoint(path: str | Path) -> Any:
    """Load a published weight file without executing code from it.

    Args:
        path: ``.safetensors`` or a torch file (``.pth``, ``.pth.tar``, ``.ckpt``, zip or
            legacy format).

    Returns:
        What the file holds: usually a dict (state dict, or a wrapper with ``state_dict`` /
        ``model`` / ``teacher`` …). Objects of classes other than tensors, containers and
        primitives come back as :class:`ForeignObject` stand-ins.

    Raises:
        CheckpointError: the file is absent or cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"cannot read {path}: {e}") from e
    names = _unsafe_globals(path)
    while True:
        try:
            with torch.serialization.safe_globals([(_stand_in(n), n) for n in names]):
                return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for a corrupt or foreign file
            m = _UNSUPPORTED.search(str(e))
            name = m.group(1) if m else ""
            name = name if "." in name else f"builtins.{name}"  # torch prints builtins bare
            if m is None or name in names or len(names) >= _MAX_FOREIGN:
                raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e
            names.append(name)


def tensor_items(obj: Any) -> dict[str, Tensor]:
    """The tensor entries of a state-dict-like mapping (others dropped)."""
    if not isinstance(obj, dict):
        return {}
    return {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
