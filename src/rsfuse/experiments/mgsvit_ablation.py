"""``rsfuse experiment mgsvit-ablation``: MGSViT Table 1 and §4.5 ablations over seeds.

Training uses every patch of the train split, cloudy ones included (``--no-train-cloudy``
drops them, as BigEarthNet practice does; a model that never sees a cloudy S2 patch cannot
learn to distrust one). Each variant is a packaged config (``mgsvit/…``, full size, the keys
``rsfuse fit`` reads) with the override ``mgsvit/overrides/tiny_cpu`` (``--size tiny``, the
default), built by :func:`rsfuse.experiments.runner.build_run`. Every run trains the
config's :class:`~rsfuse.tasks.classification.MultiLabelClassificationTask`, then scores it
on (:func:`rsfuse.experiments.protocols.train_and_score`)

* ``clear``: the test split (no cloudy / snowy patches);
* ``cloudy``: the cloud-heavy split: every patch flagged ``contains_cloud_or_shadow`` in
  the validation and test splits (never trained on);
* for fused models, also with S2 marked absent (``S1 only``) and S1 marked absent
  (``S2 only``), on both splits.

Writes ``results_runs.csv`` (one row per run and test set), ``results.csv`` and
``results.md`` (mean ± std over seeds of micro/macro mAP), ``claims.md`` / ``.csv`` /
``.json`` (Table 1's order and Table 2's gains on the clear test set — the paper left
cloudy patches out — each marked holds / does not hold: :mod:`rsfuse.experiments.claims`)
and ``ablation.png`` (bar plot) into ``--out``. The SSL variants need encoder checkpoints
from the MGSViT pretraining (the ``mgsvit/pretrain/*`` configs write them into their run folders,
``runs/mgsvit_<c4|c0>_<s1|s2>/encoders/``), looked up under ``--pretrained`` (the folder
those runs were started from); while those files are absent the variants are listed as
pending.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rsfuse.errors import CheckpointError
from rsfuse.experiments.claims import (
    MGSVIT,
    Claim,
    Verdict,
    judge,
    ordering,
    per_seed,
    write_verdicts,
)
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
    cell,
    dotted,
    ensure_synthetic,
    experiment_parser,
    run_experiment,
    save_figure,
    write_csv,
    write_json,
    write_text,
)
from rsfuse.training.configs import load_config

#: Variant name → (packaged config, description).
VARIANTS: dict[str, tuple[str, str]] = {
    "S1": ("mgsvit/table1_s1", "Table 1 S1: C4 encoder on S1 only"),
    "S2": ("mgsvit/table1_s2", "Table 1 S2: C4 encoder on S2 only"),
    "NO": ("mgsvit/ablation_no", "no shortcut, concat"),
    "C4": ("mgsvit/ablation_c4", "shortcut every 4, concat (Table 1 S1+S2)"),
    "C0-GMU": ("mgsvit/ablation_c0_gmu", "no shortcut, GMU"),
    "C4-GMU": ("mgsvit/ablation_c4_gmu", "shortcut every 4, GMU (Table 1 S1 GMU S2)"),
    "SSL": ("mgsvit/ssl/ablation_ssl", "no shortcut, concat, SSL encoders"),
    "base": ("mgsvit/ssl/ablation_base", "shortcut every 4, GMU, SSL encoders"),
}
DEFAULT_VARIANTS = ("S1", "S2", "NO", "C4", "C0-GMU", "C4-GMU", "SSL", "base")
SINGLE = ("S1", "S2")
TINY = "mgsvit/overrides/tiny_cpu"

#: One score of a run on a test set (see :class:`~rsfuse.experiments.protocols.ScoreRow`).
Row = ScoreRow

#: ``--profile gpu``: the full-size configs (bf16, one GPU) and a budget sized to finish in
#: about 8 minutes on one H100/H200 — a first sizing, not yet timed on a device.
GPU_PROFILE: dict[str, Any] = {
    "size": "full",
    "n": 3000,
    "epochs": 5,
    "batch_size": 128,
}


def summarise(rows: list[ScoreRow]) -> list[dict[str, Any]]:
    """Mean ± std over seeds per (variant, test set, evaluated on)."""
    return summarise_scores(rows)


def markdown_table(summary: list[dict[str, Any]], pending: dict[str, str]) -> str:
    """One row per (variant, evaluated on): micro/macro mAP (%) on the clear and cloudy sets."""
    idx = {(s["variant"], s["evaluated_on"], s["test_set"]): s for s in summary}
    keys = sorted({(s["variant"], s["evaluated_on"]) for s in summary}, key=_order)
    lines = [
        "| variant | evaluated on | clear mAP micro | clear mAP macro | cloudy mAP micro "
        "| cloudy mAP macro | seeds | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]

    for variant, on in keys:
        c, d = idx.get((variant, on, "clear")), idx.get((variant, on, "cloudy"))
        ref = c or d
        lines.append(
            f"| {variant} | {on} | {cell(c, 'mAP_micro')} | {cell(c, 'mAP_macro')} "
            f"| {cell(d, 'mAP_micro')} | {cell(d, 'mAP_macro')} | {ref['seeds']} "
            f"| {ref['train_seconds_mean']:.0f} |"
        )
    for variant, why in pending.items():
        lines.append(f"| {variant} | pending: {why} | - | - | - | - | 0 | - |")
    return "\n".join(lines)


def _order(key: tuple[str, str]) -> tuple[int, int]:
    names = list(VARIANTS)
    ons = ["S1", "S2", "S1+S2", "S1 only", "S2 only"]
    return (
        names.index(key[0]) if key[0] in names else 99,
        ons.index(key[1]) if key[1] in ons else 0,
    )


def plot(summary: list[dict[str, Any]], path: Path) -> None:
    """Bars of micro mAP (mean ± std) per variant, clear vs cloudy test set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    main_rows = [s for s in summary if s["evaluated_on"] in ("S1", "S2", "S1+S2")]
    variants = sorted({s["variant"] for s in main_rows}, key=lambda v: _order((v, "")))
    x = np.arange(len(variants))
    fig, ax = plt.subplots(figsize=(1.3 * len(variants) + 3, 4.8), layout="constrained")
    for i, test_set in enumerate(("clear", "cloudy")):
        vals = {s["variant"]: s for s in main_rows if s["test_set"] == test_set}
        mean = [100 * vals[v]["mAP_micro_mean"] if v in vals else np.nan for v in variants]
        std = [100 * vals[v]["mAP_micro_std"] if v in vals else 0 for v in variants]
        ax.bar(x + (i - 0.5) * 0.38, mean, 0.38, yerr=std, capsize=3, label=f"{test_set} test")
    ax.set_xticks(x)
    ax.set_xticklabels(variants)
    ax.set_ylabel("micro mAP (%), whole test split")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("MGSViT ablation (mean ± std over seeds)")
    fig.legend(loc="outside upper right", ncol=2, fontsize=8, frameon=False)
    save_figure(fig, path)


#: The paper's claims on this experiment's variants: Table 1's order and Table 2's gains.
TABLE1_ORDER = ("S1", "S2", "C4", "C4-GMU")
TABLE2_GAINS: tuple[tuple[str, str, str], ...] = (
    ("Table 2 (shortcut)", "C4", "NO"),
    ("Table 2 (shortcut)", "C4-GMU", "C0-GMU"),
    ("Table 2 (GMU)", "C0-GMU", "NO"),
    ("Table 2 (GMU)", "C4-GMU", "C4"),
    ("Table 2 (SSL)", "SSL", "NO"),
    ("Table 2 (SSL)", "base", "C4-GMU"),
)


def claims(rows: Sequence[ScoreRow], test_set: str = "clear") -> list[Verdict]:
    """MGSViT's claims checked on ``test_set`` (micro mAP per seed, each model on its own
    input): Table 1's order S1 < S2 < S1+S2 (C4) < S1 GMU S2 (C4-GMU), and Table 2's gains
    of the shortcut, the GMU and SSL pretraining."""
    flat = [asdict(r) for r in rows]

    def values(variant: str) -> dict[int, float]:
        on = variant if variant in SINGLE else "S1+S2"
        return per_seed(flat, "map_micro", variant=variant, test_set=test_set, evaluated_on=on)

    where = f"{test_set} test"
    table1 = ordering(MGSVIT, f"Table 1, {where}", TABLE1_ORDER)
    table2 = [Claim(MGSVIT, f"{w}, {where}", hi, lo) for w, hi, lo in TABLE2_GAINS]
    return [judge(c, values(c.better), values(c.worse)) for c in table1 + table2]


def write_run_csvs(rows: list[ScoreRow], out: Path) -> list[dict[str, Any]]:
    """Write ``results_runs.csv`` (one row per run and test set) and ``results.csv`` (mean ±
    std over seeds, :func:`summarise`) into ``out``; return the summary."""
    write_csv(out / "results_runs.csv", [asdict(r) for r in rows])
    summary = summarise(rows)
    write_csv(out / "results.csv", summary)
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = experiment_parser(
        "mgsvit-ablation",
        "MGSViT Table 1 and §4.5 ablations: train each variant's config over "
        "several seeds, test on the clear test split and a cloud-heavy split (every cloudy "
        "patch), score fused models also with S1 only / S2 only, and write a markdown + "
        "CSV table of mean ± std micro/macro mAP and a bar plot. Without --root it "
        "synthesises a BigEarthNet-v2-layout dataset of the synthetic Sentinel world.",
        epilog=(
            "variants: "
            + "; ".join(f"{k} = {d} ({c})" for k, (c, d) in VARIANTS.items())
            + ". The SSL variants need the encoders the mgsvit/pretrain configs write "
            "(rsfuse fit --config mgsvit/pretrain/c4_s1 etc.: runs/mgsvit_c4_s1/encoders/...) "
            "under --pretrained; without them they are listed as pending."
        ),
    )
    add_bigearthnet_arguments(p, n=1200)
    add_training_arguments(p, seeds=(0, 1, 2), batch_size=16, epochs=5)
    p.add_argument(
        "--variants",
        nargs="+",
        default=list(DEFAULT_VARIANTS),
        choices=list(VARIANTS),
        metavar="VARIANT",
        help=f"variants to run (default: all: {' '.join(DEFAULT_VARIANTS)})",
    )
    p.add_argument(
        "--train-cloudy",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train on cloudy patches too (default: yes)",
    )
    p.add_argument(
        "--cloudy-splits",
        nargs="+",
        default=["val", "test"],
        choices=["train", "val", "test"],
        help="splits whose cloudy patches form the cloud-heavy test set (default: val test; "
        "adding train only makes sense with --no-train-cloudy)",
    )
    p.add_argument(
        "--pretrained",
        type=Path,
        default=Path("."),
        help="folder the SSL configs' relative encoder checkpoint paths start from: the one "
        "the mgsvit/pretrain runs were started from (default: the working directory)",
    )
    add_profile_argument(p, GPU_PROFILE, tiny=f"the packaged override {TINY}")
    return p


def encoder_overrides(config: str, size_configs: Sequence[str], pretrained: Path) -> list[str]:
    """``--model.init_args.encoder_checkpoints`` of an SSL variant with its relative paths
    resolved under ``pretrained`` (empty for variants trained from scratch)."""
    init = load_config(config, *size_configs)["model"]["init_args"]
    paths = init.get("encoder_checkpoints") or {}
    if not paths:
        return []
    resolved = {k: str(v if Path(v).is_absolute() else pretrained / v) for k, v in paths.items()}
    return dotted(model__init_args__encoder_checkpoints=resolved)


def main(argv: Sequence[str]) -> None:
    """Run the ablation (see ``--help``)."""
    run_experiment(build_parser(), argv, _run)


def _run(args: argparse.Namespace) -> None:
    t_start = time.time()
    out: Path = args.out
    size = [TINY] if args.size == "tiny" else []
    root = args.root or ensure_synthetic(
        "bigearthnet-v2", out / "data", args.n, args.world_seed, args.workers
    )

    runs: dict[str, list[str]] = {}
    pending: dict[str, str] = {}
    for v in args.variants:
        over = encoder_overrides(VARIANTS[v][0], size, args.pretrained)
        missing = [p for p in (json.loads(over[0].split("=", 1)[1]).values() if over else [])
                   if not Path(p).is_file()]  # fmt: skip
        if missing:
            pending[v] = f"needs SSL encoder checkpoints {missing} (mgsvit/pretrain configs)"
            print(f"[ablation] {v}: pending, {pending[v]}")
            continue
        runs[v] = over

    data = classification_data(root, args.batch_size, args.train_cloudy, args.cloudy_splits)
    sizes = data.sizes
    print(f"[ablation] samples: {sizes}")

    rows: list[ScoreRow] = []

    def write_tables() -> tuple[str, str, str]:
        """(Re)write every output from the runs so far (a killed run keeps its results)."""
        summary = write_run_csvs(rows, out)
        table = markdown_table(summary, pending)
        verdicts = claims(rows, "clear")  # the paper dropped cloudy patches (its §4.1)
        verdict = "\n".join(v.line() for v in verdicts)
        header = (
            f"MGSViT ablation, size={args.size}, epochs={args.epochs}, seeds={args.seeds}, "
            f"train_cloudy={args.train_cloudy}, samples={sizes}, "
            f"{(time.time() - t_start) / 60:.1f} min\n\n"
        )
        claims_md = write_verdicts(out, verdicts, "Claims of MGSViT (micro mAP, whole test sets)")
        write_text(out / "results.md", header + table + "\n\n## Claims\n\n" + claims_md)
        write_json(out / "results.json", {"sizes": sizes, "summary": summary, "pending": pending})
        if summary:
            plot(summary, out / "ablation.png")
        return header, table, verdict

    common = [
        f"--trainer.max_epochs={args.epochs}",
        f"--data.init_args.batch_size={args.batch_size}",
    ]
    for seed in args.seeds:
        for v, over in runs.items():
            try:
                new = train_and_score(v, [VARIANTS[v][0], *size], [*common, *over], seed, data, out)
            except CheckpointError as e:
                pending[v] = str(e)
                continue
            rows.extend(new)
            write_tables()
            main_row = new[0]
            print(
                f"[ablation] {v} seed {seed}: clear micro mAP {100 * main_row.map_micro:.1f} "
                f"({main_row.train_seconds:.0f}s; {(time.time() - t_start) / 60:.1f} min total)"
            )

    header, table, verdict = write_tables()
    print()
    print(header + table)
    print()
    print(verdict)
    print(
        f"[ablation] wrote {out}/results.md, results.csv, results_runs.csv, claims.md/.csv/.json,"
        " ablation.png"
    )
