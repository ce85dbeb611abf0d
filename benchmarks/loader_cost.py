"""What the loader worker costs the main thread of a CPU training step, taken apart.

``rsfuse benchmark train`` shows the gap (its *loaded* phase: the fixed-batch fit with the
real loader running beside it). This script separates its parts, each by alternating the
two conditions it compares in short blocks of steps, so that a shared machine's drifting
load reaches both (main-thread CPU time, ``time.thread_time``, of the bare step of the
workload on its fixed batch):

1. **worker** — the step while the loader worker prepares batches (one taken per step and
   dropped) vs while it is idle (its queue full); also the handover: the main thread's CPU
   time in ``next`` (receiving the batch) and in freeing it.
2. **batch** — the step on the loader's batch (fresh shared memory) vs on a private copy of
   it vs on the fixed batch (the loader working in all three).
3. **neighbour** (``--neighbours``) — the step while another process runs vs while it is
   stopped (SIGSTOP): ``python`` (an interpreter loop: no memory traffic), ``stream`` (a
   48 MB array multiplied in place again and again: memory traffic).

Run (tiny CPU sizes, the benchmark's synthetic data under ``--data``)::

    python benchmarks/loader_cost.py --workloads vit_b_finetune seg_upernet_vit
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from rsfuse.benchmarks import train_throughput as tt

NEIGHBOURS = {
    "python": "x = 0\nwhile True:\n    for i in range(10000): x += i\n",
    "stream": (
        "import torch\ntorch.set_num_threads(1)\na = torch.ones(12_000_000)\n"
        "while True:\n    a.mul_(1.0001)\n"
    ),
}


def _setup(name: str, data_root: str, tmp: Path) -> dict[str, Any]:
    """The workload's tiny run: model, optimiser, fixed batch, training loader."""
    from rsfuse.training.optim import build_optimizer

    w = tt.WORKLOADS[name]
    args = tt.build_parser().parse_args(["--workloads", name, "--workers", "1"])
    args.size, args.speed, args.rounds = "tiny", [], 1
    data = tt.prepare_data(w.data, "tiny", Path(data_root))
    run = tt.build(w, "tiny", torch.device("cpu"), data, args, tmp / name)
    m, dm = run.model, run.datamodule
    fixed = tt._device_batch(dm, torch.device("cpu"))
    dm.transforms_in_workers = True  # the run's default on a CPU with workers
    train = dm.split_dataset("train")
    train = train.dataset if isinstance(train, tt.RepeatDataset) else train
    dm.datasets["train"] = tt.repeat(train, int(dm.batch_size) * 100_000)
    dm.trainer = tt._Training()
    s = m.optim_settings()
    opt = build_optimizer(
        m.optimized_module(), name=s.name, lr=s.lr, weight_decay=s.weight_decay,
        betas=tuple(s.betas), momentum=s.momentum, fused=None,
    )  # fmt: skip
    m.train()
    loss_fn = tt.BARE_STEPS[w.step][0]

    def step(batch: dict) -> float:
        c = time.thread_time()
        opt.zero_grad(set_to_none=True)
        loss_fn(m, batch).backward()
        opt.step()
        return time.thread_time() - c

    return {"step": step, "fixed": fixed, "loader": iter(dm.train_dataloader())}


def _fetch(it: Any) -> tuple[dict, float]:
    c = time.thread_time()
    b = next(it)
    return b, time.thread_time() - c


def worker_cost(s: dict[str, Any], blocks: int, k: int) -> dict[str, float]:
    """Step with the worker working vs idle; handover (``next``) and freeing, ms."""
    step, fixed, it = s["step"], s["fixed"], s["loader"]
    t = {"working": 0.0, "idle": 0.0, "next": 0.0, "free": 0.0}
    for blk in range(blocks):
        for cond in ("working", "idle") if blk % 2 == 0 else ("idle", "working"):
            time.sleep(0.3)  # idle: the worker has filled its queue by now
            for _ in range(k):
                if cond == "working":
                    b, dt = _fetch(it)
                    t["next"] += dt
                    c = time.thread_time()
                    del b
                    t["free"] += time.thread_time() - c
                t[cond] += step(fixed)
    n = blocks * k
    return {key: 1e3 * v / n for key, v in t.items()}


def batch_cost(s: dict[str, Any], n: int) -> dict[str, float]:
    """Step on the loader's batch vs a private copy of it vs the fixed batch, ms."""
    step, it = s["step"], s["loader"]
    t = {"loader_batch": 0.0, "private_copy": 0.0, "fixed_batch": 0.0}
    for i in range(n):
        b, _ = _fetch(it)
        copy = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in b.items()}
        runs = list(zip(t, (b, copy, s["fixed"])))
        for key, batch in runs[i % 3 :] + runs[: i % 3]:
            t[key] += step(batch)
    return {key: 1e3 * v / n for key, v in t.items()}


def neighbour_cost(s: dict[str, Any], kind: str, blocks: int, k: int) -> dict[str, float]:
    """Step with a neighbour process running vs stopped, ms."""
    step, fixed = s["step"], s["fixed"]
    p = subprocess.Popen([sys.executable, "-c", NEIGHBOURS[kind]])
    t = {"running": 0.0, "stopped": 0.0}
    try:
        time.sleep(1.0)
        for blk in range(blocks):
            for cond in ("running", "stopped") if blk % 2 == 0 else ("stopped", "running"):
                os.kill(p.pid, signal.SIGCONT if cond == "running" else signal.SIGSTOP)
                time.sleep(0.05)
                for _ in range(k):
                    t[cond] += step(fixed)
    finally:
        os.kill(p.pid, signal.SIGCONT)
        p.terminate()
        p.wait()
    return {key: 1e3 * v / (blocks * k) for key, v in t.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workloads", nargs="+", default=["vit_b_finetune", "seg_upernet_vit"])
    p.add_argument("--blocks", type=int, default=12, help="blocks per condition")
    p.add_argument("--block-steps", type=int, default=6, help="steps per block")
    p.add_argument("--neighbours", nargs="*", default=[], choices=list(NEIGHBOURS))
    p.add_argument("--data", default=str(Path.home() / ".cache/rsfuse-bench/train"))
    p.add_argument("--json", default="loader_cost.json")
    a = p.parse_args(argv)
    torch.set_num_threads(1)  # as the benchmark on 2 cores with 1 loader worker
    res: dict[str, Any] = {"loadavg_before": os.getloadavg()[0], "date": time.strftime("%F %R")}
    with tempfile.TemporaryDirectory(prefix="rsfuse-loader-cost-") as tmp:
        for name in a.workloads:
            s = _setup(name, a.data, Path(tmp))
            for _ in range(3):
                s["step"](s["fixed"])
                _fetch(s["loader"])
            r = {"worker": worker_cost(s, a.blocks, a.block_steps)}
            r["batch"] = batch_cost(s, a.blocks * a.block_steps // 2)
            for kind in a.neighbours:
                r[f"neighbour_{kind}"] = neighbour_cost(s, kind, a.blocks, a.block_steps)
            res[name] = r
            wk = r["worker"]
            print(
                f"{name}: step {wk['working']:.2f} ms with the worker working, {wk['idle']:.2f} "
                f"idle ({wk['working'] / wk['idle']:.3f}x); handover: next {wk['next']:.2f}, "
                f"free {wk['free']:.2f} ms"
            )
            print("  step on: " + ", ".join(f"{k} {v:.2f}" for k, v in r["batch"].items()))
            for kind in a.neighbours:
                nb = r[f"neighbour_{kind}"]
                print(
                    f"  neighbour {kind}: {nb['running']:.2f} running, {nb['stopped']:.2f} "
                    f"stopped ({nb['running'] / nb['stopped']:.3f}x)"
                )
            del s
    res["loadavg_after"] = os.getloadavg()[0]
    print(
        f"load average (1 min) {res['loadavg_before']:.2f} before, {res['loadavg_after']:.2f} after"
    )
    Path(a.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
