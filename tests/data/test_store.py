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
from rsfuse.data.sample import check_sample, collate
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
    assert bb["s2"].dtype == torch.uint16  # the store path ships raw digital numbers
    assert torch.equal(ba["s2"], bb["s2"].float()) and torch.equal(ba["label"], bb["label"])


@pytest.mark.parametrize("normalization", ["standardize", "dino-mm"])
def test_datamodule_uint16_store_normalises_like_geotiff(
    source: Path, store: Path, normalization: str
) -> None:
    kw = {
        "root": str(source),
        "batch_size": 4,
        "include_snow": True,
        "include_cloudy": True,
        "normalization": normalization,
    }
    a = BigEarthNetDataModule(**kw)
    b = BigEarthNetDataModule(**kw, store=str(store))
    assert b.store_s2_dtype == "uint16"
    a.setup("fit")
    b.setup("fit")
    ba = next(iter(a.val_dataloader()))
    bb = next(iter(b.val_dataloader()))
    assert ba["s2"].dtype == torch.float32 and bb["s2"].dtype == torch.uint16
    na = a.on_after_batch_transfer(ba, 0)
    nb = b.on_after_batch_transfer(bb, 0)
    for key in ("s1", "s2"):
        assert nb[key].dtype == torch.float32
        torch.testing.assert_close(nb[key], na[key], rtol=0, atol=1e-6)
    assert torch.equal(na["s2"], nb["s2"])  # same float32 input after the cast: bit for bit
    assert bb["s2"].dtype == torch.uint16  # Normalize does not modify its input batch


def test_datamodule_uint16_store_augmentation_sees_normalised_floats(
    source: Path, store: Path
) -> None:
    from rsfuse.data.transforms import RandomSensorDrop

    seen: list[torch.dtype] = []

    def spy(batch: dict) -> dict:
        seen.extend(batch[k].dtype for k in ("s1", "s2"))
        return RandomSensorDrop(p=1.0)(batch)

    dm = BigEarthNetDataModule(
        str(source), batch_size=4, include_snow=True, include_cloudy=True, store=str(store)
    )
    dm.augmentation = spy  # type: ignore[assignment]
    dm.setup("fit")

    class _Trainer:
        training = True

    dm.trainer = _Trainer()  # type: ignore[assignment]
    batch = next(iter(dm.train_dataloader()))
    out = dm.on_after_batch_transfer(batch, 0)
    assert seen == [torch.float32, torch.float32]
    assert out["s2"].dtype == torch.float32


def test_datamodule_cache_with_uint16_store(source: Path, store: Path) -> None:
    kw = {"root": str(source), "batch_size": 4, "include_snow": True, "include_cloudy": True}
    a = BigEarthNetDataModule(**kw)
    b = BigEarthNetDataModule(**kw, store=str(store), cache=True)
    a.setup("validate")
    b.setup("validate")
    na = a.on_after_batch_transfer(next(iter(a.val_dataloader())), 0)
    nb = b.on_after_batch_transfer(next(iter(b.val_dataloader())), 0)
    assert torch.equal(na["s2"], nb["s2"]) and torch.equal(na["s1"], nb["s1"])


def test_datamodule_bad_store_s2_dtype(source: Path, store: Path) -> None:
    with pytest.raises(ConfigError) as e:
        BigEarthNetDataModule(str(source), store=str(store), store_s2_dtype="int32")
    assert e.value.key == "s2_dtype"


def test_uint16_store_equals_geotiff_reader(source: Path, store: Path) -> None:
    ref = BigEarthNetV2(source, "train", include_snow=True, include_cloudy=True)
    ds = StoreDataset(store, "train", include_snow=True, include_cloudy=True, s2_dtype="uint16")
    f32 = StoreDataset(store, "train", include_snow=True, include_cloudy=True)
    ours = [ds[i] for i in range(len(ds))]  # read all first: no aliasing of buffers
    for i in range(len(ref)):
        a, b = ref[i], ours[i]
        assert b["s2"].dtype == torch.uint16 and b["s2"].shape == (12, 120, 120)
        assert torch.equal(b["s2"].float(), a["s2"]) and torch.equal(b["s2"].float(), f32[i]["s2"])
        assert torch.equal(a["s1"], b["s1"]) and torch.equal(a["label"], b["label"])
        assert a["meta"] == b["meta"]
        check_sample(b)
    # band subsets go through the scratch buffer: still uint16, still exact
    rgb = StoreDataset(store, "train", modalities=["s2"], s2_bands="rgb", s2_dtype="uint16")
    ref_rgb = BigEarthNetV2(source, "train", modalities=["s2"], s2_bands="rgb")
    x = rgb[0]["s2"]
    assert x.dtype == torch.uint16 and torch.equal(x.float(), ref_rgb[0]["s2"])


def test_uint16_store_matches_zarr_values(store: Path) -> None:
    import zarr

    g = zarr.open_group(str(store), mode="r")
    ds = StoreDataset(store, "train", include_snow=True, include_cloudy=True, s2_dtype="uint16")
    row = int(ds._rows[2])
    assert np.array_equal(g["s2"][row], ds[2]["s2"].numpy())  # the stored values, exactly


def test_uint16_collate_and_workers_keep_uint16(store: Path) -> None:
    ds = StoreDataset(store, "train", include_snow=True, include_cloudy=True, s2_dtype="uint16")
    batch = collate([ds[0], ds[1]])
    assert batch["s2"].dtype == torch.uint16 and batch["s2"].shape == (2, 12, 120, 120)
    assert torch.equal(batch["s2"][1], ds[1]["s2"])
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate)
    batches = list(loader)
    assert all(b["s2"].dtype == torch.uint16 for b in batches)
    assert sum(len(b["meta"]) for b in batches) == len(ds)


@pytest.mark.parametrize("bad", ["float16", "uint8", "", None])
def test_bad_s2_dtype_is_config_error(store: Path, bad: object) -> None:
    with pytest.raises(ConfigError) as e:
        StoreDataset(store, "train", s2_dtype=bad)  # type: ignore[arg-type]
    assert e.value.key == "s2_dtype"


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


# --------------------------------------------------------------------------- batch path
def _assert_same_batch(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        if key == "meta":
            assert a[key] == b[key]
        elif key == "present":
            assert list(a[key]) == list(b[key])
            for m in a[key]:
                assert a[key][m].dtype == b[key][m].dtype and torch.equal(a[key][m], b[key][m])
        else:
            assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
            assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(
    "kwargs",
    [
        {"s2_dtype": "uint16"},
        {"s2_dtype": "float32"},
        {"s2_dtype": "uint16", "s2_bands": "rgb"},
        {"s2_dtype": "float32", "s2_bands": "rgb"},
        {"modalities": ["s1"]},
        {"modalities": ["s2"], "s2_dtype": "uint16"},
    ],
)
def test_getitems_equals_collated_samples(store: Path, kwargs: dict) -> None:
    from rsfuse.data.sample import CollatedBatch

    ds = StoreDataset(store, "train", include_snow=True, include_cloudy=True, **kwargs)
    indices = [3, 0, -1, 5, 3]  # negative and repeated indices too
    got = ds.__getitems__(indices)
    assert isinstance(got, CollatedBatch) and len(got) == len(indices)
    ref = collate([ds[i] for i in indices])
    _assert_same_batch(collate(got), ref)
    # other collate functions see the per-sample dicts
    for i, sample in zip(indices, got, strict=True):
        one = ds[i]
        assert set(sample) == set(one) and sample["meta"] == one["meta"]
        assert sample["present"] == one["present"]
        for key in ("s1", "s2", "label"):
            if key in one:
                assert sample[key].dtype == one[key].dtype and torch.equal(sample[key], one[key])
    with pytest.raises(IndexError):
        ds.__getitems__([0, len(ds)])


def test_getitems_through_workers_equals_samples(store: Path) -> None:
    ds = StoreDataset(store, "train", include_snow=True, include_cloudy=True, s2_dtype="uint16")
    order = list(range(len(ds)))[::-1]
    ref = [collate([ds[i] for i in order[k : k + 3]]) for k in range(0, len(order), 3)]
    loader = DataLoader(
        torch.utils.data.Subset(ds, order), batch_size=3, num_workers=2, collate_fn=collate
    )
    batches = list(loader)  # all held at once: slots must not be reused under them
    assert len(batches) == len(ref)
    for got, want in zip(batches, ref, strict=True):
        _assert_same_batch(got, want)
        assert got["s2"].dtype == torch.uint16


def test_pooled_batch_memory_is_not_reused_while_held(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep only a view of each batch: the worker must not overwrite its buffer; with a
    tiny pool the extra batches go through fresh shared memory, still exact."""
    from rsfuse.data import store as store_mod

    monkeypatch.setattr(store_mod._BatchMemory, "MAX_LIVE", 4)  # workers are forked
    ds = StoreDataset(store, "train", include_snow=True, include_cloudy=True, s2_dtype="uint16")
    for persistent in (False, True):
        loader = DataLoader(
            ds,
            batch_size=2,
            num_workers=1,
            collate_fn=collate,
            prefetch_factor=4,
            persistent_workers=persistent,
        )
        for _epoch in range(2):
            views, labels = [], []
            for batch in loader:  # the rest of each batch is dropped: its slots come back
                views.append(batch["s2"][-1])
                labels.append(batch["label"])
            for k, (v, lab) in enumerate(zip(views, labels, strict=True)):
                rows = list(range(2 * k, min(2 * k + 2, len(ds))))
                assert torch.equal(v, ds[rows[-1]]["s2"])
                assert torch.equal(lab, torch.stack([ds[r]["label"] for r in rows]))
            for k, batch in enumerate(loader):  # nothing held: slots are reused
                rows = list(range(2 * k, min(2 * k + 2, len(ds))))
                _assert_same_batch(batch, collate([ds[r] for r in rows]))


def _editing_collate(samples):
    """A user's collate that replaces, slices, drops and aliases the pooled tensors."""
    b = collate(samples)
    b["s2"] = b["s2"].float() / 10  # replaced: the original tensor dies in the worker
    b["s1_first"] = b["s1"][:, :1]  # an alias: a view of the pooled S1 memory
    b["label"] = b["label"][:, :5]  # sliced
    b.pop("present")  # removed
    return b


def test_custom_collate_that_edits_batches_gets_exact_data(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches a collate function edited are never sent as (reusable) pooled memory: with
    every batch held at once, each equals what the same collate makes in-process."""
    from rsfuse.data import store as store_mod

    monkeypatch.setattr(store_mod._BatchMemory, "MAX_LIVE", 6)  # workers are forked
    ds = StoreDataset(store, "train", include_snow=True, include_cloudy=True, s2_dtype="uint16")
    loader = DataLoader(
        ds, batch_size=2, num_workers=2, collate_fn=_editing_collate, prefetch_factor=4
    )
    batches = list(loader)
    for k, got in enumerate(batches):
        rows = list(range(2 * k, min(2 * k + 2, len(ds))))
        want = _editing_collate([ds[r] for r in rows])
        assert set(got) == set(want)
        for key in ("s2", "s1", "s1_first", "label"):
            assert torch.equal(got[key], want[key]), (k, key)


def test_getitems_corrupt_chunk_names_store_and_sample(store: Path, tmp_path: Path) -> None:
    bad = _copy(store, tmp_path)
    shard = bad / "s2" / "c" / "0" / "0" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    ds = StoreDataset(bad, "train", include_snow=True, include_cloudy=True, s2_dtype="uint16")
    i = int(np.flatnonzero(ds._rows == 0)[0])
    good = int(np.flatnonzero(ds._rows >= 4)[0])
    with pytest.raises(DataError) as e:
        ds.__getitems__([good, i])
    assert ds.sample_id(i) in str(e.value) and str(shard) in str(e.value)
    assert "checksum" in str(e.value)
