"""The CromSS LightningModule: variants, selection on known noise, fit and encoder export."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from rsfuse.data.datamodules import CromSSDataModule
from rsfuse.data.label_smoothing import PRIOR_KEY
from rsfuse.errors import ConfigError, DataError
from rsfuse.losses.sample_selection import CrossModalSampleSelection
from rsfuse.methods.cromss import VARIANTS, CromSS, variant_kwargs

TINY = {"encoder": "resnet18", "encoder_depth": 3, "decoder_channels": [16, 8, 8]}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny convolutions: one intra-op thread is faster than two on a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _batch(b: int = 2, size: int = 24, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    prior = torch.rand(b, 9, size, size, generator=g)
    return {
        "s1": torch.randn(b, 2, size, size, generator=g),
        "s2": torch.randn(b, 13, size, size, generator=g),
        "mask": torch.randint(9, (b, size, size), generator=g),
        PRIOR_KEY: prior / prior.sum(1, keepdim=True),
    }


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variants_train_step(variant: str) -> None:
    torch.manual_seed(0)
    model = CromSS(**variant_kwargs(variant), **TINY)
    assert model.variant == variant
    batch = _batch()
    terms, sel = model.compute_loss(batch, epoch=90)
    assert (sel is not None) == variant.startswith("CromSS")
    assert ("con" in terms) == (not variant.startswith("single"))
    terms["loss"].backward()
    assert torch.isfinite(terms["loss"])
    for m in model.modalities:
        assert model.model.encoder(m).conv1.weight.grad.abs().sum() > 0
    # the total is the sum of its terms (λ = 1)
    parts = sum(v for k, v in terms.items() if k.startswith(("ce_", "dice_")) or k == "con")
    assert torch.allclose(terms["loss"], parts)


def test_smoothing_target_and_errors() -> None:
    model = CromSS(**variant_kwargs("midF"), **TINY)
    batch = _batch()
    t = model.targets(batch)
    assert t.shape == (2, 9, 24, 24)
    assert torch.allclose(t.sum(1), torch.ones(2, 24, 24), atol=1e-5)
    onehot = torch.nn.functional.one_hot(batch["mask"], 9).permute(0, 3, 1, 2)
    assert torch.allclose((t * onehot).sum(1).min(), torch.tensor(0.8), atol=0.16)
    with pytest.raises(DataError, match="label_prior"):
        model.targets({"mask": batch["mask"]})
    hard = CromSS(**variant_kwargs("midF"), **TINY, alpha=0.0, beta=0.0)
    assert torch.equal(hard.targets({"mask": batch["mask"]}), batch["mask"])
    with pytest.raises(ConfigError):
        CromSS(modalities=["s2"], fusion="middle", **TINY)
    with pytest.raises(ConfigError):
        CromSS(modalities=["s2"], fusion="single", sample_selection=True, **TINY)
    with pytest.raises(ConfigError, match="S2 bands"):
        CromSS(**variant_kwargs("midF"), s2_bands="hr9", **TINY)(batch)


def test_selection_is_cleaner_than_the_noisy_labels(noldo_root: Path) -> None:
    """On the synthetic world's structured label noise, with two imperfect "modalities" that
    mostly predict the clean class, the selected pixels are cleaner than the noisy labels."""
    dm = CromSSDataModule(root=str(noldo_root), patch_size=48, batch_size=8, prior="none")
    dm.setup("fit")
    ds = dm.datasets["train"]
    noisy = torch.stack([ds[i]["mask"] for i in range(len(ds))])
    clean = torch.stack([ds[i]["mask_clean"] for i in range(len(ds))])
    valid = (noisy != 255) & (clean != 255)
    noisy_acc = float((noisy == clean)[valid].float().mean())
    assert 0.5 < noisy_acc < 0.95  # the fixture's labels are noisy
    g = torch.Generator().manual_seed(0)
    onehot = torch.nn.functional.one_hot(clean.clamp(max=8), 9).permute(0, 3, 1, 2).float()
    logits = [2.0 * onehot + 1.5 * torch.randn(onehot.shape, generator=g) for _ in range(2)]
    noisy = torch.where(valid, noisy, torch.full_like(noisy, 255))
    sel = CrossModalSampleSelection(9, r_inf=0.5, ramp_epochs=80)(*logits, noisy, epoch=80)
    right = (noisy == clean) & valid
    for w in sel["label_masks"]:
        precision = float((w * right).sum() / w.sum())
        assert precision > noisy_acc + 0.05
        hard = w >= 1.0  # the pixels selected with weight 1
        assert float(right[hard].float().mean()) > precision
    # cross-modal enhancement helps over one modality's own confidence
    own = CrossModalSampleSelection(9, cross_modal=False)(*logits, noisy, epoch=80)
    p_cm = float((sel["label_masks"][0] * right).sum() / sel["label_masks"][0].sum())
    p_own = float((own["label_masks"][0] * right).sum() / own["label_masks"][0].sum())
    assert p_cm >= p_own - 0.01


def test_fit_exports_encoders_for_segmentation(noldo_root: Path, tmp_path: Path) -> None:
    from rsfuse.models.checkpoints import read_encoder_config
    from rsfuse.tasks.segmentation import SegmentationTask

    L.seed_everything(0, verbose=False)
    dm = CromSSDataModule(
        root=str(noldo_root), patch_size=48, batch_size=4, val_fraction=0.25, seed=0
    )
    model = CromSS(
        **variant_kwargs("CromSS-midF"), **TINY, ramp_epochs=1,
        export_dir=str(tmp_path / "enc"),
    )  # fmt: skip
    trainer = L.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    logged = trainer.callback_metrics
    assert {"train/loss", "val/loss", "val/s2/clean_OA", "val/s1/noisy_mIoU"} <= set(logged)
    assert "train/s2/selection_precision" in logged and "train/noisy_label_acc" in logged
    assert set(model.last_val_metrics) == {"s1_noisy", "s1_clean", "s2_noisy", "s2_clean"}
    s2 = tmp_path / "enc" / "cromss_CromSS-midF_s2.safetensors"
    cfg = read_encoder_config(s2)
    assert cfg is not None and cfg["modality"] == "s2" and len(cfg["bands"]) == 13
    s1_cfg = read_encoder_config(tmp_path / "enc" / "cromss_CromSS-midF_s1.safetensors")
    assert s1_cfg is not None and s1_cfg["bands"] == ["VV", "VH"]
    # the exported encoder loads into the downstream task (PSPNet, depth 3) with key checks
    task = SegmentationTask(
        modalities=["s2"], architecture="pspnet", encoder="resnet18",
        decoder_kwargs={"encoder_depth": 3}, encoder_checkpoint=str(s2), plot_samples=0,
    )  # fmt: skip
    ref = model.model.encoder("s2").state_dict()
    for k, v in task.model.encoder.state_dict().items():
        assert torch.equal(v, ref[k].cpu()), k
    assert json.loads(s2.with_suffix(".json").read_text())["variant"] == "CromSS-midF"
