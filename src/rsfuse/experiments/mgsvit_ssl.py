"""``rsfuse experiment mgsvit-ssl``: MGSViT self-supervised pretraining, then transfer (§4.6).

The pipeline of MGSViT §4.6 on a BigEarthNet-v2-layout dataset (by default the synthetic
world):

1. **Pretrain** an S1 and an S2 :class:`~rsfuse.models.vit.GatedViT` encoder on the train
   split without labels with :class:`~rsfuse.methods.mgsvit.MGSViTPretraining`
   (packaged configs ``mgsvit/pretrain/c4_{s1,s2}``), once per pretraining kind:

   * ``MCMAE``: MAE reconstruction + MoCo v3 contrast (Algorithm 1, the paper's method);
   * ``MAE``: reconstruction only (``contrast_weight = 0``);
   * ``MoCo``: contrast only (``reconstruction_weight = 0``);
   * ``random``: no pretraining, the encoders' random initialisation exported as is.

   Each run exports its encoders (safetensors + JSON) under ``--out/pretrained`` and writes
   reconstruction PNGs under ``--out/reconstructions``.
2. **Transfer** to 19-class multi-label classification with the S1 GMU S2 model
   (``mgsvit/ssl/ablation_base``: shortcut every 4 blocks, GMU), over seeds:
   a *linear probe* (encoders frozen; the GMU and the head train) and a *fine-tune* (all
   weights train) from each kind's encoders. Fine-tuning from ``random`` is the
   supervised-from-scratch baseline. This is Figure 11's comparison.

Every transfer run is scored on the clear test split, on the cloud-heavy split (every
cloudy patch of val + test) and, as in ``mgsvit-ablation``, with S1 only and S2 only.
Writes ``results.md``, ``results.csv``, ``results_runs.csv``, ``pretraining.csv``,
``results.json``, ``claims.md`` / ``.csv`` / ``.json`` (Figure 11's and Table 2's
claims that fine-tuning after MCMAE pretraining scores best, marked holds / does not
hold) and ``ssl.png`` into ``--out``; tables are rewritten after every run, so a killed
experiment keeps what it finished.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rsfuse.experiments.claims import MGSVIT, Claim, Verdict, judge, per_seed, write_verdicts
from rsfuse.experiments.protocols import (
    ScoreRow,
    classification_data,
    summarise_scores,
    train_and_score,
)
from rsfuse.experiments.runner import (
    add_bigearthnet_arguments,
    add_profile_argument,
    add_training_arguments,
    build_run,
    cell,
    dotted,
    ensure_synthetic,
    experiment_parser,
    run_experiment,
    write_csv,
    write_json,
    write_text,
)

#: Pretraining kind → (reconstruction weight, contrast weight); ``None``: no pretraining.
PRETRAINING: dict[str, tuple[float, float] | None] = {
    "MCMAE": (1.0, 1.0),
    "MAE": (1.0, 0.0),
    "MoCo": (0.0, 1.0),
    "random": None,
}
TRANSFER = ("linear probe", "fine-tune")
TINY_PRETRAIN = "mgsvit/overrides/tiny_cpu_pretrain"
TINY = "mgsvit/overrides/tiny_cpu"
TRANSFER_CONFIG = "mgsvit/ssl/ablation_base"

#: ``--profile gpu``: the full-size configs (bf16, one GPU) and a budget sized to finish in
#: about 8 minutes on one H100/H200 — a first sizing, not yet timed on a device.
GPU_PROFILE: dict[str, Any] = {
    "size": "full",
    "n": 3000,
    "pretrain_epochs": 10,
    "epochs": 5,
    "batch_size": 128,
}


def pretrain(
    kind: str, modality: str, size: str, dm: Any, epochs: int, out: Path, seed: int = 0
) -> dict[str, Any]:
    """Pretrain (or, for ``random``, just build) one encoder and export it.

    Returns:
        A record: kind, modality, path of the exported encoder, seconds, and the last
        epoch's mean training losses (when trained).
    """
    configs = [f"mgsvit/pretrain/c4_{modality}"] + ([TINY_PRETRAIN] if size == "tiny" else [])
    weights = PRETRAINING[kind]
    rec_w, con_w = weights if weights is not None else (1.0, 1.0)
    run = build_run(
        configs,
        [
            *dotted(
                model__init_args__reconstruction_weight=rec_w,
                model__init_args__contrast_weight=con_w,
                model__init_args__export_path=None,
                model__init_args__plot_dir=str(out / "reconstructions" / f"{kind}_{modality}"),
                trainer__max_epochs=epochs,
                trainer__devices=1,
                trainer__num_sanity_val_steps=0,
                # the reconstruction PNG and one val/loss_rec per epoch
                trainer__limit_val_batches=1,
                data__init_args__root=str(dm.root),
            ),
        ],
        run_dir=out / "logs" / f"pretrain_{kind}_{modality}",
        datamodule=dm,
        seed=seed,
    )
    method, trainer = run.model, run.trainer
    record: dict[str, Any] = {"pretraining": kind, "modality": modality, "seconds": 0.0}
    if weights is not None:
        t0 = time.time()
        trainer.fit(method, datamodule=dm)
        record["seconds"] = time.time() - t0
        for k in ("loss", "loss_rec", "loss_con"):
            v = trainer.callback_metrics.get(f"train/{k}")
            record[f"final_{k}"] = float(v) if v is not None else None
        v = trainer.callback_metrics.get("val/loss_rec")
        record["val_loss_rec"] = float(v) if v is not None else None
    path = method.export_encoder(out / "pretrained" / f"{kind}_{modality}")
    record["encoder"] = str(path)
    return record


def transfer_overrides(mode: str, encoders: dict[str, str], epochs: int, batch: int) -> list[str]:
    """Overrides of the S1 GMU S2 fine-tuning config in ``mode`` loading ``encoders``."""
    return dotted(
        model__init_args__mode=mode,
        model__init_args__encoder_checkpoints=dict(encoders),
        trainer__max_epochs=epochs,
        data__init_args__batch_size=batch,
    )


def markdown_table(summary: list[dict[str, Any]], kinds: Sequence[str]) -> str:
    """Rows: pretraining kind; columns: linear probe and fine-tune micro / macro mAP (%)."""
    idx = {
        (s["variant"], s["test_set"]): s
        for s in summary
        if s["evaluated_on"] in ("S1+S2",) and s["test_set"] in ("clear", "cloudy")
    }

    def cell_of(kind: str, how: str, test_set: str, metric: str) -> str:
        return cell(idx.get((f"{kind} | {how}", test_set)), metric)

    lines = [
        "| pretraining | linear probe mAP micro | linear probe mAP macro | fine-tune mAP micro "
        "| fine-tune mAP macro | fine-tune cloudy mAP micro | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in kinds:
        seeds = max(
            (s["seeds"] for (v, _), s in idx.items() if v.startswith(kind + " |")), default=0
        )
        name = "random init (fine-tune = supervised from scratch)" if kind == "random" else kind
        lines.append(
            f"| {name} | {cell_of(kind, 'linear probe', 'clear', 'mAP_micro')} "
            f"| {cell_of(kind, 'linear probe', 'clear', 'mAP_macro')} "
            f"| {cell_of(kind, 'fine-tune', 'clear', 'mAP_micro')} "
            f"| {cell_of(kind, 'fine-tune', 'clear', 'mAP_macro')} "
            f"| {cell_of(kind, 'fine-tune', 'cloudy', 'mAP_micro')} | {seeds} |"
        )
    return "\n".join(lines)


def plot(summary: list[dict[str, Any]], kinds: Sequence[str], path: Path) -> None:
    """Grouped bars: micro mAP of linear probe and fine-tune per pretraining kind."""
    import numpy as np

    from rsfuse.plots.common import pyplot, save_figure

    plt = pyplot()
    idx = {
        s["variant"]: s
        for s in summary
        if s["evaluated_on"] == "S1+S2" and s["test_set"] == "clear"
    }
    x = np.arange(len(kinds))
    fig, ax = plt.subplots(figsize=(1.6 * len(kinds) + 4, 4.6), layout="constrained")
    for i, how in enumerate(TRANSFER):
        rows = [idx.get(f"{k} | {how}") for k in kinds]
        mean = [100 * r["mAP_micro_mean"] if r else np.nan for r in rows]
        std = [100 * r["mAP_micro_std"] if r else 0.0 for r in rows]
        ax.bar(x + (i - 0.5) * 0.38, mean, 0.38, yerr=std, capsize=3, label=how)
    ax.set_xticks(x)
    ax.set_xticklabels(kinds)
    ax.set_ylabel("micro mAP (%), clear test split")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("MGSViT S1 GMU S2 after self-supervised pretraining\n(mean ± std over seeds)",
                 fontsize=10)  # fmt: skip
    fig.legend(loc="outside upper right", ncol=2, fontsize=8, frameon=False)
    save_figure(fig, path)


def claims(rows: Sequence[ScoreRow], test_set: str = "clear") -> list[Verdict]:
    """MGSViT's pretraining claims, micro mAP of the S1 GMU S2 model per seed on
    ``test_set``: Figure 11 (fine-tuning after MGSViT's own pretraining, MCMAE, scores above
    MAE and MoCo v3 — the paper's figure uses S2 and an encoder without shortcuts, this
    experiment the S1 GMU S2 model on S1+S2) and Table 2's SSL gain (fine-tuning after MCMAE
    above supervised training from scratch). The encoders are pretrained once; the seeds
    vary the transfer."""
    flat = [asdict(r) for r in rows]

    def values(kind: str) -> dict[int, float]:
        return per_seed(
            flat, "map_micro", variant=f"{kind} | fine-tune", test_set=test_set,
            evaluated_on="S1+S2",
        )  # fmt: skip

    names = {"MCMAE": "MCMAE fine-tune", "MAE": "MAE fine-tune", "MoCo": "MoCo fine-tune",
             "random": "from scratch"}  # fmt: skip
    note = "one pretraining run; the seeds vary the transfer"
    where = {"MAE": "Figure 11", "MoCo": "Figure 11", "random": "Table 2 (SSL)"}
    out = []
    for other in ("MAE", "MoCo", "random"):
        c = Claim(MGSVIT, f"{where[other]}, {test_set} test", names["MCMAE"], names[other],
                  note=note)  # fmt: skip
        out.append(judge(c, values("MCMAE"), values(other)))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = experiment_parser(
        "mgsvit-ssl",
        "MGSViT §4.6 and Figure 11: pretrain an S1 and an S2 GatedViT "
        "encoder with MAE + MoCo v3 (MCMAE), MAE only and MoCo v3 only, export them, "
        "then linear-probe and fine-tune the S1 GMU S2 classifier from each, against "
        "random initialisation (fine-tuning from random = supervised from scratch). "
        "Writes markdown + CSV tables of micro/macro mAP (mean ± std over seeds), a bar "
        "plot and reconstruction PNGs. Without --root it synthesises a "
        "BigEarthNet-v2-layout dataset of the synthetic Sentinel world.",
    )
    add_bigearthnet_arguments(p, n=1200)
    add_training_arguments(
        p, seeds=(0, 1, 2), batch_size=16, epochs=5, epochs_help="transfer epochs per run"
    )
    p.add_argument(
        "--pretraining",
        nargs="+",
        default=list(PRETRAINING),
        choices=list(PRETRAINING),
        metavar="KIND",
        help=f"pretraining kinds (default: all: {' '.join(PRETRAINING)})",
    )
    p.add_argument(
        "--pretrain-epochs", type=int, default=8, help="pretraining epochs per encoder (8)"
    )
    p.add_argument(
        "--cloudy-splits",
        nargs="+",
        default=["val", "test"],
        choices=["train", "val", "test"],
        help="splits whose cloudy patches form the cloud-heavy test set (default: val test)",
    )
    add_profile_argument(p, GPU_PROFILE, tiny=f"the packaged overrides {TINY_PRETRAIN} and {TINY}")
    return p


def main(argv: Sequence[str]) -> None:
    """Run the pretraining + transfer comparison (see ``--help``)."""
    run_experiment(build_parser(), argv, _run)


def _run(args: argparse.Namespace) -> None:
    t_start = time.time()
    out: Path = args.out
    root = args.root or ensure_synthetic(
        "bigearthnet-v2", out / "data", args.n, args.world_seed, args.workers
    )
    data = classification_data(root, args.batch_size, True, args.cloudy_splits)
    sizes = data.sizes
    print(f"[mgsvit-ssl] samples: {sizes}")
    # pretraining reads the same cached splits, without the datamodule's augmentation (the
    # method augments its two views itself)
    data.datamodule.augmentation = None

    kinds = [k for k in PRETRAINING if k in args.pretraining]
    records: list[dict[str, Any]] = []
    encoders: dict[str, dict[str, str]] = {}
    for kind in kinds:
        for modality in ("s1", "s2"):
            rec = pretrain(kind, modality, args.size, data.datamodule, args.pretrain_epochs, out)
            records.append(rec)
            encoders.setdefault(kind, {})[modality] = rec["encoder"]
            print(
                f"[mgsvit-ssl] pretrained {kind} {modality} in {rec['seconds']:.0f}s "
                f"({(time.time() - t_start) / 60:.1f} min total)"
            )
    write_csv(out / "pretraining.csv", records)
    from rsfuse.data.transforms import classification_augmentation

    data.datamodule.augmentation = classification_augmentation()

    rows: list[ScoreRow] = []

    def write_tables() -> str:
        write_csv(out / "results_runs.csv", [asdict(r) for r in rows])
        summary = summarise_scores(rows)
        write_csv(out / "results.csv", summary)
        header = (
            f"MGSViT SSL + transfer (S1 GMU S2), size={args.size}, pretraining "
            f"{args.pretrain_epochs} epochs, transfer {args.epochs} epochs, seeds={args.seeds}, "
            f"samples={sizes}, {(time.time() - t_start) / 60:.1f} min\n\n"
        )
        table = markdown_table(summary, kinds)
        verdicts = claims(rows, "clear")  # the paper dropped cloudy patches
        claims_md = write_verdicts(out, verdicts, "Claims of MGSViT (micro mAP, S1 GMU S2)")
        write_text(out / "results.md", header + table + "\n\n## Claims\n\n" + claims_md)
        write_json(
            out / "results.json", {"sizes": sizes, "pretraining": records, "summary": summary}
        )
        if summary:
            plot(summary, kinds, out / "ssl.png")
        return header + table + "\n\n" + "\n".join(v.line() for v in verdicts)

    configs = [TRANSFER_CONFIG] + ([TINY] if args.size == "tiny" else [])
    for seed in args.seeds:
        for kind in kinds:
            for how in TRANSFER:
                mode = "linear_probe" if how == "linear probe" else "finetune"
                over = transfer_overrides(mode, encoders[kind], args.epochs, args.batch_size)
                name = f"{kind} | {how}"
                new = train_and_score(name, configs, over, seed, data, out)
                rows.extend(new)
                write_tables()
                print(
                    f"[mgsvit-ssl] {name} seed {seed}: clear micro mAP "
                    f"{100 * new[0].map_micro:.1f} ({new[0].train_seconds:.0f}s; "
                    f"{(time.time() - t_start) / 60:.1f} min total)"
                )
    for kind in kinds:  # the final reconstruction figures side by side in one folder
        for png in sorted((out / "reconstructions").glob(f"{kind}_*/*_final.png")):
            shutil.copy(png, out / f"reconstruction_{kind}_{png.parent.name.split('_')[-1]}.png")
    text = write_tables()
    print()
    print(text)
    print(f"[mgsvit-ssl] wrote {out}/results.md, results.csv, ssl.png, pretrained/")
