"""NoLDO-S12 readers: hand-made LMDBs of pickled arrays and GeoTIFF folders with known values,
and the synthetic writer's output (both forms agree; clean labels beside the noisy ones)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import lmdb
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from rasterio.transform import Affine

from rsfuse.bands import S2_L1C_ORDER
from rsfuse.data.classes import DW9, OSM13
from rsfuse.data.noldo import (
    NOL_LMDB,
    SSL4EOS12DW,
    SSL4EOS12OSM,
    UINT8_S1_STATS,
    UINT8_S2_STATS,
    NoLDOS12,
)
from rsfuse.data.synthetic.noisy_labels import pixel_accuracy
from rsfuse.errors import ConfigError, DataError
from rsfuse.io.geotiff import write_geotiff

H = 6


def write_lmdb(path: Path, entries: dict[str, bytes]) -> None:
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for k, v in entries.items():
            txn.put(k.encode(), v)
    env.close()


def packed(arr: np.ndarray, ident: object) -> bytes:
    return pickle.dumps((arr.tobytes(), arr.shape, ident))


def write_nol(root: Path, label_override: np.ndarray | None = None, s1_id: int = 100) -> None:
    """2 locations; S2 band c of season k = 10 * c + k (uint8), S1 VV = 0, VH = 255;
    labels of season k = k (location 0) or 8 - k (location 1)."""
    s2 = np.zeros((4, 13, H, H), np.uint8)
    for k in range(4):
        s2[k] = (10 * np.arange(13) + k)[:, None, None]
    s1 = np.zeros((4, 2, H, H), np.uint8)
    s1[:, 1] = 255
    k = np.arange(4)[:, None, None]
    labs = [np.broadcast_to(k, (4, H, H)).astype(np.uint8),
            np.broadcast_to(8 - k, (4, H, H)).astype(np.uint8)]  # fmt: skip
    if label_override is not None:
        labs[1] = label_override
    write_lmdb(root / NOL_LMDB["s1"], {"0": packed(s1, s1_id), "1": packed(s1, 101)})
    write_lmdb(root / NOL_LMDB["s2"], {"0": packed(s2, 100), "1": packed(s2, 101)})
    write_lmdb(root / NOL_LMDB["mask"], {"0": packed(labs[0], np.int64(100)),
                                         "1": packed(labs[1], np.int64(101))})  # fmt: skip


def test_lmdb_descaling_season_and_label_order(tmp_path: Path) -> None:
    write_nol(tmp_path)
    ds = NoLDOS12(tmp_path, season=2)
    assert ds.format == "lmdb" and len(ds) == 2 and ds.classes == DW9
    s = ds[0]
    assert s["mask"].dtype == torch.int64 and s["mask"].unique().tolist() == [2]
    assert ds[1]["mask"].unique().tolist() == [6]
    assert s["meta"]["location"] == 100 and s["season"] == 2
    (m1, m2), (sd1, sd2) = UINT8_S1_STATS
    assert np.isclose(float(s["s1"][0, 0, 0]), m1 - 2 * sd1, atol=1e-4)  # VV: u8 0 → mean - 2σ
    assert np.isclose(float(s["s1"][1, 0, 0]), m2 + 2 * sd2, atol=1e-4)  # VH: u8 255 → mean + 2σ
    mean, std = UINT8_S2_STATS
    for c in (0, 3, 12):
        u8 = 10 * c + 2
        assert np.isclose(
            float(s["s2"][c, 0, 0]), mean[c] - 2 * std[c] + u8 * 4 * std[c] / 255, rtol=1e-5
        )
    raw = NoLDOS12(tmp_path, season="all", scaling="uint8", s2_bands="hr9")
    r = raw[0]
    assert r["s2"].shape == (4, 9, H, H) and r["mask"].shape == (4, H, H)
    idx = [S2_L1C_ORDER.index(b) for b in ("B02", "B12")]
    assert r["s2"][3, 0, 0, 0] == 10 * idx[0] + 3 and r["s2"][3, 8, 0, 0] == 10 * idx[1] + 3
    assert r["mask"][:, 0, 0].tolist() == [0, 1, 2, 3]
    assert "mask_clean" not in r


def test_lmdb_bad_input(tmp_path: Path) -> None:
    bad = np.full((4, H, H), 9, np.uint8)  # DW has classes 0–8 only
    write_nol(tmp_path, label_override=bad, s1_id=999)
    ds = NoLDOS12(tmp_path, season=0)
    with pytest.raises(DataError, match="differs from the label id") as e:
        ds[0]
    assert "0k_251k_uint8_s1.lmdb" in str(e.value)
    with pytest.raises(DataError, match=r"mask values \[9\]"):
        ds[1]
    with pytest.raises(ConfigError):
        NoLDOS12(tmp_path, scaling="meters")


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_lmdb_refuses_code(tmp_path: Path) -> None:
    write_nol(tmp_path)
    marker = tmp_path / "pwned"
    evil = pickle.dumps((b"", (4, H, H), _Exploit(marker)))
    write_lmdb(tmp_path / NOL_LMDB["mask"], {"1": evil})
    ds = NoLDOS12(tmp_path, season=0)
    with pytest.raises(DataError, match=r"dw_labels.lmdb\] key '1'.*refusing"):
        ds[1]
    assert not marker.exists()
    skip = NoLDOS12(tmp_path, season=0, on_error="skip")
    assert skip[1]["meta"]["id"] == "0" and skip.skipped[0][0] == "1"


# ------------------------------------------------------------------------------ downstream
def write_downstream(root: Path, kind: str, labels: np.ndarray) -> None:
    folder = root / f"{kind}_train"
    t = Affine(10, 0, 0, 0, -10, 0)
    name = "-0.0520777954_32.9493499204-20190816"
    s1 = np.stack([np.full((H, H), -8.0, np.float32), np.full((H, H), -15.0, np.float32)])
    s2 = (100 * np.arange(13, dtype=np.uint16) + 1)[:, None, None] * np.ones((1, H, H), np.uint16)
    write_geotiff(folder / "image_s1" / f"s1_{name}.tif", s1, crs="EPSG:4326", transform=t)
    write_geotiff(folder / "image_s2" / f"s2_{name}.tif", s2, crs="EPSG:4326", transform=t)
    write_geotiff(folder / f"label_{kind}" / f"{kind}_{name}.tif", labels, crs="EPSG:4326",
                  transform=t)  # fmt: skip
    write_lmdb(root / f"{kind}_test_lmdb", {
        "s1_0": packed(s1, f"s1_{name}"), "s2_0": packed(s2, f"s2_{name}"),
        f"{kind}_0": packed(labels, f"{kind}_{name}"),
        "dw_0" if kind == "osm" else "x": packed(labels, "dw"),
    })  # fmt: skip


def test_downstream_remap_both_forms(tmp_path: Path) -> None:
    dw = np.array([[0, 1, 2, 9, 10, 5]] * H, np.uint8)
    osm = np.array([[0, 1, 13, 7, 12, 2]] * H, np.uint8)
    write_downstream(tmp_path, "dw", dw)
    write_downstream(tmp_path, "osm", osm)
    for split, fmt in (("train", "geotiff"), ("test", "lmdb")):
        s = SSL4EOS12DW(tmp_path, split=split, format=fmt)[0]
        assert s["mask"][0].tolist() == [255, 0, 1, 8, 255, 4]  # 0 and 10 (cloud) → 255
        assert s["s1"][:, 0, 0].tolist() == [-8.0, -15.0]
        assert s["s2"][:, 0, 0].tolist() == [100.0 * c + 1 for c in range(13)]
        o = SSL4EOS12OSM(tmp_path, split=split, format=fmt)[0]
        assert o["mask"][0].tolist() == [255, 0, 12, 6, 11, 1]
        assert "season" not in o
    assert OSM13[12] == "Coastal" and SSL4EOS12OSM.classes == OSM13
    write_downstream(tmp_path / "bad", "osm", np.full((H, H), 14, np.uint8))
    with pytest.raises(DataError, match=r"values \[14\]"):
        SSL4EOS12OSM(tmp_path / "bad", split="train", format="geotiff")[0]
    with pytest.raises(DataError, match=r"osm_test_lmdb\].*values \[14\]"):
        SSL4EOS12OSM(tmp_path / "bad", split="test")[0]


# ------------------------------------------------------------------------------ synthetic
def test_synthetic_forms_agree_and_noise_is_measurable(noldo_root: Path) -> None:
    a = NoLDOS12(noldo_root, format="lmdb", season="all")
    b = NoLDOS12(noldo_root, format="geotiff", season="all", patch_size=48)
    assert len(a) == len(b) == 8
    accs = []
    for i in (0, 5):
        sa, sb = a[i], b[i]
        assert sa["mask"].shape == (4, 48, 48)
        assert (sa["mask"] == sb["mask"]).all() and (sa["mask_clean"] == sb["mask_clean"]).all()
        step = 4 * max(UINT8_S1_STATS[1]) / 255
        close = (sa["s1"] - sb["s1"]).abs() <= step
        assert close.float().mean() > 0.9  # differences: uint8 step, clipping at ±2σ
        accs.append(pixel_accuracy(sa["mask"].numpy(), sa["mask_clean"].numpy()))
    assert 0.4 < np.mean(accs) < 0.95
    assert sa["mask"].max() <= 8
    assert isinstance(a.plot(a[0]), Figure)
    tr = SSL4EOS12DW(noldo_root, split="train", format="lmdb")
    tg = SSL4EOS12DW(noldo_root, split="train", format="geotiff")
    assert len(tr) == len(tg) == 3 and len(SSL4EOS12OSM(noldo_root, split="test")) == 1
    ma = sorted(tr[i]["mask"].sum().item() for i in range(3))
    assert ma == sorted(tg[i]["mask"].sum().item() for i in range(3))
    assert (tr[0]["mask"] == 255).any()
