"""DINO-MM (joint S1+S2 ViT) and CromSS (per-modality U-Nets) imports: equal outputs through
the rsfuse tasks' own loading keys, the DINO-MM ``VH, VV`` → ``VV, VH`` swap, CromSS bundles."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rsfuse import bands, load_bundle
from rsfuse.data.classes import DW9
from rsfuse.errors import CheckpointError, ConfigError
from rsfuse.weights import import_weights
from tests.weights import fakes
from tests.weights.helpers import assert_same, encoder_json, load_as_classification_encoder

DINO_MM_SOURCE = (*bands.S2_L2A_ORDER, "VH", "VV")


def _dino_mm(tmp_path: Path) -> tuple[fakes.Fake, Path]:
    fake = fakes.dino_vit(in_chans=14, patch=8)
    return fake, fakes.save(fake.ckpt, tmp_path / "B14_vits8_dinomm_ep99.pth")


def test_dino_mm_swaps_vh_vv_into_rsfuse_order(tmp_path: Path) -> None:
    fake, src = _dino_mm(tmp_path)
    [path] = import_weights(src, tmp_path / "dinomm")
    meta = encoder_json(path)
    assert meta["source"]["name"] == "dino-mm"
    assert meta["modality"] == "s1s2"
    assert meta["bands"] == [*bands.S2_L2A_ORDER, "VV", "VH"]  # rsfuse early fusion
    assert meta["channel_mapping"]["source_channels"] == list(DINO_MM_SOURCE)
    assert meta["kwargs"]["patch_size"] == 8
    assert meta["normalization_recipe"] == "dino-mm"
    norm = meta["normalization"]
    assert norm["s1_mean"] == pytest.approx([-12.59, -19.22])  # VV, VH (DINO-MM lists VH, VV)
    assert norm["s1_percentiles"] == [0.01, 0.99]
    s2 = torch.randn(2, 12, 32, 32)
    vv, vh = torch.randn(2, 1, 32, 32), torch.randn(2, 1, 32, 32) - 1.0
    enc = load_as_classification_encoder(path)
    with torch.no_grad():
        ours = enc(torch.cat([s2, vv, vh], 1))
        assert_same(ours, fake.features(torch.cat([s2, vh, vv], 1)))
        # not symmetric: feeding rsfuse's order to the source unchanged gives other features
        assert (ours - fake.features(torch.cat([s2, vv, vh], 1))).abs().max() > 1e-3


def test_dino_mm_feeds_the_early_fusion_classifier(tmp_path: Path) -> None:
    """``encoder_checkpoints: {s1s2: FILE}`` with the recorded backbone arguments."""
    from rsfuse.tasks.classification import MultiLabelClassificationTask

    fake, src = _dino_mm(tmp_path)
    [path] = import_weights(src, tmp_path / "dinomm")
    usage = encoder_json(path)["usage"]["classification"]
    task = MultiLabelClassificationTask(
        modalities=["s1", "s2"],
        s2_bands="all",
        s2_product="L2A",
        backbone=usage["backbone"],
        backbone_kwargs=usage["backbone_kwargs"],
        fusion="early",
        mode="linear_probe",
        encoder_checkpoints={"s1s2": str(path)},
    ).eval()
    s1, s2 = torch.randn(2, 2, 32, 32), torch.randn(2, 12, 32, 32)
    present = {"s1": torch.ones(2, dtype=torch.bool), "s2": torch.ones(2, dtype=torch.bool)}
    with torch.no_grad():
        feats = task.model.features({"s1": s1, "s2": s2, "present": present})
        assert_same(feats, fake.features(torch.cat([s2, s1[:, [1, 0]]], 1)))
    # a classifier fed L1C (13 bands) refuses the 12-band encoder by its JSON
    with pytest.raises(CheckpointError, match="bands"):
        MultiLabelClassificationTask(
            modalities=["s1", "s2"], s2_bands="all", s2_product="L1C",
            backbone=usage["backbone"], backbone_kwargs=usage["backbone_kwargs"],
            mode="finetune", encoder_checkpoints={"s1s2": str(path)},
        )  # fmt: skip


@pytest.mark.parametrize("fusion", ["middle", "late"])
def test_cromss_encoders_per_modality(fusion: str, tmp_path: Path) -> None:
    ckpt, branches = fakes.cromss(fusion)
    src = fakes.save(ckpt, tmp_path / f"weights-cromss-13B-{fusion}Fusion-epoch=199.ckpt")
    paths = import_weights(src, tmp_path / "cromss")
    assert [p.name for p in paths] == ["cromss_s1.safetensors", "cromss_s2.safetensors"]
    for p, m, c in zip(paths, ("s1", "s2"), (2, 13)):
        meta = encoder_json(p)
        assert meta["source"]["fusion"] == fusion and meta["source"]["encoder"] == m
        assert meta["bands"] == list(bands.S1_ORDER if m == "s1" else bands.S2_L1C_ORDER)
        assert meta["normalization_recipe"] == "ssl4eo-window"
        x = torch.randn(2, c, 64, 64)
        enc = load_as_classification_encoder(p)
        with torch.no_grad():
            want = branches[m].encoder(x)[-1].mean((2, 3))  # pooled last stage
            assert_same(enc(x), want)


def test_cromss_9_band_encoder_and_segmentation_task(tmp_path: Path) -> None:
    """9-band CromSS S2 (B2-B8, B11, B12) through ``encoder_checkpoint`` of the
    segmentation task (full-size smp ResNet-18 encoders: the task builds smp encoders)."""
    from rsfuse.tasks.segmentation import SegmentationTask

    ckpt, branches = fakes.cromss("middle", s2_chans=9, full="resnet18")
    src = fakes.save(ckpt, tmp_path / "weights-cromss-9B-midFusion-epoch=199.ckpt")
    [path] = import_weights(src, tmp_path / "c9", modalities=["s2"])
    meta = encoder_json(path)
    assert meta["bands"] == list(bands.S2_SUBSETS["hr9"])
    assert meta["usage"]["segmentation"] == {"encoder": "resnet18"}
    task = SegmentationTask(
        modalities=["s2"], s2_bands="hr9", s2_product="L1C", num_classes=8,
        architecture="pspnet", encoder="resnet18", encoder_checkpoint=str(path),
    ).eval()  # fmt: skip
    x = torch.randn(2, 9, 64, 64)
    with torch.no_grad():
        for a, b in zip(task.model.encoder(x), branches["s2"].encoder(x)):
            assert_same(a, b)


def test_cromss_unet_as_a_bundle(tmp_path: Path) -> None:
    ckpt, branches = fakes.cromss("late", full="resnet18")
    src = fakes.save(ckpt, tmp_path / "weights-cromss-13B-lateFusion-epoch=199.ckpt")
    [out] = import_weights(src, tmp_path / "bundle", bundle=True)
    b = load_bundle(out)
    assert b.task == "segmentation" and b.class_names == list(DW9)
    assert b.s2_bands == bands.S2_L1C_ORDER and b.patch_size == 256
    assert b.config["source"]["name"] == "cromss"
    assert b.normalize.mode == "dino-mm"
    x = torch.randn(2, 13, 64, 64)
    with torch.no_grad():
        got = b.model({"s2": x, "present": {"s2": torch.ones(2, dtype=torch.bool)}})
        assert_same(got, branches["s2"](x))
    s1_bundle = import_weights(src, tmp_path / "bundle_s1", bundle=True, modalities=["s1"])[0]
    x1 = torch.randn(2, 2, 64, 64)
    with torch.no_grad():
        got1 = load_bundle(s1_bundle).model({"s1": x1, "present": {"s1": torch.ones(2).bool()}})
        assert_same(got1, branches["s1"](x1))


def test_bundles_only_from_whole_networks(tmp_path: Path) -> None:
    src = fakes.save(fakes.mae_vit(13).ckpt, tmp_path / "mae.pth")
    with pytest.raises(ConfigError, match="whole"):
        import_weights(src, tmp_path / "b", bundle=True)
