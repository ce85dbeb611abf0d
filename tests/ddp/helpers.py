"""Running ``rsfuse fit`` under DDP (2 CPU processes, gloo) and single-process evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
#: ``rsfuse fit`` arguments of a DDP run on 2 CPU processes.
DDP = ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu"]


def probe_config(tmp: Path, monitor: str | None = None, mode: str = "min") -> Path:
    """A config adding the checkpoint (``tmp/ckpt/last.ckpt``), a CSV logger and
    :class:`~tests.ddp.probe.DDPProbe` (``tmp/probe``) to a run."""
    ckpt: dict[str, Any] = {"dirpath": str(tmp / "ckpt"), "save_last": True}
    if monitor:
        ckpt.update(monitor=monitor, mode=mode)
    cfg = {
        "trainer": {
            "default_root_dir": str(tmp / "run"),
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": {
                "class_path": "lightning.pytorch.loggers.CSVLogger",
                "init_args": {"save_dir": str(tmp / "run"), "name": "", "version": ""},
            },
            "callbacks": [
                {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": ckpt},
                {
                    "class_path": "tests.ddp.probe.DDPProbe",
                    "init_args": {"out_dir": str(tmp / "probe")},
                },
            ],
        }
    }
    path = tmp / "probe.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def rsfuse_fit(args: list[str], tmp: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    """``python -m rsfuse fit ARGS`` in ``tmp`` (rsfuse and the tests importable, CPU only,
    one thread per process); fails the test with the output tail on a non-zero exit."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "rsfuse", "fit", *args], cwd=tmp, env=env, capture_output=True,
        text=True, timeout=timeout,
    )  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(
            f"rsfuse fit failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def ranks(tmp: Path) -> list[dict[str, Any]]:
    """The probe's records of rank 0 and 1."""
    return [json.loads((tmp / "probe" / f"rank{r}.json").read_text()) for r in range(2)]


def validate_single(configs: list[str], overrides: list[str], ckpt: Path) -> dict[str, float]:
    """``trainer.validate`` of a checkpoint in this process, on one CPU device: the logged
    ``val/*`` metrics."""
    from rsfuse.training.cli import build_run

    run = build_run(configs, [*overrides, "--trainer.accelerator=cpu", "--trainer.devices=1"])
    out = run.trainer.validate(run.model, datamodule=run.datamodule, ckpt_path=str(ckpt))[0]
    return {k: float(v) for k, v in out.items() if k.startswith("val/")}


def check_common(tmp: Path, val_size: int | None = None) -> list[dict[str, Any]]:
    """What every DDP run must show: two ranks that end with the same weights (every
    gradient was reduced over both); exports from rank 0 only; each validation sample scored
    exactly once over both ranks. Returns the ranks' records."""
    r0, r1 = ranks(tmp)
    assert (r0["rank"], r1["rank"], r0["world"], r1["world"]) == (0, 1, 2, 2)
    assert r0["params"] == r1["params"], "the ranks' weights differ"
    assert r1["exports"] == []
    if val_size is not None:
        ids = r0["val_ids"] + r1["val_ids"]
        assert len(ids) == len(set(ids)) == val_size, "a sample was validated twice or never"
        assert r0["val_ids"] and r1["val_ids"]
    return [r0, r1]


def fit_ddp(
    configs: list[str], overrides: list[str], tmp: Path, monitor: str | None = None,
    mode: str = "min",
) -> Path:  # fmt: skip
    """``rsfuse fit`` of ``configs`` + ``overrides`` on 2 CPU processes with the probe;
    returns the last checkpoint."""
    probe = probe_config(tmp, monitor, mode)
    args = [a for c in configs for a in ("--config", c)] + ["--config", str(probe)]
    rsfuse_fit([*args, *overrides, *DDP], tmp)
    ckpt = tmp / "ckpt" / "last.ckpt"
    assert ckpt.is_file()
    return ckpt


def assert_same_metrics(ddp: dict[str, float], single: dict[str, float], keys: list[str]) -> None:
    """The DDP run's split metrics equal one process's on the same checkpoint."""
    import pytest

    for key in keys:
        assert ddp[key] == pytest.approx(single[key], rel=1e-5, abs=1e-6), key


def resume_single(configs: list[str], overrides: list[str], ckpt: Path) -> None:
    """One more epoch from a DDP checkpoint, in this process on one CPU device: the weights
    are the checkpoint's when training restarts, at its epoch, and the step count goes on."""
    import torch
    from lightning import Callback

    from rsfuse.training.cli import build_run

    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    epochs = int(state["epoch"]) + 2
    run = build_run(configs, [*overrides, f"--trainer.max_epochs={epochs}"])
    seen: dict[str, bool] = {}

    class Check(Callback):
        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            sd = pl_module.state_dict()
            seen["weights"] = all(torch.equal(sd[k], v) for k, v in state["state_dict"].items())
            seen["epoch"] = trainer.current_epoch == int(state["epoch"]) + 1

    run.trainer.callbacks.append(Check())
    run.trainer.fit(run.model, datamodule=run.datamodule, ckpt_path=str(ckpt))
    assert seen == {"weights": True, "epoch": True}
    assert run.trainer.current_epoch == epochs
    assert run.trainer.global_step > int(state["global_step"])
