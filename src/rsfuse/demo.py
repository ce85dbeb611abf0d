"""``rsfuse demo``: the main job end to end on the synthetic Sentinel world.

1. Synthesise a BigEarthNet-v2 (reBEN) layout dataset (GeoTIFFs + metadata.parquet).
2. Read it with the v2 reader (S1 + S2), normalise and augment batches on the device.
3. Train a small ViT on early-fused S1+S2 channels, and the same model on S1 only and on
   S2 only; then the MGSViT "S1 GMU S2" model (one gated-shortcut ViT per sensor, fused by
   the gated multimodal unit, seed 000) from scratch, and again after pretraining each
   sensor's encoder briefly with MGSViT's MAE + MoCo v3 self-supervision (Algorithm 1) on
   the unlabelled training patches; test each on the whole test split.
4. DINO-MM stage (seed 002): pretrain one ViT on early-fused S1+S2 with multi-crop views and
   RandomSensorDrop, then linear-probe its frozen features on S1+S2, S1-only and S2-only
   inputs beside the same probe on a random-init ViT.
5. CromSS stage (seed 001): pretrain tiny per-modality U-Nets (middle fusion) on synthetic
   NoLDO-S12 noisy Dynamic World labels with cross-modal sample selection and label
   smoothing, then fine-tune its S2 encoder on synthetic DFC2020 segmentation beside a
   random encoder.
6. Scene stage: export the CromSS stage's best segmentation model as a bundle, predict a
   small synthetic whole scene (``rsfuse synth --layout scene``) with ``rsfuse predict``
   (windows, blending, COG output) and write a quick-look PNG of the map next to the S2
   true-colour image.
7. Print micro/macro mAP and F1 beside the label-frequency baseline; write the table as
   markdown and JSON and a per-class AP plot into the work folder.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchmetrics.classification import MultilabelAveragePrecision, MultilabelF1Score

from rsfuse.data.classes import BEN19

RUNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("S1+S2 (early fusion)", ("s1", "s2")),
    ("S1 only", ("s1",)),
    ("S2 only", ("s2",)),
)

#: The demo's model: a ViT small enough for a laptop CPU (timm, trained from scratch).
DEMO_BACKBONE = "vit_tiny_patch16_224"
DEMO_BACKBONE_KWARGS: dict[str, Any] = {
    "img_size": 120,
    "patch_size": 20,
    "embed_dim": 64,
    "depth": 3,
    "num_heads": 4,
    "class_token": False,
    "global_pool": "avg",
}


#: The MGSViT stage: one GatedViT per sensor (TS unit every 2 blocks), GMU fusion. At this
#: width a GMU with one scalar gate is a bottleneck, so the demo uses Arevalo et al.'s vector
#: gate, 4x wider than the encoders (see configs/mgsvit/overrides/tiny_cpu.yaml).
FUSED_RUNS: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "S1 GMU S2 (MGSViT)",
        {
            "backbone": "gated_vit",
            "backbone_kwargs": {
                "img_size": 120,
                "patch_size": 20,
                "embed_dim": 64,
                "depth": 4,
                "num_heads": 4,
            },
            "fusion": "gmu",
            "shortcut_every": 2,
            "gmu_gate": "vector",
            "gmu_hidden_dim": 256,
        },
    ),
)


@dataclass
class RunResult:
    name: str
    metrics: dict[str, float]
    per_class_ap: list[float]
    seconds: float


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Demo options (all have defaults: ``rsfuse demo`` needs none)."""
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path("rsfuse-demo"),
        help="folder for data, logs, table and plots (default ./rsfuse-demo)",
    )
    p.add_argument(
        "--n",
        type=int,
        default=1500,
        help="synthetic locations to generate (default 1500; 60/20/20 split)",
    )
    p.add_argument("--epochs", type=int, default=11, help="training epochs per run (default 11)")
    p.add_argument(
        "--pretrain-epochs",
        type=int,
        default=4,
        help="MGSViT self-supervised pretraining epochs per sensor (default 4; 0 skips)",
    )
    p.add_argument(
        "--dino-epochs",
        type=int,
        default=3,
        help="DINO-MM pretraining epochs of the DINO-MM stage (default 3; 0 skips the stage)",
    )
    p.add_argument(
        "--cromss-epochs",
        type=int,
        default=4,
        help="CromSS pretraining epochs of the CromSS stage (default 4; 0 skips the stage)",
    )
    p.add_argument(
        "--scene-size",
        type=int,
        default=1024,
        help="side of the synthetic scene the best segmentation model maps at the end "
        "(default 1024; 0 skips the stage; needs the CromSS stage)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate")
    p.add_argument("--seed", type=int, default=0, help="seed of the world and of training")
    p.add_argument("--workers", type=int, default=2, help="processes for data synthesis")


def label_frequency_baseline(train_labels: torch.Tensor, test_labels: torch.Tensor) -> dict:
    """Scores every test sample with the training label frequencies (no image input)."""
    freq = train_labels.float().mean(0)
    scores = freq.expand_as(test_labels).contiguous()
    k = test_labels.shape[1]
    target = test_labels.long()
    return {
        "mAP_micro": float(MultilabelAveragePrecision(k, average="micro")(scores, target)),
        "mAP_macro": float(MultilabelAveragePrecision(k, average="macro")(scores, target)),
        "F1_micro": float(MultilabelF1Score(k, average="micro")(scores, target)),
        "F1_macro": float(MultilabelF1Score(k, average="macro")(scores, target)),
    }


def _labels(dataset) -> torch.Tensor:
    return torch.stack([dataset[i]["label"] for i in range(len(dataset))])


def _ensure_data(root: Path, n: int, seed: int, workers: int) -> Path:
    """Synthesise the dataset unless the same one (n, seed) is already there."""
    from rsfuse.data.synthetic import synthesize

    stamp = root / "rsfuse-synth.json"
    want = {"layout": "bigearthnet-v2", "n": n, "seed": seed}
    if stamp.is_file() and json.loads(stamp.read_text()) == want:
        print(f"[demo] reusing synthetic dataset in {root}")
        return root
    print(f"[demo] synthesising {n} BigEarthNet-v2-layout locations into {root}")
    synthesize("bigearthnet-v2", root, n=n, seed=seed, workers=workers, progress=True)
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(json.dumps(want))
    os.replace(tmp, stamp)
    return root


def _format_table(rows: list[tuple[str, dict[str, float], str]]) -> str:
    w = max(28, *(len(name) for name, _, _ in rows))
    head = f"| {'run':<{w}} | mAP micro | mAP macro | F1 micro | F1 macro | time |"
    sep = "|" + "-" * (w + 2) + "|-----------|-----------|----------|----------|------|"
    lines = [head, sep]
    for name, m, t in rows:
        lines.append(
            f"| {name:<{w}} | {100 * m['mAP_micro']:9.1f} | {100 * m['mAP_macro']:9.1f} "
            f"| {100 * m['F1_micro']:8.1f} | {100 * m['F1_macro']:8.1f} | {t:>4} |"
        )
    return "\n".join(lines)


def _plot_per_class(results: list[RunResult], baseline_ap: list[float], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    k = len(BEN19)
    x = np.arange(k)
    width = 0.8 / (len(results) + 1)
    fig, ax = plt.subplots(figsize=(14, 5))
    for i, r in enumerate(results):
        ax.bar(x + i * width, [100 * v for v in r.per_class_ap], width, label=r.name)
    ax.bar(
        x + len(results) * width,
        [100 * v for v in baseline_ap],
        width,
        label="label frequency",
        color="lightgrey",
    )
    ax.set_xticks(x + 0.4 - width / 2)
    ax.set_xticklabels([n[:28] for n in BEN19], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("average precision (%)")
    ax.set_title("Per-class test AP on the synthetic BigEarthNet-v2 world")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def pretrain_mgsvit_encoders(
    dm: Any,
    model_kwargs: dict[str, Any],
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    workdir: Path,
) -> dict[str, str]:
    """MGSViT pretraining (MAE + MoCo v3, Algorithm 1) of an S1 and an S2 encoder.

    The encoders have the fused run's architecture; each is exported to
    ``workdir/pretrained/mgsvit_{s1,s2}.safetensors`` (+ JSON), and a reconstruction PNG is
    written to ``workdir``.

    Returns:
        ``{"s1": path, "s2": path}`` for ``encoder_checkpoints``.
    """
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from rsfuse.methods.mgsvit import MGSViTPretraining

    kwargs = dict(model_kwargs["backbone_kwargs"])
    img = kwargs.pop("img_size", None)
    paths = {}
    for modality in ("s1", "s2"):
        L.seed_everything(seed, verbose=False)
        method = MGSViTPretraining(
            modality=modality,
            backbone_kwargs={**kwargs, "img_size": img},
            shortcut_every=model_kwargs["shortcut_every"],
            crop_size=img or 120,
            decoder_dim=64,
            decoder_heads=4,
            proj_hidden_dim=256,
            proj_dim=64,
            base_lr=lr * 256 / batch_size,
            warmup_epochs=0.5,
            plot_dir=str(workdir),
            plot_samples=3,
        )
        trainer = L.Trainer(
            max_epochs=epochs,
            accelerator="auto",
            devices=1,
            logger=CSVLogger(workdir / "logs", name=f"mgsvit_pretrain_{modality}"),
            enable_checkpointing=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=1,
            log_every_n_steps=5,
        )
        print(
            f"[demo] MGSViT self-supervised pretraining of the {modality.upper()} encoder "
            f"for {epochs} epochs (MAE + MoCo v3, no labels)"
        )
        trainer.fit(method, datamodule=dm)
        paths[modality] = str(method.export_encoder(workdir / "pretrained" / f"mgsvit_{modality}"))
    return paths


def scene_stage(
    workdir: Path, checkpoint: str, label: str, size: int, seed: int = 0, workers: int = 2
) -> dict[str, Any]:
    """Export ``checkpoint`` as a bundle and map a synthetic ``size``² scene with it.

    Writes ``workdir/scene_map/map.tif`` (COG), its path raster, report and
    ``workdir/scene_quicklook.png``; scores the map against the scene's clean DFC2020
    reference on clear and on cloudy pixels.

    Returns:
        ``{"model", "bundle", "map", "quicklook", "seconds", "pixels_per_second",
        "oa_clear", "oa_cloudy", "routing", "summary"}``.
    """
    import rasterio

    from rsfuse.data.synthetic import synthesize
    from rsfuse.inference import export_bundle
    from rsfuse.inference.predict import Options, predict_scene

    root = workdir / "scene"
    scene_dir = root / "scene_000"
    if not (scene_dir / "scene.json").is_file():
        synthesize("scene", root, n=1, seed=seed, workers=workers, progress=False, size=size)
    bundle = export_bundle(checkpoint, workdir / "bundle")
    out = workdir / "scene_map" / "map.tif"
    rep = predict_scene(
        bundle, out, s2=scene_dir / "s2.tif", s1=scene_dir / "s1.tif", clouds="auto",
        options=Options(quicklook=True, progress=False),
    )  # fmt: skip
    quicklook = workdir / "scene_quicklook.png"
    os.replace(rep["outputs"]["quicklook"], quicklook)
    with rasterio.open(out) as m, rasterio.open(scene_dir / "reference_dfc2020.tif") as r:
        pred, ref = m.read(1), r.read(1)
    with rasterio.open(scene_dir / "cloud_mask.tif") as c:
        cloudy = c.read(1) != 0
    valid = (ref != 255) & (pred != 255)
    oa = {
        k: float((pred[valid & sel] == ref[valid & sel]).mean()) if (valid & sel).any() else None
        for k, sel in (("clear", ~cloudy), ("cloudy", cloudy))
    }
    summary = (
        f"{label!r} bundle mapped the {size}² scene in {rep['seconds']:.1f} s "
        f"({rep['pixels_per_second'] / 1e6:.2f} Mpx/s); agreement with the clean reference "
        f"map: {100 * (oa['clear'] or 0):.1f} % of clear pixels, "
        f"{100 * (oa['cloudy'] or 0):.1f} % under clouds ({rep['routing']}); "
        f"quick-look: {quicklook}"
    )
    return {
        "model": label,
        "bundle": str(bundle),
        "map": str(out),
        "quicklook": str(quicklook),
        "seconds": rep["seconds"],
        "pixels_per_second": rep["pixels_per_second"],
        "oa_clear": oa["clear"],
        "oa_cloudy": oa["cloudy"],
        "routing": rep["routing"],
        "summary": summary,
    }


def run_demo(
    workdir: Path = Path("rsfuse-demo"),
    n: int = 1500,
    epochs: int = 11,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    workers: int = 2,
    pretrain_epochs: int = 4,
    dino_epochs: int = 3,
    cromss_epochs: int = 4,
    scene_size: int = 1024,
) -> dict[str, Any]:
    """Run the demo and return its results (also written to ``workdir``)."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from rsfuse.data.datamodules import BigEarthNetDataModule
    from rsfuse.tasks.classification import MultiLabelClassificationTask

    t_start = time.time()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    data_root = _ensure_data(workdir / "data", n, seed, workers)

    dm = BigEarthNetDataModule(
        str(data_root),
        version="v2",
        modalities=("s1", "s2"),
        batch_size=batch_size,
        include_cloudy=True,
        cache=True,
    )
    print("[demo] reading the splits into memory")
    dm.setup("fit")
    dm.setup("test")
    n_train, n_val, n_test = (len(dm.datasets[s]) for s in ("train", "val", "test"))
    print(
        f"[demo] train {n_train}, val {n_val}, test {n_test} samples "
        "(cloudy patches kept: clouds hide S2 but not S1; snowy patches excluded)"
    )
    dm.datasets["train"].plot(dm.datasets["train"][0]).savefig(workdir / "sample.png")

    plan: list[tuple[str, dict[str, Any]]] = [
        (
            name,
            {
                "modalities": mods,
                "backbone": DEMO_BACKBONE,
                "backbone_kwargs": DEMO_BACKBONE_KWARGS,
            },
        )
        for name, mods in RUNS
    ]
    plan += [(name, {"modalities": ("s1", "s2"), **kw}) for name, kw in FUSED_RUNS]
    if pretrain_epochs > 0:
        name, kw = FUSED_RUNS[0]
        encoders = pretrain_mgsvit_encoders(dm, kw, pretrain_epochs, batch_size, lr, seed, workdir)
        plan.append(
            (
                f"{name.removesuffix(')')}, SSL + fine-tune)",
                {
                    "modalities": ("s1", "s2"),
                    **kw,
                    "mode": "finetune",
                    "encoder_checkpoints": encoders,
                },
            )
        )
    results: list[RunResult] = []
    for name, model_kwargs in plan:
        L.seed_everything(seed, verbose=False)
        task = MultiLabelClassificationTask(
            **model_kwargs, lr=lr, weight_decay=0.05, warmup_epochs=1
        )
        trainer = L.Trainer(
            max_epochs=epochs,
            accelerator="auto",
            devices=1,
            logger=CSVLogger(workdir / "logs", name=re.sub(r"\W+", "_", name).strip("_")),
            enable_checkpointing=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=5,
        )
        print(f"[demo] training {name} for {epochs} epochs")
        t0 = time.time()
        trainer.fit(task, datamodule=dm)
        metrics = trainer.test(task, datamodule=dm, verbose=False)[0]
        seconds = time.time() - t0
        m = {k.removeprefix("test/"): float(v) for k, v in metrics.items()}
        results.append(RunResult(name, m, task.last_test_per_class_ap or [], seconds))

    dino = None
    if dino_epochs > 0:
        from rsfuse.experiments.dino_mm import demo_stage

        dino = demo_stage(dm, workdir / "dino_mm", epochs=dino_epochs, seed=seed)
    cromss = None
    if cromss_epochs > 0:
        from rsfuse.experiments import cromss as cromss_experiment

        print(f"[demo] CromSS stage: noisy-label pretraining for {cromss_epochs} epochs")
        cromss = cromss_experiment.demo_stage(
            workdir / "cromss", pretrain_epochs=cromss_epochs, seed=seed, workers=workers
        )

    scene = None
    if cromss is not None and scene_size > 0:
        label = cromss["best"]
        print(f"[demo] scene stage: mapping a {scene_size}² synthetic scene with {label!r}")
        scene = scene_stage(
            workdir, cromss["checkpoints"][label], label, scene_size, seed=seed, workers=workers
        )

    train_labels = _labels(dm.datasets["train"])
    test_labels = _labels(dm.datasets["test"])
    baseline = label_frequency_baseline(train_labels, test_labels)
    baseline_ap = [
        float(v)
        for v in MultilabelAveragePrecision(len(BEN19), average=None)(
            train_labels.float().mean(0).expand_as(test_labels).contiguous(), test_labels.long()
        )
    ]

    rows = [(r.name, r.metrics, f"{r.seconds:.0f}s") for r in results]
    rows.append(("label-frequency baseline", baseline, "-"))
    table = _format_table(rows)
    total = time.time() - t_start
    print()
    print(f"Test split of the synthetic BigEarthNet-v2 world ({n_test} samples, 19 classes):")
    print(table)
    best = results[0].metrics["mAP_micro"]
    print(
        f"\nS1+S2 micro mAP {100 * best:.1f} vs label-frequency baseline "
        f"{100 * baseline['mAP_micro']:.1f} ({best / max(baseline['mAP_micro'], 1e-9):.2f}x); "
        f"total {total / 60:.1f} min"
    )

    if dino is not None:
        print(
            "\nDINO-MM stage: one model pretrained on S1+S2 with RandomSensorDrop, linear "
            "probes (frozen features) per input case:"
        )
        print(dino["table"])
    if cromss is not None:
        print("\nCromSS stage: S2 encoder pretrained on noisy labels, fine-tuned on DFC2020:")
        print(cromss["markdown"])
    if scene is not None:
        print("\nScene stage: " + scene["summary"])
    _plot_per_class(results, baseline_ap, workdir / "per_class_ap.png")
    out = {
        "n_train": n_train,
        "n_val": n_val,
        "n_test": n_test,
        "epochs": epochs,
        "pretrain_epochs": pretrain_epochs,
        "dino_mm_stage": None if dino is None else dino["results"],
        "cromss_stage": None if cromss is None else cromss["rows"],
        "scene_stage": scene,
        "runs": [r.__dict__ for r in results],
        "baseline": baseline,
        "baseline_per_class_ap": baseline_ap,
        "total_seconds": total,
    }
    (workdir / "results.md").write_text(table + "\n")
    (workdir / "results.json").write_text(json.dumps(out, indent=2))
    print(f"[demo] wrote {workdir / 'results.md'}, results.json, per_class_ap.png, sample.png")
    return out
