"""One route from YAML to a run: packaged config names, the bands linked from the data to
the model, and the checks a fit makes once when it starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsfuse.errors import ConfigError
from rsfuse.training.cli import build_run
from rsfuse.training.configs import config_root, list_configs, load_config, resolve_config

CLASSIFY = ["classification/ben_v2_s1s2_early_fusion", "overrides/tiny_cpu"]


def test_packaged_names_resolve_inside_the_installed_package() -> None:
    names = list_configs()
    assert "classification/ben_v2_s1s2_early_fusion" in names
    assert "overrides/tiny_cpu" in names
    path = resolve_config("classification/ben_v2_s1s2_early_fusion")
    assert path == config_root() / "classification" / "ben_v2_s1s2_early_fusion.yaml"
    # a name with its suffix and a path both work, and give the same file
    assert resolve_config("classification/ben_v2_s1s2_early_fusion.yaml") == path
    assert resolve_config(str(path)) == path
    assert list_configs("dino_mm/eval") == ["dino_mm/eval/finetune", "dino_mm/eval/linear_probe"]


def test_unknown_config_name_is_named_in_the_error() -> None:
    with pytest.raises(ConfigError, match="classification/no_such_config"):
        resolve_config("classification/no_such_config")


def test_overrides_merge_over_their_config() -> None:
    cfg = load_config(*CLASSIFY)
    tiny = load_config("overrides/tiny_cpu")
    base = load_config(CLASSIFY[0])
    assert cfg["trainer"]["max_epochs"] == tiny["trainer"]["max_epochs"]
    assert cfg["model"]["class_path"] == base["model"]["class_path"]


def test_model_bands_come_from_the_data_section(ben_v2_root: Path) -> None:
    bands = ["B08", "B04", "B03", "B02"]
    run = build_run(
        CLASSIFY,
        [f"--data.init_args.root={ben_v2_root}", f"--data.init_args.s2_bands={bands}"],
        quiet=True,
    )
    assert run.model.s2_band_names == tuple(bands)
    assert run.datamodule.input_spec.s2_bands == tuple(bands)
    assert run.config["model"]["init_args"]["s2_bands"] == bands
    # the one check a fit starts with passes for the linked pair
    run.datamodule.input_spec.check_feeds(run.model.input_spec)


def test_model_bands_cannot_be_set_apart_from_the_data(ben_v2_root: Path) -> None:
    with pytest.raises(ConfigError, match="s2_bands"):
        build_run(
            CLASSIFY,
            [f"--data.init_args.root={ben_v2_root}", '--model.init_args.s2_bands=["B04"]'],
            quiet=True,
        )


def test_unknown_key_is_a_config_error(ben_v2_root: Path) -> None:
    with pytest.raises(ConfigError, match="no_such_key"):
        build_run(CLASSIFY, [f"--data.init_args.root={ben_v2_root}",
                             "--model.init_args.no_such_key=1"], quiet=True)  # fmt: skip


def test_run_dir_holds_the_logs(ben_v2_root: Path, tmp_path: Path) -> None:
    run = build_run(
        CLASSIFY,
        [f"--data.init_args.root={ben_v2_root}", "--trainer.max_epochs=1",
         "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1"],
        run_dir=tmp_path / "run",
        seed=0,
        quiet=True,
    )  # fmt: skip
    run.trainer.fit(run.model, datamodule=run.datamodule)
    assert (tmp_path / "run" / "metrics.csv").is_file()
    assert not list((tmp_path / "run").rglob("*.ckpt"))  # checkpoints off by default


def test_band_order_mismatch_is_refused_when_the_fit_starts(ben_v2_root: Path) -> None:
    other = build_run(
        CLASSIFY,
        [f"--data.init_args.root={ben_v2_root}", '--data.init_args.s2_bands=["B02","B03","B04"]'],
        quiet=True,
    )
    run = build_run(
        CLASSIFY,
        [f"--data.init_args.root={ben_v2_root}", '--data.init_args.s2_bands=["B04","B03","B02"]',
         "--trainer.max_epochs=1", "--trainer.limit_train_batches=1"],
        datamodule=other.datamodule,
        quiet=True,
    )  # fmt: skip
    assert run.model.s2_band_names == ("B04", "B03", "B02")
    with pytest.raises(ConfigError, match="order"):
        run.trainer.fit(run.model, datamodule=run.datamodule)


def test_a_method_that_augments_its_views_refuses_augmented_batches(ben_v2_root: Path) -> None:
    run = build_run(
        ["dino_mm/dino_mm_pretrain", "dino_mm/overrides/tiny_cpu"],
        [f"--data.init_args.root={ben_v2_root}", "--data.init_args.augmentation=flips_rot90",
         "--trainer.max_epochs=1", "--trainer.limit_train_batches=1"],
        quiet=True,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="augment"):
        run.trainer.fit(run.model, datamodule=run.datamodule)
