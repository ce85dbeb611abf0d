"""DINO-MM under DDP: one teacher centre over both ranks, validation, export, resume."""

from __future__ import annotations

from pathlib import Path

from tests.ddp.helpers import check_common, fit_ddp, resume_single

CONFIGS = ["dino_mm/dino_mm_pretrain", "dino_mm/overrides/tiny_cpu"]


def test_dino_mm_ddp(ddp_ben: tuple[Path, Path], tmp_path: Path) -> None:
    root, store = ddp_ben
    data = [
        f"--data.init_args.root={root}", f"--data.init_args.store={store}",
        "--data.init_args.batch_size=2", "--trainer.max_epochs=1", "--seed_everything=0",
        "--trainer.num_sanity_val_steps=0", "--trainer.limit_val_batches=1.0",
        "--model.init_args.local_crops_number=2", "--model.init_args.out_dim=64",
        f"--model.init_args.export_path={tmp_path}/teacher",
    ]  # fmt: skip
    ckpt = fit_ddp(CONFIGS, data, tmp_path)
    r0, r1 = check_common(tmp_path, val_size=3)  # unequal shares: the centre is not moved
    assert "val/loss" in r0["val"] and r0["val"] == r1["val"]
    # the centre is an EMA of the teacher outputs of *both* ranks' batches: equal on both,
    # though each rank saw other crops (and moved from its zero start)
    assert r0["center"] == r1["center"] and any(c != 0 for c in r0["center"])
    assert len(r0["exports"]) == 1 and (tmp_path / "teacher.safetensors").is_file()
    resume_single(CONFIGS, data, ckpt)
