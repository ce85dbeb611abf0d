"""MoCo-MM: MoCo v3 on early-fused S1+S2 with RandomSensorDrop."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from rsfuse.data.sample import collate
from rsfuse.methods.moco_mm import MoCoMM
from rsfuse.models.checkpoints import load_encoder
from rsfuse.models.vit_small import build_vit, eval_backbone_kwargs
from tests.conformance import load
from tests.methods.test_dino_mm import TINY_VIT, fake_samples

TINY = {
    "backbone_kwargs": TINY_VIT,
    "hidden_dim": 32,
    "out_dim": 16,
    "crops_size": 32,
    "lr": 1e-3,
    "scale_lr_by_batch": False,
    "warmup_epochs": 0,
}


@pytest.mark.parametrize("tau", [0.2, 1.0])
def test_moco_mm_loss_reproduces_moco_v3(tau: float) -> None:
    ref = load("moco_v3")
    model = MoCoMM(**TINY, temperature=tau)
    q, k = torch.from_numpy(ref["q_raw"]), torch.from_numpy(ref["k_raw"])
    got = model.moco.criterion(q, k).item()
    assert got == pytest.approx(float(ref[f"loss_T{tau}"]), rel=1e-5)


def test_views_are_early_fused_with_sensor_drop_per_view() -> None:
    torch.manual_seed(0)
    batch = collate(fake_samples(64, size=32))
    for k in ("s1", "s2"):
        batch[k] = batch[k] + 1.0  # no accidental zeros
    x1, x2 = MoCoMM(**TINY, sensor_drop_p=1.0, sensor_drop_s2_prob=1.0).views(batch)
    assert x1.shape == (64, 14, 32, 32)
    # every view lost S2 (first 12 channels), kept S1 (VV, VH last)
    assert (x1[:, :12] == 0).all() and (x2[:, :12] == 0).all()
    assert (x1[:, 12:] != 0).flatten(1).any(1).all()
    y1, y2 = MoCoMM(**TINY).views(batch)  # p = 0.5: views draw independently
    s2_gone = [(y[:, :12] == 0).flatten(1).all(1) for y in (y1, y2)]
    s1_gone = [(y[:, 12:] == 0).flatten(1).all(1) for y in (y1, y2)]
    assert not (s2_gone[0] & s1_gone[0]).any()
    assert not torch.equal(s2_gone[0], s2_gone[1]) or not torch.equal(s1_gone[0], s1_gone[1])


def test_fit_momentum_encoder_no_gradients_and_export(tmp_path: Path) -> None:
    torch.manual_seed(1)
    path = tmp_path / "moco.safetensors"
    model = MoCoMM(**TINY, export_path=str(path))
    before = [p.clone() for p in model.moco.momentum_encoder.parameters()]
    loader = DataLoader(fake_samples(8, size=32), batch_size=4, collate_fn=collate)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, loader)
    assert all(p.grad is None for p in model.moco.momentum_encoder.parameters())
    assert any(
        not torch.equal(a, b) for a, b in zip(before, model.moco.momentum_encoder.parameters())
    )
    assert 0.99 <= model.momentum() <= 1.0
    vit = build_vit(14, eval_backbone_kwargs(TINY_VIT, 32))
    load_encoder(vit, path)
    torch.testing.assert_close(vit.patch_embed.weight, model.moco.encoder.patch_embed.weight)
