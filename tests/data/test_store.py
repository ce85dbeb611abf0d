"""The converted store: same samples as the GeoTIFF reader, workers, URLs, corruption."""

from __future__ import annotations

import shutil
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from rsfuse.data.bigearthnet import BigEarthNetV2
from rsfuse.data.convert import convert
from rsfuse.data.datamodules import BigEarthNetDataModule
from rsfuse.data.sample import collate
from rsfuse.data.store import MANIFEST, StoreDataset
from rsfuse.data.synthetic import synthesize
from rsfuse.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ben") / "ben-v2"
    synthesize("bigearthnet-v2", root, n=20, seed=3, workers=1, progress=False)
    return root


@pytest.fixture(scope="module")
def store(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("store") / "ben.store"
    return convert("bigearthnet-v2", source, out, shard_size=4, workers=1)


def _copy(store: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy.store"
    shutil.copytree(store, dst)
    return dst


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_store_equals_geotiff_reader(source: Path, store: Path, split: str) -> None:
    ref = BigEarthNetV2(source, split, include_snow=True, include_cloudy=True)
    ds = StoreDataset(store, split, include_snow=True, include_cloudy=True)
    assert ds.sample_ids == ref.sample_ids
    # read them all first: decoding reuses per-process buffers, samples must not alias them
    ours = [ds[i] for i in range(len(ds))]
    for i in range(len(ref)):
        a, b = ref[i], ours[i]
        assert b["s2"].dtype == torch.float32 and b["s2"].shape == (12, 120, 120)
        assert b["s1"].dtype == torch.float32 and b["s1"].shape == (2, 120, 120)
        for key in ("s1", "s2", "label"):
            assert torch.equal(a[key], b[key]), key
        assert a["meta"] == b["meta"] and a["present"] == b["present"]


def test_filters_bands_and_modalities_match_reader(source: Path, store: Path) -> None:
    ref = BigEarthNetV2(source, "train", modalities=["s2"], s2_bands="rgb")
    ds = StoreDataset(store, "train", modalities=["s2"], s2_bands="rgb")
    assert ds.sample_ids == ref.sample_ids  # snow/cloud filtering as the reader's
    a, b = ref[0], ds[0]
    assert "s1" not in b and b["present"] == {"s1": False, "s2": True}
    assert b["s2"].shape[0] == 3 and torch.equal(a["s2"], b["s2"])


def test_store_is_plain_zarr_v3(store: Path) -> None:
    import zarr

    g = zarr.open_group(str(store), mode="r")
    ds = StoreDataset(store, "train", include_snow=True, include_cloudy=True)
    row = int(ds._rows[1])
    assert np.array_equal(g["s2"][row].astype(np.float32), ds[1]["s2"].numpy())
    assert np.array_equal(g["s1"][row], ds[1]["s1"].numpy())
    assert g["s2"].dtype == np.uint16


def test_fsspec_urls(store: Path) -> None:
    local = StoreDataset(store, "train")
    via_file = StoreDataset(f"file://{store}", "train")
    fs = fsspec.filesystem("memory")
    fs.put(str(store), "/ben-test.store", recursive=True)
    via_mem = StoreDataset("memory://ben-test.store", "train")
    for i in (0, len(local) - 1):
        assert torch.equal(local[i]["s2"], via_file[i]["s2"])
        assert torch.equal(local[i]["s1"], via_mem[i]["s1"])
        assert local[i]["meta"] == via_mem[i]["meta"]


def test_dataloader_workers_and_ddp_split(store: Path) -> None:
    ds = StoreDataset(store, "train", include_snow=True, include_cloudy=True)
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate)
    ids = [m["id"] for b in loader for m in b["meta"]]
    assert sorted(ids) == sorted(ds.sample_ids)
    parts = [
        set(DistributedSampler(ds, num_replicas=2, rank=r, shuffle=True, drop_last=True))
        for r in range(2)
    ]
    assert not parts[0] & parts[1] and len(parts[0]) == len(ds) // 2


def test_datamodule_one_line_switch(source: Path, store: Path) -> None:
    kw = {"root": str(source), "batch_size": 4, "include_snow": True, "include_cloudy": True}
    a = BigEarthNetDataModule(**kw)
    b = BigEarthNetDataModule(**kw, store=str(store))
    a.setup("fit")
    b.setup("fit")
    assert isinstance(b.datasets["train"], StoreDataset)
    ba = next(iter(a.val_dataloader()))
    bb = next(iter(b.val_dataloader()))
    assert torch.equal(ba["s2"], bb["s2"]) and torch.equal(ba["label"], bb["label"])


def test_missing_manifest_raises(store: Path, tmp_path: Path) -> None:
    bad = _copy(store, tmp_path)
    (bad / MANIFEST).unlink()
    with pytest.raises(DataError, match="manifest"):
        StoreDataset(bad, "train")


def test_corrupt_chunk_names_store_and_sample(store: Path, tmp_path: Path) -> None:
    bad = _copy(store, tmp_path)
    shard = bad / "s2" / "c" / "0" / "0" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF  # inside the first chunk's compressed data
    shard.write_bytes(bytes(data))
    ds = StoreDataset(bad, "train", include_snow=True, include_cloudy=True)
    row0 = int(np.flatnonzero(ds._rows == 0)[0]) if 0 in ds._rows else None
    assert row0 is not None
    with pytest.raises(DataError) as e:
        ds[row0]
    assert ds.sample_id(row0) in str(e.value) and str(shard) in str(e.value)


def test_truncated_shard_names_store_and_sample(store: Path, tmp_path: Path) -> None:
    bad = _copy(store, tmp_path)
    shard = bad / "s1" / "c" / "1" / "0" / "0" / "0"
    shard.write_bytes(shard.read_bytes()[:5000])
    ds = StoreDataset(bad, "train", include_snow=True, include_cloudy=True)
    i = int(np.flatnonzero((ds._rows >= 4) & (ds._rows < 8))[0])
    with pytest.raises(DataError) as e:
        ds[i]
    assert ds.sample_id(i) in str(e.value) and "s1" in str(e.value)


def test_resampling_mismatch_is_config_error(store: Path) -> None:
    with pytest.raises(ConfigError, match="resampling"):
        StoreDataset(store, "train", resampling="nearest")
