"""What every synthetic layout writer shares: argument checks, the world of a seed, a
progress bar and the process pool that renders locations in parallel.

The writers (:mod:`~rsfuse.data.synthetic.bigearthnet`, :mod:`~rsfuse.data.synthetic.segmentation`,
:mod:`~rsfuse.data.synthetic.scene`) render locations in worker processes; each worker keeps
the :class:`~rsfuse.data.synthetic.world.SyntheticWorld` of a seed in :func:`world` (its
class fields are built once per process).
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from functools import lru_cache
from multiprocessing.pool import Pool
from typing import Any

import numpy as np

from rsfuse.data.synthetic.world import SyntheticWorld
from rsfuse.errors import ConfigError


def is_int(v: Any) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def check_counts(n: Any, seed: Any, workers: Any, what: str = "number of locations") -> None:
    """Raise :class:`~rsfuse.errors.ConfigError` (keys ``n``, ``seed``, ``workers``) unless
    ``n >= 1``, ``seed >= 0`` and ``workers >= 1`` are integers; ``what`` names ``n`` in
    the message."""
    if not is_int(n) or n < 1:
        raise ConfigError(f"{what} must be an integer >= 1, got {n!r}", key="n")
    if not is_int(seed) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}", key="seed")
    if not is_int(workers) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}", key="workers")


@lru_cache(maxsize=4)
def world(seed: int) -> SyntheticWorld:
    """The world of ``seed``, built once per process."""
    return SyntheticWorld(seed)


def progress_bar(total: int, enabled: bool, desc: str) -> Any:
    """A tqdm bar over ``total`` patches, or a silent stand-in when ``enabled`` is false."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with lightning
        enabled = False
    if not enabled:

        class _Null:
            def update(self, k: int) -> None:
                pass

            def close(self) -> None:
                pass

        return _Null()
    return tqdm(total=total, desc=desc, unit="patch", dynamic_ncols=True)


def process_pool(
    workers: int,
    n_tasks: int,
    initializer: Callable[..., None] | None = None,
    initargs: Sequence[Any] = (),
) -> Pool:
    """A pool of ``min(workers, n_tasks)`` processes.

    Fork where available: it needs no ``if __name__ == "__main__"`` guard in the caller's
    script, and the children only use numpy, scipy and rasterio, never the parent's threads.
    """
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else "spawn")
    return ctx.Pool(min(workers, n_tasks), initializer, tuple(initargs))


def run_parallel(
    fn: Callable[..., Any], args: list[tuple], workers: int, progress: bool, desc: str
) -> list[Any]:
    """``[fn(*a) for a in args]`` in ``workers`` processes, results in order."""
    bar = progress_bar(len(args), progress, desc)
    out: list[Any] = []
    try:
        if workers == 1 or len(args) < 2:
            for a in args:
                out.append(fn(*a))
                bar.update(1)
        else:
            with process_pool(workers, len(args)) as pool:
                for r in pool.imap(_star, [(fn, a) for a in args], chunksize=4):
                    out.append(r)
                    bar.update(1)
    finally:
        bar.close()
    return out


def _star(task: tuple[Callable[..., Any], tuple]) -> Any:
    fn, a = task
    return fn(*a)


__all__ = ["check_counts", "is_int", "process_pool", "progress_bar", "run_parallel", "world"]
