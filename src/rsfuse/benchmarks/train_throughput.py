"""Training throughput: samples/s, step time, peak memory and MFU of every method's step,
against the same model and batch in a bare PyTorch loop.

Workloads (:data:`WORKLOADS`), each built from its packaged config through
:func:`rsfuse.training.cli.build_run` (on a CPU with the config's tiny override):

======================= ================================================================
``vit_b_finetune``      ViT-B/16 (GatedViT C4) classification at 224 px, S2 (the MGSViT
                        setting: ``mgsvit/table1_s2``)
``mgsvit_pretrain``     MGSViT MCMAE step: two views, MAE on each + MoCo v3
                        (``mgsvit/pretrain/c4_s2``)
``dino_mm``             DINO-MM step: 2 global + 8 local crops, ViT-S/16 on S1+S2
                        (``dino_mm/dino_mm_pretrain``)
``moco_mm``             MoCo-MM step: two views, ViT-S/16 on S1+S2 (``dino_mm/moco_mm_pretrain``)
``cromss_midf``         CromSS middle fusion: two U-Net-R50 encoders at 256², batch 128
                        (``cromss/cromss_midf``)
``seg_pspnet``          PSPNet-R50 fine-tune on DFC2020 (``segmentation/dfc2020_pspnet_finetune``)
``seg_deeplabv3plus``   the same with DeepLabV3+
``seg_upernet_vit``     UPerNet on a ViT (``segmentation/dfc2020_vit_upernet_finetune``)
======================= ================================================================

What is measured, per workload:

* **rsfuse** — ``trainer.fit`` of the built run with the real data path on synthetic data:
  the converted store (BigEarthNet v2, DFC2020) or the NoLDO-S12 reader (CromSS, whose
  label prior is read from the files), DataLoader workers, the copy to the device and the
  datamodule's batch transforms on the device. The training split is repeated (each index
  is still read and decoded) so one epoch covers the run; no validation. The clock starts
  after ``--warmup`` steps (compilation, cuDNN autotuning, worker start-up) and covers
  ``--steps`` whole iterations (from one step's start to the next's). **between** is the
  host time between two steps (waiting for the batch, the copy, the batch transforms,
  hooks after the step).
* **fixed** — the same fit with the loader replaced by the bare loop's device batch (no
  data path): Lightning and rsfuse's step alone (``--no-fixed`` skips it).
* **loaded** (CPU by default, ``--loaded``) — the fixed fit again, while the real loader
  runs beside it: every step takes a batch from the loader workers (read, normalised and
  augmented there, handed over to the main process) and drops it, then trains on the fixed
  batch. **loaded − fixed** is what the loader costs the main thread without its batch
  being used: the handover and the workers' work running at the same time as the step
  (on a small machine they share the memory system); **rsfuse − loaded** is what training
  on the loader's batch instead of the fixed one adds.
* **bare** — the same model (a second build of the same config) and one fixed batch,
  already on the device and normalised, in a plain loop: ``zero_grad``, forward and loss,
  ``backward``, ``step`` (the self-supervised methods make their views from the batch in
  every step, as their Algorithm 1 does; DINO clips gradients and moves the teacher). Same
  optimiser, precision (autocast) and ``speed`` switches. No Lightning, no loader, no
  datamodule transforms. **ratio** = rsfuse step time / bare step time. Besides wall time
  each phase reports the CPU time of the main thread per step (``time.thread_time``), which
  other processes on a shared machine disturb far less.
* **MFU** (GPU) — model FLOPs of one training step (forward and backward, counted once by
  ``torch.utils.flop_counter.FlopCounterMode`` on the bare step) / step time / the
  device's dense bf16 peak (:data:`PEAK_BF16_TFLOPS`, or ``--peak-tflops``). On a CPU the
  achieved GFLOP/s are shown instead.
* **peak memory** — GPU: ``max_memory_allocated`` over the timed steps; CPU: the process's
  peak resident memory (VmHWM, reset before each phase).
* **data alone** — samples/s of the data path without a model (loader, copy, batch
  transforms): when it is well above the step rate the data path is not the bottleneck.
* ``--gpu-busy`` (CUDA): the fraction of the wall time the GPU runs kernels over a few
  profiled steps (``torch.profiler``); ``--audit-syncs``: host-synchronising calls in a
  few steps — on CUDA ``torch.cuda.set_sync_debug_mode``, elsewhere :class:`HostSyncAudit`
  (``.item()``, ``bool()``, ``nonzero`` … that would synchronise on a GPU), with where
  they come from.

Run::

    rsfuse benchmark train                                  # every workload, this device
    rsfuse benchmark train --workloads vit_b_finetune cromss_midf --steps 30
    python benchmarks/train_throughput.py --size tiny --steps 10 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning import Callback
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils.data import Dataset

#: Dense bf16 tensor-core peak (TFLOP/s) by a fragment of ``torch.cuda.get_device_name``.
PEAK_BF16_TFLOPS: dict[str, float] = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 80GB HBM3": 989.0,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 989.0,
    "GH200": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10G": 70.0,
}


# ---------------------------------------------------------------------------- workloads
@dataclass(frozen=True)
class Workload:
    """One measured training step.

    Attributes:
        name: key of :data:`WORKLOADS`.
        title: what it is, for the table.
        data: ``ben`` (BigEarthNet v2 store), ``dfc`` (DFC2020 store) or ``noldo``
            (NoLDO-S12 files).
        config: the packaged full-size config.
        tiny: the packaged CPU override applied with ``--size tiny``.
        step: key of :data:`BARE_STEPS`.
        batch: per-device batch of the full size (None: the config's).
        tiny_batch: per-device batch of the tiny size (None: the override's).
        overrides: further ``--key=value`` arguments (both sizes).
    """

    name: str
    title: str
    data: str
    config: str
    tiny: str
    step: str
    batch: int | None = None
    tiny_batch: int | None = None
    overrides: tuple[str, ...] = field(default_factory=tuple)


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload(
            "vit_b_finetune", "ViT-B/16 C4 classification, 224 px, S2", "ben",
            "mgsvit/table1_s2", "mgsvit/overrides/tiny_cpu", "classification", batch=128,
            tiny_batch=16,
        ),
        Workload(
            "mgsvit_pretrain", "MGSViT MAE + MoCo v3, 2 views of 128 px, ViT-B", "ben",
            "mgsvit/pretrain/c4_s2", "mgsvit/overrides/tiny_cpu_pretrain", "mgsvit",
            batch=128, tiny_batch=16,
        ),
        Workload(
            "dino_mm", "DINO-MM, 2x112 + 8x48 crops, ViT-S/16, S1+S2", "ben",
            "dino_mm/dino_mm_pretrain", "dino_mm/overrides/tiny_cpu", "dino", batch=128,
            tiny_batch=16,
        ),
        Workload(
            "moco_mm", "MoCo-MM, 2x112 views, ViT-S/16, S1+S2", "ben",
            "dino_mm/moco_mm_pretrain", "dino_mm/overrides/tiny_cpu", "moco", batch=128,
            tiny_batch=16,
        ),
        Workload(
            "cromss_midf", "CromSS-midF, 2 U-Net-R50, 256 px crops of 264", "noldo",
            "cromss/cromss_midf", "cromss/overrides/tiny_cpu", "cromss", batch=128,
            tiny_batch=8,
        ),
        Workload(
            "seg_pspnet", "PSPNet-R50 fine-tune, DFC2020 256 px, S2", "dfc",
            "segmentation/dfc2020_pspnet_finetune", "segmentation/overrides/tiny_cpu",
            "segmentation", batch=32, tiny_batch=8,
        ),
        Workload(
            "seg_deeplabv3plus", "DeepLabV3+-R50 fine-tune, DFC2020 256 px, S2", "dfc",
            "segmentation/dfc2020_pspnet_finetune", "segmentation/overrides/tiny_cpu",
            "segmentation", batch=32, tiny_batch=8,
            overrides=("--model.init_args.architecture=deeplabv3plus",),
        ),
        Workload(
            "seg_upernet_vit", "UPerNet on ViT-S/16 fine-tune, DFC2020 256 px, S2", "dfc",
            "segmentation/dfc2020_vit_upernet_finetune", "segmentation/overrides/tiny_cpu_vit",
            "segmentation", batch=32, tiny_batch=8,
        ),
    ]
}  # fmt: skip

#: Side of the synthetic patches per data kind and size (BigEarthNet is always 120).
PATCH = {"dfc": {"full": 256, "tiny": 64}, "noldo": {"full": 264, "tiny": 48}}
#: Synthetic locations per data kind and size (the training split is repeated as needed).
LOCATIONS = {
    "ben": {"full": 256, "tiny": 48},
    "dfc": {"full": 64, "tiny": 16},
    "noldo": {"full": 24, "tiny": 8},
}


# ---------------------------------------------------------------------------- bare steps
def _classification(m: Any, batch: dict) -> Tensor:
    return m.loss_fn(m.model(batch), batch["label"])


def _mgsvit(m: Any, batch: dict) -> Tensor:
    x1, x2 = m.views(m.images(batch))
    return m.losses(x1, x2, float(m.hparams.base_momentum))["loss"]


def _dino(m: Any, batch: dict) -> Tensor:
    return m.dino_loss(m.crops(batch), 0)


def _moco(m: Any, batch: dict) -> Tensor:
    x1, x2 = m.views(batch)
    return m.moco(x1, x2, momentum=float(m.hparams.momentum))


def _cromss(m: Any, batch: dict) -> Tensor:
    return m.compute_loss(batch, 0)[0]["loss"]


def _segmentation(m: Any, batch: dict) -> Tensor:
    return m.loss(m(batch), batch["mask"])


def _dino_before_step(m: Any, opt: torch.optim.Optimizer) -> None:
    m.on_before_optimizer_step(opt)  # per-parameter clipping, frozen last layer (epoch 0)


def _dino_after_step(m: Any) -> None:
    from rsfuse.models.momentum import ema_update

    ema_update(m.teacher, m.student, float(m.hparams.momentum_teacher))


#: step name → (loss of one batch, before ``optimizer.step``, after it).
BARE_STEPS: dict[str, tuple[Callable[..., Tensor], Callable | None, Callable | None]] = {
    "classification": (_classification, None, None),
    "mgsvit": (_mgsvit, None, None),
    "dino": (_dino, _dino_before_step, _dino_after_step),
    "moco": (_moco, None, None),
    "cromss": (_cromss, None, None),
    "segmentation": (_segmentation, None, None),
}


# ---------------------------------------------------------------------------- data
class RepeatDataset(Dataset):
    """``dataset`` repeated to ``length`` items (index ``i`` reads item ``i mod n``; each
    read still decodes the sample), keeping the store's batch read (``__getitems__``)."""

    def __init__(self, dataset: Dataset, length: int) -> None:
        self.dataset = dataset
        self.n = len(dataset)  # type: ignore[arg-type]
        self.length = max(int(length), self.n)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index % self.n]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("dataset", "n", "length"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


class _RepeatBatches(RepeatDataset):
    """:class:`RepeatDataset` over a dataset with a batch read."""

    def __getitems__(self, indices: list[int]) -> Any:
        return self.dataset.__getitems__([i % self.n for i in indices])  # type: ignore[attr-defined]


def repeat(dataset: Dataset, length: int) -> RepeatDataset:
    """:class:`RepeatDataset`, with the batch read when ``dataset`` has one."""
    cls = _RepeatBatches if hasattr(dataset, "__getitems__") else RepeatDataset
    return cls(dataset, length)


def prepare_data(kind: str, size: str, cache: Path, workers: int = 2) -> list[str]:
    """Synthetic data of ``kind`` (written once under ``cache``); the ``--data.*``
    overrides that point a config at it."""
    from rsfuse.data.convert import convert
    from rsfuse.data.store import MANIFEST
    from rsfuse.data.synthetic import synthesize

    n = LOCATIONS[kind][size]
    ps = PATCH.get(kind, {}).get(size)
    layout = {"ben": "bigearthnet-v2", "dfc": "dfc2020", "noldo": "noldo-s12"}[kind]
    src = cache / (f"{layout}-{n}" + (f"-{ps}" if ps else ""))
    done = src / ".rsfuse-bench-complete"
    if not done.is_file():
        kw: dict[str, Any] = {} if ps is None else {"patch_size": ps}
        if kind == "noldo":
            kw["n_downstream"] = 2
        synthesize(layout, src, n=n, seed=0, workers=workers, progress=False, **kw)
        done.write_text("written by rsfuse benchmark train\n")
    out = [f"--data.init_args.root={src}"]
    if kind == "noldo":  # CromSS reads its label prior from the NoLDO-S12 files
        return [*out, f"--data.init_args.patch_size={ps}"]
    store = src.with_name(src.name + ".store")
    if not (store / MANIFEST).is_file():
        convert(layout, src, store, workers=workers, **({} if ps is None else {"patch_size": ps}))
    out.append(f"--data.init_args.store={store}")
    if kind == "ben":
        return [*out, "--data.init_args.include_cloudy=true", "--data.init_args.include_snow=true"]
    return [*out, f"--data.init_args.patch_size={ps}"]


# ---------------------------------------------------------------------------- measuring
def sync(device: torch.device) -> None:
    """Wait for the device (CUDA) to finish its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    """Start a new peak-memory window (GPU allocator; CPU: the process's VmHWM)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_mb(device: torch.device) -> float | None:
    """Peak memory since :func:`reset_peak` (MB): GPU allocations, or resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e6
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1e3
    except OSError:
        return None
    return None


#: Calls that read a tensor's value on the host (each waits for the GPU there).
SYNC_CALLS = frozenset(
    ["item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy", "nonzero",
     "argwhere", "masked_select", "unique", "unique_consecutive", "bincount", "equal",
     "allclose", "cpu"]
)  # fmt: skip


class HostSyncAudit(TorchFunctionMode):
    """Counts tensor calls that would synchronise the host with a GPU (:data:`SYNC_CALLS`,
    boolean-mask indexing, ``repeat_interleave`` without ``output_size``), each with the
    first calling frame outside torch (``file:line function``)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        hit = name in SYNC_CALLS
        if name in ("__getitem__", "__setitem__") and len(args) > 1:
            idx = args[1] if isinstance(args[1], tuple) else (args[1],)
            hit = any(isinstance(i, Tensor) and i.dtype == torch.bool for i in idx)
        if name == "repeat_interleave" and "output_size" not in kwargs:
            hit = any(isinstance(a, Tensor) for a in args[1:2])
        if name == "to" and any(_is_cpu(a) for a in [*args[1:], kwargs.get("device")]):
            hit = isinstance(args[0], Tensor) and args[0].device.type != "cpu"
        if hit:
            where = _caller()
            if where is not None:
                key = f"{name} at {where}"
                self.calls[key] = self.calls.get(key, 0) + 1
        return func(*args, **kwargs)


def _is_cpu(a: Any) -> bool:
    return (isinstance(a, str) and a == "cpu") or (isinstance(a, torch.device) and a.type == "cpu")


def _caller() -> str | None:
    """The innermost frame outside torch (and this module): ``path:line function``; None
    for a call inside ``torch.optim`` (its step counters live on the host even on a GPU:
    reading them is no synchronisation)."""
    torch_dir = os.path.dirname(torch.__file__)
    optim_dir = os.path.join(torch_dir, "optim")
    f = sys._getframe(2)
    while f is not None and (
        f.f_code.co_filename.startswith(torch_dir) or f.f_code.co_filename == __file__
    ):
        if f.f_code.co_filename.startswith(optim_dir):
            return None
        f = f.f_back
    if f is None:
        return "?"
    path = f.f_code.co_filename
    for marker in ("/site-packages/", "/src/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{f.f_lineno} {f.f_code.co_name}"


def summarize_syncs(calls: dict[str, int], steps: int) -> dict[str, Any]:
    """Per-step counts of host syncs: all, and those in rsfuse's own code."""
    ours = {k: v for k, v in calls.items() if " at rsfuse/" in k}
    return {
        "per_step": sum(calls.values()) / max(steps, 1),
        "rsfuse_per_step": sum(ours.values()) / max(steps, 1),
        "where": dict(sorted(calls.items(), key=lambda kv: -kv[1])[:20]),
    }


class CudaSyncCounter:
    """``torch.cuda.set_sync_debug_mode("warn")`` inside, recording each warning's place."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self._ctx: Any = None
        self._rec: list = []

    def __enter__(self) -> CudaSyncCounter:
        self._ctx = warnings.catch_warnings(record=True)
        self._rec = self._ctx.__enter__()
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc: Any) -> None:
        torch.cuda.set_sync_debug_mode("default")
        for w in self._rec:
            if "synchroniz" in str(w.message):
                path = str(w.filename)
                for marker in ("/site-packages/", "/src/"):
                    if marker in path:
                        path = path.split(marker, 1)[1]
                key = f"sync at {path}:{w.lineno}"
                self.calls[key] = self.calls.get(key, 0) + 1
        self._ctx.__exit__(*exc)


def busy_fraction(intervals: Sequence[tuple[float, float]], wall: float) -> float:
    """Fraction of ``wall`` covered by the union of ``(start, end)`` intervals (same unit)."""
    total, end = 0.0, float("-inf")
    for s, e in sorted(intervals):
        if e <= end:
            continue
        total += e - max(s, end)
        end = e
    return total / wall if wall > 0 else float("nan")


def _kernel_intervals(prof: Any) -> list[tuple[float, float]]:
    """(start, end) in µs of every GPU kernel a ``torch.profiler`` run recorded."""
    from torch.autograd import DeviceType

    out = []
    for e in prof.events():
        if getattr(e, "device_type", None) == DeviceType.CUDA and e.time_range is not None:
            out.append((float(e.time_range.start), float(e.time_range.end)))
    return out


class StepTimer(Callback):
    """Times ``steps`` whole training iterations after ``warmup`` (from one step's start to
    the next's), and the host time between steps; then profiles ``busy_steps`` steps
    (CUDA: GPU busy fraction) and audits ``audit_steps`` steps for host syncs."""

    def __init__(
        self, device: torch.device, warmup: int, steps: int, busy_steps: int = 0,
        audit_steps: int = 0,
    ) -> None:  # fmt: skip
        self.device, self.warmup, self.steps = device, warmup, steps
        self.busy_steps = busy_steps if device.type == "cuda" else 0
        self.audit_steps = audit_steps
        self.t0: float | None = None
        self.t1: float | None = None
        self.cpu0 = self.cpu1 = 0.0
        self.last_end: float | None = None
        self.last_end_cpu = 0.0
        self.between = 0.0
        self.between_cpu = 0.0
        self.peak: float | None = None
        self.busy: float | None = None
        self.syncs: dict[str, Any] | None = None
        self.error: str | None = None
        self._prof: Any = None
        self._prof_t0 = 0.0
        self._audit: Any = None

    @property
    def total_steps(self) -> int:
        """Steps the fit must run (the last one only closes the timed window)."""
        return self.warmup + self.steps + self.busy_steps + self.audit_steps + 1

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, i: int) -> None:
        now, now_cpu = time.perf_counter(), time.thread_time()
        w, n, dev = self.warmup, self.steps, self.device
        if self.last_end is not None and w < i <= w + n:
            self.between += now - self.last_end
            self.between_cpu += now_cpu - self.last_end_cpu
        if i == w:
            sync(dev)
            reset_peak(dev)
            self.t0, self.cpu0 = time.perf_counter(), time.thread_time()
        elif i == w + n:
            sync(dev)
            self.t1, self.cpu1 = time.perf_counter(), time.thread_time()
            self.peak = peak_mb(dev)
        if self.busy_steps and i == w + n:
            from torch.profiler import ProfilerActivity, profile

            self._prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
            self._prof.__enter__()
            self._prof_t0 = time.perf_counter()
        first_audit = w + n + self.busy_steps
        if self.audit_steps and first_audit <= i < first_audit + self.audit_steps:
            # CUDA: everything from here to the last audited step's end (host tensors never
            # synchronise); CPU: only the steps themselves (the loader hands over host
            # tensors, which a GPU run reads without waiting for the GPU)
            if self._audit is None:
                self._audit = CudaSyncCounter() if dev.type == "cuda" else HostSyncAudit()
                self._audit.__enter__()
            elif dev.type != "cuda":
                self._audit.__enter__()

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, i: int
    ) -> None:
        first = self.warmup + self.steps
        if self._prof is not None and i == first + self.busy_steps - 1:
            sync(self.device)
            wall_us = (time.perf_counter() - self._prof_t0) * 1e6
            self._prof.__exit__(None, None, None)
            try:
                self.busy = busy_fraction(_kernel_intervals(self._prof), wall_us)
            except Exception as e:  # the profiler's event format differs between versions
                self.error = f"gpu busy not measured: {type(e).__name__}: {e}"
            self._prof = None
        last_audit = first + self.busy_steps + self.audit_steps - 1
        if self._audit is not None and i == last_audit:
            self._audit.__exit__(None, None, None)
            self.syncs = summarize_syncs(self._audit.calls, self.audit_steps)
            self._audit = None
        elif self._audit is not None and self.device.type != "cuda":
            self._audit.__exit__(None, None, None)  # paused until the next step starts
        self.last_end, self.last_end_cpu = time.perf_counter(), time.thread_time()


def flops_of(step: Callable[[], Tensor]) -> float:
    """FLOPs of one forward and backward pass (``FlopCounterMode``)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        step().backward()
    return float(fc.get_total_flops())


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if str(precision).startswith("bf16"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if str(precision).startswith("16"):
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def _device_batch(dm: Any, device: torch.device) -> dict:
    """One training batch of the datamodule, on ``device``, normalised (no augmentation)."""
    from lightning.fabric.utilities.apply_func import move_data_to_device

    dm.setup("fit")
    train = dm.split_dataset("train")
    if not isinstance(train, RepeatDataset):  # a full batch even from a tiny split
        dm.datasets["train"] = repeat(train, 2 * int(dm.batch_size))
    batch = next(iter(dm.train_dataloader()))
    batch = move_data_to_device(batch, device)
    return dm.normalize(batch)


def _speed(config: dict[str, Any], device: torch.device, model: nn.Module) -> Any:
    from rsfuse.training.speed import SpeedSettings

    return SpeedSettings(**(config.get("speed") or {})).resolve(device, model)


def run_bare(
    built: Any, workload: Workload, device: torch.device, warmup: int, steps: int
) -> dict[str, Any]:
    """The bare loop on one fixed batch (see the module docstring)."""
    from rsfuse.training.optim import build_optimizer
    from rsfuse.training.speed import apply_channels_last, compile_in_place

    m, dm = built.model, built.datamodule
    loss_fn, before, after = BARE_STEPS[workload.step]
    precision = str(built.config["trainer"].get("precision", "32-true"))
    speed = _speed(built.config, device, m)
    m.to(device).train()
    batch = _device_batch(dm, device)
    bs = int(next(v for v in batch.values() if isinstance(v, Tensor)).shape[0])

    def forward() -> Tensor:
        with _autocast(device, precision):
            return loss_fn(m, batch)

    flops = flops_of(forward)  # eager, before compilation
    m.zero_grad(set_to_none=True)
    if speed.tf32:
        torch.set_float32_matmul_precision("high")
    if speed.channels_last:
        apply_channels_last(m)
    if speed.compile:
        compile_in_place(m, speed.compile_mode)
    settings = m.optim_settings()
    opt = build_optimizer(
        m.optimized_module(), name=settings.name, lr=settings.lr,
        weight_decay=settings.weight_decay, betas=tuple(settings.betas),
        momentum=settings.momentum, fused=speed.fused_optimizer,
    )  # fmt: skip

    def one_step() -> None:
        opt.zero_grad(set_to_none=True)
        forward().backward()
        if before is not None:
            before(m, opt)
        opt.step()
        if after is not None:
            after(m)

    for _ in range(warmup):
        one_step()
    sync(device)
    reset_peak(device)
    t0, cpu0 = time.perf_counter(), time.thread_time()
    for _ in range(steps):
        one_step()
    sync(device)
    dt = (time.perf_counter() - t0) / steps
    return {
        "step_s": dt, "samples_per_s": bs / dt, "batch": bs, "flops_per_step": flops,
        "main_thread_cpu_s": (time.thread_time() - cpu0) / steps,
        "peak_mb": peak_mb(device), "speed": speed.as_dict(), "precision": precision,
    }  # fmt: skip


class _LoadedFixedBatches:
    """The real loader's batches fetched (and dropped) while the fixed batch is yielded:
    the loader workers and the handover run as in the real fit, the step sees the fixed
    batch."""

    def __init__(self, loader: Any, batch: dict, n: int) -> None:
        self.loader, self.batch, self.n = loader, batch, n

    def __iter__(self) -> Any:
        for i, _ in enumerate(self.loader):
            if i >= self.n:
                return
            yield self.batch

    def __len__(self) -> int:
        return min(self.n, len(self.loader))


class _FixedBatches:
    """``n`` times the same (device, normalised) batch: a loader with no data path."""

    def __init__(self, batch: dict, n: int) -> None:
        self.batch, self.n = batch, n

    def __iter__(self) -> Any:
        return iter([self.batch] * self.n)

    def __len__(self) -> int:
        return self.n


def run_rsfuse(
    built: Any, device: torch.device, warmup: int, steps: int, busy: int, audit: int,
    fixed: bool = False, loaded: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """``trainer.fit`` of the built run, timed by :class:`StepTimer`.

    ``fixed``: the bare loop's fixed device batch instead of the data path (the loader
    yields it again and again; no batch transforms), so the time is the model's and
    Lightning's only. ``loaded`` (with ``fixed``): the real loader still runs and hands
    over its batches, which are dropped (:class:`_LoadedFixedBatches`).
    """
    dm, trainer = built.datamodule, built.trainer
    timer = StepTimer(device, warmup, steps, busy, audit)
    if trainer.max_steps != timer.total_steps:
        raise RuntimeError(f"built with max_steps {trainer.max_steps}, not {timer.total_steps}")
    if fixed:
        batch = _device_batch(dm, device)
        n = timer.total_steps + 2
        if loaded:
            real = dm.train_dataloader  # bound before the override below
            train = dm.split_dataset("train")
            train = train.dataset if isinstance(train, RepeatDataset) else train
            dm.datasets["train"] = repeat(train, int(dm.batch_size) * n)
            dm.train_dataloader = lambda: _LoadedFixedBatches(real(), batch, n)
        else:
            dm.train_dataloader = lambda: _FixedBatches(batch, n)
        dm.on_after_batch_transfer = lambda b, i: b
    else:
        bs = int(dm.batch_size)
        dm.datasets["train"] = repeat(dm.split_dataset("train"), bs * (timer.total_steps + 2))
    trainer.callbacks.append(timer)
    trainer.fit(built.model, datamodule=dm)
    if timer.t0 is None or timer.t1 is None:
        raise RuntimeError(f"the fit stopped before {warmup + steps} steps")
    bs = int(dm.batch_size)
    dt = (timer.t1 - timer.t0) / steps
    speed = getattr(built.model, "speed", None)
    return {
        "step_s": dt, "samples_per_s": bs / dt, "batch": bs,
        "main_thread_cpu_s": (timer.cpu1 - timer.cpu0) / steps,
        "between_steps_s": timer.between / steps,
        "between_steps_cpu_s": timer.between_cpu / steps, "peak_mb": timer.peak,
        "gpu_busy": timer.busy, "syncs": timer.syncs,
        "speed": speed.as_dict() if speed is not None else None, "note": timer.error,
    }  # fmt: skip


class _Training:
    """Stands in for a trainer in :func:`run_data_alone`: ``training`` is True."""

    training = True


def run_data_alone(built: Any, device: torch.device, batches: int) -> dict[str, Any]:
    """Samples/s of the data path alone: loader, copy to the device, batch transforms."""
    from lightning.fabric.utilities.apply_func import move_data_to_device

    dm = built.datamodule
    dm.setup("fit")
    speed = _speed(built.config, device, built.model)
    dm.pin_memory = speed.pin_memory
    dm.prefetch_factor = speed.prefetch_factor
    dm.transforms_in_workers = speed.transforms_in_workers
    dm.datasets["train"] = repeat(dm.split_dataset("train"), dm.batch_size * (batches + 3))
    it = iter(dm.train_dataloader())
    dm.trainer = _Training()  # on_after_batch_transfer augments while "training"

    def one() -> int:
        b = dm.on_after_batch_transfer(move_data_to_device(next(it), device), 0)
        return int(b["s1" if "s1" in b else "s2"].shape[0])

    if device.type != "cuda":  # host syncs of the batch transforms (a GPU would wait)
        audit = HostSyncAudit()
        b = dm.normalize(move_data_to_device(next(it), device))
        with audit:
            b = dm.augment(b) if dm.augmentation is not None else dm.normalize(b)
        syncs = summarize_syncs(audit.calls, 1)
    else:
        one()  # worker start-up
        syncs = None
    sync(device)
    t0 = time.perf_counter()
    n = sum(one() for _ in range(batches))
    sync(device)
    dt = time.perf_counter() - t0
    it = iter(())  # the loader's workers end with their iterator
    return {"samples_per_s": n / dt, "batches": batches, "transform_syncs": syncs}


def build(
    w: Workload, size: str, device: torch.device, data: list[str], args: argparse.Namespace,
    run_dir: Path, extra: Sequence[str] = (),
) -> Any:  # fmt: skip
    """The workload's run from its packaged config through ``build_run``."""
    import rsfuse.data.datamodules  # noqa: F401  (class paths)
    from rsfuse.training.cli import build_run

    configs = [w.config] + ([w.tiny] if size == "tiny" else [])
    batch = args.batch_size or (w.tiny_batch if size == "tiny" else w.batch)
    accel = "gpu" if device.type == "cuda" else "cpu"
    ov = [
        f"--trainer.accelerator={accel}", "--trainer.devices=1", "--trainer.strategy=auto",
        "--trainer.max_epochs=1000", "--trainer.limit_val_batches=0",
        "--trainer.num_sanity_val_steps=0", "--trainer.sync_batchnorm=false",
        f"--data.init_args.num_workers={args.workers}", *data, *w.overrides,
    ]  # fmt: skip
    if batch:
        ov.append(f"--data.init_args.batch_size={batch}")
    if args.precision:
        ov.append(f"--trainer.precision={args.precision}")
    ov += [f"--speed.{k}" for k in args.speed or []]
    if w.step in ("mgsvit", "dino", "moco"):
        ov.append("--model.init_args.export_path=null")
    if w.step == "cromss":
        ov.append("--model.init_args.export_dir=null")
    if w.step == "segmentation":
        ov.append("--model.init_args.plot_samples=0")
    return build_run(configs, [*ov, *extra], run_dir=run_dir, seed=0)


#: Per-step figures of a phase that :func:`median_of_rounds` takes the median of.
ROUND_KEYS = (
    "step_s", "main_thread_cpu_s", "between_steps_s", "between_steps_cpu_s", "samples_per_s",
)  # fmt: skip


def median_of_rounds(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One phase over ``--rounds`` rounds: the first round's result with each of
    :data:`ROUND_KEYS` replaced by its median over the rounds (all values kept under
    ``rounds``)."""
    import statistics

    out = dict(results[0])
    if len(results) > 1:
        out["rounds"] = {k: [r[k] for r in results] for k in ROUND_KEYS if k in results[0]}
        for k, values in out["rounds"].items():
            out[k] = statistics.median(values)
    return out


def measure(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """All phases of one workload; errors are reported, not raised."""
    w = WORKLOADS[name]
    size = args.size
    cache = Path(args.data)
    cache.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"workload": name, "title": w.title, "size": size}
    try:
        data = prepare_data(w.data, size, cache, args.prepare_workers)
        with tempfile.TemporaryDirectory(prefix=f"rsfuse-bench-{name}-") as tmp:
            rounds: dict[str, list[dict[str, Any]]] = {}
            phases = [("fixed", True)] if args.fixed else []
            if args.loaded and int(args.workers) > 0:
                phases.append(("loaded", True))
            # --rounds: the phases in turn, again and again, so that a drift in a shared
            # machine's load reaches all of them; each phase's median is reported
            for r in range(max(1, int(args.rounds))):
                bare_run = build(w, size, device, data, args, Path(tmp) / f"bare{r}")
                res = run_bare(bare_run, w, device, args.warmup, args.steps)
                rounds.setdefault("bare", []).append(res)
                out["config"] = {k: bare_run.config.get(k) for k in ("trainer", "speed")}
                del bare_run
                _free(device)
                for phase, fixed in [*phases, ("rsfuse", False)]:
                    first = r == 0  # GPU busy fraction and the sync audit: once
                    busy, audit = (
                        (args.gpu_busy, args.audit_syncs) if first and not fixed else (0, 0)
                    )
                    steps = StepTimer(device, args.warmup, args.steps, busy, audit).total_steps
                    run = build(
                        w, size, device, data, args, Path(tmp) / f"{phase}{r}",
                        [f"--trainer.max_steps={steps}"],
                    )  # fmt: skip
                    res = run_rsfuse(
                        run, device, args.warmup, args.steps, busy, audit, fixed, phase == "loaded"
                    )
                    rounds.setdefault(phase, []).append(res)
                    del run
                    _free(device)
            for phase, results in rounds.items():
                out[phase] = median_of_rounds(results)
            if args.data_batches:
                alone = build(w, size, device, data, args, Path(tmp) / "data")
                out["data_alone"] = run_data_alone(alone, device, args.data_batches)
                del alone
                _free(device)
        bare = out["bare"]
        out["ratio"] = out["rsfuse"]["step_s"] / bare["step_s"]
        out["cpu_ratio"] = out["rsfuse"]["main_thread_cpu_s"] / bare["main_thread_cpu_s"]
        if "fixed" in out:  # Lightning and rsfuse's step alone, without the data path
            out["fixed_ratio"] = out["fixed"]["step_s"] / bare["step_s"]
            out["fixed_cpu_ratio"] = out["fixed"]["main_thread_cpu_s"] / bare["main_thread_cpu_s"]
        if "loaded" in out:  # ... plus the loader running beside it, its batches unused
            out["loaded_cpu_ratio"] = out["loaded"]["main_thread_cpu_s"] / bare["main_thread_cpu_s"]
        peak = args.peak_tflops or peak_tflops(device)
        f = out["bare"]["flops_per_step"]
        out["achieved_tflops"] = f / out["rsfuse"]["step_s"] / 1e12
        if peak and device.type == "cuda":
            out["mfu"] = f / out["rsfuse"]["step_s"] / (peak * 1e12)
            out["mfu_bare"] = f / out["bare"]["step_s"] / (peak * 1e12)
    except Exception as e:  # one failing workload must not hide the others
        out["error"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc()[-4000:]
        print(out["traceback"], file=sys.stderr)
        _free(device)
    return out


def _free(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def peak_tflops(device: torch.device) -> float | None:
    """Dense bf16 peak of a known GPU (:data:`PEAK_BF16_TFLOPS`), else None."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, v in PEAK_BF16_TFLOPS.items():
        if key in name:
            return v
    return None


def machine(device: torch.device) -> dict[str, Any]:
    """The device and software the figures come from."""
    info: dict[str, Any] = {
        "device": device.type,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["peak_bf16_tflops"] = peak_tflops(device)
    else:
        info["cpu"] = platform.processor() or platform.machine()
    try:
        import lightning

        info["lightning"] = lightning.__version__
    except ImportError:
        pass
    return info


def table(res: dict[str, Any]) -> str:
    """The results as a text table."""
    m = res["machine"]
    dev = m.get("gpu") or f"{m['cpu_count']}-core CPU ({m.get('cpu', '')})"
    cuda = m["device"] == "cuda"
    lines = [
        f"machine: {dev}, torch {m['torch']}, {m['torch_threads']} torch thread(s), "
        f"load average (1 min) {m['loadavg_1min_before']} before, "
        f"{m.get('loadavg_1min_after', '?')} after; {m['date']}; size {res['size']}, "
        f"{res['workers']} loader worker(s), {res['steps']} timed steps after {res['warmup']}"
        + (
            f", median of {res['args']['rounds']} rounds"
            if res["args"].get("rounds", 1) > 1
            else ""
        ),
        "",
        "wall time per step (ms) and samples/s:",
        f"{'workload':18s} {'batch':>5s} {'samples/s':>10s} {'rsfuse':>8s} {'fixed':>8s} "
        f"{'bare':>8s} {'ratio':>6s} {'fixed':>6s} {'between':>8s} {'data/s':>8s} "
        f"{'peak MB':>8s} {'MFU' if cuda else 'GFLOP/s':>8s}",
    ]
    ok = [r for r in res["results"] if "error" not in r]

    def ms(r: dict[str, Any], phase: str, key: str = "step_s") -> str:
        v = r.get(phase, {}).get(key)
        return f"{1e3 * v:8.1f}" if v is not None else f"{'-':>8s}"

    def ratio(r: dict[str, Any], key: str) -> str:
        return f"{r[key]:6.3f}" if key in r else f"{'-':>6s}"

    for r in res["results"]:
        if "error" in r:
            lines.append(f"{r['workload']:18s} FAILED: {r['error'][:100]}")
            continue
        a = r["rsfuse"]
        alone = r.get("data_alone", {}).get("samples_per_s")
        perf = (
            f"{100 * r['mfu']:7.1f}%" if cuda and r.get("mfu") is not None
            else f"{1e3 * r['achieved_tflops']:8.2f}"
        )  # fmt: skip
        lines.append(
            f"{r['workload']:18s} {a['batch']:5d} {a['samples_per_s']:10.1f} "
            f"{ms(r, 'rsfuse')} {ms(r, 'fixed')} {ms(r, 'bare')} {ratio(r, 'ratio')} "
            f"{ratio(r, 'fixed_ratio')} {ms(r, 'rsfuse', 'between_steps_s')} "
            f"{'-' if alone is None else f'{alone:.0f}':>8s} "
            f"{a['peak_mb'] or float('nan'):8.0f} {perf}"
        )
    lines += [
        "",
        "main-thread CPU time per step (ms; loader workers not counted):",
        f"{'workload':18s} {'rsfuse':>8s} {'fixed':>8s} {'loaded':>8s} {'bare':>8s} "
        f"{'ratio':>6s} {'fixed':>6s} {'loaded':>6s} {'between':>8s}",
    ]
    for r in ok:
        lines.append(
            f"{r['workload']:18s} {ms(r, 'rsfuse', 'main_thread_cpu_s')} "
            f"{ms(r, 'fixed', 'main_thread_cpu_s')} {ms(r, 'loaded', 'main_thread_cpu_s')} "
            f"{ms(r, 'bare', 'main_thread_cpu_s')} {ratio(r, 'cpu_ratio')} "
            f"{ratio(r, 'fixed_cpu_ratio')} {ratio(r, 'loaded_cpu_ratio')} "
            f"{ms(r, 'rsfuse', 'between_steps_cpu_s')}"
        )
    if any(r["rsfuse"].get("gpu_busy") is not None for r in ok):
        lines.append("GPU busy (kernel time / wall time over profiled steps): " + ", ".join(
            f"{r['workload']} {100 * r['rsfuse']['gpu_busy']:.1f}%" for r in ok
            if r["rsfuse"].get("gpu_busy") is not None))  # fmt: skip
    for r in ok:
        s = r["rsfuse"].get("syncs")
        if s is not None:
            lines.append(
                f"host syncs per step, {r['workload']}: {s['per_step']:.1f} "
                f"(in rsfuse code {s['rsfuse_per_step']:.1f})"
                + "".join(f"\n    {n}x {k}" for k, n in list(s["where"].items())[:6])
            )
        s = (r.get("data_alone") or {}).get("transform_syncs")
        if s and s["per_step"]:
            lines.append(
                f"host syncs in the batch transforms, {r['workload']}: {s['per_step']:.0f}"
                + "".join(f"\n    {n}x {k}" for k, n in list(s["where"].items())[:4])
            )
    lines.append(
        "rsfuse: Lightning with the real data path; fixed: Lightning on the bare loop's fixed "
        "device batch (no loader, no batch transforms); bare: plain PyTorch loop, same model, "
        "batch, optimiser, precision, switches; loaded: fixed, with the real loader running "
        "and handing over batches that are dropped; ratio = rsfuse / bare, fixed = fixed / "
        "bare, loaded = loaded / bare; between: host time between two steps; data/s: the data "
        "path alone"
    )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rsfuse benchmark train",
        description="Training throughput of every method (samples/s, step time, peak memory, "
        "MFU) through rsfuse (Lightning, real data path) and in a bare PyTorch loop on the "
        "same model and batch; prints a table, saves JSON.",
    )
    p.add_argument(
        "--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS),
        help="workloads to run (default: all)",
    )  # fmt: skip
    p.add_argument(
        "--size", choices=("auto", "full", "tiny"), default="auto",
        help="full: the configs' sizes (GPU); tiny: their CPU overrides; auto: full on a GPU",
    )  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--steps", type=int, default=None, help="timed steps (GPU 30, CPU 10)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (GPU 8, CPU 3)")
    p.add_argument("--batch-size", type=int, default=None, help="per-device batch (all)")
    p.add_argument("--workers", type=int, default=None, help="loader workers (GPU 8, CPU 1)")
    p.add_argument("--precision", default=None, help="trainer precision (default: config's)")
    p.add_argument(
        "--speed", nargs="*", metavar="KEY=VALUE",
        help="speed switches for both loops, e.g. compile=false prefetch_factor=4",
    )  # fmt: skip
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--no-fixed", dest="fixed", action="store_false",
        help="skip the rsfuse run on the bare loop's fixed batch (framework cost alone)",
    )  # fmt: skip
    p.add_argument(
        "--loaded", action=argparse.BooleanOptionalAction, default=None,
        help="also time the fixed-batch fit with the real loader running beside it, its "
        "batches dropped (the loader's cost to the main thread; default: on a CPU)",
    )  # fmt: skip
    p.add_argument(
        "--rounds", type=int, default=1,
        help="time every phase this many times, in turn, and report medians (a shared "
        "machine's load drifts between phases)",
    )  # fmt: skip
    p.add_argument("--data-batches", type=int, default=None, help="data-alone batches (0: off)")
    p.add_argument("--gpu-busy", type=int, default=5, help="profiled steps (CUDA; 0: off)")
    p.add_argument("--audit-syncs", type=int, default=2, help="audited steps (0: off)")
    p.add_argument("--peak-tflops", type=float, default=None, help="device bf16 peak")
    p.add_argument(
        "--data", default=str(Path.home() / ".cache/rsfuse-bench/train"),
        help="cache folder of the synthetic datasets (written once)",
    )  # fmt: skip
    p.add_argument("--prepare-workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--json", default="train_throughput.json", help="where to save the results")
    p.add_argument(
        "--prepare-only", action="store_true",
        help="only write the synthetic data of the chosen workloads (for --size) and exit",
    )  # fmt: skip
    return p


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``rsfuse benchmark train`` and ``benchmarks/train_throughput.py``."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.prepare_only:
        size = "full" if args.size == "full" or (args.size == "auto" and _cuda(args)) else "tiny"
        for kind in sorted({WORKLOADS[n].data for n in args.workloads}):
            print(kind, " ".join(prepare_data(kind, size, Path(args.data), args.prepare_workers)))
        return
    res = run(args)
    Path(args.json).write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(table(res))
    print(f"saved {args.json}")


def _cuda(args: argparse.Namespace) -> bool:
    """Whether the run uses the GPU (``--device auto`` or ``cuda`` with one present)."""
    return torch.cuda.is_available() and args.device in ("auto", "cuda", "gpu")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every requested workload; the results dict (also saved as JSON)."""
    cuda = _cuda(args)
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    if args.size == "auto":
        args.size = "full" if cuda else "tiny"
    args.steps = args.steps or (30 if cuda else 10)
    args.warmup = args.warmup if args.warmup is not None else (8 if cuda else 3)
    cores = os.cpu_count() or 1
    if args.workers is None:
        args.workers = min(8, cores) if cuda else 1
    if args.data_batches is None:
        args.data_batches = 20 if cuda else 10
    if args.loaded is None:
        args.loaded = not cuda
    if not cuda:
        torch.set_num_threads(args.threads or max(1, cores - args.workers))
    elif args.threads:
        torch.set_num_threads(args.threads)
    load_before = round(os.getloadavg()[0], 2)
    results = []
    for name in args.workloads:
        print(f"[bench] {name} ({args.size}) on {device}", flush=True)
        results.append(measure(name, args, device))
    info = machine(device)
    info["loadavg_1min_before"] = load_before
    info["loadavg_1min_after"] = round(os.getloadavg()[0], 2)
    return {
        "machine": info, "size": args.size, "steps": args.steps, "warmup": args.warmup,
        "workers": args.workers, "results": results, "args": vars(args),
    }  # fmt: skip


__all__ = [
    "BARE_STEPS",
    "WORKLOADS",
    "HostSyncAudit",
    "RepeatDataset",
    "Workload",
    "busy_fraction",
    "main",
    "run",
    "summarize_syncs",
    "table",
]

if __name__ == "__main__":
    main()
