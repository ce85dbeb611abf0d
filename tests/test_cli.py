"""Tests of the rsfuse command line: help texts, configs, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rsfuse.cli import main, run
from rsfuse.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*/*.yaml"))
CLASSIFICATION_CONFIGS = [c for c in CONFIGS if c.parent.name != "overrides"]
TINY = REPO / "configs" / "overrides" / "tiny_cpu.yaml"


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture) -> None:
    run(["--help"])
    out = capsys.readouterr().out
    for cmd in ("fit", "validate", "test", "predict", "synth", "demo"):
        assert f"\n  {cmd}" in out


@pytest.mark.parametrize("cmd", ["synth", "demo", "fit"])
def test_subcommand_help(cmd: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        run([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage" in out.lower()
    assert len(out) > 300


def test_unknown_command_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="frobnicate"):
        run(["frobnicate"])


def test_main_prints_errors_without_traceback(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 1
    assert "rsfuse: error" in capsys.readouterr().err


def _root_for(cfg: Path, v1: Path, v2: Path) -> Path:
    version = yaml.safe_load(cfg.read_text())["data"]["init_args"]["version"]
    return v1 if version == "v1" else v2


@pytest.mark.parametrize("cfg", CLASSIFICATION_CONFIGS, ids=lambda p: p.stem)
def test_config_runs_with_fast_dev_run(
    cfg: Path, ben_v1_root: Path, ben_v2_root: Path, tmp_path: Path
) -> None:
    run(
        [
            "fit",
            "--config",
            str(cfg),
            "--config",
            str(TINY),
            f"--data.init_args.root={_root_for(cfg, ben_v1_root, ben_v2_root)}",
            "--trainer.fast_dev_run=true",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )


def test_unknown_config_key_is_a_config_error(tmp_path: Path, ben_v2_root: Path) -> None:
    cfg = yaml.safe_load(CLASSIFICATION_CONFIGS[0].read_text())
    cfg["model"]["init_args"]["learning_rat"] = 0.1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="learning_rat"):
        run(
            [
                "fit",
                "--config",
                str(bad),
                "--config",
                str(TINY),
                f"--data.init_args.root={ben_v2_root}",
                "--trainer.fast_dev_run=true",
            ]
        )


def test_synth_command_writes_a_readable_dataset(tmp_path: Path) -> None:
    from rsfuse.data.bigearthnet import BigEarthNetV1

    run(
        [
            "synth",
            "--layout",
            "bigearthnet-v1",
            "--root",
            str(tmp_path),
            "--n",
            "20",
            "--seed",
            "1",
            "--workers",
            "1",
            "--no-progress",
        ]
    )
    ds = BigEarthNetV1(tmp_path, split="train", include_cloudy=True, include_snow=True)
    sample = ds[0]
    assert sample["s1"].shape == (2, 120, 120)
    assert sample["s2"].shape == (12, 120, 120)
    assert sample["label"].sum() >= 1
    assert json.dumps(sample["meta"]["id"])  # meta is JSON-friendly
