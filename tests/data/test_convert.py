"""``rsfuse convert``: resumable after a kill, verified, errors naming the source file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rsfuse.benchmarks import data_throughput
from rsfuse.data import convert as cv
from rsfuse.data import store as st
from rsfuse.data.bigearthnet_layout import v2_s2_band
from rsfuse.data.store import StoreDataset
from rsfuse.data.synthetic import synthesize
from rsfuse.errors import DataError


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ben") / "ben-v2"
    synthesize("bigearthnet-v2", root, n=16, seed=5, workers=1, progress=False)
    return root


def _args(source: Path, out: Path, *extra: str) -> list[str]:
    return ["--dataset", "bigearthnet-v2", "--root", str(source), "--out", str(out), *extra]


def _descendants(pid: int) -> set[int]:
    """Pids of all live descendants of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parents.items() if pp == p}
        out |= kids
        todo += kids
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kill_and_resume(source: Path, tmp_path: Path) -> None:
    """SIGKILL a 2-worker conversion: its workers exit, a re-run completes and verifies."""
    out = tmp_path / "ben.store"
    args = _args(source, out, "--shard-size", "1")
    cmd = [sys.executable, "-m", "rsfuse.data.convert", *args, "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(st.done_shards(out)) < 2:
        time.sleep(0.01)
    helpers = _descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = st.done_shards(out)
    assert done and not (out / st.MANIFEST).exists(), "killed before the end, not complete"
    # the pool's processes do not outlive the killed conversion (no orphans, no stall)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(p) for p in helpers):
        time.sleep(0.1)
    assert not [p for p in helpers if _alive(p)], "worker processes outlived the conversion"
    with pytest.raises(DataError, match="manifest"):
        StoreDataset(out, "train")
    done = st.done_shards(out)
    stamps = {k: (out / st.DONE_DIR / str(k)).stat().st_mtime_ns for k in done}
    cv.main(args)  # resume (1 worker: the pool path is covered by the killed run)
    assert (out / st.MANIFEST).is_file()
    # finished shards were not redone
    assert all((out / st.DONE_DIR / str(k)).stat().st_mtime_ns == t for k, t in stamps.items())
    assert cv.verify("bigearthnet-v2", source, out) == 16
    m = json.loads((out / st.MANIFEST).read_text())
    assert m["num_samples"] == 16 and sum(m["splits"].values()) == 16


def test_parallel_convert_and_verify_cli(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "par.store"
    cv.main(_args(source, out, "--workers", "2", "--shard-size", "5"))
    cv.main(_args(source, out, "--verify", "--workers", "2"))
    assert "verified 16 samples" in capsys.readouterr().out
    assert not list(out.rglob("*.tmp-*")), "no temporary files left behind"


def test_missing_source_file_names_it(source: Path, tmp_path: Path) -> None:
    ds_id = cv.plan("bigearthnet-v2", source)["id"].iloc[3]
    band = v2_s2_band(source, ds_id, "B05")
    saved = band.read_bytes()
    band.unlink()
    try:
        with pytest.raises(DataError) as e:
            cv.convert("bigearthnet-v2", source, tmp_path / "x.store", shard_size=4)
        assert str(band) in str(e.value)
    finally:
        band.write_bytes(saved)


def test_corrupt_source_file_names_it(source: Path, tmp_path: Path) -> None:
    ds_id = cv.plan("bigearthnet-v2", source)["id"].iloc[5]
    band = v2_s2_band(source, ds_id, "B02")
    saved = band.read_bytes()
    band.write_bytes(saved[: len(saved) // 3])
    try:
        with pytest.raises(DataError) as e:
            cv.convert("bigearthnet-v2", source, tmp_path / "y.store", shard_size=4, workers=2)
        assert str(band) in str(e.value)
        assert not (tmp_path / "y.store" / st.MANIFEST).exists()
    finally:
        band.write_bytes(saved)


def test_other_folder_is_refused(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(DataError, match="not an rsfuse store"):
        cv.convert("bigearthnet-v2", source, out)


def test_help_mentions_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cv.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "--verify" in text and "--workers" in text and "bigearthnet-v2" in text


def test_benchmark_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    data_throughput.main(
        [
            "--data",
            str(tmp_path / "cache"),
            "--n",
            "12",
            "--samples",
            "8",
            "--slow-samples",
            "8",
            "--workers",
            "1",
            "--batch-size",
            "4",
            "--prepare-workers",
            "1",
            "--json",
            str(out),
        ]
    )
    res = json.loads(out.read_text())
    assert {"geotiff", "store"} <= set(res["readers"])
    assert res["readers"]["store"]["1"]["samples_per_s"] > 0
    assert 0 < res["ratios"]["size_vs_raw"] < 2
    text = capsys.readouterr().out
    assert "store" in text and "samples/s" in text
    if not data_throughput.torchgeo_available():
        assert any("torchgeo" in n for n in res["notes"])
