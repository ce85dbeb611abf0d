"""SSL4EO-S12 v1.0 (GeoTIFF folders) and v1.1 (zarr.zip) readers on tiny hand-made files.

v1.0 fixture: one location, 4 season folders whose names sort (as text and as written) in a
different order than their acquisition times; every band file is constant: S2 band c of the
season acquired k-th = 100 * c + k, S1 VV = -10 - k, VH = -20 - k. Season order, band order
and the native-size resampling are pinned by pixel values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from rasterio.transform import Affine

from rsfuse.bands import BANDS, S2_L1C_ORDER, S2_L2A_ORDER
from rsfuse.data.sample import collate
from rsfuse.data.ssl4eo import SSL4EOS12, SSL4EOS12Zarr, file_band_name
from rsfuse.data.synthetic.segmentation import _write_zarr_zip, write_ssl4eo_s12_zarr
from rsfuse.data.synthetic.world import SyntheticWorld
from rsfuse.errors import ConfigError, DataError
from rsfuse.io.geotiff import write_geotiff

P = 12  # 10 m side; 20 m bands 6 px, 60 m bands 2 px
# written in this order; acquisition order is Dec, Mar, Jun, Sep → seasons 2, 0, 3, 1 below
S2_FOLDERS = (
    "20210615T101031_20210615T101036_T33UUP",
    "20201215T101031_20201215T101036_T33UUP",
    "20210915T101031_20210915T101036_T33UUP",
    "20210315T101031_20210315T101036_T33UUP",
)
CHRONO = (2, 0, 3, 1)  # chronological rank of each folder above
S1_FOLDERS = (
    "S1B_IW_GRDH_1SDV_20210614T170000_20210614T170025_027000_033A1B_ABCD",
    "S1A_IW_GRDH_1SDV_20201216T170000_20201216T170025_035000_041A1B_ABCD",
    "S1B_IW_GRDH_1SDV_20210916T170000_20210916T170025_028000_035A1B_ABCD",
    "S1A_IW_GRDH_1SDV_20210314T170000_20210314T170025_036000_043A1B_ABCD",
)


def grid(res: int) -> Affine:
    return Affine(res, 0, 500000, 0, -res, 6000000)


def write_location(root: Path, sid: str = "0000007", l2a: bool = True) -> None:
    for folder, k in zip(S2_FOLDERS, CHRONO):
        for prod, order in (("s2c", S2_L1C_ORDER), ("s2a", S2_L2A_ORDER))[: 2 if l2a else 1]:
            for c, b in enumerate(order):
                n = P * 10 // BANDS[b].resolution
                path = root / prod / sid / folder / f"{file_band_name(b)}.tif"
                arr = np.full((n, n), 100 * c + k, np.uint16)
                write_geotiff(path, arr, crs="EPSG:32633", transform=grid(BANDS[b].resolution))
    for folder, k in zip(S1_FOLDERS, CHRONO):
        for b, v in (("VV", -10.0 - k), ("VH", -20.0 - k)):
            arr = np.full((P, P), v, np.float32)
            write_geotiff(root / "s1" / sid / folder / f"{b}.tif", arr, crs="EPSG:32633",
                          transform=grid(10))  # fmt: skip


@pytest.fixture()
def v10(tmp_path: Path) -> Path:
    write_location(tmp_path)
    return tmp_path


def test_v10_season_and_band_order(v10: Path) -> None:
    for k in range(4):
        s = SSL4EOS12(v10, season=k, patch_size=P)[0]
        assert s["s2"].shape == (13, P, P) and s["season"] == k
        assert torch.equal(s["s2"][:, 0, 0], torch.tensor([100.0 * c + k for c in range(13)]))
        assert s["s1"][0, 3, 3] == -10 - k and s["s1"][1, 3, 3] == -20 - k  # VV then VH
        assert s["meta"]["season"] == k and s["meta"]["id"] == "0000007"
    s = SSL4EOS12(v10, season=1, patch_size=P)[0]
    assert s["meta"]["products"]["s2"] == [S2_FOLDERS[3]]
    assert s["meta"]["crs"] == "EPSG:32633" and s["meta"]["transform"][0] == 10


def test_v10_all_seasons_l2a_and_subsets(v10: Path) -> None:
    ds = SSL4EOS12(v10, season="all", s2_product="L2A", patch_size=P)
    s = ds[0]
    assert s["s2"].shape == (4, 12, P, P) and s["s1"].shape == (4, 2, P, P)
    assert s["season"].tolist() == [0, 1, 2, 3]
    assert s["s2"][:, S2_L2A_ORDER.index("B11"), 0, 0].tolist() == [1000.0 + k for k in range(4)]
    assert ds.stats_name == "ssl4eo-s12-l2a"
    rgb = SSL4EOS12(v10, season=0, s2_bands="rgb", modalities=["s2"], patch_size=P)[0]
    assert rgb["s2"][:, 0, 0].tolist() == [300.0, 200.0, 100.0]  # B04, B03, B02
    assert rgb["present"] == {"s1": False, "s2": True}
    with pytest.raises(ConfigError):
        SSL4EOS12(v10, season=4, patch_size=P)
    with pytest.raises(ConfigError):
        SSL4EOS12(v10, s2_product="L2A", s2_bands=["B10"], patch_size=P)


def test_v10_random_season_is_seeded(v10: Path) -> None:
    a = SSL4EOS12(v10, season="random", seed=3, patch_size=P, modalities=["s1"])
    b = SSL4EOS12(v10, season="random", seed=3, patch_size=P, modalities=["s1"])
    sa = [int(a[0]["season"]) for _ in range(12)]
    assert sa == [int(b[0]["season"]) for _ in range(12)]
    assert len(set(sa)) > 1 and set(sa) <= {0, 1, 2, 3}
    s = a[0]
    assert s["s1"][0, 0, 0] == -10 - int(s["season"])
    batch = collate([a[0], a[0]])
    assert batch["season"].shape == (2,)


def test_v10_bad_files(v10: Path) -> None:
    folder = v10 / "s2c" / "0000007" / S2_FOLDERS[1]
    (folder / "B5.tif").unlink()
    with pytest.raises(DataError, match=r"B5\.tif") as e:
        SSL4EOS12(v10, season=0, patch_size=P)[0]
    assert "0000007" in str(e.value)
    write_geotiff(folder / "B5.tif", np.zeros((5, 5), np.uint16), crs="EPSG:32633",
                  transform=grid(20))  # fmt: skip
    with pytest.raises(DataError, match="raster is 5x5, expected 6x6"):
        SSL4EOS12(v10, season=0, patch_size=P)[0]
    nan = np.full((P, P), np.nan, np.float32)
    write_geotiff(v10 / "s1" / "0000007" / S1_FOLDERS[0] / "VV.tif", nan, crs=None,
                  transform=grid(10))  # fmt: skip
    with pytest.raises(DataError, match="NaN"):
        SSL4EOS12(v10, season=2, patch_size=P, modalities=["s1"])[0]
    write_location(v10, sid="0000008", l2a=False)
    skip = SSL4EOS12(v10, season=0, patch_size=P, on_error="skip", modalities=["s2"])
    assert skip[0]["meta"]["id"] == "0000008" and skip.skipped[0][0] == "0000007"
    (v10 / "s1" / "0000008" / S1_FOLDERS[0] / "VV.tif").unlink()
    import shutil

    shutil.rmtree(v10 / "s1" / "0000008" / S1_FOLDERS[0])
    with pytest.raises(DataError, match="expected 4 season folders, found 3"):
        SSL4EOS12(v10, season=0, patch_size=P, modalities=["s1"])[1]
    with pytest.raises(DataError, match="not found"):
        SSL4EOS12(v10 / "nope")


# ------------------------------------------------------------------------------ v1.1
def write_v11(root: Path, s1_bands: tuple[str, ...] = ("vh", "vv")) -> None:
    """2 samples; S1 band coordinate reversed; times out of order for sample 1."""
    dims = ["sample", "time", "band", "y", "x"]
    times = np.array(
        [["2020-12-01", "2021-03-01", "2021-06-01", "2021-09-01"],
         ["2021-06-01", "2020-12-01", "2021-09-01", "2021-03-01"]], dtype="datetime64[ns]",
    )  # fmt: skip
    rank = np.argsort(np.argsort(times, axis=1), axis=1)  # chronological rank of each time slot
    common = {
        "sample": (np.array(["0000011", "0000012"], dtype="<U7"), ["sample"]),
        "time_": (times, ["sample", "time"]),
        "crs": (np.array([32633, 32634]), ["sample"]),
    }
    s1 = np.zeros((2, 4, 2, 4, 4), np.float16)
    s2 = np.zeros((2, 4, 13, 4, 4), np.int16)
    for i in range(2):
        for t in range(4):
            k = rank[i, t]
            vv, vh = -10.0 - k, -20.0 - k
            s1[i, t] = np.array([vh, vv] if s1_bands[0] == "vh" else [vv, vh])[:, None, None]
            s2[i, t] = (1000 + 100 * np.arange(13) + k)[:, None, None]
    cloud = np.zeros((2, 4, 4, 4), np.uint8)
    cloud[1, :, 0, 0] = 1
    name = "ssl4eos12_val_seasonal_data_000001.zarr.zip"
    _write_zarr_zip(root / "val" / "S1GRD" / name, {
        **common, "band": (np.array(s1_bands), ["band"]), "bands": (s1, dims)})  # fmt: skip
    _write_zarr_zip(root / "val" / "S2L1C" / name, {
        **common, "band": (np.array(S2_L1C_ORDER), ["band"]), "bands": (s2, dims),
        "cloud_mask": (cloud, ["sample", "time", "y", "x"])})  # fmt: skip


def test_v11_band_order_time_order_offset(tmp_path: Path) -> None:
    write_v11(tmp_path)
    ds = SSL4EOS12Zarr(tmp_path, split="val", season="all", return_cloud_mask=True)
    assert ds.sample_ids == ["0000011", "0000012"]
    for i in range(2):
        s = ds[i]
        assert s["s1"][:, 0, 0, 0].tolist() == [-10.0, -11.0, -12.0, -13.0]  # VV, by time
        assert s["s1"][:, 1, 0, 0].tolist() == [-20.0, -21.0, -22.0, -23.0]
        assert s["s2"][2, :, 0, 0].tolist() == [100.0 * c + 2 for c in range(13)]  # -1000
    assert ds[1]["cloud_mask"][:, 0, 0].tolist() == [1, 1, 1, 1]
    assert ds[1]["meta"]["crs"] == "EPSG:32634"
    raw = SSL4EOS12Zarr(tmp_path, split="val", season=0, s2_offset=0, modalities=["s2"])
    assert raw[0]["s2"][0, 0, 0] == 1000.0


def test_v11_bad_files(tmp_path: Path) -> None:
    write_v11(tmp_path, s1_bands=("hh", "hv"))
    with pytest.raises(DataError, match=r"bands \['VV', 'VH'\] not in"):
        SSL4EOS12Zarr(tmp_path, split="val", season=0)[0]
    bad = tmp_path / "val" / "S2L1C" / "ssl4eos12_val_seasonal_data_000001.zarr.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"zarr\.zip") as e:
        SSL4EOS12Zarr(tmp_path, split="val", modalities=["s2"])
    assert "000001.zarr.zip" in str(e.value)
    with pytest.raises(DataError, match="split folder"):
        SSL4EOS12Zarr(tmp_path, split="train")


def test_v11_synthetic_writer_round_trip(tmp_path: Path) -> None:
    write_ssl4eo_s12_zarr(tmp_path, n=3, seed=2, progress=False, patch_size=12,
                          samples_per_file=2)  # fmt: skip
    ds = SSL4EOS12Zarr(tmp_path, season=1, s2_product="L2A")
    assert len(ds) == 3 and len(ds.files) == 2
    loc = SyntheticWorld(2).location(2, size=12, season=1)
    s = ds[2]
    l2a = loc.s2[[S2_L1C_ORDER.index(b) for b in S2_L2A_ORDER]]
    assert np.allclose(s["s2"].numpy(), np.rint(l2a), atol=0.51)
    assert np.allclose(s["s1"].numpy(), loc.s1, atol=0.02)
    assert isinstance(ds.plot(s), Figure)
