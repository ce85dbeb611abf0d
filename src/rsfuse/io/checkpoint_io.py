"""Lightning checkpoints written beside their target, never through ``$TMPDIR``.

Lightning's default :class:`~lightning.fabric.plugins.io.torch_io.TorchCheckpointIO` saves
through an fsspec transaction, which for local files writes a ``tempfile.mkstemp`` file in
``$TMPDIR`` and moves it into place: a run killed while saving leaves that file behind
(nothing ever cleans ``$TMPDIR/tmpXXXXXXXX``), and on another file system the move is a
copy. :class:`AtomicCheckpointIO` writes local checkpoints through
:func:`rsfuse.io.atomic.atomic_output` instead: ``.<name>.tmp-<pid>`` in the checkpoint's
own folder, renamed into place, created with the user's umask; a temporary file of a
killed run is removed by the next save of the same checkpoint. Remote paths (``s3://`` …)
keep Lightning's behaviour.

Use it as a Trainer plugin (``Trainer(plugins=[AtomicCheckpointIO()])``, or in a YAML
config ``trainer: {plugins: [{class_path: rsfuse.io.checkpoint_io.AtomicCheckpointIO}]}``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from rsfuse.io.atomic import atomic_output


def _is_local(path: str | Path) -> bool:
    s = str(path)
    return "://" not in s or s.startswith("file://")


class AtomicCheckpointIO(TorchCheckpointIO):
    """:class:`TorchCheckpointIO` whose local saves are atomic beside the target (module doc)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        """Save ``checkpoint`` to ``path`` (see the module docstring).

        Raises:
            TypeError: ``storage_options`` given (as Lightning's default plugin).
        """
        if storage_options is not None:
            raise TypeError(
                "`Trainer.save_checkpoint(..., storage_options=...)` with `storage_options` arg"
                f" is not supported for `{type(self).__name__}`."
            )
        if not _is_local(path):
            super().save_checkpoint(checkpoint, path)
            return
        target = Path(str(path).removeprefix("file://"))
        with atomic_output(target) as tmp:
            torch.save(checkpoint, tmp)


__all__ = ["AtomicCheckpointIO"]
