"""MGSViT pretraining (MAE + MoCo v3) under DDP: keys gathered, split loss, export, resume."""

from __future__ import annotations

from pathlib import Path

from tests.ddp.helpers import (
    assert_same_metrics,
    check_common,
    fit_ddp,
    resume_single,
    validate_single,
)

CONFIGS = ["mgsvit/pretrain/c4_s2", "mgsvit/overrides/tiny_cpu_pretrain"]


def test_mgsvit_pretraining_ddp(ddp_ben: tuple[Path, Path], tmp_path: Path) -> None:
    root, store = ddp_ben
    data = [
        f"--data.init_args.root={root}", f"--data.init_args.store={store}",
        "--data.init_args.batch_size=2", "--trainer.max_epochs=1", "--seed_everything=0",
        "--trainer.num_sanity_val_steps=0", f"--model.init_args.export_path={tmp_path}/enc",
        f"--model.init_args.plot_dir={tmp_path}/plots",
    ]  # fmt: skip
    ckpt = fit_ddp(CONFIGS, data, tmp_path, "val/loss_rec")
    r0, r1 = check_common(tmp_path, val_size=3)
    # MoCo v3 keys: each rank's 2 keys sit in their place among the 4 gathered from both
    for r, rec in enumerate((r0, r1)):
        assert rec["gathers"], f"rank {r} gathered no keys"
        for g in rec["gathers"]:
            assert g == {"rows_in": 2, "rows_out": 4, "own_rows_in_place": True}
    # the encoder is written once, by rank 0
    assert len(r0["exports"]) == 1 and (tmp_path / "enc.safetensors").is_file()
    # masks are drawn per sample: the reconstruction loss over the split is that of one
    # process on the same checkpoint, however the samples were shared out
    single = validate_single(CONFIGS, data, ckpt)
    assert_same_metrics(r0["val"], single, ["val/loss_rec"])
    assert_same_metrics(r1["val"], r0["val"], ["val/loss_rec"])
    resume_single(CONFIGS, data, ckpt)
