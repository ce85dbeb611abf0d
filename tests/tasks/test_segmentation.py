"""Tests of the segmentation task: metrics, padding, loss, frozen encoder, checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from torchmetrics.classification import MulticlassConfusionMatrix

from rsfuse.errors import CheckpointError, ConfigError
from rsfuse.metrics.segmentation import metrics_from_confusion
from rsfuse.models.checkpoints import save_encoder
from rsfuse.tasks.segmentation import SegmentationTask

K = 5
SMALL = {"encoder": "resnet18", "num_classes": K, "plot_samples": 0}
LIGHT_UNET = {"encoder_depth": 5, "decoder_channels": [32, 16, 16, 8, 8]}
VIT = {"patch_size": 8, "embed_dim": 32, "depth": 4, "num_heads": 2}


def _batch(b: int = 2, h: int = 64, w: int = 64, c2: int = 13, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    mask = torch.randint(0, K, (b, h, w), generator=g)
    mask[:, :4] = 255  # an unlabelled strip
    return {
        "s1": torch.randn(b, 2, h, w, generator=g),
        "s2": torch.randn(b, c2, h, w, generator=g),
        "mask": mask,
        "present": {"s1": torch.ones(b, dtype=torch.bool), "s2": torch.ones(b, dtype=torch.bool)},
    }


class _Batches(Dataset):
    """Samples cut from fixed random batches (a stand-in for a datamodule's split)."""

    def __init__(self, n: int = 8, size: int = 32, seed: int = 0) -> None:
        self.b = _batch(n, size, size, seed=seed)

    def __len__(self) -> int:
        return self.b["mask"].shape[0]

    def __getitem__(self, i: int) -> dict:
        return {
            "s1": self.b["s1"][i],
            "s2": self.b["s2"][i],
            "mask": self.b["mask"][i],
            "present": {"s1": True, "s2": True},
        }


def _trainer(tmp_path: Path, **kw) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **kw,
    )


# ---------------------------------------------------------------------------- metrics
def test_metrics_match_a_hand_computed_confusion_matrix() -> None:
    """Classes 0–2 present, class 3 absent from the split, 7 ignored pixels (``exclude``)."""
    pairs = {(0, 0): 5, (0, 1): 1, (1, 1): 3, (1, 0): 1, (2, 2): 2, (2, 1): 2}
    pairs |= {(255, 0): 3, (255, 2): 4}  # unlabelled: never counted
    ref = torch.tensor([r for (r, _), n in pairs.items() for _ in range(n)])
    pred = torch.tensor([p for (_, p), n in pairs.items() for _ in range(n)])
    cm_metric = MulticlassConfusionMatrix(4, ignore_index=255)
    for i in range(0, ref.numel(), 5):  # accumulated over several "batches"
        cm_metric.update(pred[i : i + 5], ref[i : i + 5])
    cm = cm_metric.compute()
    assert cm.tolist() == [[5, 1, 0, 0], [1, 3, 0, 0], [0, 2, 2, 0], [0, 0, 0, 0]]
    m = metrics_from_confusion(cm, ["a", "b", "c", "absent"], absent="exclude")
    assert m["OA"] == pytest.approx(10 / 14)
    assert m["AA"] == pytest.approx((5 / 6 + 3 / 4 + 2 / 4) / 3)
    iou = [5 / 7, 3 / 7, 2 / 4]
    assert [m["IoU"][c] for c in "abc"] == pytest.approx(iou)
    assert m["mIoU"] == pytest.approx(sum(iou) / 3)
    assert m["mF1"] == pytest.approx((10 / 12 + 6 / 10 + 4 / 6) / 3)
    assert math.isnan(m["IoU"]["absent"]) and math.isnan(m["recall"]["absent"])
    assert m["confusion"][3] == [0, 0, 0, 0]


def test_a_class_only_predicted_counts_as_zero_iou_but_has_no_recall() -> None:
    m = metrics_from_confusion(torch.tensor([[1, 1], [0, 0]]), ["x", "y"], absent="exclude")
    assert m["AA"] == pytest.approx(0.5)  # only class x has reference pixels
    assert m["IoU"]["y"] == 0.0 and m["F1"]["y"] == 0.0
    assert m["mIoU"] == pytest.approx(0.25)
    assert math.isnan(metrics_from_confusion(torch.zeros(2, 2))["OA"])


def test_task_metrics_are_over_the_whole_split_and_figures_are_written(tmp_path: Path) -> None:
    torch.manual_seed(0)
    task = SegmentationTask(
        architecture="fpn", modalities=["s1", "s2"], plot_dir=str(tmp_path / "fig"), **{
            **SMALL, "plot_samples": 3}
    )  # fmt: skip
    ds = _Batches(6, 32)
    task.eval()
    trainer = _trainer(tmp_path)
    logged = trainer.test(task, DataLoader(ds, batch_size=4), verbose=False)[0]  # 2 batches
    with torch.no_grad():
        full = {k: v for k, v in ds.b.items()}
        pred = task(full).argmax(1)
    cm = MulticlassConfusionMatrix(K, ignore_index=255)(pred, full["mask"])
    expected = metrics_from_confusion(cm)
    for k in ("OA", "AA", "mIoU", "mF1"):
        assert logged[f"test/{k}"] == pytest.approx(expected[k], abs=1e-6)
    assert task.last_test_metrics["confusion"] == cm.tolist()
    assert (tmp_path / "fig" / "confusion_matrix.png").stat().st_size > 1000
    assert (tmp_path / "fig" / "samples.png").stat().st_size > 1000
    assert not list((tmp_path / "fig").glob("*.tmp*"))


# ---------------------------------------------------------------------------- model
@pytest.mark.parametrize(
    ("architecture", "encoder", "kwargs"),
    [
        ("unet", "resnet18", {}),
        ("pspnet", "resnet18", {}),
        ("deeplabv3plus", "resnet18", {}),
        ("fpn", "resnet18", {}),
        (
            "upernet",
            "gated_vit",
            {"encoder_kwargs": VIT, "decoder_kwargs": {"decoder_channels": 16}},
        ),
    ],
)
def test_any_patch_size_gives_logits_of_the_input_size(
    architecture: str, encoder: str, kwargs: dict
) -> None:
    task = SegmentationTask(
        architecture=architecture, **{**SMALL, "encoder": encoder}, **kwargs
    ).eval()
    with torch.no_grad():
        out = task(_batch(1, 60, 44))  # neither a multiple of 8, 16 nor 32
    assert tuple(out.shape) == (1, K, 60, 44)


@pytest.mark.parametrize(("mods", "channels"), [(["s1", "s2"], 11), (["s1"], 2), (["s2"], 9)])
def test_in_channels_follow_the_band_subset(mods: list[str], channels: int) -> None:
    task = SegmentationTask(architecture="pspnet", modalities=mods, s2_bands="hr9", **SMALL)
    assert task.model.encoder.conv1.in_channels == channels
    assert len(task.channels) == channels
    if len(mods) == 2:
        assert task.channels[-2:] == ("VV", "VH")  # early fusion: S2 first


def test_loss_skips_unlabelled_pixels() -> None:
    task = SegmentationTask(architecture="unet", **SMALL)
    logits = torch.randn(2, K, 8, 8, requires_grad=True)
    mask = torch.randint(0, K, (2, 8, 8))
    mask[:, :3] = 255
    other = logits.detach().clone()
    other[:, :, :3] = torch.randn(2, K, 3, 8) * 10  # change only unlabelled pixels
    assert task.loss(logits, mask).item() == pytest.approx(task.loss(other, mask).item())
    empty = task.loss(logits, torch.full((2, 8, 8), 255))
    empty.backward()
    assert empty.item() == 0.0 and logits.grad is not None


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="upernet"):
        SegmentationTask(architecture="pspnet", encoder="gated_vit", encoder_kwargs=VIT)
    with pytest.raises(ConfigError, match="unknown encoder"):
        SegmentationTask(encoder="resnet_does_not_exist")
    with pytest.raises(ConfigError, match="architecture"):
        SegmentationTask(architecture="segformer3000", **SMALL)
    with pytest.raises(ConfigError, match="class names"):
        SegmentationTask(**{**SMALL, "class_names": ["a", "b"]})
    with pytest.raises(ConfigError, match="ignore_index"):
        SegmentationTask(**{**SMALL, "ignore_index": 0})
    task = SegmentationTask(architecture="fpn", s2_bands="rgb", **SMALL)
    with pytest.raises(ConfigError, match="s2_bands"):
        task(_batch(1, 32, 32, c2=13))


# ---------------------------------------------------------------------------- encoders
def test_encoder_checkpoint_loads_with_key_checks(tmp_path: Path) -> None:
    torch.manual_seed(0)
    unet = SegmentationTask(architecture="unet", **SMALL)  # "pretrained" U-Net
    path = save_encoder(unet.model.encoder, tmp_path / "enc.safetensors")
    ckpt = tmp_path / "task.ckpt"
    torch.save({"state_dict": unet.state_dict()}, ckpt)
    for file, prefix in ((path, ""), (ckpt, "model.encoder.")):
        psp = SegmentationTask(
            architecture="pspnet", encoder_checkpoint=str(file), checkpoint_prefix=prefix, **SMALL
        )
        for k, v in unet.model.encoder.state_dict().items():
            assert torch.equal(psp.model.encoder.state_dict()[k], v), k
    with pytest.raises(CheckpointError, match="shape"):  # 2 S1 channels vs 13 S2 bands
        SegmentationTask(modalities=["s1"], encoder_checkpoint=str(path), **SMALL)
    with pytest.raises(CheckpointError, match="missing keys"):
        SegmentationTask(encoder="resnet34", encoder_checkpoint=str(path), **{
            k: v for k, v in SMALL.items() if k != "encoder"})  # fmt: skip


@pytest.mark.parametrize("freeze", [True, False])
def test_frozen_encoder_gets_no_updates_and_keeps_bn_statistics(
    freeze: bool, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    task = SegmentationTask(
        architecture="unet", freeze_encoder=freeze, lr=1e-2, decoder_kwargs=LIGHT_UNET, **SMALL
    )
    enc0 = {k: v.clone() for k, v in task.model.encoder.state_dict().items()}
    dec0 = {k: v.clone() for k, v in task.model.decoder.state_dict().items()}
    trainer = _trainer(tmp_path, max_steps=3, limit_val_batches=0)
    trainer.fit(task, DataLoader(_Batches(6, 32), batch_size=2))
    enc1, dec1 = task.model.encoder.state_dict(), task.model.decoder.state_dict()
    changed_enc = [k for k in enc0 if not torch.equal(enc0[k], enc1[k])]
    changed_dec = [k for k in dec0 if not torch.equal(dec0[k], dec1[k])]
    assert changed_dec  # the decoder always trains
    if freeze:
        assert changed_enc == []  # weights AND running_mean / running_var / num_batches
        assert all(not p.requires_grad for p in task.model.encoder.parameters())
        assert not task.model.encoder.training
    else:
        assert "conv1.weight" in changed_enc and "bn1.running_mean" in changed_enc


# ---------------------------------------------------------------------------- optimiser
def test_default_optimiser_and_schedule_are_the_cromss_code() -> None:
    """Adam (weight decay 1e-8), lr 5e-4 cosine to 1e-5 over 40 epochs then flat, per epoch
    (``pl_finetune.configure_optimizers`` with ``--scheduler_type cos --scheduler_values 40``)."""
    from types import SimpleNamespace

    from rsfuse.training.optim import step_scheduler

    task = SegmentationTask(architecture="fpn", modalities=["s2"], **SMALL)
    task._trainer = SimpleNamespace(max_epochs=50)
    cfg = task.configure_optimizers()
    task._trainer = None
    opt, sched = cfg["optimizer"], cfg["lr_scheduler"]
    assert type(opt) is torch.optim.Adam and sched["interval"] == "epoch"
    assert {g["weight_decay"] for g in opt.param_groups} <= {1e-8, 0.0}
    lr, final, t = 5e-4, 1e-5, 40
    lrs = []
    for epoch in range(50):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        step_scheduler(sched["scheduler"], "epoch", 0, epoch + 1, None)  # Lightning's call
    want = [final + (1 + math.cos(math.pi * e / t)) * (lr - final) / 2 if e < t else final
            for e in range(50)]  # fmt: skip
    assert lrs == pytest.approx(want, rel=1e-9)
