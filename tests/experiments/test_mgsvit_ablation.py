"""Smoke test of ``rsfuse experiment mgsvit-ablation`` on a tiny synthetic world."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from rsfuse.experiments import mgsvit_ablation
from rsfuse.experiments.mgsvit_ablation import Row, fusion_verdict, main, summarise


def test_help_lists_the_variants(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for v in ("C4-GMU", "C0-GMU", "SSL", "base", "--seeds", "--epochs"):
        assert v in out


def test_summary_mean_std_and_verdict() -> None:
    rows = [Row("S2", s, "cloudy", "S2", m, m, 1.0) for s, m in ((0, 0.4), (1, 0.6))] + [
        Row("C4-GMU", s, "cloudy", "S1+S2", m, m, 1.0) for s, m in ((0, 0.7), (1, 0.7))
    ]
    summary = {(s["variant"]): s for s in summarise(rows)}
    assert summary["S2"]["mAP_micro_mean"] == pytest.approx(0.5)
    assert summary["S2"]["mAP_micro_std"] == pytest.approx(0.1414, abs=1e-4)
    assert "C4-GMU: 70.0 beats it (+20.0)" in fusion_verdict(list(summary.values()))


def test_tiny_ablation_run_writes_table_csv_and_plot(ben_v2_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "abl"
    main(
        [
            "--root", str(ben_v2_root),
            "--out", str(out),
            "--variants", "S2", "C0-GMU", "SSL",
            "--seeds", "0",
            "--epochs", "1",
            "--batch-size", "8",
            "--no-train-cloudy",
            "--cloudy-splits", "train", "val", "test",
        ]
    )  # fmt: skip
    table = (out / "results.md").read_text()
    assert "| S2 | S2 |" in table and "| C0-GMU | S1+S2 |" in table
    assert "| C0-GMU | S1 only |" in table and "| C0-GMU | S2 only |" in table
    assert "| SSL | pending: needs SSL encoder checkpoints" in table
    assert "best single-modality model on the cloudy split: S2" in table
    with open(out / "results_runs.csv") as f:
        rows = list(csv.DictReader(f))
    # S2: clear + cloudy; C0-GMU: (fused, S1 only, S2 only) x (clear, cloudy)
    assert len(rows) == 2 + 6
    assert all(0.0 <= float(r["map_micro"]) <= 1.0 for r in rows)
    assert (out / "ablation.png").stat().st_size > 1000
    assert mgsvit_ablation.VARIANTS["C4-GMU"][0] == "mgsvit/ablation_c4_gmu"  # packaged config
