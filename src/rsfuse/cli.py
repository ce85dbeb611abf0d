"""The ``rsfuse`` command.

``rsfuse fit|validate|test|predict`` is a LightningCLI over any rsfuse LightningModule and
LightningDataModule, configured by YAML files (``configs/``) in TorchGeo's
``class_path``/``init_args`` style. ``rsfuse synth`` writes synthetic datasets in the real
on-disk layouts and ``rsfuse demo`` runs the main job end to end on them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rsfuse import __version__
from rsfuse.errors import ConfigError, RsfuseError

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")

EXPERIMENTS_HELP = """\
experiments (each writes its tables and plots into --out; see `rsfuse experiment NAME --help`):
  mgsvit-ablation   MGSViT shortcut / GMU ablations over seeds (seed 000, Tables 1-3, Fig. 8-9)
  mgsvit-ssl        MGSViT MAE + MoCo v3 pretraining, MAE-only, MoCo-only and random init,
                    then linear probe and fine-tune of S1 GMU S2 (seed 000, §4.6, Fig. 11)
  segmentation-transfer
                    CromSS transfer of encoders to DFC2020 / DW / OSM segmentation, frozen
                    and fine-tuned, over seeds (seed 001, Tables II-IV): OA, AA, mIoU, mF1
  dino-mm           DINO-MM vs MoCo-MM vs single-modality SSL vs random init vs supervised,
                    S1+S2 / S1-only / S2-only input, 1 / 10 / 100 % labels (seed 002)
  cromss            CromSS noisy-label pretraining ablations: single-modal / midF / lateF /
                    CromSS-midF / CromSS-lateF encoders transferred frozen and fine-tuned
                    (seed 001, Table V), label smoothing (Table VI), accuracy against clean
                    labels (Fig. 8) and selection masks (Fig. 11)
"""

BENCHMARKS_HELP = """\
benchmarks (print a table and save JSON; see `rsfuse benchmark NAME --help`):
  data   samples/s of the GeoTIFF reader, TorchGeo, the converted store and LMDB+safetensors
"""

OVERVIEW = f"""\
usage: rsfuse <command> [options]

rsfuse {__version__}: learning from paired Sentinel-1 SAR and Sentinel-2 multispectral imagery.

Training and evaluation (LightningCLI; configure with YAML under configs/):
  fit        train a model:            rsfuse fit --config configs/classification/<name>.yaml
  validate   evaluate on the val split: rsfuse validate --config CFG --ckpt_path CKPT
  test       evaluate on the test split: rsfuse test --config CFG --ckpt_path CKPT
  predict    score the test split with a trained model: rsfuse predict --config CFG --ckpt_path CKPT

Data and the main job:
  synth      write a synthetic Sentinel dataset in a real on-disk layout
             (BigEarthNet v1 / v2): rsfuse synth --layout bigearthnet-v2 --root DIR --n 500
  convert    convert a dataset once into the fast sharded zarr store (resumable, --verify):
             rsfuse convert --dataset bigearthnet-v2 --root DIR --out DIR.store
  demo       synthesise a small BigEarthNet-v2 dataset, train S1+S2 (early fusion), S1-only,
             S2-only and S1 GMU S2 (MGSViT) classifiers, the last also after MGSViT
             self-supervised pretraining, then short DINO-MM and CromSS stages; print
             metrics tables with the label-frequency baseline (under 10 min on 2 CPU cores)

Experiments and benchmarks:
  experiment run a paper's experiment and write its tables and plots:
             rsfuse experiment --help lists them (e.g. mgsvit-ablation,
             segmentation-transfer, dino-mm, cromss)
  benchmark  measure throughput and save JSON: rsfuse benchmark data --help

Every command explains itself with --help, e.g. `rsfuse fit --help`,
`rsfuse synth --help`. Override any config value on the command line, e.g.
`--trainer.max_epochs=5 --data.init_args.root=/data/BigEarthNet`.
"""


def _lightning(argv: Sequence[str]) -> None:
    """Run a LightningCLI subcommand; parse errors become :class:`ConfigError`."""
    from jsonargparse import ArgumentError
    from lightning import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    import rsfuse.data.datamodules
    import rsfuse.tasks.classification  # noqa: F401

    try:
        LightningCLI(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            # from the shell, let LightningCLI read sys.argv itself (no "args and argv" warning)
            args=None if list(argv) == sys.argv[1:] else list(argv),
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"exit_on_error": False, "description": OVERVIEW.splitlines()[2]},
        )
    except ArgumentError as e:
        raise ConfigError(f"invalid configuration: {e}") from e


def _synth(argv: Sequence[str]) -> None:
    from rsfuse.data.synthetic import LAYOUTS, synthesize

    p = argparse.ArgumentParser(
        prog="rsfuse synth",
        description=(
            "Write a procedurally generated Sentinel-1/Sentinel-2 dataset in the exact on-disk "
            "layout of a real dataset (GeoTIFFs with CRS and transform at native band "
            "resolutions, plus the dataset's JSON/CSV/parquet metadata). The world has "
            "learnable structure: per-class spectra with seasons, SAR backscatter with "
            "speckle, clouds over S2 only, classes separable only with SAR or only with "
            "optical. Deterministic for a seed."
        ),
    )
    p.add_argument(
        "--layout",
        required=True,
        choices=sorted(LAYOUTS),
        help=(
            "on-disk layout to write: bigearthnet-v1, bigearthnet-v2 (multi-label); "
            "ssl4eo-s12 (v1.0 GeoTIFF folders, 4 seasons), ssl4eo-s12-v1.1 (zarr.zip); "
            "noldo-s12 (SSL4EO-S12@NoL LMDBs + GeoTIFFs with noisy and clean Dynamic World "
            "masks, plus the @DW / @OSM downstream splits); dfc2020 (SEN12MS-style masks)"
        ),
    )
    p.add_argument("--root", required=True, type=Path, help="output folder (created)")
    p.add_argument("-n", "--n", type=int, default=500, help="number of locations (default 500)")
    p.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    p.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    a = p.parse_args(list(argv))
    out = synthesize(
        a.layout, a.root, n=a.n, seed=a.seed, workers=a.workers, progress=not a.no_progress
    )
    print(f"wrote {a.n} {a.layout} locations to {out}")


def _demo(argv: Sequence[str]) -> None:
    from rsfuse.demo import add_arguments, run_demo

    p = argparse.ArgumentParser(
        prog="rsfuse demo",
        description=(
            "The main job end to end on the synthetic Sentinel world: synthesise a "
            "BigEarthNet-v2-layout dataset, train multi-label classifiers on S1+S2 (early "
            "fusion), S1 only, S2 only and S1 GMU S2 (MGSViT) from scratch and after "
            "MGSViT's MAE + MoCo v3 pretraining of each encoder, test them on the whole "
            "test split and print micro/macro mAP and F1 beside the label-frequency "
            "baseline; then pretrain DINO-MM on S1+S2 with RandomSensorDrop and "
            "linear-probe it on S1+S2, S1-only and S2-only input; finally pretrain CromSS on "
            "noisy labels and fine-tune its S2 encoder on DFC2020 segmentation. Writes the "
            "tables "
            "(markdown + JSON) and plots into the work folder."
        ),
    )
    add_arguments(p)
    run_demo(**vars(p.parse_args(list(argv))))


def _module_main(module: str, argv: Sequence[str], what: str) -> None:
    """Call ``main(argv)`` of an rsfuse module, or fail with a clear error if it is absent."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith(module.rsplit(".", 1)[0]):
            raise ConfigError(f"unknown {what}; run `rsfuse --help` for the list") from e
        raise
    mod.main(list(argv))


def _experiment(argv: Sequence[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: rsfuse experiment NAME [options]\n\n" + EXPERIMENTS_HELP)
        return
    name = argv[0].replace("-", "_")
    _module_main(f"rsfuse.experiments.{name}", argv[1:], f"experiment {argv[0]!r}")


def _benchmark(argv: Sequence[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: rsfuse benchmark NAME [options]\n\n" + BENCHMARKS_HELP)
        return
    name = argv[0].replace("-", "_")
    _module_main(f"rsfuse.benchmarks.{name}_throughput", argv[1:], f"benchmark {argv[0]!r}")


def run(argv: Sequence[str] | None = None) -> None:
    """Dispatch ``argv`` to a subcommand; raises :class:`RsfuseError` on bad input."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(OVERVIEW)
        return
    if args[0] == "--version":
        print(f"rsfuse {__version__}")
        return
    cmd, rest = args[0], args[1:]
    if cmd in LIGHTNING_SUBCOMMANDS:
        _lightning(args)
    elif cmd == "synth":
        _synth(rest)
    elif cmd == "demo":
        _demo(rest)
    elif cmd == "experiment":
        _experiment(rest)
    elif cmd == "benchmark":
        _benchmark(rest)
    elif cmd == "convert":
        _module_main("rsfuse.data.convert", rest, "command 'convert'")
    else:
        raise ConfigError(f"unknown command {cmd!r}; run `rsfuse --help` for the list")


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: like :func:`run`, but prints rsfuse errors instead of a traceback."""
    try:
        run(argv)
    except RsfuseError as e:
        print(f"rsfuse: error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
