"""Tests of ``rsfuse experiment segmentation-transfer`` on tiny synthetic data."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from rsfuse.cli import run
from rsfuse.errors import ConfigError
from rsfuse.experiments.protocols import SETTINGS, markdown_tables, setting_configs
from rsfuse.experiments.protocols import SegRun as Run
from rsfuse.experiments.protocols import summarise_runs as summarise
from rsfuse.experiments.segmentation_transfer import main, resolve_encoders
from rsfuse.training.configs import load_config


def test_listed_in_the_cli_help(capsys: pytest.CaptureFixture) -> None:
    run(["experiment", "--help"])
    assert "segmentation-transfer" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for word in ("--encoders", "synthetic-supervised", "--seeds", "Table II", "--modes"):
        assert word in out


def test_summary_is_mean_and_sample_std_over_seeds() -> None:
    runs = [
        Run("dw", "random", "frozen", s, oa, 0.5, miou, 0.5, 1.0)
        for s, oa, miou in ((0, 0.6, 0.30), (1, 0.8, 0.50))
    ] + [Run("dw", "random", "finetune", 0, 0.9, 0.9, 0.7, 0.8, 1.0)]
    summary = {s["mode"]: s for s in summarise(runs)}
    assert summary["frozen"]["OA_mean"] == pytest.approx(0.7)
    assert summary["frozen"]["OA_std"] == pytest.approx(math.sqrt(0.02))  # n - 1
    assert summary["frozen"]["seeds"] == 2
    table = markdown_tables(list(summary.values()), ["random"])
    assert "### SSL4EO-S12@DW, DeepLabV3+ (Table III)" in table
    # Frozen OA, AA, mIoU, mF1 | Fine-tuned OA, AA, mIoU, mF1 (one seed: no ± shown)
    assert (
        "| random | 70.00 ± 14.14 | 50.00 ± 0.00 | 40.00 ± 14.14 | 50.00 ± 0.00 | 90.00 " in table
    )
    assert table.splitlines()[2].count("|") == table.splitlines()[3].count("|")


def test_bad_arguments_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="setting"):
        main(["--out", str(tmp_path), "--settings", "dfc2021"])
    with pytest.raises(ConfigError, match="encoder"):
        main(
            ["--out", str(tmp_path), "--settings", "dfc2020", "--dfc2020-root", str(tmp_path),
             "--encoders", "no/such/file.safetensors"]
        )  # fmt: skip


def test_tiny_run_writes_tables_csv_json_and_figures(
    dfc2020_root: Path, noldo_root: Path, tmp_path: Path
) -> None:
    """random vs the synthetic-supervised encoder, frozen and fine-tuned."""
    out = tmp_path / "transfer"
    main(
        [
            "--out", str(out),
            "--dfc2020-root", str(dfc2020_root), "--noldo-root", str(noldo_root),
            "--data-patch-size", "dfc2020=32", "noldo-s12=48",
            "--settings", "dfc2020", "--encoders", "random,synthetic-supervised",
            "--seeds", "0", "--epochs", "1", "--pretrain-epochs", "1", "--threads", "1",
        ]
    )  # fmt: skip
    table = (out / "results.md").read_text()
    assert "### DFC2020, PSPNet (Table II)" in table
    for enc in ("random", "synthetic-supervised"):
        assert f"| {enc} | " in table
    with open(out / "results_runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2  # encoders x modes
    assert all(0.0 <= float(r[k]) <= 1.0 for r in rows for k in ("OA", "AA", "mIoU", "mF1"))
    with open(out / "results.csv") as f:
        summary = list(csv.DictReader(f))
    assert {(r["encoder"], r["mode"]) for r in summary} == {
        (e, m) for e in ("random", "synthetic-supervised")
        for m in ("frozen", "finetune")
    }  # fmt: skip
    data = json.loads((out / "results.json").read_text())
    assert len(data["runs"]) == 4 and "Forest" in data["runs"][0]["iou"]
    assert (out / "encoders" / "synthetic-supervised_resnet18_s2.safetensors").is_file()
    assert (out / "transfer_miou.png").stat().st_size > 1000
    claims = list(csv.DictReader((out / "claims.csv").open()))
    assert [(r["claim_where"], r["claim_better"], r["claim_worse"]) for r in claims] == [
        ("DFC2020, PSPNet, frozen", "synthetic-supervised", "random"),
        ("DFC2020, PSPNet, fine-tuned", "synthetic-supervised", "random"),
    ]
    by_mode = {r["mode"]: float(r["mIoU"]) for r in rows if r["encoder"] == "random"}
    assert float(claims[0]["worse_mean"]) == pytest.approx(by_mode["frozen"], abs=1e-6)
    figs = out / "figures" / "dfc2020" / "synthetic-supervised_frozen"
    assert (figs / "confusion_matrix.png").stat().st_size > 1000
    assert (figs / "samples.png").stat().st_size > 1000


def test_encoder_files_are_named_by_their_stem_and_key_checked(tmp_path: Path) -> None:
    """A path in --encoders becomes a table row named after the file; a file that does not fit
    the setting's encoder fails when the first run loads it."""
    import argparse

    from rsfuse.errors import CheckpointError
    from rsfuse.models.checkpoints import save_encoder
    from rsfuse.tasks.segmentation import SegmentationTask

    enc = save_encoder(
        SegmentationTask(encoder="resnet18", num_classes=9, plot_samples=0).model.encoder,
        tmp_path / "my_encoder.safetensors",
    )
    configs = setting_configs(SETTINGS["osm"], "frozen", tiny=True)
    cfg = load_config(*configs)
    args = argparse.Namespace(checkpoint_prefix="")
    found = resolve_encoders(["random", str(enc)], configs, {}, {}, ["s2"], args, tmp_path)
    assert found == {"random": (None, ""), "my_encoder": (str(enc), "")}
    init = {**cfg["model"]["init_args"], "encoder_checkpoint": str(enc)}
    SegmentationTask(**init)  # matches the tiny OSM FPN (ResNet-18, 13 bands)
    with pytest.raises(CheckpointError, match="shape"):
        SegmentationTask(**{**init, "modalities": ["s1"]})
