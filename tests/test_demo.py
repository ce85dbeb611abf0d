"""The demo runs end to end at a tiny scale and writes its outputs."""

from __future__ import annotations

import json
from pathlib import Path

from rsfuse.experiments.demo import label_frequency_baseline, run_demo


def test_label_frequency_baseline_macro_ap_is_prevalence() -> None:
    import torch

    train = torch.tensor([[1, 0], [1, 1], [0, 0], [1, 0]])
    test = torch.tensor([[1, 0], [0, 1], [1, 0], [0, 0]])
    b = label_frequency_baseline(train, test)
    # constant scores per class: AP of each class is its positive rate in the test split
    assert abs(b["mAP_macro"] - (0.5 + 0.25) / 2) < 1e-6


def test_demo_tiny_run(tmp_path: Path, capsys) -> None:
    out = run_demo(
        workdir=tmp_path,
        n=40,
        epochs=1,
        batch_size=8,
        workers=1,
        pretrain_epochs=1,
        dino_epochs=1,
        cromss_epochs=1,
        scene_size=192,
    )
    printed = capsys.readouterr().out
    assert "label-frequency baseline" in printed
    assert "S1+S2 (early fusion)" in printed
    names = [r["name"] for r in out["runs"]]
    assert names[3:] == ["S1 GMU S2 (MGSViT)", "S1 GMU S2 (MGSViT, SSL + fine-tune)"]
    for m in ("s1", "s2"):  # the pretrained encoders were exported and fine-tuned from
        assert (tmp_path / "pretrained" / f"mgsvit_{m}.json").is_file()
        assert (tmp_path / f"reconstruction_{m}_final.png").stat().st_size > 0
    # the DINO-MM stage probed one pretrained model on all three input cases
    assert set(out["dino_mm_stage"]) == {"S1+S2", "S1 only", "S2 only"}
    # the CromSS stage transferred its S2 encoder to DFC2020 beside a random encoder
    assert [r[0] for r in out["cromss_stage"]] == [
        "random init",
        "CromSS-midF S2",
        "S1 only",
        "S1+S2 (cloud-robust)",
    ]
    assert "CromSS stage" in printed
    assert "DINO-MM stage" in printed and (tmp_path / "dino_mm" / "dino_mm_stage.md").is_file()
    # the scene stage mapped a whole scene with both S2-only models and the S1+S2 one
    sc = out["scene_stage"]
    assert sc["model"] == "S1+S2 (cloud-robust)" and "Scene stage" in printed
    assert len(sc["models"]) == 4 and "routed to the S1-only path" in sc["routing"]
    assert (tmp_path / "scene_quicklook.png").stat().st_size > 10_000
    assert (tmp_path / "bundles" / "S1_S2_cloud_robust" / "bundle.json").is_file()
    import rasterio

    with rasterio.open(sc["map"]) as m:
        assert (m.height, m.width) == (192, 192) and m.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    assert 0.0 <= sc["oa_clear"] <= 1.0
    # every stage ends with its claims, each with a verdict
    claims = {(c["claim_where"], c["claim_better"]): c for c in out["claims"]}
    assert claims[("Table 1, clear test", "S1 GMU S2")]["verdict"] in ("holds", "does not hold")
    # 40 locations: no test patch is clouded enough to take the S1-only path
    judged = [c for c in out["claims"] if c["claim_where"] != "clouded test"]
    assert {c["verdict"] for c in judged} <= {"holds", "does not hold"}
    wheres = {w for w, _ in claims}
    assert {"clouded test", "S1+S2, linear probe", "scene, clouded pixels"} <= wheres
    assert (
        "Table II (DFC2020), fine-tuned" in wheres and "[holds]" in printed
    ) or "[does not hold]" in printed
    assert (tmp_path / "claims.md").is_file() and "## Claims" in (
        tmp_path / "results.md"
    ).read_text()
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["baseline"]) == {"mAP_micro", "mAP_macro", "F1_micro", "F1_macro"}
    assert set(saved["stage_seconds"]) >= {"classification runs", "scene stage"}
    assert set(saved["last_epochs_gain"]) == set()  # one epoch: no curve to judge
    for name in ("results.md", "per_class_ap.png", "sample.png", "learning_curves.png"):
        assert (tmp_path / name).stat().st_size > 0
