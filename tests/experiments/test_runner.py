"""The experiment runner's pieces: overrides, tables over seeds, files, synthetic data."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from rsfuse.experiments.runner import (
    cell,
    dotted,
    ensure_synthetic,
    mean_std,
    save_figure,
    summarise,
    write_csv,
    write_json,
)


def test_dotted_overrides_are_json_values() -> None:
    assert dotted(model__init_args__lr=1e-3, trainer__max_epochs=3) == [
        "--model.init_args.lr=0.001",
        "--trainer.max_epochs=3",
    ]
    assert dotted(data__init_args__s2_bands=["B04", "B03"], model__init_args__x=None) == [
        '--data.init_args.s2_bands=["B04", "B03"]',
        "--model.init_args.x=null",
    ]
    assert dotted(data__init_args__root="/d") == ["--data.init_args.root=/d"]


def test_mean_std_is_the_sample_std_and_ignores_nan() -> None:
    m, s = mean_std([1.0, 2.0, 3.0, float("nan")])
    assert m == pytest.approx(2.0) and s == pytest.approx(1.0)
    assert mean_std([0.7]) == (0.7, 0.0)
    assert all(math.isnan(v) for v in mean_std([]))


def test_summarise_groups_by_keys_over_seeds() -> None:
    rows = [
        {"variant": "a", "seed": 0, "map": 0.5},
        {"variant": "a", "seed": 1, "map": 0.7},
        {"variant": "b", "seed": 0, "map": 0.9},
    ]
    out = summarise(rows, ["variant"], ["map"])
    assert [r["variant"] for r in out] == ["a", "b"]
    assert out[0]["seeds"] == 2 and out[0]["map_mean"] == pytest.approx(0.6)
    assert out[0]["map_std"] == pytest.approx(math.sqrt(0.02))
    assert cell(out[0], "map") == "60.0 ± 14.1"
    assert cell(out[1], "map") == "90.0"  # one seed: no spread to show
    assert cell(None, "map") == "-" and cell(out[0], "other") == "-"


def test_files_are_written_whole(tmp_path: Path) -> None:
    rows = [{"a": 1}, {"a": 2, "b": "x"}]
    path = write_csv(tmp_path / "t.csv", rows)
    with path.open() as f:
        assert list(csv.DictReader(f)) == [{"a": "1", "b": ""}, {"a": "2", "b": "x"}]
    assert json.loads(write_json(tmp_path / "t.json", {"p": Path("x")}).read_text()) == {"p": "x"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_save_figure_closes_it(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    out = save_figure(fig, tmp_path / "f.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.get_fignums()


def test_ensure_synthetic_reuses_a_stamped_dataset(tmp_path: Path, capsys) -> None:
    root = tmp_path / "ben"
    ensure_synthetic("bigearthnet-v2", root, n=6, seed=1, workers=1)
    first = sorted(p.name for p in root.rglob("*.tif"))
    assert first and "synthesising" in capsys.readouterr().out
    ensure_synthetic("bigearthnet-v2", root, n=6, seed=1, workers=1)
    assert "reusing" in capsys.readouterr().out
    # another seed is another dataset: written again, and the stamp says so
    ensure_synthetic("bigearthnet-v2", root, n=6, seed=2, workers=1)
    assert "synthesising" in capsys.readouterr().out
    assert json.loads((root / "rsfuse-synth.json").read_text())["seed"] == 2


@pytest.mark.parametrize(
    "module",
    ["mgsvit_ablation", "mgsvit_ssl", "dino_mm", "segmentation_transfer", "cromss",
     "cloud_robustness"],
)  # fmt: skip
def test_gpu_profile_replaces_defaults_not_given_options(module: str, tmp_path: Path) -> None:
    import importlib

    from rsfuse.experiments.runner import run_experiment

    mod = importlib.import_module(f"rsfuse.experiments.{module}")
    cpu = run_experiment(mod.build_parser(), ["--out", str(tmp_path)], lambda a: a)
    assert cpu.profile == "cpu" and cpu.size == "tiny"
    argv = ["--out", str(tmp_path), "--profile", "gpu", "--batch-size", "3"]
    gpu = run_experiment(mod.build_parser(), argv, lambda a: a)
    assert gpu.size == "full" and gpu.batch_size == 3  # given on the command line: kept
    for key, value in mod.GPU_PROFILE.items():
        if key != "batch_size":
            assert getattr(gpu, key) == value, key
    assert len(gpu.seeds) >= 3 and len(cpu.seeds) >= 3
