"""MoCo-MM under DDP: keys gathered, validation on unequal shares, export, resume."""

from __future__ import annotations

from pathlib import Path

from tests.ddp.helpers import check_common, fit_ddp, resume_single

CONFIGS = ["dino_mm/moco_mm_pretrain", "dino_mm/overrides/tiny_cpu"]


def test_moco_mm_ddp(ddp_ben: tuple[Path, Path], tmp_path: Path) -> None:
    root, store = ddp_ben
    data = [
        f"--data.init_args.root={root}", f"--data.init_args.store={store}",
        "--data.init_args.batch_size=2", "--trainer.max_epochs=1", "--seed_everything=0",
        "--trainer.num_sanity_val_steps=0", "--trainer.limit_val_batches=1.0",
        "--model.init_args.hidden_dim=64", "--model.init_args.out_dim=32",
        f"--model.init_args.export_path={tmp_path}/enc",
    ]  # fmt: skip
    ckpt = fit_ddp(CONFIGS, data, tmp_path)
    # 3 validation samples on 2 ranks (2 + 1): validation keys stay on their rank, so the
    # unequal shares cannot stall a collective
    r0, r1 = check_common(tmp_path, val_size=3)
    assert "val/loss" in r0["val"] and r0["val"] == r1["val"]
    # training keys: each rank's queries meet the keys of both ranks, its own in place
    for r, rec in enumerate((r0, r1)):
        assert rec["gathers"], f"rank {r} gathered no keys"
        assert all(g == {"rows_in": 2, "rows_out": 4, "own_rows_in_place": True}
                   for g in rec["gathers"])  # fmt: skip
    assert len(r0["exports"]) == 1 and (tmp_path / "enc.safetensors").is_file()
    resume_single(CONFIGS, data, ckpt)
