"""DINO-MM: teacher/student mechanics, schedules, export and the three-input-case evaluation."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from rsfuse.bands import early_fusion_channels, s2_bands
from rsfuse.data.sample import collate
from rsfuse.methods.dino_mm import DINOMM
from rsfuse.models.checkpoints import load_encoder
from rsfuse.models.heads import DINOHead
from rsfuse.models.multicrop import MultiCropWrapper
from rsfuse.models.vit_small import build_vit, eval_backbone_kwargs
from rsfuse.tasks.classification import DINOMMEvalTask
from rsfuse.training.configs import config_root
from rsfuse.training.optim import OptimSettings, clip_gradients, configure, step_scheduler
from rsfuse.training.schedules import cosine_ramp


def cosine_schedule(step: int, total: int, base: float, final: float, warmup: int = 0) -> float:
    """DINO's per-step schedule as rsfuse builds it: the learning rate of timm's scheduler
    (linear warm-up from 0, cosine to ``final``) or, without warm-up, the cosine ramp that
    DINO-MM applies to the weight decay."""
    from types import SimpleNamespace

    if not warmup:
        return cosine_ramp(step, total, base, final)
    net = nn.Linear(2, 2)
    trainer = SimpleNamespace(estimated_stepping_batches=total, max_epochs=total // warmup)
    cfg = configure(net, OptimSettings(lr=base, min_lr=final, warmup_epochs=1.0), trainer)
    step_scheduler(cfg["lr_scheduler"]["scheduler"], "step", step, 0, None)
    return cfg["optimizer"].param_groups[0]["lr"]


TINY_VIT = {"patch_size": 8, "embed_dim": 32, "depth": 4, "num_heads": 2}
TINY = {
    "backbone_kwargs": TINY_VIT,
    "out_dim": 64,
    "head_hidden_dim": 32,
    "head_bottleneck_dim": 16,
    "global_crops_size": 32,
    "local_crops_number": 2,
    "local_crops_size": 16,
    "lr": 1e-3,
    "scale_lr_by_batch": False,
    "warmup_epochs": 0,
}


def fake_samples(n: int = 12, size: int = 40, seed: int = 0) -> list[dict]:
    """Normalised-looking samples in [0, 1] with labels."""
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "s1": torch.rand(2, size, size, generator=g),
            "s2": torch.rand(12, size, size, generator=g),
            "label": (torch.rand(19, generator=g) < 0.3).float(),
            "present": {"s1": True, "s2": True},
            "meta": {"id": str(i)},
        }
        for i in range(n)
    ]


def test_channel_layout_is_s2_then_vv_vh() -> None:
    model = DINOMM(**TINY)
    assert model.channels == (*s2_bands("all", "L2A"), "VV", "VH")
    assert model.channels == early_fusion_channels(("s1", "s2"))
    assert model.backbone.in_chans == 14 and model.augment.n_crops == 4


def test_teacher_gets_no_gradients_student_does() -> None:
    torch.manual_seed(0)
    model = DINOMM(**TINY)
    batch = collate(fake_samples(4))
    loss = model.dino_loss(model.crops(batch), epoch=0)
    loss.backward()
    assert all(not p.requires_grad and p.grad is None for p in model.teacher.parameters())
    grads = [p.grad for p in model.student.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert not model.teacher.training  # no drop-path in the teacher
    model.train()
    assert model.student.training and not model.teacher.training


def test_multicrop_wrapper_equals_per_crop_forward() -> None:
    torch.manual_seed(1)
    net = MultiCropWrapper(
        build_vit(3, TINY_VIT), DINOHead(32, 10, hidden_dim=16, bottleneck_dim=8)
    )
    net.eval()
    crops = [torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32), torch.randn(2, 3, 16, 16)]
    out = net(crops)
    ref = torch.cat([net.head(net.backbone(c)) for c in crops])
    assert out.shape == (6, 10)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_dino_head_weight_norm_frozen_scale() -> None:
    head = DINOHead(8, 50, hidden_dim=16, bottleneck_dim=4)
    w = head.last_layer.weight  # g · v / ‖v‖ with g = 1
    torch.testing.assert_close(w.norm(dim=1), torch.ones(50))
    trainable = {n for n, p in head.named_parameters() if p.requires_grad}
    assert "last_layer.parametrizations.weight.original0" not in trainable
    assert "last_layer.parametrizations.weight.original1" in trainable
    out = DINOHead(8, 50, norm_last_layer=False)
    assert out.last_layer.parametrizations.weight.original0.requires_grad


def test_cosine_schedule_and_per_parameter_clip() -> None:
    assert cosine_schedule(0, 100, 1.0, 0.0, warmup=10) == pytest.approx(0.0)
    assert cosine_schedule(5, 100, 1.0, 0.0, warmup=10) == pytest.approx(0.5)
    assert cosine_schedule(10, 100, 1.0, 0.0, warmup=10) == pytest.approx(1.0)
    assert cosine_schedule(55, 100, 1.0, 0.0, warmup=10) == pytest.approx(0.5)
    assert cosine_schedule(100, 100, 0.04, 0.4) == pytest.approx(0.4)  # weight decay end
    m = nn.Linear(2, 2)
    m.weight.grad = torch.full((2, 2), 3.0)  # norm 6 → scaled to norm 3
    m.bias.grad = torch.tensor([0.3, 0.4])  # norm 0.5 → untouched (per parameter!)
    clip_gradients(m, 3.0)
    assert m.weight.grad.norm().item() == pytest.approx(3.0, rel=1e-5)
    torch.testing.assert_close(m.bias.grad, torch.tensor([0.3, 0.4]))


def test_fit_moves_teacher_by_ema_freezes_last_layer_and_exports(tmp_path: Path) -> None:
    torch.manual_seed(2)
    path = tmp_path / "teacher.safetensors"
    model = DINOMM(**TINY, momentum_teacher=0.9, freeze_last_layer=1, export_path=str(path))
    last_before = model.student.head.last_layer.parametrizations.weight.original1.clone()
    teacher_before = [p.clone() for p in model.teacher.parameters()]
    loader = DataLoader(fake_samples(8), batch_size=4, collate_fn=collate)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, loader)
    assert trainer.global_step == 2
    # epoch 0: the last layer of the head gets no update
    torch.testing.assert_close(
        model.student.head.last_layer.parametrizations.weight.original1, last_before
    )
    # the teacher moved (EMA), but not onto the student
    moved = [not torch.equal(a, b) for a, b in zip(teacher_before, model.teacher.parameters())]
    assert any(moved)
    assert model.criterion.center.abs().sum() > 0
    assert model.trainer.optimizers[0].param_groups[0]["weight_decay"] > 0.04  # cosine 0.04→0.4
    # the export is the teacher backbone
    vit = build_vit(14, eval_backbone_kwargs(TINY_VIT, img_size=32))
    load_encoder(vit, path)
    for (k, a), b in zip(vit.state_dict().items(), model.teacher_backbone.state_dict().values()):
        assert torch.equal(a, b), k


def test_exported_teacher_linear_probe_on_three_input_cases(tmp_path: Path) -> None:
    """One pretrained DINO-MM model, probed (last-4 CLS, SGD) with S1+S2, S1-only, S2-only."""
    torch.manual_seed(3)
    path = tmp_path / "t.safetensors"
    model = DINOMM(**TINY)
    model.export_teacher(path)
    samples = fake_samples(8)
    loader = DataLoader(samples, batch_size=4, collate_fn=collate)
    feats = {}
    for drop in ([], ["s2"], ["s1"]):
        task = DINOMMEvalTask(
            input_drop=drop, backbone="gated_vit",
            backbone_kwargs=eval_backbone_kwargs(TINY_VIT, img_size=32), mode="linear_probe",
            probe_features="last4", encoder_checkpoints={"s1s2": str(path)}, lr=0.01,
            weight_decay=0.0, warmup_epochs=0,
        )  # fmt: skip
        assert task.model.head.in_features == 4 * 32  # CLS of the last 4 blocks
        assert task.model.head.weight.std().item() == pytest.approx(0.01, rel=0.2)
        enc = task.model.encoders["early"]
        before = [p.clone() for p in enc.parameters()]
        trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False,
                            enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False)  # fmt: skip
        trainer.fit(task, loader)
        assert isinstance(trainer.optimizers[0], torch.optim.SGD)
        assert all(torch.equal(a, b) for a, b in zip(before, enc.parameters()))  # frozen
        m = trainer.test(task, loader, verbose=False)[0]
        assert 0.0 <= m["test/mAP_micro"] <= 1.0
    # the input cases really differ: zeroing a sensor changes the logits of one model
    task.eval()
    for drop in ([], ["s2"], ["s1"]):
        task.input_drop = drop
        with torch.no_grad():
            feats[tuple(drop)] = task(collate(samples[:2]))
    assert not torch.allclose(feats[()], feats[("s2",)])
    assert not torch.allclose(feats[("s2",)], feats[("s1",)])
    with pytest.raises(Exception, match="input_drop"):
        DINOMMEvalTask(input_drop=["s1", "s2"], backbone="gated_vit",
                       backbone_kwargs=eval_backbone_kwargs(TINY_VIT, 32))  # fmt: skip


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("config", "extra"),
    [
        ("linear_probe.yaml", ["--model.init_args.input_drop=[s2]"]),
        ("finetune.yaml", ["--data.init_args.train_fraction=0.5"]),
    ],
)
def test_eval_configs_run_on_an_exported_teacher(
    config: str, extra: list[str], ben_v2_root: Path, tmp_path: Path
) -> None:
    """configs/dino_mm/eval/*.yaml with the tiny override load a tiny exported teacher."""
    from rsfuse.cli import run

    path = tmp_path / "teacher.safetensors"
    DINOMM(**{**TINY, "backbone_kwargs": TINY_VIT}).export_teacher(path)
    run(
        [
            "fit", "--config", str(config_root() / "dino_mm" / "eval" / config),
            "--config", str(config_root() / "dino_mm" / "overrides" / "tiny_cpu_eval.yaml"),
            f"--data.init_args.root={ben_v2_root}",
            f"--model.init_args.encoder_checkpoints.s1s2={path}",
            "--trainer.fast_dev_run=true", f"--trainer.default_root_dir={tmp_path}", *extra,
        ]
    )  # fmt: skip
