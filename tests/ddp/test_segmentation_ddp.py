"""Segmentation under DDP: confusion-matrix metrics as in one process, resume."""

from __future__ import annotations

from pathlib import Path

from tests.ddp.helpers import (
    assert_same_metrics,
    check_common,
    fit_ddp,
    resume_single,
    validate_single,
)

CONFIGS = ["segmentation/dfc2020_pspnet_finetune", "segmentation/overrides/tiny_cpu"]


def test_segmentation_ddp(dfc2020_root: Path, tmp_path: Path) -> None:
    data = [
        f"--data.init_args.root={dfc2020_root}", "--data.init_args.patch_size=32",
        "--data.init_args.val_fraction=0.375", "--data.init_args.batch_size=2",
        "--trainer.max_epochs=1", "--seed_everything=0", "--trainer.num_sanity_val_steps=0",
        "--model.init_args.plot_samples=0",
    ]  # fmt: skip
    ckpt = fit_ddp(CONFIGS, data, tmp_path, "val/mIoU", "max")
    r0, r1 = check_common(tmp_path, val_size=3)  # 3 of DFC2020's 8 training patches
    # OA, AA, mIoU, mF1 come from one confusion matrix summed over the ranks (the loss has a
    # Dice term over each batch, so it depends on how the split is batched: not compared)
    keys = ["val/OA", "val/AA", "val/mIoU", "val/mF1"]
    assert_same_metrics(r0["val"], validate_single(CONFIGS, data, ckpt), keys)
    assert_same_metrics(r1["val"], r0["val"], keys)
    resume_single(CONFIGS, data, ckpt)
