"""``rsfuse benchmark train`` on tiny sizes (what it reports, not how fast it is)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rsfuse.benchmarks.train_throughput import (
    WORKLOADS,
    HostSyncAudit,
    busy_fraction,
    main,
    median_of_rounds,
    repeat,
    summarize_syncs,
)


def test_every_workload_has_its_packaged_configs() -> None:
    from rsfuse.training.configs import resolve_config

    for w in WORKLOADS.values():
        assert resolve_config(w.config).is_file() and resolve_config(w.tiny).is_file()


def test_tiny_run_reports_every_phase(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "train.json"
    main([
        "--workloads", "seg_pspnet", "--device", "cpu", "--steps", "2",
        "--warmup", "1", "--data-batches", "2", "--audit-syncs", "1",
        "--data", str(tmp_path / "data"), "--json", str(out), "--prepare-workers", "1",
    ])  # fmt: skip
    res = json.loads(out.read_text())
    assert res["size"] == "tiny" and res["machine"]["device"] == "cpu"
    for r in res["results"]:
        assert "error" not in r, r.get("traceback")
        for phase in ("bare", "fixed", "loaded", "rsfuse"):  # "loaded": on a CPU by default
            assert r[phase]["step_s"] > 0 and r[phase]["main_thread_cpu_s"] > 0
        assert r["loaded_cpu_ratio"] == pytest.approx(
            r["loaded"]["main_thread_cpu_s"] / r["bare"]["main_thread_cpu_s"]
        )
        assert r["ratio"] == pytest.approx(r["rsfuse"]["step_s"] / r["bare"]["step_s"])
        assert r["bare"]["flops_per_step"] > 0 and r["achieved_tflops"] > 0
        assert r["rsfuse"]["batch"] == r["bare"]["batch"] == 8
        assert r["data_alone"]["samples_per_s"] > 0
        # no host synchronisation in rsfuse's own code during the audited step
        assert r["rsfuse"]["syncs"]["rsfuse_per_step"] == 0
        assert r["rsfuse"]["speed"]["compile"] is False  # auto: off on a CPU
        assert r["rsfuse"]["speed"]["transforms_in_workers"] is True
        assert "mfu" not in r  # no MFU without a GPU peak
    text = capsys.readouterr().out
    assert "seg_pspnet" in text and "FAILED" not in text


def test_busy_fraction_is_the_union_of_intervals() -> None:
    assert busy_fraction([(0, 2), (1, 3), (5, 6)], 10) == pytest.approx(0.4)
    assert busy_fraction([(0, 10), (2, 3)], 10) == pytest.approx(1.0)
    assert busy_fraction([], 10) == 0.0


def test_sync_audit_finds_host_reads() -> None:
    x = torch.randn(8)
    audit = HostSyncAudit()
    with audit:
        x.sum().item()
        _ = x[x > 0]  # boolean mask: a data-dependent shape
        if x.max() > 100:  # Python branch on a tensor value
            pass
        torch.optim.SGD([torch.nn.Parameter(x.clone())], lr=0.1)  # no read
        y = x * 2 + 1  # no read
    s = summarize_syncs(audit.calls, 1)
    names = " ".join(audit.calls)
    assert s["per_step"] == 3 and "item" in names and "__bool__" in names
    assert "__getitem__" in names and y.shape == x.shape
    # reported where they happen: this file (outside rsfuse's package)
    assert all("test_train_throughput.py" in k for k in audit.calls)
    assert s["rsfuse_per_step"] == 0


def test_repeat_keeps_the_batch_read() -> None:
    class Batched(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int) -> int:
            return i

        def __getitems__(self, idx: list[int]) -> list[int]:
            return [10 + i for i in idx]

    r = repeat(Batched(), 7)
    assert len(r) == 7 and r[5] == 2 and r.__getitems__([4, 5, 6]) == [11, 12, 10]
    plain = repeat(torch.utils.data.TensorDataset(torch.arange(3)), 2)
    assert len(plain) == 3 and not hasattr(plain, "__getitems__")


def test_rounds_report_the_median_of_each_figure() -> None:
    runs = [
        {"step_s": 3.0, "main_thread_cpu_s": 1.0, "batch": 8, "syncs": {"per_step": 0}},
        {"step_s": 1.0, "main_thread_cpu_s": 5.0, "batch": 8, "syncs": None},
        {"step_s": 2.0, "main_thread_cpu_s": 2.0, "batch": 8, "syncs": None},
    ]
    m = median_of_rounds(runs)
    assert m["step_s"] == 2.0 and m["main_thread_cpu_s"] == 2.0  # each figure its own median
    assert m["rounds"]["step_s"] == [3.0, 1.0, 2.0]
    assert m["syncs"] == {"per_step": 0} and m["batch"] == 8  # the rest: the first round's
    assert (
        "rounds" not in median_of_rounds(runs[:1]) and median_of_rounds(runs[:1])["step_s"] == 3.0
    )
