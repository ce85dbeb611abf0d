"""``rsfuse experiment segmentation-transfer``: CromSS transfer tables (seed 001, Tables II–IV).

Runs a list of encoders through the three downstream settings of §IV-A, each with a frozen
("Frozen", efix) and a trained ("Fine-tuned", etr) encoder, over several seeds, and writes
the paper's tables: mean ± std over seeds of OA, AA, mIoU and mF1 (%), one table per setting.

======== ====================== =========================================== ==========
setting  dataset                network (config under configs/segmentation) paper
======== ====================== =========================================== ==========
dfc2020  DFC2020 (8 classes)    PSPNet + ResNet-50 (``dfc2020_pspnet_*``)    Table II
dw       SSL4EO-S12@DW (9)      DeepLabV3+ + ResNet-50 (``dw_deeplabv3plus``) Table III
osm      SSL4EO-S12@OSM (13)    FPN + ResNet-50 (``osm_fpn_*``)              Table IV
dfc2020-vit DFC2020             UPerNet + ViT (``dfc2020_vit_upernet_*``)    §IV-A ViTs
======== ====================== =========================================== ==========

Encoders (``--encoders``):

* ``random``: randomly initialised encoder (the paper's "random" rows);
* ``synthetic-supervised``: an encoder trained by this command on the synthetic world's
  NoLDO-S12 pretraining split, supervised by its *noisy* Dynamic-World-like labels (a U-Net
  with the setting's encoder, or a ViT UPerNet, CE + Dice, ``--pretrain-epochs`` epochs; no
  cross-modal sample selection: the single-modal noisy-label baseline of Table V). The
  encoder is exported with :func:`~rsfuse.models.checkpoints.save_encoder` to
  ``OUT/encoders/`` and reused when present;
* a path: an encoder weight file (``.safetensors``, torch state dict or Lightning
  checkpoint; ``--checkpoint-prefix`` selects the encoder's keys), loaded with key checks.
  It must match the configs' encoder (``resnet18`` with ``--size tiny``, ``resnet50`` full)
  and input channels (S2 13 bands by default; ``--modality``).

Data: ``--data ROOT`` holds ``ROOT/dfc2020`` (DFC2020 layout) and ``ROOT/noldo-s12``
(NoLDO-S12 layout with the SSL4EO-S12@DW / @OSM downstream sets); ``--dfc2020-root`` /
``--noldo-root`` point at each separately. Without them the synthetic Sentinel world is
written to ``OUT/data`` at ``--patch-size`` px (fast on a CPU). Given data are read at their
published patch sizes unless ``--data-patch-size KIND=PX`` says otherwise.

Outputs in ``--out``: ``results.md`` (the tables), ``results.csv`` (mean ± std per setting,
encoder and mode), ``results_runs.csv`` (one row per run), ``results.json`` (both, plus
per-class IoU and the arguments), ``transfer_miou.png`` (bars of mIoU), and per setting,
encoder and mode the first seed's ``confusion_matrix.png`` and ``samples.png`` under
``figures/``. The tables are rewritten after every run, so a killed run keeps its results.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rsfuse.errors import ConfigError
from rsfuse.experiments import torch_threads
from rsfuse.experiments.mgsvit_ablation import load_config
from rsfuse.io.atomic import write_atomic

METRICS = ("OA", "AA", "mIoU", "mF1")
MODES = ("frozen", "finetune")
MODE_TITLES = {"frozen": "Frozen", "finetune": "Fine-tuned"}
RANDOM = "random"
SYNTHETIC = "synthetic-supervised"


@dataclass(frozen=True)
class Setting:
    """One downstream setting of §IV-A."""

    config: str  # config stem under configs/segmentation (+ _frozen / _finetune)
    dataset: str  # SegmentationDataModule dataset
    data: str  # "dfc2020" or "noldo-s12": which data root
    title: str


SETTINGS: dict[str, Setting] = {
    "dfc2020": Setting("dfc2020_pspnet", "dfc2020", "dfc2020", "DFC2020, PSPNet (Table II)"),
    "dw": Setting(
        "dw_deeplabv3plus", "ssl4eo-s12-dw", "noldo-s12", "SSL4EO-S12@DW, DeepLabV3+ (Table III)"
    ),
    "osm": Setting("osm_fpn", "ssl4eo-s12-osm", "noldo-s12", "SSL4EO-S12@OSM, FPN (Table IV)"),
    "dfc2020-vit": Setting(
        "dfc2020_vit_upernet", "dfc2020", "dfc2020", "DFC2020, UPerNet on a ViT (§IV-A)"
    ),
}
DEFAULT_SETTINGS = ("dfc2020", "dw", "osm")
MODALITIES = {"s2": ["s2"], "s1": ["s1"], "s1s2": ["s1", "s2"]}


def default_config_dir() -> Path:
    """``configs/segmentation`` of the source checkout (or ``./configs/segmentation``)."""
    here = Path(__file__).resolve().parents[3] / "configs" / "segmentation"
    return here if here.is_dir() else Path("configs/segmentation")


def _split_list(values: Sequence[str]) -> list[str]:
    """``["a,b", "c"]`` → ``["a", "b", "c"]`` (lists may be given comma- or space-separated)."""
    return [v for item in values for v in item.split(",") if v]


@dataclass
class Run:
    """One trained and tested model."""

    setting: str
    encoder: str
    mode: str
    seed: int
    OA: float
    AA: float
    mIoU: float  # noqa: N815 - the paper's metric names
    mF1: float  # noqa: N815
    train_seconds: float
    iou: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------- configs
def setting_config(cfg_dir: Path, setting: Setting, mode: str, tiny: bool) -> dict:
    """The setting's config for ``mode``, merged with its tiny CPU override if asked."""
    path = cfg_dir / f"{setting.config}_{mode}.yaml"
    override = None
    if tiny:
        vit = "vit" in setting.config
        override = cfg_dir / "overrides" / ("tiny_cpu_vit.yaml" if vit else "tiny_cpu.yaml")
    return load_config(path, override)


def _import(class_path: str) -> Any:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def build_datamodule(
    cfg: dict, root: Path, modalities: list[str], batch_size: int, patch_size: int | None
) -> Any:
    """The config's datamodule on ``root``, in memory, for one process (CPU runs)."""
    init = dict(cfg["data"]["init_args"])
    init.update(root=str(root), modalities=modalities, batch_size=batch_size, cache=True)
    init["num_workers"] = 0
    if patch_size is not None:
        init["patch_size"] = patch_size
    dm = _import(cfg["data"]["class_path"])(**init)
    dm.setup("fit")
    dm.setup("test")
    return dm


def _task_args(cfg: dict, modalities: list[str]) -> dict[str, Any]:
    init = dict(cfg["model"]["init_args"])
    init["modalities"] = modalities
    return init


def _trainer(cfg: dict, epochs: int, out: Path, name: str) -> Any:
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    tcfg = cfg.get("trainer", {})
    return L.Trainer(
        max_epochs=epochs,
        accelerator=tcfg.get("accelerator", "auto"),
        devices=1,
        precision=tcfg.get("precision", "32-true"),
        logger=CSVLogger(out / "logs", name=name),
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,  # no model selection: every run is scored after its last epoch
        log_every_n_steps=1,
    )


# ---------------------------------------------------------------------------- data + encoders
def parse_patch_sizes(items: Sequence[str]) -> dict[str, int]:
    """``["dfc2020=32", "noldo-s12=48"]`` → ``{"dfc2020": 32, "noldo-s12": 48}``.

    Raises:
        ConfigError: an item that is not ``KIND=PX`` with a known kind.
    """
    sizes = {}
    for item in _split_list(items):
        kind, _, px = item.partition("=")
        if kind not in ("dfc2020", "noldo-s12") or not px.isdigit():
            raise ConfigError(
                f"bad --data-patch-size {item!r}; expected dfc2020=PX or noldo-s12=PX",
                key="data-patch-size",
            )
        sizes[kind] = int(px)
    return sizes


def ensure_data(
    args: argparse.Namespace, out: Path, needed: set[str]
) -> tuple[dict[str, Path], dict[str, int | None]]:
    """Roots of the ``dfc2020`` and ``noldo-s12`` data (synthesised into ``out/data`` when no
    root is given) and the patch size to read each at (None: the dataset's own)."""
    roots: dict[str, Path] = {}
    given_sizes = parse_patch_sizes(args.data_patch_size)
    patches: dict[str, int | None] = {}
    given = {"dfc2020": args.dfc2020_root, "noldo-s12": args.noldo_root}
    for kind in sorted(needed):
        patches[kind] = given_sizes.get(kind)
        if given[kind] is not None:
            roots[kind] = Path(given[kind])
        elif args.data is not None:
            roots[kind] = Path(args.data) / kind
        else:
            roots[kind] = out / "data" / kind
            patches[kind] = args.patch_size
            done = roots[kind] / ".rsfuse-complete"
            if not done.is_file():
                from rsfuse.data.synthetic import synthesize

                t0 = time.time()
                kw: dict[str, Any] = {"patch_size": args.patch_size}
                n = args.n_dfc2020
                if kind == "noldo-s12":
                    n, kw["n_downstream"] = args.n_noldo, args.n_downstream
                synthesize(
                    kind,
                    roots[kind],
                    n=n,
                    seed=args.world_seed,
                    workers=args.workers,
                    progress=False,
                    **kw,
                )
                done.write_text("ok\n")
                print(f"[transfer] synthesised {kind} ({n} locations) in {time.time() - t0:.0f}s")
        if not roots[kind].is_dir():
            raise ConfigError(f"data root {roots[kind]} not found", key="data")
    return roots, patches


def pretrain_synthetic_supervised(
    cfg: dict,
    noldo_root: Path,
    patch_size: int | None,
    modalities: list[str],
    args: argparse.Namespace,
    out: Path,
) -> Path:
    """Train a U-Net (ViT: UPerNet) with the config's encoder on NoLDO-S12 noisy labels and
    export its encoder; returns the safetensors path (reused when it exists)."""
    import lightning as L

    from rsfuse.data.classes import DW9
    from rsfuse.models.checkpoints import save_encoder
    from rsfuse.tasks.segmentation import SegmentationTask, is_vit_encoder

    init = _task_args(cfg, modalities)
    enc = init["encoder"]
    path = out / "encoders" / f"{SYNTHETIC}_{enc}_{'-'.join(modalities)}.safetensors"
    if path.is_file():
        print(f"[transfer] reusing {path}")
        return path
    L.seed_everything(args.world_seed, verbose=False)
    pre = {
        k: init[k]
        for k in ("s2_bands", "s2_product", "encoder", "encoder_kwargs", "optimizer")
        if k in init
    }
    arch = "upernet" if is_vit_encoder(enc) else "unet"
    decoder = init.get("decoder_kwargs") if arch == "upernet" else None
    if arch == "unet" and args.size == "tiny":  # whole encoder (depth 5), light decoder
        decoder = {"encoder_depth": 5, "decoder_channels": [64, 32, 16, 16, 8]}
    task = SegmentationTask(
        modalities=modalities,
        num_classes=len(DW9),
        class_names=list(DW9),
        architecture=arch,
        decoder_kwargs=decoder,
        lr=args.pretrain_lr,
        plot_samples=0,
        **pre,
    )
    dm_cfg = {"data": {**cfg["data"], "init_args": {**cfg["data"]["init_args"]}}}
    dm_cfg["data"]["init_args"]["dataset"] = "noldo-s12"
    dm = build_datamodule(dm_cfg, noldo_root, modalities, args.batch_size, patch_size)
    trainer = _trainer(cfg, args.pretrain_epochs, out, f"pretrain_{enc}")
    t0 = time.time()
    trainer.fit(task, datamodule=dm)
    save_encoder(task.model.encoder, path)
    n = len(dm.datasets["train"])
    print(
        f"[transfer] pretrained {arch}/{enc} on {n} NoLDO-S12 samples with noisy labels "
        f"({args.pretrain_epochs} epochs, {time.time() - t0:.0f}s) -> {path}"
    )
    return path


def resolve_encoders(
    names: list[str],
    cfg: dict,
    roots: dict[str, Path],
    patches: dict[str, int | None],
    modalities: list[str],
    args: argparse.Namespace,
    out: Path,
) -> dict[str, tuple[str | None, str]]:
    """Encoder label → (weight file or None, key prefix)."""
    found: dict[str, tuple[str | None, str]] = {}
    for name in names:
        if name == RANDOM:
            found[RANDOM] = (None, "")
        elif name == SYNTHETIC:
            p = pretrain_synthetic_supervised(
                cfg, roots["noldo-s12"], patches["noldo-s12"], modalities, args, out
            )
            found[SYNTHETIC] = (str(p), "")
        else:
            p = Path(name)
            if not p.is_file():
                raise ConfigError(
                    f"encoder {name!r} is neither {RANDOM!r}, {SYNTHETIC!r} nor a file",
                    key="encoders",
                )
            found[p.stem] = (str(p), args.checkpoint_prefix)
    return found


# ---------------------------------------------------------------------------- runs
def run_one(
    setting: str,
    cfg: dict,
    encoder: str,
    weights: tuple[str | None, str],
    mode: str,
    seed: int,
    dm: Any,
    modalities: list[str],
    args: argparse.Namespace,
    out: Path,
    figures: bool,
) -> Run:
    """Train one model (frozen or fine-tuned encoder) and score it on the test split."""
    import lightning as L

    from rsfuse.tasks.segmentation import SegmentationTask

    L.seed_everything(seed, verbose=False)
    init = _task_args(cfg, modalities)
    init.update(
        encoder_checkpoint=weights[0],
        checkpoint_prefix=weights[1],
        freeze_encoder=mode == "frozen",
        class_names=list(dm.classes),
        num_classes=dm.num_classes,
        plot_dir=str(out / "figures" / setting / f"{encoder}_{mode}"),
        plot_samples=init.get("plot_samples", 4) if figures else 0,
    )
    task = SegmentationTask(**init)
    trainer = _trainer(cfg, args.epochs, out, f"{setting}_{encoder}_{mode}_seed{seed}")
    t0 = time.time()
    trainer.fit(task, datamodule=dm)
    seconds = time.time() - t0
    trainer.test(task, datamodule=dm, verbose=False)
    m = task.last_test_metrics
    assert m is not None
    return Run(
        setting,
        encoder,
        mode,
        seed,
        *(float(m[k]) for k in METRICS),
        seconds,
        iou={k: float(v) for k, v in m["IoU"].items()},
    )


def _mean_std(values: list[float]) -> tuple[float, float]:
    v = [x for x in values if not math.isnan(x)]
    if not v:
        return float("nan"), float("nan")
    mean = sum(v) / len(v)
    var = sum((x - mean) ** 2 for x in v) / max(1, len(v) - 1)
    return mean, math.sqrt(var)


def summarise(runs: list[Run]) -> list[dict[str, Any]]:
    """Mean ± std over seeds (sample std, n − 1) per (setting, encoder, mode)."""
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.setting, r.encoder, r.mode), []).append(r)
    out = []
    for (setting, encoder, mode), rs in groups.items():
        row: dict[str, Any] = {"setting": setting, "encoder": encoder, "mode": mode}
        row["seeds"] = len(rs)
        for k in METRICS:
            row[f"{k}_mean"], row[f"{k}_std"] = _mean_std([getattr(r, k) for r in rs])
        row["train_seconds_mean"] = _mean_std([r.train_seconds for r in rs])[0]
        out.append(row)
    return out


def _cell(s: dict[str, Any] | None, k: str) -> str:
    if s is None:
        return "-"
    mean, std = 100 * s[k + "_mean"], 100 * s[k + "_std"]
    return f"{mean:.2f}" if s["seeds"] < 2 else f"{mean:.2f} ± {std:.2f}"


def markdown_tables(summary: list[dict[str, Any]], encoders: list[str]) -> str:
    """One Table II–IV style table per setting: encoder rows, Frozen | Fine-tuned columns of
    OA, AA, mIoU, mF1 (%, mean ± std over seeds)."""
    idx = {(s["setting"], s["encoder"], s["mode"]): s for s in summary}
    blocks = []
    for key, setting in SETTINGS.items():
        rows = [e for e in encoders if any((key, e, m) in idx for m in MODES)]
        if not rows:
            continue
        head = "| encoder | " + " | ".join(f"{MODE_TITLES[m]} {k}" for m in MODES for k in METRICS)
        lines = [f"### {setting.title}", "", head + " | seeds |", "|---" * 10 + "|"]
        for e in rows:
            cells, seeds = [], 0
            for m in MODES:
                s = idx.get((key, e, m))
                seeds = max(seeds, s["seeds"] if s else 0)
                for k in METRICS:
                    cells.append(_cell(s, k))
            lines.append(f"| {e} | " + " | ".join(cells) + f" | {seeds} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def plot_summary(summary: list[dict[str, Any]], encoders: list[str], path: Path) -> None:
    """Bars of mIoU (mean ± std) per setting: one group per encoder, frozen vs fine-tuned."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    settings = [k for k in SETTINGS if any(s["setting"] == k for s in summary)]
    fig, axes = plt.subplots(1, len(settings), figsize=(4.2 * len(settings), 3.8), squeeze=False)
    for ax, key in zip(axes[0], settings):
        idx = {(s["encoder"], s["mode"]): s for s in summary if s["setting"] == key}
        x = np.arange(len(encoders))
        for i, m in enumerate(MODES):
            vals = [idx.get((e, m)) for e in encoders]
            mean = [100 * v["mIoU_mean"] if v else 0 for v in vals]
            std = [100 * v["mIoU_std"] if v and not math.isnan(v["mIoU_std"]) else 0 for v in vals]
            ax.bar(x + (i - 0.5) * 0.38, mean, 0.38, yerr=std, capsize=3, label=MODE_TITLES[m])
        ax.set_xticks(x)
        ax.set_xticklabels(encoders, rotation=20, ha="right", fontsize=8)
        ax.set_title(SETTINGS[key].title, fontsize=9)
        ax.set_ylabel("test mIoU (%)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_outputs(
    out: Path,
    runs: list[Run],
    encoders: list[str],
    header: str,
    extra: dict[str, Any],
    plot: bool = True,
) -> str:
    """(Re)write results.md / .csv / .json, results_runs.csv and (``plot``) the mIoU bars;
    returns the markdown."""
    summary = summarise(runs)
    fields = [f for f in Run.__dataclass_fields__ if f != "iou"]
    tmp = out / "results_runs.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        w.writerows([[getattr(r, k) for k in fields] for r in runs])
    os.replace(tmp, out / "results_runs.csv")
    tmp = out / "results.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(summary[0]) if summary else ["setting"])
        w.writeheader()
        w.writerows(summary)
    os.replace(tmp, out / "results.csv")
    md = header + markdown_tables(summary, encoders) + "\n"
    write_atomic(out / "results.md", md)
    payload = {**extra, "summary": summary, "runs": [asdict(r) for r in runs]}
    write_atomic(out / "results.json", json.dumps(payload, indent=2))
    if summary and plot:
        plot_summary(summary, encoders, out / "transfer_miou.png")
    return md


# ---------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rsfuse experiment segmentation-transfer",
        description=(
            "CromSS (seed 001) Tables II-IV: transfer a list of encoders to DFC2020 (PSPNet), "
            "SSL4EO-S12@DW (DeepLabV3+) and SSL4EO-S12@OSM (FPN), with the encoder frozen and "
            "fine-tuned, over several seeds; write markdown + CSV tables of mean ± std OA, AA, "
            "mIoU, mF1 and figures. Without --data it synthesises the synthetic Sentinel world "
            "(DFC2020 and NoLDO-S12 layouts)."
        ),
        epilog=(
            f"encoders: {RANDOM!r} (random init), {SYNTHETIC!r} (a U-Net trained here on the "
            "synthetic NoLDO-S12 noisy labels, encoder exported to OUT/encoders), or paths of "
            "encoder files matching the configs' encoder (resnet18 with --size tiny). "
            "settings: " + "; ".join(f"{k} = {s.title}" for k, s in SETTINGS.items())
        ),
    )
    p.add_argument("--out", type=Path, default=Path("rsfuse-segmentation-transfer"))
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder with dfc2020/ and noldo-s12/ (default: synthesise into OUT/data)",
    )
    p.add_argument("--dfc2020-root", type=Path, default=None, help="DFC2020 root")
    p.add_argument(
        "--noldo-root",
        type=Path,
        default=None,
        help="NoLDO-S12 root (pretraining + SSL4EO-S12@DW / @OSM)",
    )
    p.add_argument(
        "--settings",
        nargs="+",
        default=[",".join(DEFAULT_SETTINGS)],
        help=f"settings, comma- or space-separated (default {','.join(DEFAULT_SETTINGS)};"
        f" all: {','.join(SETTINGS)})",
    )
    p.add_argument(
        "--encoders",
        nargs="+",
        default=[f"{RANDOM},{SYNTHETIC}"],
        help=f"encoders: {RANDOM}, {SYNTHETIC} or encoder files (default {RANDOM},{SYNTHETIC})",
    )
    p.add_argument(
        "--checkpoint-prefix",
        default="",
        help="key prefix of the encoder inside encoder files (e.g. 'encoder.')",
    )
    p.add_argument(
        "--modes",
        nargs="+",
        default=list(MODES),
        choices=list(MODES),
        help="frozen and/or finetune (default both)",
    )
    p.add_argument(
        "--modality",
        choices=list(MODALITIES),
        default="s2",
        help="input sensors (default s2: the S2 13-band rows of the tables)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=3, help="downstream epochs (default 3)")
    p.add_argument(
        "--pretrain-epochs",
        type=int,
        default=4,
        help=f"epochs of the {SYNTHETIC} pretraining (default 4)",
    )
    p.add_argument("--pretrain-lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=8)
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--size",
        choices=["tiny", "full"],
        default="tiny",
        help="tiny: apply configs/segmentation/overrides (CPU); full: paper sizes",
    )
    size.add_argument(
        "--tiny",
        dest="size",
        action="store_const",
        const="tiny",
        help="same as --size tiny (the default)",
    )
    p.add_argument(
        "--patch-size",
        type=int,
        default=48,
        help="side of synthesised patches (multiple of 6; default 48)",
    )
    p.add_argument(
        "--data-patch-size",
        nargs="+",
        default=[],
        metavar="KIND=PX",
        help="patch side of given data, e.g. dfc2020=32 noldo-s12=48 (default: published)",
    )
    p.add_argument("--n-dfc2020", type=int, default=64, help="synthetic DFC2020 patches")
    p.add_argument("--n-noldo", type=int, default=64, help="synthetic NoLDO-S12 locations")
    p.add_argument(
        "--n-downstream", type=int, default=48, help="synthetic SSL4EO-S12@DW/@OSM tiles"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (default: torch's choice; 1 is fastest on a busy CPU)",
    )
    p.add_argument("--world-seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="processes for data synthesis")
    p.add_argument("--config-dir", type=Path, default=None)
    return p


def main(argv: Sequence[str]) -> None:
    """Run the transfer experiment (see ``--help``)."""
    args = build_parser().parse_args(list(argv))
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    with torch_threads(args.threads):
        _run(args)


def _run(args: argparse.Namespace) -> None:
    t_start = time.time()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    settings = _split_list(args.settings)
    for s in settings:
        if s not in SETTINGS:
            raise ConfigError(f"unknown setting {s!r}; expected {list(SETTINGS)}", key="settings")
    encoder_names = _split_list(args.encoders)
    cfg_dir = args.config_dir or default_config_dir()
    tiny = args.size == "tiny"
    modalities = MODALITIES[args.modality]
    needed = {SETTINGS[s].data for s in settings}
    if SYNTHETIC in encoder_names:
        needed.add("noldo-s12")
    roots, patches = ensure_data(args, out, needed)
    synthesised = str(out / "data") in {str(r.parent) for r in roots.values()}

    # encoders are resolved per encoder architecture (the first setting using each)
    weights_by_arch: dict[str, dict[str, tuple[str | None, str]]] = {}
    runs: list[Run] = []
    labels: list[str] = []
    header = (
        f"CromSS transfer (seed 001, Tables II-IV), size={args.size}, modality={args.modality}, "
        f"epochs={args.epochs}, seeds={args.seeds}, data={'synthetic' if synthesised else roots}"
        "\n\nOA, AA, mIoU, mF1 in % on the test split (mean ± std over seeds).\n\n"
    )
    extra: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    for key in settings:
        setting = SETTINGS[key]
        cfgs = {m: setting_config(cfg_dir, setting, m, tiny) for m in args.modes}
        first = cfgs[args.modes[0]]
        enc_name = first["model"]["init_args"]["encoder"]
        if enc_name not in weights_by_arch:
            weights_by_arch[enc_name] = resolve_encoders(
                encoder_names, first, roots, patches, modalities, args, out
            )
        weights = weights_by_arch[enc_name]
        labels += [e for e in weights if e not in labels]
        # both sensors are read (cheap, cached) so the sample figures always show S2 true
        # colour and S1 false colour; the model sees only --modality
        dm = build_datamodule(
            first, roots[setting.data], ["s1", "s2"], args.batch_size, patches[setting.data]
        )
        sizes = {s: len(dm.datasets[s]) for s in ("train", "test")}
        extra.setdefault("sizes", {})[key] = sizes
        print(f"[transfer] {key}: {setting.title}, samples {sizes}")
        for enc, w in weights.items():
            for mode in args.modes:
                for i, seed in enumerate(args.seeds):
                    r = run_one(
                        key,
                        cfgs[mode],
                        enc,
                        w,
                        mode,
                        seed,
                        dm,
                        modalities,
                        args,
                        out,
                        figures=i == 0,
                    )
                    runs.append(r)
                    write_outputs(out, runs, labels, header, extra, plot=False)
                    print(
                        f"[transfer] {key} {enc} {mode} seed {seed}: mIoU {100 * r.mIoU:.1f} "
                        f"OA {100 * r.OA:.1f} ({r.train_seconds:.0f}s; "
                        f"{(time.time() - t_start) / 60:.1f} min total)"
                    )
    header += f"({(time.time() - t_start) / 60:.1f} min in all)\n\n"
    md = write_outputs(out, runs, labels, header, extra)
    print()
    print(md)
    print(
        f"[transfer] wrote {out}/results.md, results.csv, results_runs.csv, results.json, "
        "transfer_miou.png, figures/"
    )
