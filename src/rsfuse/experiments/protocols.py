"""Evaluation protocols shared by several experiments.

**Multi-label classification on clear and clouded patches** (the MGSViT experiments):
:func:`classification_data` reads a BigEarthNet-v2 dataset once into memory (the train split
with or without its cloudy patches, the clear test split, and a cloud-heavy test split of
every cloudy patch of chosen splits); :func:`train_and_score` trains one run built from
packaged configs and scores it on both test splits — for a fused model also with S2 marked
absent (``S1 only``) and S1 marked absent (``S2 only``). Rows are :class:`ScoreRow`.

**DINO's linear evaluation and fine-tuning** (the DINO-MM experiment and the demo):
:func:`dino_evaluation` runs the packaged ``dino_mm/eval/*`` configs on a cached datamodule
(:func:`fraction_datamodule` for label fractions, :func:`random_vit` for the random-init
baseline) and scores the whole test split.

**Segmentation transfer** (CromSS §IV-A, Tables II–IV; the segmentation-transfer and CromSS
experiments and the demo): the downstream :data:`SETTINGS` (DFC2020 → PSPNet, SSL4EO-S12@DW
→ DeepLabV3+, SSL4EO-S12@OSM → FPN, DFC2020 → UPerNet on a ViT) as packaged configs,
:func:`segmentation_roots` (data given or synthesised), :func:`segmentation_datamodule`,
:func:`transfer_run` (one encoder frozen or fine-tuned, scored on the test split: a
:class:`SegRun`), :func:`summarise_runs`, :func:`markdown_tables` and
:func:`plot_transfer`; :func:`pretrain_accuracy` scores a CromSS model on its own noisy
pretraining split against the clean labels.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rsfuse.errors import ConfigError
from rsfuse.experiments.claims import Verdict
from rsfuse.experiments.runner import (
    build_run,
    cell,
    dotted,
    ensure_synthetic,
    save_figure,
    summarise,
)
from rsfuse.training.configs import load_config

__all__ = [
    "DEFAULT_SETTINGS",
    "METRICS",
    "MODES",
    "RANDOM",
    "SETTINGS",
    "ClassificationData",
    "ScoreRow",
    "SegRun",
    "Setting",
    "classification_data",
    "cloudy_test_datamodule",
    "dino_evaluation",
    "fraction_datamodule",
    "markdown_tables",
    "parse_patch_sizes",
    "plot_transfer",
    "pretrain_accuracy",
    "random_vit",
    "robust_datamodule",
    "run_overrides",
    "segmentation_datamodule",
    "segmentation_roots",
    "setting_configs",
    "split_list",
    "summarise_runs",
    "summarise_scores",
    "train_and_score",
    "transfer_claims",
    "transfer_run",
]


@dataclass
class ScoreRow:
    """One classification score: a run (``variant``, ``seed``) on one test set and input."""

    variant: str
    seed: int
    test_set: str
    evaluated_on: str
    map_micro: float
    map_macro: float
    train_seconds: float


@dataclass
class ClassificationData:
    """The cached S1+S2 datamodule of a comparison, its cloud-heavy twin and split sizes."""

    datamodule: Any
    cloudy: Any
    sizes: dict[str, int]


def cloudy_test_datamodule(dm: Any, splits: Sequence[str] = ("val", "test")) -> Any:
    """A copy of a BigEarthNet-v2 datamodule whose test split is every cloudy patch of
    ``splits`` (never the training split): the patches the dataset flags
    ``contains_cloud_or_shadow`` (reBEN keeps them in its second metadata file)."""
    import numpy as np
    from torch.utils.data import ConcatDataset, Subset

    from rsfuse.data.datamodules import BigEarthNetDataModule, InMemoryCache

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
        idx = [int(i) for i in np.flatnonzero(ds.cloudy_flags)]
        if idx:
            parts.append(Subset(ds, idx))
    if not parts:
        raise ConfigError("the dataset has no cloudy patch for the cloud-heavy split")
    out.datasets["test"] = InMemoryCache(ConcatDataset(parts)).preload(desc="reading cloudy")
    return out


def classification_data(
    root: str | Path, batch_size: int, train_cloudy: bool, cloudy_splits: Sequence[str]
) -> ClassificationData:
    """Read a BigEarthNet-v2 dataset once for a comparison.

    Training reads the train split (with its cloudy patches when ``train_cloudy``); ``test``
    is always the clear test split; the twin's ``test`` is every cloudy patch of
    ``cloudy_splits`` (:func:`cloudy_test_datamodule`).
    """
    from rsfuse.data.datamodules import BigEarthNetDataModule, InMemoryCache

    dm = BigEarthNetDataModule(
        str(root),
        version="v2",
        modalities=("s1", "s2"),
        batch_size=batch_size,
        cache=True,
        include_cloudy=train_cloudy,
    )
    dm.setup("fit")
    if train_cloudy:  # score the clear test split on clear patches only
        clear = BigEarthNetDataModule(str(root), version="v2", batch_size=batch_size)
        dm.datasets["test"] = InMemoryCache(
            clear.dataset_class(clear.root, split="test", **clear.dataset_kwargs)
        ).preload(desc="reading test")
    dm.setup("test")
    dm_cloudy = cloudy_test_datamodule(dm, cloudy_splits)
    sizes = {s: len(dm.datasets[s]) for s in ("train", "val", "test")}
    sizes["cloudy"] = len(dm_cloudy.datasets["test"])
    return ClassificationData(dm, dm_cloudy, sizes)


def train_and_score(
    name: str,
    configs: Sequence[str],
    overrides: Sequence[str],
    seed: int,
    data: ClassificationData,
    out: Path,
    tests: Mapping[str, Any] | None = None,
    drop_evals: bool = True,
) -> list[ScoreRow]:
    """Train the run of ``configs`` + ``overrides`` with ``seed`` on ``data`` and score it.

    The run trains on the cached datamodule without validation (every run is scored after
    its last epoch: no model selection), then is tested on the clear and the cloud-heavy
    split (or on ``tests``: test-set name → datamodule); a fused model also with S1 only
    and S2 only (unless ``drop_evals`` is False).
    """
    run_dir = out / "logs" / f"{name}_seed{seed}".replace(" | ", "_").replace(" ", "-")
    run = build_run(
        configs,
        [
            *overrides,
            f"--data.init_args.root={data.datamodule.root}",
            "--trainer.devices=1",
            "--trainer.limit_val_batches=0",
            "--trainer.num_sanity_val_steps=0",
        ],
        run_dir=run_dir,
        datamodule=data.datamodule,
        seed=seed,
    )
    task, trainer = run.model, run.trainer
    t0 = time.time()
    trainer.fit(task, datamodule=data.datamodule)
    seconds = time.time() - t0
    fused = len(task.modalities) > 1
    evals: list[tuple[str, list[str]]] = [("S1+S2" if fused else name, [])]
    if fused and drop_evals:
        evals += [("S1 only", ["s2"]), ("S2 only", ["s1"])]
    rows = []
    sets = tests if tests is not None else {"clear": data.datamodule, "cloudy": data.cloudy}
    for test_set, datamodule in sets.items():
        for on, drop in evals:
            task.test_drop = drop
            m = trainer.test(task, datamodule=datamodule, verbose=False)[0]
            rows.append(
                ScoreRow(
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


def robust_datamodule(base: Any, settings: Mapping[str, float], modalities: Sequence[str]) -> Any:
    """A copy of a cached datamodule (with a validity rule) for one run: its
    ``sensor_drop`` (only for a model of both sensors) and ``cloud_augmentation`` (only for
    a model that reads S2) from ``settings``; the cached splits are shared."""
    import copy

    dm = copy.copy(base)
    dm.datasets = dict(base.datasets)
    dm.augmentation = copy.deepcopy(base.augmentation)
    drop = float(settings.get("sensor_drop", 0.0)) if len(modalities) == 2 else 0.0
    clouds = float(settings.get("cloud_augmentation", 0.0)) if "s2" in modalities else 0.0
    v = base.validity
    dm.set_robustness(v.source, v.max_cloud_fraction, drop, 0.5, clouds, "L2A")
    return dm


def summarise_scores(rows: Sequence[ScoreRow]) -> list[dict[str, Any]]:
    """Mean ± std over seeds per (variant, test set, evaluated on) of micro/macro mAP and the
    training time."""
    flat = [{**asdict(r), "mAP_micro": r.map_micro, "mAP_macro": r.map_macro} for r in rows]
    return summarise(
        flat, ("variant", "test_set", "evaluated_on"), ("mAP_micro", "mAP_macro", "train_seconds")
    )


# ============================================================================ DINO evaluation
def fraction_datamodule(dm: Any, fraction: float, seed: int, augment: bool = True) -> Any:
    """A copy of a cached datamodule whose train split is a label fraction of ``dm``'s.

    The subset is drawn without replacement (:func:`rsfuse.data.subsets.label_fraction_subset`)
    from ``dm.datasets["train"]``; val / test are shared (no re-reading). ``augment=False``
    drops the training augmentation (linear probes on cached features).
    """
    import copy

    from rsfuse.data.subsets import label_fraction_subset

    out = copy.copy(dm)
    out.datasets = dict(dm.datasets)
    out.datasets["train"] = label_fraction_subset(dm.datasets["train"], fraction, seed)
    out.train_fraction, out.fraction_seed = fraction, seed
    if not augment:
        out.augmentation = None
    return out


def run_overrides(dm: Any, epochs: int | None = None, steps: int | None = None) -> list[str]:
    """Overrides of a run on a cached BigEarthNet datamodule: its root and normalisation,
    one device, no validation, and the length in epochs or optimiser steps."""
    over = dotted(
        data__init_args__root=str(dm.root),
        data__init_args__normalization=dm.normalize.mode,
        trainer__devices=1,
        trainer__limit_val_batches=0,
        trainer__num_sanity_val_steps=0,
    )
    if epochs is not None:
        over.append(f"--trainer.max_epochs={epochs}")
    if steps is not None:
        over += [f"--trainer.max_steps={steps}", "--trainer.max_epochs=-1"]
    return over


def random_vit(modalities: Sequence[str], configs: Sequence[str], path: Path, seed: int) -> Path:
    """Export the randomly initialised evaluation ViT of ``configs`` (the random-init
    baseline of a linear probe; reused when ``path`` exists)."""
    import torch

    from rsfuse.inputs import InputSpec
    from rsfuse.models.checkpoints import export_encoder
    from rsfuse.models.vit_small import build_vit, vit_export_config

    if path.is_file():
        return path
    kwargs = load_config(*configs)["model"]["init_args"]["backbone_kwargs"]
    channels = InputSpec.create(modalities).channels
    torch.manual_seed(seed)
    vit = build_vit(len(channels), kwargs)
    return export_encoder(vit, path, vit_export_config(vit, channels, modalities))


def dino_evaluation(
    protocol: str,
    dm: Any,
    configs: Sequence[str],
    seed: int,
    modalities: Sequence[str],
    drop: Sequence[str],
    encoders: dict[str, str] | None,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    lr: float,
    batch_size: int,
) -> dict[str, float]:
    """One run of DINO's evaluation protocols on a cached datamodule, scored on the whole
    test split (micro / macro mAP).

    Args:
        protocol: ``probe`` (linear probe on the frozen encoders' cached features, SGD;
            ``configs`` = ``dino_mm/eval/linear_probe`` …), ``finetune`` (encoders trained
            end to end, AdamW; ``dino_mm/eval/finetune`` …) or ``scratch`` (the same
            architecture from random weights).
        dm: a set-up datamodule with S1 and S2.
        configs: packaged configs of the evaluation.
        seed: training seed.
        modalities: sensors the model sees.
        drop: sensors zeroed and flagged absent in every split (the input case).
        encoders: ``encoder_checkpoints`` (``s1s2``: early fusion; ``s1`` + ``s2``: one
            encoder per sensor, features concatenated); ``None`` with ``scratch``.
        epochs: length in epochs (probes), or
        steps: length in optimiser steps (fine-tune / scratch).
        lr: learning rate.
        batch_size: batch size.
    """
    import copy

    over = dotted(
        model__init_args__modalities=list(modalities),
        model__init_args__input_drop=list(drop),
        model__init_args__lr=lr,
        data__init_args__modalities=["s1", "s2"],
        data__init_args__batch_size=batch_size,
    ) + run_overrides(dm, epochs=epochs, steps=steps)
    dm = copy.copy(dm)
    dm.batch_size = batch_size
    if protocol == "probe":
        over += dotted(
            model__init_args__encoder_checkpoints=encoders,
            model__init_args__fusion="concat" if encoders and len(encoders) > 1 else "early",
            model__init_args__cache_features=True,
        )
        dm.augmentation = None
    else:
        over += dotted(
            model__init_args__mode="finetune" if encoders else "scratch",
            model__init_args__encoder_checkpoints=encoders,
            model__init_args__warmup_epochs=0.0,
        )
    run = build_run(configs, over, datamodule=dm, seed=seed)
    run.trainer.fit(run.model, datamodule=dm)
    m = run.trainer.test(run.model, datamodule=dm, verbose=False)[0]
    return {"mAP_micro": float(m["test/mAP_micro"]), "mAP_macro": float(m["test/mAP_macro"])}


# ============================================================================ segmentation
METRICS = ("OA", "AA", "mIoU", "mF1")
MODES = ("frozen", "finetune")
MODE_TITLES = {"frozen": "Frozen", "finetune": "Fine-tuned"}
RANDOM = "random"
SYNTHETIC = "synthetic-supervised"


@dataclass(frozen=True)
class Setting:
    """One downstream setting of §IV-A."""

    config: str  # packaged config segmentation/<config>_{frozen,finetune}
    dataset: str  # SegmentationDataModule dataset
    data: str  # "dfc2020" or "noldo-s12": which data root
    title: str


SETTINGS: dict[str, Setting] = {
    "dfc2020": Setting("dfc2020_pspnet", "dfc2020", "dfc2020", "DFC2020, PSPNet (Table II)"),
    "dw": Setting(
        "dw_deeplabv3plus", "ssl4eo-s12-dw", "noldo-s12", "SSL4EO-S12@DW, DeepLabV3+ (Table III)"
    ),
    "osm": Setting("osm_fpn", "ssl4eo-s12-osm", "noldo-s12", "SSL4EO-S12@OSM, FPN (Table IV)"),
    "dfc2020-vit": Setting(
        "dfc2020_vit_upernet", "dfc2020", "dfc2020", "DFC2020, UPerNet on a ViT (§IV-A)"
    ),
}
DEFAULT_SETTINGS = ("dfc2020", "dw", "osm")
MODALITIES = {"s2": ["s2"], "s1": ["s1"], "s1s2": ["s1", "s2"]}


def add_segmentation_data_arguments(p: argparse.ArgumentParser) -> None:
    """The synthetic segmentation world's sizes (DFC2020, NoLDO-S12 and its downstream
    tiles) and the patch size of given data."""
    p.add_argument(
        "--patch-size",
        type=int,
        default=48,
        help="side of synthesised patches (multiple of 6; default 48)",
    )
    p.add_argument(
        "--data-patch-size",
        nargs="+",
        default=[],
        metavar="KIND=PX",
        help="patch side of given data, e.g. dfc2020=32 noldo-s12=48 (default: published)",
    )
    p.add_argument("--n-dfc2020", type=int, default=64, help="synthetic DFC2020 patches")
    p.add_argument("--n-noldo", type=int, default=64, help="synthetic NoLDO-S12 locations")
    p.add_argument(
        "--n-downstream", type=int, default=48, help="synthetic SSL4EO-S12@DW/@OSM tiles"
    )


def split_list(values: Sequence[str]) -> list[str]:
    """``["a,b", "c"]`` → ``["a", "b", "c"]`` (lists may be given comma- or space-separated)."""
    return [v for item in values for v in item.split(",") if v]


@dataclass
class SegRun:
    """One trained and tested segmentation model."""

    setting: str
    encoder: str
    mode: str
    seed: int
    OA: float
    AA: float
    mIoU: float  # noqa: N815 - the paper's metric names
    mF1: float  # noqa: N815
    train_seconds: float
    iou: dict[str, float] = field(default_factory=dict)


def setting_configs(setting: Setting, mode: str, tiny: bool) -> list[str]:
    """Packaged configs of a setting in ``mode`` (and its tiny CPU override if asked)."""
    names = [f"segmentation/{setting.config}_{mode}"]
    if tiny:
        vit = "vit" in setting.config
        names.append("segmentation/overrides/" + ("tiny_cpu_vit" if vit else "tiny_cpu"))
    return names


def segmentation_datamodule(
    configs: Sequence[str],
    root: Path,
    modalities: Sequence[str],
    batch_size: int,
    patch_size: int | None,
    dataset: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """The configs' datamodule on ``root``, in memory, for one process (CPU runs);
    ``extra``: further ``init_args`` (e.g. ``clouds``, ``sensor_drop``)."""
    from lightning.pytorch.cli import instantiate_class

    data = load_config(*configs)["data"]
    init = dict(data["init_args"])
    init.update(root=str(root), modalities=list(modalities), batch_size=batch_size, cache=True)
    init["num_workers"] = 0
    if dataset is not None:
        init["dataset"] = dataset
    if patch_size is not None:
        init["patch_size"] = patch_size
    init.update(extra or {})
    dm = instantiate_class((), {"class_path": data["class_path"], "init_args": init})
    dm.setup("fit")
    dm.setup("test")
    return dm


def parse_patch_sizes(items: Sequence[str]) -> dict[str, int]:
    """``["dfc2020=32", "noldo-s12=48"]`` → ``{"dfc2020": 32, "noldo-s12": 48}``.

    Raises:
        ConfigError: an item that is not ``KIND=PX`` with a known kind.
    """
    sizes = {}
    for item in split_list(items):
        kind, _, px = item.partition("=")
        if kind not in ("dfc2020", "noldo-s12") or not px.isdigit():
            raise ConfigError(
                f"bad --data-patch-size {item!r}; expected dfc2020=PX or noldo-s12=PX",
                key="data-patch-size",
            )
        sizes[kind] = int(px)
    return sizes


def segmentation_roots(
    args: Any, out: Path, needed: set[str]
) -> tuple[dict[str, Path], dict[str, int | None]]:
    """Roots of the ``dfc2020`` and ``noldo-s12`` data (synthesised into ``out/data`` when no
    root is given) and the patch size to read each at (None: the dataset's own)."""
    roots: dict[str, Path] = {}
    given_sizes = parse_patch_sizes(args.data_patch_size)
    patches: dict[str, int | None] = {}
    given = {"dfc2020": args.dfc2020_root, "noldo-s12": args.noldo_root}
    for kind in sorted(needed):
        patches[kind] = given_sizes.get(kind)
        if given[kind] is not None:
            roots[kind] = Path(given[kind])
        elif args.data is not None:
            roots[kind] = Path(args.data) / kind
        else:
            patches[kind] = args.patch_size
            kw: dict[str, Any] = {"patch_size": args.patch_size}
            n = args.n_dfc2020
            if kind == "noldo-s12":
                n, kw["n_downstream"] = args.n_noldo, args.n_downstream
            roots[kind] = ensure_synthetic(
                kind, out / "data" / kind, n, args.world_seed, args.workers, **kw
            )
        if not roots[kind].is_dir():
            raise ConfigError(f"data root {roots[kind]} not found", key="data")
    return roots, patches


def transfer_run(
    setting: str,
    configs: Sequence[str],
    encoder: str,
    weights: tuple[str | None, str],
    mode: str,
    seed: int,
    dm: Any,
    modalities: Sequence[str],
    epochs: int,
    out: Path,
    figures: bool,
) -> SegRun:
    """Train one segmentation model (frozen or fine-tuned encoder) on ``dm`` and score it on
    the test split."""
    run = build_run(
        configs,
        dotted(
            model__init_args__modalities=list(modalities),
            model__init_args__encoder_checkpoint=weights[0],
            model__init_args__checkpoint_prefix=weights[1],
            model__init_args__freeze_encoder=mode == "frozen",
            model__init_args__class_names=list(dm.classes),
            model__init_args__num_classes=dm.num_classes,
            model__init_args__plot_dir=str(out / "figures" / setting / f"{encoder}_{mode}"),
            trainer__max_epochs=epochs,
            trainer__devices=1,
            trainer__num_sanity_val_steps=0,
            trainer__limit_val_batches=0,  # no model selection: scored after the last epoch
            trainer__log_every_n_steps=1,
            data__init_args__root=str(dm.root),
        )
        + ([] if figures else ["--model.init_args.plot_samples=0"]),
        run_dir=out / "logs" / f"{setting}_{encoder}_{mode}_seed{seed}",
        datamodule=dm,
        seed=seed,
    )
    task, trainer = run.model, run.trainer
    t0 = time.time()
    trainer.fit(task, datamodule=dm)
    seconds = time.time() - t0
    trainer.test(task, datamodule=dm, verbose=False)
    m = task.last_test_metrics
    assert m is not None
    return SegRun(
        setting,
        encoder,
        mode,
        seed,
        *(float(m[k]) for k in METRICS),
        seconds,
        iou={k: float(v) for k, v in m["IoU"].items()},
    )


def summarise_runs(runs: Sequence[SegRun]) -> list[dict[str, Any]]:
    """Mean ± std over seeds (sample std, n − 1) per (setting, encoder, mode)."""
    return summarise(
        [asdict(r) for r in runs], ("setting", "encoder", "mode"), (*METRICS, "train_seconds")
    )


def transfer_claims(runs: Sequence[SegRun], pretrained: Sequence[str]) -> list[Verdict]:
    """CromSS Tables II–IV: an encoder pretrained on noisy labels transfers better than a
    random one — each ``pretrained`` encoder against random init (same input sensor), per
    setting and mode, mIoU per seed on the test split."""
    from rsfuse.experiments.claims import CROMSS, Claim, judge, per_seed

    flat = [asdict(r) for r in runs]
    out = []
    for key, setting in SETTINGS.items():
        for mode in MODES:
            for enc in pretrained:
                rand = f"{RANDOM} S1" if enc.endswith(" S1") else RANDOM
                b = per_seed(flat, "mIoU", setting=key, encoder=enc, mode=mode)
                w = per_seed(flat, "mIoU", setting=key, encoder=rand, mode=mode)
                if not b and not w:
                    continue
                where = f"{setting.title.split(' (')[0]}, {MODE_TITLES[mode].lower()}"
                c = Claim(CROMSS, where, enc, rand, metric="mIoU",
                          note="one pretraining run; the seeds vary the transfer")  # fmt: skip
                out.append(judge(c, b, w))
    return out


def markdown_tables(summary: list[dict[str, Any]], encoders: list[str]) -> str:
    """One Table II–IV style table per setting: encoder rows, Frozen | Fine-tuned columns of
    OA, AA, mIoU, mF1 (%, mean ± std over seeds)."""
    idx = {(s["setting"], s["encoder"], s["mode"]): s for s in summary}
    blocks = []
    for key, setting in SETTINGS.items():
        rows = [e for e in encoders if any((key, e, m) in idx for m in MODES)]
        if not rows:
            continue
        head = "| encoder | " + " | ".join(f"{MODE_TITLES[m]} {k}" for m in MODES for k in METRICS)
        lines = [f"### {setting.title}", "", head + " | seeds |", "|---" * 10 + "|"]
        for e in rows:
            cells, seeds = [], 0
            for m in MODES:
                s = idx.get((key, e, m))
                seeds = max(seeds, s["seeds"] if s else 0)
                for k in METRICS:
                    cells.append(cell(s, k, digits=2))
            lines.append(f"| {e} | " + " | ".join(cells) + f" | {seeds} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def plot_transfer(summary: list[dict[str, Any]], encoders: list[str], path: Path) -> None:
    """Bars of mIoU (mean ± std) per setting: one group per encoder, frozen vs fine-tuned."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    settings = [k for k in SETTINGS if any(s["setting"] == k for s in summary)]
    modes = [m for m in MODES if any(s["mode"] == m for s in summary)]  # modes that ran
    width = 0.8 / max(1, len(modes))
    fig, axes = plt.subplots(
        1, len(settings), figsize=(0.7 * len(encoders) * len(settings) + 2.5 * len(settings), 4.2),
        squeeze=False, layout="constrained",
    )  # fmt: skip
    for ax, key in zip(axes[0], settings):
        idx = {(s["encoder"], s["mode"]): s for s in summary if s["setting"] == key}
        x = np.arange(len(encoders))
        for i, m in enumerate(modes):
            vals = [idx.get((e, m)) for e in encoders]
            mean = [100 * v["mIoU_mean"] if v else np.nan for v in vals]
            std = [100 * v["mIoU_std"] if v and not math.isnan(v["mIoU_std"]) else 0 for v in vals]
            off = (i - (len(modes) - 1) / 2) * width
            ax.bar(x + off, mean, width, yerr=std, capsize=3, label=MODE_TITLES[m])
        ax.set_xticks(x)
        ax.set_xticklabels(encoders, rotation=25, ha="right", fontsize=8)
        ax.set_title(SETTINGS[key].title, fontsize=9)
        ax.set_ylabel("test mIoU (%), mean ± std over seeds")
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    fig.legend(
        handles=axes[0][0].get_legend_handles_labels()[0], loc="outside upper center",
        ncol=len(modes), fontsize=8, frameon=False,
    )  # fmt: skip
    save_figure(fig, path)


def pretrain_accuracy(model: Any, dm: Any) -> dict[str, float]:
    """OA of each modality's prediction on the pretraining split against the clean and the
    noisy labels, and the OA of the noisy labels (Fig. 8 a/b). With sample selection also
    the precision of the final selection masks: ``{m}_selection_precision`` (weighted
    fraction of right noisy labels, Σ w·[y = y_clean] / Σ w) and
    ``{m}_hard_selection_precision`` (among pixels of weight 1)."""
    import torch

    from rsfuse.data.sample import collate

    model.eval()
    ds = dm.datasets["train"]
    stats: dict[str, list[float]] = {}

    def add(key: str, right: torch.Tensor, valid: torch.Tensor) -> None:
        s = stats.setdefault(key, [0.0, 0.0])
        s[0] += float((right & valid).sum())
        s[1] += float(valid.sum())

    with torch.no_grad():
        for i in range(0, len(ds), 8):
            batch = dm.normalize(collate([ds[j] for j in range(i, min(i + 8, len(ds)))]))
            batch = {k: v.to(model.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            noisy = batch["mask"]
            clean = batch.get("mask_clean", noisy)  # real data: no clean labels
            valid = (noisy != 255) & (clean != 255)
            if "mask_clean" in batch:
                add("noisy_labels", noisy == clean, valid)
            logits = model(batch)
            if model.selection is not None and "mask_clean" in batch:
                sel = model.selection(
                    logits["s1"], logits["s2"], noisy.masked_fill(~valid, 255),
                    model.current_epoch,
                )  # fmt: skip
                right = ((noisy == clean) & valid).float()
                for m, w in zip(model.modalities, sel["label_masks"]):
                    s = stats.setdefault(f"{m}_selection_precision", [0.0, 0.0])
                    s[0] += float((w * right).sum())
                    s[1] += float(w.sum())
                    add(f"{m}_hard_selection_precision", right.bool(), w >= 1.0)
            for m, z in logits.items():
                pred = z.argmax(1)
                if "mask_clean" in batch:
                    add(f"{m}_vs_clean", pred == clean, valid)
                add(f"{m}_vs_noisy", pred == noisy, valid)
    return {k: v[0] / max(v[1], 1.0) for k, v in stats.items()}
