"""Evaluation protocols shared by several experiments.

**Multi-label classification on clear and clouded patches** (the MGSViT experiments):
:func:`classification_data` reads a BigEarthNet-v2 dataset once into memory (the train split
with or without its cloudy patches, the clear test split, and a cloud-heavy test split of
every cloudy patch of chosen splits); :func:`train_and_score` trains one run built from
packaged configs and scores it on both test splits — for a fused model also with S2 marked
absent (``S1 only``) and S1 marked absent (``S2 only``). Rows are :class:`ScoreRow`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rsfuse.errors import ConfigError
from rsfuse.experiments.runner import build_run, summarise

__all__ = [
    "ClassificationData",
    "ScoreRow",
    "classification_data",
    "cloudy_test_datamodule",
    "summarise_scores",
    "train_and_score",
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
) -> list[ScoreRow]:
    """Train the run of ``configs`` + ``overrides`` with ``seed`` on ``data`` and score it.

    The run trains on the cached datamodule without validation (every run is scored after
    its last epoch: no model selection), then is tested on the clear and the cloud-heavy
    split; a fused model also with S1 only and S2 only.
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
    if fused:
        evals += [("S1 only", ["s2"]), ("S2 only", ["s1"])]
    rows = []
    for test_set, datamodule in (("clear", data.datamodule), ("cloudy", data.cloudy)):
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


def summarise_scores(rows: Sequence[ScoreRow]) -> list[dict[str, Any]]:
    """Mean ± std over seeds per (variant, test set, evaluated on) of micro/macro mAP and the
    training time."""
    flat = [{**asdict(r), "mAP_micro": r.map_micro, "mAP_macro": r.map_macro} for r in rows]
    return summarise(
        flat, ("variant", "test_set", "evaluated_on"), ("mAP_micro", "mAP_macro", "train_seconds")
    )
