"""``rsfuse predict`` says when the scene is not what the model was trained on (product level,
band units, pixel size), and refuses it with ``--strict``; a quick-look for classification."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine

from rsfuse import bands
from rsfuse.errors import DataError
from rsfuse.inference import export_bundle
from rsfuse.inference.compatibility import InputMismatchWarning, scene_product
from rsfuse.inference.predict import Options, predict_scene

from .conftest import TRANSFORM, fake_checkpoint, scene_arrays, write_raster

QUIET = {"progress": False, "window": 64}


def _l2a_bundle(tmp_path: Path) -> Path:
    """A tiny S2-only U-Net trained (as far as the bundle says) on L2A, 12 bands."""
    from rsfuse.tasks.segmentation import SegmentationTask

    torch.manual_seed(0)
    task = SegmentationTask(
        modalities=["s2"], s2_product="L2A", num_classes=3, architecture="unet",
        encoder="resnet18", decoder_kwargs={"encoder_depth": 3, "decoder_channels": [16, 8, 8]},
    ).eval()  # fmt: skip
    ck = fake_checkpoint(task, tmp_path / "l2a.ckpt", 32, "bigearthnet-v2")
    return export_bundle(ck, tmp_path / "l2a-bundle")


def test_product_level_is_read_from_tags_sidecar_names_or_bands(tmp_path: Path) -> None:
    a = scene_arrays(16, 16)
    l1c = list(bands.S2_L1C_ORDER)
    plain = write_raster(tmp_path / "plain.tif", a["s2"][:12], list(bands.S2_L2A_ORDER))
    assert scene_product(plain, list(bands.S2_L2A_ORDER))[0] is None  # nothing tells
    assert scene_product(plain, l1c)[0] == "L1C"  # B10 exists in L1C only
    assert scene_product(plain, [*bands.S2_L2A_ORDER, "SCL"])[0] == "L2A"
    with rasterio.open(plain, "r+") as d:
        d.update_tags(PROCESSING_LEVEL="Level-2A")
    level, why = scene_product(plain, l1c)  # metadata wins over the band heuristic
    assert level == "L2A" and "PROCESSING_LEVEL" in why
    safe = tmp_path / "S2B_MSIL1C_20200801T101559_N0209_R065_T32TQM.SAFE" / "IMG_DATA"
    safe.mkdir(parents=True)
    assert scene_product(safe, list(bands.S2_L2A_ORDER))[0] == "L1C"
    synth = tmp_path / "scene_000"
    synth.mkdir()
    (synth / "scene.json").write_text(json.dumps({"product": "L2A"}))
    f = write_raster(synth / "s2.tif", a["s2"][:12], list(bands.S2_L2A_ORDER))
    assert scene_product(f, list(bands.S2_L2A_ORDER)) == ("L2A", str(synth / "scene.json"))


def test_l2a_model_on_an_l1c_scene_warns_and_strict_refuses(scene, tmp_path: Path) -> None:
    bundle = _l2a_bundle(tmp_path)
    with pytest.warns(InputMismatchWarning, match="trained on Sentinel-2 L2A but the scene is L1C"):
        rep = predict_scene(bundle, tmp_path / "a" / "map.tif", s2=scene["s2"], clouds="none",
                            options=Options(**QUIET))  # fmt: skip
    assert len(rep["input_warnings"]) == 1 and "B10" in rep["input_warnings"][0]
    with pytest.raises(DataError, match=r"--strict.*L2A but the scene is L1C"):
        predict_scene(bundle, tmp_path / "b" / "map.tif", s2=scene["s2"], clouds="none",
                      options=Options(strict=True, **QUIET))  # fmt: skip
    assert not (tmp_path / "b" / "map.tif").exists()  # refused before any work


def test_matching_scene_gives_no_warning(seg_bundle, scene, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputMismatchWarning)
        rep = predict_scene(seg_bundle, tmp_path / "map.tif", s2=scene["s2"], s1=scene["s1"],
                            clouds="none", options=Options(strict=True, **QUIET))  # fmt: skip
    assert rep["input_warnings"] == []


def test_pixel_size_and_band_units_are_checked(seg_bundle, tmp_path: Path) -> None:
    a = scene_arrays(64, 64)
    names = list(bands.S2_L1C_ORDER)
    t20 = Affine(20.0, 0.0, TRANSFORM.c, 0.0, -20.0, TRANSFORM.f)
    s2 = write_raster(tmp_path / "s2_20m.tif", a["s2"], names, transform=t20)
    s1 = write_raster(tmp_path / "s1_20m.tif", a["s1"], ["VV", "VH"], transform=t20)
    with pytest.warns(InputMismatchWarning, match="20 m pixels but the model was trained on 10 m"):
        predict_scene(seg_bundle, tmp_path / "o1" / "map.tif", s2=s2, s1=s1, clouds="none",
                      options=Options(**QUIET))  # fmt: skip
    refl = write_raster(tmp_path / "refl.tif", (a["s2"] / 10000.0).astype(np.float32), names)
    lin = write_raster(tmp_path / "lin.tif", (10 ** (a["s1"] / 10)).astype(np.float32),
                       ["VV", "VH"])  # fmt: skip
    with pytest.raises(DataError) as e:
        predict_scene(seg_bundle, tmp_path / "o2" / "map.tif", s2=refl, s1=lin, clouds="none",
                      options=Options(strict=True, **QUIET))  # fmt: skip
    assert "reflectance in 0–1" in str(e.value) and "linear power, not dB" in str(e.value)


def test_cli_prints_the_warning_and_strict_fails(tmp_path: Path, scene, capsys) -> None:
    from rsfuse.cli import main

    bundle = _l2a_bundle(tmp_path)
    args = ["predict", "--bundle", str(bundle), "--s2", str(scene["s2"]), "--clouds", "none",
            "--window", "64", "--no-progress"]  # fmt: skip
    main([*args, "--out", str(tmp_path / "w" / "map.tif")])
    err = capsys.readouterr().err
    assert "rsfuse predict: warning: the model was trained on Sentinel-2 L2A" in err
    with pytest.raises(SystemExit) as e:
        main([*args, "--out", str(tmp_path / "s" / "map.tif"), "--strict"])
    assert e.value.code != 0
    assert "rsfuse: error:" in capsys.readouterr().err


def test_classification_predictions_get_a_quicklook(scene, tmp_path: Path) -> None:
    from matplotlib.image import imread

    from rsfuse.tasks.classification import MultiLabelClassificationTask

    torch.manual_seed(0)
    vit = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}
    task = MultiLabelClassificationTask(
        backbone="gated_vit", backbone_kwargs=vit, fusion="gmu", s2_product="L1C"
    ).eval()
    bundle = export_bundle(fake_checkpoint(task, tmp_path / "c.ckpt", 32, "ssl4eo-s12-l1c"),
                           tmp_path / "cls")  # fmt: skip
    opts = Options(quicklook=True, progress=False)
    rep = predict_scene(bundle, tmp_path / "cells.geojson", s2=scene["s2"], s1=scene["s1"],
                        clouds=str(scene["cloud"]), options=opts)  # fmt: skip
    look = Path(rep["outputs"]["quicklook"])
    assert look == tmp_path / "cells_quicklook.png"
    img = imread(str(look))
    assert img.shape[0] > 200 and img.shape[1] > 600  # background, labels and paths side by side
