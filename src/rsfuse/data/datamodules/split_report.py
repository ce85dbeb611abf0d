"""The one line a datamodule prints at setup: how many samples each split holds.

``[rsfuse] samples: train 80, val 20, test 17 (BigEarthNetV2, after filtering (excluded:
snow, cloud/shadow))`` — so a user sees at once that, say, 117 of 200 synthesised
locations are used (the others being cloudy, or in no split).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["report_splits", "split_sizes_line"]


def _source(ds: Any) -> Any:
    """The reader under wrappers (``Subset``, ``InMemoryCache``, label priors …)."""
    seen = 0
    while hasattr(ds, "dataset") and seen < 8:
        ds = ds.dataset
        seen += 1
    return ds


def split_sizes_line(datasets: Mapping[str, Any], splits: Sequence[str]) -> str:
    """``samples: train N, val N, test N (Reader, notes)`` for the splits that are loaded.

    Args:
        datasets: split name → dataset (``len`` gives its samples).
        splits: the splits to report, in order; splits not in ``datasets`` are left out.
    """
    parts = [f"{s} {len(datasets[s])}" for s in splits if s in datasets]  # type: ignore[arg-type]
    readers: list[str] = []
    notes: list[str] = []
    for s in splits:
        if s not in datasets:
            continue
        src = _source(datasets[s])
        name = type(src).__name__
        if name not in readers:
            readers.append(name)
        note = getattr(src, "_filter_note", None)
        text = note().strip() if callable(note) else ""
        if text and text not in notes:
            notes.append(text)
    detail = ", ".join(readers + notes)
    return "samples: " + ", ".join(parts) + (f" ({detail})" if detail else "")


def report_splits(dm: Any, splits: Sequence[str]) -> None:
    """Print :func:`split_sizes_line` once per set of loaded splits (global rank 0 only)."""
    trainer = getattr(dm, "trainer", None)
    if trainer is not None and not getattr(trainer, "is_global_zero", True):
        return
    loaded = tuple(s for s in splits if s in dm.datasets)
    if not loaded or getattr(dm, "_reported_splits", None) == loaded:
        return
    dm._reported_splits = loaded
    print("[rsfuse] " + split_sizes_line(dm.datasets, loaded))
