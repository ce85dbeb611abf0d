"""The ``rsfuse`` command.

``rsfuse fit|validate|test`` is a LightningCLI over any rsfuse LightningModule and
LightningDataModule, configured by YAML files (``configs/``) in TorchGeo's
``class_path``/``init_args`` style. ``rsfuse export`` turns a checkpoint into a
self-describing model bundle and ``rsfuse predict`` runs a bundle over whole georeferenced
scenes. ``rsfuse synth`` writes synthetic datasets in the real on-disk layouts and
``rsfuse demo`` runs the main job end to end on them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rsfuse import __version__
from rsfuse.errors import ConfigError, RsfuseError

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test")

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
  scene  pixels/s and peak memory of rsfuse predict over 2048² and 8192² synthetic scenes,
         with the time of a full 10980² Sentinel-2 tile extrapolated
  world  realism of the synthetic world (statistics beside six real BigEarthNet patches and
         the published ones) and learnability (supervised tiny ViT vs linear probes on a
         random-init ViT and on per-band means)
"""

#: ``rsfuse benchmark NAME`` → module under ``rsfuse.benchmarks``.
BENCHMARK_MODULES: dict[str, str] = {
    "data": "data_throughput",
    "scene": "scene_inference",
    "world": "world",
}

OVERVIEW = f"""\
usage: rsfuse <command> [options]

rsfuse {__version__}: learning from paired Sentinel-1 SAR and Sentinel-2 multispectral imagery.

Training and evaluation (LightningCLI; configure with YAML under configs/):
  fit        train a model:            rsfuse fit --config configs/classification/<name>.yaml
  validate   evaluate on the val split: rsfuse validate --config CFG --ckpt_path CKPT
  test       evaluate on the test split: rsfuse test --config CFG --ckpt_path CKPT

Inference over whole scenes:
  export     write a self-describing model bundle (safetensors + JSON) from a checkpoint:
             rsfuse export CKPT --out BUNDLE
  predict    run a bundle over a whole co-registered S1/S2 scene of any size (COG class
             map, or GeoJSON cells; S1-only path under clouds):
             rsfuse predict --bundle BUNDLE --s2 S2.tif --s1 S1.tif --out map.tif

Data and the main job:
  synth      write a synthetic Sentinel dataset in a real on-disk layout (BigEarthNet,
             SSL4EO-S12, NoLDO-S12, DFC2020) or a whole scene pair:
             rsfuse synth --layout bigearthnet-v2 --root DIR --n 500
             rsfuse synth --layout scene --root DIR --size 2048
  convert    convert a dataset once into the fast sharded zarr store (resumable, --verify;
             BigEarthNet v1 / v2, DFC2020, SSL4EO-S12@DW / @OSM, NoLDO-S12):
             rsfuse convert --dataset bigearthnet-v2 --root DIR --out DIR.store
  demo       synthesise a small BigEarthNet-v2 dataset, train S1+S2 (early fusion), S1-only,
             S2-only and S1 GMU S2 (MGSViT) classifiers, the last also after MGSViT
             self-supervised pretraining, then short DINO-MM and CromSS stages, and map a
             synthetic scene with the best segmentation model (COG + quick-look PNG); print
             metrics tables with the label-frequency baseline (under 10 min on 2 CPU cores)

Experiments and benchmarks:
  experiment run a paper's experiment and write its tables and plots:
             rsfuse experiment --help lists them (e.g. mgsvit-ablation,
             segmentation-transfer, dino-mm, cromss)
  benchmark  measure throughput and save JSON: rsfuse benchmark data --help,
             rsfuse benchmark scene --help

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
            "masks, plus the @DW / @OSM downstream splits); dfc2020 (SEN12MS-style masks); "
            "scene (whole georeferenced S1 + S2 scene pairs of --size pixels with clouds, "
            "cloud mask and clean label maps, for rsfuse predict)"
        ),
    )
    p.add_argument("--root", required=True, type=Path, help="output folder (created)")
    p.add_argument(
        "-n",
        "--n",
        type=int,
        default=None,
        help="number of locations (default 500), or of scenes for --layout scene (default 1)",
    )
    p.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    p.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    scene = p.add_argument_group("--layout scene")
    scene.add_argument("--size", type=int, default=2048, help="scene side in pixels (2048)")
    scene.add_argument("--product", default="L1C", choices=("L1C", "L2A"), help="S2 product")
    scene.add_argument(
        "--cloud-cover", type=float, default=0.25, help="fraction under cloud (0.25)"
    )
    scene.add_argument(
        "--per-band",
        action="store_true",
        help="also write Sentinel-style folders of per-band files at native resolution",
    )
    a = p.parse_args(list(argv))
    kwargs = {}
    if a.layout == "scene":
        kwargs = {
            "size": a.size,
            "product": a.product,
            "cloud_cover": a.cloud_cover,
            "per_band": a.per_band,
        }
    n = a.n if a.n is not None else (1 if a.layout == "scene" else 500)
    out = synthesize(
        a.layout, a.root, n=n, seed=a.seed, workers=a.workers, progress=not a.no_progress,
        **kwargs,
    )  # fmt: skip
    what = f"{a.size} x {a.size} px scene(s)" if a.layout == "scene" else "locations"
    print(f"wrote {n} {a.layout} {what} to {out}")


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
            "noisy labels and fine-tune its S2 encoder on DFC2020 segmentation; last, export "
            "the better segmentation model as a bundle and map a synthetic whole scene with "
            "rsfuse predict (COG + quick-look PNG). Writes the tables (markdown + JSON) and "
            "plots into the work folder."
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
    if argv[0] not in BENCHMARK_MODULES:
        raise ConfigError(
            f"unknown benchmark {argv[0]!r}; expected one of {sorted(BENCHMARK_MODULES)}"
        )
    _module_main(f"rsfuse.benchmarks.{BENCHMARK_MODULES[argv[0]]}", argv[1:], "benchmark")


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
    elif cmd == "export":
        _module_main("rsfuse.inference.bundle", rest, "command 'export'")
    elif cmd == "predict":
        _module_main("rsfuse.inference.predict", rest, "command 'predict'")
    else:
        raise ConfigError(f"unknown command {cmd!r}; run `rsfuse --help` for the list")


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: like :func:`run`, but prints rsfuse errors instead of a traceback."""
    try:
        run(argv)
    except RsfuseError as e:
        print(f"rsfuse: error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
