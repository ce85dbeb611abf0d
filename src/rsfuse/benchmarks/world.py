"""``rsfuse benchmark world``: how real the synthetic world looks, and whether learning matters.

Two parts, printed as tables and saved as JSON:

1. **Realism** (:mod:`rsfuse.data.synthetic.realism`): per-patch statistics of ``--realism-n``
   locations of the world (per-band mean / std / percentiles of the 12 Sentinel-2 L2A bands,
   the S1 dB distribution per polarisation, spatial autocorrelation lengths, cross-band
   correlations) beside the six real BigEarthNet v1 patch pairs of ``bigearthnet-common``
   (:mod:`rsfuse.data.synthetic.examples`, extracted into a temporary folder), and the
   world's pooled per-band mean / std beside the published BigEarthNet v2 and v1 statistics
   (:data:`rsfuse.bands.STATS`). Per-patch rows compare snow- and cloud-free patches: the
   world's clear locations with the five snow-free real patches (the sixth, a snow-covered
   Finnish patch of February 2018, is recognised by its normalised difference snow index,
   :data:`SNOW_NDSI`, and reported apart).
2. **Learnability**: the world's BigEarthNet-v2-layout dataset of ``--n`` locations (the
   demo's size, 60/20/20 split, cloudy patches kept as in the demo), read with
   :class:`~rsfuse.data.datamodules.BigEarthNetDataModule` (S1 + S2, standardised). Three
   scores of the test split, micro mAP (and macro) of 19-class multi-label classification:

   * **supervised**: the demo's tiny ViT on early-fused S1 + S2 channels, built from the
     demo's config :data:`CONFIG` (:func:`rsfuse.training.cli.build_run`), trained
     ``--epochs`` epochs with AdamW (the validation score of every epoch is kept: the
     learning curve shows whether the budget has levelled off);
   * **random-init linear probe**: a linear classifier on the frozen pooled features of the
     *same* ViT at its random initialisation (the weights the supervised run starts from);
   * **band-mean linear probe**: a linear classifier on the 14 per-band means of the
     standardised input (12 S2 bands, VV, VH).

   Both probes are multi-label logistic regressions fitted to convergence (full-batch
   L-BFGS on standardised features), the L2 weight chosen on the validation split from
   :data:`PROBE_L2`: each probe gets its best shot, so the gaps are not flattered. The
   label-frequency baseline (every sample scored with the training label frequencies) is
   printed for scale.

Targets (issue 17): supervised − random-init probe ≥ :data:`TARGET_RANDOM_GAP` points
micro mAP; supervised − band-mean probe ≥ :data:`TARGET_MEAN_GAP` points.

Run::

    rsfuse benchmark world      # default world: 11-27 min on a shared 2-core CPU VM (no GPU)
    python benchmarks/world.py --n 300 --epochs 2 --realism-n 40    # smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import tempfile
import textwrap
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

#: The demo's classifier config: a timm ViT of 36 tokens of 20 x 20 px, width 64, depth 3,
#: on early-fused S1 + S2 (``rsfuse configs demo``).
CONFIG = "demo/classification"
#: L2 weights tried for the linear probes (chosen on the validation split).
PROBE_L2: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
TARGET_RANDOM_GAP = 20.0
TARGET_MEAN_GAP = 15.0
#: A real patch whose mean NDSI = (B03 − B11) / (B03 + B11) exceeds this is snow-covered.
SNOW_NDSI = 0.4


# ---------------------------------------------------------------------------------------
# realism


def _is_snowy(p: Any) -> bool:
    b03, b11 = float(p.s2["B03"].mean()), float(p.s2["B11"].mean())
    return (b03 - b11) / max(b03 + b11, 1e-9) > SNOW_NDSI


def _rgb(p: Any) -> np.ndarray:
    """True colour (B04, B03, B02) of a patch, each band stretched at its 2–98th percentile."""
    x = np.stack([p.s2[b] for b in ("B04", "B03", "B02")], -1)
    lo, hi = np.percentile(x, (2, 98), axis=(0, 1))
    return np.clip((x - lo) / np.maximum(hi - lo, 1e-6), 0, 1)


def patches_figure(real: Sequence[Any], world: Sequence[Any], path: str | Path) -> Path:
    """The real patches above as many world patches: S2 true colour and S1 VV (dB, −25 to 0).

    Returns:
        ``path`` (PNG).
    """
    from rsfuse.data.classes import BEN19
    from rsfuse.plots.common import pyplot, save_figure

    plt = pyplot()
    n = len(real)
    fig, axes = plt.subplots(4, n, figsize=(2.2 * n, 10.4))
    for row, (name, group) in enumerate((("real", real), ("world", world[:n]))):
        for j, p in enumerate(group):
            a, b = axes[2 * row, j], axes[2 * row + 1, j]
            a.imshow(_rgb(p))
            b.imshow(p.s1[0], cmap="gray", vmin=-25, vmax=0)
            title = p.name.split("_", 2)[-1] if name == "real" else p.name
            labels = ", ".join(BEN19[c][:14] for c in p.labels) if p.labels else ""
            a.set_title(textwrap.fill(f"{name} {title}: {labels}", 34), fontsize=6)
            b.set_title("S1 VV", fontsize=6)
            for ax in (a, b):
                ax.set_axis_off()
    fig.suptitle("six real BigEarthNet v1 patches (top) and world patches (bottom)", fontsize=9)
    return save_figure(fig, path)


def realism(seed: int, n: int, figure: str | Path | None = None) -> dict[str, Any]:
    """The realism table of world ``seed`` (``n`` locations) against the six real patches,
    and (with ``figure``) a PNG of the real patches beside world patches.

    Returns:
        ``{"rows": [...], "within": k, "total": m, "real_patches": [...], "world_clear": c,
        "seconds": s}``.
    """
    from rsfuse.data.synthetic import SyntheticWorld
    from rsfuse.data.synthetic import realism as R
    from rsfuse.data.synthetic.examples import extract_examples, pairs

    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="rsfuse-ben-examples-") as tmp:
        root = extract_examples(Path(tmp) / "examples")
        real = [R.read_patch(root, s2, s1) for s2, s1 in pairs(root)]
    world = SyntheticWorld(seed)
    patches = [R.world_patch(world, i) for i in range(n)]
    clear = [p for p in patches if p.clear]
    real_clear = [p for p in real if not _is_snowy(p)]
    if figure is not None:
        patches_figure(real, clear, figure)
    rows = R.compare(
        [R.patch_statistics(p) for p in clear],
        [R.patch_statistics(p) for p in real_clear],
        R.pooled_statistics(clear),
        real_pooled=R.pooled_statistics(real_clear),
    )
    return {
        "rows": [r.as_dict() for r in rows],
        "table": R.format_table(rows),
        "within": sum(r.within for r in rows),
        "total": len(rows),
        "real_patches": [{"name": p.name, "snow": _is_snowy(p), "season": p.season} for p in real],
        "world_locations": n,
        "world_clear": len(clear),
        "seconds": time.time() - t0,
    }


# ---------------------------------------------------------------------------------------
# learnability


def ensure_data(root: Path, n: int, seed: int, workers: int) -> tuple[Path, float | None]:
    """Synthesise the BigEarthNet-v2-layout world unless the same one is in ``root``.

    Returns:
        ``(root, seconds)``; seconds is None when the data were reused.
    """
    from rsfuse.data.synthetic import synthesize
    from rsfuse.io.atomic import write_atomic

    stamp = root / "rsfuse-synth.json"
    want = {"layout": "bigearthnet-v2", "n": n, "seed": seed}
    if stamp.is_file() and json.loads(stamp.read_text()) == want:
        return root, None
    stamp.unlink(missing_ok=True)
    t0 = time.time()
    synthesize("bigearthnet-v2", root, n=n, seed=seed, workers=workers, progress=False)
    seconds = time.time() - t0
    write_atomic(stamp, json.dumps(want))
    return root, seconds


def _features(dm: Any, split: str, encoder: Any | None) -> tuple[Any, Any, Any]:
    """Standardised-input band means [N, 14], encoder features [N, D] (or None) and labels.

    Batches come from the datamodule's loader and pass through its normalisation (no
    augmentation).
    """
    import torch
    from torch.utils.data import DataLoader

    from rsfuse.data.sample import collate

    loader = DataLoader(dm.datasets[split], batch_size=64, shuffle=False, collate_fn=collate)
    means, feats, labels = [], [], []
    with torch.no_grad():
        for batch in loader:
            batch = dm.normalize(batch)
            means.append(torch.cat([batch["s2"].mean((2, 3)), batch["s1"].mean((2, 3))], 1))
            if encoder is not None:
                feats.append(encoder(batch))
            labels.append(batch["label"])
    f = torch.cat(feats).double() if feats else None
    return torch.cat(means).double(), f, torch.cat(labels)


def fit_probe(
    x: dict[str, Any], y: dict[str, Any], l2_grid: Sequence[float] = PROBE_L2
) -> dict[str, Any]:
    """Multi-label logistic regression on features, fitted to convergence.

    Features are standardised with the training split's mean and std; for each L2 weight
    of ``l2_grid`` the mean binary cross-entropy + ``l2 · |W|²`` is minimised with
    full-batch L-BFGS; the weight with the best validation micro mAP is scored on test.

    Args:
        x: ``{"train" | "val" | "test": float64 [N, F]}``.
        y: the same splits' multi-hot labels [N, K].

    Returns:
        ``{"l2", "val_mAP_micro", "mAP_micro", "mAP_macro"}``.
    """
    import torch
    from torchmetrics.classification import MultilabelAveragePrecision

    mu, sd = x["train"].mean(0), x["train"].std(0).clamp_min(1e-8)
    xs = {k: (v - mu) / sd for k, v in x.items()}
    k = y["train"].shape[1]

    def score(w: Any, b: Any, split: str, average: str | None) -> Any:
        p = torch.sigmoid(xs[split] @ w + b).float()
        ap = MultilabelAveragePrecision(k, average=average)(p, y[split].long())
        return [float(v) for v in ap] if average is None else float(ap)

    best: dict[str, Any] | None = None
    for l2 in l2_grid:
        w, b = _logistic(xs["train"], y["train"].double(), l2)
        with torch.no_grad():
            val = score(w, b, "val", "micro")
            if best is None or val > best["val_mAP_micro"]:
                best = {
                    "l2": l2,
                    "val_mAP_micro": val,
                    "mAP_micro": score(w, b, "test", "micro"),
                    "mAP_macro": score(w, b, "test", "macro"),
                    "per_class_ap": score(w, b, "test", None),
                }
    assert best is not None
    return best


def _logistic(x: Any, target: Any, l2: float) -> tuple[Any, Any]:
    """Weights [F, K] and biases [K] minimising mean BCE + ``l2 · |W|²`` (full-batch L-BFGS)."""
    import torch

    w = torch.zeros(x.shape[1], target.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(target.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=300, tolerance_grad=1e-7,
                            tolerance_change=1e-10, line_search_fn="strong_wolfe")  # fmt: skip

    def closure() -> Any:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, target)
        loss = loss + l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def _validation_curve() -> Any:
    """A Lightning callback that keeps ``val/mAP_micro`` after every validation epoch
    (``.values``, one float per epoch)."""
    import lightning as L

    class Curve(L.Callback):
        def __init__(self) -> None:
            self.values: list[float] = []

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            v = trainer.callback_metrics.get("val/mAP_micro")
            if v is not None and not trainer.sanity_checking:
                self.values.append(float(v))

    return Curve()


def learnability(data: Path, epochs: int, batch_size: int, lr: float, seed: int) -> dict[str, Any]:
    """Supervised tiny ViT, random-init linear probe and band-mean linear probe (see the
    module docstring) on the dataset in ``data``."""
    import torch
    from torchmetrics.classification import MultilabelAveragePrecision

    from rsfuse.data.datamodules import BigEarthNetDataModule
    from rsfuse.training.cli import build_run

    dm = BigEarthNetDataModule(
        str(data), version="v2", modalities=("s1", "s2"), batch_size=batch_size,
        include_cloudy=True, cache=True,
    )  # fmt: skip
    dm.setup("fit")
    dm.setup("test")
    sizes = {s: len(dm.datasets[s]) for s in ("train", "val", "test")}
    # the demo's classifier config (demo/classification), built the way ``rsfuse fit`` does
    logs = tempfile.mkdtemp(prefix="rsfuse-world-run-")  # the run's CSV log, removed after
    try:
        run = build_run(
            [CONFIG],
            [f"--data.init_args.root={data}", f"--data.init_args.batch_size={batch_size}",
             f"--model.init_args.lr={lr}", f"--trainer.max_epochs={epochs}",
             "--trainer.accelerator=cpu"],
            run_dir=logs, datamodule=dm, seed=seed,
        )  # fmt: skip
    except BaseException:
        shutil.rmtree(logs, ignore_errors=True)
        raise
    task = run.model
    out: dict[str, Any] = {"sizes": sizes}

    # probes on the random initialisation (before any training step)
    t0 = time.time()
    task.eval()
    xm, xf, y = {}, {}, {}
    for split in ("train", "val", "test"):
        xm[split], xf[split], y[split] = _features(dm, split, task.model.features)
    out["random_init_probe"] = fit_probe(xf, y)
    out["band_mean_probe"] = fit_probe(xm, y)
    out["probe_seconds"] = time.time() - t0
    freq = y["train"].float().mean(0).expand_as(y["test"]).contiguous()
    k = y["test"].shape[1]
    out["label_frequency"] = {
        "mAP_micro": float(MultilabelAveragePrecision(k, average="micro")(freq, y["test"].long())),
        "mAP_macro": float(MultilabelAveragePrecision(k, average="macro")(freq, y["test"].long())),
        "per_class_ap": [
            float(v) for v in MultilabelAveragePrecision(k, average=None)(freq, y["test"].long())
        ],
    }

    # supervised, from the same initialisation; the validation score of every epoch is
    # recorded (the learning curve: has the budget levelled off?), the last epoch is tested
    task.train()
    curve = _validation_curve()
    trainer = run.trainer
    trainer.callbacks.append(curve)
    t0 = time.time()
    try:
        trainer.fit(task, datamodule=dm)
        m = trainer.test(task, datamodule=dm, verbose=False)[0]
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    out["supervised"] = {
        "mAP_micro": float(m["test/mAP_micro"]),
        "mAP_macro": float(m["test/mAP_macro"]),
        "per_class_ap": task.last_test_per_class_ap,
        "epochs": epochs,
        "val_mAP_micro_per_epoch": curve.values,
        "seconds": time.time() - t0,
    }
    torch.set_grad_enabled(True)
    sup = 100 * out["supervised"]["mAP_micro"]
    out["gap_random_init"] = sup - 100 * out["random_init_probe"]["mAP_micro"]
    out["gap_band_mean"] = sup - 100 * out["band_mean_probe"]["mAP_micro"]
    out["targets"] = {
        "gap_random_init": TARGET_RANDOM_GAP,
        "gap_band_mean": TARGET_MEAN_GAP,
        "met": bool(
            out["gap_random_init"] >= TARGET_RANDOM_GAP and out["gap_band_mean"] >= TARGET_MEAN_GAP
        ),
    }
    return out


def learnability_table(r: dict[str, Any]) -> str:
    """The learnability figures as text."""
    from rsfuse.data.classes import BEN19

    lines = [
        f"test split ({r['sizes']['test']} samples; train {r['sizes']['train']}, "
        f"val {r['sizes']['val']}), 19 classes:",
        f"{'run':<44} {'mAP micro':>9} {'mAP macro':>9}",
    ]
    for name, key in (
        (f"supervised tiny ViT ({r['supervised']['epochs']} epochs)", "supervised"),
        ("linear probe on the random-init ViT", "random_init_probe"),
        ("linear probe on per-band means", "band_mean_probe"),
        ("label-frequency baseline", "label_frequency"),
    ):
        v = r[key]
        lines.append(f"{name:<44} {100 * v['mAP_micro']:9.1f} {100 * v['mAP_macro']:9.1f}")
    lines.append("per-class AP (supervised / random-init probe / band-mean probe / frequency):")
    keys = ("supervised", "random_init_probe", "band_mean_probe", "label_frequency")
    for c, name in enumerate(BEN19):
        aps = " / ".join(f"{100 * r[k]['per_class_ap'][c]:5.1f}" for k in keys)
        lines.append(f"  {name[:40]:<40} {aps}")
    curve = r["supervised"].get("val_mAP_micro_per_epoch") or []
    if curve:
        lines.append(
            "supervised validation micro mAP by epoch: " + " ".join(f"{100 * v:.1f}" for v in curve)
        )
    t = r["targets"]
    lines.append(
        f"supervised − random-init probe: {r['gap_random_init']:+.1f} points "
        f"(target ≥ {t['gap_random_init']:.0f}); supervised − band-mean probe: "
        f"{r['gap_band_mean']:+.1f} points (target ≥ {t['gap_band_mean']:.0f}): "
        + ("targets met" if t["met"] else "targets NOT met")
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# command


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rsfuse benchmark world",
        description="Realism of the synthetic world (statistics beside six real BigEarthNet "
        "patches and the published dataset statistics) and its learnability (supervised tiny "
        "ViT vs linear probes on a random-init ViT and on per-band means); prints tables, "
        "saves JSON. Needs the package bigearthnet-common (rsfuse's test extra).",
    )
    p.add_argument("--seed", type=int, default=0, help="world seed (default 0, the demo's)")
    p.add_argument("--n", type=int, default=1500, help="locations of the learnability dataset")
    p.add_argument("--realism-n", type=int, default=300, help="world locations for realism")
    p.add_argument(
        "--epochs",
        type=int,
        default=30,
        help="supervised epochs (default 30: where the supervised ViT's test score levels off "
        "on the default world, see docs/world.md; the demo trains 11)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="batch size (32)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (2e-3)")
    p.add_argument("--workers", type=int, default=2, help="processes for synthesis (2)")
    p.add_argument("--data", type=Path, default=None,
                   help="folder for the synthetic dataset, reused when it matches (default: a "
                   "temporary folder)")  # fmt: skip
    p.add_argument("--skip-learnability", action="store_true", help="realism only")
    p.add_argument("--figure", default=None,
                   help="PNG of the real patches beside world patches (default: beside --json, "
                   "<json stem>_patches.png; '' for none)")  # fmt: skip
    p.add_argument("--json", default="world.json", help="where to save the results")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark (see ``--help``)."""
    import sys

    import torch

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    t0 = time.time()
    res: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "loadavg_1min_before": round(os.getloadavg()[0], 2),
        },
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    print(f"[world] realism: {args.realism_n} world locations vs the six real patches")
    figure = Path(args.json).with_name(Path(args.json).stem + "_patches.png")
    if args.figure is not None:
        figure = Path(args.figure) if args.figure else None
    res["realism"] = realism(args.seed, args.realism_n, figure)
    if figure is not None:
        res["figure"] = str(figure)
        print(f"[world] real and world patches side by side: {figure}")
    print(res["realism"]["table"])
    print(f"within: {res['realism']['within']} / {res['realism']['total']} rows")
    if not args.skip_learnability:
        with tempfile.TemporaryDirectory(prefix="rsfuse-world-") as tmp:
            data = args.data or Path(tmp) / "data"
            print(f"[world] learnability: {args.n} BigEarthNet-v2-layout locations in {data}")
            data, seconds = ensure_data(Path(data), args.n, args.seed, args.workers)
            res["synthesis_seconds"] = seconds
            if seconds is not None:
                print(f"[world] synthesised in {seconds:.1f} s with {args.workers} workers")
            res["learnability"] = learnability(
                data, args.epochs, args.batch_size, args.lr, args.seed
            )
        print(learnability_table(res["learnability"]))
    res["machine"]["loadavg_1min_after"] = round(os.getloadavg()[0], 2)
    res["total_seconds"] = time.time() - t0
    from rsfuse.io.atomic import write_atomic

    write_atomic(args.json, json.dumps(_jsonable(res), indent=2, allow_nan=False) + "\n")
    print(f"[world] {res['total_seconds'] / 60:.1f} min; saved {args.json}")


def _jsonable(v: Any) -> Any:
    """``v`` with NaN / inf floats as None and NumPy scalars as Python numbers."""
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


if __name__ == "__main__":
    main()
