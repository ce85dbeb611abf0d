"""Outputs people can find: sample counts per split, per-class metrics printed and logged,
figure paths printed and figures sent to the run's loggers."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from rsfuse.data.datamodules.split_report import split_sizes_line
from rsfuse.training.cli import build_run
from rsfuse.training.reporting import print_per_class, report_figures, send_figure

CLASSIFY = ["classification/ben_v2_s1s2_early_fusion", "overrides/tiny_cpu"]


def test_a_classification_test_prints_and_logs_per_class_ap_and_the_split_sizes(
    ben_v2_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = build_run(
        CLASSIFY,
        [f"--data.init_args.root={ben_v2_root}", "--trainer.max_epochs=1",
         "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1"],
        run_dir=tmp_path / "run", seed=0,
    )  # fmt: skip
    run.trainer.fit(run.model, datamodule=run.datamodule)
    run.trainer.test(run.model, datamodule=run.datamodule, verbose=False)
    out = capsys.readouterr().out
    dm = run.datamodule
    sizes = {s: len(dm.datasets[s]) for s in ("train", "val", "test")}
    assert f"[rsfuse] samples: train {sizes['train']}, val {sizes['val']}" in out
    assert f"val {sizes['val']}, test {sizes['test']} (BigEarthNetV2" in out
    assert "cloud/shadow" in out  # the filter that left samples out is named
    assert "[rsfuse] test per-class average precision (AP):" in out
    ap = run.model.last_test_per_class_ap
    names = run.model.class_names
    finite = [i for i, v in enumerate(ap) if not np.isnan(v)]
    assert finite, "no class with a finite AP on the test split"
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    test_row = next(r for r in rows if r.get(f"test/AP/{names[finite[0]]}"))
    for i in finite:
        assert float(test_row[f"test/AP/{names[i]}"]) == pytest.approx(ap[i], abs=1e-6)
        assert f"{ap[i]:.4f}" in out


def test_split_line_names_the_reader_and_counts_only_loaded_splits() -> None:
    class Reader:
        def __init__(self, n: int) -> None:
            self.n = n

        def __len__(self) -> int:
            return self.n

        def _filter_note(self) -> str:
            return " after filtering (excluded: snow)"

    class Subset:  # a wrapper (torch Subset, InMemoryCache …): its own length counts
        def __init__(self, dataset: Reader, n: int) -> None:
            self.dataset, self.n = dataset, n

        def __len__(self) -> int:
            return self.n

    datasets: dict[str, Any] = {"train": Subset(Reader(100), 80), "test": Reader(17)}
    line = split_sizes_line(datasets, ("train", "val", "test"))
    assert line == "samples: train 80, test 17 (Reader, after filtering (excluded: snow))"


def test_per_class_table_marks_absent_classes() -> None:
    text = print_per_class("AP:", ["Water", "Long class name"], [0.5, float("nan")])
    assert text.splitlines() == [
        "AP:",
        "  Water            0.5000",
        "  Long class name  n/a (absent)",
    ]


class _TensorBoardLike:
    """The part of Lightning's TensorBoardLogger that figures use."""

    def __init__(self) -> None:
        self.images: list[tuple[str, tuple[int, ...], str, int]] = []
        self.experiment = self

    def add_image(self, tag: str, img: np.ndarray, global_step: int, dataformats: str) -> None:
        assert img.dtype == np.uint8
        self.images.append((tag, img.shape, dataformats, global_step))


class _LogImageLike:
    """Loggers with ``log_image`` (Weights & Biases)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def log_image(self, key: str, images: list[str], step: int) -> None:
        self.calls.append((key, images))


class _CSVLike:
    experiment = SimpleNamespace(log_metrics=lambda *a: None)


def _png(path: Path) -> Path:
    from rsfuse.plots.common import pyplot, save_figure

    fig, ax = pyplot().subplots(figsize=(1, 1))
    ax.plot([0, 1])
    return save_figure(fig, path, dpi=40)


def test_figures_reach_tensorboard_and_log_image_loggers_and_paths_are_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = _png(tmp_path / "samples.png")
    tb, wb, plain = _TensorBoardLike(), _LogImageLike(), _CSVLike()
    assert send_figure(tb, "test/samples", png, 7)
    assert tb.images[0][0] == "test/samples" and tb.images[0][1][2] == 3
    assert tb.images[0][2:] == ("HWC", 7)
    assert send_figure(wb, "test/samples", png, 7) and wb.calls == [("test/samples", [str(png)])]
    assert not send_figure(plain, "test/samples", png, 7)

    trainer = SimpleNamespace(is_global_zero=True, loggers=[tb, plain])
    module = SimpleNamespace(_trainer=trainer, global_step=3)
    report_figures(module, [png])
    out = capsys.readouterr().out
    assert f"[rsfuse] wrote test figures: {png}" in out
    assert "sent 1 figure(s) to _TensorBoardLike" in out
    assert len(tb.images) == 2
    # no logger (--trainer.logger=false): the path is still printed
    report_figures(SimpleNamespace(_trainer=SimpleNamespace(is_global_zero=True, loggers=[]),
                                   global_step=0), [png])  # fmt: skip
    assert str(png) in capsys.readouterr().out
