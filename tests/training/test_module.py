"""The base module: scaled learning rate over the global batch, schedules from the
trainer's length, progress counters and the one encoder export format."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from rsfuse.errors import ConfigError
from rsfuse.inputs import InputSpec
from rsfuse.models.checkpoints import read_encoder_config, read_state_dict
from rsfuse.training.module import RsfuseModule
from rsfuse.training.optim import OptimSettings, configure, global_batch_size


class Tiny(RsfuseModule):
    def __init__(self, settings: OptimSettings) -> None:
        super().__init__()
        self.set_input_spec(InputSpec.create(["s1", "s2"], "rgb", "L2A"))
        self.encoder = nn.Sequential(nn.Linear(len(self.channels), 4), nn.LayerNorm(4))
        self.settings = settings

    def optim_settings(self) -> OptimSettings:
        return self.settings


def fake_trainer(batch: int, world: int, accumulate: int, steps: int = 100, epochs: int = 10):
    return SimpleNamespace(
        datamodule=SimpleNamespace(batch_size=batch),
        world_size=world,
        accumulate_grad_batches=accumulate,
        estimated_stepping_batches=steps,
        max_epochs=epochs,
    )


@pytest.mark.parametrize(("world", "accumulate"), [(1, 1), (4, 1), (1, 4), (2, 3)])
def test_scaled_lr_counts_devices_and_accumulation(world: int, accumulate: int) -> None:
    trainer = fake_trainer(batch=32, world=world, accumulate=accumulate)
    assert global_batch_size(trainer) == 32 * world * accumulate
    settings = OptimSettings(name="adamw", lr=1e-3, scale_by_batch=True, schedule="constant")
    opt = configure(Tiny(settings), settings, trainer)["optimizer"]
    expected = 1e-3 * 32 * world * accumulate / 256
    assert all(g["lr"] == pytest.approx(expected) for g in opt.param_groups)


def test_unscaled_lr_is_the_configured_one() -> None:
    settings = OptimSettings(name="sgd", lr=0.05, schedule="constant")
    opt = configure(Tiny(settings), settings, fake_trainer(64, 8, 2))["optimizer"]
    assert isinstance(opt, torch.optim.SGD)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_no_weight_decay_on_biases_and_norms() -> None:
    settings = OptimSettings(name="adamw", lr=1e-3, weight_decay=0.05, schedule="constant")
    model = Tiny(settings)
    opt = configure(model, settings, fake_trainer(8, 1, 1))["optimizer"]
    by_decay = {g["weight_decay"]: g["params"] for g in opt.param_groups}
    assert [p.shape for p in by_decay[0.05]] == [model.encoder[0].weight.shape]
    assert len(by_decay[0.0]) == 3  # linear bias, norm weight and bias


def test_warmup_cosine_follows_the_trainer_length() -> None:
    settings = OptimSettings(lr=1.0, warmup_epochs=2, min_lr=0.1, schedule="warmup_cosine")
    cfg = configure(Tiny(settings), settings, fake_trainer(8, 1, 1, steps=100, epochs=10))
    sched = cfg["lr_scheduler"]["scheduler"]
    assert cfg["lr_scheduler"]["interval"] == "step"

    def lr(step: int) -> float:
        sched.step_update(step)  # what RsfuseModule.lr_scheduler_step does after a step
        return cfg["optimizer"].param_groups[0]["lr"]

    assert lr(0) == pytest.approx(0.0)
    assert lr(10) == pytest.approx(0.5)  # half way through the 20-step warm-up
    assert lr(20) == pytest.approx(1.0)
    assert lr(100) == pytest.approx(0.1)
    assert lr(60) == pytest.approx(0.1 + 0.5 * (1.0 - 0.1))  # half way down the cosine


def test_bad_settings_are_config_errors() -> None:
    for bad in (OptimSettings(lr=-1.0), OptimSettings(schedule="linear"),
                OptimSettings(weight_decay=-0.1), OptimSettings(warmup_epochs=-1)):  # fmt: skip
        with pytest.raises(ConfigError):
            configure(Tiny(bad), bad, fake_trainer(8, 1, 1))


def test_progress_counters_read_the_trainer() -> None:
    settings = OptimSettings(schedule="constant")
    model = Tiny(settings)
    trainer = fake_trainer(8, 1, 1, steps=40, epochs=4)
    trainer.global_step = 0
    model._trainer = trainer  # what Lightning attaches
    assert model.total_steps == 40
    assert model.steps_per_epoch == 10
    assert model.fractional_epoch(25) == pytest.approx(2.5)


def test_export_writes_the_one_format(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = Tiny(OptimSettings())
    config = {"class": "torch.nn.Sequential", "modality": "s1s2",
              "bands": list(model.channels)}  # fmt: skip
    out = model.write_encoder(model.encoder, tmp_path / "enc", config)
    assert str(out) in capsys.readouterr().out
    meta = read_encoder_config(out)
    assert meta is not None and meta["method"] == "Tiny"
    assert meta["bands"] == ["B04", "B03", "B02", "VV", "VH"]
    json.loads(json.dumps(meta))  # plain JSON
    state = read_state_dict(out)
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(state[k], v)


def test_missing_input_spec_is_a_config_error() -> None:
    class NoSpec(RsfuseModule):
        pass

    with pytest.raises(ConfigError, match="input specification"):
        _ = NoSpec().channels


def test_settings_from_hyper_parameters_of_the_same_names() -> None:
    hp = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.8, "num_classes": 19, "mode": "x"}
    s = OptimSettings.from_hparams(hp, schedule="constant")
    assert (s.name, s.lr, s.momentum, s.schedule) == ("sgd", 0.1, 0.8, "constant")
    assert s.weight_decay == OptimSettings().weight_decay  # absent: the default
