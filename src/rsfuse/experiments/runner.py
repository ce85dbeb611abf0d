"""What every experiment (and the demo) shares: data, runs, seeds, tables and figures.

* **Data**: :func:`ensure_synthetic` writes a synthetic dataset in a real layout once and
  reuses it while its parameters are unchanged (a stamp file beside it).
* **Runs**: :func:`build_run` (from :mod:`rsfuse.training.cli`) builds model, datamodule and
  Trainer from packaged YAML configs with the keys ``rsfuse fit`` accepts;
  :func:`dotted` turns Python values into its ``--key=value`` overrides.
* **Seeds and tables**: :func:`summarise` groups result rows and gives mean ± std over
  seeds; :func:`cell` formats them; :func:`write_csv` / :func:`write_json` /
  :func:`write_text` write atomically (an interrupted experiment keeps its last complete
  tables).
* **Figures**: :func:`save_figure` writes a matplotlib figure atomically and closes it.
* :func:`torch_threads` runs a block with a given number of CPU threads.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rsfuse.io.atomic import write_atomic
from rsfuse.training.cli import BuiltRun, build_run

__all__ = [
    "BuiltRun",
    "build_run",
    "cell",
    "dotted",
    "ensure_synthetic",
    "mean_std",
    "save_figure",
    "summarise",
    "torch_threads",
    "write_csv",
    "write_json",
    "write_text",
]


# ---------------------------------------------------------------------------- data
def ensure_synthetic(
    layout: str, root: str | Path, n: int, seed: int, workers: int = 2, **kwargs: Any
) -> Path:
    """Synthesise ``layout`` into ``root`` unless the same dataset is already there.

    The parameters are stamped in ``root/rsfuse-synth.json`` after a complete synthesis;
    a folder with the same stamp is reused as it is.

    Returns:
        ``root``.
    """
    from rsfuse.data.synthetic import synthesize

    root = Path(root)
    stamp = root / "rsfuse-synth.json"
    want = {"layout": layout, "n": n, "seed": seed, **kwargs}
    if stamp.is_file() and json.loads(stamp.read_text()) == want:
        print(f"[rsfuse] reusing the synthetic {layout} dataset in {root}")
        return root
    print(f"[rsfuse] synthesising {n} {layout}-layout locations into {root}")
    synthesize(layout, root, n=n, seed=seed, workers=workers, progress=True, **kwargs)
    write_atomic(stamp, json.dumps(want))
    return root


# ---------------------------------------------------------------------------- runs
def dotted(**values: Any) -> list[str]:
    """``--key=value`` overrides of :func:`build_run` from keyword arguments whose names use
    ``__`` for dots: ``dotted(model__init_args__lr=1e-3)`` → ``["--model.init_args.lr=0.001"]``.

    Values are written as JSON (lists, dicts, ``null``, ``true``), which the config parser
    reads like YAML.
    """
    out = []
    for key, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value)
        out.append(f"--{key.replace('__', '.')}={text}")
    return out


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (``None`` or 0: leave torch's choice),
    restoring the previous count afterwards. One thread is often fastest on a busy CPU."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------- tables
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value; NaN values ignored)."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return float("nan"), float("nan")
    mean = sum(vals) / len(vals)
    var = sum((v - mean) ** 2 for v in vals) / max(1, len(vals) - 1)
    return mean, math.sqrt(var)


def summarise(
    rows: Iterable[Mapping[str, Any]],
    keys: Sequence[str],
    metrics: Sequence[str],
    seed_key: str = "seed",
) -> list[dict[str, Any]]:
    """Mean ± std over seeds of ``metrics``, per group of equal ``keys``.

    Returns:
        One dict per group, in first-seen order: the ``keys``, ``seeds`` (how many rows),
        and ``<metric>_mean`` / ``<metric>_std`` for each metric.
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, rs in groups.items():
        s: dict[str, Any] = dict(zip(keys, key))
        s["seeds"] = len({r.get(seed_key, i) for i, r in enumerate(rs)})
        for m in metrics:
            s[f"{m}_mean"], s[f"{m}_std"] = mean_std([r[m] for r in rs if m in r])
        out.append(s)
    return out


def cell(
    summary: Mapping[str, Any] | None, metric: str, scale: float = 100.0, digits: int = 1
) -> str:
    """``"mean ± std"`` of a :func:`summarise` row (``"-"`` when absent; no ± for one seed)."""
    if summary is None or f"{metric}_mean" not in summary:
        return "-"
    mean, std = summary[f"{metric}_mean"], summary[f"{metric}_std"]
    if math.isnan(mean):
        return "-"
    text = f"{scale * mean:.{digits}f}"
    return text if summary.get("seeds", 1) < 2 else f"{text} ± {scale * std:.{digits}f}"


# ---------------------------------------------------------------------------- files
def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Rows (dicts) as CSV, columns in first-seen order; written atomically."""
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields or ["empty"])
    w.writeheader()
    w.writerows(rows)
    return write_atomic(path, buf.getvalue())


def write_json(path: str | Path, data: Any) -> Path:
    """JSON (indented), written atomically."""
    return write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def write_text(path: str | Path, text: str) -> Path:
    """Text, written atomically."""
    return write_atomic(path, text)


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write a matplotlib figure (format from the suffix) atomically and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return write_atomic(path, buf.getvalue())
