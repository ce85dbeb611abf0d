"""Round trips rsfuse → timm / TorchGeo → same outputs (``rsfuse export --format``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
from torch import nn

from rsfuse import bands
from rsfuse.cli import run
from rsfuse.data.transforms import Normalize
from rsfuse.errors import ConfigError
from rsfuse.weights import export_encoders, import_weights
from rsfuse.weights.torchgeo_adapters import TORCHGEO_BIGEARTHNET_ORDER
from tests.weights import fakes
from tests.weights.helpers import assert_same

VIT_KW = {"img_size": 32, "embed_dim": 64, "depth": 2, "num_heads": 2}


def task_checkpoint(task: nn.Module, path: Path, stats: str, patch: int) -> Path:
    """A Lightning-style checkpoint of a task with an rsfuse datamodule state."""
    norm = Normalize.from_stats(stats, task.s2_band_names, s1="s1" in task.modalities)
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in task.model.state_dict().items()},
            "hyper_parameters": dict(task.hparams),
            "BigEarthNetDataModule": {"normalization": norm.describe(), "patch_size": patch},
        },
        path,
    )
    return path


def classifier(backbone: str, kwargs: dict, fusion: str = "early", **kw) -> nn.Module:
    from rsfuse.tasks.classification import MultiLabelClassificationTask

    torch.manual_seed(0)
    task = MultiLabelClassificationTask(
        modalities=["s1", "s2"], s2_bands="all", s2_product="L2A", backbone=backbone,
        backbone_kwargs=kwargs, fusion=fusion, **kw,
    )  # fmt: skip
    fakes.randomize(task.model)
    return task.eval()


def timm_load(meta_path: Path) -> nn.Module:
    """What a timm user writes, from the exported JSON's model, kwargs and overlay."""
    meta = json.loads(meta_path.read_text())
    overlay = {**meta["pretrained_cfg_overlay"]}
    overlay["file"] = str(meta_path.parent / overlay["file"])
    overlay["input_size"] = tuple(overlay["input_size"])
    m = timm.create_model(
        meta["model"], pretrained=True, pretrained_cfg_overlay=overlay, **meta["kwargs"]
    )
    return m.eval()


def test_classifier_encoder_round_trips_through_timm(tmp_path: Path) -> None:
    task = classifier("vit_small_patch16_224", VIT_KW)
    ckpt = task_checkpoint(task, tmp_path / "cls.ckpt", "bigearthnet-v2", 32)
    run(["export", str(ckpt), "--format", "timm", "--out", str(tmp_path / "timm")])
    meta = json.loads((tmp_path / "timm" / "early.json").read_text())
    assert meta["bands"] == list(task.channels)
    assert meta["normalization"]["s2_mean"][0] == pytest.approx(361.0767822265625)  # BEN v2
    m = timm_load(tmp_path / "timm" / "early.json")
    x = torch.randn(2, len(task.channels), 32, 32)
    with torch.no_grad():
        assert_same(m(x), task.model.encoders["early"](x))


def test_timm_loading_is_strict(tmp_path: Path) -> None:
    """The overlay keeps timm's strict load: a file with a missing key fails to load."""
    task = classifier("vit_small_patch16_224", VIT_KW)
    ckpt = task_checkpoint(task, tmp_path / "cls.ckpt", "bigearthnet-v2", 32)
    [path] = export_encoders(ckpt, tmp_path / "timm", "timm")
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    del state["blocks.1.mlp.fc2.bias"]
    save_file(state, str(path))
    with pytest.raises(RuntimeError, match=r"blocks\.1\.mlp\.fc2\.bias"):
        timm_load(path.with_suffix(".json"))


def test_torchgeo_channel_order_is_an_exact_permutation(tmp_path: Path) -> None:
    task = classifier("resnet18", {})
    ckpt = task_checkpoint(task, tmp_path / "cls.ckpt", "bigearthnet-v1", 120)
    [path] = export_encoders(ckpt, tmp_path / "tg", "timm", channel_order="torchgeo-bigearthnet")
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["bands"] == list(TORCHGEO_BIGEARTHNET_ORDER)
    m = timm_load(path.with_suffix(".json"))
    x = torch.randn(2, 14, 64, 64)  # rsfuse early fusion: S2 (12) then VV, VH
    tg = x[:, [task.channels.index(b) for b in TORCHGEO_BIGEARTHNET_ORDER]]
    with torch.no_grad():
        assert_same(m(tg), task.model.encoders["early"](x))


def test_segmentation_smp_encoder_round_trips_through_timm(tmp_path: Path) -> None:
    from rsfuse.tasks.segmentation import SegmentationTask

    torch.manual_seed(0)
    task = SegmentationTask(
        modalities=["s2"], s2_bands="all", s2_product="L1C", num_classes=5,
        architecture="unet", encoder="resnet18",
    ).eval()  # fmt: skip
    fakes.randomize(task.model)
    ckpt = task_checkpoint(task, tmp_path / "seg.ckpt", "ssl4eo-s12-l1c", 64)
    [path] = export_encoders(ckpt, tmp_path / "timm", "timm")
    m = timm_load(path.with_suffix(".json"))
    x = torch.randn(2, 13, 64, 64)
    with torch.no_grad():
        assert_same(m.forward_features(x), task.model.encoder(x)[-1])


def test_imported_encoder_round_trips(tmp_path: Path) -> None:
    """Published weights → rsfuse encoder → timm export → the source model's outputs."""
    fake = fakes.mae_vit(13)
    src = fakes.save(fake.ckpt, tmp_path / "B13_vits16_mae_ep99.pth")
    [enc] = import_weights(src, tmp_path / "mae")
    [path] = export_encoders(enc, tmp_path / "timm", "timm")
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["bands"] == list(bands.S2_L1C_ORDER)
    assert meta["normalization"]["s2_std"] == [10000.0] * 13
    x = torch.randn(2, 13, 32, 32)
    with torch.no_grad():
        assert_same(timm_load(path.with_suffix(".json"))(x), fake.features(x))


def test_torchgeo_files_have_the_trainer_layout(tmp_path: Path) -> None:
    """``NAME.ckpt``: ``hyper_parameters['model']`` and ``model.*`` keys, loadable with
    ``weights_only=True`` (TorchGeo's ``extract_backbone``); ``NAME.pth``: the plain state."""
    task = classifier("resnet18", {})
    ckpt = task_checkpoint(task, tmp_path / "cls.ckpt", "bigearthnet-v1", 120)
    [path] = export_encoders(ckpt, tmp_path / "tg", "torchgeo")
    data = torch.load(path, weights_only=True)
    assert data["hyper_parameters"]["model"] == "resnet18"
    assert data["hyper_parameters"]["in_channels"] == 14
    state = {k[len("model.") :]: v for k, v in data["state_dict"].items()}
    m = timm.create_model("resnet18", num_classes=0, in_chans=14).eval()
    m.load_state_dict(state, strict=True)
    m2 = timm.create_model("resnet18", num_classes=0, in_chans=14).eval()
    m2.load_state_dict(torch.load(path.with_suffix(".pth"), weights_only=True), strict=True)
    x = torch.randn(2, 14, 64, 64)
    with torch.no_grad():
        assert_same(m(x), task.model.encoders["early"](x))
        assert_same(m2(x), task.model.encoders["early"](x))


def test_torchgeo_trainers_load_the_export(tmp_path: Path) -> None:
    tg = pytest.importorskip("torchgeo", reason="TorchGeo is the optional [bench] extra")
    from torchgeo.trainers import MultiLabelClassificationTask, SemanticSegmentationTask

    from rsfuse.tasks.segmentation import SegmentationTask

    task = classifier("resnet18", {})
    ckpt = task_checkpoint(task, tmp_path / "cls.ckpt", "bigearthnet-v1", 120)
    [path] = export_encoders(ckpt, tmp_path / "tg", "torchgeo")
    tgt = MultiLabelClassificationTask(
        model="resnet18", weights=str(path), in_channels=14, num_classes=19
    )
    x = torch.randn(2, 14, 64, 64)
    tgt.model.eval()
    with torch.no_grad():
        feats = tgt.model.forward_head(tgt.model.forward_features(x), pre_logits=True)
        assert_same(feats, task.model.encoders["early"](x))
    seg = SegmentationTask(
        modalities=["s2"], s2_bands="all", s2_product="L1C", num_classes=5,
        architecture="unet", encoder="resnet18",
    ).eval()  # fmt: skip
    fakes.randomize(seg.model)
    ckpt2 = task_checkpoint(seg, tmp_path / "seg.ckpt", "ssl4eo-s12-l1c", 64)
    [path2] = export_encoders(ckpt2, tmp_path / "tg2", "torchgeo")
    tseg = SemanticSegmentationTask(
        model="unet", backbone="resnet18", weights=str(path2), in_channels=13, num_classes=5
    )
    x2 = torch.randn(2, 13, 64, 64)
    tseg.model.eval()
    with torch.no_grad():
        for a, b in zip(tseg.model.encoder(x2), seg.model.encoder(x2)):
            assert_same(a, b)
    assert tg.__version__


def test_gated_vit_has_no_timm_export(tmp_path: Path) -> None:
    task = classifier(
        "gated_vit",
        {"img_size": 32, "patch_size": 16, "embed_dim": 32, "depth": 2, "num_heads": 2},
    )
    ckpt = task_checkpoint(task, tmp_path / "cls.ckpt", "bigearthnet-v2", 32)
    with pytest.raises(ConfigError, match="GatedViT"):
        export_encoders(ckpt, tmp_path / "out", "timm")
    with pytest.raises(ConfigError, match="format"):
        export_encoders(ckpt, tmp_path / "out", "onnx")
