"""Data throughput: samples/s of S1+S2 120x120 BigEarthNet samples from four readers.

Readers, all on the same synthetic BigEarthNet v2 files (train split, snowy and cloudy
patches included so every reader sees the same samples):

(a) ``geotiff``   rsfuse's :class:`~rsfuse.data.bigearthnet.BigEarthNetV2` (14 GeoTIFFs)
(b) ``torchgeo``  TorchGeo's ``BigEarthNetV2(bands="all")`` (benchmark-only dependency;
                  reported as not measured when TorchGeo is not installed)
(c) ``store``     :class:`~rsfuse.data.store.StoreDataset` on the converted store, made
                  by the datamodule's ``store_dataset`` (``s2_dtype="uint16"``): the path
                  training uses. The DataLoader asks it for whole batches
                  (``StoreDataset.__getitems__``): every sample is decoded straight into
                  the batch tensors, in pooled shared memory inside a worker, and
                  ``collate`` passes the batch through (``BigEarthNetDataModule`` ships S2
                  as uint16 and ``Normalize`` casts it on the device)
    ``store-item`` the same store read one sample at a time (``__getitem__``, then
                  ``collate`` stacks the samples; the DataLoader moves the batch to fresh
                  shared memory): the previous path, extra row, for information
    ``store-f32`` the batch path with ``s2_dtype="float32"`` (cast in the worker; extra
                  row, for information)
(d) ``lmdb``      plain LMDB + safetensors baseline (reBEN / rico-hdl style): one
                  uncompressed safetensors record per sample, same dtypes as the store,
                  read per sample (``__getitem__``) and stacked by ``collate``, as a plain
                  baseline does; like the store, it hands S2 over in its native uint16 (as
                  reBEN / rico-hdl keep native dtypes in safetensors), so both ship the
                  same bytes
    ``lmdb-f32``  the same LMDB with S2 cast to float32 in the worker (extra row)

Each is read through the same DataLoader settings (batch 32, shuffled: random access,
rsfuse's ``collate``, prefetch factor 4) with 1 worker and with one worker per core
(``--workers 0`` adds a read in the main process, reported for information: no
inter-process transport); the clock starts after the first batch (worker start-up and
file-cache warm-up excluded). Results are printed as a table with the ratios and targets
and saved as JSON.

Run::

    python benchmarks/data_throughput.py --data /root/.cache/rsfuse-bench/data --n 5000 \
        --workers 0 1 2
    rsfuse benchmark data --n 50 --samples 50        # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from rsfuse.data.sample import Sample, collate

READERS = ("geotiff", "torchgeo", "store", "store-item", "store-f32", "lmdb", "lmdb-f32")
TARGETS = {
    "store_vs_torchgeo_1worker": 20.0,
    "store_per_core": 1000.0,
    "store_vs_lmdb": 1 / 1.5,
    "size_vs_raw": 0.7,
}


class LmdbSafetensors(Dataset[Sample]):
    """Baseline: LMDB of uncompressed safetensors records, one per sample.

    Args:
        path: LMDB folder written by :func:`write_lmdb`.
        s2_dtype: ``uint16`` (native, as stored; default) or ``float32`` (cast per sample).
    """

    def __init__(self, path: str | Path, s2_dtype: str = "uint16") -> None:
        self.path = str(path)
        self.s2_dtype = s2_dtype
        self._env: Any = None
        self._pid = -1
        env = self._open()
        with env.begin() as tx:
            self._n = int(tx.get(b"__len__"))
        env.close()  # LMDB refuses a second open per process: workers reopen it lazily
        self._env, self._pid = None, -1

    def _open(self) -> Any:
        import lmdb

        if self._pid != os.getpid():
            self._env = lmdb.open(
                self.path,
                readonly=True,
                lock=False,
                readahead=False,
                meminit=False,
                max_readers=256,
            )
            self._pid = os.getpid()
        return self._env

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_env": None, "_pid": -1}

    def close(self) -> None:
        """Close this process's environment (LMDB refuses to reopen it in a forked child)."""
        if self._env is not None and self._pid == os.getpid():
            self._env.close()
        self._env, self._pid = None, -1

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> Sample:
        from safetensors.numpy import load

        with self._open().begin(buffers=True) as tx:
            d = load(bytes(tx.get(f"{index:09d}".encode())))
        s2 = d["s2"] if self.s2_dtype == "uint16" else d["s2"].astype(np.float32)
        return {
            "s2": torch.from_numpy(s2),
            "s1": torch.from_numpy(d["s1"]),
            "label": torch.from_numpy(d["label"].astype(np.float32)),
            "present": {"s1": True, "s2": True},
            "meta": {"id": str(index)},
        }


def write_lmdb(path: Path, source: Dataset, progress: bool = True) -> Path:
    """Write the baseline LMDB from a dataset of contract samples (temp name + rename)."""
    import lmdb
    from safetensors.numpy import save
    from tqdm.auto import tqdm

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    n = len(source)  # type: ignore[arg-type]
    env = lmdb.open(str(tmp), map_size=max(1 << 30, n * 600_000), meminit=False)
    with env.begin(write=True) as tx:
        for i in tqdm(range(n), desc="writing LMDB baseline", disable=not progress):
            s = source[i]
            rec = {
                "s2": s["s2"].numpy().astype(np.uint16),
                "s1": s["s1"].numpy(),
                "label": s["label"].numpy().astype(np.uint8),
            }
            tx.put(f"{i:09d}".encode(), save(rec))
        tx.put(b"__len__", str(n).encode())
    env.sync()
    env.close()
    os.replace(tmp, path)
    return path


class PerSample(Dataset[Sample]):
    """A dataset read one sample at a time: hides the wrapped dataset's ``__getitems__``
    (the ``store-item`` row: what the store's DataLoader path was before batch reads)."""

    def __init__(self, dataset: Dataset[Sample]) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Sample:
        return self.dataset[index]


class _TorchGeoAdapter(Dataset[dict[str, Any]]):
    """TorchGeo BigEarthNetV2 as is (its own sample dict)."""

    def __init__(self, root: Path) -> None:
        from torchgeo.datasets import BigEarthNetV2 as TGBigEarthNetV2

        self.ds = TGBigEarthNetV2(str(root), split="train", bands="all")

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.ds[i]


def torchgeo_available() -> bool:
    """Whether TorchGeo can be imported."""
    try:
        import torchgeo.datasets  # noqa: F401
    except Exception:
        return False
    return True


def lmdb_available() -> bool:
    """Whether the ``lmdb`` package (baseline only) can be imported."""
    try:
        import lmdb  # noqa: F401
    except ImportError:
        return False
    return True


def measure(
    ds: Dataset, workers: int, samples: int, batch_size: int, seed: int, collate_fn: Any
) -> dict[str, float]:
    """Samples/s reading ``samples`` random samples through a DataLoader."""
    g = torch.Generator().manual_seed(seed)
    n = len(ds)  # type: ignore[arg-type]
    batch_size = min(batch_size, max(1, n // 2))
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=True,
        generator=g,
        num_workers=workers,
        collate_fn=collate_fn,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )
    it = iter(loader)
    next(it)  # worker start-up, first batch
    count, t0 = 0, time.perf_counter()
    while count < samples:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        count += int(batch["label"].shape[0])
    dt = time.perf_counter() - t0
    del it
    if workers == 0 and hasattr(ds, "close"):
        ds.close()  # opened in this process: close before forked workers read it
    return {"samples": count, "seconds": dt, "samples_per_s": count / dt}


def warm_file_cache(path: Path) -> None:
    """Read every file under ``path`` once, so no reader is measured on a cold page cache
    (otherwise whichever reader runs first pays for the disk reads)."""
    for f in sorted(Path(path).rglob("*")):
        if f.is_file():
            with open(f, "rb") as fh:
                while fh.read(1 << 23):
                    pass


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def prepare(data: Path, n: int, workers: int) -> tuple[Path, Path, Path]:
    """Source dataset, store and LMDB under ``data`` (made once, reused)."""
    from rsfuse.data.convert import convert
    from rsfuse.data.store import MANIFEST, StoreDataset
    from rsfuse.data.synthetic import synthesize

    src = data / f"ben-v2-{n}"
    if not (src / "metadata.parquet").is_file():
        synthesize("bigearthnet-v2", src, n=n, seed=0, workers=workers, progress=True)
    store = data / f"ben-v2-{n}.store"
    if not (store / MANIFEST).is_file():
        convert("bigearthnet-v2", src, store, workers=workers)
    lmdb_path = data / f"ben-v2-{n}.lmdb"
    if not lmdb_path.is_dir() and lmdb_available():
        write_lmdb(lmdb_path, StoreDataset(store, "train", include_snow=True, include_cloudy=True))
    return src, store, lmdb_path


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every reader; return the results dict (also saved as JSON)."""
    from rsfuse.data.bigearthnet import BigEarthNetV2
    from rsfuse.data.datamodules.classification import store_dataset
    from rsfuse.data.store import StoreDataset

    torch.set_num_threads(1)
    src, store, lmdb_path = prepare(Path(args.data), args.n, args.prepare_workers)
    load_before = os.getloadavg()
    cores = os.cpu_count() or 1
    worker_counts = sorted({1, cores} if args.workers is None else set(args.workers))
    store_kwargs = {  # BigEarthNetDataModule's dataset_kwargs for the benchmark's samples
        "modalities": ("s1", "s2"),
        "s2_bands": "all",
        "resampling": None,
        "include_snow": True,
        "include_cloudy": True,
    }
    readers: dict[str, Any] = {
        "geotiff": lambda: BigEarthNetV2(src, "train", include_snow=True, include_cloudy=True),
        "torchgeo": lambda: _TorchGeoAdapter(src),
        # the training path: the datamodule's store dataset (batch reads, uint16 S2)
        "store": lambda: store_dataset(str(store), "train", store_kwargs, "uint16"),
        "store-item": lambda: PerSample(store_dataset(str(store), "train", store_kwargs, "uint16")),
        "store-f32": lambda: store_dataset(str(store), "train", store_kwargs, "float32"),
        "lmdb": lambda: LmdbSafetensors(lmdb_path, s2_dtype="uint16"),
        "lmdb-f32": lambda: LmdbSafetensors(lmdb_path, s2_dtype="float32"),
    }
    results: dict[str, Any] = {"readers": {}, "notes": []}
    for name in args.readers:
        if name == "torchgeo" and not torchgeo_available():
            results["notes"].append(
                "torchgeo: not installed, not measured (pip install torchgeo in a benchmark venv)"
            )
            continue
        if name.startswith("lmdb") and not lmdb_available():
            results["notes"].append("lmdb: package not installed, baseline not measured")
            continue
        ds = readers[name]()
        slow = name in ("geotiff", "torchgeo")
        warm_file_cache(src if slow else store if name.startswith("store") else lmdb_path)
        samples = min(args.samples, args.slow_samples) if slow else args.samples
        cf = None if name == "torchgeo" else collate
        results["readers"][name] = {}
        for w in worker_counts:
            r = measure(ds, w, samples, args.batch_size, args.seed, cf)
            results["readers"][name][str(w)] = r
            print(f"  {name:10s} workers={w}: {r['samples_per_s']:9.1f} samples/s", flush=True)
    n_train = len(StoreDataset(store, "train", include_snow=True, include_cloudy=True))
    n_all = json.loads((store / "rsfuse_store.json").read_text())["num_samples"]
    per_sample = 12 * 120 * 120 * 2 + 2 * 120 * 120 * 4 + 19
    sizes = {
        "store_bytes": _du(store),
        "raw_bytes": n_all * per_sample,
        "raw_float32_bytes": n_all * (14 * 120 * 120 * 4 + 19 * 4),
        "geotiff_bytes": _du(src / "BigEarthNet-S1") + _du(src / "BigEarthNet-S2"),
        "lmdb_bytes_train_only": _du(lmdb_path) if lmdb_path.is_dir() else None,
        "n_samples": n_all,
        "n_train": n_train,
    }
    results["sizes"] = sizes
    results["machine"] = {
        "cpu_count": cores,
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "loadavg_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }
    results["ratios"] = ratios(results, worker_counts, cores)
    return results


def ratios(results: dict[str, Any], worker_counts: Sequence[int], cores: int) -> dict[str, Any]:
    """The target ratios that could be computed from the measured readers."""
    r = results["readers"]

    def sps(name: str, w: int) -> float | None:
        return r.get(name, {}).get(str(w), {}).get("samples_per_s")

    out: dict[str, Any] = {}
    # 0 workers = read in the main process (no inter-process transport): reported as
    # information; the targets use DataLoader workers (>= 1) as the issue asks
    loader_counts = [w for w in worker_counts if w >= 1] or list(worker_counts)
    w1, wmax = min(loader_counts), max(loader_counts)
    if sps("store", w1) and sps("torchgeo", w1):
        out["store_vs_torchgeo_1worker"] = sps("store", w1) / sps("torchgeo", w1)
    if sps("store", w1) and sps("geotiff", w1):
        out["store_vs_geotiff_1worker"] = sps("store", w1) / sps("geotiff", w1)
    if sps("store", w1):
        out["store_per_core"] = min(sps("store", w1), sps("store", wmax) / max(wmax, 1))
    if sps("store", w1) and sps("lmdb", w1):
        out["store_vs_lmdb"] = min(sps("store", w) / sps("lmdb", w) for w in loader_counts)
    if sps("store-item", w1):
        out["store_item_per_core"] = min(
            sps("store-item", w1), sps("store-item", wmax) / max(wmax, 1)
        )
        out["store_vs_store_item"] = min(
            sps("store", w) / sps("store-item", w) for w in loader_counts
        )
    if sps("store-f32", w1):
        out["store_f32_per_core"] = min(sps("store-f32", w1), sps("store-f32", wmax) / max(wmax, 1))
    if 0 in worker_counts and sps("store", 0):
        out["store_in_process"] = sps("store", 0)
        if sps("lmdb", 0):
            out["store_vs_lmdb_in_process"] = sps("store", 0) / sps("lmdb", 0)
    s = results["sizes"]
    out["size_vs_raw"] = s["store_bytes"] / s["raw_bytes"]
    out["size_vs_raw_float32"] = s["store_bytes"] / s["raw_float32_bytes"]
    out["met"] = {}
    for k, target in TARGETS.items():
        if k in out:
            out["met"][k] = out[k] <= target if k == "size_vs_raw" else out[k] >= target
    return out


def table(results: dict[str, Any]) -> str:
    """The results as a text table."""
    r = results["readers"]
    ws = sorted({int(w) for v in r.values() for w in v})
    m = results.get("machine", {})
    lines = []
    if m:
        lines.append(
            f"machine: {m['cpu_count']}-core CPU ({m['processor']}), Python {m['python']}, "
            f"torch {m['torch']}, load average (1 min) before/after "
            f"{m['loadavg_1min_before_after'][0]}/{m['loadavg_1min_before_after'][1]}"
        )
    lines.append(
        f"{'reader':11s}" + "".join(f"{f'{w} worker(s)' if w else 'in-process':>16s}" for w in ws)
    )
    for name in READERS:
        if name in r:
            lines.append(
                f"{name:11s}" + "".join(f"{r[name][str(w)]['samples_per_s']:14.1f}/s" for w in ws)
            )
        else:
            lines.append(f"{name:11s}  not measured")
    lines.append("")
    q = results["ratios"]
    descr = {
        "store_vs_torchgeo_1worker": "store / TorchGeo, 1 worker (target >= 20)",
        "store_vs_geotiff_1worker": "store / rsfuse GeoTIFF, 1 worker",
        "store_per_core": "store samples/s per core (target >= 1000)",
        "store_in_process": "store samples/s, 0 workers (in the main process)",
        "store_item_per_core": "store read per sample (previous path) samples/s per core",
        "store_vs_store_item": "store batch reads / per-sample reads, worst case",
        "store_f32_per_core": "store (s2 float32 in the worker) samples/s per core",
        "store_vs_lmdb_in_process": "store / LMDB+safetensors, 0 workers",
        "store_vs_lmdb": "store / LMDB+safetensors, worst case (target >= 0.667)",
        "size_vs_raw": "store size / raw native-dtype arrays (target <= 0.7)",
        "size_vs_raw_float32": "store size / float32 sample arrays",
    }
    for k, d in descr.items():
        if k in q:
            met = q["met"].get(k)
            flag = "" if met is None else ("  MET" if met else "  NOT MET")
            lines.append(f"{d:58s} {q[k]:10.3f}{flag}")
    s = results["sizes"]
    lines.append(
        f"sizes: store {s['store_bytes'] / 1e6:.1f} MB, raw {s['raw_bytes'] / 1e6:.1f} MB, "
        f"GeoTIFFs {s['geotiff_bytes'] / 1e6:.1f} MB ({s['n_samples']} samples)"
    )
    lines += [f"note: {n}" for n in results["notes"]]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's argument parser."""
    p = argparse.ArgumentParser(
        prog="rsfuse benchmark data",
        description="Samples/s of S1+S2 BigEarthNet samples: rsfuse GeoTIFF reader, TorchGeo, "
        "the converted store and an LMDB+safetensors baseline; prints a table, saves JSON.",
    )
    p.add_argument(
        "--data",
        default=str(Path.home() / ".cache/rsfuse-bench/data"),
        help="cache folder for the synthetic dataset, store and LMDB (made once)",
    )
    p.add_argument("--n", type=int, default=5000, help="synthetic dataset size (default 5000)")
    p.add_argument(
        "--samples",
        type=int,
        default=4000,
        help="samples read per measurement of the fast readers (default 4000)",
    )
    p.add_argument(
        "--slow-samples",
        type=int,
        default=640,
        help="samples per measurement of the GeoTIFF readers (default 640)",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=None,
        help="DataLoader worker counts (default: 1 and all cores; 0 = read in the main "
        "process, reported for information)",
    )
    p.add_argument("--readers", nargs="+", default=list(READERS), choices=READERS)
    p.add_argument(
        "--prepare-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes for generating and converting the dataset",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default="data_throughput.json", help="where to save the results")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``rsfuse benchmark data`` and ``benchmarks/data_throughput.py``."""
    args = build_parser().parse_args(argv)
    results = run(args)
    results["args"] = vars(args)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"saved {args.json}")


__all__ = [
    "LmdbSafetensors",
    "PerSample",
    "main",
    "measure",
    "run",
    "table",
    "warm_file_cache",
    "write_lmdb",
]
