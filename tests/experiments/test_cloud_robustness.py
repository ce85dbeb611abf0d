"""``rsfuse experiment cloud-robustness`` at a tiny size: every output, every test set."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rsfuse.bands import S2_L2A_ORDER
from rsfuse.experiments import cloud_robustness as cr


def test_overcast_hides_the_land_and_the_detector_sees_it(ben_v2_root: Path) -> None:
    from rsfuse.data.bigearthnet import BigEarthNetV2
    from rsfuse.data.clouds import CloudValidity, ValidityDataset

    plain = BigEarthNetV2(ben_v2_root, split="test")
    over = cr.Overcast(plain, S2_L2A_ORDER, seed=0)
    a, b = plain[0], over[0]
    assert torch.equal(a["s1"], b["s1"])
    b02 = S2_L2A_ORDER.index("B02")
    assert float(b["s2"][b02].min()) > 4000  # the cloud deck, everywhere
    assert not torch.equal(over[0]["s2"], over[1]["s2"])  # a field per patch
    s = ValidityDataset(over, CloudValidity("detector", 0.5), S2_L2A_ORDER)[0]
    assert not s["valid"].any() and not s["present"]["s2"]


def _with_a_cloudy_test_patch(src: Path, root: Path) -> Path:
    """``src``'s patches (linked) with one more test patch flagged cloudy, so that the
    partly clouded test set is never empty."""
    import pandas as pd

    from rsfuse.data import bigearthnet_layout as layout

    root.mkdir()
    for d in (layout.V2_S2_DIR, layout.V2_S1_DIR):
        (root / d).symlink_to(src / d)
    clean = pd.read_parquet(src / layout.V2_METADATA)
    flagged = pd.read_parquet(src / layout.V2_FLAGGED_METADATA)
    pick = clean.index[clean["split"] == "test"][:1]
    moved = clean.loc[pick].assign(contains_cloud_or_shadow=True)
    clean.drop(pick).to_parquet(root / layout.V2_METADATA)
    pd.concat([flagged, moved]).to_parquet(root / layout.V2_FLAGGED_METADATA)
    return root


def test_experiment_at_tiny_size_writes_every_output(tmp_path: Path, ben_v2_root: Path) -> None:
    out = tmp_path / "out"
    root = _with_a_cloudy_test_patch(ben_v2_root, tmp_path / "data")
    cr.main([
        "--root", str(root), "--out", str(out), "--epochs", "1", "--seeds", "0", "1",
        "--models", "S1", "S2", "early fusion", "--batch-size", "8", "--threads", "1",
    ])  # fmt: skip
    for name in ("results.md", "results.csv", "results_runs.csv", "results.json",
                 "cloud_robustness.png"):  # fmt: skip
        assert (out / name).is_file(), name
    runs = list(csv.DictReader((out / "results_runs.csv").open()))
    # S1 plain (stands for robust too), S2 x 2, early fusion x 2; two seeds; 4 test sets
    assert len(runs) == 5 * 2 * 4
    assert {r["test_set"] for r in runs} == set(cr.TEST_SETS)
    assert {(r["model"], r["training"]) for r in runs} == {
        ("S1", "plain"), ("S2", "plain"), ("S2", "robust"),
        ("early fusion", "plain"), ("early fusion", "robust"),
    }  # fmt: skip
    assert all(0.0 <= float(r["mAP_micro"]) <= 1.0 for r in runs)
    data = json.loads((out / "results.json").read_text())
    assert data["sizes"]["clouded"] == data["sizes"]["partly"] + data["sizes"]["fully"]
    assert data["sizes"]["fully"] == data["sizes"]["clear"]
    assert isinstance(data["holds"], bool)
    summary = {(s["model"], s["training"], s["test_set"]): s for s in data["summary"]}
    assert summary[("S2", "plain", "clear")]["seeds"] == 2
    text = (out / "results.md").read_text()
    assert "| early fusion | robust |" in text and "better single sensor" in text
    assert (out / "claims.csv").is_file() and "fusion" in (out / "claims.md").read_text()
    # "fully" is the clear test patches under a cloud deck: the S1-only model cannot tell
    s1 = [summary[("S1", "plain", t)]["mAP_micro_mean"] for t in ("clear", "fully")]
    assert np.isfinite(s1[0]) and s1[0] == pytest.approx(s1[1], abs=1e-6)


def test_verdict_compares_with_the_better_single_sensor() -> None:
    def rows(m: str, t: str, ts: str, values: tuple[float, ...]) -> list[dict]:
        return [{"model": m, "training": t, "test_set": ts, "seed": s, "mAP_micro": v}
                for s, v in enumerate(values)]  # fmt: skip

    data = (
        rows("S1", "plain", "clear", (0.5, 0.5, 0.5)) + rows("S2", "plain", "clear", (0.8,) * 3)
        + rows("S1", "plain", "clouded", (0.6, 0.61, 0.62))
        + rows("S2", "robust", "clouded", (0.4, 0.4, 0.4))
        + rows("early fusion", "robust", "clear", (0.85, 0.86, 0.84))
        + rows("early fusion", "robust", "clouded", (0.55, 0.56, 0.54))
    )  # fmt: skip
    text, ok = cr.verdict(data)
    assert not ok and "better single sensor (S1, plain)" in text
    clouded = next(v for v in cr.claims(data) if v.claim.where == "clouded test"
                   and v.claim.better == "early fusion (robust)")  # fmt: skip
    assert clouded.diff_mean == pytest.approx(-0.06) and not clouded.holds
    # a mean shortfall inside the spread over seeds is still a shortfall, and said to be one
    data[-3:] = rows("early fusion", "robust", "clouded", (0.59, 0.63, 0.60))
    text, ok = cr.verdict(data)
    assert not ok and "within one standard error" in text
    data[-3:] = rows("early fusion", "robust", "clouded", (0.61, 0.63, 0.62))
    assert cr.verdict(data)[1]


@pytest.mark.parametrize("model", list(cr.MODELS))
def test_model_configs_build(model: str) -> None:
    from rsfuse.training.configs import load_config

    cfg = load_config(cr.MODELS[model], cr.TINY)
    robust = cr.robust_settings(cr.MODELS[model], [cr.TINY])
    if len(cfg["model"]["init_args"]["modalities"]) == 2:
        assert robust["sensor_drop"] > 0 and robust["cloud_augmentation"] > 0
        assert cfg["data"]["init_args"]["clouds"] == "detector"
