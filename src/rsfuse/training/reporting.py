"""What a run tells its user and its loggers: per-class metrics, figures and their paths.

* :func:`print_per_class` prints a per-class metric (AP, IoU …) as an aligned table;
* :func:`log_per_class` logs it through ``LightningModule.log`` (one key per class, e.g.
  ``test/AP/Arable land``), so it lands in ``metrics.csv`` of a ``CSVLogger`` and in every
  other logger;
* :func:`report_figures` prints where figures were written and sends them to the run's
  loggers: TensorBoard (``SummaryWriter.add_image``), loggers with a ``log_image`` method
  (Weights & Biases, Neptune …) and MLflow (``log_artifact``); a logger of another kind
  (``CSVLogger``) only gets the printed paths.

Printing happens on global rank 0 only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["log_per_class", "print_per_class", "report_figures", "send_figure"]


def _rank_zero(module: Any) -> bool:
    trainer = getattr(module, "_trainer", None)
    return trainer is None or bool(getattr(trainer, "is_global_zero", True))


def print_per_class(title: str, names: Sequence[str], values: Sequence[float]) -> str:
    """Print ``title`` then one ``name  value`` line per class (NaN as ``n/a``); returns the
    text printed."""
    width = max((len(n) for n in names), default=0)
    lines = [title]
    for n, v in zip(names, values):
        shown = "n/a (absent)" if v is None or math.isnan(float(v)) else f"{float(v):.4f}"
        lines.append(f"  {n:<{width}}  {shown}")
    text = "\n".join(lines)
    print(text)
    return text


def log_per_class(module: Any, prefix: str, names: Sequence[str], values: Sequence[float]) -> None:
    """``module.log(f"{prefix}/{name}", value)`` for every class with a finite value."""
    for n, v in zip(names, values):
        if v is not None and not math.isnan(float(v)):
            module.log(f"{prefix}/{n}", float(v))


def _read_png(path: Path) -> Any:
    """[H, W, 3] uint8 of a PNG (alpha dropped)."""
    import numpy as np
    from matplotlib.image import imread

    img = imread(str(path))
    if img.dtype != np.uint8:
        img = (np.clip(img, 0.0, 1.0) * 255).round().astype(np.uint8)
    return img[..., :3]


def send_figure(logger: Any, tag: str, path: Path, step: int) -> bool:
    """Send one PNG to one Lightning logger; returns whether that logger took it.

    TensorBoard-like loggers (``experiment.add_image``) get the image as [H, W, 3];
    loggers with ``log_image(key, images)`` (Weights & Biases, Neptune) the file path;
    MLflow (``experiment.log_artifact``) the file as an artifact of its run.
    """
    experiment = getattr(logger, "experiment", None)
    if experiment is not None and hasattr(experiment, "add_image"):
        experiment.add_image(tag, _read_png(path), global_step=step, dataformats="HWC")
        return True
    if hasattr(logger, "log_image"):
        logger.log_image(key=tag, images=[str(path)], step=step)
        return True
    run_id = getattr(logger, "run_id", None)
    if experiment is not None and hasattr(experiment, "log_artifact") and run_id is not None:
        experiment.log_artifact(run_id, str(path), artifact_path="figures")
        return True
    return False


def report_figures(module: Any, paths: Iterable[Path], what: str = "test figures") -> list[Path]:
    """Print where figures were written and send them to the module's loggers.

    Args:
        module: the LightningModule (its trainer's loggers and global step are used).
        paths: PNG files written.
        what: words for the printed line.

    Returns:
        The paths, as a list.
    """
    paths = [Path(p) for p in paths]
    if not paths or not _rank_zero(module):
        return paths
    print(f"[rsfuse] wrote {what}: " + ", ".join(str(p) for p in paths))
    trainer = getattr(module, "_trainer", None)
    loggers = list(getattr(trainer, "loggers", []) or []) if trainer is not None else []
    step = int(getattr(module, "global_step", 0))
    for logger in loggers:
        taken = [send_figure(logger, f"{what.split()[0]}/{p.stem}", p, step) for p in paths]
        if any(taken):
            print(f"[rsfuse] sent {sum(taken)} figure(s) to {type(logger).__name__}")
    return paths
