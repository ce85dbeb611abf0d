"""``rsfuse demo``: the main job end to end on the synthetic Sentinel world.

Every training run is built from packaged YAML configs (``demo/classification``,
``demo/mgsvit_gmu``, ``demo/mgsvit_pretrain``, the DINO-MM, CromSS and segmentation configs
with their CPU overrides) through :func:`rsfuse.experiments.runner.build_run`, the same
route as ``rsfuse fit``; ``rsfuse fit --config demo/classification`` runs a stage alone.

1. Synthesise a BigEarthNet-v2 (reBEN) layout dataset (GeoTIFFs + metadata.parquet).
2. Read it with the v2 reader (S1 + S2), normalise and augment batches on the device.
3. Train a small ViT on early-fused S1+S2 channels, and the same model on S1 only and on
   S2 only; then the MGSViT "S1 GMU S2" model (one gated-shortcut ViT per sensor, fused by
   the gated multimodal unit) from scratch, and again after pretraining each
   sensor's encoder briefly with MGSViT's MAE + MoCo v3 self-supervision (Algorithm 1) on
   the unlabelled training patches; test each on the whole test split.
4. DINO-MM stage: pretrain one ViT on early-fused S1+S2 with multi-crop views and
   RandomSensorDrop, then linear-probe its frozen features on S1+S2, S1-only and S2-only
   inputs beside the same probe on a random-init ViT.
5. CromSS stage: pretrain tiny per-modality U-Nets (middle fusion) on synthetic
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
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchmetrics.classification import MultilabelAveragePrecision, MultilabelF1Score

from rsfuse.data.classes import BEN19
from rsfuse.experiments.protocols import dino_evaluation, random_vit, run_overrides
from rsfuse.experiments.runner import (
    build_run,
    dotted,
    ensure_synthetic,
    save_figure,
    write_json,
    write_text,
)

RUNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("S1+S2 (early fusion)", ("s1", "s2")),
    ("S1 only", ("s1",)),
    ("S2 only", ("s2",)),
)
GMU_RUN = "S1 GMU S2 (MGSViT)"
INPUTS: dict[str, list[str]] = {"S1+S2": [], "S1 only": ["s2"], "S2 only": ["s1"]}
DINO_CONFIGS = ("dino_mm/dino_mm_pretrain", "dino_mm/overrides/experiment_cpu_dino")
PROBE_CONFIGS = ("dino_mm/eval/linear_probe", "dino_mm/overrides/experiment_cpu_eval")


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


def _labels(dataset: Any) -> torch.Tensor:
    return torch.stack([dataset[i]["label"] for i in range(len(dataset))])


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
    save_figure(fig, out)


def _classification_overrides(dm: Any, epochs: int, lr: float, batch_size: int) -> list[str]:
    return dotted(
        data__init_args__root=str(dm.root),
        data__init_args__batch_size=batch_size,
        trainer__max_epochs=epochs,
        model__init_args__lr=lr,
    )


def pretrain_mgsvit_encoders(
    dm: Any, epochs: int, batch_size: int, lr: float, seed: int, workdir: Path
) -> dict[str, str]:
    """MGSViT pretraining (MAE + MoCo v3, Algorithm 1) of an S1 and an S2 encoder with the
    architecture of the GMU run (``demo/mgsvit_pretrain``).

    Each is exported to ``workdir/pretrained/mgsvit_{s1,s2}.safetensors`` (+ JSON), and a
    reconstruction PNG is written to ``workdir``.

    Returns:
        ``{"s1": path, "s2": path}`` for ``encoder_checkpoints``.
    """
    import copy

    plain = copy.copy(dm)
    plain.augmentation = None  # the method augments its two views itself
    paths = {}
    for modality in ("s1", "s2"):
        run = build_run(
            ["demo/mgsvit_pretrain"],
            dotted(
                model__init_args__modality=modality,
                model__init_args__base_lr=lr * 256 / batch_size,
                model__init_args__plot_dir=str(workdir),
                data__init_args__root=str(dm.root),
                data__init_args__batch_size=batch_size,
                trainer__max_epochs=epochs,
            ),
            run_dir=workdir / "logs" / f"mgsvit_pretrain_{modality}",
            datamodule=plain,
            seed=seed,
        )
        print(
            f"[demo] MGSViT self-supervised pretraining of the {modality.upper()} encoder "
            f"for {epochs} epochs (MAE + MoCo v3, no labels)"
        )
        run.trainer.fit(run.model, datamodule=plain)
        out = run.model.export_encoder(workdir / "pretrained" / f"mgsvit_{modality}")
        paths[modality] = str(out)
    return paths


def dino_mm_stage(dm: Any, workdir: Path, epochs: int = 3, seed: int = 0) -> dict[str, Any]:
    """Short DINO-MM pretraining, then linear probes on S1+S2, S1-only and S2-only input.

    Uses ``dm``'s cached train and test splits (any normalisation; the solarize threshold
    follows it). The teacher backbone is exported to ``workdir/dino_mm_teacher.safetensors``
    and probed (CLS of the last 4 blocks, SGD; ``dino_mm/eval/linear_probe`` at the sizes of
    ``dino_mm/overrides/experiment_cpu_eval``) with 100 % of the training labels for each
    input case, next to the same probe on a random-init ViT.

    Returns:
        ``{"table": markdown, "results": {input case: {"DINO-MM": mAP dict, "Random init":
        mAP dict}}, "seconds": float, "checkpoint": path}``; also written to
        ``workdir/dino_mm_stage.md`` and ``.json``.
    """
    import copy

    t0 = time.time()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt = workdir / "dino_mm_teacher.safetensors"
    print(f"[demo] DINO-MM stage: pretraining for {epochs} epochs (multi-crop, RandomSensorDrop)")
    solar = (0.5, 1.0) if dm.normalize.mode == "dino-mm" else (0.0, 0.0)
    plain = copy.copy(dm)
    plain.augmentation = None
    run = build_run(
        DINO_CONFIGS,
        run_overrides(dm, epochs=epochs)
        + dotted(
            model__init_args__solarize_threshold=solar[0],
            model__init_args__solarize_upper=solar[1],
            model__init_args__export_path=str(ckpt),
        ),
        datamodule=plain,
        seed=seed,
    )
    run.trainer.fit(run.model, datamodule=plain)
    t_pre = time.time() - t0
    both = ("s1", "s2")
    random = random_vit(both, PROBE_CONFIGS, workdir / "random_vit.safetensors", seed)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, path in (("DINO-MM", ckpt), ("Random init", random)):
        for input_, drop in INPUTS.items():
            results.setdefault(input_, {})[name] = dino_evaluation(
                "probe", dm, PROBE_CONFIGS, seed, both, drop, {"s1s2": str(path)},
                epochs=50, lr=0.1, batch_size=64,
            )  # fmt: skip
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
    write_text(workdir / "dino_mm_stage.md", header + table + "\n")
    out = {"table": table, "results": results, "seconds": seconds, "checkpoint": str(ckpt)}
    write_json(workdir / "dino_mm_stage.json", out)
    print(header + table)
    return out


def cromss_stage(
    workdir: Path,
    noldo_root: Path | None = None,
    dfc2020_root: Path | None = None,
    noldo_patch_size: int = 48,
    dfc2020_patch_size: int = 48,
    n_noldo: int = 48,
    n_dfc2020: int = 64,
    pretrain_epochs: int = 4,
    epochs: int = 4,
    batch_size: int = 8,
    seed: int = 0,
    workers: int = 2,
) -> dict[str, Any]:
    """A short CromSS stage: CromSS-midF pretraining of tiny U-Nets (ResNet-18, 3 stages;
    ``cromss/cromss_midf`` + ``cromss/overrides/tiny_cpu``) on synthetic NoLDO-S12 noisy
    labels, then its S2 encoder transferred to synthetic DFC2020 (PSPNet, fine-tuned;
    ``segmentation/dfc2020_pspnet_finetune`` + its tiny override) beside a randomly
    initialised encoder.

    Returns:
        ``{"rows": [(label, metrics dict)], "markdown": str, "checkpoints": {label: .ckpt},
        "best": label with the highest mIoU, "encoder": path, "pretrain_accuracy": dict,
        "seconds": float}``; metrics are OA, AA, mIoU, mF1 on the DFC2020 test split.
    """
    from rsfuse.experiments.protocols import pretrain_accuracy, segmentation_datamodule

    t0 = time.time()
    workdir = Path(workdir)
    roots = {"noldo-s12": noldo_root, "dfc2020": dfc2020_root}
    sizes = {"noldo-s12": noldo_patch_size, "dfc2020": dfc2020_patch_size}
    for kind, n, kw in (("noldo-s12", n_noldo, {"n_downstream": 4}), ("dfc2020", n_dfc2020, {})):
        if roots[kind] is None:
            roots[kind] = ensure_synthetic(
                kind, workdir / "cromss-data" / kind, n, seed, workers, patch_size=sizes[kind], **kw
            )
    print(f"[demo] CromSS-midF pretraining on noisy NoLDO-S12 labels, {pretrain_epochs} epochs")
    run = build_run(
        ["cromss/cromss_midf", "cromss/overrides/tiny_cpu"],
        dotted(
            model__init_args__ramp_epochs=max(1, round(0.4 * pretrain_epochs)),
            model__init_args__export_dir=None,
            data__init_args__root=str(roots["noldo-s12"]),
            data__init_args__patch_size=sizes["noldo-s12"],
            data__init_args__batch_size=batch_size,
            data__init_args__val_fraction=0.1,
            data__init_args__seed=seed,
            trainer__max_epochs=pretrain_epochs,
            trainer__num_sanity_val_steps=0,
        ),
        seed=seed,
    )
    run.trainer.fit(run.model, datamodule=run.datamodule)
    acc = pretrain_accuracy(run.model, run.datamodule)
    encoder = run.model.export_encoders(workdir / "pretrained", "cromss_demo")["s2"]

    configs = ["segmentation/dfc2020_pspnet_finetune", "segmentation/overrides/tiny_cpu"]
    dm = segmentation_datamodule(configs, roots["dfc2020"], ["s2"], batch_size, sizes["dfc2020"])
    rows: list[tuple[str, dict[str, float]]] = []
    checkpoints: dict[str, str] = {}
    for label, ckpt in (("random init", None), ("CromSS-midF S2", str(encoder))):
        seg = build_run(
            configs,
            dotted(
                model__init_args__encoder_checkpoint=ckpt,
                model__init_args__plot_samples=0,
                model__init_args__cosine_epochs=None,
                data__init_args__root=str(roots["dfc2020"]),
                data__init_args__modalities=["s2"],
                trainer__max_epochs=epochs,
                trainer__limit_val_batches=0,
                trainer__num_sanity_val_steps=0,
            ),
            datamodule=dm,
            seed=seed,
        )
        seg.trainer.fit(seg.model, datamodule=dm)
        seg.trainer.test(seg.model, datamodule=dm, verbose=False)
        m = seg.model.last_test_metrics or {}
        rows.append((label, {k: float(m[k]) for k in ("OA", "AA", "mIoU", "mF1")}))
        # a Lightning checkpoint (with the datamodule's normalisation) for rsfuse export
        path = workdir / "checkpoints" / (re.sub(r"\W+", "_", label).strip("_") + ".ckpt")
        seg.trainer.save_checkpoint(path)
        checkpoints[label] = str(path)
    lines = [
        "| DFC2020 (PSPNet, fine-tuned S2 encoder) | OA | AA | mIoU | mF1 |",
        "|---|---|---|---|---|",
    ]
    for label, m in rows:
        lines.append(f"| {label} | " + " | ".join(f"{100 * m[k]:.1f}" for k in m) + " |")
    nan = float("nan")
    lines.append(
        f"\nCromSS pretraining split: noisy labels {100 * acc.get('noisy_labels', nan):.1f} % "
        f"correct; S2 prediction vs clean labels {100 * acc.get('s2_vs_clean', nan):.1f} %"
    )
    best = max(rows, key=lambda r: r[1]["mIoU"])[0]
    return {
        "rows": rows,
        "markdown": "\n".join(lines),
        "checkpoints": checkpoints,
        "best": best,
        "encoder": str(encoder),
        "pretrain_accuracy": acc,
        "seconds": time.time() - t0,
    }


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
    from rsfuse.data.datamodules import BigEarthNetDataModule
    from rsfuse.errors import ConfigError
    from rsfuse.io.paths import check_output_folder

    sizes = {"n": n, "epochs": epochs, "batch_size": batch_size, "scene_size": scene_size}
    stages = {"pretrain_epochs": pretrain_epochs, "dino_epochs": dino_epochs,
              "cromss_epochs": cromss_epochs}  # fmt: skip
    for key, value in sizes.items():
        if value < 1:
            raise ConfigError(f"--{key.replace('_', '-')} must be >= 1, got {value}", key=key)
    for key, value in stages.items():
        if value < 0:
            raise ConfigError(f"--{key.replace('_', '-')} must be >= 0, got {value}", key=key)
    if not lr > 0:
        raise ConfigError(f"--lr must be > 0, got {lr}", key="lr")
    workdir = Path(workdir)
    check_output_folder(workdir, key="workdir")  # before anything is synthesised
    t_start = time.time()
    workdir.mkdir(parents=True, exist_ok=True)
    data_root = ensure_synthetic("bigearthnet-v2", workdir / "data", n, seed, workers)

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

    plan: list[tuple[str, list[str], list[str]]] = [
        (name, ["demo/classification"], dotted(model__init_args__modalities=list(mods)))
        for name, mods in RUNS
    ]
    plan.append((GMU_RUN, ["demo/mgsvit_gmu"], []))
    if pretrain_epochs > 0:
        encoders = pretrain_mgsvit_encoders(dm, pretrain_epochs, batch_size, lr, seed, workdir)
        plan.append(
            (
                f"{GMU_RUN.removesuffix(')')}, SSL + fine-tune)",
                ["demo/mgsvit_gmu"],
                dotted(model__init_args__mode="finetune",
                       model__init_args__encoder_checkpoints=encoders),
            )
        )  # fmt: skip
    results: list[RunResult] = []
    for name, configs, over in plan:
        run = build_run(
            configs,
            over + _classification_overrides(dm, epochs, lr, batch_size),
            run_dir=workdir / "logs" / re.sub(r"\W+", "_", name).strip("_"),
            datamodule=dm,
            seed=seed,
        )
        print(f"[demo] training {name} for {epochs} epochs")
        t0 = time.time()
        run.trainer.fit(run.model, datamodule=dm)
        metrics = run.trainer.test(run.model, datamodule=dm, verbose=False)[0]
        seconds = time.time() - t0
        m = {k.removeprefix("test/"): float(v) for k, v in metrics.items()}
        results.append(RunResult(name, m, run.model.last_test_per_class_ap or [], seconds))

    dino = None
    if dino_epochs > 0:
        dino = dino_mm_stage(dm, workdir / "dino_mm", epochs=dino_epochs, seed=seed)
    cromss = None
    if cromss_epochs > 0:
        print(f"[demo] CromSS stage: noisy-label pretraining for {cromss_epochs} epochs")
        cromss = cromss_stage(
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
    write_text(workdir / "results.md", table + "\n")
    write_json(workdir / "results.json", out)
    print(f"[demo] wrote {workdir / 'results.md'}, results.json, per_class_ap.png, sample.png")
    return out


def main(argv: list[str]) -> None:
    """``rsfuse demo`` (see ``--help``)."""
    p = argparse.ArgumentParser(
        prog="rsfuse demo",
        description=(
            "The main job end to end on the synthetic Sentinel world: synthesise a "
            "BigEarthNet-v2-layout dataset, train multi-label classifiers on S1+S2 (early "
            "fusion), S1 only, S2 only and S1 GMU S2 (MGSViT) from scratch and after "
            "MGSViT's MAE + MoCo v3 pretraining of each encoder, test them on the whole "
            "test split and print micro/macro mAP and F1 beside the label-frequency "
            "baseline; then pretrain DINO-MM on S1+S2 with RandomSensorDrop and "
            "linear-probe it on S1+S2, S1-only and S2-only input; then pretrain CromSS on "
            "noisy labels and fine-tune its S2 encoder on DFC2020 segmentation; last, export "
            "the better segmentation model as a bundle and map a synthetic whole scene with "
            "rsfuse predict (COG + quick-look PNG). Every run is built from the packaged "
            "demo/*, dino_mm/*, cromss/* and segmentation/* configs (`rsfuse configs demo`). "
            "Writes the tables (markdown + JSON) and plots into the work folder."
        ),
    )
    add_arguments(p)
    run_demo(**vars(p.parse_args(list(argv))))
