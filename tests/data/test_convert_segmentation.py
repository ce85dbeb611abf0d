"""``rsfuse convert`` for the segmentation datasets and the store-backed segmentation dataset.

Every dataset is converted from the tiny synthetic sources of ``conftest.py`` (DFC2020 32 px,
NoLDO-S12 48 px with its SSL4EO-S12@DW / @OSM tiles): ``verify`` passes, every store sample
equals the reader's (arrays bit for bit, int64 masks with 255 kept, the season draw), the
datamodule gives the same normalised batches from the store as from the source.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rsfuse.data import convert as cv
from rsfuse.data import store as st
from rsfuse.data.datamodules import SegmentationDataModule
from rsfuse.data.dfc2020 import DFC2020Dataset
from rsfuse.data.noldo import SSL4EOS12DW, SSL4EOS12OSM, NoLDOS12
from rsfuse.data.store_segmentation import SegmentationStoreDataset
from rsfuse.errors import ConfigError, DataError

#: (dataset, root fixture, convert options, store split → reader factory(root))
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "dfc2020": ("dfc2020", "dfc2020_root", {"patch_size": 32}),
    "dw-lmdb": ("ssl4eo-s12-dw", "noldo_root", {}),
    "osm-geotiff": ("ssl4eo-s12-osm", "noldo_root", {"format": "geotiff"}),
    "noldo-lmdb": ("noldo-s12", "noldo_root", {"patch_size": 48}),
    "noldo-geotiff": ("noldo-s12", "noldo_root", {"patch_size": 48, "format": "geotiff"}),
}


def _reader(case: str, root: Path, split: str, **kw: Any) -> Any:
    dataset, _, opts = CASES[case]
    fmt = opts.get("format", "auto")
    if not (dataset == "noldo-s12" and split == "train"):
        kw.pop("season", None), kw.pop("seed", None)
    if dataset == "dfc2020":
        return DFC2020Dataset(root, split=split, patch_size=32, **kw)
    if dataset == "ssl4eo-s12-dw" or (dataset == "noldo-s12" and split == "test"):
        return SSL4EOS12DW(root, split=split, format=fmt, **kw)
    if dataset == "ssl4eo-s12-osm":
        return SSL4EOS12OSM(root, split=split, format=fmt, **kw)
    return NoLDOS12(root, format=fmt, patch_size=48, **kw)


@pytest.fixture(scope="module")
def stores(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Each case converted once (3 samples per shard, so splits span several shards)."""
    out: dict[str, tuple[Path, Path]] = {}
    base = tmp_path_factory.mktemp("seg-stores")
    for case, (dataset, fixture, opts) in CASES.items():
        root = request.getfixturevalue(fixture)
        store = cv.convert(dataset, root, base / f"{case}.store", shard_size=3, **opts)
        out[case] = (root, store)
    return out


def _assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        if k == "meta":
            assert {m: v for m, v in a[k].items() if m != "files"} == b[k]
        elif k == "present":
            assert a[k] == b[k]
        else:
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("case", list(CASES))
def test_verify_and_every_sample_equal(case: str, stores: dict) -> None:
    root, store = stores[case]
    dataset = CASES[case][0]
    m = json.loads((store / st.MANIFEST).read_text())
    assert cv.verify(dataset, root, store) == m["num_samples"] == sum(m["splits"].values())
    assert m["kind"] == "segmentation" and m["dataset"] == dataset
    for split, part in m["parts"].items():
        arrays = part["arrays"]
        lead = [4] if part["num_seasons"] == 4 else []
        h = arrays["mask"]["sample_shape"][-1]
        assert arrays["mask"] == {"dtype": "uint8", "sample_shape": [*lead, h, h],
                                  "encoding": "class"}  # fmt: skip
        assert arrays["s2"]["sample_shape"] == [*lead, 13, h, h]
        lmdb_nol = case == "noldo-lmdb" and split == "train"
        assert arrays["s2"]["dtype"] == ("uint8" if lmdb_nol else "uint16")
        assert arrays["s1"]["dtype"] == ("uint8" if lmdb_nol else "float32")
        assert ("mask_clean" in arrays) == (dataset == "noldo-s12" and split == "train")
        season = "all" if part["num_seasons"] == 4 else "random"
        src = _reader(case, root, split, season=season)
        dst = SegmentationStoreDataset(store, split=split, season=season, dataset=dataset)
        assert dst.sample_ids == src.sample_ids and dst.num_classes == src.num_classes
        for i in range(len(src)):
            a, b = src[i], dst[i]
            _assert_same(a, b)
            assert b["mask"].dtype == torch.int64
    if dataset == "dfc2020":  # DFC2020 aliases: train / val read the validation set
        assert SegmentationStoreDataset(store, split="train").split == "validation"


def test_masks_keep_255(stores: dict) -> None:
    _, store = stores["dw-lmdb"]
    ds = SegmentationStoreDataset(store, split="train")
    masks = torch.stack([ds[i]["mask"] for i in range(len(ds))])
    assert (masks == 255).any() and masks.dtype == torch.int64


@pytest.mark.parametrize("case", ["noldo-lmdb", "noldo-geotiff"])
def test_season_choice_matches_the_reader(case: str, stores: dict) -> None:
    root, store = stores[case]
    for season in (0, 3):
        src = _reader(case, root, "train", season=season)
        dst = SegmentationStoreDataset(store, split="train", season=season)
        for i in (0, 5):
            _assert_same(src[i], dst[i])
            assert dst[i]["season"] == season and dst[i]["s2"].shape == (13, 48, 48)
    src = _reader(case, root, "train", season="random", seed=7, s2_bands="rgb", scaling="uint8")
    dst = SegmentationStoreDataset(store, split="train", season="random", seed=7,
                                   s2_bands="rgb", scaling="uint8")  # fmt: skip
    drawn = set()
    for i in list(range(len(src))) * 2:
        a, b = src[i], dst[i]
        _assert_same(a, b)
        drawn.add(int(b["season"]))
    assert len(drawn) > 1 and b["s2"].shape == (3, 48, 48)
    torch.manual_seed(11)
    a = _reader(case, root, "train", modalities=["s2"])[2]
    torch.manual_seed(11)
    b = SegmentationStoreDataset(store, split="train", modalities=["s2"])[2]
    _assert_same(a, b)  # seed=None: torch's generator, same draw
    assert "s1" not in b and b["present"] == {"s1": False, "s2": True}


@pytest.mark.parametrize(
    ("case", "kw"),
    [("dfc2020", {"patch_size": 32}), ("noldo-lmdb", {"patch_size": 48, "seed": 1})],
)
def test_datamodule_store_switch(case: str, kw: dict, stores: dict) -> None:
    root, store = stores[case]
    dataset = CASES[case][0]
    batches = []
    for source in ({}, {"store": str(store)}):
        dm = SegmentationDataModule(dataset, str(root), batch_size=3, val_fraction=0.25,
                                    **kw, **source)  # fmt: skip
        dm.setup()
        batches.append([dm.normalize(b) for b in (*dm.val_dataloader(), *dm.test_dataloader())])
        if source:
            assert isinstance(dm.datasets["test"], SegmentationStoreDataset)
    assert len(batches[0]) == len(batches[1]) > 1
    for a, b in zip(*batches):
        for k in ("s1", "s2", "mask", "season", "mask_clean"):
            assert (k in a) == (k in b)
            if k in a:
                assert torch.equal(a[k], b[k]), k


def test_cli_parallel_and_resume(dfc2020_root: Path, tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "dfc.store"
    args = ["--dataset", "dfc2020", "--root", str(dfc2020_root), "--out", str(out),
            "--patch-size", "32", "--shard-size", "2"]  # fmt: skip
    cv.main([*args, "--workers", "2"])
    assert "wrote 16 samples" in capsys.readouterr().out
    # an interrupted conversion: no manifest, one shard unfinished; a re-run redoes only it
    (out / st.MANIFEST).unlink()
    (out / st.DONE_DIR / "5").unlink()
    stamps = {k: (out / st.DONE_DIR / str(k)).stat().st_mtime_ns for k in st.done_shards(out)}
    with pytest.raises(DataError, match="manifest"):
        SegmentationStoreDataset(out, split="test")
    cv.main(args)
    assert st.done_shards(out) == set(range(8))
    assert all((out / st.DONE_DIR / str(k)).stat().st_mtime_ns == t for k, t in stamps.items())
    cv.main([*args, "--verify", "--workers", "2"])
    assert "verified 16 samples" in capsys.readouterr().out


def test_corrupt_chunk_names_the_sample(stores: dict, tmp_path: Path) -> None:
    _, store = stores["dfc2020"]
    bad = tmp_path / "bad.store"
    shutil.copytree(store, bad)
    shard = bad / "validation" / "s2" / "c" / "0" / "0" / "0" / "0"
    data = bytearray(shard.read_bytes())
    # the zarr v3 shard index at the file's end: (offset, nbytes) uint64 per chunk + crc32c
    size = 3  # shard_size of the fixture stores
    index = np.frombuffer(bytes(data[-(16 * size + 4) : -4]), "<u8").reshape(size, 2)
    off, n = (int(v) for v in index[1])
    data[off + n // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    ds = SegmentationStoreDataset(bad, split="validation")
    ds[0]
    with pytest.raises(DataError, match="checksum") as e:
        ds[1]
    assert ds.sample_id(1) in str(e.value) and "validation/s2" in str(e.value)
    skip = SegmentationStoreDataset(bad, split="validation", on_error="skip")
    assert skip[1]["meta"]["id"] == ds.sample_id(2) and skip.skipped[0][0] == ds.sample_id(1)
    with pytest.raises(DataError, match=r"1 samples differ.*checksum"):
        cv.verify("dfc2020", stores["dfc2020"][0], bad)


def test_unknown_dataset_and_bad_options(dfc2020_root: Path, stores: dict, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        cv.convert("sen12ms", dfc2020_root, tmp_path / "x.store")
    for name in ("bigearthnet-v2", "dfc2020", "ssl4eo-s12-dw", "ssl4eo-s12-osm", "noldo-s12"):
        assert name in str(e.value)
    with pytest.raises(ConfigError, match="resampling"):
        cv.convert("dfc2020", dfc2020_root, tmp_path / "y.store", resampling="cubic")
    with pytest.raises(ConfigError, match="patch-size"):
        cv.convert("bigearthnet-v2", dfc2020_root, tmp_path / "z.store", patch_size=32)
    _, store = stores["dfc2020"]
    with pytest.raises(ConfigError, match="holds 'dfc2020'"):
        SegmentationStoreDataset(store, dataset="noldo-s12")
    with pytest.raises(ConfigError, match="unknown split"):
        SegmentationStoreDataset(store, split="holdout")
    _, dw = stores["dw-lmdb"]
    with pytest.raises(DataError, match="not in the store"):
        SegmentationStoreDataset(_without_test(dw, tmp_path), split="test")


def _without_test(store: Path, tmp_path: Path) -> Path:
    """A copy of ``store`` whose manifest lists no ``test`` split."""
    out = tmp_path / "no-test.store"
    shutil.copytree(store, out)
    m = json.loads((out / st.MANIFEST).read_text())
    del m["parts"]["test"]
    (out / st.MANIFEST).write_text(json.dumps(m))
    return out


def test_lossless_check_names_the_sample() -> None:
    with pytest.raises(DataError, match=r"uint16.*losslessly") as e:
        cv._lossless(np.array([1.0, 2.5], np.float32), "uint16", "s2", "patch_7")
    assert "patch_7" in str(e.value)
    with pytest.raises(DataError, match="uint8"):
        cv._lossless(np.array([3, 256], np.int64), "uint8", "mask", "p")
