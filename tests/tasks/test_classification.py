"""Tests of the multi-label classification task."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torchmetrics.classification import MultilabelAveragePrecision

from rsfuse.data.datamodules import BigEarthNetDataModule
from rsfuse.errors import ConfigError, DataError
from rsfuse.tasks.classification import MultiLabelClassificationTask

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
    x = task.inputs(_batch())
    assert x.shape == (4, channels, 120, 120)
    assert task(x).shape == (4, 19)
    # early fusion puts S2 first, then VV, VH
    if mods == ("s1", "s2"):
        assert task.channels[-2:] == ("VV", "VH") and task.channels[0] == "B01"


def test_absent_sensor_contributes_zeros() -> None:
    task = MultiLabelClassificationTask(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY)
    batch = _batch()
    batch["present"]["s1"][1] = False
    x = task.inputs(batch)
    assert torch.count_nonzero(x[1, 12:]) == 0
    assert torch.count_nonzero(x[0, 12:]) > 0


def test_band_mismatch_is_a_config_error() -> None:
    task = MultiLabelClassificationTask(
        s2_bands="rgb", backbone="vit_tiny_patch16_224", backbone_kwargs=TINY
    )
    with pytest.raises(ConfigError, match="s2_bands"):
        task.inputs(_batch(c2=12))


def test_missing_modality_in_batch_is_a_data_error() -> None:
    task = MultiLabelClassificationTask(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY)
    batch = _batch()
    del batch["s1"]
    with pytest.raises(DataError, match="s1"):
        task.inputs(batch)


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
            scores.append(task(task.inputs(batch)).sigmoid())
            targets.append(batch["label"].long())
    whole = MultilabelAveragePrecision(19, average="micro")(torch.cat(scores), torch.cat(targets))
    assert logged["val/mAP_micro"] == pytest.approx(float(whole), abs=1e-5)
    assert len(dm.datasets["val"]) > 2  # more than one batch, else the test proves nothing
