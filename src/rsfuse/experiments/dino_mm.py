"""``rsfuse experiment dino-mm``: the claims of DINO-MM (seed 002) on the synthetic world.

Per training seed, on a BigEarthNet-v2-layout dataset of the synthetic Sentinel world
(19 classes, S1 + S2; ``--normalization standardize`` by default, or DINO-MM's ``dino-mm``
±2σ → [0, 1] scaling with the S1 percentile clip):

1. **Pretraining** (train split, no labels): DINO-MM (early-fused S1+S2, multi-crop,
   RandomSensorDrop), MoCo-MM (MoCo v3 on the same input with RandomSensorDrop) and
   single-modality DINO on S1 only and on S2 only. Each exports its backbone with
   :func:`~rsfuse.models.checkpoints.save_encoder`; the evaluations load those files.
2. **Evaluation** on three input cases — ``S1+S2``, ``S1 only`` (S2 zeroed and flagged
   absent) and ``S2 only`` (S1 zeroed) — with ``1 %``, ``10 %`` and ``100 %`` of the training
   labels (subsets drawn without replacement with ``--fraction-seed``,
   :func:`rsfuse.data.subsets.label_fraction_indices`); the input case holds for training
   and test:

   * ``linear probe`` (DINO's protocol): frozen backbone, features = CLS token of the last
     4 blocks concatenated, a Linear layer from N(0, 0.01²) trained with SGD (momentum 0.9,
     cosine) and ``MultiLabelSoftMarginLoss``. Features are computed once per backbone and
     input case (so no crop/flip augmentation during probe training — a simplification).
     Random init = the same probe on an untrained ViT. Single-modality SSL = the S1 model
     on S1, the S2 model on S2, and both models' features concatenated for S1+S2.
   * ``fine-tune``: the DINO-MM backbone and a head trained end to end
     (:class:`~rsfuse.tasks.classification.DINOMMEvalTask`, AdamW).
   * ``supervised``: the same ViT trained from scratch with labels only, on that input
     case (S1 only / S2 only: a 2- / 12-channel model).

   Every run is scored on the **whole** test split (micro and macro mAP accumulated over
   the split, never averaged per batch). Fine-tuning and supervised runs take the same
   number of optimiser steps for every label fraction.

Writes ``results_runs.csv``, ``results.csv``, ``results.md`` (mean ± std over seeds of micro
mAP, and a check of each claim of the paper) and ``dino_mm.png`` into ``--out``.
:func:`demo_stage` is the short DINO-MM stage of ``rsfuse demo``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rsfuse.experiments import torch_threads

#: Input case → sensors zeroed in it.
INPUTS: dict[str, list[str]] = {"S1+S2": [], "S1 only": ["s2"], "S2 only": ["s1"]}
#: Method → (table label, evaluation protocol).
METHODS: dict[str, tuple[str, str]] = {
    "random": ("Random init", "linear probe"),
    "single": ("Single-modality SSL (DINO)", "linear probe"),
    "moco-mm": ("MoCo-MM", "linear probe"),
    "dino-mm": ("DINO-MM", "linear probe"),
    "supervised": ("Supervised (scratch)", "end to end"),
    "dino-mm-ft": ("DINO-MM", "fine-tune"),
}
DEFAULT_FRACTIONS = (0.01, 0.1, 1.0)


@dataclass
class Settings:
    """Model sizes and training lengths (defaults: tiny, for a 2-core CPU).

    Attributes:
        backbone_kwargs: GatedViT arguments of every ViT (pretraining and evaluation).
        eval_img_size: evaluation inputs are resized to this (120 → ``eval_img_size``).
        dino: extra :class:`~rsfuse.methods.dino_mm.DINOMM` arguments.
        moco: extra :class:`~rsfuse.methods.moco_mm.MoCoMM` arguments.
        pretrain_epochs: SSL epochs.
        probe_epochs: linear-probe epochs over the (fraction of the) training features.
        probe_lr: SGD learning rate of the probe.
        probe_batch_size: probe batch size.
        finetune_epochs: fine-tune / supervised length, in epochs of the full training split
            (the same number of steps for every label fraction).
        finetune_lr: AdamW learning rate of the fine-tuned backbone runs.
        supervised_lr: AdamW learning rate of the supervised runs.
        batch_size: batch size of pretraining, fine-tuning and supervised runs.
    """

    backbone_kwargs: dict[str, Any] = field(
        default_factory=lambda: {
            "patch_size": 8,
            "embed_dim": 48,
            "depth": 4,
            "num_heads": 3,
            "drop_path_rate": 0.1,
        }
    )
    eval_img_size: int = 48
    dino: dict[str, Any] = field(
        default_factory=lambda: {
            "out_dim": 1024,
            "head_hidden_dim": 256,
            "head_bottleneck_dim": 64,
            "global_crops_size": 48,
            "local_crops_number": 2,
            "local_crops_size": 24,
            "momentum_teacher": 0.99,
            "lr": 2e-3,
            "scale_lr_by_batch": False,
            "min_lr": 1e-5,
            "warmup_epochs": 1,
        }
    )
    moco: dict[str, Any] = field(
        default_factory=lambda: {
            "hidden_dim": 256,
            "out_dim": 64,
            "crops_size": 48,
            "crops_scale": (0.2, 1.0),
            "lr": 2e-3,
            "scale_lr_by_batch": False,
            "warmup_epochs": 1,
            "weight_decay": 0.05,
        }
    )
    pretrain_epochs: int = 4
    probe_epochs: int = 50
    probe_lr: float = 0.1
    probe_batch_size: int = 64
    finetune_epochs: int = 5
    finetune_lr: float = 1e-3
    supervised_lr: float = 2e-3
    batch_size: int = 48


@dataclass
class Row:
    method: str
    protocol: str
    seed: int
    input: str
    fraction: float
    n_train: int
    map_micro: float
    map_macro: float
    seconds: float


# ---------------------------------------------------------------------------------- data
def _loader(dataset: Any, batch_size: int, shuffle: bool = False) -> Any:
    from torch.utils.data import DataLoader

    from rsfuse.data.sample import collate

    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate)


def fraction_datamodule(dm: Any, fraction: float, seed: int) -> Any:
    """A copy of a cached datamodule whose train split is a label fraction of ``dm``'s.

    The subset is drawn without replacement (:func:`rsfuse.data.subsets.label_fraction_subset`)
    from ``dm.datasets["train"]``; val / test are shared (no re-reading).
    """
    import copy

    from rsfuse.data.subsets import label_fraction_subset

    out = copy.copy(dm)
    out.datasets = dict(dm.datasets)
    out.datasets["train"] = label_fraction_subset(dm.datasets["train"], fraction, seed)
    out.train_fraction, out.fraction_seed = fraction, seed
    return out


# ---------------------------------------------------------------------------------- pretraining
def pretrain(
    method: str,
    modalities: Sequence[str],
    dm: Any,
    settings: Settings,
    seed: int,
    path: Path,
    epochs: int | None = None,
    logdir: Path | None = None,
) -> Path:
    """Train DINO(-MM) or MoCo-MM on ``dm``'s train split and export its backbone to ``path``.

    Args:
        method: ``dino`` (DINO-MM when both sensors are given) or ``moco``.
        modalities: sensors of the input.
        dm: a BigEarthNet datamodule (its normalisation decides the solarize threshold).
        settings: sizes and lengths.
        seed: training seed.
        path: output ``.safetensors`` file.
        epochs: overrides ``settings.pretrain_epochs``.
        logdir: CSV logs folder (``None``: no logger).
    """
    import lightning as L

    from rsfuse.methods.dino_mm import DINOMM
    from rsfuse.methods.moco_mm import MoCoMM

    L.seed_everything(seed, verbose=False)
    solar = (0.5, 1.0) if dm.normalize.mode == "dino-mm" else (0.0, 0.0)
    common = {
        "modalities": list(modalities),
        "backbone_kwargs": settings.backbone_kwargs,
        "solarize_threshold": solar[0],
        "solarize_upper": solar[1],
        "export_path": str(path),
    }
    if method == "dino":
        model: L.LightningModule = DINOMM(**common, **settings.dino)
    elif method == "moco":
        model = MoCoMM(**common, **settings.moco)
    else:
        raise ValueError(f"unknown pretraining method {method!r}")
    logger: Any = False
    if logdir is not None:
        from lightning.pytorch.loggers import CSVLogger

        logger = CSVLogger(logdir, name=f"{method}_{''.join(modalities)}_seed{seed}")
    trainer = L.Trainer(
        max_epochs=epochs if epochs is not None else settings.pretrain_epochs,
        accelerator="auto",
        devices=1,
        logger=logger,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        log_every_n_steps=5,
    )
    trainer.fit(model, datamodule=dm)
    return path


def load_backbone(path: Path | None, in_chans: int, settings: Settings, seed: int = 0) -> nn.Module:
    """The evaluation ViT (``eval_img_size``), loaded from ``path`` or random (``None``)."""
    from rsfuse.methods.dino_mm import build_vit, eval_backbone_kwargs
    from rsfuse.models.checkpoints import load_encoder

    torch.manual_seed(seed)
    vit = build_vit(
        in_chans, eval_backbone_kwargs(settings.backbone_kwargs, settings.eval_img_size)
    )
    if path is not None:
        load_encoder(vit, path)
    return vit.eval()


# ---------------------------------------------------------------------------------- linear probe
@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    dataset: Any,
    normalize: nn.Module,
    modalities: Sequence[str],
    drop: Sequence[str] = (),
    last_k: int = 4,
    batch_size: int = 64,
) -> tuple[Tensor, Tensor]:
    """Frozen features of a whole split: CLS of the last ``last_k`` blocks, concatenated.

    Args:
        backbone: a GatedViT (CLS pooling) on ``modalities`` stacked S2-first.
        dataset: samples (raw; ``normalize`` is applied per batch).
        normalize: the datamodule's :class:`~rsfuse.data.transforms.Normalize`.
        modalities: sensors of the backbone's input.
        drop: sensors zeroed and flagged absent (input case).
        last_k: blocks whose CLS tokens are concatenated (DINO: 4).
        batch_size: inference batch size.

    Returns:
        features [N, last_k · D] and labels [N, K].
    """
    from rsfuse.models.fusion import drop_modalities, early_fusion_input, encoder_features

    device = next(backbone.parameters()).device
    feats, labels = [], []
    for batch in _loader(dataset, batch_size):
        batch = normalize(
            {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}
        )
        if drop:
            batch = drop_modalities(batch, drop)
        x = early_fusion_input(batch, modalities)
        feats.append(encoder_features(backbone, x, last_k).float().cpu())
        labels.append(batch["label"].float().cpu())
    return torch.cat(feats), torch.cat(labels)


def linear_probe(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    epochs: int = 100,
    lr: float = 0.1,
    batch_size: int = 32,
    momentum: float = 0.9,
    seed: int = 0,
) -> dict[str, float]:
    """DINO's linear evaluation on fixed features, scored over the whole test split.

    A Linear layer (weights N(0, 0.01²), zero bias) trained with SGD (momentum, no weight
    decay, cosine learning rate per step to 0) on ``MultiLabelSoftMarginLoss``.

    Args:
        train_x: [N, F] features. train_y: [N, K] multi-hot.
        test_x: [M, F]. test_y: [M, K].
        epochs: passes over the training features.
        lr: peak learning rate.
        batch_size: mini-batch size.
        momentum: SGD momentum.
        seed: seed of the initialisation and the shuffling.

    Returns:
        ``mAP_micro`` and ``mAP_macro`` on the test split.
    """
    from torchmetrics.functional.classification import multilabel_average_precision

    g = torch.Generator().manual_seed(seed)
    k = train_y.shape[1]
    head = nn.Linear(train_x.shape[1], k)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=g) * 0.01)
        head.bias.zero_()
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=momentum, weight_decay=0.0)
    n = train_x.shape[0]
    steps_per_epoch = math.ceil(n / batch_size)
    total = max(1, epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total) / total))
    )
    loss_fn = nn.MultiLabelSoftMarginLoss()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(steps_per_epoch):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            loss = loss_fn(head(train_x[idx]), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        scores = head(test_x).sigmoid()
    target = test_y.long()
    return {
        "mAP_micro": float(multilabel_average_precision(scores, target, k, average="micro")),
        "mAP_macro": float(multilabel_average_precision(scores, target, k, average="macro")),
    }


# ---------------------------------------------------------------------------------- end to end
def train_end_to_end(
    dm: Any,
    settings: Settings,
    seed: int,
    modalities: Sequence[str],
    drop: Sequence[str],
    checkpoint: Path | None,
    steps: int,
) -> dict[str, float]:
    """Fine-tune an exported backbone (``checkpoint``) or train from scratch (``None``).

    Runs :class:`~rsfuse.tasks.classification.DINOMMEvalTask` (AdamW, CLS features) for ``steps``
    optimiser steps on ``dm``'s train split with ``drop`` zeroed, then scores the whole
    test split with the same input case.
    """
    import lightning as L

    from rsfuse.methods.dino_mm import eval_backbone_kwargs
    from rsfuse.tasks.classification import DINOMMEvalTask
    from rsfuse.tasks.classification import encoder_key

    L.seed_everything(seed, verbose=False)
    kwargs: dict[str, Any] = {
        "modalities": list(modalities),
        "backbone": "gated_vit",
        "backbone_kwargs": eval_backbone_kwargs(settings.backbone_kwargs, settings.eval_img_size),
        "optimizer": "adamw",
        "head_init_std": None,
        "input_drop": list(drop),
        "weight_decay": 0.05,
        "warmup_epochs": 0.0,
    }
    if checkpoint is None:
        kwargs.update(mode="scratch", lr=settings.supervised_lr)
    else:
        kwargs.update(
            mode="finetune",
            lr=settings.finetune_lr,
            encoder_checkpoints={encoder_key(modalities): str(checkpoint)},
        )
    task = DINOMMEvalTask(**kwargs)
    trainer = L.Trainer(
        max_steps=steps,
        max_epochs=-1,
        accelerator="auto",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    trainer.fit(task, datamodule=dm)
    m = trainer.test(task, datamodule=dm, verbose=False)[0]
    return {"mAP_micro": float(m["test/mAP_micro"]), "mAP_macro": float(m["test/mAP_macro"])}


# ---------------------------------------------------------------------------------- one seed
def run_seed(
    dm: Any,
    settings: Settings,
    seed: int,
    fractions: Sequence[float],
    fraction_seed: int,
    methods: Sequence[str],
    out: Path,
    on_row: Any = None,
) -> list[Row]:
    """Pretrain every SSL model of one seed and evaluate every method (module docstring)."""
    n_full = len(dm.datasets["train"])
    rows: list[Row] = []
    ckpt = out / "encoders"
    enc: dict[str, Path] = {}

    def add(method: str, input_: str, frac: float, n: int, m: dict, t0: float) -> None:
        row = Row(
            METHODS[method][0],
            METHODS[method][1],
            seed,
            input_,
            frac,
            n,
            m["mAP_micro"],
            m["mAP_macro"],
            time.time() - t0,
        )
        rows.append(row)
        print(
            f"[dino-mm] seed {seed}: {row.method} ({row.protocol}), {input_}, "
            f"{_pct(frac)} labels: micro mAP {100 * row.map_micro:.1f} ({row.seconds:.0f}s)"
        )
        if on_row is not None:
            on_row(row)

    # 1. pretraining
    plan: list[tuple[str, str, tuple[str, ...]]] = []
    if {"dino-mm", "dino-mm-ft"} & set(methods):
        plan.append(("dino-mm", "dino", ("s1", "s2")))
    if "moco-mm" in methods:
        plan.append(("moco-mm", "moco", ("s1", "s2")))
    if "single" in methods:
        plan += [("dino-s1", "dino", ("s1",)), ("dino-s2", "dino", ("s2",))]
    for name, kind, mods in plan:
        t0 = time.time()
        enc[name] = pretrain(
            kind, mods, dm, settings, seed, ckpt / f"{name}_seed{seed}.safetensors",
            logdir=out / "logs",
        )  # fmt: skip
        print(f"[dino-mm] seed {seed}: pretrained {name} in {time.time() - t0:.0f}s")

    # 2. linear probes on cached features
    subsets = {f: _fraction_indices(n_full, f, fraction_seed) for f in fractions}
    train_ds, test_ds = dm.datasets["train"], dm.datasets["test"]
    both = ("s1", "s2")
    feature_sets: dict[str, dict[str, tuple[str, Sequence[str], Path | None]]] = {}
    if "random" in methods:
        feature_sets["random"] = {i: ("joint", d, None) for i, d in INPUTS.items()}
    for name in ("dino-mm", "moco-mm"):
        if name in methods:
            feature_sets[name] = {i: ("joint", d, enc[name]) for i, d in INPUTS.items()}
    for method, cases in feature_sets.items():
        for input_, (_, drop, path) in cases.items():
            t0 = time.time()
            vit = load_backbone(path, 14, settings, seed)
            tr = extract_features(vit, train_ds, dm.normalize, both, drop)
            te = extract_features(vit, test_ds, dm.normalize, both, drop)
            _probe_all(method, input_, tr, te, subsets, settings, seed, add, t0)
    if "single" in methods:
        feats = {}
        for m, c in (("s1", 2), ("s2", 12)):
            vit = load_backbone(enc[f"dino-{m}"], c, settings, seed)
            feats[m] = (
                extract_features(vit, train_ds, dm.normalize, (m,)),
                extract_features(vit, test_ds, dm.normalize, (m,)),
            )
        t0 = time.time()
        _probe_all("single", "S1 only", *feats["s1"], subsets, settings, seed, add, t0)
        _probe_all("single", "S2 only", *feats["s2"], subsets, settings, seed, add, t0)
        joint = [
            (torch.cat([feats["s1"][j][0], feats["s2"][j][0]], 1), feats["s1"][j][1])
            for j in (0, 1)
        ]
        _probe_all("single", "S1+S2", *joint, subsets, settings, seed, add, t0)

    # 3. end-to-end runs (same number of steps for every fraction)
    steps = max(1, settings.finetune_epochs * math.ceil(n_full / settings.batch_size))
    for method in ("supervised", "dino-mm-ft"):
        if method not in methods:
            continue
        for input_, drop in INPUTS.items():
            for f in fractions:
                t0 = time.time()
                fdm = fraction_datamodule(dm, f, fraction_seed)
                if method == "supervised":
                    mods = [m for m in both if m not in drop]
                    m = train_end_to_end(fdm, settings, seed, mods, [], None, steps)
                else:
                    m = train_end_to_end(fdm, settings, seed, both, drop, enc["dino-mm"], steps)
                add(method, input_, f, len(fdm.datasets["train"]), m, t0)
    return rows


def _fraction_indices(n: int, fraction: float, seed: int) -> list[int]:
    from rsfuse.data.subsets import label_fraction_indices

    return label_fraction_indices(n, fraction, seed)


def _probe_all(
    method: str,
    input_: str,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    subsets: dict[float, list[int]],
    settings: Settings,
    seed: int,
    add: Any,
    t0: float,
) -> None:
    for f, idx in subsets.items():
        ix = torch.as_tensor(idx)
        m = linear_probe(
            train[0][ix],
            train[1][ix],
            test[0],
            test[1],
            epochs=settings.probe_epochs,
            lr=settings.probe_lr,
            batch_size=settings.probe_batch_size,
            seed=seed,
        )
        add(method, input_, f, len(idx), m, t0)


# ---------------------------------------------------------------------------------- tables
def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)
    return mean, math.sqrt(var)


def summarise(rows: list[Row]) -> list[dict[str, Any]]:
    """Mean ± std over seeds per (method, protocol, input, fraction)."""
    groups: dict[tuple[str, str, str, float], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.method, r.protocol, r.input, r.fraction), []).append(r)
    out = []
    for (method, protocol, input_, frac), rs in groups.items():
        mi, mi_s = _mean_std([r.map_micro for r in rs])
        ma, ma_s = _mean_std([r.map_macro for r in rs])
        out.append(
            {
                "method": method,
                "protocol": protocol,
                "input": input_,
                "fraction": frac,
                "seeds": len(rs),
                "n_train": rs[0].n_train,
                "mAP_micro_mean": mi,
                "mAP_micro_std": mi_s,
                "mAP_macro_mean": ma,
                "mAP_macro_std": ma_s,
            }
        )
    return out


def _pct(f: float) -> str:
    return f"{100 * f:g} %"


def markdown_table(summary: list[dict[str, Any]], fractions: Sequence[float]) -> str:
    """Rows: method and protocol; columns: input case × label fraction; micro mAP (%)."""
    idx = {(s["method"], s["protocol"], s["input"], s["fraction"]): s for s in summary}
    order = list(dict.fromkeys(METHODS.values()))
    keys = [k for k in order if any((k[0], k[1]) == (s["method"], s["protocol"]) for s in summary)]
    cols = [(i, f) for i in INPUTS for f in fractions]
    head = "| method | protocol | " + " | ".join(f"{i} {_pct(f)}" for i, f in cols) + " |"
    lines = [head, "|---|---|" + "---|" * len(cols)]
    for method, protocol in keys:
        cells = []
        for i, f in cols:
            s = idx.get((method, protocol, i, f))
            cells.append(
                "-"
                if s is None
                else f"{100 * s['mAP_micro_mean']:.1f} ± {100 * s['mAP_micro_std']:.1f}"
            )
        lines.append(f"| {method} | {protocol} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def claims(summary: list[dict[str, Any]], fractions: Sequence[float]) -> str:
    """The seed's claims, each checked on the table (micro mAP means)."""
    v = {
        (s["method"], s["protocol"], s["input"], s["fraction"]): s["mAP_micro_mean"]
        for s in summary
    }
    lp, full = "linear probe", max(fractions)
    dino, single = ("DINO-MM", lp), ("Single-modality SSL (DINO)", lp)
    rand, sup = ("Random init", lp), ("Supervised (scratch)", "end to end")
    lines = []

    def check(
        text: str, pairs: list[tuple[float | None, float | None]], margin: float = 0.0
    ) -> None:
        done = [(a, b) for a, b in pairs if a is not None and b is not None]
        if not done:
            lines.append(f"- {text}: not run")
            return
        wins = sum(a > b + margin for a, b in done)
        gaps = ", ".join(f"{100 * (a - b):+.1f}" for a, b in done)
        verdict = "holds" if wins == len(done) else ("partly" if wins else "does NOT hold")
        lines.append(f"- {text}: **{verdict}** ({wins}/{len(done)}; gaps in points: {gaps})")

    def g(key: tuple[str, str], i: str, f: float) -> float | None:
        return v.get((key[0], key[1], i, f))

    check(
        "DINO-MM (linear probe) beats single-modality SSL, every input case and fraction",
        [(g(dino, i, f), g(single, i, f)) for i in INPUTS for f in fractions],
    )
    check(
        f"DINO-MM (linear probe) beats supervised training with {_pct(full)} labels",
        [(g(dino, i, full), g(sup, i, full)) for i in INPUTS],
    )
    check(
        "SSL ViTs beat random init by >= 20 points (DINO-MM linear probe)",
        [(g(dino, i, f), g(rand, i, f)) for i in INPUTS for f in fractions],
        margin=0.20,
    )
    check(
        "the joint DINO-MM model on one sensor beats supervised training on that sensor "
        f"with {_pct(full)} labels",
        [(g(dino, i, full), g(sup, i, full)) for i in ("S1 only", "S2 only")],
    )
    return "\n".join(lines)


def plot(summary: list[dict[str, Any]], fractions: Sequence[float], path: Path) -> None:
    """Micro mAP vs label fraction, one panel per input case, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(INPUTS), figsize=(5 * len(INPUTS), 4), sharey=True)
    for ax, input_ in zip(axes, INPUTS):
        for method, protocol in dict.fromkeys(METHODS.values()):
            pts = sorted(
                (s["fraction"], s["mAP_micro_mean"], s["mAP_micro_std"])
                for s in summary
                if s["method"] == method and s["protocol"] == protocol and s["input"] == input_
            )
            if not pts:
                continue
            xs = [100 * p[0] for p in pts]
            ax.errorbar(
                xs,
                [100 * p[1] for p in pts],
                yerr=[100 * p[2] for p in pts],
                marker="o",
                capsize=3,
                label=f"{method} ({protocol})",
            )
        ax.set_xscale("log")
        ax.set_xticks([100 * f for f in fractions])
        ax.set_xticklabels([_pct(f) for f in fractions])
        ax.set_title(input_)
        ax.set_xlabel("training labels")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("micro mAP (%), whole test split")
    axes[-1].legend(fontsize=7)
    fig.suptitle("DINO-MM claims on the synthetic world (mean ± std over seeds)")
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------- demo stage
def demo_stage(
    dm: Any,
    workdir: Path,
    epochs: int = 3,
    seed: int = 0,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Short DINO-MM pretraining, then linear probes on S1+S2, S1-only and S2-only input.

    Uses ``dm``'s cached train and test splits (any normalisation; the solarize threshold
    follows it). The teacher backbone is exported to ``workdir/dino_mm_teacher.safetensors``,
    loaded back, and probed (CLS of the last 4 blocks, SGD) with 100 % of the training labels
    for each input case, next to the same probe on a random-init ViT.

    Args:
        dm: a set-up :class:`~rsfuse.data.datamodules.BigEarthNetDataModule` with S1 and S2
            (``dm.setup("fit")`` and ``dm.setup("test")`` done).
        workdir: output folder.
        epochs: pretraining epochs.
        seed: seed.
        settings: sizes (default :class:`Settings`).

    Returns:
        ``{"table": markdown, "results": {input case: {"DINO-MM": mAP dict, "Random init":
        mAP dict}}, "seconds": float, "checkpoint": path}``; also written to
        ``workdir/dino_mm_stage.md`` and ``.json``.
    """
    t0 = time.time()
    settings = settings or Settings()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt = workdir / "dino_mm_teacher.safetensors"
    print(f"[demo] DINO-MM stage: pretraining for {epochs} epochs (multi-crop, RandomSensorDrop)")
    pretrain("dino", ("s1", "s2"), dm, settings, seed, ckpt, epochs=epochs)
    t_pre = time.time() - t0
    both = ("s1", "s2")
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, path in (("DINO-MM", ckpt), ("Random init", None)):
        vit = load_backbone(path, 14, settings, seed)
        for input_, drop in INPUTS.items():
            tr = extract_features(vit, dm.datasets["train"], dm.normalize, both, drop)
            te = extract_features(vit, dm.datasets["test"], dm.normalize, both, drop)
            m = linear_probe(
                *tr, *te, settings.probe_epochs, settings.probe_lr, settings.probe_batch_size,
                seed=seed,
            )  # fmt: skip
            results.setdefault(input_, {})[name] = m
    lines = [
        "| input | DINO-MM mAP micro | DINO-MM mAP macro | random init mAP micro |",
        "|---|---|---|---|",
    ]
    for input_, r in results.items():
        lines.append(
            f"| {input_} | {100 * r['DINO-MM']['mAP_micro']:.1f} "
            f"| {100 * r['DINO-MM']['mAP_macro']:.1f} | {100 * r['Random init']['mAP_micro']:.1f} |"
        )
    table = "\n".join(lines)
    seconds = time.time() - t0
    header = (
        f"DINO-MM stage: {epochs} pretraining epochs ({t_pre:.0f}s), linear probe (frozen "
        f"teacher, CLS of the last 4 blocks, SGD) with all training labels, whole test split; "
        f"{seconds:.0f}s in total\n\n"
    )
    (workdir / "dino_mm_stage.md").write_text(header + table + "\n")
    out = {"table": table, "results": results, "seconds": seconds, "checkpoint": str(ckpt)}
    (workdir / "dino_mm_stage.json").write_text(json.dumps(out, indent=2))
    print(header + table)
    return out


# ---------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rsfuse experiment dino-mm",
        description=(
            "DINO-MM (seed 002) claims on the synthetic world: pretrain DINO-MM, MoCo-MM and "
            "single-modality DINO (S1, S2) ViTs, then compare random init, single-modality "
            "SSL, DINO-MM and MoCo-MM (linear probe: frozen backbone, CLS of the last 4 "
            "blocks, SGD), DINO-MM fine-tuning and supervised training, each with S1+S2, "
            "S1-only (S2 zeroed) and S2-only (S1 zeroed) input and 1 / 10 / 100 %% of the "
            "labels (drawn without replacement). Micro mAP over the whole test split, mean ± "
            "std over seeds, as a markdown + CSV table with the claims checked, and a plot. "
            "Without --root it synthesises a BigEarthNet-v2-layout dataset."
        ),
        epilog="methods: " + "; ".join(f"{k} = {a} ({b})" for k, (a, b) in METHODS.items()),
    )
    p.add_argument("--out", type=Path, default=Path("rsfuse-dino-mm"), help="output folder")
    p.add_argument(
        "--root", type=Path, default=None, help="BigEarthNet-v2 root (default: synthesise)"
    )
    p.add_argument("--n", type=int, default=600, help="synthetic locations (default 600)")
    p.add_argument("--world-seed", type=int, default=0, help="seed of the synthetic world")
    p.add_argument("--workers", type=int, default=2, help="processes for data synthesis")
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="training seeds (default 0; e.g. 0 1 2 for mean ± std)",
    )
    p.add_argument(
        "--fractions",
        type=float,
        nargs="+",
        default=list(DEFAULT_FRACTIONS),
        help="label fractions (default 0.01 0.1 1)",
    )
    p.add_argument("--fraction-seed", type=int, default=0, help="seed of the label subsets")
    p.add_argument(
        "--methods",
        nargs="+",
        default=list(METHODS),
        choices=list(METHODS),
        metavar="METHOD",
        help=f"methods to run (default: all: {' '.join(METHODS)})",
    )
    p.add_argument("--pretrain-epochs", type=int, default=None, help="SSL epochs (tiny: 4)")
    p.add_argument(
        "--finetune-epochs", type=int, default=None, help="fine-tune / supervised epochs (tiny: 5)"
    )
    p.add_argument("--probe-epochs", type=int, default=None, help="linear-probe epochs (tiny: 50)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (tiny: 48)")
    p.add_argument(
        "--size",
        choices=["tiny", "full"],
        default="tiny",
        help="tiny: CPU sizes (ViT depth 4, width 48, patch 8, 2 x 48 + 2 x 24 px crops); "
        "full: ViT-S/16, 112/48 px crops, out_dim 65536 (GPU)",
    )
    p.add_argument(
        "--normalization",
        choices=["standardize", "dino-mm"],
        default="standardize",
        help="input normalisation (default standardize: (x - mean) / std; dino-mm: the "
        "authors' ±2σ → [0, 1] scaling, which on the synthetic world trains a from-scratch ViT "
        "poorly: measured supervised S1+S2 micro mAP 33 vs 75 after 15 epochs)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice; 1 is faster on a busy 2-core CPU)",
    )
    p.add_argument(
        "--train-cloudy",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep cloudy patches (default: yes; clouds hide S2 but not S1)",
    )
    return p


def full_settings() -> Settings:
    """Paper sizes: ViT-S/16, DINO-MM's crops and head, 100 epochs."""
    return Settings(
        backbone_kwargs={"patch_size": 16, "embed_dim": 384, "depth": 12, "num_heads": 6},
        eval_img_size=128,
        dino={},
        moco={"crops_size": 112},
        pretrain_epochs=100,
        probe_epochs=100,
        probe_lr=0.01,
        finetune_epochs=100,
        finetune_lr=1e-4,
        supervised_lr=5e-4,
        batch_size=256,
    )


def main(argv: Sequence[str]) -> None:
    """Run the experiment (see ``--help``)."""
    args = build_parser().parse_args(list(argv))
    import logging

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with torch_threads(args.threads):
        _run(args)


def _run(args: argparse.Namespace) -> None:
    from rsfuse.data.datamodules import BigEarthNetDataModule

    t_start = time.time()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    settings = Settings() if args.size == "tiny" else full_settings()
    for name in ("pretrain_epochs", "finetune_epochs", "probe_epochs", "batch_size"):
        if getattr(args, name) is not None:
            settings = replace(settings, **{name: getattr(args, name)})
    if args.root is None:
        from rsfuse.demo import _ensure_data

        root = _ensure_data(out / "data", args.n, args.world_seed, args.workers)
    else:
        root = args.root
    dm = BigEarthNetDataModule(
        str(root),
        version="v2",
        modalities=("s1", "s2"),
        batch_size=settings.batch_size,
        include_cloudy=args.train_cloudy,
        normalization=args.normalization,
        cache=True,
    )
    dm.setup("fit")
    dm.setup("test")
    sizes = {s: len(dm.datasets[s]) for s in ("train", "test")}
    print(f"[dino-mm] samples: {sizes}")
    fractions = sorted(args.fractions)

    rows: list[Row] = []

    def write_tables() -> tuple[str, str, str]:
        with open(out / "results_runs.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(Row.__dataclass_fields__)
            w.writerows([list(asdict(r).values()) for r in rows])
        summary = summarise(rows)
        with open(out / "results.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(summary[0]) if summary else ["method"])
            w.writeheader()
            w.writerows(summary)
        table = markdown_table(summary, fractions)
        verdict = claims(summary, fractions)
        header = (
            f"DINO-MM experiment, size={args.size}, seeds={args.seeds}, fractions={fractions}, "
            f"normalization={args.normalization}, "
            f"pretrain_epochs={settings.pretrain_epochs}, finetune_epochs="
            f"{settings.finetune_epochs}, samples={sizes}, "
            f"{(time.time() - t_start) / 60:.1f} min. Micro mAP (%) over the whole test split, "
            "mean ± std over seeds.\n\n"
        )
        (out / "results.md").write_text(
            header + table + "\n\nClaims of the seed:\n" + verdict + "\n"
        )
        (out / "results.json").write_text(
            json.dumps({"sizes": sizes, "settings": asdict(settings), "summary": summary}, indent=2)
        )
        if summary:
            plot(summary, fractions, out / "dino_mm.png")
        return header, table, verdict

    for seed in args.seeds:
        rows += run_seed(dm, settings, seed, fractions, args.fraction_seed, args.methods, out)
        write_tables()
        print(f"[dino-mm] seed {seed} done ({(time.time() - t_start) / 60:.1f} min total)")

    header, table, verdict = write_tables()
    print()
    print(header + table)
    print()
    print(verdict)
    print(f"[dino-mm] wrote {out}/results.md, results.csv, results_runs.csv, dino_mm.png")
