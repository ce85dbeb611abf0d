"""``rsfuse predict``: windows and blending, georeferenced outputs, cloud routing, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine

from rsfuse import bands, load_bundle
from rsfuse.errors import ConfigError, DataError
from rsfuse.inference import export_bundle
from rsfuse.inference.outputs import NODATA_CLASS, PATH_CODES
from rsfuse.inference.predict import Options, predict_scene
from rsfuse.models.fusion import drop_modalities

from .conftest import CRS, TRANSFORM, fake_checkpoint, scene_arrays, tiny_segmentation, write_raster

QUIET = {"progress": False}


def _whole_forward_probs(
    bundle_dir: Path, s2: np.ndarray, s1: np.ndarray, s1_only: bool = False, model=None
) -> np.ndarray:
    """Softmax of one forward pass over the whole scene (the reference)."""
    b = model or load_bundle(bundle_dir)
    batch = {"s2": torch.from_numpy(s2[None].astype(np.float32)), "s1": torch.from_numpy(s1[None])}
    batch = b.normalize(batch)
    if s1_only:
        batch = drop_modalities(batch, ["s2"])
    with torch.no_grad():
        return torch.softmax(b.model(batch), dim=1)[0].numpy()  # [K, H, W]


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def test_one_window_over_the_scene_equals_a_whole_image_forward(seg_bundle, scene, tmp_path):
    out = tmp_path / "one" / "map.tif"
    opts = Options(window=192, probabilities=True, **QUIET)
    predict_scene(seg_bundle, out, s2=scene["s2"], s1=scene["s1"], clouds="none", options=opts)
    ref = _whole_forward_probs(seg_bundle, scene["arrays"]["s2"], scene["arrays"]["s1"])
    probs = _read(tmp_path / "one" / "map_probabilities.tif").astype(np.float32)
    np.testing.assert_allclose(probs, np.rint(ref * 255), atol=1.0)
    cls = _read(out)[0]
    top2 = np.sort(ref, axis=0)[-2:]
    clear = (top2[1] - top2[0]) > 1e-4  # pixels without a near-tie
    assert (cls[clear] == ref.argmax(0)[clear]).all()


def test_sliding_windows_with_blending_reproduce_the_whole_image_forward(
    seg_bundle, scene, tmp_path
):
    """64 px windows, overlap 32: the blended map agrees with one whole-scene forward pass up
    to the U-Net's receptive field (wider than a window: its outputs see less context
    inside a window), and has no seams: the error at window borders is not larger."""
    out = tmp_path / "win" / "map.tif"
    opts = Options(window=64, overlap=32, probabilities=True, batch_size=5, **QUIET)
    report = predict_scene(
        seg_bundle, out, s2=scene["s2"], s1=scene["s1"], clouds="none", options=opts
    )
    # rows: starts 0, 32, 64, 86; columns: 0, 32, 64, 96, 126
    assert report["windows"] == 4 * 5 and report["stride"] == 32
    ref = _whole_forward_probs(seg_bundle, scene["arrays"]["s2"], scene["arrays"]["s1"])
    probs = _read(tmp_path / "win" / "map_probabilities.tif").astype(np.float32) / 255
    err = np.abs(probs - ref)  # [K, H, W]
    print("mean / p99 probability error", err.mean(), np.quantile(err, 0.99))
    assert err.mean() < 0.03 and np.quantile(err, 0.99) < 0.2
    top2 = np.sort(ref, axis=0)[-2:]
    decided = (top2[1] - top2[0]) > 0.05  # the untrained model has many near-ties
    agree = _read(out)[0] == ref.argmax(0)
    print("agreement on decided pixels", agree[decided].mean(), decided.mean())
    assert agree[decided].mean() > 0.95
    # no seams: the error at window borders is not larger than elsewhere
    borders = np.zeros(err.shape[2], bool)
    borders[[31, 32, 63, 64, 95, 96, 126, 127]] = True
    assert err[:, :, borders].mean() < 2 * err.mean() + 1e-3


class _Pointwise(torch.nn.Module):
    """A 1x1-convolution 'network': no spatial context, so windows must equal the whole."""

    pad_multiple = 1

    def __init__(self, c_in: int, k: int) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = torch.nn.Conv2d(c_in, k, 1)

    def forward(self, x):
        return self.conv(x)


def test_windows_and_blending_are_exact_for_a_model_without_spatial_context(
    seg_bundle, scene, tmp_path
):
    b = load_bundle(seg_bundle)
    b.model.model = _Pointwise(15, 5)
    predict_scene(
        b, tmp_path / "p.tif", s2=scene["s2"], s1=scene["s1"], clouds="none",
        options=Options(window=48, overlap=20, probabilities=True, batch_size=3, **QUIET),
    )  # fmt: skip
    ref = _whole_forward_probs(seg_bundle, scene["arrays"]["s2"], scene["arrays"]["s1"], model=b)
    probs = _read(tmp_path / "p_probabilities.tif").astype(np.float32)
    np.testing.assert_allclose(probs, np.rint(ref * 255), atol=1.0)


def test_outputs_are_cogs_on_the_input_grid(seg_bundle, scene, tmp_path):
    out = tmp_path / "maps" / "map.tif"
    report = predict_scene(
        seg_bundle, out, s2=scene["s2"], s1=scene["s1"], clouds="none",
        options=Options(window=64, probabilities=True, quicklook=True, **QUIET),
    )  # fmt: skip
    for name in ("map.tif", "map_path.tif", "map_probabilities.tif"):
        with rasterio.open(tmp_path / "maps" / name) as ds:
            assert ds.crs.to_string() == CRS
            assert ds.transform == TRANSFORM
            assert (ds.height, ds.width) == (150, 190)
            assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    with rasterio.open(out) as ds:
        assert ds.dtypes[0] == "uint8" and ds.nodata == NODATA_CLASS
        cmap = ds.colormap(1)
        assert all(cmap[k][3] == 255 for k in range(5)) and cmap[NODATA_CLASS][3] == 0
        assert json.loads(ds.tags()["CLASS_NAMES"]) == ["water", "trees", "crops", "built", "bare"]
        assert set(np.unique(ds.read(1))) <= set(range(5))
    with rasterio.open(tmp_path / "maps" / "map_probabilities.tif") as ds:
        assert ds.count == 5 and ds.descriptions[0] == "water"
        p = ds.read().astype(int).sum(axis=0)
        assert np.abs(p - 255).max() <= 5  # probabilities sum to 1 (up to rounding)
    assert (tmp_path / "maps" / "map_quicklook.png").stat().st_size > 10_000
    rep = json.loads((tmp_path / "maps" / "map_report.json").read_text())
    assert rep["size"] == [150, 190] and rep["path_fractions"]["s1+s2"] == 1.0
    assert report["pixels_per_second"] > 0
    assert not list((tmp_path / "maps").glob(".*"))  # no temporary file left


def test_cloud_routing_uses_s1_only_exactly_where_the_mask_says(seg_bundle, scene, tmp_path):
    opts = Options(window=64, overlap=16, probabilities=True, **QUIET)
    predict_scene(
        seg_bundle, tmp_path / "r" / "map.tif", s2=scene["s2"], s1=scene["s1"],
        clouds=str(scene["cloud"]), options=opts,
    )  # fmt: skip
    cloud = scene["arrays"]["cloud"] == 1
    path = _read(tmp_path / "r" / "map_path.tif")[0]
    assert (path[cloud] == PATH_CODES["s1"]).all()
    assert (path[~cloud] == PATH_CODES["s1+s2"]).all()
    # the cloudy pixels got the S1-only model's predictions: the same as a run in which
    # every pixel is cloudy (S2 dropped everywhere)
    everywhere = write_raster(tmp_path / "all_cloud.tif", np.ones((1, 150, 190), np.uint8))
    predict_scene(
        seg_bundle, tmp_path / "a" / "map.tif", s2=scene["s2"], s1=scene["s1"],
        clouds=str(everywhere), options=opts,
    )  # fmt: skip
    p_routed = _read(tmp_path / "r" / "map_probabilities.tif").astype(int)
    p_s1 = _read(tmp_path / "a" / "map_probabilities.tif").astype(int)
    assert np.abs(p_routed[:, cloud] - p_s1[:, cloud]).max() <= 1
    assert (_read(tmp_path / "a" / "map_path.tif") == PATH_CODES["s1"]).all()
    # and they do not depend on what S2 shows under the cloud
    s2 = scene["arrays"]["s2"].copy()
    s2[:, cloud] = 9000
    other = write_raster(tmp_path / "s2_other.tif", s2, list(bands.S2_L1C_ORDER))
    predict_scene(
        seg_bundle, tmp_path / "o" / "map.tif", s2=other, s1=scene["s1"],
        clouds=str(scene["cloud"]), options=opts,
    )  # fmt: skip
    p_other = _read(tmp_path / "o" / "map_probabilities.tif").astype(int)
    assert np.abs(p_other[:, cloud] - p_routed[:, cloud]).max() <= 1


def test_auto_cloud_detector_finds_the_bright_cirrus_cloud(seg_bundle, scene, tmp_path):
    # L1C with all 13 bands: s2cloudless (4 px averaging, 2 px disk dilation)
    predict_scene(
        seg_bundle, tmp_path / "m.tif", s2=scene["s2"], s1=scene["s1"], clouds="auto",
        options=Options(window=64, **QUIET),
    )  # fmt: skip
    cloud = scene["arrays"]["cloud"] == 1
    routed = _read(tmp_path / "m_path.tif")[0] == PATH_CODES["s1"]
    assert routed[cloud].all()
    from scipy import ndimage

    assert not (routed & ~ndimage.binary_dilation(cloud, iterations=6)).any()
    assert routed.mean() < 2 * cloud.mean()


def test_s1_nodata_pixels_use_the_s2_only_path(seg_bundle, scene, tmp_path):
    s1 = scene["arrays"]["s1"].copy()
    s1[:, :10, :] = np.nan
    f = write_raster(tmp_path / "s1_gap.tif", s1, ["VV", "VH"])
    predict_scene(
        seg_bundle, tmp_path / "g.tif", s2=scene["s2"], s1=f, clouds=str(scene["cloud"]),
        options=Options(window=64, **QUIET),
    )  # fmt: skip
    path = _read(tmp_path / "g_path.tif")[0]
    assert (path[:10] == PATH_CODES["s2"]).all()
    assert (path[10:][scene["arrays"]["cloud"][10:] == 0] == PATH_CODES["s1+s2"]).all()


def _expect_data_error(match, seg_bundle, tmp_path, **kw):
    out = tmp_path / "bad" / "map.tif"
    with pytest.raises(DataError, match=match) as e:
        predict_scene(seg_bundle, out, options=Options(**QUIET), **kw)
    assert not out.exists()
    return str(e.value)


def test_bad_inputs_raise_data_errors_naming_the_file_before_any_work(seg_bundle, scene, tmp_path):
    a = scene["arrays"]
    d = tmp_path
    # missing file
    msg = _expect_data_error("not found", seg_bundle, d, s2=d / "nope.tif", s1=scene["s1"])
    assert "nope.tif" in msg
    # missing modality the model takes
    _expect_data_error("no S1 input", seg_bundle, d, s2=scene["s2"])
    # CRS mismatch
    f = write_raster(d / "s1_crs.tif", a["s1"], ["VV", "VH"], crs="EPSG:32633")
    msg = _expect_data_error("CRS mismatch", seg_bundle, d, s2=scene["s2"], s1=f)
    assert "s1_crs.tif" in msg and "32633" in msg
    # resolution mismatch
    t20 = Affine(20.0, 0.0, TRANSFORM.c, 0.0, -20.0, TRANSFORM.f)
    f = write_raster(d / "s1_res.tif", a["s1"], ["VV", "VH"], transform=t20)
    assert "s1_res.tif" in _expect_data_error(
        "resolution mismatch", seg_bundle, d, s2=scene["s2"], s1=f
    )
    # extent mismatch
    shifted = Affine(10.0, 0.0, TRANSFORM.c + 100, 0.0, -10.0, TRANSFORM.f)
    f = write_raster(d / "s1_ext.tif", a["s1"], ["VV", "VH"], transform=shifted)
    _expect_data_error("extent mismatch", seg_bundle, d, s2=scene["s2"], s1=f)
    f = write_raster(d / "s1_small.tif", a["s1"][:, :100], ["VV", "VH"])
    _expect_data_error("extent mismatch", seg_bundle, d, s2=scene["s2"], s1=f)
    # a band the model needs is missing
    keep = [b for b in bands.S2_L1C_ORDER if b != "B10"]
    idx = [bands.S2_L1C_ORDER.index(b) for b in keep]
    f = write_raster(d / "s2_l2a.tif", a["s2"][idx], keep)
    msg = _expect_data_error("lacks bands", seg_bundle, d, s2=f, s1=scene["s1"])
    assert "B10" in msg and "s2_l2a.tif" in msg
    # unnamed bands
    f = write_raster(d / "s2_unnamed.tif", a["s2"])
    _expect_data_error("no descriptions", seg_bundle, d, s2=f, s1=scene["s1"])
    # a cloud mask on another grid
    f = write_raster(d / "cloud_small.tif", a["cloud"][None, :100])
    _expect_data_error(
        "extent mismatch", seg_bundle, d, s2=scene["s2"], s1=scene["s1"], clouds=str(f)
    )
    # S1 stored as integers is not dB
    f = write_raster(d / "s1_int.tif", a["s1"].astype(np.int16), ["VV", "VH"])
    _expect_data_error("dB as floats", seg_bundle, d, s2=scene["s2"], s1=f)
    # a corrupt file
    (d / "corrupt.tif").write_bytes(b"II*\x00garbage")
    _expect_data_error("cannot open", seg_bundle, d, s2=d / "corrupt.tif", s1=scene["s1"])


def test_unnamed_bands_work_when_named_on_the_command_line(seg_bundle, scene, tmp_path):
    f = write_raster(tmp_path / "s2_unnamed.tif", scene["arrays"]["s2"])
    rep = predict_scene(
        seg_bundle, tmp_path / "u.tif", s2=f, s1=scene["s1"], clouds="none",
        s2_band_names=[b.lower().replace("b0", "b") for b in bands.S2_L1C_ORDER],
        options=Options(window=64, **QUIET),
    )  # fmt: skip
    assert rep["path_fractions"]["s1+s2"] == 1.0


def test_bad_options_raise_config_errors(seg_bundle, scene, tmp_path):
    kw = {"s2": scene["s2"], "s1": scene["s1"]}
    with pytest.raises(ConfigError, match="overlap"):
        predict_scene(seg_bundle, tmp_path / "x.tif", options=Options(window=64, overlap=64), **kw)
    with pytest.raises(ConfigError, match=r"\.tif"):
        predict_scene(seg_bundle, tmp_path / "x.geojson", **kw)
    with pytest.raises(ConfigError, match="batch-size"):
        predict_scene(seg_bundle, tmp_path / "x.tif", options=Options(batch_size=0), **kw)


def test_per_band_folders_as_sentinel_products_ship_them(tmp_path):
    """A folder of per-band files (10 m, 20 m, 60 m) predicts like the multi-band file:
    identically for a model on the 10 m bands, and on the 10 m grid for all 13 bands."""
    a = scene_arrays(144, 180, seed=3)
    names = list(bands.S2_L1C_ORDER)
    multi = write_raster(tmp_path / "s2.tif", a["s2"], names)
    s1 = write_raster(tmp_path / "s1.tif", a["s1"], ["VV", "VH"])
    folder = tmp_path / "GRANULE" / "IMG_DATA"
    folder.mkdir(parents=True)
    for i, b in enumerate(names):
        res = int(bands.BANDS[b].resolution)
        f = res // 10
        band = a["s2"][i].astype(np.float32)
        band = band.reshape(144 // f, f, 180 // f, f).mean(axis=(1, 3)).round().astype(np.uint16)
        t = Affine(res, 0.0, TRANSFORM.c, 0.0, -res, TRANSFORM.f)
        write_raster(folder / f"T32UPU_20210610T103021_{b}_{res}m.tif", band[None], transform=t)
    s1_dir = tmp_path / "S1"
    s1_dir.mkdir()
    write_raster(s1_dir / "s1a_iw_grd_vh.tif", a["s1"][1:2])
    write_raster(s1_dir / "s1a_iw_grd_vv.tif", a["s1"][0:1])
    outs = {}
    for subset in ("10m", "all"):
        task = tiny_segmentation(s2_bands=subset)
        ck = fake_checkpoint(task, tmp_path / f"{subset}.ckpt", 32, "ssl4eo-s12-l1c")
        bundle = export_bundle(ck, tmp_path / f"b-{subset}")
        for kind, s2, s1_in in (("multi", multi, s1), ("folder", folder, s1_dir)):
            out = tmp_path / f"{subset}-{kind}.tif"
            predict_scene(
                bundle, out, s2=s2, s1=s1_in, clouds="none",
                options=Options(window=64, probabilities=True, **QUIET),
            )  # fmt: skip
            with rasterio.open(out) as ds:
                assert ds.transform == TRANSFORM and (ds.height, ds.width) == (144, 180)
            outs[subset, kind] = _read(tmp_path / f"{subset}-{kind}_probabilities.tif")
    np.testing.assert_array_equal(outs["10m", "multi"], outs["10m", "folder"])
    assert outs["all", "folder"].shape == outs["all", "multi"].shape
    # a folder without a band the model needs
    next(folder.glob("*_B05_*")).unlink()
    with pytest.raises(DataError, match="B05"):
        predict_scene(
            tmp_path / "b-all", tmp_path / "z.tif", s2=folder, s1=s1_dir, options=Options(**QUIET)
        )


def test_classification_bundle_writes_geojson_cells_and_csv(tmp_path, scene):
    from rsfuse.tasks.classification import MultiLabelClassificationTask

    torch.manual_seed(0)
    vit = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}
    task = MultiLabelClassificationTask(
        backbone="gated_vit", backbone_kwargs=vit, fusion="gmu", s2_product="L1C"
    ).eval()
    ck = fake_checkpoint(task, tmp_path / "c.ckpt", 32, "ssl4eo-s12-l1c")
    bundle = export_bundle(ck, tmp_path / "cls")
    rep = predict_scene(
        bundle, tmp_path / "cells.geojson", s2=scene["s2"], s1=scene["s1"],
        clouds=str(scene["cloud"]), options=Options(**QUIET),
    )  # fmt: skip
    fc = json.loads((tmp_path / "cells.geojson").read_text())
    assert fc["crs"]["properties"]["name"] == CRS
    feats = fc["features"]
    assert len(feats) == rep["cells"] == 5 * 6  # rows 0,32,64,96,118; cols 0,…,128,158
    x0, y1 = TRANSFORM @ (0, 0)
    x1, y0 = TRANSFORM @ (190, 150)
    cloud = scene["arrays"]["cloud"]
    for f in feats:
        ring = np.asarray(f["geometry"]["coordinates"][0])
        assert ring.shape == (5, 2) and (ring[0] == ring[-1]).all()
        assert ring[:, 0].min() >= x0 and ring[:, 0].max() <= x1
        assert ring[:, 1].min() >= y0 and ring[:, 1].max() <= y1
        p = f["properties"]
        assert 0.0 <= p["Urban fabric"] <= 1.0
        r0, c0 = (
            [0, 32, 64, 96, 118][p["row"]],
            [0, 32, 64, 96, 128, 158][p["col"]],
        )
        frac = cloud[r0 : r0 + 32, c0 : c0 + 32].mean()
        assert p["cloud_fraction"] == pytest.approx(frac, abs=1e-4)
        assert p["path"] == ("s1" if frac > rep["max_cloud_fraction"] else "s1+s2")
    assert {f["properties"]["path"] for f in feats} == {"s1", "s1+s2"}
    lines = (tmp_path / "cells.csv").read_text().splitlines()
    assert len(lines) == 31 and lines[0].startswith("id,row,col,minx")


def test_cli_export_and_predict(seg_bundle, scene, tmp_path, capsys):
    from rsfuse.cli import run

    task = tiny_segmentation()
    ck = fake_checkpoint(task, tmp_path / "m.ckpt", 32, "ssl4eo-s12-l1c")
    run(["export", str(ck), "--out", str(tmp_path / "b")])
    assert "segmentation bundle" in capsys.readouterr().out
    run([
        "predict", "--bundle", str(tmp_path / "b"), "--s2", str(scene["s2"]),
        "--s1", str(scene["s1"]), "--out", str(tmp_path / "o" / "map.tif"),
        "--clouds", str(scene["cloud"]), "--window", "64", "--no-progress",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert "150 x 190 px" in out and "s1 " in out
    assert (tmp_path / "o" / "map.tif").exists()


def test_predict_on_the_synthetic_scene_layout_with_per_band_folders(seg_bundle, tmp_path):
    """`rsfuse synth --layout scene --per-band` output goes straight into predict: the
    Sentinel-style folders and the multi-band files give the same grid, and the scene's
    cloud mask routes exactly its non-zero pixels to S1 only."""
    from rsfuse.data.synthetic import synthesize

    synthesize("scene", tmp_path / "sc", n=1, seed=2, workers=1, progress=False, size=192,
               per_band=True, cloud_cover=0.3)  # fmt: skip
    d = tmp_path / "sc" / "scene_000"
    opts = Options(window=96, **QUIET)
    rep = predict_scene(
        seg_bundle, tmp_path / "f.tif", s2=d / "S2", s1=d / "S1",
        clouds=str(d / "cloud_mask.tif"), options=opts,
    )  # fmt: skip
    with rasterio.open(d / "s2.tif") as ref, rasterio.open(tmp_path / "f.tif") as out:
        assert out.crs == ref.crs and out.transform == ref.transform
        assert out.shape == ref.shape == (192, 192)
    with rasterio.open(d / "cloud_mask.tif") as c:
        cloudy = c.read(1) != 0
    path = _read(tmp_path / "f_path.tif")[0]
    assert cloudy.any() and (~cloudy).any()
    assert (path[cloudy] == PATH_CODES["s1"]).all() and (path[~cloudy] == PATH_CODES["s1+s2"]).all()
    assert rep["path_fractions"]["s1"] == pytest.approx(cloudy.mean())
