"""Model bundles: export from checkpoints, rebuild without training code, refuse bad files."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from rsfuse import bands, load_bundle
from rsfuse.errors import CheckpointError
from rsfuse.inference import export_bundle
from rsfuse.inference.bundle import CONFIG_NAME, WEIGHTS_NAME

from .conftest import fake_checkpoint, tiny_segmentation


def _batch(c2: int = 13, h: int = 40, w: int = 40, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "s1": torch.randn(2, 2, h, w, generator=g),
        "s2": torch.randn(2, c2, h, w, generator=g),
        "present": {"s1": torch.tensor([True, True]), "s2": torch.tensor([True, False])},
    }


def test_segmentation_bundle_rebuilds_the_same_model(tmp_path: Path) -> None:
    task = tiny_segmentation()
    ckpt = fake_checkpoint(task, tmp_path / "a.ckpt", 32, "ssl4eo-s12-l1c")
    out = export_bundle(ckpt, tmp_path / "bundle")
    assert sorted(p.name for p in out.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    cfg = json.loads((out / CONFIG_NAME).read_text())
    assert cfg["task"] == "segmentation"
    assert cfg["class_names"] == ["water", "trees", "crops", "built", "bare"]
    assert cfg["s2_bands"] == list(bands.S2_L1C_ORDER)
    assert cfg["s1_bands"] == ["VV", "VH"]
    assert cfg["channels"] == [*bands.S2_L1C_ORDER, "VV", "VH"]
    assert cfg["patch_size"] == 32 and cfg["fixed_size"] is False and cfg["pad_multiple"] == 8
    mean = bands.stats("ssl4eo-s12-l1c").select(bands.S2_L1C_ORDER)[0]
    assert cfg["normalization"]["s2_mean"] == pytest.approx(list(mean))
    b = load_bundle(out)
    assert not b.model.training
    batch = _batch()
    with torch.no_grad():
        torch.testing.assert_close(b.model(batch), task(batch), rtol=0, atol=0)


def test_classification_gmu_vit_bundle_round_trips(tmp_path: Path) -> None:
    from rsfuse.tasks.classification import MultiLabelClassificationTask

    torch.manual_seed(0)
    vit = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}
    task = MultiLabelClassificationTask(
        backbone="gated_vit", backbone_kwargs=vit, fusion="gmu", shortcut_every=1,
        mode="finetune", encoder_checkpoints=None,
    ).eval()  # fmt: skip
    ckpt = fake_checkpoint(task, tmp_path / "c.ckpt", 32, "bigearthnet-v2")
    b = load_bundle(export_bundle(ckpt, tmp_path / "cls"))
    assert b.task == "classification" and b.fixed_size and b.num_classes == 19
    assert b.s2_bands == bands.S2_L2A_ORDER
    batch = _batch(c2=12, h=32, w=32)
    with torch.no_grad():
        torch.testing.assert_close(b.model(batch), task(batch), rtol=0, atol=0)
    # the rebuilt finetune model is for inference: training it without encoders is refused
    from rsfuse.errors import ConfigError

    with pytest.raises(ConfigError, match="encoder_checkpoints"):
        b.model.on_fit_start()


def test_a_real_training_checkpoint_records_normalisation_and_patch_size(
    tmp_path: Path, dfc2020_root: Path
) -> None:
    """The datamodule's state travels in Lightning's checkpoint; export needs nothing else."""
    from rsfuse.data.datamodules import SegmentationDataModule
    from rsfuse.tasks.segmentation import SegmentationTask

    dm = SegmentationDataModule(
        dataset="dfc2020", root=str(dfc2020_root), patch_size=32, batch_size=4,
        s2_bands="10m", augment=False,
    )  # fmt: skip
    task = SegmentationTask(
        s2_bands="10m", num_classes=8, architecture="unet", encoder="resnet18",
        decoder_kwargs={"encoder_depth": 3, "decoder_channels": [16, 8, 8]}, plot_samples=0,
    )  # fmt: skip
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=1, limit_val_batches=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(task, datamodule=dm)
    trainer.save_checkpoint(tmp_path / "real.ckpt")
    b = load_bundle(export_bundle(tmp_path / "real.ckpt", tmp_path / "real"))
    assert b.patch_size == 32
    assert b.class_names == list(dm.classes)
    # the statistics, and the band order they are in
    assert b.config["normalization"] == {**dm.normalize.describe(), "s2_bands": list(b.s2_bands)}
    assert b.s2_bands == ("B02", "B03", "B04", "B08")


def test_export_without_normalisation_needs_stats(tmp_path: Path) -> None:
    task = tiny_segmentation(modalities=("s2",))
    torch.save(
        {
            "state_dict": {"model." + k: v for k, v in task.model.state_dict().items()},
            "hyper_parameters": dict(task.hparams),
        },
        tmp_path / "bare.ckpt",
    )
    with pytest.raises(CheckpointError, match="--stats"):
        export_bundle(tmp_path / "bare.ckpt", tmp_path / "b")
    with pytest.raises(CheckpointError, match="patch size"):
        export_bundle(tmp_path / "bare.ckpt", tmp_path / "b", stats="ssl4eo-s12-l1c")
    b = load_bundle(
        export_bundle(tmp_path / "bare.ckpt", tmp_path / "b", stats="ssl4eo-s12-l1c", patch_size=64)
    )
    assert b.patch_size == 64 and b.modalities == ("s2",)
    assert b.config["normalization"]["s1_mean"] is not None


def test_bad_bundles_and_checkpoints_raise_checkpoint_errors(tmp_path: Path) -> None:
    task = tiny_segmentation()
    ckpt = fake_checkpoint(task, tmp_path / "a.ckpt", 32, "ssl4eo-s12-l1c")
    out = export_bundle(ckpt, tmp_path / "ok")
    with pytest.raises(CheckpointError, match="not found"):
        load_bundle(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="not found"):
        export_bundle(tmp_path / "nope.ckpt", tmp_path / "x")
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"garbage\.ckpt"):
        export_bundle(tmp_path / "garbage.ckpt", tmp_path / "x")
    # corrupt weights: the checksum in bundle.json catches it
    w = out / WEIGHTS_NAME
    data = bytearray(w.read_bytes())
    data[-10] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_bundle(out)
    # a bundle naming a class outside rsfuse is refused before importing anything
    out2 = export_bundle(ckpt, tmp_path / "ok2")
    cfg = json.loads((out2 / CONFIG_NAME).read_text())
    cfg["class_path"] = "os.system"
    (out2 / CONFIG_NAME).write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="not an rsfuse class"):
        load_bundle(out2)
    # weights of another architecture
    cfg["class_path"] = "rsfuse.tasks.segmentation.SegmentationTask"
    cfg["init_args"]["num_classes"] = 7
    cfg["init_args"]["class_names"] = None
    (out2 / CONFIG_NAME).write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not match"):
        load_bundle(out2)
    # no bundle.json: not complete
    (out2 / CONFIG_NAME).unlink()
    with pytest.raises(CheckpointError, match="not a complete"):
        load_bundle(out2)
