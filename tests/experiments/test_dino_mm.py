"""``rsfuse experiment dino-mm``: tables, claims and a tiny end-to-end run."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from rsfuse.experiments.dino_mm import INPUTS, Row, claims, main, markdown_table
from rsfuse.experiments.dino_mm import summarise_rows as summarise


def _rows() -> list[Row]:
    rows = []
    for seed, shift in ((0, 0.0), (1, 0.02), (2, 0.01)):
        for i in INPUTS:
            for f in (0.1, 1.0):
                base = 0.3 + 0.2 * f
                rows += [
                    Row("Random init", "linear probe", seed, i, f, 10, base - 0.25, 0.1, 1.0),
                    Row("Single-modality SSL (DINO)", "linear probe", seed, i, f, 10, base, 0.1, 1),
                    Row("DINO-MM", "linear probe", seed, i, f, 10, base + 0.05 + shift, 0.1, 1),
                    Row("Supervised (scratch)", "end to end", seed, i, f, 10, base - 0.1, 0.1, 1),
                ]
    return rows


def test_summary_table_and_claims() -> None:
    summary = summarise(_rows())
    dino = next(s for s in summary if s["method"] == "DINO-MM" and s["input"] == "S1 only"
                and s["fraction"] == 1.0)  # fmt: skip
    assert dino["mAP_micro_mean"] == pytest.approx(0.56)
    assert dino["mAP_micro_std"] == pytest.approx(0.01, abs=1e-4)
    table = markdown_table(summary, [0.1, 1.0])
    assert "| method | protocol | S1+S2 10 % | S1+S2 100 % | S1 only 10 %" in table
    assert "| DINO-MM | linear probe | 38.0 ± 1.0 | 56.0 ± 1.0 |" in table
    verdicts = claims(_rows(), [0.1, 1.0])
    joint = [v for v in verdicts if v.claim.worse == "single-modality DINO probe"]
    assert len(joint) == 6 and all(v.holds and v.seeds == 3 for v in joint)
    wide = [v for v in verdicts if v.claim.worse == "random-init probe"]
    # DINO-MM is 30 (+1 on seed 1) points above random init: more than the 20-point margin
    assert len(wide) == 6 and all(v.holds for v in wide)
    assert wide[0].diff_mean == pytest.approx(0.31)
    supervised = [v for v in verdicts if v.claim.worse.startswith("supervised")]
    assert [v.claim.worse for v in supervised] == [
        "supervised on S1+S2",
        "supervised on S1",
        "supervised on S2",
    ]
    assert all(v.holds for v in supervised)
    # 5 points above random init is not "by more than 20"
    low = [r for r in _rows() if not (r.method == "DINO-MM" and r.input == "S1+S2")]
    low += [Row("DINO-MM", "linear probe", s, "S1+S2", 0.1, 10, 0.13, 0.1, 1) for s in (0, 1, 2)]
    v = next(v for v in claims(low, [0.1]) if v.claim.where == "S1+S2, 10 % labels"
             and v.claim.worse == "random-init probe")  # fmt: skip
    assert not v.holds


def test_tiny_run_writes_table_csv_and_plot(ben_v2_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "dmm"
    main(
        [
            "--root", str(ben_v2_root), "--out", str(out),
            "--methods", "random", "dino-mm", "supervised",
            "--seeds", "0", "--fractions", "0.5", "1.0",
            "--pretrain-epochs", "1", "--finetune-epochs", "1", "--probe-epochs", "5",
            "--batch-size", "8", "--threads", "1",
        ]
    )  # fmt: skip
    table = (out / "results.md").read_text()
    assert "| DINO-MM | linear probe |" in table and "| Random init | linear probe |" in table
    assert "| Supervised (scratch) | end to end |" in table
    assert "S2 only 50 %" in table and "Claims of the paper" in table
    claims_rows = list(csv.DictReader((out / "claims.csv").open()))
    assert {r["verdict"] for r in claims_rows} <= {"holds", "does not hold", "not run"}
    # no single-modality SSL run: its claims are "not run", the random-init ones are judged
    assert {r["verdict"] for r in claims_rows if "single" in r["claim_worse"]} == {"not run"}
    assert all(r["verdict"] != "not run" for r in claims_rows if "random" in r["claim_worse"])
    with open(out / "results_runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 3 * 2  # methods x input cases x fractions
    n_train = {float(r["fraction"]): int(r["n_train"]) for r in rows}
    assert n_train[0.5] == round(0.5 * n_train[1.0])
    assert all(0.0 <= float(r["map_micro"]) <= 1.0 for r in rows)
    assert (out / "encoders" / "dino-mm_seed0.safetensors").is_file()
    assert (out / "dino_mm.png").stat().st_size > 1000
