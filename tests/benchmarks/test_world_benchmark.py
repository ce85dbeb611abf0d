"""``rsfuse benchmark world`` runs end to end on a tiny world (figures are not asserted: the
targets are checked by the benchmark itself on the default world, never in tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rsfuse.benchmarks import world as bench
from rsfuse.cli import BENCHMARK_MODULES, run


def test_probe_fits_a_linear_rule_and_not_noise() -> None:
    g = torch.Generator().manual_seed(0)
    x = {k: torch.randn(n, 6, generator=g, dtype=torch.float64)
         for k, n in (("train", 300), ("val", 100), ("test", 100))}  # fmt: skip
    y = {k: torch.stack([v[:, 0] > 0, v[:, 1] + v[:, 2] > 0.5], 1).long() for k, v in x.items()}
    good = bench.fit_probe(x, y)
    assert good["mAP_micro"] > 0.95 and good["l2"] in bench.PROBE_L2
    noise = {k: torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in x.items()}
    assert bench.fit_probe(noise, y)["mAP_micro"] < 0.75


def test_registered_in_the_cli(capsys: pytest.CaptureFixture) -> None:
    assert BENCHMARK_MODULES["world"] == "world"
    run(["benchmark", "--help"])
    assert "world" in capsys.readouterr().out


def test_world_benchmark_smoke(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "world.json"
    bench.main(["--n", "30", "--epochs", "1", "--realism-n", "8", "--batch-size", "8",
                "--data", str(tmp_path / "data"), "--json", str(out)])  # fmt: skip
    res = json.loads(out.read_text())
    real = res["realism"]
    assert len(real["real_patches"]) == 6 and sum(p["snow"] for p in real["real_patches"]) == 1
    assert real["total"] == len(real["rows"]) and 0 <= real["within"] <= real["total"]
    stats = {r["statistic"] for r in real["rows"]}
    assert {"acl/VV", "corr/VV-VH", "p95/B08", "pooled mean/VH"} <= stats
    ln = res["learnability"]
    for key in ("supervised", "random_init_probe", "band_mean_probe", "label_frequency"):
        assert 0.0 <= ln[key]["mAP_micro"] <= 1.0, key
    assert ln["sizes"]["train"] > 0 and ln["supervised"]["epochs"] == 1
    assert len(ln["supervised"]["val_mAP_micro_per_epoch"]) == 1
    assert res["synthesis_seconds"] > 0 and (tmp_path / "data" / "metadata.parquet").is_file()
    assert res["figure"] == str(tmp_path / "world_patches.png")
    assert (tmp_path / "world_patches.png").stat().st_size > 0
    text = capsys.readouterr().out
    assert "random-init ViT" in text and "world median" in text
    # a second run reuses the synthesised data
    bench.main(["--n", "30", "--realism-n", "4", "--skip-learnability", "--figure", "",
                "--json", str(out)])  # fmt: skip
    assert "learnability" not in json.loads(out.read_text())
