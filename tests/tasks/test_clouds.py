"""Clouded or absent S2 never reaches a model's output; evaluation scores clear and clouded
subsets; ``rsfuse predict`` routes exactly as the task does."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import rasterio
import torch
from torch.utils.data import DataLoader, Dataset

from rsfuse.bands import S2_L1C_ORDER
from rsfuse.data.sample import collate
from rsfuse.models.fusion import route_by_validity, sensor_input
from rsfuse.tasks.classification import MultiLabelClassificationTask
from rsfuse.tasks.segmentation import SegmentationTask

TINY_VIT = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2,
            "class_token": False, "global_pool": "avg"}  # fmt: skip


def _batch(b: int = 3, size: int = 32, c2: int = 12, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    valid = torch.ones(b, size, size, dtype=torch.bool)
    valid[:, : size // 2, : size // 2] = False  # a cloud in one quarter
    return {
        "s1": torch.randn(b, 2, size, size, generator=g),
        "s2": torch.randn(b, c2, size, size, generator=g),
        "valid": valid,
        "present": {"s1": torch.ones(b, dtype=torch.bool), "s2": torch.ones(b, dtype=torch.bool)},
        "label": (torch.rand(b, 19, generator=g) > 0.7).float(),
    }


def _scramble_clouds(batch: dict) -> dict:
    """The same batch with other S2 values under the cloud."""
    out = dict(batch)
    noise = 100 * torch.randn_like(batch["s2"])
    out["s2"] = torch.where(batch["valid"].unsqueeze(1), batch["s2"], noise)
    return out


def test_sensor_input_zeroes_invalid_pixels_and_absent_samples() -> None:
    b = _batch()
    b["present"]["s2"][1] = False
    x = sensor_input(b, "s2")
    assert (x[:, :, :16, :16] == 0).all() and (x[1] == 0).all()
    assert torch.equal(x[0, :, 16:], b["s2"][0, :, 16:])
    assert torch.equal(sensor_input(b, "s1"), b["s1"])  # S1 has no validity mask


@pytest.mark.parametrize("fusion", ["early", "concat", "gmu"])
def test_classifier_output_ignores_clouded_pixels(fusion: str) -> None:
    torch.manual_seed(0)
    task = MultiLabelClassificationTask(
        backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT, fusion=fusion
    ).eval()
    b = _batch()
    with torch.no_grad():
        assert torch.allclose(task(b), task(_scramble_clouds(b)), atol=1e-5)
        # S2 absent: nothing of S2 reaches the output
        absent = dict(b, present={"s1": b["present"]["s1"], "s2": torch.zeros(3, dtype=bool)})
        other = dict(absent, s2=torch.randn_like(b["s2"]))
        assert torch.allclose(task(absent), task(other), atol=1e-5)


def _seg(modalities=("s1", "s2"), architecture="unet", encoder="resnet18", **kw):
    torch.manual_seed(0)
    extra = {"decoder_kwargs": {"encoder_depth": 3, "decoder_channels": [16, 8, 8]}}
    if architecture == "upernet":
        extra = {"encoder_kwargs": {"img_size": 32, "patch_size": 8, "embed_dim": 32,
                                    "depth": 4, "num_heads": 2}}  # fmt: skip
    return SegmentationTask(
        modalities=list(modalities), num_classes=4, architecture=architecture,
        encoder=encoder, plot_samples=0, **extra, **kw,
    ).eval()  # fmt: skip


@pytest.mark.parametrize(
    ("architecture", "encoder"), [("unet", "resnet18"), ("upernet", "gated_vit")]
)
def test_segmentation_routes_clouded_pixels_to_the_s1_path(architecture, encoder) -> None:
    task = _seg(architecture=architecture, encoder=encoder)
    b = _batch(c2=13)
    with torch.no_grad():
        z = task(b)
        absent = {**b["present"], "s2": torch.zeros(3, dtype=torch.bool)}
        s1_only = task._logits(dict(b, s2=torch.zeros_like(b["s2"]), present=absent))
        both = task._logits(b)
        valid = b["valid"].unsqueeze(1)
        assert torch.allclose(z, torch.where(valid, both, s1_only), atol=1e-5)
        assert torch.allclose(z, task(_scramble_clouds(b)), atol=1e-5)
        no_cloud = dict(b)
        no_cloud.pop("valid")
        assert not torch.allclose(task(no_cloud), z, atol=1e-3)  # the mask matters


def test_route_by_validity_checks_before_the_second_forward() -> None:
    calls = []

    def forward(batch: dict) -> torch.Tensor:
        calls.append(batch["present"]["s2"].clone())
        return batch["s1"][:, :1]

    b = _batch()
    b["valid"][:] = True
    route_by_validity(forward, b, check=True)
    assert len(calls) == 1
    route_by_validity(forward, b, check=False)
    assert len(calls) == 3 and not calls[-1].any()


class _Samples(Dataset):
    def __init__(self, batch: dict) -> None:
        self.b = batch

    def __len__(self) -> int:
        return self.b["s1"].shape[0]

    def __getitem__(self, i: int) -> dict:
        return {k: ({m: bool(v[i]) for m, v in x.items()} if k == "present" else x[i])
                for k, x in self.b.items()}  # fmt: skip


def _trainer(tmp_path: Path) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip


def test_classification_reports_clear_and_clouded_subsets(tmp_path: Path) -> None:
    from torchmetrics.classification import MultilabelAveragePrecision

    torch.manual_seed(0)
    task = MultiLabelClassificationTask(backbone="vit_tiny_patch16_224", backbone_kwargs=TINY_VIT)
    b = _batch(8)
    b["valid"][4:] = True  # samples 0-3 clouded, 4-7 clear
    b["present"]["s2"][3] = False
    loader = DataLoader(_Samples(b), batch_size=3, collate_fn=collate)
    m = _trainer(tmp_path).test(task, dataloaders=loader, verbose=False)[0]
    with torch.no_grad():
        scores = task.eval()(b).sigmoid()
    ap = MultilabelAveragePrecision(19, average="micro")
    t = b["label"].long()
    assert m["test/clear/mAP_micro"] == pytest.approx(float(ap(scores[4:], t[4:])), abs=1e-5)
    assert m["test/clouded/mAP_micro"] == pytest.approx(float(ap(scores[:4], t[:4])), abs=1e-5)
    assert m["test/mAP_micro"] == pytest.approx(float(ap(scores, t)), abs=1e-5)


def test_segmentation_reports_clear_and_clouded_pixels(tmp_path: Path) -> None:
    task = _seg()
    b = _batch(4, c2=13)
    b.pop("label")
    b["mask"] = torch.randint(0, 4, (4, 32, 32))
    _trainer(tmp_path).test(task, dataloaders=DataLoader(_Samples(b), 2, collate_fn=collate),
                            verbose=False)  # fmt: skip
    with torch.no_grad():
        pred = task.eval()(b).argmax(1)
    valid, mask = b["valid"], b["mask"]
    clear_oa = float((pred == mask)[valid].float().mean())
    cloud_oa = float((pred == mask)[~valid].float().mean())
    assert task.last_test_subsets["clear"]["OA"] == pytest.approx(clear_oa, abs=1e-6)
    assert task.last_test_subsets["clouded"]["OA"] == pytest.approx(cloud_oa, abs=1e-6)


# ---------------------------------------------------------------------------- predict parity
def test_predict_routes_as_the_task(tmp_path: Path) -> None:
    """One window over a whole scene: ``rsfuse predict``'s class probabilities equal the
    task's on the same normalised input with ``valid`` = not cloud."""
    from rsfuse.data.transforms import Normalize
    from rsfuse.inference import export_bundle, load_bundle
    from rsfuse.inference.predict import Options, predict_scene
    from tests.inference.conftest import fake_checkpoint, scene_arrays, write_raster

    task = _seg()
    rule = {"source": "detector", "max_cloud_fraction": 0.5, "dilate": 2}  # trained with validity
    bundle = export_bundle(
        fake_checkpoint(task, tmp_path / "c.ckpt", 64, "ssl4eo-s12-l1c", clouds=rule),
        tmp_path / "b",
    )
    a = scene_arrays(64, 64)
    cloud = np.zeros((64, 64), np.uint8)
    cloud[10:30, 5:40] = 1
    s2 = write_raster(tmp_path / "s2.tif", a["s2"], list(S2_L1C_ORDER))
    s1 = write_raster(tmp_path / "s1.tif", a["s1"], ["VV", "VH"])
    cm = write_raster(tmp_path / "cloud.tif", cloud[None], ["cloud"])
    predict_scene(
        bundle, tmp_path / "map.tif", s2=s2, s1=s1, clouds=str(cm),
        options=Options(window=64, overlap=0, probabilities=True, progress=False),
    )  # fmt: skip
    with rasterio.open(tmp_path / "map_probabilities.tif") as src:
        probs = src.read().astype(np.float32) / 255.0  # [K, H, W]
    with rasterio.open(tmp_path / "map_path.tif") as src:
        path = src.read(1)
    assert (path[cloud == 1] == 2).all() and (path[cloud == 0] == 1).all()
    b = load_bundle(bundle)
    norm: Normalize = b.normalize
    batch = norm({
        "s2": torch.from_numpy(a["s2"])[None], "s1": torch.from_numpy(a["s1"])[None],
        "present": {"s1": torch.ones(1, dtype=torch.bool), "s2": torch.ones(1, dtype=torch.bool)},
    })  # fmt: skip
    batch["valid"] = torch.from_numpy(cloud == 0)[None]
    with torch.no_grad():
        ref = b.model(batch).softmax(1)[0].numpy()
    assert np.abs(probs - ref).max() <= 1.0 / 255 + 1e-4
    report = json.loads((tmp_path / "map_report.json").read_text())
    assert report["path_fractions"]["s1"] == pytest.approx(cloud.mean())


def test_cromss_unets_never_see_clouded_or_dropped_s2() -> None:
    from rsfuse.methods.cromss import CromSS

    torch.manual_seed(0)
    m = CromSS(
        fusion="middle", num_classes=4, encoder="resnet18", encoder_depth=3,
        decoder_channels=[16, 8, 8], alpha=0.0, beta=0.0,
    ).eval()  # fmt: skip
    b = _batch(c2=13)
    b["present"]["s2"][2] = False
    with torch.no_grad():
        z, z2 = m(b), m(_scramble_clouds(dict(b, s2=b["s2"].clone())))
        other = m(dict(b, s2=torch.where(torch.arange(3).view(3, 1, 1, 1) == 2, 9.0, b["s2"])))
    assert torch.allclose(z["s2"], z2["s2"], atol=1e-5)  # clouded pixels do not count
    assert torch.allclose(z["s2"][2], other["s2"][2], atol=1e-5)  # dropped sample
    assert torch.equal(z["s1"], z2["s1"])


def test_cromss_datamodule_keeps_the_sensor_drop(noldo_root: Path) -> None:
    from rsfuse.data.datamodules import CromSSDataModule

    dm = CromSSDataModule(dataset="noldo-s12", root=str(noldo_root), sensor_drop=0.5,
                          clouds="detector", patch_size=48)  # fmt: skip
    assert dm.augmentation.sensor_drop is not None and dm.augmentation.sensor_drop.p == 0.5
    assert dm.validity.source == "detector"
