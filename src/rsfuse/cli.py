"""The ``rsfuse`` command.

``rsfuse fit|validate|test`` is a LightningCLI over any rsfuse LightningModule and
LightningDataModule (:mod:`rsfuse.training.cli`), configured by YAML files in TorchGeo's
``class_path``/``init_args`` style — the packaged ones by name (``rsfuse configs``).
``rsfuse export`` turns a checkpoint into a self-describing model bundle and
``rsfuse predict`` runs a bundle over whole georeferenced scenes. ``rsfuse synth`` writes
synthetic datasets in the real on-disk layouts and ``rsfuse demo`` runs the main job end to
end on them (:mod:`rsfuse.experiments.demo`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from rsfuse import __version__
from rsfuse.errors import CheckpointError, ConfigError, RsfuseError

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test")

EXPERIMENTS_HELP = """\
experiments (each writes its tables and plots into --out; see `rsfuse experiment NAME --help`):
  mgsvit-ablation   MGSViT shortcut / GMU ablations over seeds (MGSViT Tables 1-3, Fig. 8-9)
  mgsvit-ssl        MGSViT MAE + MoCo v3 pretraining, MAE-only, MoCo-only and random init,
                    then linear probe and fine-tune of S1 GMU S2 (MGSViT §4.6, Fig. 11)
  segmentation-transfer
                    CromSS transfer of encoders to DFC2020 / DW / OSM segmentation, frozen
                    and fine-tuned, over seeds (CromSS Tables II-IV): OA, AA, mIoU, mF1
  dino-mm           DINO-MM vs MoCo-MM vs single-modality SSL vs random init vs supervised,
                    S1+S2 / S1-only / S2-only input, 1 / 10 / 100 % labels (DINO-MM evaluation)
  cromss            CromSS noisy-label pretraining ablations: single-modal / midF / lateF /
                    CromSS-midF / CromSS-lateF encoders transferred frozen and fine-tuned
                    (CromSS Table V), label smoothing (Table VI), accuracy against clean
                    labels (Fig. 8) and selection masks (Fig. 11)
  cloud-robustness  S1-only, S2-only, early-fusion and S1 GMU S2 classifiers trained with and
                    without sensor drop / cloud augmentation, tested on clear, partly and
                    fully clouded patches: is a fused model ever worse than its better sensor?
"""

BENCHMARKS_HELP = """\
benchmarks (print a table and save JSON; see `rsfuse benchmark NAME --help`):
  data   samples/s of the GeoTIFF reader, TorchGeo, the converted store and LMDB+safetensors
  scene  pixels/s and peak memory of rsfuse predict over 2048² and 8192² synthetic scenes,
         with the time of a full 10980² Sentinel-2 tile extrapolated
  train  training throughput of every method (samples/s, step time, peak memory, MFU on a
         GPU) through rsfuse with the real data path, against the same model and batch in a
         bare PyTorch loop; tiny sizes on a CPU
  world  realism of the synthetic world (statistics beside six real BigEarthNet patches and
         the published ones) and learnability (supervised tiny ViT vs linear probes on a
         random-init ViT and on per-band means)
"""

#: ``rsfuse experiment NAME`` → module under ``rsfuse.experiments``.
EXPERIMENT_MODULES: dict[str, str] = {
    "mgsvit-ablation": "mgsvit_ablation",
    "mgsvit-ssl": "mgsvit_ssl",
    "segmentation-transfer": "segmentation_transfer",
    "dino-mm": "dino_mm",
    "cromss": "cromss",
    "cloud-robustness": "cloud_robustness",
}

#: ``rsfuse benchmark NAME`` → module under ``rsfuse.benchmarks``.
BENCHMARK_MODULES: dict[str, str] = {
    "data": "data_throughput",
    "scene": "scene_inference",
    "train": "train_throughput",
    "world": "world",
}

OVERVIEW = f"""\
usage: rsfuse <command> [options]

rsfuse {__version__}: learning from paired Sentinel-1 SAR and Sentinel-2 multispectral imagery.

Training and evaluation (LightningCLI; YAML configs ship with rsfuse, see `rsfuse configs`):
  fit        train a model:            rsfuse fit --config classification/<name>
  validate   evaluate on the val split: rsfuse validate --config CFG --ckpt_path CKPT
  test       evaluate on the test split: rsfuse test --config CFG --ckpt_path CKPT
  configs    list the packaged configs: rsfuse configs [PREFIX]; print one: --show NAME

Inference over whole scenes:
  export     write a self-describing model bundle (safetensors + JSON) from a checkpoint:
             rsfuse export CKPT --out BUNDLE
  predict    run a bundle over a whole co-registered S1/S2 scene of any size (COG class
             map, or GeoJSON cells; S1-only path under clouds):
             rsfuse predict --bundle BUNDLE --s2 S2.tif --s1 S1.tif --out map.tif

Published weights:
  weights    import SSL4EO-S12 / DINO-MM / CromSS / TorchGeo checkpoints as rsfuse encoders
             (bands in order, normalisation, source recorded); list the known sources:
             rsfuse weights import FILE.pth --out pretrained/ENC
             rsfuse weights sources
             (rsfuse export CKPT --format timm|torchgeo --out DIR writes encoders for timm
             and TorchGeo)

Data and the main job:
  synth      write a synthetic Sentinel dataset in a real on-disk layout (BigEarthNet,
             SSL4EO-S12, NoLDO-S12, DFC2020) or a whole scene pair:
             rsfuse synth --layout bigearthnet-v2 --root DIR --n 500
             rsfuse synth --layout scene --root DIR --size 2048
  convert    convert a dataset once into the fast sharded zarr store (resumable;
             BigEarthNet v1 / v2, DFC2020, SSL4EO-S12@DW / @OSM, NoLDO-S12), or with
             --verify check an existing store against its source:
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
             rsfuse benchmark scene --help, rsfuse benchmark train --help

Every command explains itself with --help, e.g. `rsfuse fit --help`,
`rsfuse synth --help`. Override any config value on the command line, e.g.
`--trainer.max_epochs=5 --data.init_args.root=/data/BigEarthNet`.

Bad input stops with one line, "rsfuse: error: ...", naming the file (or config key) and
the problem; add --debug (anywhere on the line) for the full traceback.
"""


def _lightning(argv: Sequence[str]) -> None:
    """Run a LightningCLI subcommand; parse errors become :class:`ConfigError`."""
    import rsfuse.data.datamodules
    import rsfuse.tasks.classification  # noqa: F401
    from rsfuse.training.cli import run_cli

    run_cli(argv, description=OVERVIEW.splitlines()[2])


def _configs(argv: Sequence[str]) -> None:
    """``rsfuse configs [PREFIX]``: the packaged configs and their first comment line."""
    from rsfuse.training.configs import config_root, list_configs

    p = argparse.ArgumentParser(
        prog="rsfuse configs",
        description=(
            "List the YAML configs that ship with rsfuse. Pass a name to --config of rsfuse "
            "fit / validate / test (e.g. --config classification/ben_v2_s1s2_early_fusion); "
            "a path to a file of your own works too. --show NAME prints one."
        ),
    )
    p.add_argument("prefix", nargs="?", default="", help="only names starting with this")
    p.add_argument("--show", metavar="NAME", help="print the config NAME")
    a = p.parse_args(list(argv))
    if a.show:
        from rsfuse.training.configs import resolve_config

        print(resolve_config(a.show).read_text(), end="")
        return
    root = config_root()
    names = list_configs(a.prefix)
    width = max((len(n) for n in names), default=0)
    for n in names:
        first = (root / f"{n}.yaml").read_text().splitlines()[:1]
        title = first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""
        print(f"{n:<{width}}  {title[:100]}")
    print(f"\n{len(names)} configs under {root}")


#: Synthetic layouts whose patch side ``rsfuse synth --patch-size`` sets.
PATCH_SIZE_LAYOUTS = ("ssl4eo-s12", "ssl4eo-s12-v1.1", "noldo-s12", "dfc2020")


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
    p.add_argument(
        "--patch-size",
        type=int,
        default=None,
        help=(
            "patch side in pixels of the segmentation layouts ("
            + ", ".join(PATCH_SIZE_LAYOUTS)
            + "; default: the real dataset's, 264 for SSL4EO-S12 / NoLDO-S12 and 256 for "
            "DFC2020; a multiple of 6 for the SSL4EO-S12 family, whose 60 m bands are 1/6 of "
            "it). BigEarthNet patches are 120 px by definition; scenes take --size"
        ),
    )
    p.add_argument(
        "--noldo-geotiff",
        action="store_true",
        help="--layout noldo-s12: also keep the GeoTIFF form of the pretraining and downstream "
        "splits (the same data as the LMDBs again, about twice the disk; the readers take "
        "either)",
    )
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
    _check_synth_args(a)
    kwargs = {}
    if a.layout == "scene":
        kwargs = {
            "size": a.size,
            "product": a.product,
            "cloud_cover": a.cloud_cover,
            "per_band": a.per_band,
        }
    if a.patch_size is not None:
        kwargs["patch_size"] = a.patch_size
    if a.noldo_geotiff:
        if a.layout != "noldo-s12":
            raise ConfigError(
                "--noldo-geotiff is an option of --layout noldo-s12", key="noldo_geotiff"
            )
        kwargs["geotiff"] = True
    n = a.n if a.n is not None else (1 if a.layout == "scene" else 500)
    out = synthesize(
        a.layout, a.root, n=n, seed=a.seed, workers=a.workers, progress=not a.no_progress,
        **kwargs,
    )  # fmt: skip
    what = f"{a.size} x {a.size} px scene(s)" if a.layout == "scene" else "locations"
    print(f"wrote {n} {a.layout} {what} to {out}")


def _check_synth_args(a: argparse.Namespace) -> None:
    """``rsfuse synth`` arguments, checked before anything is written.

    Raises:
        ConfigError: ``--root`` (or a parent) is a file, or a count, size or fraction out
            of range.
    """
    from rsfuse.io.paths import check_output_folder

    check_output_folder(a.root, key="root")
    if a.n is not None and a.n < 1:
        raise ConfigError(f"--n must be >= 1, got {a.n}", key="n")
    if a.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {a.workers}", key="workers")
    if a.patch_size is not None:
        if a.layout not in PATCH_SIZE_LAYOUTS:
            why = "scenes take --size" if a.layout == "scene" else "its patches are 120 px"
            raise ConfigError(
                f"--patch-size is not an option of --layout {a.layout} ({why}); it applies to "
                + ", ".join(PATCH_SIZE_LAYOUTS),
                key="patch_size",
            )
        if a.patch_size < 16:
            raise ConfigError(f"--patch-size must be >= 16, got {a.patch_size}", key="patch_size")
    if a.layout == "scene":
        if a.size < 64:
            raise ConfigError(f"--size must be >= 64 pixels, got {a.size}", key="size")
        if not 0.0 <= a.cloud_cover <= 1.0:
            raise ConfigError(
                f"--cloud-cover must lie in [0, 1], got {a.cloud_cover}", key="cloud_cover"
            )


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
    name = argv[0].replace("_", "-")
    if name not in EXPERIMENT_MODULES:
        raise ConfigError(
            f"unknown experiment {argv[0]!r}; expected one of {sorted(EXPERIMENT_MODULES)}"
        )
    _module_main(f"rsfuse.experiments.{EXPERIMENT_MODULES[name]}", argv[1:], "experiment")


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
        from rsfuse.training.cli import resolve_config_args

        args = [cmd, *resolve_config_args(rest)]  # packaged config names → their files
        ckpt = _check_lightning_inputs(args[1:])
        with _unwrapped_errors(), _checkpoint_errors(ckpt):
            _lightning(args)
    elif cmd == "synth":
        _synth(rest)
    elif cmd == "configs":
        _configs(rest)
    elif cmd == "demo":
        _module_main("rsfuse.experiments.demo", rest, "command 'demo'")
    elif cmd == "experiment":
        _experiment(rest)
    elif cmd == "benchmark":
        _benchmark(rest)
    elif cmd == "convert":
        _module_main("rsfuse.data.convert", rest, "command 'convert'")
    elif cmd == "export":
        _module_main("rsfuse.inference.export_command", rest, "command 'export'")
    elif cmd == "predict":
        _module_main("rsfuse.inference.predict", rest, "command 'predict'")
    elif cmd == "weights":
        _module_main("rsfuse.weights.cli", rest, "command 'weights'")
    else:
        raise ConfigError(f"unknown command {cmd!r}; run `rsfuse --help` for the list")


# --------------------------------------------------------------------------- errors
#: ``--debug`` anywhere on the command line (or ``RSFUSE_DEBUG=1``): full tracebacks.
DEBUG_FLAG = "--debug"


def rsfuse_cause(e: BaseException) -> RsfuseError | None:
    """The rsfuse error ``e`` is or wraps (its ``__cause__`` / ``__context__`` chain), if any.

    jsonargparse / LightningCLI wrap an error raised while they build the model or data
    (e.g. a :class:`ConfigError` from a task's constructor) into a long ``ValueError``
    ("Does not validate against any of the Union subtypes …"); the rsfuse error inside
    is the one that names the key or file.
    """
    seen: set[int] = set()
    x: BaseException | None = e
    while x is not None and id(x) not in seen:
        if isinstance(x, RsfuseError):
            return x
        seen.add(id(x))
        x = x.__cause__ or x.__context__
    return None


@contextlib.contextmanager
def _unwrapped_errors() -> Iterator[None]:
    """Re-raise the rsfuse error a library exception wraps (see :func:`rsfuse_cause`)."""
    try:
        yield
    except RsfuseError:
        raise
    except Exception as e:
        inner = rsfuse_cause(e)
        if inner is None:
            raise
        raise inner from e


def _option_values(args: Sequence[str], *names: str) -> list[str]:
    """Values of ``--name VALUE`` / ``--name=VALUE`` in ``args``, in order."""
    out = []
    for i, a in enumerate(args):
        for n in names:
            if a == n and i + 1 < len(args):
                out.append(args[i + 1])
            elif a.startswith(n + "="):
                out.append(a[len(n) + 1 :])
    return out


def _check_lightning_inputs(args: Sequence[str]) -> str | None:
    """Check the files ``rsfuse fit / validate / test`` reads before LightningCLI does.

    Every ``--config`` file must exist and be valid YAML (an error names the file, line and
    column); the checkpoint (``--ckpt_path``, or a config's top-level ``ckpt_path``) must
    be a readable Lightning checkpoint that loads with ``weights_only=True`` (see
    :func:`rsfuse.io.checkpoint_file.check_checkpoint_file`), so a hostile pickle never
    reaches Lightning's ``weights_only=False`` load. ``last`` is resolved once the Trainer
    exists (:func:`rsfuse.training.resume.resolve_ckpt_path`: the newest ``last.ckpt`` in
    ``<default_root_dir>/checkpoints``, checked the same way and against the model;
    ``validate`` / ``test`` without one stop with a :class:`CheckpointError`); other names
    Lightning resolves itself (``best`` …) are left to it.

    Returns:
        The checkpoint file that will be loaded, or None.

    Raises:
        ConfigError: a missing or invalid config file.
        CheckpointError: a bad checkpoint file.
    """
    from rsfuse.io.checkpoint_file import check_checkpoint_file, is_special_ckpt_path
    from rsfuse.training.configs import read_config_file

    ckpt: str | None = None
    for value in _option_values(args, "--config", "-c"):
        path = Path(value)
        if path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists():
            if not path.exists():
                raise ConfigError(f"config file {path} not found", key="config")
            if not path.is_file():
                raise ConfigError(f"config file {path} is a folder, not a file", key="config")
            cfg = read_config_file(path)
            if isinstance(cfg, dict) and cfg.get("ckpt_path") is not None:
                ckpt = str(cfg["ckpt_path"])
    given = _option_values(args, "--ckpt_path")
    if given:
        ckpt = given[-1]
    if is_special_ckpt_path(ckpt):
        return None
    assert ckpt is not None
    check_checkpoint_file(ckpt)
    return ckpt


#: Words of a library error raised while Lightning restores a checkpoint into the model.
_RESTORE_WORDS = ("state_dict", "checkpoint", "size mismatch", "Missing key", "Unexpected key")


@contextlib.contextmanager
def _checkpoint_errors(ckpt: str | None) -> Iterator[None]:
    """Turn Lightning / torch errors of restoring ``ckpt`` into a :class:`CheckpointError`
    naming the file (weights that do not fit the model, a checkpoint without the optimizer
    or loop state ``fit`` resumes from)."""
    try:
        yield
    except (RuntimeError, KeyError, ValueError) as e:
        text = str(e)
        if ckpt is None or isinstance(e, RsfuseError) or not any(w in text for w in _RESTORE_WORDS):
            raise
        lines = [ln.strip() for ln in text.strip("'\"").splitlines() if ln.strip()]
        detail = "; ".join(lines[:3])
        raise CheckpointError(
            f"checkpoint {ckpt} does not fit this model or run: {detail[:400]}"
        ) from e


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: like :func:`run`, but prints errors instead of a traceback.

    An rsfuse error (also one a library wrapped) prints as one line naming the file or key;
    an ``OSError`` (permissions, a full disk …) as its message and a hint. ``--debug``
    anywhere on the command line, or ``RSFUSE_DEBUG=1``, shows the full traceback instead.
    Anything else is a bug and keeps its traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in args or os.environ.get("RSFUSE_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != DEBUG_FLAG]
    if argv is None:
        sys.argv[1:] = args  # LightningCLI reads sys.argv itself
    if debug:
        run(args)
        return
    hint = f"(run with {DEBUG_FLAG} for the traceback)"
    try:
        run(args)
    except KeyboardInterrupt:
        print("rsfuse: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except RsfuseError as e:
        print(f"rsfuse: error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as e:
        print(f"rsfuse: error: {e}\n{hint}", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as e:
        inner = rsfuse_cause(e)
        if inner is None:
            raise
        print(f"rsfuse: error: {inner}", file=sys.stderr)
        raise SystemExit(1) from None
