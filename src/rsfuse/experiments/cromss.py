"""``rsfuse experiment cromss``: CromSS ablations on the synthetic world (CromSS §IV-C/D).

1. **Pretraining** on NoLDO-S12 noisy labels of each Table V variant (packaged configs
   ``cromss/…``, with their tiny CPU override for ``--size tiny``): single-modal S1 and
   S2, midF, lateF, CromSS-midF, CromSS-lateF; and for Table VI, CromSS-midF with the label
   smoothing weights (α, β) of ``--smoothing`` (default (0, 0), (0, 0.2), (0.2, 0) and the
   paper's (0.15, 0.05), the latter shared with Table V). Encoders are exported to
   ``OUT/encoders/`` and reused when present.
2. **Accuracy of the pretrained models** on the pretraining split against the *clean* labels
   (Fig. 8 a/b), per modality, beside the accuracy of the noisy labels themselves:
   ``pretrain_accuracy.csv`` and ``pretrain_accuracy.png``.
3. **Selection masks** of CromSS-midF next to noisy and clean labels (Fig. 11):
   ``selection_masks.png``.
4. **Transfer** with :class:`~rsfuse.tasks.segmentation.SegmentationTask` (frozen and
   fine-tuned encoders, ``--settings`` of :data:`rsfuse.experiments.protocols.SETTINGS`),
   S1 encoders on S1 input and S2 encoders on S2 input, random init as the baseline, over
   ``--seeds``: Table V (``results.md``, ``results.csv``, ``results_runs.csv``,
   ``transfer_miou.png``) and Table VI (the label smoothing ablation, in the same files).

Without ``--data`` / ``--noldo-root`` the synthetic world is written to ``OUT/data``. The
tables are rewritten after every run, so a killed run keeps its results.
"""

from __future__ import annotations

import argparse
import csv
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rsfuse.data.classes import DW9
from rsfuse.errors import ConfigError
from rsfuse.experiments.claims import CROMSS, Claim, Verdict, judge, write_verdicts
from rsfuse.experiments.protocols import (
    MODE_TITLES,
    MODES,
    RANDOM,
    SETTINGS,
    SegRun,
    add_segmentation_data_arguments,
    markdown_tables,
    plot_transfer,
    pretrain_accuracy,
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
    save_figure,
    write_csv,
    write_text,
)
from rsfuse.training.configs import load_config

__all__ = ["VARIANT_CONFIGS", "build_parser", "main", "pretrain_variant"]

log = logging.getLogger(__name__)

#: Table V variant → packaged config.
VARIANT_CONFIGS: dict[str, str] = {
    "single-s1": "cromss/single_s1",
    "single-s2": "cromss/single_s2",
    "midF": "cromss/midf",
    "lateF": "cromss/latef",
    "CromSS-midF": "cromss/cromss_midf",
    "CromSS-lateF": "cromss/cromss_latef",
}
TINY = "cromss/overrides/tiny_cpu"
DEFAULT_SMOOTHING = ("0:0", "0:0.2", "0.2:0", "0.15:0.05")
PAPER_SMOOTHING = (0.15, 0.05)

#: ``--profile gpu``: the full-size configs (bf16, one GPU) and a budget sized to finish in
#: about 8 minutes on one H100/H200 — a first sizing, not yet timed on a device.
GPU_PROFILE: dict[str, Any] = {
    "size": "full",
    "epochs": 10,
    "pretrain_epochs": 10,
    "batch_size": 32,
}


def parse_smoothing(items: Sequence[str]) -> list[tuple[float, float]]:
    """``["0:0", "0.15:0.05"]`` → ``[(0.0, 0.0), (0.15, 0.05)]`` (α:β pairs).

    Raises:
        ConfigError: an item that is not ``ALPHA:BETA``.
    """
    out = []
    for item in split_list(items):
        a, sep, b = item.partition(":")
        try:
            if not sep:
                raise ValueError
            out.append((float(a), float(b)))
        except ValueError as e:
            raise ConfigError(f"bad --smoothing {item!r}; expected ALPHA:BETA", "smoothing") from e
    return out


def _smoothing_label(alpha: float, beta: float) -> str:
    return f"CromSS-midF a={alpha:g} b={beta:g}"


# ---------------------------------------------------------------------------- pretraining
def pretrain_variant(
    variant: str,
    args: argparse.Namespace,
    root: Path,
    patch_size: int | None,
    out: Path,
    alpha_beta: tuple[float, float] | None = None,
) -> tuple[dict[str, Path], Any, Any]:
    """Pretrain one variant (or CromSS-midF with other α, β) and export its encoders.

    Returns:
        (``{modality: encoder file}``, the trained module or None when reused, its
        datamodule or None).
    """
    configs = [VARIANT_CONFIGS[variant]] + ([TINY] if args.size == "tiny" else [])
    init = load_config(*configs)["model"]["init_args"]
    name = variant
    over: dict[str, Any] = {}
    alpha = init.get("alpha", 0.15)
    if alpha_beta is not None and alpha_beta != PAPER_SMOOTHING:
        alpha, beta = alpha_beta
        over.update(model__init_args__alpha=alpha, model__init_args__beta=beta)
        name = f"{variant}_a{alpha:g}_b{beta:g}"
    mods = init["modalities"]
    enc_dir = out / "encoders"
    paths = {m: enc_dir / f"cromss_{name}_{m}.safetensors" for m in mods}
    if all(p.is_file() for p in paths.values()):
        print(f"[cromss] reusing encoders of {name}")
        return paths, None, None
    if alpha == 0:
        over["data__init_args__prior"] = "none"
    if patch_size is not None:
        over["data__init_args__patch_size"] = patch_size
    run = build_run(
        configs,
        dotted(
            **over,
            model__init_args__ramp_epochs=max(1, round(0.4 * args.pretrain_epochs)),  # 80/200
            model__init_args__export_dir=None,
            model__init_args__export_name=f"cromss_{name}",
            data__init_args__root=str(root),
            data__init_args__batch_size=args.batch_size,
            data__init_args__num_workers=0,
            data__init_args__modalities=mods,
            trainer__max_epochs=args.pretrain_epochs,
            trainer__devices=1,
            trainer__num_sanity_val_steps=0,
            trainer__log_every_n_steps=1,
        ),
        run_dir=out / "logs" / f"pretrain_{name}",
        seed=args.world_seed,
    )
    t0 = time.time()
    run.trainer.fit(run.model, datamodule=run.datamodule)
    written = run.model.export_encoders(enc_dir)
    print(f"[cromss] pretrained {name} ({args.pretrain_epochs} epochs, {time.time() - t0:.0f}s)")
    return written, run.model, run.datamodule


def plot_selection_masks(model: Any, dm: Any, path: Path, n: int = 3) -> None:
    """Fig. 11: S2 true colour, the noisy and the clean Dynamic World labels, where they
    differ, and the selection masks of both modalities at the end of training.

    Labels take the Dynamic World colours (:mod:`rsfuse.data.palettes`) with a class legend;
    the masks share one colour bar (the weight of a pixel in the cross-entropy term). Each
    row names its sample and season.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from rsfuse.data.composites import true_colour
    from rsfuse.data.palettes import class_legend, colourise
    from rsfuse.data.sample import collate

    ds = dm.datasets["train"]
    raw = collate([ds[j] for j in range(min(n, len(ds)))])
    batch = dm.normalize(raw)
    model.eval()
    with torch.no_grad():
        logits = model(
            {k: v.to(model.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        )
        sel = model.selection(
            logits["s1"], logits["s2"], batch["mask"].to(model.device), model.current_epoch
        )
    noisy, clean = raw["mask"].numpy(), raw["mask_clean"].numpy()
    names = list(getattr(dm, "classes", None) or DW9)
    cols = [
        "S2 true colour",
        "noisy labels\n(Dynamic World, automatic)",
        "clean labels\n(noise-free reference)",
        "label errors\n(noisy ≠ clean, red)",
        "selection mask w\n(S1 branch)",
        "selection mask w\n(S2 branch)",
    ]
    rows = len(noisy)
    fig, axes = plt.subplots(
        rows, len(cols), figsize=(2.3 * len(cols) + 2.6, 2.3 * rows + 0.9), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    s2 = raw["s2"].numpy()
    bands = list(dm.input_spec.s2_bands) if hasattr(dm, "input_spec") else []
    rgb_idx = [bands.index(b) for b in ("B04", "B03", "B02")] if bands else [3, 2, 1]
    seasons = raw.get("season")
    metas = raw.get("meta") or [{}] * rows
    im = None
    for i in range(rows):
        err = (noisy[i] != clean[i]) & (noisy[i] != 255)
        err_rgb = np.ones((*err.shape, 3))
        err_rgb[err] = (0.85, 0.1, 0.1)
        panels = [
            true_colour(np.moveaxis(s2[i, rgb_idx], 0, -1)),
            colourise(noisy[i], names),
            colourise(clean[i], names),
            err_rgb,
        ]
        for j, img in enumerate(panels):
            axes[i, j].imshow(img, interpolation="nearest")
        for j, w in ((4, sel["label_masks"][0][i]), (5, sel["label_masks"][1][i])):
            im = axes[i, j].imshow(
                w.float().cpu().numpy(), cmap="viridis", vmin=0, vmax=1, interpolation="nearest"
            )
        for j in range(len(cols)):
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title(cols[j], fontsize=8)
        sid = metas[i].get("id", i) if isinstance(metas[i], dict) else i
        season = "" if seasons is None else f"\nseason {int(seasons[i])}"
        axes[i, 0].set_ylabel(f"sample {sid}{season}", fontsize=8)
    present = sorted({int(v) for v in np.unique(np.concatenate([noisy.ravel(), clean.ravel()]))
                      if v < len(names)})  # fmt: skip
    fig.legend(
        handles=class_legend(names, unlabelled=bool((noisy == 255).any()), present=present),
        loc="outside right upper", fontsize=7, frameon=False, title="Dynamic World classes",
        title_fontsize=8,
    )  # fmt: skip
    if im is not None:
        fig.colorbar(
            im, ax=axes[:, 4:].ravel().tolist(), location="bottom", shrink=0.8,
            label="w: weight of the pixel's noisy label in the CE loss (0 = left out)",
        )  # fmt: skip
    fig.suptitle(
        f"CromSS selection masks after epoch {int(model.current_epoch)} (Fig. 11): "
        "low w should cover the label errors",
        fontsize=10,
    )
    save_figure(fig, path, dpi=100)


def plot_pretrain_accuracy(rows: list[dict[str, Any]], path: Path) -> None:
    """Bars of the pretrained models' OA against clean labels per modality (Fig. 8 a/b)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(1.3 * len(rows) + 2.5, 4.2), layout="constrained")
    x = np.arange(len(rows))
    for m, off in (("s1", -0.2), ("s2", 0.2)):
        vals = [100 * float(r.get(f"{m}_vs_clean") or "nan") for r in rows]
        ax.bar(x + off, vals, 0.38, label=f"{m.upper()} branch's prediction vs clean labels")
    if rows and "noisy_labels" in rows[0]:
        noisy = 100 * float(rows[0]["noisy_labels"])
        ax.axhline(noisy, color="k", ls="--", lw=1, label="noisy labels vs clean labels")
    ax.set_xticks(x)
    ax.set_xticklabels([r["model"] for r in rows], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("OA on the pretraining split (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("Pretrained models against the clean labels (Fig. 8 a/b)", fontsize=9)
    fig.legend(loc="outside lower center", ncol=2, fontsize=7, frameon=False)
    save_figure(fig, path)


# ---------------------------------------------------------------------------- outputs
def selection_claims(acc_rows: Sequence[dict[str, Any]]) -> list[Verdict]:
    """CromSS §IV-D: the labels its sample selection keeps are more often right than the
    noisy labels as a whole — the selection precision of each CromSS variant's masks (per
    sensor branch) against the noisy labels' accuracy on the pretraining split (one
    pretraining run each: no spread)."""
    out = []
    for r in acc_rows:
        for m in ("s1", "s2"):
            prec = r.get(f"{m}_selection_precision")
            if prec in (None, "") or r.get("noisy_labels") in (None, ""):
                continue
            c = Claim(CROMSS, "§IV-D, pretraining split", f"{r['model']} {m.upper()} selection "
                      "precision", "noisy-label accuracy", metric="pixel accuracy",
                      note="one pretraining run")  # fmt: skip
            out.append(judge(c, {0: float(prec)}, {0: float(r["noisy_labels"])}))
    return out


def smoothing_claims(runs: Sequence[SegRun], table6: Sequence[str]) -> list[Verdict]:
    """CromSS Table VI: the combined label smoothing (α, β) = (0.15, 0.05) is "more stable
    across all datasets" than none — per seed and mode, its worst shortfall (over the
    downstream settings run) from the best smoothing setting of that setting is smaller
    than that of no smoothing. The values are minus those shortfalls (mIoU; 0 = best on
    every setting)."""
    paper = "CromSS-midF S2" if "CromSS-midF S2" in table6 else _smoothing_label(*PAPER_SMOOTHING)
    none = _smoothing_label(0.0, 0.0)
    if paper not in table6 or none not in table6:
        return []
    flat = [asdict(r) for r in runs if r.encoder in table6]
    out = []
    for mode in MODES:
        worst: dict[str, dict[int, float]] = {paper: {}, none: {}}
        seeds = sorted({r["seed"] for r in flat if r["mode"] == mode})
        for seed in seeds:
            by = {(r["setting"], r["encoder"]): r["mIoU"] for r in flat
                  if r["mode"] == mode and r["seed"] == seed}  # fmt: skip
            settings = sorted({k for k, _ in by})
            for enc in worst:
                gaps = [by[(st, enc)] - max(v for (t, _), v in by.items() if t == st)
                        for st in settings if (st, enc) in by]  # fmt: skip
                if gaps:
                    worst[enc][seed] = min(gaps)
        metric = "worst mIoU shortfall from the best smoothing, negated"
        where = f"Table VI, {MODE_TITLES[mode].lower()}"
        c = Claim(CROMSS, where, "α=0.15, β=0.05", "no smoothing", metric=metric,
                  note="one pretraining run per setting; the seeds vary the transfer")  # fmt: skip
        out.append(judge(c, worst[paper], worst[none]))
    return out


def write_outputs(
    out: Path,
    runs: list[SegRun],
    table5: list[str],
    table6: list[str],
    acc_rows: list[dict[str, Any]],
    header: str,
    plot: bool = True,
) -> str:
    """(Re)write results.md / .csv, results_runs.csv, pretrain_accuracy.csv and the plots."""
    summary = summarise_runs(runs)
    write_csv(
        out / "results_runs.csv",
        [{k: v for k, v in asdict(r).items() if k != "iou"} for r in runs],
    )
    write_csv(out / "results.csv", summary)
    write_csv(out / "pretrain_accuracy.csv", acc_rows)
    parts = [header, "## Table V: pretraining variants (encoder → downstream)\n"]
    parts.append(markdown_tables(summary, table5))
    if table6:
        parts += ["\n\n## Table VI: label smoothing (CromSS-midF, S2 encoder)\n"]
        parts.append(markdown_tables(summary, table6))
    if acc_rows:
        parts += [
            "\n\n## Pretrained models on the pretraining split (Fig. 8 a/b), OA %\n",
            "Selection precision: Σ w·[noisy = clean] / Σ w of the final selection masks (CromSS "
            "variants); compare with the accuracy of the noisy labels.\n",
            "| model | S1 vs clean | S2 vs clean | S1 vs noisy | S2 vs noisy | noisy labels "
            "| selection precision S1 | S2 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        keys = (
            "s1_vs_clean", "s2_vs_clean", "s1_vs_noisy", "s2_vs_noisy", "noisy_labels",
            "s1_selection_precision", "s2_selection_precision",
        )  # fmt: skip
        for r in acc_rows:
            cells = [
                f"{100 * float(r[k]):.1f}" if r.get(k) not in (None, "") else "-" for k in keys
            ]
            parts.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    verdicts = (
        transfer_claims(runs, [e for e in table5 if not e.startswith(RANDOM)])
        + selection_claims(acc_rows)
        + smoothing_claims(runs, table6)
    )
    parts += ["\n\n## Claims\n", write_verdicts(out, verdicts, "Claims of CromSS")]
    md = "\n".join(parts) + "\n"
    write_text(out / "results.md", md)
    if plot and summary:
        plot_transfer(
            summary, table5 + [e for e in table6 if e not in table5], out / "transfer_miou.png"
        )
    if plot and acc_rows:
        plot_pretrain_accuracy(acc_rows, out / "pretrain_accuracy.png")
    return md


# ---------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = experiment_parser(
        "cromss",
        (
            "CromSS ablations: pretrain single-modal, midF, lateF, CromSS-midF and "
            "CromSS-lateF on NoLDO-S12 noisy labels, transfer their S1 / S2 encoders frozen and "
            "fine-tuned (Table V), the label smoothing ablation (Table VI), the pretrained "
            "models' accuracy against clean labels (Fig. 8) and selection masks (Fig. 11). "
            "Without --data it synthesises the synthetic Sentinel world."
        ),
    )
    p.add_argument("--data", type=Path, default=None, help="folder with noldo-s12/ (+ dfc2020/)")
    p.add_argument("--noldo-root", type=Path, default=None, help="NoLDO-S12 root")
    p.add_argument("--dfc2020-root", type=Path, default=None, help="DFC2020 root")
    p.add_argument(
        "--variants",
        nargs="+",
        default=[",".join(VARIANT_CONFIGS)],
        help=f"Table V variants (default all: {','.join(VARIANT_CONFIGS)})",
    )
    p.add_argument(
        "--smoothing",
        nargs="+",
        default=[",".join(DEFAULT_SMOOTHING)],
        help="Table VI alpha:beta pairs for CromSS-midF ('none' to skip; default "
        f"{','.join(DEFAULT_SMOOTHING)})",
    )
    p.add_argument(
        "--settings",
        nargs="+",
        default=["dfc2020,dw,osm"],
        help="downstream settings (default dfc2020,dw,osm: the three sets of Tables II-IV; "
        f"any of {','.join(k for k in SETTINGS if 'vit' not in k)})",
    )
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=3, help="downstream epochs")
    p.add_argument("--pretrain-epochs", type=int, default=6, help="CromSS pretraining epochs")
    p.add_argument("--batch-size", type=int, default=8)
    add_segmentation_data_arguments(p)
    add_profile_argument(p, GPU_PROFILE, tiny=f"the packaged override {TINY}")
    return p


def main(argv: Sequence[str]) -> None:
    """Run the CromSS ablations (see ``--help``)."""
    run_experiment(build_parser(), argv, _run)


def _run(args: argparse.Namespace) -> None:
    t_start = time.time()
    out: Path = args.out
    variants = split_list(args.variants)
    for v in variants:
        if v not in VARIANT_CONFIGS:
            raise ConfigError(
                f"unknown variant {v!r}; expected {list(VARIANT_CONFIGS)}", "variants"
            )
    smoothing = [] if split_list(args.smoothing) == ["none"] else parse_smoothing(args.smoothing)
    settings = split_list(args.settings)
    for s in settings:
        if s not in SETTINGS or "vit" in s:
            raise ConfigError(f"setting {s!r} is not a CNN setting of {list(SETTINGS)}", "settings")
    roots, patches = segmentation_roots(
        args, out, {"noldo-s12"} | {SETTINGS[s].data for s in settings}
    )

    # 1–3: pretraining, accuracy against clean labels, selection masks
    encoders: dict[str, tuple[str, list[str]]] = {}  # label → (file, downstream modalities)
    table5, table6 = [RANDOM], []
    acc_rows: list[dict[str, Any]] = []
    previous = {}  # accuracy rows of encoders pretrained by an earlier run into this --out
    if (out / "pretrain_accuracy.csv").is_file():
        with open(out / "pretrain_accuracy.csv", newline="") as f:
            previous = {r["model"]: r for r in csv.DictReader(f)}
    jobs: list[tuple[str, tuple[float, float] | None]] = [(v, None) for v in variants]
    jobs += [("CromSS-midF", ab) for ab in smoothing if ab != PAPER_SMOOTHING]
    if smoothing and PAPER_SMOOTHING in smoothing and "CromSS-midF" not in variants:
        jobs.append(("CromSS-midF", None))
    for variant, ab in jobs:
        paths, model, dm = pretrain_variant(
            variant, args, roots["noldo-s12"], patches["noldo-s12"], out, ab
        )
        label = variant if ab is None else _smoothing_label(*ab)
        if model is not None:
            acc = pretrain_accuracy(model, dm)
            acc_rows.append({"model": label, **acc})
            if variant == "CromSS-midF" and ab is None:
                plot_selection_masks(model, dm, out / "selection_masks.png")
        elif label in previous:
            acc_rows.append(previous[label])
        for m, path in paths.items():
            if ab is None and variant in variants:
                key = f"{variant} {m.upper()}"
                encoders[key] = (str(path), [m])
                table5.append(key)
            if variant == "CromSS-midF" and m == "s2":
                ab_eff = ab or PAPER_SMOOTHING
                if ab_eff in smoothing:
                    # the Table V row doubles as Table VI's paper setting
                    key = f"{variant} S2" if ab is None and variant in variants else None
                    if key is None:
                        key = _smoothing_label(*ab_eff)
                        encoders[key] = (str(path), ["s2"])
                    table6.append(key)

    # 4: transfer
    header = (
        f"CromSS ablations, size={args.size}, pretrain epochs={args.pretrain_epochs}, "
        f"downstream epochs={args.epochs}, seeds={args.seeds}\n\n"
        "Downstream OA, AA, mIoU, mF1 in % on the test split (mean ± std over seeds); "
        "'X S1' / 'X S2' = the S1 / S2 encoder of variant X on S1 / S2 input.\n\n"
    )
    runs: list[SegRun] = []
    randoms = [(RANDOM, ["s2"])]
    if any(mods == ["s1"] for _, mods in encoders.values()):
        randoms.append((f"{RANDOM} S1", ["s1"]))
        table5.insert(1, f"{RANDOM} S1")
    tiny = args.size == "tiny"
    for key in settings:
        setting = SETTINGS[key]
        configs = {m: setting_configs(setting, m, tiny) for m in args.modes}
        dm = segmentation_datamodule(
            configs[args.modes[0]], roots[setting.data], ["s1", "s2"], args.batch_size,
            patches[setting.data],
        )  # fmt: skip
        todo = [(lab, None, mods) for lab, mods in randoms]
        todo += [(k, p, mods) for k, (p, mods) in encoders.items()]
        for label, path, mods in todo:
            for mode in args.modes:
                for seed in args.seeds:
                    r = transfer_run(
                        key, configs[mode], label, (path, ""), mode, seed, dm, mods,
                        args.epochs, out, figures=False,
                    )  # fmt: skip
                    runs.append(r)
                    write_outputs(out, runs, table5, table6, acc_rows, header, plot=False)
                    print(
                        f"[cromss] {key} {label} {mode} seed {seed}: mIoU {100 * r.mIoU:.1f} "
                        f"({(time.time() - t_start) / 60:.1f} min total)"
                    )
    header += f"({(time.time() - t_start) / 60:.1f} min in all)\n\n"
    md = write_outputs(out, runs, table5, table6, acc_rows, header)
    print()
    print(md)
    print(f"[cromss] wrote {out}/results.md, results.csv, results_runs.csv, pretrain_accuracy.*, "
          "transfer_miou.png, selection_masks.png")  # fmt: skip
