"""``rsfuse experiment cromss`` end to end on the synthetic NoLDO-S12 fixture (tiny)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from rsfuse.errors import ConfigError
from rsfuse.experiments.cromss import _smoothing_label, main, parse_smoothing, smoothing_claims
from rsfuse.experiments.protocols import SegRun


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny convolutions: one intra-op thread is faster than two on a shared CPU."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_parse_smoothing() -> None:
    assert parse_smoothing(["0:0,0.15:0.05"]) == [(0.0, 0.0), (0.15, 0.05)]
    with pytest.raises(ConfigError):
        parse_smoothing(["0.2"])


def test_experiment_writes_tables_and_figures(noldo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [
        "--out", str(out), "--noldo-root", str(noldo_root), "--data-patch-size", "noldo-s12=48",
        "--variants", "single-s1,CromSS-midF", "--smoothing", "0:0,0.15:0.05",
        "--settings", "dw", "--modes", "frozen", "--seeds", "0", "--epochs", "1",
        "--pretrain-epochs", "2", "--batch-size", "4", "--threads", "1",
    ]  # fmt: skip
    main(args)
    md = (out / "results.md").read_text()
    for row in ("| random |", "| random S1 |", "| single-s1 S1 |", "| CromSS-midF S1 |",
                "| CromSS-midF S2 |", "| CromSS-midF a=0 b=0 |"):  # fmt: skip
        assert row in md, row
    assert "Table VI" in md and "Fig. 8" in md
    runs = list(csv.DictReader((out / "results_runs.csv").read_text().splitlines()))
    # random S2, random S1, single-s1 S1, CromSS-midF S1 + S2, a=0 b=0 S2: one run each
    assert len(runs) == 6 and {r["mode"] for r in runs} == {"frozen"}
    acc = {
        r["model"]: r
        for r in csv.DictReader((out / "pretrain_accuracy.csv").read_text().splitlines())
    }
    assert set(acc) == {"single-s1", "CromSS-midF", "CromSS-midF a=0 b=0"}
    assert 0.5 < float(acc["CromSS-midF"]["noisy_labels"]) < 1.0
    assert 0.0 <= float(acc["CromSS-midF"]["s2_vs_clean"]) <= 1.0
    assert 0.0 < float(acc["CromSS-midF"]["s1_selection_precision"]) <= 1.0
    assert acc["single-s1"]["s1_selection_precision"] == ""  # no selection there
    for png in ("selection_masks.png", "transfer_miou.png", "pretrain_accuracy.png"):
        assert (out / png).stat().st_size > 1000
    assert len(list((out / "encoders").glob("*.safetensors"))) == 5
    verdicts = {
        (r["claim_where"], r["claim_better"]): r
        for r in csv.DictReader((out / "claims.csv").open())
    }
    # Tables II-IV: every pretrained encoder against random init (S1 ones against random S1)
    dw = verdicts[("SSL4EO-S12@DW, DeepLabV3+, frozen", "CromSS-midF S1")]
    assert dw["claim_worse"] == "random S1" and dw["verdict"] in ("holds", "does not hold")
    # §IV-D selection precision vs the noisy labels' accuracy (the CromSS variants only)
    sel = verdicts[("§IV-D, pretraining split", "CromSS-midF S2 selection precision")]
    assert float(sel["worse_mean"]) == pytest.approx(float(acc["CromSS-midF"]["noisy_labels"]))
    assert not any(k[1].startswith("single-s1") and "selection" in k[1] for k in verdicts)
    # Table VI: the paper's smoothing vs none, over the settings run
    assert verdicts[("Table VI, frozen", "α=0.15, β=0.05")]["seeds"] == "1"
    # a second run reuses the encoders and their accuracy rows (no pretraining)
    (out / "selection_masks.png").unlink()
    main(args)
    assert len(list((out / "encoders").glob("*.safetensors"))) == 5
    assert not (out / "selection_masks.png").exists()
    assert "| CromSS-midF a=0 b=0 |" in (out / "results.md").read_text().split("Fig. 8")[1]


def test_demo_stage(noldo_root: Path, dfc2020_root: Path, tmp_path: Path) -> None:
    from rsfuse.experiments.demo import cromss_stage as demo_stage

    res = demo_stage(
        tmp_path, noldo_root=noldo_root, dfc2020_root=dfc2020_root, dfc2020_patch_size=32,
        pretrain_epochs=2, epochs=1, batch_size=4,
    )  # fmt: skip
    assert [r[0] for r in res["rows"]] == [
        "random init",
        "CromSS-midF S2",
        "S1 only",
        "S1+S2 (cloud-robust)",
    ]
    assert res["best"] in ("random init", "CromSS-midF S2")  # the better S2-only model
    for _, m in res["rows"]:
        assert set(m) == {"OA", "AA", "mIoU", "mF1"} and 0.0 <= m["OA"] <= 1.0
    assert Path(res["encoder"]).is_file() and Path(res["encoder"]).with_suffix(".json").is_file()
    assert "| CromSS-midF S2 |" in res["markdown"]
    assert 0.5 < res["pretrain_accuracy"]["noisy_labels"] < 1.0


def test_smoothing_claim_compares_worst_shortfalls() -> None:
    """Table VI's "more stable": the paper's smoothing never far below the best setting."""
    paper, none = _smoothing_label(0.15, 0.05), _smoothing_label(0, 0)
    other = _smoothing_label(0.2, 0)
    miou = {  # setting -> encoder -> mIoU
        "dfc2020": {paper: 0.50, none: 0.52, other: 0.51},
        "dw": {paper: 0.40, none: 0.30, other: 0.41},
    }
    runs = [
        SegRun(st, enc, "finetune", seed, 0, 0, v + 0.01 * seed, 0, 1.0)
        for seed in range(3)
        for st, by in miou.items()
        for enc, v in by.items()
    ]
    (v,) = [v for v in smoothing_claims(runs, [paper, none, other]) if v.seeds]
    # worst shortfalls: paper -0.02 (dfc2020), none -0.11 (dw)
    assert v.better_mean == pytest.approx(-0.02) and v.worse_mean == pytest.approx(-0.11)
    assert v.holds
