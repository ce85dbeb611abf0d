"""Pretraining health checks: collapsed representations are flagged, healthy ones are not,
and every pretraining method logs the checks and prints their summary."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from rsfuse.errors import ConfigError
from rsfuse.training.cli import build_run
from rsfuse.training.health import (
    CollapseWarning,
    HealthChecked,
    HealthOutputs,
    HealthSettings,
    PretrainingHealth,
    assess,
    dense_multi_hot,
    embedding_spread,
    knn_scores,
    micro_map,
)

N, L_, K = 160, 19, 64  # holdout samples (≥ knn_min_samples), labels, DINO prototypes


def _labels(n: int = N, seed: int = 0) -> torch.Tensor:
    """Multi-hot labels with BigEarthNet-like unequal class frequencies (2 % … 40 %)."""
    g = torch.Generator().manual_seed(seed)
    p = torch.linspace(0.02, 0.4, L_)
    return (torch.rand(n, L_, generator=g) < p).float()


def _informative(y: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """Features that encode the labels (plus noise and 13 noise-only dimensions)."""
    g = torch.Generator().manual_seed(seed)
    extra = torch.zeros(len(y), 13)
    return torch.cat([y, extra], 1) + 0.3 * torch.randn(len(y), L_ + 13, generator=g)


# ---------------------------------------------------------------------------- measures
def test_knn_probe_and_spread_separate_collapsed_from_informative_features() -> None:
    y = _labels()
    prior = micro_map(y.mean(0).expand_as(y), y)
    good = _informative(y)
    collapsed = torch.ones(N, 32)
    assert micro_map(knn_scores(good, y), y) > prior + 0.2
    assert micro_map(knn_scores(collapsed, y), y) < prior  # a noisy estimate of the prior
    assert embedding_spread(collapsed) == {"std_ratio": 0.0, "low_std_fraction": 1.0}
    spread = embedding_spread(torch.randn(N, 32))
    assert 0.9 < spread["std_ratio"] < 1.1 and spread["low_std_fraction"] == 0.0
    # a dominant shared direction lowers the ratio (pooled backbone features do this)
    assert embedding_spread(torch.randn(N, 32) + 20.0)["std_ratio"] < 0.2


def test_knn_scores_are_a_leave_one_out_vote() -> None:
    f = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    s = knn_scores(f, y, k=1)
    assert torch.equal(s, y)  # the nearest *other* sample has the same label
    s = knn_scores(torch.ones(4, 2), y, k=3)  # all equally close: the others' mean label
    torch.testing.assert_close(s.sum(1), torch.ones(4))


def test_assess_thresholds() -> None:
    s = HealthSettings()
    healthy = {
        "label_prior_map": 0.30,
        "e/knn_map": 0.45,
        "e/std_ratio": 0.13,
        "dino/teacher_entropy_rel": 0.4,
        "dino/mean_entropy_rel": 0.8,
    }
    assert assess(healthy, s, samples=256) == {}
    bad = {**healthy, "e/knn_map": 0.305, "e/std_ratio": 0.005}
    bad.update({"dino/teacher_entropy_rel": 0.97, "dino/mean_entropy_rel": 0.02})
    found = assess(bad, s, samples=256)
    assert set(found) == {"e/knn_map", "e/std_ratio", "dino/uniform", "dino/one_prototype"}
    assert "log K" in found["dino/uniform"] and "label prior" in found["e/knn_map"]
    # too small a holdout: the k-NN probe is reported, not judged
    assert "e/knn_map" not in assess(bad, s, samples=40)


def test_settings_from_config() -> None:
    assert HealthSettings.from_config(True) == HealthSettings()
    assert HealthSettings.from_config(False) is None
    assert HealthSettings.from_config({"every_n_epochs": 5}).every_n_epochs == 5
    with pytest.raises(ConfigError, match=r"health_checks.*every_n_epoch"):
        HealthSettings.from_config({"every_n_epoch": 5})
    with pytest.raises(ConfigError, match="health_checks"):
        HealthSettings.from_config({"k": 0})
    with pytest.raises(ConfigError, match="health_checks"):
        HealthSettings.from_config("yes")  # type: ignore[arg-type]


def test_dense_multi_hot_keeps_classes_over_the_area_threshold() -> None:
    mask = torch.zeros(2, 10, 10, dtype=torch.long)
    mask[0, :5] = 3  # 50 % class 3, 50 % class 0
    mask[0, 9, 9] = 7  # 1 % class 7: below 5 %
    mask[1] = 255  # unlabelled
    mask[1, 0, :2] = 4  # the only labelled pixels
    y = dense_multi_hot(mask, 9, ignore_index=255)
    assert y[0].nonzero().flatten().tolist() == [0, 3]
    assert y[1].nonzero().flatten().tolist() == [4]


# ---------------------------------------------------------------------------- the callback
class _Samples(Dataset):
    def __init__(self, y: torch.Tensor) -> None:
        self.x, self.y = _informative(y), y
        self.reads = 0

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        self.reads += 1
        return {"x": self.x[i], "label": self.y[i]}


class _Toy(HealthChecked, L.LightningModule):
    """A stand-in pretraining method: healthy (features and DINO outputs follow the inputs)
    or collapsed (constant features, uniform DINO outputs)."""

    def __init__(self, collapsed: bool, health_checks: bool | dict = True) -> None:
        super().__init__()
        self.collapsed = collapsed
        self.w = nn.Parameter(torch.zeros(1))
        self.proto = torch.randn(L_ + 13, K, generator=torch.Generator().manual_seed(2))
        self.set_health_checks(health_checks)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return ((self.w - 1) ** 2).sum() + 0 * batch["x"].sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def health_outputs(self, batch: dict) -> HealthOutputs:
        x = batch["x"]
        if self.collapsed:
            p = torch.full((len(x), K), 1.0 / K)
            return HealthOutputs({"enc": torch.ones(len(x), 8)}, batch["label"], p, p.log())
        logits = x @ self.proto
        p_t = torch.softmax(logits / 0.1, dim=-1)
        log_p_s = torch.log_softmax(logits / 0.5, dim=-1)
        return HealthOutputs({"enc": x}, self.health_labels(batch), p_t, log_p_s)


def _fit(model: L.LightningModule, epochs: int = 2, val: bool = True) -> L.Trainer:
    ds = _Samples(_labels())
    dm = L.LightningDataModule.from_datasets(
        ds, _Samples(_labels()) if val else None, batch_size=64
    )
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_train_batches=1,
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    return trainer


def _health(trainer: L.Trainer) -> PretrainingHealth:
    return next(c for c in trainer.callbacks if isinstance(c, PretrainingHealth))


def test_a_collapsed_run_is_flagged(capsys: pytest.CaptureFixture) -> None:
    with pytest.warns(CollapseWarning, match="embedding collapse") as rec:
        trainer = _fit(_Toy(collapsed=True))
    msgs = " ".join(str(w.message) for w in rec if w.category is CollapseWarning)
    assert "uniform teacher outputs" in msgs and "no better than the label prior" in msgs
    m = trainer.callback_metrics
    assert float(m["health/collapsed"]) == 1.0
    assert float(m["health/enc/std_ratio"]) == 0.0
    assert float(m["health/enc/knn_map"]) < float(m["health/label_prior_map"])
    assert float(m["health/dino/teacher_entropy_rel"]) == pytest.approx(1.0)
    assert float(m["health/dino/kl"]) == pytest.approx(0.0, abs=1e-6)
    out = capsys.readouterr().out
    assert "[rsfuse] health checks of _Toy: 2 check(s)" in out and "COLLAPSED" in out
    # one warning per finding and fit, not one per epoch
    assert sum(w.category is CollapseWarning for w in rec) == 1


def test_a_healthy_run_is_not_flagged(capsys: pytest.CaptureFixture) -> None:
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        trainer = _fit(_Toy(collapsed=False))
    assert not [w for w in rec if w.category is CollapseWarning]
    m = trainer.callback_metrics
    assert float(m["health/collapsed"]) == 0.0
    assert float(m["health/enc/knn_map"]) > float(m["health/label_prior_map"]) + 0.2
    assert float(m["health/enc/std_ratio"]) > 0.5
    assert 0.0 < float(m["health/dino/teacher_entropy_rel"]) < 0.95
    assert float(m["health/dino/mean_entropy_rel"]) > 0.5 and float(m["health/dino/kl"]) > 0
    report = _health(trainer).history[-1]
    assert report.samples == N and not report.collapsed
    assert "status: healthy" in capsys.readouterr().out


def test_schedule_every_n_epochs_and_at_the_end() -> None:
    trainer = _fit(_Toy(False, health_checks={"every_n_epochs": 2}), epochs=3)
    assert [r.epoch for r in _health(trainer).history] == [1, 2]
    # the holdout is read once and kept (it is small), unless the cache is off
    assert trainer.datamodule.val_dataloader().dataset.reads == N
    trainer = _fit(_Toy(False, health_checks={"cache_mb": 0}), epochs=3)
    assert trainer.datamodule.val_dataloader().dataset.reads == 3 * N
    trainer = _fit(_Toy(False, health_checks={"every_n_epochs": 5, "max_samples": 50}), epochs=2)
    (report,) = _health(trainer).history
    assert report.epoch == 1 and report.samples == 50


def test_off_switch_and_runs_without_validation_data(capsys: pytest.CaptureFixture) -> None:
    trainer = _fit(_Toy(True, health_checks=False))
    assert not any(isinstance(c, PretrainingHealth) for c in trainer.callbacks)
    assert not any(k.startswith("health/") for k in trainer.callback_metrics)
    trainer = _fit(_Toy(True), val=False)
    assert _health(trainer).history == []
    assert "none (no validation data" in capsys.readouterr().out


# ---------------------------------------------------------------------------- the methods
PACKAGED = {
    "dino_mm": (["dino_mm/dino_mm_pretrain", "dino_mm/overrides/tiny_cpu"], "teacher"),
    "moco_mm": (["dino_mm/moco_mm_pretrain", "dino_mm/overrides/tiny_cpu"], "encoder"),
    "mgsvit": (["mgsvit/pretrain/c4_s2", "mgsvit/overrides/tiny_cpu_pretrain"], "s2"),
    "cromss": (["cromss/cromss_midf", "cromss/overrides/tiny_cpu"], "s2"),
}


@pytest.mark.parametrize("method", list(PACKAGED))
def test_every_pretraining_method_logs_and_prints_its_health(
    method: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture
) -> None:
    configs, features = PACKAGED[method]
    cromss = method == "cromss"
    root = request.getfixturevalue("noldo_root" if cromss else "ben_v2_root")
    overrides = [
        f"--data.init_args.root={root}", "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1",
    ]  # fmt: skip
    if cromss:
        overrides += ["--data.init_args.patch_size=48", f"--model.init_args.export_dir={tmp_path}"]
    else:
        overrides.append(f"--model.init_args.export_path={tmp_path / 'encoder'}")
    run = build_run(configs, overrides, run_dir=tmp_path, seed=0)
    run.trainer.fit(run.model, datamodule=run.datamodule)
    logged = run.trainer.callback_metrics
    for key in ("knn_map", "std_ratio", "low_std_fraction"):
        assert f"health/{features}/{key}" in logged, key
    assert "health/label_prior_map" in logged and "health/collapsed" in logged
    dino = {"health/dino/teacher_entropy_rel", "health/dino/mean_entropy_rel", "health/dino/kl"}
    assert (dino <= set(logged)) == (method == "dino_mm")
    if method == "dino_mm":  # a probability distribution's entropy lies in [0, log K]
        assert 0.0 <= float(logged["health/dino/teacher_entropy_rel"]) <= 1.0
    assert f"health checks of {type(run.model).__name__}: 1 check(s)" in capsys.readouterr().out
    csv = (tmp_path / "metrics.csv").read_text()
    assert f"health/{features}/knn_map" in csv


def test_yaml_turns_the_checks_off(ben_v2_root: Path, tmp_path: Path) -> None:
    run = build_run(
        ["dino_mm/moco_mm_pretrain", "dino_mm/overrides/tiny_cpu"],
        [f"--data.init_args.root={ben_v2_root}", "--model.init_args.health_checks=false"],
        run_dir=tmp_path,
    )
    assert run.model.configure_callbacks() == []
    run = build_run(
        ["dino_mm/moco_mm_pretrain", "dino_mm/overrides/tiny_cpu"],
        [f"--data.init_args.root={ben_v2_root}", "--model.init_args.health_checks={k: 5}"],
        run_dir=tmp_path,
    )
    (cb,) = run.model.configure_callbacks()
    assert isinstance(cb, PretrainingHealth) and cb.settings.k == 5


def test_checks_do_not_change_training(tmp_path: Path) -> None:
    """The holdout pass runs in eval mode with the random state restored: a DINO-MM fit
    with and without health checks ends with the same weights."""
    from rsfuse.data.sample import collate
    from rsfuse.methods.dino_mm import DINOMM
    from tests.methods.test_dino_mm import TINY, fake_samples

    weights = []
    for on in (True, False):
        L.seed_everything(0, verbose=False)
        model = DINOMM(**TINY, health_checks=on)
        train = DataLoader(fake_samples(8), batch_size=4, shuffle=True, collate_fn=collate)
        val = DataLoader(fake_samples(6, seed=1), batch_size=3, collate_fn=collate)
        trainer = L.Trainer(
            max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
            default_root_dir=tmp_path,  # the teacher is exported into the run folder
        )  # fmt: skip
        trainer.fit(model, train, val)
        assert (len(_health(trainer).history) == 2) if on else True
        weights.append(model.teacher.state_dict())
    for k, v in weights[0].items():
        assert torch.equal(v, weights[1][k]), k
