"""Classification under DDP: split metrics as in one process, exports, resume."""

from __future__ import annotations

from pathlib import Path

from tests.ddp.helpers import (
    assert_same_metrics,
    check_common,
    fit_ddp,
    resume_single,
    validate_single,
)

CONFIGS = ["classification/ben_v2_s1s2_early_fusion", "overrides/tiny_cpu"]


def test_classification_ddp(ddp_ben: tuple[Path, Path], tmp_path: Path) -> None:
    from rsfuse.data.datamodules import BigEarthNetDataModule

    root, store = ddp_ben
    data = [
        f"--data.init_args.root={root}", f"--data.init_args.store={store}",
        "--data.init_args.batch_size=2", "--trainer.max_epochs=1", "--seed_everything=0",
        "--trainer.num_sanity_val_steps=0",
    ]  # fmt: skip
    val_size = len(BigEarthNetDataModule(str(root), store=str(store)).split_dataset("val"))
    assert val_size % 2 == 1  # odd: the default distributed sampler would pad it
    ckpt = fit_ddp(CONFIGS, data, tmp_path, "val/mAP_micro", "max")
    r0, r1 = check_common(tmp_path, val_size)
    # metrics over the split (all ranks) equal one process's on the same checkpoint;
    # the loss is a mean over samples, so it must agree too
    keys = ["val/mAP_micro", "val/mAP_macro", "val/F1_micro", "val/F1_macro", "val/loss"]
    assert_same_metrics(r0["val"], validate_single(CONFIGS, data, ckpt), keys)
    assert_same_metrics(r1["val"], r0["val"], keys)
    resume_single(CONFIGS, data, ckpt)
