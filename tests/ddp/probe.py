"""A Lightning callback that records, per rank, what the DDP tests check.

Passed to ``rsfuse fit`` through a test config; each rank writes ``rank{r}.json`` into
``out_dir`` when the run ends: the keys the contrastive loss gathered, the encoders the rank
exported, the validation samples it scored, the validation metrics, the DINO centre, a sum
of each parameter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer


class DDPProbe(Callback):
    """Records DDP facts of a run (see the module docstring).

    Args:
        out_dir: folder of the per-rank JSON files.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.rec: dict[str, Any] = {"gathers": [], "exports": [], "val_ids": [], "val": {}}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        import rsfuse.losses.infonce as infonce

        rank = trainer.global_rank
        self.rec.update(rank=rank, world=trainer.world_size)
        gather = infonce.concat_all_gather
        rec = self.rec

        def recording_gather(x: torch.Tensor) -> torch.Tensor:
            out = gather(x)
            if len(rec["gathers"]) < 8:
                n = x.shape[0]
                own = out[rank * n : (rank + 1) * n]
                rec["gathers"].append(
                    {"rows_in": n, "rows_out": int(out.shape[0]),
                     "own_rows_in_place": bool(torch.equal(own, x))}
                )  # fmt: skip
            return out

        infonce.concat_all_gather = recording_gather
        write = pl_module.write_encoder  # type: ignore[attr-defined]

        def recording_write(module: Any, path: Any, config: Any) -> Any:
            rec["exports"].append(str(path))
            return write(module, path, config)

        pl_module.write_encoder = recording_write  # type: ignore[method-assign]

    def on_validation_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        if not trainer.sanity_checking:
            self.rec["val_ids"] += [str(m.get("id")) for m in batch.get("meta", [])]

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self.rec["val"] = {
                k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")
            }

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.rec["global_step"] = int(trainer.global_step)
        # parameters only: BatchNorm statistics are the rank's own until a forward broadcasts
        self.rec["params"] = {n: float(p.double().sum()) for n, p in pl_module.named_parameters()}
        center = getattr(getattr(pl_module, "criterion", None), "center", None)
        if isinstance(center, torch.Tensor):
            self.rec["center"] = center.flatten().tolist()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"rank{self.rec['rank']}.json"
        path.write_text(json.dumps(self.rec))
