"""Synthetic whole scenes (``synthesize("scene", …)``): files, one grid for every raster,
band order, dtypes, clouds (S2 only, near the target cover), references with colour tables,
native-resolution per-band files, no seams, determinism across workers, bad arguments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from rsfuse.bands import S1_ORDER, S2_L1C_ORDER, S2_L2A_ORDER
from rsfuse.data.classes import DFC2020, DW9
from rsfuse.data.synthetic import LAYOUTS, synthesize
from rsfuse.data.synthetic import scene as scene_mod
from rsfuse.data.synthetic.scene import write_scene
from rsfuse.errors import ConfigError

SIZE = 600
COVER = 0.3
RASTERS = ("s2.tif", "s1.tif", "cloud_mask.tif", "reference_dw.tif", "reference_dfc2020.tif")


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


@pytest.fixture(scope="module")
def cloudy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scene")
    write_scene(root, n=1, seed=5, progress=False, size=SIZE, per_band=True, cloud_cover=COVER)
    return root / "scene_000"


@pytest.fixture(scope="module")
def clear(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scene_clear")
    write_scene(root, n=1, seed=5, progress=False, size=SIZE, cloud_cover=0.0)
    return root / "scene_000"


def test_registered() -> None:
    assert LAYOUTS["scene"] is write_scene


def test_files_grid_bands_and_dtypes(cloudy: Path) -> None:
    meta = json.loads((cloudy / "scene.json").read_text())
    assert meta["size"] == SIZE and meta["product"] == "L1C" and meta["season"] == 2
    assert meta["s2_bands"] == list(S2_L1C_ORDER) and meta["s1_bands"] == list(S1_ORDER)
    assert meta["classes"] == {"dw": list(DW9), "dfc2020": list(DFC2020)}
    for name in meta["files"].values():
        assert (cloudy / name).is_file(), name
    assert not list(cloudy.rglob(".*tmp*"))
    expected = {
        "s2.tif": ("uint16", S2_L1C_ORDER),
        "s1.tif": ("float32", S1_ORDER),
        "cloud_mask.tif": ("uint8", ("cloud_mask",)),
        "reference_dw.tif": ("uint8", ("label",)),
        "reference_dfc2020.tif": ("uint8", ("label",)),
    }
    for name in RASTERS:
        with rasterio.open(cloudy / name) as src:
            assert (src.height, src.width) == (SIZE, SIZE), name
            assert src.crs.to_string() == meta["crs"] and src.crs.to_epsg() == meta["epsg"]
            assert list(src.transform)[:6] == pytest.approx(meta["transform"])
            assert src.transform.a == 10 and src.transform.e == -10
            assert src.profile["tiled"] and src.block_shapes[0] == (256, 256)
            assert src.compression.name == "deflate"
            dtype, descriptions = expected[name]
            assert set(src.dtypes) == {dtype}, name
            assert src.descriptions == descriptions, name
    assert 326 <= meta["epsg"] // 100 <= 327
    s2 = _read(cloudy / "s2.tif")
    assert s2.max() <= 10000 and 300 < s2.mean() < 6000
    s1 = _read(cloudy / "s1.tif")
    assert np.isfinite(s1).all() and -45 < s1.mean() < 5


def test_references_have_colours_names_and_valid_classes(cloudy: Path) -> None:
    for name, classes in (("reference_dw.tif", DW9), ("reference_dfc2020.tif", DFC2020)):
        with rasterio.open(cloudy / name) as src:
            lab = src.read(1)
            cmap = src.colormap(1)
            assert json.loads(src.tags(1)["CLASS_NAMES"]) == list(classes)
        valid = lab[lab != 255]
        assert valid.size and valid.max() < len(classes)
        assert all(cmap[c][3] == 255 for c in range(len(classes)))
    dw = _read(cloudy / "reference_dw.tif")[0]
    assert dw.max() < len(DW9)  # DW has no ignored class
    assert len(np.unique(dw)) >= 3  # a landscape, not a patch


def test_clouds_near_target_and_only_on_s2(cloudy: Path, clear: Path) -> None:
    meta = json.loads((cloudy / "scene.json").read_text())
    mask = _read(cloudy / "cloud_mask.tif")[0]
    assert set(np.unique(mask)) <= {0, 1, 2}
    assert meta["cloud_fraction"] == pytest.approx(np.mean(mask == 1))
    assert COVER - 0.12 < meta["cloud_fraction"] < COVER + 0.12
    assert np.mean(mask == 2) < 0.2
    # S1 and the references do not depend on the clouds
    for name in ("s1.tif", "reference_dw.tif", "reference_dfc2020.tif"):
        np.testing.assert_array_equal(_read(cloudy / name), _read(clear / name), err_msg=name)
    assert not _read(clear / "cloud_mask.tif").any()
    assert json.loads((clear / "scene.json").read_text())["cloud_fraction"] == 0.0
    s2, s2_clear = _read(cloudy / "s2.tif"), _read(clear / "s2.tif")
    same = (s2 == s2_clear).all(axis=0)
    assert same[mask == 0].mean() > 0.95  # clear pixels (opacity ≤ 0.05 can change a bit)
    assert not same[mask == 1].any()
    blue = S2_L1C_ORDER.index("B02")
    assert (s2[blue][mask == 1].astype(float) > s2_clear[blue][mask == 1]).mean() > 0.95
    if (mask == 2).any():
        assert (s2[blue][mask == 2] < s2_clear[blue][mask == 2]).all()


def test_clouds_are_large_blobs(cloudy: Path) -> None:
    from scipy import ndimage

    cloud = _read(cloudy / "cloud_mask.tif")[0] == 1
    lab, _ = ndimage.label(cloud)
    sizes = np.bincount(lab.ravel())[1:]
    assert sizes.max() > 0.5 * cloud.sum()  # most of the cloud in a few big blobs


def test_per_band_files_at_native_resolution(cloudy: Path) -> None:
    meta = json.loads((cloudy / "scene.json").read_text())
    with rasterio.open(cloudy / "s2.tif") as src:
        bounds, s2 = src.bounds, src.read()
    for c, band in enumerate(S2_L1C_ORDER):
        path = cloudy / meta["files"][band]
        res = int(path.stem.rsplit("_", 1)[1][:-1])
        assert path.parent.name == "S2" and path.name.startswith(f"T{meta['tile']}_")
        assert f"_{band}_" in path.name
        with rasterio.open(path) as src:
            assert src.res == (res, res) and src.bounds == bounds and src.crs == meta["crs"]
            assert src.dtypes[0] == "uint16" and src.descriptions == (band,)
            x = src.read(1)
        f = res // 10
        mean = s2[c].reshape(SIZE // f, f, SIZE // f, f).astype(float).mean(axis=(1, 3))
        assert np.abs(x - mean).max() <= 1.0, band  # area average of the 10 m values
    s1 = _read(cloudy / "s1.tif")
    for c, band in enumerate(S1_ORDER):
        path = cloudy / meta["files"][band]
        assert path.parent.name == "S1" and path.name.endswith(f"_{band}.tif")
        with rasterio.open(path) as src:
            assert src.res == (10, 10) and src.bounds == bounds and src.dtypes[0] == "float32"
            np.testing.assert_array_equal(src.read(1), s1[c])


def test_l2a_through_synthesize(tmp_path: Path, cloudy: Path) -> None:
    synthesize("scene", tmp_path, n=2, seed=5, progress=False, size=96, product="L2A")
    for i in range(2):
        folder = tmp_path / f"scene_{i:03d}"
        meta = json.loads((folder / "scene.json").read_text())
        assert meta["product"] == "L2A" and meta["s2_bands"] == list(S2_L2A_ORDER)
        with rasterio.open(folder / "s2.tif") as src:
            assert src.count == 12 and src.descriptions == S2_L2A_ORDER
    a = _read(tmp_path / "scene_000" / "s2.tif")
    b = _read(tmp_path / "scene_001" / "s2.tif")
    assert not np.array_equal(a, b)  # scenes differ


def test_same_bytes_whatever_workers_and_no_seams(
    tmp_path: Path, cloudy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scene_mod, "BLOCK", 300)  # 4 blocks
    for w in (1, 2):
        write_scene(tmp_path / f"w{w}", seed=5, workers=w, progress=False, size=SIZE,
                    cloud_cover=COVER)  # fmt: skip
    for name in RASTERS:
        a = _read(tmp_path / "w1" / "scene_000" / name)
        np.testing.assert_array_equal(a, _read(tmp_path / "w2" / "scene_000" / name))
        if name not in ("s2.tif", "s1.tif"):
            # land cover and clouds are whole-scene fields: any block size gives the same maps
            np.testing.assert_array_equal(a, _read(cloudy / name), err_msg=name)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"size": 32}, "size"),
        ({"size": 100, "per_band": True}, "size"),
        ({"n": 0}, "n"),
        ({"product": "L3"}, "product"),
        ({"cloud_cover": 1.0}, "cloud_cover"),
        ({"cloud_cover": -0.1}, "cloud_cover"),
        ({"season": 4}, "season"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, key: str) -> None:
    args = {"size": 96, "progress": False, **kwargs}
    with pytest.raises(ConfigError, match=key) as err:
        write_scene(tmp_path, **args)
    assert err.value.key == key
    assert not list(tmp_path.iterdir())
