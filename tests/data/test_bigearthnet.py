"""BigEarthNet v1 / v2 readers on tiny hand-made folders in the published layouts.

Every S2 band of a fixture patch is constant = 100 * (its position in ``S2_L2A_ORDER``) + 1,
S1 is VV = -10 dB, VH = -20 dB, so channel order is pinned by pixel values.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from rasterio.transform import Affine

from rsfuse.bands import BANDS, S2_L2A_ORDER, STATS
from rsfuse.data import bigearthnet_layout as layout
from rsfuse.data.bigearthnet import BigEarthNetV1, BigEarthNetV2
from rsfuse.data.classes import BEN19
from rsfuse.data.sample import collate
from rsfuse.errors import ConfigError, DataError
from rsfuse.io.geotiff import write_geotiff

CRS = "EPSG:32633"
X0, Y0 = 500000.0, 6000000.0
VV, VH = -10.0, -20.0


def grid(res: float) -> Affine:
    return Affine(res, 0.0, X0, 0.0, -res, Y0)


def s2_value(band: str) -> int:
    return 100 * S2_L2A_ORDER.index(band) + 1


def write_s2(path_of, overrides: dict[str, np.ndarray] | None = None) -> None:
    """Write every L2A band at its native size via ``path_of(band)``."""
    overrides = overrides or {}
    for band in S2_L2A_ORDER:
        res = BANDS[band].resolution
        n = layout.native_size(res)
        arr = overrides.get(band, np.full((n, n), s2_value(band), dtype=np.uint16))
        write_geotiff(path_of(band), arr, crs=CRS, transform=grid(res))


def write_s1(path_of) -> None:
    for band, value in (("VV", VV), ("VH", VH)):
        arr = np.full((120, 120), value, dtype=np.float32)
        write_geotiff(path_of(band), arr, crs=CRS, transform=grid(10))


# ------------------------------------------------------------------------------ v1 layout
def v1_names(k: int) -> tuple[str, str]:
    return (f"S2A_MSIL2A_20170613T101031_0_{k}", f"S1A_IW_GRDH_1SDV_20170613T165043_33UUP_0_{k}")


def write_v1_patch(
    root: Path,
    k: int,
    s2_labels: list[str],
    s1_labels: list[str] | None = None,
    overrides: dict[str, np.ndarray] | None = None,
) -> tuple[str, str]:
    s2, s1 = v1_names(k)
    write_s2(lambda b: layout.v1_s2_band(root, s2, b), overrides)
    write_s1(lambda b: layout.v1_s1_band(root, s1, b))
    layout.v1_s2_metadata(root, s2).write_text(
        json.dumps({"labels": s2_labels, "tile_source": "S2A", "acquisition_date": "2017-06-13"})
    )
    layout.v1_s1_metadata(root, s1).write_text(
        json.dumps(
            {
                "labels": s1_labels if s1_labels is not None else s2_labels,
                "corresponding_s2_patch": s2,
            }
        )
    )
    return s2, s1


def write_split(root: Path, name: str, ks: list[int]) -> None:
    (root / name).write_text("".join(f"{v1_names(k)[0]},{v1_names(k)[1]}\n" for k in ks))


@pytest.fixture(scope="module")
def v1_root(tmp_path_factory) -> Path:
    """train: p0, p1, p2 (snow), p3 (cloud); val: p4; test: p5 (TorchGeo file name)."""
    root = tmp_path_factory.mktemp("ben_v1")
    # S1 labels of p0 differ from S2 ones, to tell which JSON labels are read from
    write_v1_patch(root, 0, ["Non-irrigated arable land", "Rice fields"], ["Pastures"])
    write_v1_patch(root, 1, ["Airports", "Sea and ocean"])
    write_v1_patch(root, 2, ["Coniferous forest"])
    write_v1_patch(root, 3, ["Water bodies"])
    write_v1_patch(root, 4, ["Mixed forest"])
    write_v1_patch(root, 5, ["Peatbogs"])
    write_split(root, "train.csv", [0, 1, 2, 3])
    write_split(root, "val.csv", [4])
    write_split(root, "bigearthnet-test.csv", [5])
    (root / layout.V1_SNOW_FILE).write_text(v1_names(2)[0] + "\n")
    (root / layout.V1_CLOUD_FILE).write_text(v1_names(3)[0] + "\n")
    return root


@pytest.fixture
def small_v1(tmp_path) -> Path:
    """A fresh two-patch v1 root (train: p0, p1) that a test may break."""
    write_v1_patch(tmp_path, 0, ["Pastures"])
    write_v1_patch(tmp_path, 1, ["Mixed forest"])
    write_split(tmp_path, "train.csv", [0, 1])
    return tmp_path


# ------------------------------------------------------------------------------ v2 layout
def v2_names(k: int) -> tuple[str, str]:
    return (
        f"S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_{k}",
        f"S1A_IW_GRDH_1SDV_20170613T165043_33UUP_61_{k}",
    )


def write_v2(root: Path, rows: list[dict]) -> None:
    records = []
    for k, row in enumerate(rows):
        pid, s1 = v2_names(k)
        write_s2(lambda b, pid=pid: layout.v2_s2_band(root, pid, b))
        write_s1(lambda b, s1=s1: layout.v2_s1_band(root, s1, b))
        records.append(
            {
                "patch_id": pid,
                "labels": row["labels"],
                "split": row["split"],
                "country": "Austria",
                "s1_name": s1,
                "s2v1_name": v1_names(k)[0],
                "contains_seasonal_snow": row.get("snow", False),
                "contains_cloud_or_shadow": row.get("cloud", False),
            }
        )
    pd.DataFrame.from_records(records).to_parquet(root / layout.V2_METADATA)


@pytest.fixture(scope="module")
def v2_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ben_v2")
    write_v2(
        root,
        [
            {"labels": ["Arable land", "Marine waters"], "split": "train"},
            {"labels": ["Pastures"], "split": "train", "snow": True},
            {"labels": ["Inland waters"], "split": "train", "cloud": True},
            {"labels": ["Mixed forest", "Coniferous forest"], "split": "validation"},
            {"labels": ["Urban fabric"], "split": "test"},
        ],
    )
    return root


# ------------------------------------------------------------------------------ contract
def test_v1_sample_contract_channel_order_and_grid(v1_root):
    ds = BigEarthNetV1(v1_root, split="train")
    s = ds[0]
    assert set(s) == {"s1", "s2", "label", "present", "meta"}
    assert s["s2"].dtype == torch.float32 and s["s2"].shape == (12, 120, 120)
    for c, band in enumerate(S2_L2A_ORDER):
        assert torch.all(s["s2"][c] == s2_value(band)), band
    assert s["s1"].dtype == torch.float32 and s["s1"].shape == (2, 120, 120)
    assert torch.all(s["s1"][0] == VV) and torch.all(s["s1"][1] == VH)
    assert s["label"].dtype == torch.float32 and s["label"].shape == (19,)
    assert s["present"] == {"s1": True, "s2": True}
    s2, s1 = v1_names(0)
    assert s["meta"]["id"] == s2 and s["meta"]["s2_id"] == s2 and s["meta"]["s1_id"] == s1
    assert s["meta"]["crs"] == CRS
    assert s["meta"]["transform"] == pytest.approx((10.0, 0.0, X0, 0.0, -10.0, Y0))


def test_class_attributes():
    for cls, stats_name in ((BigEarthNetV1, "bigearthnet-v1"), (BigEarthNetV2, "bigearthnet-v2")):
        assert cls.classes == BEN19 and cls.num_classes == 19 and cls.image_size == 120
        assert cls.stats_name == stats_name and stats_name in STATS


def test_v1_43_to_19_mapping(v1_root):
    ds = BigEarthNetV1(v1_root, split="train", modalities=("s2",), s2_bands="rgb")
    # "Non-irrigated arable land" and "Rice fields" -> Arable land (2) only
    assert torch.nonzero(ds[0]["label"]).flatten().tolist() == [2]
    # "Airports" dropped, "Sea and ocean" -> Marine waters (18)
    assert torch.nonzero(ds[1]["label"]).flatten().tolist() == [18]


def test_v1_labels_from_s1_json_when_only_s1(v1_root):
    ds = BigEarthNetV1(v1_root, split="train", modalities=("s1",))
    assert torch.nonzero(ds[0]["label"]).flatten().tolist() == [4]  # "Pastures"


def test_v1_snow_and_cloud_filtering(v1_root):
    ids = [v1_names(k)[0] for k in range(4)]
    assert BigEarthNetV1(v1_root).sample_ids == ids[:2]
    assert BigEarthNetV1(v1_root, include_snow=True).sample_ids == ids[:3]
    assert BigEarthNetV1(v1_root, include_cloudy=True).sample_ids == [ids[0], ids[1], ids[3]]
    assert BigEarthNetV1(v1_root, include_snow=True, include_cloudy=True).sample_ids == ids


def test_v1_split_files(v1_root):
    assert BigEarthNetV1(v1_root, split="val").sample_ids == [v1_names(4)[0]]
    # TorchGeo's bigearthnet-test.csv is accepted
    assert BigEarthNetV1(v1_root, split="test").sample_ids == [v1_names(5)[0]]


@pytest.mark.parametrize("mods", [("s1",), ("s2",), ("s2", "s1")])
def test_modalities(v1_root, mods):
    ds = BigEarthNetV1(v1_root, modalities=mods, s2_bands="10m")
    s = ds[0]
    for m in ("s1", "s2"):
        assert (m in s) == (m in mods)
        assert s["present"][m] == (m in mods)
    assert ds.modalities == tuple(m for m in ("s1", "s2") if m in mods)


def test_s2_band_subsets(v1_root):
    s = BigEarthNetV1(v1_root, modalities=("s2",), s2_bands="rgb")[0]["s2"]
    assert s[:, 0, 0].tolist() == [s2_value("B04"), s2_value("B03"), s2_value("B02")]
    assert s[:, 0, 0].tolist() == [301, 201, 101]
    ds = BigEarthNetV1(v1_root, modalities=("s2",), s2_bands="hr9")
    hr9 = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12")
    assert ds.s2_band_names == hr9
    s = ds[0]["s2"]
    assert s.shape == (9, 120, 120)
    assert s[:, 60, 60].tolist() == [s2_value(b) for b in hr9]
    s = BigEarthNetV1(v1_root, modalities=("s2",), s2_bands=["B8A", "B01"])[0]["s2"]
    assert s[:, 7, 7].tolist() == [s2_value("B8A"), s2_value("B01")]


def test_resampling_nearest_bilinear_and_constant(tmp_path):
    ramp = np.tile(np.arange(60, dtype=np.uint16) * 4, (60, 1))  # B05 (20 m): 4 * column
    write_v1_patch(tmp_path, 0, ["Pastures"], overrides={"B05": ramp})
    write_split(tmp_path, "train.csv", [0])
    c = S2_L2A_ORDER.index("B05")
    near = BigEarthNetV1(tmp_path, modalities=("s2",), resampling="nearest")[0]["s2"]
    bil = BigEarthNetV1(tmp_path, modalities=("s2",), resampling="bilinear")[0]["s2"]
    cub = BigEarthNetV1(tmp_path, modalities=("s2",), resampling="cubic")[0]["s2"]
    # nearest: each source pixel becomes a 2x2 block
    assert near[c, 10, :6].tolist() == [0, 0, 4, 4, 8, 8]
    assert near[c, 10, -1] == 236
    # bilinear, pixel centres aligned: output j samples source x = j/2 - 0.25 -> 2j - 1,
    # clamped at the edges
    assert bil[c, 10, :6].tolist() == [0, 1, 3, 5, 7, 9]
    assert bil[c, 10, 118:].tolist() == [235, 236]
    assert torch.all(bil[c] == bil[c, :1])  # rows identical
    assert not torch.equal(near[c], bil[c])
    # a constant band stays constant for every method (20 m B11 and 60 m B01)
    for s in (near, bil, cub):
        for band in ("B01", "B11", "B09"):
            assert torch.all(s[S2_L2A_ORDER.index(band)] == s2_value(band)), band


# ------------------------------------------------------------------------------ v2
def test_v2_contract_labels_and_val_split(v2_root):
    ds = BigEarthNetV2(v2_root, split="train")
    assert ds.sample_ids == [v2_names(0)[0]]
    s = ds[0]
    for c, band in enumerate(S2_L2A_ORDER):
        assert torch.all(s["s2"][c] == s2_value(band)), band
    assert s["s1"][:, 5, 5].tolist() == [VV, VH]
    assert torch.nonzero(s["label"]).flatten().tolist() == [2, 18]
    pid, s1 = v2_names(0)
    assert s["meta"]["id"] == pid and s["meta"]["s1_id"] == s1 and s["meta"]["s2_id"] == pid
    assert s["meta"]["crs"] == CRS
    # "val" selects rows whose split is "validation"
    val = BigEarthNetV2(v2_root, split="val")
    assert val.sample_ids == [v2_names(3)[0]]
    assert torch.nonzero(val[0]["label"]).flatten().tolist() == [9, 10]
    assert BigEarthNetV2(v2_root, split="test").sample_ids == [v2_names(4)[0]]


def test_v2_snow_and_cloud_filtering(v2_root):
    ids = [v2_names(k)[0] for k in range(3)]
    assert BigEarthNetV2(v2_root, include_snow=True).sample_ids == ids[:2]
    assert BigEarthNetV2(v2_root, include_cloudy=True).sample_ids == [ids[0], ids[2]]
    assert BigEarthNetV2(v2_root, include_snow=True, include_cloudy=True).sample_ids == ids


def test_v2_s1_only_and_collate(v2_root):
    ds = BigEarthNetV2(v2_root, modalities=["s1"], include_snow=True)
    batch = collate([ds[0], ds[1]])
    assert batch["s1"].shape == (2, 2, 120, 120) and "s2" not in batch
    assert batch["present"]["s1"].tolist() == [True, True]
    assert batch["present"]["s2"].tolist() == [False, False]
    assert batch["label"].shape == (2, 19)


def test_v2_unknown_label_names_parquet_and_patch(tmp_path):
    write_v2(
        tmp_path,
        [
            {"labels": ["Pastures"], "split": "train"},
            {"labels": ["Arable land", "Moon dust"], "split": "train"},
        ],
    )
    with pytest.raises(DataError, match="Moon dust") as e:
        BigEarthNetV2(tmp_path)
    assert layout.V2_METADATA in str(e.value) and v2_names(1)[0] in str(e.value)


def test_v2_missing_metadata(tmp_path):
    with pytest.raises(DataError, match=layout.V2_METADATA):
        BigEarthNetV2(tmp_path)


def test_v2_missing_column(tmp_path):
    pd.DataFrame({"patch_id": ["x"], "split": ["train"]}).to_parquet(tmp_path / "metadata.parquet")
    with pytest.raises(DataError, match="labels"):
        BigEarthNetV2(tmp_path)


# ------------------------------------------------------------------------------ bad input
def test_missing_root(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        BigEarthNetV1(tmp_path / "nowhere")


def test_missing_split_file(small_v1):
    with pytest.raises(DataError, match=r"val\.csv"):
        BigEarthNetV1(small_v1, split="val")


def test_empty_split_names_split_and_file(small_v1):
    (small_v1 / layout.V1_SNOW_FILE).write_text("\n".join(v1_names(k)[0] for k in (0, 1)))
    with pytest.raises(DataError, match="train") as e:
        BigEarthNetV1(small_v1)
    assert "train.csv" in str(e.value) and "no samples" in str(e.value)


def test_missing_band_file(small_v1):
    path = layout.v1_s2_band(small_v1, v1_names(0)[0], "B8A")
    path.unlink()
    with pytest.raises(DataError, match="not found") as e:
        BigEarthNetV1(small_v1)[0]
    assert str(path) in str(e.value) and v1_names(0)[0] in str(e.value)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_truncated_geotiff(small_v1):
    path = layout.v1_s2_band(small_v1, v1_names(0)[0], "B03")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt or truncated") as e:
        BigEarthNetV1(small_v1, modalities=("s2",))[0]
    assert str(path) in str(e.value)


def test_wrong_raster_size(small_v1):
    path = layout.v1_s2_band(small_v1, v1_names(0)[0], "B05")  # 20 m: must be 60x60
    write_geotiff(path, np.ones((120, 120), np.uint16), crs=CRS, transform=grid(10))
    with pytest.raises(DataError, match="120x120, expected 60x60") as e:
        BigEarthNetV1(small_v1)[0]
    assert str(path) in str(e.value)


def test_unknown_43_label_names_json(small_v1):
    path = layout.v1_s2_metadata(small_v1, v1_names(0)[0])
    path.write_text(json.dumps({"labels": ["Pastures", "Lava lakes"]}))
    with pytest.raises(DataError, match="Lava lakes") as e:
        BigEarthNetV1(small_v1)[0]
    assert str(path) in str(e.value)


def test_nan_pixels(small_v1):
    path = layout.v1_s1_band(small_v1, v1_names(0)[1], "VH")
    arr = np.full((120, 120), VH, dtype=np.float32)
    arr[3, 4] = np.nan
    write_geotiff(path, arr, crs=CRS, transform=grid(10))
    with pytest.raises(DataError, match="NaN") as e:
        BigEarthNetV1(small_v1)[0]
    assert str(path) in str(e.value)
    # check_finite=False: the value passes through, the structure is still checked
    s = BigEarthNetV1(small_v1, check_finite=False)[0]
    assert torch.isnan(s["s1"][1, 3, 4]) and s["s1"][1, 3, 5] == VH


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"modalities": ("s1", "s3")}, "modalities"),
        ({"modalities": ()}, "modalities"),
        ({"s2_bands": "rainbow"}, "s2_bands"),
        ({"s2_bands": ["B10"]}, "s2_bands"),  # L2A has no B10
        ({"resampling": "lanczos"}, "resampling"),
        ({"on_error": "ignore"}, "on_error"),
        ({"split": "validation"}, "split"),
    ],
)
def test_bad_config(small_v1, kwargs, key):
    with pytest.raises(ConfigError, match=key) as e:
        BigEarthNetV1(small_v1, **kwargs)
    assert e.value.key == key


# ------------------------------------------------------------------------------ skip, scan
def test_on_error_skip_returns_next_and_records(small_v1, caplog):
    path = layout.v1_s1_band(small_v1, v1_names(0)[1], "VV")
    path.unlink()
    ds = BigEarthNetV1(small_v1, on_error="skip")
    with caplog.at_level(logging.WARNING, logger="rsfuse.data.bigearthnet"):
        s = ds[0]
    assert s["meta"]["id"] == v1_names(1)[0]
    assert len(ds.skipped) == 1
    sid, msg = ds.skipped[0]
    assert sid == v1_names(0)[0] and str(path) in msg
    assert v1_names(0)[0] in caplog.text
    # a bad sample met again is not recorded twice
    ds[0]
    assert len(ds.skipped) == 1


def test_on_error_skip_wraps_around(small_v1):
    layout.v1_s2_metadata(small_v1, v1_names(1)[0]).unlink()  # the last sample is bad
    ds = BigEarthNetV1(small_v1, on_error="skip")
    assert ds[1]["meta"]["id"] == v1_names(0)[0]
    assert ds.skipped[0][0] == v1_names(1)[0] and "labels_metadata.json" in ds.skipped[0][1]


def test_on_error_skip_all_bad(small_v1):
    for k in (0, 1):
        layout.v1_s2_band(small_v1, v1_names(k)[0], "B02").unlink()
    ds = BigEarthNetV1(small_v1, on_error="skip")
    with pytest.raises(DataError, match="every one of the 2 samples"):
        ds[1]


def test_scan(small_v1):
    write_v1_patch(small_v1, 2, ["Pastures"])
    write_v1_patch(small_v1, 3, ["Pastures"])
    write_split(small_v1, "train.csv", [0, 1, 2, 3])
    missing = layout.v1_s1_band(small_v1, v1_names(0)[1], "VH")
    missing.unlink()
    truncated = layout.v1_s2_band(small_v1, v1_names(2)[0], "B12")
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) - 40])
    wrong = layout.v1_s2_band(small_v1, v1_names(3)[0], "B01")  # 60 m: must be 20x20
    write_geotiff(wrong, np.ones((60, 60), np.uint16), crs=CRS, transform=grid(20))
    ds = BigEarthNetV1(small_v1)
    bad = dict(ds.scan())
    assert sorted(bad) == sorted(v1_names(k)[0] for k in (0, 2, 3))
    assert str(missing) in bad[v1_names(0)[0]] and "not found" in bad[v1_names(0)[0]]
    assert str(truncated) in bad[v1_names(2)[0]] and "truncated" in bad[v1_names(2)[0]]
    assert str(wrong) in bad[v1_names(3)[0]] and "60x60, expected 20x20" in bad[v1_names(3)[0]]
    assert len(ds) == 4  # on_error="raise": report only
    ds = BigEarthNetV1(small_v1, on_error="skip")
    ds.scan()
    assert ds.sample_ids == [v1_names(1)[0]] and len(ds.skipped) == 3
    # scan checks only the requested modalities
    assert {sid for sid, _ in BigEarthNetV1(small_v1, modalities=("s1",)).scan()} == {
        v1_names(0)[0]
    }


def test_v1_single_column_split_file(small_v1):
    (small_v1 / "train.csv").write_text(v1_names(0)[0] + "\n")
    assert len(BigEarthNetV1(small_v1, modalities=("s2",))) == 1
    with pytest.raises(DataError, match="s1_name"):
        BigEarthNetV1(small_v1)


def test_no_directory_listing_per_sample(small_v1, monkeypatch):
    ds = BigEarthNetV1(small_v1)

    def forbidden(*args, **kwargs):
        raise AssertionError("directory listed while reading a sample")

    monkeypatch.setattr(os, "listdir", forbidden)
    monkeypatch.setattr(os, "scandir", forbidden)
    monkeypatch.setattr(Path, "glob", forbidden)
    monkeypatch.setattr(Path, "iterdir", forbidden)
    assert ds[1]["meta"]["id"] == v1_names(1)[0]


# ------------------------------------------------------------------------------ plot
def test_plot(v1_root):
    ds = BigEarthNetV1(v1_root)
    s = ds[0]
    fig = ds.plot(s)
    assert isinstance(fig, Figure) and len(fig.axes) == 2

    def legend_texts(f: Figure) -> list[str]:
        return [t.get_text().replace("\n", " ") for t in f.legends[0].get_texts()]

    assert "Arable land" in legend_texts(fig)
    pred = torch.full((19,), -5.0)
    pred[18] = 3.0  # logits
    fig = ds.plot(s, prediction=pred)
    texts = legend_texts(fig)
    assert "Arable land" in texts  # a label, not predicted: no tick
    assert "✗ Marine waters (predicted, not a label)" in texts
    s1_only = BigEarthNetV1(v1_root, modalities=("s1",))
    assert len(s1_only.plot(s1_only[0], show_titles=False).axes) == 1
    no_rgb = BigEarthNetV1(v1_root, modalities=("s2",), s2_bands=["B11", "B12"])
    assert len(no_rgb.plot(no_rgb[0]).axes) == 1
    fig.savefig(os.devnull, format="png")
