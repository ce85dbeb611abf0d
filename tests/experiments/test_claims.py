"""The verdict rule of :mod:`rsfuse.experiments.claims`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from rsfuse.experiments.claims import (
    MGSVIT,
    Claim,
    judge,
    ordering,
    per_seed,
    t95,
    verdict_table,
    write_verdicts,
)

CLAIM = Claim(MGSVIT, "Table 1", "S1 GMU S2", "S1+S2")


def test_paired_difference_must_be_significant() -> None:
    clear = judge(CLAIM, {0: 0.70, 1: 0.72, 2: 0.71}, {0: 0.60, 1: 0.62, 2: 0.65})
    assert clear.holds and clear.paired and clear.seeds == 3
    assert clear.diff_mean == pytest.approx((0.10 + 0.10 + 0.06) / 3)
    # +1.3 on average but -6 / +4 / +6 per seed: not significant
    noisy = judge(CLAIM, {0: 0.62, 1: 0.70, 2: 0.71}, {0: 0.68, 1: 0.66, 2: 0.65})
    assert not noisy.holds and "not significant" in noisy.reason
    # +1.5 ± 1.8 (se 1.04): beyond one standard error, not beyond t(0.95, 2) = 2.92 of them
    mid = judge(CLAIM, {0: 0.645, 1: 0.615, 2: 0.63}, {0: 0.615, 1: 0.615, 2: 0.615})
    assert mid.diff_mean == pytest.approx(0.015) and not mid.holds
    assert t95(2) == pytest.approx(2.920) and t95(100) == pytest.approx(1.645)
    assert judge(CLAIM, {0: 0.5}, {0: 0.6}).word == "does not hold"
    assert "1 seed, no spread" in judge(CLAIM, {0: 0.7}, {0: 0.6}).line()
    noted = Claim(MGSVIT, "x", "a", "b", note="one pretraining run")
    assert judge(noted, {0: 0.7}, {0: 0.6}).reason.endswith("; one pretraining run")


def test_margin_unpaired_missing_and_at_least() -> None:
    wide = Claim(MGSVIT, "x", "a", "b", margin=0.2)
    assert not judge(wide, {0: 0.75}, {0: 0.6}).holds
    assert judge(wide, {0: 0.85}, {0: 0.6}).holds
    unpaired = judge(CLAIM, {0: 0.8, 1: 0.82}, {5: 0.6})
    assert not unpaired.paired and unpaired.holds and "unpaired" in unpaired.reason
    missing = judge(CLAIM, {}, {0: 0.6})
    assert missing.word == "not run" and missing.seeds == 0 and "S1 GMU S2" in missing.line()
    nan = judge(CLAIM, {0: float("nan")}, {0: 0.6})
    assert nan.word == "not run"
    at_least = Claim(MGSVIT, "x", "a", "b", relation=">=")
    assert judge(at_least, {0: 0.61, 1: 0.62, 2: 0.60}, {0: 0.61, 1: 0.60, 2: 0.60}).holds
    # a mean shortfall inside the spread is still a shortfall: it does not hold, and says so
    short = judge(at_least, {0: 0.60, 1: 0.62, 2: 0.58}, {0: 0.61, 1: 0.60, 2: 0.60})
    assert not short.holds and "short by 0.3, within one standard error" in short.reason
    assert not judge(at_least, {0: 0.50, 1: 0.51, 2: 0.49}, {0: 0.61, 1: 0.60, 2: 0.60}).holds
    assert "≥" in at_least.statement
    with pytest.raises(ValueError):
        Claim(MGSVIT, "x", "a", "b", relation="<")


def test_ordering_per_seed_and_files(tmp_path: Path) -> None:
    claims = ordering(MGSVIT, "Table 1", ["S1", "S2", "S1+S2"])
    assert [(c.better, c.worse) for c in claims] == [("S2", "S1"), ("S1+S2", "S2")]
    rows = [{"m": "S1", "seed": 0, "v": 0.4}, {"m": "S1", "seed": 1, "v": 0.5},
            {"m": "S2", "seed": 0, "v": 0.6}]  # fmt: skip
    assert per_seed(rows, "v", m="S1") == {0: 0.4, 1: 0.5}
    verdicts = [judge(claims[0], per_seed(rows, "v", m="S2"), per_seed(rows, "v", m="S1"))]
    assert verdicts[0].paired is False  # seeds {0} vs {0, 1}
    md = write_verdicts(tmp_path, verdicts, "header")
    assert md.startswith("header") and "| MGSViT | Table 1 | S2 > S1 (micro mAP) |" in md
    assert md == (tmp_path / "claims.md").read_text()
    assert verdict_table(verdicts) in md
    (row,) = csv.DictReader((tmp_path / "claims.csv").open())
    assert row["verdict"] == verdicts[0].word and row["claim_paper"] == MGSVIT
    assert (
        json.loads((tmp_path / "claims.json").read_text())[0]["statement"] == "S2 > S1 (micro mAP)"
    )
