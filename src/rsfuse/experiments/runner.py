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
* **Command line**: :func:`experiment_parser` (with ``--out``, ``--world-seed``,
  ``--workers``, ``--threads``), :func:`add_profile_argument` (``--profile gpu``),
  :func:`add_bigearthnet_arguments`, :func:`add_training_arguments` and
  :func:`run_experiment`, so every ``rsfuse experiment``
  takes the same common options; :func:`torch_threads` runs a block with a given number of
  CPU threads.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rsfuse.io.atomic import write_atomic
from rsfuse.training.cli import BuiltRun, build_run

__all__ = [
    "BuiltRun",
    "add_bigearthnet_arguments",
    "add_profile_argument",
    "add_training_arguments",
    "build_run",
    "cell",
    "dotted",
    "ensure_synthetic",
    "experiment_parser",
    "mean_std",
    "run_experiment",
    "save_figure",
    "summarise",
    "torch_threads",
    "write_csv",
    "write_json",
    "write_text",
]


# ---------------------------------------------------------------------------- command line
def experiment_parser(
    name: str, description: str, epilog: str | None = None
) -> argparse.ArgumentParser:
    """The parser of ``rsfuse experiment NAME`` with the options every experiment has:
    ``--out`` (default ``rsfuse-NAME``), ``--world-seed`` and ``--workers`` of the synthetic
    world, and ``--threads``."""
    p = argparse.ArgumentParser(
        prog=f"rsfuse experiment {name}", description=description, epilog=epilog
    )
    p.add_argument("--out", type=Path, default=Path(f"rsfuse-{name}"), help="output folder")
    p.add_argument("--world-seed", type=int, default=0, help="seed of the synthetic world")
    p.add_argument("--workers", type=int, default=2, help="processes for data synthesis")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (default: torch's choice; 1 is often fastest on a busy CPU)",
    )
    return p


def add_profile_argument(
    p: argparse.ArgumentParser, gpu: Mapping[str, Any], tiny: str | None = None
) -> None:
    """``--profile cpu|gpu``: ``gpu`` puts ``gpu``'s values (option dests → values) in place
    of the CPU defaults — the full-size configs (bf16 on one GPU), a larger world and
    budget; options given on the command line still win (:func:`run_experiment`).

    With ``tiny`` (what ``--size tiny`` adds, for its help) also ``--size tiny|full``.
    """
    if tiny is not None:
        p.add_argument(
            "--size",
            choices=["tiny", "full"],
            default="tiny",
            help=f"tiny (default): {tiny} (CPU); full: the packaged configs as they are "
            "(the papers' sizes; GPU)",
        )
    shown = ", ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in gpu.items()
    )
    p.set_defaults(gpu_profile=dict(gpu))
    p.add_argument(
        "--profile",
        choices=["cpu", "gpu"],
        default="cpu",
        help="cpu (default): the sizes below, for 2 CPU cores; gpu: one GPU, bf16, full-size "
        f"models, a first estimate for about 8 minutes on an H100/H200, not yet timed on one "
        f"({shown})",
    )


def add_bigearthnet_arguments(p: argparse.ArgumentParser, n: int) -> None:
    """``--root`` of a BigEarthNet-v2 dataset, or ``--n`` locations of the synthetic world."""
    p.add_argument(
        "--root", type=Path, default=None, help="BigEarthNet-v2 root (default: synthesise one)"
    )
    p.add_argument("--n", type=int, default=n, help=f"synthetic locations (default {n})")


def add_training_arguments(
    p: argparse.ArgumentParser,
    seeds: Sequence[int],
    batch_size: int,
    epochs: int | None = None,
    epochs_help: str = "training epochs per run",
) -> None:
    """``--seeds``, ``--batch-size`` and (when given a default) ``--epochs``."""
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=list(seeds),
        help=f"training seeds (default {' '.join(map(str, seeds))})",
    )
    p.add_argument(
        "--batch-size", type=int, default=batch_size, help=f"batch size (default {batch_size})"
    )
    if epochs is not None:
        p.add_argument("--epochs", type=int, default=epochs, help=f"{epochs_help} ({epochs})")


def run_experiment(
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    run: Callable[[argparse.Namespace], Any],
) -> Any:
    """Parse ``argv`` (with ``--profile gpu``: again over the GPU profile's defaults), create
    ``--out``, keep Lightning's per-run banners quiet and call ``run(args)`` with
    ``--threads`` torch threads."""
    args = parser.parse_args(list(argv))
    if getattr(args, "profile", "cpu") == "gpu":  # again, over the GPU defaults
        parser.set_defaults(**args.gpu_profile)
        args = parser.parse_args(list(argv))
        print(f"[rsfuse] --profile gpu: {args.gpu_profile}")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with torch_threads(args.threads):
        return run(args)


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
