"""Tiny bundles and hand-made co-registered scenes for the inference tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine

from rsfuse import bands
from rsfuse.data.transforms import Normalize

CRS = "EPSG:32632"
TRANSFORM = Affine(10.0, 0.0, 600000.0, 0.0, -10.0, 5200000.0)


def write_raster(
    path: Path,
    data: np.ndarray,
    names: list[str] | None = None,
    transform: Affine = TRANSFORM,
    crs: str | None = CRS,
    nodata: float | None = None,
) -> Path:
    """Write [C, H, W] as a GeoTIFF with band descriptions."""
    c, h, w = data.shape
    with rasterio.open(
        path, "w", driver="GTiff", width=w, height=h, count=c, dtype=data.dtype.name,
        crs=crs, transform=transform, nodata=nodata,
    ) as d:  # fmt: skip
        d.write(data)
        for i, n in enumerate(names or [], start=1):
            d.set_band_description(i, n)
    return path


def scene_arrays(h: int, w: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Smooth, land-like S2 (13 bands, DN, low B10) and S1 (dB), plus a cloud rectangle."""
    from rsfuse.data.synthetic import smooth_fields

    rng = np.random.default_rng(seed)
    f = smooth_fields(rng, 3, (h, w), 12.0)  # [3, H, W]
    base = np.linspace(800, 2500, 13, dtype=np.float32)[:, None, None]
    s2 = base * (1.0 + 0.3 * f[0]) + 200.0 * f[1]
    s2[bands.S2_L1C_ORDER.index("B10")] = 20.0 + 5.0 * f[2]
    s2 = np.clip(s2, 1, 9000).astype(np.uint16)
    s1 = np.stack([-10.0 + 3.0 * f[1], -17.0 + 3.0 * f[2]]).astype(np.float32)
    cloud = np.zeros((h, w), np.uint8)
    cloud[h // 5 : h // 2, w // 4 : (3 * w) // 5] = 1
    return {"s2": s2, "s1": s1, "cloud": cloud}


@pytest.fixture
def scene(tmp_path: Path) -> dict[str, Any]:
    """A 150 x 190 px scene: s2.tif (13 named bands), s1.tif (VV, VH), cloud.tif; S2 under
    the cloud mask set to a bright cloud spectrum."""
    a = scene_arrays(150, 190)
    s2 = a["s2"].copy()
    s2[:, a["cloud"] == 1] = 6000
    s2[bands.S2_L1C_ORDER.index("B10"), a["cloud"] == 1] = 900
    d = tmp_path / "scene"
    d.mkdir()
    return {
        "s2": write_raster(d / "s2.tif", s2, list(bands.S2_L1C_ORDER)),
        "s1": write_raster(d / "s1.tif", a["s1"], ["VV", "VH"]),
        "cloud": write_raster(d / "cloud.tif", a["cloud"][None]),
        "arrays": {**a, "s2": s2},
        "dir": d,
    }


def fake_checkpoint(
    task: torch.nn.Module, path: Path, patch_size: int, stats: str, clouds: dict | None = None
) -> Path:
    """A Lightning-style checkpoint of ``task`` with an rsfuse datamodule state (``clouds``:
    the S2 validity rule the datamodule records, ``CloudValidity.describe()``)."""
    norm = Normalize.from_stats(stats, task.s2_band_names, s1="s1" in task.modalities)
    ckpt = {
        "state_dict": {"model." + k: v for k, v in task.model.state_dict().items()},
        "hyper_parameters": dict(task.hparams),
        "epoch": 3,
        "global_step": 30,
        "SegmentationDataModule": {"normalization": norm.describe(), "patch_size": patch_size},
    }
    if clouds is not None:
        ckpt["SegmentationDataModule"]["clouds"] = clouds
    torch.save(ckpt, path)
    return path


def tiny_segmentation(modalities: tuple[str, ...] = ("s1", "s2"), s2_bands: str = "all"):
    from rsfuse.tasks.segmentation import SegmentationTask

    torch.manual_seed(0)
    task = SegmentationTask(
        modalities=list(modalities), s2_bands=s2_bands, num_classes=5, architecture="unet",
        encoder="resnet18", decoder_kwargs={"encoder_depth": 3, "decoder_channels": [16, 8, 8]},
        class_names=["water", "trees", "crops", "built", "bare"],
    )  # fmt: skip
    return task.eval()


@pytest.fixture
def seg_bundle(tmp_path: Path) -> Path:
    """Bundle of a tiny S1+S2 U-Net (5 classes, 13 L1C bands, patch 32)."""
    from rsfuse.inference import export_bundle

    task = tiny_segmentation()
    ckpt = fake_checkpoint(task, tmp_path / "seg.ckpt", 32, "ssl4eo-s12-l1c")
    return export_bundle(ckpt, tmp_path / "seg-bundle")
