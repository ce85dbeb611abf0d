"""``rsfuse experiment segmentation-transfer``: CromSS transfer tables (CromSS Tables II–IV).

Runs a list of encoders through the three downstream settings of §IV-A, each with a frozen
("Frozen", efix) and a trained ("Fine-tuned", etr) encoder, over several seeds, and writes
the paper's tables: mean ± std over seeds of OA, AA, mIoU and mF1 (%), one table per setting.

======== ====================== =========================================== ==========
setting  dataset                network (packaged config segmentation/…)     paper
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
  encoder is exported (safetensors + JSON) to ``OUT/encoders/`` and reused when present;
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
per-class IoU and the arguments), ``claims.md`` / ``.csv`` / ``.json`` (each pretrained
encoder against random init per setting and mode, marked holds / does not hold),
``transfer_miou.png`` (bars of mIoU), and per setting,
encoder and mode the first seed's ``confusion_matrix.png`` and ``samples.png`` under
``figures/``. The tables are rewritten after every run, so a killed run keeps its results.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rsfuse.errors import ConfigError
from rsfuse.experiments.claims import write_verdicts
from rsfuse.experiments.protocols import (
    DEFAULT_SETTINGS,
    MODES,
    RANDOM,
    SETTINGS,
    SegRun,
    add_segmentation_data_arguments,
    markdown_tables,
    plot_transfer,
    segmentation_datamodule,
    segmentation_roots,
    setting_configs,
    split_list,
    summarise_runs,
    transfer_claims,
    transfer_run,
)
from rsfuse.experiments.runner import (
    add_profile_argument,
    build_run,
    dotted,
    experiment_parser,
    run_experiment,
    write_csv,
    write_json,
    write_text,
)
from rsfuse.training.configs import load_config

SYNTHETIC = "synthetic-supervised"
MODALITIES = {"s2": ["s2"], "s1": ["s1"], "s1s2": ["s1", "s2"]}

#: ``--profile gpu``: the full-size configs (bf16, one GPU) and a budget sized to finish in
#: about 8 minutes on one H100/H200 — a first sizing, not yet timed on a device.
GPU_PROFILE: dict[str, Any] = {
    "size": "full",
    "epochs": 10,
    "pretrain_epochs": 10,
    "batch_size": 32,
}


# ---------------------------------------------------------------------------- encoders
def pretrain_synthetic_supervised(
    configs: Sequence[str],
    noldo_root: Path,
    patch_size: int | None,
    modalities: list[str],
    args: argparse.Namespace,
    out: Path,
) -> Path:
    """Train a U-Net (ViT: UPerNet) with the configs' encoder on NoLDO-S12 noisy labels and
    export its encoder; returns the safetensors path (reused when it exists)."""
    from rsfuse.data.classes import DW9
    from rsfuse.models.segmentation import is_vit_encoder

    model = load_config(*configs)["model"]["init_args"]
    enc = model["encoder"]
    path = out / "encoders" / f"{SYNTHETIC}_{enc}_{'-'.join(modalities)}.safetensors"
    if path.is_file():
        print(f"[transfer] reusing {path}")
        return path
    arch = "upernet" if is_vit_encoder(enc) else "unet"
    decoder = model.get("decoder_kwargs") if arch == "upernet" else None
    if arch == "unet" and args.size == "tiny":  # whole encoder (depth 5), light decoder
        decoder = {"encoder_depth": 5, "decoder_channels": [64, 32, 16, 16, 8]}
    dm = segmentation_datamodule(
        configs, noldo_root, modalities, args.batch_size, patch_size, dataset="noldo-s12"
    )
    run = build_run(
        configs,
        dotted(
            model__init_args__modalities=modalities,
            model__init_args__num_classes=len(DW9),
            model__init_args__class_names=list(DW9),
            model__init_args__architecture=arch,
            model__init_args__decoder_kwargs=decoder,
            model__init_args__lr=args.pretrain_lr,
            model__init_args__plot_samples=0,
            trainer__max_epochs=args.pretrain_epochs,
            trainer__devices=1,
            trainer__num_sanity_val_steps=0,
            trainer__limit_val_batches=0,
            trainer__log_every_n_steps=1,
            data__init_args__root=str(noldo_root),
            data__init_args__dataset="noldo-s12",
        ),
        run_dir=out / "logs" / f"pretrain_{enc}",
        datamodule=dm,
        seed=args.world_seed,
    )
    t0 = time.time()
    run.trainer.fit(run.model, datamodule=dm)
    task = run.model
    cfg = {
        "class": "smp" if arch == "unet" else "vit",
        "encoder": enc,
        "modality": "".join(modalities),
        "bands": list(task.channels),
    }
    task.write_encoder(task.model.encoder, path, cfg)
    n = len(dm.datasets["train"])
    print(
        f"[transfer] pretrained {arch}/{enc} on {n} NoLDO-S12 samples with noisy labels "
        f"({args.pretrain_epochs} epochs, {time.time() - t0:.0f}s) -> {path}"
    )
    return path


def resolve_encoders(
    names: list[str],
    configs: Sequence[str],
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
                configs, roots["noldo-s12"], patches["noldo-s12"], modalities, args, out
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


def write_outputs(
    out: Path,
    runs: list[SegRun],
    encoders: list[str],
    header: str,
    extra: dict[str, Any],
    plot: bool = True,
) -> str:
    """(Re)write results.md / .csv / .json, results_runs.csv and (``plot``) the mIoU bars;
    returns the markdown."""
    summary = summarise_runs(runs)
    write_csv(
        out / "results_runs.csv", [{k: v for k, v in asdict(r).items() if k != "iou"} for r in runs]
    )
    write_csv(out / "results.csv", summary)
    md = header + markdown_tables(summary, encoders) + "\n"
    verdicts = transfer_claims(runs, [e for e in encoders if e != RANDOM])
    if verdicts:
        claims_md = write_verdicts(out, verdicts, "Pretrained vs random encoders (mIoU)")
        md += "\n## Claims\n\n" + claims_md
    write_text(out / "results.md", md)
    write_json(
        out / "results.json", {**extra, "summary": summary, "runs": [asdict(r) for r in runs]}
    )
    if summary and plot:
        plot_transfer(summary, encoders, out / "transfer_miou.png")
    return md


# ---------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = experiment_parser(
        "segmentation-transfer",
        (
            "CromSS Tables II-IV: transfer a list of encoders to DFC2020 (PSPNet), "
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
        help="tiny: add the packaged segmentation/overrides/tiny_cpu* (CPU); full: paper sizes",
    )
    size.add_argument(
        "--tiny",
        dest="size",
        action="store_const",
        const="tiny",
        help="same as --size tiny (the default)",
    )
    add_segmentation_data_arguments(p)
    add_profile_argument(p, GPU_PROFILE)
    return p


def main(argv: Sequence[str]) -> None:
    """Run the transfer experiment (see ``--help``)."""
    run_experiment(build_parser(), argv, _run)


def _run(args: argparse.Namespace) -> None:
    t_start = time.time()
    out: Path = args.out
    settings = split_list(args.settings)
    for s in settings:
        if s not in SETTINGS:
            raise ConfigError(f"unknown setting {s!r}; expected {list(SETTINGS)}", key="settings")
    encoder_names = split_list(args.encoders)
    tiny = args.size == "tiny"
    modalities = MODALITIES[args.modality]
    needed = {SETTINGS[s].data for s in settings}
    if SYNTHETIC in encoder_names:
        needed.add("noldo-s12")
    roots, patches = segmentation_roots(args, out, needed)
    synthesised = str(out / "data") in {str(r.parent) for r in roots.values()}

    # encoders are resolved per encoder architecture (the first setting using each)
    weights_by_arch: dict[str, dict[str, tuple[str | None, str]]] = {}
    runs: list[SegRun] = []
    labels: list[str] = []
    header = (
        f"CromSS transfer (Tables II-IV), size={args.size}, modality={args.modality}, "
        f"epochs={args.epochs}, seeds={args.seeds}, data={'synthetic' if synthesised else roots}"
        "\n\nOA, AA, mIoU, mF1 in % on the test split (mean ± std over seeds).\n\n"
    )
    extra: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    for key in settings:
        setting = SETTINGS[key]
        configs = {m: setting_configs(setting, m, tiny) for m in args.modes}
        first = configs[args.modes[0]]
        enc_name = load_config(*first)["model"]["init_args"]["encoder"]
        if enc_name not in weights_by_arch:
            weights_by_arch[enc_name] = resolve_encoders(
                encoder_names, first, roots, patches, modalities, args, out
            )
        weights = weights_by_arch[enc_name]
        labels += [e for e in weights if e not in labels]
        # both sensors are read (cheap, cached) so the sample figures always show S2 true
        # colour and S1 false colour; the model sees only --modality
        dm = segmentation_datamodule(
            first, roots[setting.data], ["s1", "s2"], args.batch_size, patches[setting.data]
        )
        sizes = {s: len(dm.datasets[s]) for s in ("train", "test")}
        extra.setdefault("sizes", {})[key] = sizes
        print(f"[transfer] {key}: {setting.title}, samples {sizes}")
        for enc, w in weights.items():
            for mode in args.modes:
                for i, seed in enumerate(args.seeds):
                    r = transfer_run(
                        key, configs[mode], enc, w, mode, seed, dm, modalities, args.epochs,
                        out, figures=i == 0,
                    )  # fmt: skip
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
