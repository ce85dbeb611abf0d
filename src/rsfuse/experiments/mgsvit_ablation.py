"""``rsfuse experiment mgsvit-ablation``: MGSViT Table 1 and §4.5 ablations over seeds.

Training uses every patch of the train split, cloudy ones included (``--no-train-cloudy``
drops them, as BigEarthNet practice does; a model that never sees a cloudy S2 patch cannot
learn to distrust one). Each variant is a config under ``configs/mgsvit/`` (full size) merged with
``configs/mgsvit/overrides/tiny_cpu.yaml`` (``--size tiny``, the default). Every run trains
the config's :class:`~rsfuse.tasks.classification.MultiLabelClassificationTask` on the
train split (clear patches only, as in BigEarthNet practice), then scores it on

* ``clear``: the test split (no cloudy / snowy patches);
* ``cloudy``: the cloud-heavy split: every patch flagged ``contains_cloud_or_shadow`` in
  the validation and test splits (never trained on);
* for fused models, also with S2 marked absent (``S1 only``) and S1 marked absent
  (``S2 only``), on both splits.

Writes ``results_runs.csv`` (one row per run and test set), ``results.csv`` and
``results.md`` (mean ± std over seeds of micro/macro mAP) and ``ablation.png`` (bar plot)
into ``--out``. The SSL variants need encoder checkpoints from the MGSViT pretraining
(``configs/mgsvit/pretrain``, or ``rsfuse experiment mgsvit-ssl``, which writes them),
looked up under ``--pretrained``; while those files are absent the variants are listed as
pending.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rsfuse.errors import CheckpointError, ConfigError

#: Variant name → (config path under configs/mgsvit, description).
VARIANTS: dict[str, tuple[str, str]] = {
    "S1": ("table1_s1.yaml", "Table 1 S1: C4 encoder on S1 only"),
    "S2": ("table1_s2.yaml", "Table 1 S2: C4 encoder on S2 only"),
    "NO": ("ablation_no.yaml", "no shortcut, concat"),
    "C4": ("ablation_c4.yaml", "shortcut every 4, concat (Table 1 S1+S2)"),
    "C0-GMU": ("ablation_c0_gmu.yaml", "no shortcut, GMU"),
    "C4-GMU": ("ablation_c4_gmu.yaml", "shortcut every 4, GMU (Table 1 S1 GMU S2)"),
    "SSL": ("ssl/ablation_ssl.yaml", "no shortcut, concat, SSL encoders"),
    "base": ("ssl/ablation_base.yaml", "shortcut every 4, GMU, SSL encoders"),
}
DEFAULT_VARIANTS = ("S1", "S2", "NO", "C4", "C0-GMU", "C4-GMU", "SSL", "base")
SINGLE = ("S1", "S2")


def default_config_dir() -> Path:
    """``configs/mgsvit`` of the source checkout (or ``./configs/mgsvit``)."""
    here = Path(__file__).resolve().parents[3] / "configs" / "mgsvit"
    return here if here.is_dir() else Path("configs/mgsvit")


def _merge(base: dict, over: dict) -> dict:
    """Deep merge of YAML mappings (``over`` wins), as repeated ``--config`` flags do."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: Path, override: Path | None) -> dict:
    """A config merged with an override file.

    Raises:
        ConfigError: a file is absent.
    """
    if not path.is_file():
        raise ConfigError(f"config {path} not found", key="config-dir")
    cfg = yaml.safe_load(path.read_text())
    if override is not None:
        if not override.is_file():
            raise ConfigError(f"override {override} not found", key="override")
        cfg = _merge(cfg, yaml.safe_load(override.read_text()))
    return cfg


@dataclass
class Row:
    variant: str
    seed: int
    test_set: str
    evaluated_on: str
    map_micro: float
    map_macro: float
    train_seconds: float


def _resolve_checkpoints(init_args: dict, base: Path) -> None:
    """Make relative encoder checkpoint paths relative to ``base`` (the --pretrained folder)."""
    paths = init_args.get("encoder_checkpoints") or {}
    for k, v in list(paths.items()):
        if not Path(v).is_absolute():
            paths[k] = str(base / v)


def cloudy_test_datamodule(dm: Any, splits: Sequence[str] = ("val", "test")) -> Any:
    """A copy of a BigEarthNet-v2 datamodule whose test split is every cloudy patch of
    ``splits`` (never the training split)."""
    import pandas as pd
    from torch.utils.data import ConcatDataset, Subset

    from rsfuse.data.datamodules import BigEarthNetDataModule, InMemoryCache

    meta = pd.read_parquet(
        Path(dm.root) / "metadata.parquet", columns=["patch_id", "contains_cloud_or_shadow"]
    )
    cloudy = set(meta.loc[meta["contains_cloud_or_shadow"].fillna(False), "patch_id"])
    out = BigEarthNetDataModule(
        dm.root,
        version="v2",
        modalities=dm.modalities,
        s2_bands=dm.s2_bands,
        batch_size=dm.batch_size,
        include_cloudy=True,
    )
    parts = []
    for split in splits:
        ds = out.dataset_class(out.root, split=split, **out.dataset_kwargs)
        idx = [i for i, pid in enumerate(ds.sample_ids) if pid in cloudy]
        if idx:
            parts.append(Subset(ds, idx))
    if not parts:
        raise ConfigError("the dataset has no cloudy patch for the cloud-heavy split")
    out.datasets["test"] = InMemoryCache(ConcatDataset(parts)).preload(desc="reading cloudy")
    return out


def ablation_datamodules(
    root: str, batch_size: int, train_cloudy: bool, cloudy_splits: Sequence[str]
) -> tuple[Any, Any, dict[str, int]]:
    """The cached S1+S2 datamodule of a comparison, its cloud-heavy twin and split sizes.

    Training reads the train split (with cloudy patches when ``train_cloudy``); ``test`` is
    always the clear test split; the twin's ``test`` is every cloudy patch of
    ``cloudy_splits`` (:func:`cloudy_test_datamodule`).
    """
    from rsfuse.data.datamodules import BigEarthNetDataModule, InMemoryCache

    dm = BigEarthNetDataModule(
        root,
        version="v2",
        modalities=("s1", "s2"),
        batch_size=batch_size,
        cache=True,
        include_cloudy=train_cloudy,
    )
    dm.setup("fit")
    if train_cloudy:  # score the clear test split on clear patches only
        clear = BigEarthNetDataModule(root, version="v2", batch_size=batch_size)
        dm.datasets["test"] = InMemoryCache(
            clear.dataset_class(clear.root, split="test", **clear.dataset_kwargs)
        ).preload(desc="reading test")
    dm.setup("test")
    dm_cloudy = cloudy_test_datamodule(dm, cloudy_splits)
    sizes = {s: len(dm.datasets[s]) for s in ("train", "val", "test")}
    sizes["cloudy"] = len(dm_cloudy.datasets["test"])
    return dm, dm_cloudy, sizes


def run_variant(
    name: str,
    cfg: dict,
    seed: int,
    dm: Any,
    dm_cloudy: Any,
    epochs: int,
    out: Path,
) -> list[Row]:
    """Train one variant with one seed and score it on every test set."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from rsfuse.tasks.classification import MultiLabelClassificationTask

    L.seed_everything(seed, verbose=False)
    init_args = dict(cfg["model"]["init_args"])
    task = MultiLabelClassificationTask(**init_args)
    tcfg = cfg.get("trainer", {})
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator=tcfg.get("accelerator", "auto"),
        devices=1,
        precision=tcfg.get("precision", "32-true"),
        logger=CSVLogger(
            out / "logs", name=f"{name}_seed{seed}".replace(" | ", "_").replace(" ", "-")
        ),
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,  # no model selection: every run is scored after its last epoch
        log_every_n_steps=5,
    )
    t0 = time.time()
    trainer.fit(task, datamodule=dm)
    seconds = time.time() - t0
    fused = len(task.modalities) > 1
    evals = [("S1+S2" if fused else name, [])]
    if fused:
        evals += [("S1 only", ["s2"]), ("S2 only", ["s1"])]
    rows = []
    for test_set, datamodule in (("clear", dm), ("cloudy", dm_cloudy)):
        for on, drop in evals:
            task.test_drop = drop
            m = trainer.test(task, datamodule=datamodule, verbose=False)[0]
            rows.append(
                Row(
                    name,
                    seed,
                    test_set,
                    on,
                    float(m["test/mAP_micro"]),
                    float(m["test/mAP_macro"]),
                    seconds,
                )
            )
    task.test_drop = []
    return rows


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)
    return mean, math.sqrt(var)


def summarise(rows: list[Row]) -> list[dict[str, Any]]:
    """Mean ± std over seeds per (variant, test set, evaluated on)."""
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.variant, r.test_set, r.evaluated_on), []).append(r)
    out = []
    for (variant, test_set, on), rs in groups.items():
        mi, mi_s = _mean_std([r.map_micro for r in rs])
        ma, ma_s = _mean_std([r.map_macro for r in rs])
        out.append(
            {
                "variant": variant,
                "test_set": test_set,
                "evaluated_on": on,
                "seeds": len(rs),
                "mAP_micro_mean": mi,
                "mAP_micro_std": mi_s,
                "mAP_macro_mean": ma,
                "mAP_macro_std": ma_s,
                "train_seconds_mean": _mean_std([r.train_seconds for r in rs])[0],
            }
        )
    return out


def markdown_table(summary: list[dict[str, Any]], pending: dict[str, str]) -> str:
    """One row per (variant, evaluated on): micro/macro mAP (%) on the clear and cloudy sets."""
    idx = {(s["variant"], s["evaluated_on"], s["test_set"]): s for s in summary}
    keys = sorted({(s["variant"], s["evaluated_on"]) for s in summary}, key=_order)
    lines = [
        "| variant | evaluated on | clear mAP micro | clear mAP macro | cloudy mAP micro "
        "| cloudy mAP macro | seeds | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cell(s: dict | None, k: str) -> str:
        if s is None:
            return "-"
        return f"{100 * s[k + '_mean']:.1f} ± {100 * s[k + '_std']:.1f}"

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
    fig, ax = plt.subplots(figsize=(1.3 * len(variants) + 3, 4.5))
    for i, test_set in enumerate(("clear", "cloudy")):
        vals = {s["variant"]: s for s in main_rows if s["test_set"] == test_set}
        mean = [100 * vals[v]["mAP_micro_mean"] if v in vals else 0 for v in variants]
        std = [100 * vals[v]["mAP_micro_std"] if v in vals else 0 for v in variants]
        ax.bar(x + (i - 0.5) * 0.38, mean, 0.38, yerr=std, capsize=3, label=f"{test_set} test")
    ax.set_xticks(x)
    ax.set_xticklabels(variants)
    ax.set_ylabel("micro mAP (%)")
    ax.set_title("MGSViT ablation (mean ± std over seeds)")
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def fusion_verdict(summary: list[dict[str, Any]]) -> str:
    """Do the fused models beat the best single-modality model on the cloudy split?"""
    cloudy = {
        s["variant"]: s["mAP_micro_mean"]
        for s in summary
        if s["test_set"] == "cloudy" and s["evaluated_on"] in ("S1", "S2", "S1+S2")
    }
    single = {v: cloudy[v] for v in SINGLE if v in cloudy}
    fused = {v: m for v, m in cloudy.items() if v not in SINGLE}
    if not single or not fused:
        return "fusion check skipped (needs at least one single-modality and one fused variant)"
    best_v = max(single, key=single.get)
    lines = [f"best single-modality model on the cloudy split: {best_v} {100 * single[best_v]:.1f}"]
    for v, m in fused.items():
        ok = "beats" if m > single[best_v] else "does NOT beat"
        lines.append(f"  {v}: {100 * m:.1f} {ok} it ({100 * (m - single[best_v]):+.1f})")
    return "\n".join(lines)


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """``--root`` or the synthetic world to make (``--n``, ``--world-seed``, ``--workers``)."""
    p.add_argument(
        "--root", type=Path, default=None, help="BigEarthNet-v2 root (default: synthesise one)"
    )
    p.add_argument("--n", type=int, default=1200, help="synthetic locations (default 1200)")
    p.add_argument("--world-seed", type=int, default=0, help="seed of the synthetic world")
    p.add_argument("--workers", type=int, default=2, help="processes for data synthesis")


def write_run_csvs(rows: list[Row], out: Path) -> list[dict[str, Any]]:
    """Write ``results_runs.csv`` (one row per run and test set) and ``results.csv`` (mean ±
    std over seeds, :func:`summarise`) into ``out``; return the summary."""
    with open(out / "results_runs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(Row.__dataclass_fields__)
        w.writerows([list(r.__dict__.values()) for r in rows])
    summary = summarise(rows)
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(summary[0]) if summary else ["variant"])
        w.writeheader()
        w.writerows(summary)
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rsfuse experiment mgsvit-ablation",
        description=(
            "MGSViT (seed 000) Table 1 and §4.5 ablations: train each variant's config over "
            "several seeds, test on the clear test split and a cloud-heavy split (every cloudy "
            "patch), score fused models also with S1 only / S2 only, and write a markdown + "
            "CSV table of mean ± std micro/macro mAP and a bar plot. Without --root it "
            "synthesises a BigEarthNet-v2-layout dataset of the synthetic Sentinel world."
        ),
        epilog=(
            "variants: "
            + "; ".join(f"{k} = {d} ({c})" for k, (c, d) in VARIANTS.items())
            + ". The SSL variants need pretrained encoders under --pretrained "
            "(configs/mgsvit/pretrain, or the pretrained/ folder `rsfuse experiment mgsvit-ssl` "
            "writes); without them they are listed as pending."
        ),
    )
    p.add_argument("--out", type=Path, default=Path("rsfuse-mgsvit-ablation"), help="output folder")
    add_data_arguments(p)
    p.add_argument(
        "--variants",
        nargs="+",
        default=list(DEFAULT_VARIANTS),
        choices=list(VARIANTS),
        metavar="VARIANT",
        help=f"variants to run (default: all: {' '.join(DEFAULT_VARIANTS)})",
    )
    p.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)"
    )
    p.add_argument("--epochs", type=int, default=5, help="training epochs per run (default 5)")
    p.add_argument("--batch-size", type=int, default=16, help="batch size (default 16)")
    p.add_argument(
        "--size",
        choices=["tiny", "full"],
        default="tiny",
        help="tiny: apply configs/mgsvit/overrides/tiny_cpu.yaml (CPU); full: paper sizes",
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
    p.add_argument("--config-dir", type=Path, default=None, help="folder of the MGSViT configs")
    p.add_argument(
        "--pretrained",
        type=Path,
        default=Path("."),
        help="folder the SSL configs' relative encoder checkpoint paths start from",
    )
    return p


def main(argv: Sequence[str]) -> None:
    """Run the ablation (see ``--help``)."""
    args = build_parser().parse_args(list(argv))
    t_start = time.time()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    cfg_dir = args.config_dir or default_config_dir()
    override = cfg_dir / "overrides" / "tiny_cpu.yaml" if args.size == "tiny" else None
    if args.root is None:
        from rsfuse.demo import _ensure_data

        root = _ensure_data(out / "data", args.n, args.world_seed, args.workers)
    else:
        root = args.root

    configs, pending = {}, {}
    for v in args.variants:
        cfg = load_config(cfg_dir / VARIANTS[v][0], override)
        init = cfg["model"]["init_args"]
        _resolve_checkpoints(init, args.pretrained)
        missing = [
            p for p in (init.get("encoder_checkpoints") or {}).values() if not Path(p).is_file()
        ]
        if missing:
            pending[v] = f"needs SSL encoder checkpoints {missing} (configs/mgsvit/pretrain)"
            print(f"[ablation] {v}: pending, {pending[v]}")
            continue
        configs[v] = cfg

    dm, dm_cloudy, sizes = ablation_datamodules(
        str(root), args.batch_size, args.train_cloudy, args.cloudy_splits
    )
    print(f"[ablation] samples: {sizes}")

    rows: list[Row] = []

    def write_tables() -> tuple[str, str, str]:
        """(Re)write every output from the runs so far (a killed run keeps its results)."""
        summary = write_run_csvs(rows, out)
        table = markdown_table(summary, pending)
        verdict = fusion_verdict(summary)
        header = (
            f"MGSViT ablation, size={args.size}, epochs={args.epochs}, seeds={args.seeds}, "
            f"train_cloudy={args.train_cloudy}, samples={sizes}, "
            f"{(time.time() - t_start) / 60:.1f} min\n\n"
        )
        (out / "results.md").write_text(header + table + "\n\n" + verdict + "\n")
        (out / "results.json").write_text(
            json.dumps({"sizes": sizes, "summary": summary, "pending": pending}, indent=2)
        )
        if summary:
            plot(summary, out / "ablation.png")
        return header, table, verdict

    for seed in args.seeds:
        for v, cfg in configs.items():
            try:
                new = run_variant(v, cfg, seed, dm, dm_cloudy, args.epochs, out)
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
    print(f"[ablation] wrote {out}/results.md, results.csv, results_runs.csv, ablation.png")
