"""Tests of the rsfuse command line: help texts, configs, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from rsfuse.cli import main, run
from rsfuse.errors import ConfigError
from rsfuse.training.configs import config_root

REPO = Path(__file__).resolve().parents[1]
CONFIG_ROOT = config_root()
CONFIGS = sorted(CONFIG_ROOT.glob("*/*.yaml"))
CLASSIFICATION_CONFIGS = [
    c for c in CONFIGS if c.parent.name not in ("overrides", "segmentation", "cromss", "demo")
]
TINY = CONFIG_ROOT / "overrides" / "tiny_cpu.yaml"
SEGMENTATION_CONFIGS = sorted((CONFIG_ROOT / "segmentation").glob("*.yaml"))
CROMSS_CONFIGS = sorted((CONFIG_ROOT / "cromss").glob("*.yaml"))


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


def _tiny_for(cfg: Path) -> Path:
    """configs/dino_mm has its own tiny override (its modules are not classifiers)."""
    own = cfg.parent / "overrides" / "tiny_cpu.yaml"
    return own if cfg.parent.name == "dino_mm" and own.is_file() else TINY


def _root_for(cfg: Path, v1: Path, v2: Path) -> Path:
    version = yaml.safe_load(cfg.read_text())["data"]["init_args"]["version"]
    return v1 if version == "v1" else v2


@pytest.mark.parametrize("cfg", CLASSIFICATION_CONFIGS, ids=lambda p: p.stem)
def test_config_runs_with_fast_dev_run(
    cfg: Path, ben_v1_root: Path, ben_v2_root: Path, tmp_path: Path, request
) -> None:
    data = yaml.safe_load(cfg.read_text())["data"]["init_args"]
    args = [
        "fit", "--config", str(cfg), "--config", str(_tiny_for(cfg)),
        f"--data.init_args.root={_root_for(cfg, ben_v1_root, ben_v2_root)}",
        "--trainer.fast_dev_run=true", f"--trainer.default_root_dir={tmp_path}",
    ]  # fmt: skip
    if data.get("store"):
        args.append(f"--data.init_args.store={request.getfixturevalue('ben_v2_store')}")
    run(args)


@pytest.mark.parametrize("cfg", SEGMENTATION_CONFIGS, ids=lambda p: p.stem)
def test_segmentation_config_runs_with_fast_dev_run(cfg: Path, tmp_path: Path, request) -> None:
    """Each segmentation config + its tiny override trains one batch on synthetic data."""
    config = yaml.safe_load(cfg.read_text())
    vit = config["model"]["init_args"]["architecture"] == "upernet"
    tiny = cfg.parent / "overrides" / ("tiny_cpu_vit.yaml" if vit else "tiny_cpu.yaml")
    dfc = config["data"]["init_args"]["dataset"] == "dfc2020"
    root = request.getfixturevalue("dfc2020_root" if dfc else "noldo_root")
    run(
        [
            "fit", "--config", str(cfg), "--config", str(tiny),
            f"--data.init_args.root={root}", f"--data.init_args.patch_size={32 if dfc else 48}",
            "--trainer.fast_dev_run=true", f"--trainer.default_root_dir={tmp_path}",
        ]
    )  # fmt: skip


@pytest.mark.parametrize("cfg", CROMSS_CONFIGS, ids=lambda p: p.stem)
def test_cromss_config_runs_with_fast_dev_run(cfg: Path, tmp_path: Path, noldo_root: Path) -> None:
    """Each CromSS pretraining config + its tiny override trains one batch on synthetic
    NoLDO-S12 and exports its encoders."""
    tiny = cfg.parent / "overrides" / "tiny_cpu.yaml"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny U-Nets: one thread is faster on a shared CPU
    try:
        run(
            [
                "fit", "--config", str(cfg), "--config", str(tiny),
                f"--data.init_args.root={noldo_root}", "--data.init_args.patch_size=48",
                f"--model.init_args.export_dir={tmp_path / 'enc'}",
                "--trainer.fast_dev_run=true", f"--trainer.default_root_dir={tmp_path}",
            ]
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert len(list((tmp_path / "enc").glob("*.safetensors"))) == (1 if "single" in cfg.stem else 2)


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


def test_synth_v1_is_read_back_with_channel_order_and_labels(tmp_path: Path) -> None:
    """`rsfuse synth --layout bigearthnet-v1` output, read by the v1 reader, equals the world."""
    import numpy as np

    from rsfuse.bands import S2_L2A_ORDER
    from rsfuse.data.bigearthnet import BigEarthNetV1
    from rsfuse.data.synthetic import SyntheticWorld, v1_s2_name
    from rsfuse.data.synthetic.bigearthnet import s2_native

    n, seed = 20, 1
    run(
        [
            "synth",
            "--layout",
            "bigearthnet-v1",
            "--root",
            str(tmp_path),
            "--n",
            str(n),
            "--seed",
            str(seed),
            "--workers",
            "1",
            "--no-progress",
        ]
    )
    world = SyntheticWorld(seed)
    locations = {v1_s2_name(loc.geo): loc for loc in (world.location(i) for i in range(n))}
    ds = BigEarthNetV1(tmp_path, split="train", include_cloudy=True, include_snow=True)
    assert len(ds) == 12  # 60 % of 20
    for i in range(len(ds)):
        sample = ds[i]
        loc = locations[sample["meta"]["id"]]
        # S1: VV then VH, float32 dB written and read without change
        assert torch.equal(sample["s1"], torch.from_numpy(loc.s1))
        # S2: the 10 m bands are stored natively, so they come back exactly, in registry order
        native = s2_native(loc.s2)
        for c, band in enumerate(S2_L2A_ORDER):
            if band in ("B02", "B03", "B04", "B08"):
                assert np.array_equal(sample["s2"][c].numpy(), native[band].astype(np.float32))
        # labels: the JSON's 43-class names map back to the world's 19-class labels
        assert torch.nonzero(sample["label"]).flatten().tolist() == list(loc.labels)
        assert json.dumps(sample["meta"]["id"])


@pytest.mark.parametrize("cmd", ["validate", "test"])
def test_evaluation_subcommands_run(cmd: str, ben_v2_root: Path, tmp_path: Path) -> None:
    cfg = CONFIG_ROOT / "classification" / "ben_v2_s1s2_early_fusion.yaml"
    run(
        [
            cmd,
            "--config",
            str(cfg),
            "--config",
            str(TINY),
            f"--data.init_args.root={ben_v2_root}",
            "--trainer.fast_dev_run=true",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )


def test_predict_is_whole_scene_inference(capsys: pytest.CaptureFixture) -> None:
    """`rsfuse predict` runs bundles over scenes; the dataset-level LightningCLI predict
    is gone (its --config is refused by the scene command's parser)."""
    with pytest.raises(SystemExit):
        run(["predict", "--help"])
    out = capsys.readouterr().out
    assert "--bundle" in out and "--s2" in out and "--clouds" in out
    with pytest.raises(SystemExit) as e:
        run(["predict", "--config", "x.yaml"])
    assert e.value.code == 2


def test_experiment_and_benchmark_list_themselves(capsys: pytest.CaptureFixture) -> None:
    run(["experiment", "--help"])
    run(["benchmark", "--help"])
    out = capsys.readouterr().out
    assert "mgsvit-ablation" in out and "mgsvit-ssl" in out and "data" in out
    assert "scene" in out
    with pytest.raises(ConfigError, match="no-such"):
        run(["experiment", "no-such"])
