"""Classification under DDP: split metrics as in one process, exports, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.ddp.helpers import DDP, check_common, probe_config, rsfuse_fit, validate_single

CONFIGS = ["classification/ben_v2_s1s2_early_fusion", "overrides/tiny_cpu"]


def test_classification_ddp(ddp_ben: tuple[Path, Path], tmp_path: Path) -> None:
    from rsfuse.data.datamodules import BigEarthNetDataModule

    root, store = ddp_ben
    data = [
        f"--data.init_args.root={root}", f"--data.init_args.store={store}",
        "--data.init_args.batch_size=2", "--trainer.max_epochs=1", "--seed_everything=0",
    ]  # fmt: skip
    val_size = len(BigEarthNetDataModule(str(root), store=str(store)).split_dataset("val"))
    assert val_size % 2 == 1  # odd: the default distributed sampler would pad it
    probe = probe_config(tmp_path, "val/mAP_micro", "max")
    args = [a for c in CONFIGS for a in ("--config", c)] + ["--config", str(probe), *data, *DDP]
    rsfuse_fit(args, tmp_path)
    r0, r1 = check_common(tmp_path, val_size)
    # metrics over the split, reduced over both ranks, equal one process on the checkpoint
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    single = validate_single(CONFIGS, data, ckpt)
    for key in ("val/mAP_micro", "val/mAP_macro", "val/F1_micro", "val/F1_macro", "val/loss"):
        assert r0["val"][key] == pytest.approx(single[key], rel=1e-5, abs=1e-6), key
        assert r1["val"][key] == pytest.approx(r0["val"][key], rel=1e-6)
    # resume: a second epoch continues from the DDP checkpoint (weights, step, epoch)
    from rsfuse.training.cli import build_run

    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    run = build_run(CONFIGS, [*data, "--trainer.max_epochs=2"])
    seen: dict[str, bool] = {}

    class Check(__import__("lightning").Callback):
        def on_train_start(self, trainer, pl_module):  # type: ignore[no-untyped-def]
            sd = pl_module.state_dict()
            seen["weights"] = all(torch.equal(sd[k], v) for k, v in state["state_dict"].items())
            seen["epoch"] = trainer.current_epoch == 1

    run.trainer.callbacks.append(Check())
    run.trainer.fit(run.model, datamodule=run.datamodule, ckpt_path=str(ckpt))
    assert seen == {"weights": True, "epoch": True}
    steps = len(run.datamodule.train_dataloader())
    assert run.trainer.current_epoch == 2
    assert run.trainer.global_step == state["global_step"] + steps
