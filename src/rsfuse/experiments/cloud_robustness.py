"""``rsfuse experiment cloud-robustness``: is a fused model ever worse than its better sensor?

Four classifiers of the packaged ``classification/*`` configs (``--size tiny``: with the
override ``overrides/tiny_cpu``) — S1 only, S2 only, S1+S2 early fusion and S1 GMU S2 —
each trained two ways on the clear training split of a BigEarthNet-v2-layout dataset:

* ``plain``: no sensor drop, no cloud augmentation (how rsfuse trained fused models before);
* ``robust``: the configs' defaults (``sensor_drop`` and ``cloud_augmentation``; an S2-only
  model gets the cloud augmentation only, an S1-only model has nothing to change).

Every model reads the same S1+S2 batches with S2 validity from the cloud detector
(``clouds: detector``, :mod:`rsfuse.data.clouds`) and is tested, after its last epoch (no
model selection), on

* ``clear``: the test split (no flagged patch);
* ``partly``: every patch of the validation and test splits the dataset flags as cloudy
  (the world's own clouds: smooth opacity blobs with 5–60 % cover and their shadows);
* ``fully``: the clear test patches under a full cloud deck (the world's cloud spectrum
  with opacity 0.85–1 everywhere, :class:`Overcast`);
* ``clouded``: ``partly`` and ``fully`` together.

The test sets are scored separately, so the result does not depend on how common clouds
are in the world (BigEarthNet v1 lists 1.6 % of its patches as fully covered by cloud and
shadow; SSL4EO-S12 v1.1 ships a cloud mask per pixel). The training split holds clear
patches only, as BigEarthNet practice does.

Writes ``results_runs.csv`` (one row per run and test set), ``results.csv`` / ``results.json``
(mean ± std over seeds), ``results.md`` (the table and the verdict: does every robust
fused model score at least the better single-sensor model on the clear and the clouded
subset? Each fused model's claim holds unless it falls short of the better single-sensor
model by more than one standard error over seeds), ``claims.md`` / ``.csv`` / ``.json`` and
``cloud_robustness.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, Subset

from rsfuse.data.clouds import CloudValidity, ValidityDataset
from rsfuse.experiments.claims import FUSION_GOAL, Claim, Verdict, judge, per_seed, write_verdicts
from rsfuse.experiments.protocols import (
    ClassificationData,
    ScoreRow,
    robust_datamodule,
    train_and_score,
)
from rsfuse.experiments.runner import (
    add_bigearthnet_arguments,
    add_profile_argument,
    add_training_arguments,
    cell,
    ensure_synthetic,
    experiment_parser,
    mean_std,
    run_experiment,
    save_figure,
    summarise,
    write_csv,
    write_json,
    write_text,
)
from rsfuse.training.configs import load_config

#: Model name → packaged config.
MODELS: dict[str, str] = {
    "S1": "classification/ben_v2_s1",
    "S2": "classification/ben_v2_s2",
    "early fusion": "classification/ben_v2_s1s2_early_fusion",
    "S1 GMU S2": "classification/ben_v2_s1s2_gmu",
}
SINGLE = ("S1", "S2")
TRAININGS = ("plain", "robust")
TEST_SETS = ("clear", "partly", "fully", "clouded")
TINY = "overrides/tiny_cpu"
#: The data keys of robust training, and their ``plain`` values.
PLAIN = {"sensor_drop": 0.0, "cloud_augmentation": 0.0}

#: ``--profile gpu``: the full-size configs (bf16, one GPU) and a budget sized to finish in
#: about 8 minutes on one H100/H200 — a first sizing, not yet timed on a device.
GPU_PROFILE: dict[str, Any] = {"size": "full", "n": 3000, "epochs": 10, "batch_size": 128}


class Overcast(Dataset):
    """Patches under a full cloud deck: the synthetic world's cloud model
    (:meth:`~rsfuse.data.synthetic.world.SyntheticWorld.apply_clouds`) with opacity
    0.85–1 everywhere (a smooth field per patch, seeded by ``seed`` and the index).

    Args:
        dataset: a dataset of S2 samples (raw digital numbers).
        band_names: its S2 channels (L1C or L2A names).
        seed: seed of the opacity fields.
    """

    def __init__(self, dataset: Dataset, band_names: Sequence[str], seed: int = 0) -> None:
        from rsfuse.bands import S2_L1C_ORDER

        self.dataset = dataset
        self.index = [S2_L1C_ORDER.index(b) for b in band_names]
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> dict[str, Any]:
        from rsfuse.data.synthetic.world import SyntheticWorld, smooth_fields

        sample = dict(self.dataset[i])
        s2 = sample["s2"].numpy().astype(np.float32)  # [C, H, W]
        _, h, w = s2.shape
        full = np.zeros((13, h, w), np.float32)
        full[self.index] = s2
        f = smooth_fields(np.random.default_rng([self.seed, i]), 1, (h, w), 10.0)[0]
        u = (f - f.min()) / max(float(np.ptp(f)), 1e-6)
        opacity = (0.85 + 0.15 * u).astype(np.float32)
        out = SyntheticWorld.apply_clouds(full, opacity, np.zeros((h, w), bool))
        sample["s2"] = torch.from_numpy(np.ascontiguousarray(out[self.index]))
        return sample


def test_sets(root: Path, batch_size: int, max_cloud_fraction: float, seed: int) -> dict:
    """The four test datamodules (see the module docstring), read once into memory."""
    from rsfuse.data.datamodules import BigEarthNetDataModule, InMemoryCache

    def dm(ds: Dataset, name: str) -> Any:
        out = BigEarthNetDataModule(
            str(root), version="v2", batch_size=batch_size, clouds="detector",
            max_cloud_fraction=max_cloud_fraction,
        )  # fmt: skip
        out.datasets["test"] = InMemoryCache(ds).preload(desc=f"reading {name}")
        return out

    base = BigEarthNetDataModule(
        str(root), version="v2", clouds="detector", max_cloud_fraction=max_cloud_fraction
    )
    reader, kw = base.dataset_class, base.dataset_kwargs
    clear = reader(str(root), split="test", **kw)
    partly_parts = []
    for split in ("val", "test"):
        ds = reader(str(root), split=split, **{**kw, "include_cloudy": True})
        idx = [int(i) for i in np.flatnonzero(ds.cloudy_flags)]
        if idx:
            partly_parts.append(Subset(ds, idx))
    plain = reader(str(root), split="test", **{**kw, "clouds": "none"})
    validity = CloudValidity("detector", max_cloud_fraction, product="L2A")
    fully = ValidityDataset(Overcast(plain, base.s2_band_names, seed), validity, base.s2_band_names)
    sets = {"clear": dm(clear, "clear"), "fully": dm(fully, "fully")}
    if partly_parts:
        partly = InMemoryCache(ConcatDataset(partly_parts)).preload(desc="reading partly")
        sets["partly"] = dm(partly, "partly")
        clouded = ConcatDataset([partly, sets["fully"].datasets["test"]])
        sets["clouded"] = dm(clouded, "clouded")
    else:
        sets["clouded"] = sets["fully"]
    return sets


def training_data(root: Path, batch_size: int, max_cloud_fraction: float) -> Any:
    """The clear training split with S2 validity from the detector, in memory."""
    from rsfuse.data.datamodules import BigEarthNetDataModule

    dm = BigEarthNetDataModule(
        str(root), version="v2", batch_size=batch_size, cache=True, clouds="detector",
        max_cloud_fraction=max_cloud_fraction,
    )  # fmt: skip
    dm.setup("fit")
    return dm


def robust_settings(config: str, size: Sequence[str]) -> dict[str, float]:
    """The config's sensor drop and cloud augmentation (0 where it sets none)."""
    init = load_config(config, *size)["data"]["init_args"]
    return {k: float(init.get(k, 0.0) or 0.0) for k in PLAIN}


def summarise_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± std over seeds per (model, training, test set)."""
    return summarise(
        rows, ("model", "training", "test_set"), ("mAP_micro", "mAP_macro", "train_seconds")
    )


def markdown_table(summary: list[dict[str, Any]]) -> str:
    """Rows (model, training); columns: micro mAP per test set (%, mean ± std)."""
    idx = {(s["model"], s["training"], s["test_set"]): s for s in summary}
    keys = []
    for m in MODELS:
        for t in TRAININGS:
            if any((m, t, ts) in idx for ts in TEST_SETS):
                keys.append((m, t))
    head = "| model | training | " + " | ".join(f"{t} mAP micro" for t in TEST_SETS)
    lines = [head + " | seeds | train s |", "|---|---|" + "---|" * (len(TEST_SETS) + 2)]
    for m, t in keys:
        ref = next(idx[(m, t, ts)] for ts in TEST_SETS if (m, t, ts) in idx)
        cells = " | ".join(cell(idx.get((m, t, ts)), "mAP_micro") for ts in TEST_SETS)
        secs = ref["train_seconds_mean"]
        lines.append(f"| {m} | {t} | {cells} | {ref['seeds']} | {secs:.0f} |")
    return "\n".join(lines)


def claims(rows: Sequence[dict[str, Any]]) -> list[Verdict]:
    """Is every robustly trained fused model at least as good as the better single-sensor
    model on the clear and on the clouded subset? Micro mAP per seed; the better single
    sensor is the (model, training) with the higher mean over seeds on that subset."""
    out = []
    for ts in ("clear", "clouded"):
        singles = {
            (m, t): per_seed(rows, "mAP_micro", model=m, training=t, test_set=ts)
            for m in SINGLE
            for t in TRAININGS
        }
        singles = {k: v for k, v in singles.items() if v}
        best = max(singles, key=lambda k: mean_std(list(singles[k].values()))[0], default=None)
        for m in MODELS:
            if m in SINGLE:
                continue
            fused = per_seed(rows, "mAP_micro", model=m, training="robust", test_set=ts)
            worse = f"better single sensor ({best[0]}, {best[1]})" if best else "single sensor"
            c = Claim(FUSION_GOAL, f"{ts} test", f"{m} (robust)", worse, relation=">=")
            out.append(judge(c, fused, singles.get(best, {}) if best else {}))
    return out


def verdict(rows: Sequence[dict[str, Any]]) -> tuple[str, bool]:
    """The lines of :func:`claims` that ran, and whether every one of them holds."""
    ran = [v for v in claims(rows) if v.seeds]
    if not ran:
        return "verdict skipped: no fused or no single-sensor model was run", False
    return "\n".join(v.line() for v in ran), all(v.holds for v in ran)


def plot(summary: list[dict[str, Any]], path: Path) -> None:
    """Bars of micro mAP (mean ± std) per test set: one bar per (model, training)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [(m, t) for m in MODELS for t in TRAININGS
            if any(s["model"] == m and s["training"] == t for s in summary)]  # fmt: skip
    idx = {(s["model"], s["training"], s["test_set"]): s for s in summary}
    x = np.arange(len(TEST_SETS))
    width = 0.8 / max(1, len(keys))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for i, (m, t) in enumerate(keys):
        vals = [idx.get((m, t, ts)) for ts in TEST_SETS]
        mean = [100 * v["mAP_micro_mean"] if v else 0 for v in vals]
        std = [100 * v["mAP_micro_std"] if v and np.isfinite(v["mAP_micro_std"]) else 0
               for v in vals]  # fmt: skip
        ax.bar(x + (i - (len(keys) - 1) / 2) * width, mean, width, yerr=std, capsize=2,
               label=f"{m} ({t})", hatch="//" if t == "plain" else None)  # fmt: skip
    ax.set_xticks(x)
    ax.set_xticklabels(TEST_SETS)
    ax.set_ylabel("test micro mAP (%)")
    ax.set_title("Cloud robustness (mean ± std over seeds)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save_figure(fig, path)


def build_parser() -> argparse.ArgumentParser:
    p = experiment_parser(
        "cloud-robustness",
        "Train S1-only, S2-only, early-fusion and S1 GMU S2 classifiers with and without "
        "sensor drop / cloud augmentation on the clear training split, test them on clear, "
        "partly clouded and fully clouded patches, and check that every robustly trained "
        "fused model scores at least the better single-sensor model on the clear and the "
        "clouded subset. Writes a markdown table, CSV, JSON and a plot. Without --root it "
        "synthesises a BigEarthNet-v2-layout dataset of the synthetic Sentinel world.",
    )
    add_bigearthnet_arguments(p, n=1000)
    add_training_arguments(p, seeds=(0, 1, 2), batch_size=16, epochs=5)
    p.add_argument(
        "--models",
        nargs="+",
        default=list(MODELS),
        choices=list(MODELS),
        metavar="MODEL",
        help=f"models to run (default: all: {', '.join(MODELS)})",
    )
    p.add_argument(
        "--trainings",
        nargs="+",
        default=list(TRAININGS),
        choices=list(TRAININGS),
        help="plain (no sensor drop / cloud augmentation) and/or robust (the configs' "
        "defaults); default both",
    )
    p.add_argument(
        "--max-cloud-fraction",
        type=float,
        default=None,
        help="S2 is marked absent above this invalid fraction (default: the configs')",
    )
    add_profile_argument(p, GPU_PROFILE, tiny=f"the packaged override {TINY}")
    return p


def main(argv: Sequence[str]) -> None:
    """Run the experiment (see ``--help``)."""
    run_experiment(build_parser(), argv, _run)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    t_start = time.time()
    out: Path = args.out
    size = [TINY] if args.size == "tiny" else []
    root = args.root or ensure_synthetic(
        "bigearthnet-v2", out / "data", args.n, args.world_seed, args.workers
    )
    fused_config = load_config(MODELS["early fusion"], *size)["data"]["init_args"]
    mcf = args.max_cloud_fraction
    if mcf is None:
        mcf = float(fused_config.get("max_cloud_fraction", 0.5))
    train_dm = training_data(Path(root), args.batch_size, mcf)
    tests = test_sets(Path(root), args.batch_size, mcf, args.world_seed)
    sizes = {"train": len(train_dm.datasets["train"])}
    sizes |= {k: len(v.datasets["test"]) for k, v in tests.items()}
    print(f"[clouds] samples: {sizes}, max_cloud_fraction {mcf}")

    rows: list[dict[str, Any]] = []

    def write_all() -> tuple[str, str, bool]:
        write_csv(out / "results_runs.csv", rows)
        summary = summarise_rows(rows)
        write_csv(out / "results.csv", summary)
        table = markdown_table(summary)
        text, ok = verdict(rows)
        write_verdicts(out, claims(rows), "Fusion never worse than the better sensor (micro mAP)")
        header = (
            f"Cloud robustness, size={args.size}, epochs={args.epochs}, seeds={args.seeds}, "
            f"max_cloud_fraction={mcf}, samples={sizes}, "
            f"{(time.time() - t_start) / 60:.1f} min\n\n"
        )
        write_text(out / "results.md", header + table + "\n\n" + text + "\n")
        write_json(
            out / "results.json",
            {"sizes": sizes, "max_cloud_fraction": mcf, "summary": summary, "holds": ok},
        )
        if summary:
            plot(summary, out / "cloud_robustness.png")
        return header, table + "\n\n" + text, ok

    common = [
        f"--trainer.max_epochs={args.epochs}",
        f"--data.init_args.batch_size={args.batch_size}",
    ]
    for seed in args.seeds:
        for model in args.models:
            config = MODELS[model]
            modalities = load_config(config, *size)["model"]["init_args"]["modalities"]
            robust = robust_settings(config, size)
            for training in args.trainings:
                settings = PLAIN if training == "plain" else robust
                if training == "robust" and robust == PLAIN and "plain" in args.trainings:
                    continue  # nothing to change (S1 only): the plain run stands for both
                dm = robust_datamodule(train_dm, settings, modalities)
                data = ClassificationData(dm, None, sizes)
                name = f"{model} {training}"
                scores: list[ScoreRow] = train_and_score(
                    name, [config, *size], common, seed, data, out, tests=tests,
                    drop_evals=False,
                )  # fmt: skip
                for r in scores:
                    d = asdict(r)
                    rows.append({
                        "model": model, "training": training, "seed": seed,
                        "test_set": d["test_set"], "mAP_micro": d["map_micro"],
                        "mAP_macro": d["map_macro"], "train_seconds": d["train_seconds"],
                    })  # fmt: skip
                write_all()
                clear = next(r for r in scores if r.test_set == "clear")
                print(
                    f"[clouds] {name} seed {seed}: clear micro mAP {100 * clear.map_micro:.1f} "
                    f"({clear.train_seconds:.0f}s; {(time.time() - t_start) / 60:.1f} min)"
                )
    header, body, ok = write_all()
    print()
    print(header + body)
    print(f"[clouds] wrote {out}/results.md, results.csv, results.json, cloud_robustness.png")
    return {"holds": ok, "rows": rows}
