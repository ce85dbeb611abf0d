"""io/geotiff.py (read/write, errors, atomic write), data/classes.py and data/sample.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rasterio.transform import Affine

from rsfuse.data.classes import (
    BEN19,
    BEN43,
    BEN43_TO_19,
    ben19_indices,
    ben43_to_19,
    multi_hot,
)
from rsfuse.data.sample import batch_size_of, check_sample, collate
from rsfuse.errors import ConfigError, DataError
from rsfuse.io.geotiff import read_band, write_geotiff

TRANSFORM = Affine(20.0, 0.0, 399960.0, 0.0, -20.0, 5900040.0)


# ------------------------------------------------------------------------------ geotiff
def test_write_is_atomic_and_round_trips(tmp_path):
    arr = np.arange(60 * 60, dtype=np.uint16).reshape(60, 60)
    out = write_geotiff(tmp_path / "sub" / "b.tif", arr, crs="EPSG:32632", transform=TRANSFORM)
    assert [p.name for p in out.parent.iterdir()] == ["b.tif"]  # no temporary file left
    back, profile = read_band(out, expected_shape=(60, 60))
    assert back.dtype == np.float32 and np.array_equal(back, arr)
    assert profile["crs"] == "EPSG:32632"
    assert profile["transform"] == pytest.approx(tuple(TRANSFORM)[:6])
    assert profile["dtype"] == "uint16"


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(Exception):  # noqa: B017  (rasterio's own CRS error type)
        write_geotiff(
            tmp_path / "b.tif",
            np.zeros((4, 4), np.float32),
            crs="EPSG:not-a-crs",
            transform=TRANSFORM,
        )
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_existing(tmp_path):
    p = tmp_path / "b.tif"
    write_geotiff(p, np.zeros((4, 4), np.float32), crs=None, transform=TRANSFORM)
    write_geotiff(p, np.full((4, 4), 7, np.float32), crs=None, transform=TRANSFORM)
    arr, profile = read_band(p)
    assert np.all(arr == 7) and profile["crs"] is None
    assert [q.name for q in tmp_path.iterdir()] == ["b.tif"]


def test_read_band_out_shape_nearest(tmp_path):
    p = write_geotiff(
        tmp_path / "b.tif", np.array([[1, 2], [3, 4]], np.uint16), crs=None, transform=TRANSFORM
    )
    arr, _ = read_band(p, expected_shape=(2, 2), out_shape=(4, 4), resample="nearest")
    assert arr.tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]


def test_read_band_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing\.tif") as e:
        read_band(tmp_path / "missing.tif")
    assert e.value.path == tmp_path / "missing.tif"
    p = write_geotiff(
        tmp_path / "b.tif", np.zeros((8, 8), np.float32), crs=None, transform=TRANSFORM
    )
    with pytest.raises(DataError, match=r"8x8, expected 4x4"):
        read_band(p, expected_shape=(4, 4))
    with pytest.raises(ConfigError, match="resampling"):
        read_band(p, out_shape=(4, 4), resample="sinc")
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"II*\x00 definitely not a tiff")
    with pytest.raises(DataError, match=r"junk\.tif"):
        read_band(junk)


def test_read_band_nan(tmp_path):
    a = np.zeros((4, 4), np.float32)
    a[1, 2] = np.inf
    a[0, 0] = np.nan
    p = write_geotiff(tmp_path / "nan.tif", a, crs=None, transform=TRANSFORM)
    with pytest.raises(DataError, match=r"2 NaN/inf") as e:
        read_band(p)
    assert "nan.tif" in str(e.value)
    arr, _ = read_band(p, check_finite=False)
    assert np.isnan(arr[0, 0])


# ------------------------------------------------------------------------------ classes
def test_ben43_to_19_table():
    assert len(BEN43) == 43 and len(BEN19) == 19
    dropped = {3, 4, 5, 6, 7, 8, 9, 10, 30, 32, 37}
    assert set(range(43)) - set(BEN43_TO_19) == dropped
    assert sorted(set(BEN43_TO_19.values())) == list(range(19))  # every 19-class is reachable
    assert ben43_to_19(["Non-irrigated arable land", "Rice fields"]) == [2]
    assert ben43_to_19(["Airports", "Burnt areas", "Intertidal flats"]) == []
    assert ben43_to_19(["Sea and ocean", "Continuous urban fabric"]) == [0, 18]
    assert ben43_to_19(["Bare rock"]) == []  # 30 dropped
    assert ben43_to_19(["Sparsely vegetated areas"]) == [11]  # 31 -> 11


def test_unknown_class_names():
    with pytest.raises(DataError, match="Moon") as e:
        ben43_to_19(["Pastures", "Moon"], source="x/labels.json")
    assert "x/labels.json" in str(e.value)
    with pytest.raises(DataError, match="Pastures and more"):
        ben19_indices(["Pastures and more"])
    assert ben19_indices(["Marine waters", "Urban fabric", "Marine waters"]) == [0, 18]


def test_multi_hot():
    v = multi_hot([0, 5], 19)
    assert v.dtype == np.float32 and v.shape == (19,) and v.sum() == 2 and v[5] == 1


# ------------------------------------------------------------------------------ sample
def make_sample(sid: str = "a", s2: bool = True, size: int = 8) -> dict:
    s = {
        "s1": torch.zeros(2, size, size),
        "label": torch.zeros(19),
        "present": {"s1": True, "s2": s2},
        "meta": {"id": sid, "crs": "EPSG:32633", "transform": (10, 0, 0, 0, -10, 0)},
    }
    if s2:
        s["s2"] = torch.ones(12, size, size)
    return s


def test_collate():
    a, b = make_sample("a"), make_sample("b")
    batch = collate([a, b])
    assert batch["s1"].shape == (2, 2, 8, 8) and batch["s2"].shape == (2, 12, 8, 8)
    assert batch["present"]["s1"].dtype == torch.bool
    assert batch["present"]["s1"].tolist() == [True, True]
    assert batch["meta"] == [a["meta"], b["meta"]]
    assert batch_size_of(batch) == 2
    c = make_sample("c", s2=False)
    c["present"]["s1"] = False
    d = collate([c, make_sample("d", s2=False)])
    assert d["present"]["s1"].tolist() == [False, True]
    assert d["present"]["s2"].tolist() == [False, False]


def test_collate_errors():
    with pytest.raises(DataError, match="different keys"):
        collate([make_sample("a"), make_sample("b", s2=False)])
    with pytest.raises(DataError, match="different shapes"):
        collate([make_sample("a", size=8), make_sample("b", size=4)])
    with pytest.raises(DataError, match="empty"):
        collate([])


def test_check_sample_accepts_valid():
    s = make_sample()
    assert check_sample(s) is s


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(s1=torch.zeros(3, 8, 8)), "2 channels"),
        (lambda s: s.update(s2=torch.zeros(12, 8, 8, dtype=torch.float64)), "float32"),
        (lambda s: s.update(s2=torch.zeros(8, 8)), r"\[C, H, W\]"),
        (lambda s: s["s1"].__setitem__((0, 1, 1), float("nan")), "NaN"),
        (lambda s: s.update(s2=torch.zeros(12, 4, 4)), "spatial sizes differ"),
        (lambda s: s.update(mask=torch.zeros(8, 8, dtype=torch.uint8)), "int64"),
        (lambda s: s.update(mask=torch.zeros(4, 4, dtype=torch.int64)), "spatial sizes differ"),
        (lambda s: s.update(label=torch.zeros(19, dtype=torch.int64)), "label must be float32"),
    ],
)
def test_check_sample_errors(change, message):
    s = make_sample("patch_7")
    change(s)
    with pytest.raises(DataError, match=message) as e:
        check_sample(s)
    assert "patch_7" in str(e.value)
    with pytest.raises(DataError, match=r"some/file\.tif"):
        check_sample(s, source="some/file.tif")


def test_check_sample_accepts_uint16_s2_and_collate_keeps_it():
    s = make_sample("u")
    s["s2"] = torch.full((12, 8, 8), 65535, dtype=torch.uint16)
    assert check_sample(s) is s
    batch = collate([s, make_sample("v") | {"s2": torch.zeros(12, 8, 8, dtype=torch.uint16)}])
    assert batch["s2"].dtype == torch.uint16 and batch["s2"].shape == (2, 12, 8, 8)
    assert int(batch["s2"][0, 0, 0, 0]) == 65535
    assert batch["s1"].dtype == torch.float32


@pytest.mark.parametrize(
    ("key", "dtype"),
    [("s1", torch.uint16), ("s2", torch.int32), ("s2", torch.uint8), ("s2", torch.float16)],
)
def test_check_sample_rejects_other_dtypes(key, dtype):
    s = make_sample("w")
    s[key] = torch.zeros(2 if key == "s1" else 12, 8, 8, dtype=dtype)
    with pytest.raises(DataError, match=key) as e:
        check_sample(s)
    assert "w" in str(e.value)
