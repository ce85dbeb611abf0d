"""Tests of the multi-label classification task."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from torchmetrics.classification import MultilabelAveragePrecision

from rsfuse.data.datamodules import BigEarthNetDataModule
from rsfuse.errors import CheckpointError, ConfigError, DataError
from rsfuse.models.checkpoints import load_encoder, save_encoder
from rsfuse.models.fusion import drop_modalities, early_fusion_input
from rsfuse.tasks.classification import MultiLabelClassificationTask, encoder_key
from rsfuse.training.configs import config_root, load_config

TINY = {
    "img_size": 120,
    "patch_size": 20,
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
    "class_token": False,
    "global_pool": "avg",
}


def _batch(b: int = 4, c2: int = 12) -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "s1": torch.randn(b, 2, 120, 120, generator=g),
        "s2": torch.randn(b, c2, 120, 120, generator=g),
        "label": (torch.rand(b, 19, generator=g) > 0.7).float(),
        "present": {"s1": torch.ones(b, dtype=torch.bool), "s2": torch.ones(b, dtype=torch.bool)},
    }


@pytest.mark.parametrize(("mods", "channels"), [(("s1", "s2"), 14), (("s1",), 2), (("s2",), 12)])
def test_input_channels_follow_modalities(mods: tuple[str, ...], channels: int) -> None:
    task = MultiLabelClassificationTask(
        modalities=mods, backbone="vit_tiny_patch16_224", backbone_kwargs=TINY
    )
    assert task(_batch()).shape == (4, 19)
    assert len(task.channels) == channels
    assert task.model.encoders[next(iter(task.model.encoders))].patch_embed.proj.in_channels == (
        channels
    )
    # early fusion puts S2 first, then VV, VH
    if mods == ("s1", "s2"):
        assert task.channels[-2:] == ("VV", "VH") and task.channels[0] == "B01"


def test_absent_sensor_contributes_zeros() -> None:
    batch = _batch()
    batch["present"]["s1"][1] = False
    x = early_fusion_input(batch, ("s1", "s2"))
    assert torch.count_nonzero(x[1, 12:]) == 0
    assert torch.count_nonzero(x[0, 12:]) > 0


def test_band_mismatch_is_a_config_error() -> None:
    task = MultiLabelClassificationTask(
        s2_bands="rgb", backbone="vit_tiny_patch16_224", backbone_kwargs=TINY
    )
    with pytest.raises(ConfigError, match="s2_bands"):
        task(_batch(c2=12))


def test_missing_modality_in_batch_is_a_data_error() -> None:
    task = MultiLabelClassificationTask(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY)
    batch = _batch()
    del batch["s1"]
    with pytest.raises(DataError, match="s1"):
        task(batch)


def test_unknown_backbone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="backbone"):
        MultiLabelClassificationTask(backbone="no_such_model")


def test_training_steps_reduce_the_loss() -> None:
    torch.manual_seed(0)
    task = MultiLabelClassificationTask(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY)
    batch = _batch(8)
    opt = torch.optim.AdamW(task.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss, _, _ = task._shared_step(batch)
        first = float(loss) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.5 * first


def test_validation_metrics_cover_the_whole_split(ben_v2_root) -> None:
    """Logged mAP must equal AP over all predictions, not a mean of per-batch values."""
    L.seed_everything(0)
    dm = BigEarthNetDataModule(str(ben_v2_root), batch_size=2)
    task = MultiLabelClassificationTask(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY)
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    logged = trainer.validate(task, datamodule=dm, verbose=False)[0]
    scores, targets = [], []
    task.eval()
    with torch.no_grad():
        for batch in dm.val_dataloader():
            batch = dm.on_after_batch_transfer(batch, 0)
            scores.append(task(batch).sigmoid())
            targets.append(batch["label"].long())
    whole = MultilabelAveragePrecision(19, average="micro")(torch.cat(scores), torch.cat(targets))
    assert logged["val/mAP_micro"] == pytest.approx(float(whole), abs=1e-5)
    assert len(dm.datasets["val"]) > 2  # more than one batch, else the test proves nothing


# ---------------------------------------------------------------------------- MGSViT modes
GVIT = {"img_size": 120, "patch_size": 30, "embed_dim": 32, "depth": 4, "num_heads": 2}
MGSVIT = config_root() / "mgsvit"


def _mgsvit(**kw) -> MultiLabelClassificationTask:
    args = {"backbone": "gated_vit", "backbone_kwargs": GVIT, "shortcut_every": 2}
    return MultiLabelClassificationTask(**{**args, **kw})


@pytest.mark.parametrize(
    ("fusion", "encoders", "head_in"),
    [("early", ["early"], 32), ("concat", ["s1", "s2"], 64), ("gmu", ["s1", "s2"], 32)],
)
def test_gated_vit_fusions(fusion: str, encoders: list[str], head_in: int) -> None:
    task = _mgsvit(fusion=fusion)
    assert list(task.model.encoders) == encoders
    assert task.model.head.in_features == head_in
    assert task(_batch(2)).shape == (2, 19)


def test_shortcuts_need_a_gated_vit() -> None:
    with pytest.raises(ConfigError, match="shortcut_every"):
        MultiLabelClassificationTask(
            backbone="vit_tiny_patch16_224", backbone_kwargs=TINY, shortcut_every=4
        )


def test_test_drop_scores_one_sensor_only() -> None:
    torch.manual_seed(0)
    task = _mgsvit(fusion="gmu").eval()
    batch = _batch(2)
    both = task(batch)
    task.test_drop = ["s2"]
    task.test_step(batch, 0)  # must run with S2 marked absent
    s1_only = task(drop_modalities(batch, ["s2"]))
    assert not torch.allclose(both, s1_only)


def test_encoder_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = _mgsvit(fusion="gmu")
    paths = {}
    for m in ("s1", "s2"):
        paths[m] = str(save_encoder(src.model.encoders[m], tmp_path / f"{m}.safetensors"))
    dst = _mgsvit(fusion="gmu", mode="finetune", encoder_checkpoints=paths)
    for m in ("s1", "s2"):
        for (k, a), b in zip(
            src.model.encoders[m].state_dict().items(),
            dst.model.encoders[m].state_dict().values(),
        ):
            torch.testing.assert_close(a, b, msg=k)
    assert all(p.requires_grad for p in dst.parameters())
    # a Lightning-style checkpoint with a prefix works too
    torch.save(
        {"state_dict": {f"enc.{k}": v for k, v in src.model.encoders["s1"].state_dict().items()}},
        tmp_path / "s1.ckpt",
    )
    load_encoder(dst.model.encoders["s1"], tmp_path / "s1.ckpt", prefix="enc.")


def test_checkpoint_key_errors_name_the_keys(tmp_path: Path) -> None:
    enc = _mgsvit().model.encoders["early"]
    sd = enc.state_dict()
    sd["extra.weight"] = torch.zeros(1)
    del sd["norm.bias"]
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"missing keys: norm\.bias.*unexpected keys: extra"):
        load_encoder(enc, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="not found"):
        _mgsvit(
            fusion="gmu",
            mode="finetune",
            encoder_checkpoints={"s1": str(tmp_path / "no.pt"), "s2": str(tmp_path / "no.pt")},
        )
    with pytest.raises(ConfigError, match="encoder_checkpoints"):
        _mgsvit(fusion="gmu", mode="finetune", encoder_checkpoints={"s1": "x.pt"})


@pytest.mark.parametrize(("features", "head_in"), [("mean", 32), ("last4", 128)])
def test_linear_probe_freezes_the_encoder(tmp_path: Path, features: str, head_in: int) -> None:
    src = _mgsvit(modalities=["s2"])
    path = save_encoder(src.model.encoders["s2"], tmp_path / "s2.pt")
    task = _mgsvit(
        modalities=["s2"],
        mode="linear_probe",
        probe_features=features,
        encoder_checkpoints={"s2": str(path)},
    )
    assert task.model.head.in_features == head_in
    trainable = {n for n, p in task.named_parameters() if p.requires_grad}
    assert trainable == {"model.head.weight", "model.head.bias"}
    task.train()
    assert task.model.head.training and not task.model.encoders.training
    loss, _, _ = task._shared_step(_batch(2))
    loss.backward()


@pytest.mark.parametrize("fusion", ["early", "concat", "gmu"])
def test_cached_probe_features_equal_the_encoder_path(tmp_path: Path, fusion: str) -> None:
    mods = ["s1", "s2"]
    src = _mgsvit(modalities=mods, fusion=fusion)
    paths = {encoder_key(mods) if m == "early" else m: str(save_encoder(enc, tmp_path / f"{m}.pt"))
             for m, enc in src.model.encoders.items()}  # fmt: skip
    kw = {"modalities": mods, "fusion": fusion, "mode": "linear_probe",
          "encoder_checkpoints": paths}  # fmt: skip
    direct, cached = _mgsvit(**kw), _mgsvit(**kw, cache_features=True)
    cached.load_state_dict(direct.state_dict())  # the same head (and GMU) as well
    direct.train(), cached.train()
    batch = {**_batch(4), "meta": [{"id": f"p{i}"} for i in range(4)]}
    first = cached(batch)  # fills the cache
    assert set(cached._feature_cache) == set(cached.model.encoders)
    second = cached(batch)  # reads it
    torch.testing.assert_close(first, direct(batch))
    torch.testing.assert_close(second, direct(batch))
    # the cached path still trains the head
    second.sum().backward()
    assert cached.model.head.weight.grad is not None
    # samples without their own id are never cached
    fresh = _mgsvit(**kw, cache_features=True)
    fresh.train()
    fresh({**_batch(4), "meta": [{"id": None}] * 4})
    assert fresh._feature_cache == {}


def _mgsvit_config(path: Path) -> dict:
    return load_config(path, MGSVIT / "overrides" / "tiny_cpu.yaml")


SWEEP = sorted((MGSVIT / "shortcut_sweep").glob("*.yaml"))


def test_sweep_configs_cover_figures_8_and_9() -> None:
    got = {(p.stem.split("_")[0], p.stem.split("_")[1]) for p in SWEEP}
    want = {("d12", f"n{n}") for n in (0, 2, 3, 4, 6)} | {("d18", f"n{n}") for n in (0, 2, 3, 6, 9)}
    assert got == want and len(SWEEP) == 20
    full = yaml.safe_load((MGSVIT / "shortcut_sweep" / "d18_n3_s1.yaml").read_text())
    args = full["model"]["init_args"]
    assert args["backbone_kwargs"]["depth"] == 18 and args["shortcut_every"] == 3


def test_sweep_configs_build_with_the_tiny_override() -> None:
    for cfg in SWEEP:
        args = _mgsvit_config(cfg)["model"]["init_args"]
        task = MultiLabelClassificationTask(**args)
        n = int(cfg.stem.split("_")[1][1:])
        assert task.hparams.shortcut_every == n, cfg.name
        assert task.model.encoders[cfg.stem.split("_")[2]].shortcut_every == n


@pytest.mark.parametrize("cfg", sorted((MGSVIT / "ssl").glob("*.yaml")), ids=lambda p: p.stem)
def test_ssl_configs_fail_clearly_without_checkpoints(cfg: Path) -> None:
    args = _mgsvit_config(cfg)["model"]["init_args"]
    with pytest.raises(CheckpointError, match=r"pretrained/mgsvit_.*not found"):
        MultiLabelClassificationTask(**args)


@pytest.mark.parametrize("cfg", SWEEP, ids=lambda p: p.stem)
def test_sweep_config_runs_with_fast_dev_run(cfg: Path, ben_v2_root: Path, tmp_path: Path) -> None:
    """Every Figure 8-9 sweep config trains one step with the MGSViT tiny override."""
    from rsfuse.cli import run

    run(
        [
            "fit",
            "--config",
            str(cfg),
            "--config",
            str(MGSVIT / "overrides" / "tiny_cpu.yaml"),
            f"--data.init_args.root={ben_v2_root}",
            "--trainer.fast_dev_run=true",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
