"""``rsfuse convert``: turn a dataset rsfuse reads into a fast store (:mod:`rsfuse.data.store`).

One pass over every split, ``--workers`` processes each writing whole shards, a progress
bar, and resumable: a shard is marked done only after its data are written, so a re-run
after a kill redoes only unfinished shards. The store's manifest is written last; a store
without it is refused by readers. ``--verify`` re-reads every sample from the source and
from the store and checks they are identical (``torch.equal``, labels and metadata too).

Example::

    rsfuse convert --dataset bigearthnet-v2 --root data/BigEarthNet-v2 --out data/ben-v2.store
    rsfuse convert --dataset bigearthnet-v2 --root data/BigEarthNet-v2 --out data/ben-v2.store \
        --verify
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import shutil
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from rsfuse.data import store as st
from rsfuse.data.bigearthnet import BigEarthNetBase, BigEarthNetV1, BigEarthNetV2
from rsfuse.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: ``--dataset`` name → (reader class, name of its normalisation statistics).
DATASETS: dict[str, type[BigEarthNetBase]] = {
    "bigearthnet-v1": BigEarthNetV1,
    "bigearthnet-v2": BigEarthNetV2,
}
SPLITS = ("train", "val", "test")


def _reader(dataset: str, root: str, split: str, resampling: str, **kw: Any) -> BigEarthNetBase:
    return DATASETS[dataset](
        root, split=split, modalities=("s1", "s2"), s2_bands="all", resampling=resampling, **kw
    )


def plan(dataset: str, root: str | Path, resampling: str = "bilinear") -> pd.DataFrame:
    """Every sample of every split of the source, in store order.

    Returns:
        One row per sample: ``id``, ``split``, ``pos`` (index in the split's reader with
        snowy and cloudy patches included), ``snow``, ``cloud``.

    Raises:
        ConfigError: unknown dataset.
        DataError: the source has no samples or an unreadable index.
    """
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}; expected one of {list(DATASETS)}")
    frames = []
    for split in SPLITS:
        try:
            full = _reader(
                dataset, str(root), split, resampling, include_snow=True, include_cloudy=True
            )
        except DataError as e:
            if "has no samples" in str(e):
                continue
            raise
        ids = full.sample_ids

        def kept(snow: bool, cloud: bool, split: str = split) -> set[str]:
            try:
                r = _reader(
                    dataset, str(root), split, resampling, include_snow=snow, include_cloudy=cloud
                )
            except DataError as e:
                if "has no samples" in str(e):
                    return set()
                raise
            return set(r.sample_ids)

        no_snow, no_cloud = kept(False, True), kept(True, False)
        frames.append(
            pd.DataFrame(
                {
                    "id": ids,
                    "split": split,
                    "pos": np.arange(len(ids), dtype=np.int64),
                    "snow": [i not in no_snow for i in ids],
                    "cloud": [i not in no_cloud for i in ids],
                }
            )
        )
    if not frames:
        raise DataError("the source has no samples in any split", path=root)
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- workers
_READERS: dict[tuple[str, ...], BigEarthNetBase] = {}


def _cached_reader(dataset: str, root: str, split: str, resampling: str) -> BigEarthNetBase:
    key = (dataset, root, split, resampling)
    if key not in _READERS:
        _READERS[key] = _reader(
            dataset, root, split, resampling, include_snow=True, include_cloudy=True
        )
    return _READERS[key]


def _convert_shard(task: tuple[str, str, str, str, int, int, list[tuple[str, int]]]) -> int:
    """Read the samples of shard ``k`` from the source and write the shard."""
    dataset, root, out, resampling, k, shard_size, rows = task
    n = len(rows)
    specs = st.bigearthnet_specs()
    arrays = {s.name: np.empty((n, *s.sample_shape), dtype=s.dtype) for s in specs}
    meta: list[dict[str, Any]] = []
    for j, (split, pos) in enumerate(rows):
        sample = _cached_reader(dataset, root, split, resampling)[pos]
        s2 = sample["s2"].numpy()
        u16 = s2.astype(np.uint16)
        if not np.array_equal(u16.astype(np.float32), s2):
            raise DataError(
                "S2 values are not integers in [0, 65535]; they cannot be stored losslessly "
                "as uint16",
                sample=sample["meta"]["id"],
            )
        arrays["s2"][j] = u16
        arrays["s1"][j] = sample["s1"].numpy()
        arrays["label"][j] = sample["label"].numpy().astype(np.uint8)
        m = sample["meta"]
        meta.append(
            {
                "s1_id": m["s1_id"],
                "s2_id": m["s2_id"],
                "crs": m["crs"],
                "transform": list(m["transform"]),
            }
        )
    st.write_shard(Path(out), k, shard_size, arrays)
    # per-sample metadata of the shard (read by finalize); written after the data
    st.write_json(Path(out) / st.DONE_DIR / f"meta-{k}.json", meta)
    return n


def _verify_chunk(task: tuple[str, str, str, str, str, list[int]]) -> list[str]:
    """Compare store and source samples of one split at the given positions."""
    dataset, root, out, resampling, split, positions = task
    src = _cached_reader(dataset, root, split, resampling)
    key = ("store", out, split)
    if key not in _READERS:
        _READERS[key] = st.StoreDataset(out, split=split, include_snow=True, include_cloudy=True)  # type: ignore[assignment]
    dst = _READERS[key]
    bad = []
    for pos in positions:
        a, b = src[pos], dst[pos]
        problems = [k for k in ("s1", "s2", "label") if not torch.equal(a[k], b[k])]
        if a["meta"] != b["meta"]:
            problems.append("meta")
        if a["present"] != b["present"]:
            problems.append("present")
        if problems:
            bad.append(f"sample {a['meta']['id']}: {', '.join(problems)} differ")
    return bad


def _watch_parent(parent: int, interval: float = 1.0) -> None:
    """Worker initializer: exit when the converting process is gone.

    A worker blocked on its task queue never notices that the main process died (killed,
    out of memory, session closed); without this it would linger, and with
    ``multiprocessing.Pool`` each would crash with ``BrokenPipeError`` on returning its
    result. The shard it was writing has no completion marker, so a re-run redoes it.
    """

    def watch() -> None:
        while True:
            time.sleep(interval)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(3)
            except PermissionError:  # pid reused by another user's process
                os._exit(3)

    threading.Thread(target=watch, name="rsfuse-parent-watch", daemon=True).start()


class _TerminatedError(Exception):
    """SIGTERM / SIGHUP received by the converting process."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _TerminatedError(signal.Signals(signum).name)


def _pool_map(
    fn: Any, tasks: list[Any], workers: int, total: int, desc: str, weight: Any
) -> list[Any]:
    """Run ``fn`` over ``tasks`` in ``workers`` processes with a progress bar.

    Uses :class:`concurrent.futures.ProcessPoolExecutor` on a ``forkserver`` context
    (``fork`` after zarr's event-loop thread started deadlocks). Unlike
    ``multiprocessing.Pool``, which waits forever for the result of a worker that died
    (killed by the OOM killer, a signal …), a dead worker raises here, the other workers
    are stopped and the error says to re-run (the conversion resumes). SIGTERM and SIGHUP
    stop the workers cleanly instead of orphaning them.

    Raises:
        DataError: a worker died, or the run was terminated by a signal.
    """
    results: list[Any] = [None] * len(tasks)
    bar = tqdm(total=total, desc=desc, unit="sample", smoothing=0.05)
    try:
        if workers <= 1 or len(tasks) <= 1:
            for i, t in enumerate(tasks):
                results[i] = fn(t)
                bar.update(weight(t))
            return results
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["rsfuse.data.convert"])
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                previous[sig] = signal.signal(sig, _raise_terminated)
        pool = ProcessPoolExecutor(
            max_workers=min(workers, len(tasks)),
            mp_context=ctx,
            initializer=_watch_parent,
            initargs=(os.getpid(),),
        )
        try:
            futures = {pool.submit(fn, t): i for i, t in enumerate(tasks)}
            for fut in as_completed(futures):
                i = futures[fut]
                results[i] = fut.result()
                bar.update(weight(tasks[i]))
        except BrokenProcessPool as e:
            raise DataError(
                f"a worker process died during {desc} ({e}); the finished shards are kept: "
                "run the same command again to resume"
            ) from e
        except _TerminatedError as e:
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()  # their unfinished shards have no marker: redone on resume
            raise DataError(
                f"{desc} interrupted by {e}; the finished shards are kept: run the same "
                "command again to resume"
            ) from e
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        bar.close()
    return results


# --------------------------------------------------------------------------- API
def convert(
    dataset: str,
    root: str | Path,
    out: str | Path,
    *,
    resampling: str = "bilinear",
    shard_size: int = st.DEFAULT_SHARD_SIZE,
    workers: int = 1,
    overwrite: bool = False,
) -> Path:
    """Convert a dataset into a store, resuming an unfinished conversion at ``out``.

    Args:
        dataset: a key of :data:`DATASETS`.
        root: source dataset root.
        out: local store folder.
        resampling: how S2 20 m / 60 m bands reach the 10 m grid (stored resampled).
        shard_size: samples per shard file.
        workers: parallel processes.
        overwrite: delete an existing, different store at ``out`` first.

    Returns:
        The store folder.

    Raises:
        DataError: a missing or corrupt source file (naming it), or ``out`` holds a
            different conversion.
        ConfigError: bad arguments.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}", key="workers")
    if shard_size < 1:
        raise ConfigError(f"shard_size must be >= 1, got {shard_size}", key="shard_size")
    root_s, out_p = str(Path(root).resolve()), Path(out)
    rows = plan(dataset, root_s, resampling)
    want = {
        "dataset": dataset,
        "root": root_s,
        "resampling": resampling,
        "shard_size": shard_size,
        "n": len(rows),
        "ids": rows["id"].tolist(),
    }
    plan_file = out_p / st.PLAN
    if out_p.exists() and plan_file.is_file():
        have = json.loads(plan_file.read_text())
        if {k: have.get(k) for k in want if k != "root"} != {
            k: v for k, v in want.items() if k != "root"
        }:
            if not overwrite:
                raise DataError(
                    "the folder holds a different conversion (dataset, samples, resampling "
                    "or shard size differ); pass --overwrite or choose another --out",
                    path=out_p,
                )
            shutil.rmtree(out_p)
    elif out_p.exists() and any(out_p.iterdir()):
        if not overwrite:
            raise DataError("output folder exists and is not an rsfuse store", path=out_p)
        shutil.rmtree(out_p)
    out_p.mkdir(parents=True, exist_ok=True)
    if (out_p / st.MANIFEST).is_file():
        log.info("store %s is already complete", out_p)
        return out_p
    if not plan_file.is_file():
        st.create_arrays(out_p, len(rows), st.bigearthnet_specs(), shard_size)
        st.write_json(plan_file, want)
    done = st.done_shards(out_p)
    n_shards = -(-len(rows) // shard_size)
    pairs = list(zip(rows["split"], rows["pos"].astype(int)))
    tasks = [
        (
            dataset,
            root_s,
            str(out_p),
            resampling,
            k,
            shard_size,
            pairs[k * shard_size : (k + 1) * shard_size],
        )
        for k in range(n_shards)
        if k not in done
    ]
    if done:
        log.info("resuming: %d of %d shards already done", len(done), n_shards)
    _pool_map(
        _convert_shard,
        tasks,
        workers,
        sum(len(t[-1]) for t in tasks),
        "converting",
        lambda t: len(t[-1]),
    )
    _finalize(out_p, rows, n_shards, dataset)
    return out_p


def _finalize(out: Path, rows: pd.DataFrame, n_shards: int, dataset: str) -> None:
    """Write the index, then the manifest (last: it marks the store complete)."""
    missing = sorted(set(range(n_shards)) - st.done_shards(out))
    if missing:
        raise DataError(f"shards {missing[:10]} were not written", path=out)
    meta: list[dict[str, Any]] = []
    for k in range(n_shards):
        meta += json.loads((out / st.DONE_DIR / f"meta-{k}.json").read_text())
    index = rows[["id", "split", "snow", "cloud"]].copy()
    index["s1_id"] = [m["s1_id"] for m in meta]
    index["s2_id"] = [m["s2_id"] for m in meta]
    index["crs"] = [m["crs"] for m in meta]
    tr = np.array([m["transform"] for m in meta], dtype=np.float64).reshape(len(meta), 6)
    for c in range(6):
        index[f"t{c}"] = tr[:, c]
    st.write_index(out, index)
    plan_info = json.loads((out / st.PLAN).read_text())
    manifest = {
        "format": "rsfuse-store",
        "version": st.STORE_VERSION,
        "dataset": dataset,
        "stats_name": DATASETS[dataset].stats_name,
        "source_root": plan_info["root"],
        "resampling": plan_info["resampling"],
        "shard_size": plan_info["shard_size"],
        "num_samples": len(rows),
        "splits": {s: int((rows["split"] == s).sum()) for s in SPLITS},
        "s2_bands": list(st.S2_STORED),
        "arrays": {
            s.name: {"dtype": s.dtype, "sample_shape": list(s.sample_shape)}
            for s in st.bigearthnet_specs()
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    st.write_json(out / st.MANIFEST, manifest)


def verify(
    dataset: str, root: str | Path, out: str | Path, *, workers: int = 1, chunk: int = 64
) -> int:
    """Re-read every sample from source and store and check they are identical.

    Returns:
        The number of samples checked.

    Raises:
        DataError: the store is incomplete or any sample differs (names the samples).
    """
    manifest = st.read_manifest(str(out))
    if manifest["dataset"] != dataset:
        raise DataError(f"store holds {manifest['dataset']!r}, not {dataset!r}", path=out)
    rows = plan(dataset, root, manifest["resampling"])
    if rows["id"].tolist() != json.loads((Path(out) / st.PLAN).read_text())["ids"]:
        raise DataError("the source's samples differ from the store's", path=out)
    tasks = []
    for split in SPLITS:
        pos = rows.loc[rows["split"] == split, "pos"].astype(int).tolist()
        tasks += [
            (
                dataset,
                str(Path(root).resolve()),
                str(out),
                manifest["resampling"],
                split,
                pos[i : i + chunk],
            )
            for i in range(0, len(pos), chunk)
        ]
    bad = [
        b
        for r in _pool_map(
            _verify_chunk, tasks, workers, len(rows), "verifying", lambda t: len(t[-1])
        )
        for b in r
    ]
    if bad:
        raise DataError(
            f"{len(bad)} samples differ from the source: {'; '.join(bad[:5])}", path=out
        )
    return len(rows)


def build_parser() -> argparse.ArgumentParser:
    """The ``rsfuse convert`` argument parser."""
    p = argparse.ArgumentParser(
        prog="rsfuse convert",
        description=(
            "Convert a dataset that rsfuse reads into a compressed, sharded store (zarr v3 "
            "with sharding; see docs/store.md) for fast random access. Resumable: run the "
            "same command again after an interruption and it completes the unfinished "
            "shards. The store is marked complete (rsfuse_store.json) only after its last "
            "write."
        ),
        epilog=(
            "example: rsfuse convert --dataset bigearthnet-v2 --root data/BigEarthNet-v2 "
            "--out data/ben-v2.store --workers 8 && rsfuse convert --dataset "
            "bigearthnet-v2 --root data/BigEarthNet-v2 --out data/ben-v2.store --verify"
        ),
    )
    p.add_argument(
        "--dataset", required=True, choices=sorted(DATASETS), help="the source dataset's layout"
    )
    p.add_argument("--root", required=True, help="source dataset root folder")
    p.add_argument("--out", required=True, help="store folder to write (local path)")
    p.add_argument(
        "--verify",
        action="store_true",
        help="do not convert: re-read every sample from source and store and "
        "check they are bit-identical",
    )
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument(
        "--resampling",
        default="bilinear",
        choices=["nearest", "bilinear", "cubic"],
        help="how S2 20 m / 60 m bands reach the 10 m grid (default bilinear, as the readers)",
    )
    p.add_argument(
        "--shard-size",
        type=int,
        default=st.DEFAULT_SHARD_SIZE,
        help=f"samples per shard file (default {st.DEFAULT_SHARD_SIZE})",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace a different store or folder at --out"
    )
    return p


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``rsfuse convert``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.verify:
        n = verify(args.dataset, args.root, args.out, workers=args.workers)
        print(f"verified {n} samples of {args.out}: identical to {args.root}")
        return
    out = convert(
        args.dataset,
        args.root,
        args.out,
        resampling=args.resampling,
        shard_size=args.shard_size,
        workers=args.workers,
        overwrite=args.overwrite,
    )
    m = st.read_manifest(str(out))
    print(f"wrote {m['num_samples']} samples to {out} ({m['splits']})")


__all__ = ["DATASETS", "build_parser", "convert", "main", "plan", "verify"]


if __name__ == "__main__":
    main()
