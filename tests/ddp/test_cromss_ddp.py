"""CromSS pretraining under DDP: confusion-matrix metrics as in one process, export, resume."""

from __future__ import annotations

from pathlib import Path

from tests.ddp.helpers import (
    assert_same_metrics,
    check_common,
    fit_ddp,
    resume_single,
    validate_single,
)

CONFIGS = ["cromss/cromss_midf", "cromss/overrides/tiny_cpu"]


def test_cromss_ddp(noldo_root: Path, tmp_path: Path) -> None:
    data = [
        f"--data.init_args.root={noldo_root}", "--data.init_args.patch_size=48",
        "--data.init_args.val_fraction=0.375", "--data.init_args.batch_size=2",
        "--trainer.max_epochs=1", "--seed_everything=0", "--trainer.num_sanity_val_steps=0",
        f"--model.init_args.export_dir={tmp_path}/enc",
        # one season (no random draw per read, so validation is the same data every time)
        # and hence no seasonal label prior: smoothing by the uniform term only
        "--data.init_args.prior=none", "--data.init_args.season=0", "--model.init_args.alpha=0",
    ]  # fmt: skip
    ckpt = fit_ddp(CONFIGS, data, tmp_path)
    r0, r1 = check_common(tmp_path, val_size=3)  # 3 of the 8 NoLDO-S12 locations
    # both encoders written once, by rank 0
    assert len(r0["exports"]) == 2
    assert {p.name for p in (tmp_path / "enc").glob("*.safetensors")} == {
        "cromss_CromSS-midF_s1.safetensors", "cromss_CromSS-midF_s2.safetensors"
    }  # fmt: skip
    # accuracy against the noisy and the clean labels, from confusion matrices summed over
    # ranks, equal one process's (the validation loss has a Dice term over each batch: not
    # compared)
    keys = [k for k in r0["val"] if k.endswith(("_OA", "_mIoU"))]
    assert len(keys) >= 4
    assert_same_metrics(r0["val"], validate_single(CONFIGS, data, ckpt), keys)
    assert_same_metrics(r1["val"], r0["val"], keys)
    resume_single(CONFIGS, data, ckpt)
