"""A callback for the resume tests: stop a real ``rsfuse fit`` still at a chosen step, so
the test can SIGKILL it there (not collected by pytest)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback


class PauseAt(Callback):
    """Before the batch that follows optimiser step ``step``, write ``marker`` and sleep
    (the test kills the process then). Draws no random numbers and keeps no state."""

    def __init__(self, step: int, marker: str) -> None:
        self.step = int(step)
        self.marker = Path(marker)

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step == self.step:
            self.marker.write_text(f"{trainer.current_epoch} {batch_idx}\n")
            time.sleep(600)
