"""Exact resume (:mod:`rsfuse.training.resume`): a real ``rsfuse fit`` killed with SIGKILL
at a random step and resumed with ``--ckpt_path last`` ends bitwise equal to a run that
never stopped; ``last`` means the run's own folder; ``last.ckpt`` is written every epoch and
every N steps; evaluating ``last`` without a checkpoint is an error.

The kill step is drawn at random for every run of the suite (``RSFUSE_RESUME_STEP=K``
replays a failure); the failure message names it.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import rsfuse
from rsfuse.cli import run
from rsfuse.data.datamodules.sampler import ResumableSampler
from rsfuse.errors import CheckpointError
from rsfuse.training import resume

REPO = Path(__file__).resolve().parents[2]
SRC = Path(rsfuse.__file__).resolve().parents[1]

#: task → (configs, dataset fixture, overrides). Small batches: several steps per epoch.
RUNS: dict[str, tuple[list[str], str, list[str]]] = {
    "classification": (
        ["classification/ben_v2_s1", "overrides/tiny_cpu"],
        "ben_v2_root",
        ["--trainer.max_epochs=3"],
    ),
    "dino_mm": (
        ["dino_mm/dino_mm_pretrain", "dino_mm/overrides/tiny_cpu"],
        "ben_v2_root",
        ["--trainer.max_epochs=2", "--model.init_args.local_crops_number=2",
         "--model.init_args.global_crops_size=64", "--model.init_args.local_crops_size=32"],
    ),
    "segmentation": (
        ["segmentation/dfc2020_pspnet_finetune", "segmentation/overrides/tiny_cpu"],
        "dfc2020_root",
        ["--trainer.max_epochs=2", "--data.init_args.patch_size=32",
         "--data.init_args.batch_size=2", "--model.init_args.plot_samples=0"],
    ),
}  # fmt: skip

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One thread, here and in the killed subprocess: the same arithmetic in both, and
    faster for these tiny models on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit_args(task: str, root: Path, run_dir: Path) -> list[str]:
    """``rsfuse fit`` arguments of ``task`` on the synthetic ``root``, into ``run_dir``,
    with ``last.ckpt`` after every optimiser step."""
    configs, _, overrides = RUNS[task]
    args = ["fit"]
    for c in configs:
        args += ["--config", c]
    return [
        *args, f"--data.init_args.root={root}", f"--trainer.default_root_dir={run_dir}",
        *overrides, *QUIET, "--trainer.callbacks.every_n_train_steps=1",
    ]  # fmt: skip


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def kill_at(args: list[str], step: int, run_dir: Path, timeout: float = 300.0) -> None:
    """Run ``rsfuse ARGS`` in a subprocess, stopped before the batch after optimiser step
    ``step`` (tests.training.resume_pause.PauseAt), and SIGKILL it there."""
    marker = run_dir / "paused"
    cmd = [
        sys.executable, "-m", "rsfuse", *args,
        "--trainer.callbacks+=tests.training.resume_pause.PauseAt",
        f"--trainer.callbacks.init_args.step={step}",
        f"--trainer.callbacks.init_args.marker={marker}",
    ]  # fmt: skip
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(REPO), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())  # the same arithmetic as in here
    env["CUDA_VISIBLE_DEVICES"] = ""
    log = run_dir / "killed.log"
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=run_dir, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not marker.exists():
                if proc.poll() is not None:
                    pytest.fail(f"rsfuse fit ended (rc {proc.returncode}) before step {step}:\n"
                                + log.read_text()[-3000:])  # fmt: skip
                if time.monotonic() > deadline:
                    pytest.fail(f"rsfuse fit did not reach step {step} in {timeout:.0f} s")
                time.sleep(0.1)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL


def kill_step(total: int) -> int:
    """A random optimiser step in [1, total - 1] (``RSFUSE_RESUME_STEP`` forces one)."""
    forced = os.environ.get("RSFUSE_RESUME_STEP")
    return int(forced) if forced else random.SystemRandom().randint(1, total - 1)


def assert_same_weights(a: dict, b: dict, what: str) -> None:
    sa, sb = a["state_dict"], b["state_dict"]
    assert sa.keys() == sb.keys(), what
    differ = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not differ, f"{what}: {len(differ)} of {len(sa)} tensors differ, e.g. {differ[:3]}"


@pytest.mark.parametrize("task", list(RUNS))
def test_killed_and_resumed_run_is_bitwise_equal_to_an_uninterrupted_one(
    task: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = request.getfixturevalue(RUNS[task][1])

    # uninterrupted; `last` in an empty folder starts from the beginning
    ref_dir = tmp_path / "uninterrupted"
    run([*fit_args(task, root, ref_dir), "--ckpt_path", "last"])
    assert "no last checkpoint" in capsys.readouterr().out
    ref = load(ref_dir / "checkpoints" / "last.ckpt")
    total = int(ref["global_step"])
    max_epochs = int(next(a for a in RUNS[task][2] if "max_epochs" in a).split("=")[1])
    assert ref["epoch"] == max_epochs - 1, "last.ckpt is not at the final epoch"
    assert total >= 2 * max_epochs, f"too few steps to kill in between: {total}"

    # killed with SIGKILL at a random step, then resumed from the same folder
    step = kill_step(total)
    where = f"{task}, killed after step {step} of {total} (replay: RSFUSE_RESUME_STEP={step})"
    run_dir = tmp_path / "killed"
    kill_at(fit_args(task, root, run_dir), step, run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    assert load(last)["global_step"] == step, where
    control = tmp_path / "control"
    shutil.copytree(run_dir, control)
    capsys.readouterr()
    run([*fit_args(task, root, run_dir), "--ckpt_path", "last"])
    assert f"resuming from {last}" in capsys.readouterr().out, where

    out = load(last)
    assert (out["global_step"], out["epoch"]) == (total, ref["epoch"]), where
    assert_same_weights(ref, out, where)

    # the comparison can fail: the same resume without the random state (the training
    # batch augmentation draws other flips and rotations) ends with other weights
    if task == "classification":
        monkeypatch.setattr(resume, "restore_rng", lambda state: None)
        run([*fit_args(task, root, control), "--ckpt_path", "last"])
        # (a moved folder: Lightning numbers the new file last-v1.ckpt; `last` is the newest)
        newest = resume.find_last_checkpoint([str(control / "checkpoints")])
        assert newest is not None and newest.name == "last-v1.ckpt"
        other = load(newest)
        assert other["global_step"] == total
        with pytest.raises(AssertionError, match="tensors differ"):
            assert_same_weights(ref, other, "resumed without the random state")


@pytest.mark.parametrize("cmd", ["test", "validate"])
def test_evaluating_last_without_a_checkpoint_is_an_error(
    cmd: str, ben_v2_root: Path, tmp_path: Path
) -> None:
    args = [cmd, "--config", "classification/ben_v2_s1", "--config", "overrides/tiny_cpu",
            f"--data.init_args.root={ben_v2_root}", f"--trainer.default_root_dir={tmp_path}",
            *QUIET, "--ckpt_path", "last"]  # fmt: skip
    with pytest.raises(CheckpointError, match="no last checkpoint") as info:
        run(args)
    assert str(tmp_path / "checkpoints") in str(info.value)


def test_evaluation_loads_last_and_another_models_last_is_refused(
    ben_v2_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    def args(cmd: str, config: str, *more: str) -> list[str]:
        return [cmd, "--config", config, "--config", "overrides/tiny_cpu",
                f"--data.init_args.root={ben_v2_root}", f"--trainer.default_root_dir={tmp_path}",
                *QUIET, *more]  # fmt: skip

    run(args("fit", "classification/ben_v2_s1", "--trainer.max_epochs=1",
             "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1"))  # fmt: skip
    last = tmp_path / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    run(args("test", "classification/ben_v2_s1", "--trainer.limit_test_batches=1",
             "--ckpt_path", "last"))  # fmt: skip
    assert f"loading {last}" in capsys.readouterr().out
    with pytest.raises(CheckpointError, match="does not fit") as info:  # S2 model, S1 weights
        run(args("fit", "classification/ben_v2_s2", "--ckpt_path", "last"))
    assert str(last) in str(info.value)


# --------------------------------------------------------------------------- pieces
def test_sampler_order_follows_seed_and_epoch_and_resumes_mid_epoch() -> None:
    data = range(20)
    a = ResumableSampler(data, seed=3)
    first = list(a)
    assert sorted(first) == list(range(20))
    assert list(ResumableSampler(data, seed=3)) == first  # not the global generator
    torch.manual_seed(123)
    assert list(ResumableSampler(data, seed=3)) == first
    a.set_epoch(1)
    second = list(a)
    assert second != first and sorted(second) == list(range(20))

    resumed = ResumableSampler(data, seed=3, epoch=1, start=8)
    assert len(resumed) == 20  # the epoch's length, for the loop's bookkeeping
    assert list(resumed) == second[8:]
    assert list(resumed) == second  # the skip applies once
    later = ResumableSampler(data, seed=3, epoch=1, start=8)
    later.set_epoch(2)  # another epoch: the pending skip is dropped
    assert len(list(later)) == 20

    ranks = [list(ResumableSampler(data, seed=3, num_replicas=2, rank=r)) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == list(range(20))


def test_random_state_round_trips_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    import numpy as np

    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    state = resume.capture_rng()
    want = (torch.rand(3), np.random.rand(3), random.random())
    torch.save({"rng": state}, tmp_path / "s.pt")
    resume.restore_rng(load(tmp_path / "s.pt")["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(want[0], got[0]) and np.array_equal(want[1], got[1]) and want[2] == got[2]


def test_last_is_the_newest_last_checkpoint_of_the_folder(tmp_path: Path) -> None:
    assert resume.find_last_checkpoint([str(tmp_path)]) is None
    for i, name in enumerate(["last.ckpt", "last-v1.ckpt", "epoch3.ckpt", ".last.ckpt.tmp-1"]):
        p = tmp_path / name
        p.write_bytes(b"x")
        os.utime(p, ns=(i * 10**9, i * 10**9))
    assert resume.find_last_checkpoint([str(tmp_path)]) == tmp_path / "last-v1.ckpt"
