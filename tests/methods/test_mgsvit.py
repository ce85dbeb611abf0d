"""MGSViT self-supervised pretraining (MGSViT Algorithm 1): losses, switches, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rsfuse.errors import CheckpointError, ConfigError, DataError
from rsfuse.methods.mgsvit import MGSViTPretraining
from rsfuse.models.checkpoints import read_encoder_config
from rsfuse.training.configs import config_root

REPO = Path(__file__).resolve().parents[2]
MGSVIT = config_root() / "mgsvit"
TINY = {"patch_size": 8, "embed_dim": 32, "depth": 4, "num_heads": 2}


def _method(modality: str = "s2", **kw) -> MGSViTPretraining:
    args = dict(
        modality=modality,
        backbone_kwargs=TINY,
        shortcut_every=2,
        crop_size=32,
        decoder_dim=32,
        decoder_heads=2,
        proj_hidden_dim=64,
        proj_dim=16,
    )
    args.update(kw)
    return MGSViTPretraining(**args)


@pytest.fixture(scope="module")
def s2_batch(ben_v2_root: Path) -> torch.Tensor:
    """16 normalised S2 patches of the synthetic world, centre-cropped to 48 px."""
    from rsfuse.data.bigearthnet import BigEarthNetV2
    from rsfuse.data.sample import collate
    from rsfuse.data.transforms import Normalize

    ds = BigEarthNetV2(ben_v2_root, split="train", modalities=["s2"], include_cloudy=True)
    batch = collate([ds[i] for i in range(16)])
    norm = Normalize.from_stats("bigearthnet-v2", ds.s2_band_names)
    return norm(batch)["s2"][..., 36:84, 36:84].contiguous()


def test_loss_falls_over_a_few_dozen_steps(s2_batch: torch.Tensor) -> None:
    torch.manual_seed(0)
    m = _method()
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(30):
        x1, x2 = m.views(s2_batch)
        out = m.losses(x1, x2, momentum=0.99)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append({k: v.item() for k, v in out.items()})
    first = {k: sum(d[k] for d in losses[:8]) / 8 for k in losses[0]}
    last = {k: sum(d[k] for d in losses[-8:]) / 8 for k in losses[0]}
    assert last["loss"] < 0.9 * first["loss"], (first, last)
    assert last["loss_rec"] < first["loss_rec"] and last["loss_con"] < first["loss_con"]


def test_total_is_weighted_sum_of_both_views() -> None:
    torch.manual_seed(1)
    m = _method(reconstruction_weight=0.5, contrast_weight=2.0)
    x1, x2 = torch.randn(4, 12, 32, 32), torch.randn(4, 12, 32, 32)
    out = m.losses(x1, x2, None)
    assert out["loss"].item() == pytest.approx(
        0.5 * out["loss_rec"].item() + 2.0 * out["loss_con"].item(), rel=1e-6
    )


@pytest.mark.parametrize(
    ("weights", "trained", "untouched"),
    [
        ((1.0, 0.0), "decoder", "moco.projector"),  # MAE-only
        ((0.0, 1.0), "moco.projector", "decoder"),  # MoCo v3-only
    ],
)
def test_a_zero_weight_really_switches_its_loss_off(
    weights: tuple[float, float], trained: str, untouched: str
) -> None:
    torch.manual_seed(2)
    m = _method(reconstruction_weight=weights[0], contrast_weight=weights[1])
    x1, x2 = torch.randn(4, 12, 32, 32), torch.randn(4, 12, 32, 32)
    out = m.losses(x1, x2, 0.99)
    assert ("loss_con" in out) == (weights[1] > 0) and ("loss_rec" in out) == (weights[0] > 0)
    out["loss"].backward()
    grads = {n: p.grad for n, p in m.named_parameters()}
    assert all(g is not None for n, g in grads.items() if n.startswith(trained + "."))
    assert all(g is None for n, g in grads.items() if n.startswith(untouched + "."))
    assert grads["moco.encoder.patch_embed.weight"] is not None  # the encoder trains either way


def test_both_weights_zero_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="both 0"):
        _method(reconstruction_weight=0.0, contrast_weight=0.0)


def test_momentum_encoder_moves_by_one_minus_m_and_gets_no_gradient() -> None:
    torch.manual_seed(3)
    m = _method()
    with torch.no_grad():  # make online and momentum weights differ
        for p in m.moco.encoder.parameters():
            p.add_(0.1 * torch.randn_like(p))
    k0 = {n: p.clone() for n, p in m.moco.momentum_encoder.module.named_parameters()}
    q0 = {n: p.clone() for n, p in m.moco.encoder.named_parameters()}
    out = m.losses(torch.randn(4, 12, 32, 32), torch.randn(4, 12, 32, 32), momentum=0.9)
    out["loss"].backward()
    for n, p in m.moco.momentum_encoder.module.named_parameters():
        torch.testing.assert_close(p, 0.9 * k0[n] + 0.1 * q0[n])
        assert p.grad is None and not p.requires_grad


def test_masking_ratio_and_reconstruction_shapes() -> None:
    m = _method(mask_ratio=0.75)
    loss, pred, mask = m.reconstruct(torch.randn(3, 12, 32, 32))
    assert pred.shape == (3, 16, 8 * 8 * 12)
    assert mask.sum(dim=1).tolist() == [12.0, 12.0, 12.0]
    assert loss.ndim == 0


def test_wrong_modality_or_band_count_is_named() -> None:
    m = _method("s1")
    with pytest.raises(DataError, match="without 's1'"):
        m.images({"s2": torch.zeros(2, 12, 32, 32)})
    with pytest.raises(ConfigError, match="2 s1 bands"):
        m.images({"s1": torch.zeros(2, 3, 32, 32)})


def _tiny_cpu_pretrain(cfg: Path) -> dict:
    from rsfuse.training.configs import load_config

    return load_config(cfg, MGSVIT / "overrides" / "tiny_cpu_pretrain.yaml")


@pytest.mark.parametrize("cfg", sorted((MGSVIT / "pretrain").glob("*.yaml")), ids=lambda p: p.stem)
def test_pretrain_configs_build_at_full_and_tiny_size(cfg: Path) -> None:
    import yaml

    full = yaml.safe_load(cfg.read_text())["model"]["init_args"]
    assert full["backbone_kwargs"]["embed_dim"] == 768 and full["mask_ratio"] == 0.75
    assert full["shortcut_every"] == (4 if cfg.stem.startswith("c4") else 0)
    tiny = _tiny_cpu_pretrain(cfg)["model"]["init_args"]
    m = MGSViTPretraining(**tiny)
    assert m.encoder.shortcut_every == full["shortcut_every"]
    assert m.encoder.in_chans == (2 if cfg.stem.endswith("s1") else 12)


def test_fit_writes_pngs_and_an_encoder_the_gmu_classifier_loads(
    ben_v2_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§4.6 end to end: pretrain S2 with the CLI config, fine-tune S1 GMU S2 from the files."""
    from rsfuse.cli import run
    from rsfuse.tasks.classification import MultiLabelClassificationTask

    monkeypatch.chdir(tmp_path)
    run(
        [
            "fit",
            "--config", str(MGSVIT / "pretrain" / "c4_s2.yaml"),
            "--config", str(MGSVIT / "overrides" / "tiny_cpu_pretrain.yaml"),
            f"--data.init_args.root={ben_v2_root}",
            "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
            "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp_path / 'logs'}",
        ]
    )  # fmt: skip
    s2 = tmp_path / "pretrained" / "mgsvit_c4_s2.safetensors"
    meta = read_encoder_config(s2)
    assert meta is not None and meta["modality"] == "s2" and len(meta["bands"]) == 12
    assert meta["kwargs"]["shortcut_every"] == 4 and meta["global_step"] == 2
    pngs = sorted(p.name for p in (tmp_path / "logs").rglob("reconstruction_*.png"))
    assert pngs == ["reconstruction_s2_epoch000.png", "reconstruction_s2_final.png"]

    tiny = _tiny_cpu_pretrain(MGSVIT / "pretrain" / "c4_s1.yaml")["model"]["init_args"]
    s1 = MGSViTPretraining(**tiny).export_encoder(tmp_path / "pretrained" / "mgsvit_c4_s1")
    assert s1.name == "mgsvit_c4_s1.safetensors"

    from rsfuse.training.configs import load_config

    cfg = load_config(MGSVIT / "ssl" / "ablation_base.yaml", MGSVIT / "overrides" / "tiny_cpu.yaml")
    args = cfg["model"]["init_args"]  # encoder_checkpoints: pretrained/mgsvit_c4_{s1,s2}
    task = MultiLabelClassificationTask(**args)  # strict key check: no missing keys
    from safetensors.torch import load_file

    exported = load_file(str(s2))  # the loaded weights are the exported ones
    for k, v in task.model.encoders["s2"].state_dict().items():
        assert torch.equal(v, exported[k]), k

    # a file whose JSON lists other bands is refused
    bad = dict(args, encoder_checkpoints={"s1": str(s2), "s2": str(s2)})
    with pytest.raises(CheckpointError, match="trained on bands"):
        MultiLabelClassificationTask(**bad)
    meta_path = s2.with_suffix(".json")
    assert json.loads(meta_path.read_text())["weights"] == s2.name


def test_lr_is_scaled_by_global_batch_and_norms_are_not_decayed(
    ben_v2_root: Path, tmp_path: Path
) -> None:
    import lightning as L

    from rsfuse.data.datamodules import BigEarthNetDataModule

    m = _method(base_lr=0.0256, weight_decay=0.05, warmup_epochs=0, plot_dir=str(tmp_path))
    dm = BigEarthNetDataModule(str(ben_v2_root), modalities=["s2"], batch_size=4, augmentation=None)
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=0,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(m, datamodule=dm)
    assert (tmp_path / "reconstruction_s2_final.png").is_file()
    decay, no_decay = trainer.optimizers[0].param_groups
    assert decay["initial_lr"] == pytest.approx(0.0256 * 4 / 256)  # base lr × batch / 256
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    no_decay_ids = {id(p) for p in no_decay["params"]}
    assert id(m.encoder.norm.weight) in no_decay_ids and id(m.encoder.norm.bias) in no_decay_ids
    assert id(m.encoder.patch_embed.weight) not in no_decay_ids
    momentum_ids = {id(p) for p in m.moco.momentum_encoder.parameters()}
    assert not momentum_ids & {id(p) for g in (decay, no_decay) for p in g["params"]}
