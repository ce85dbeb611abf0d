"""Streaming a store from object storage: an fsspec URL, with a local cache in front."""

from __future__ import annotations

from pathlib import Path

import fsspec
import torch


def test_store_reads_the_same_through_a_cached_url(ben_v2_store: Path) -> None:
    from rsfuse.data.store import StoreDataset

    fs = fsspec.filesystem("memory")  # stands in for s3:// / gs:// (byte-range reads)
    for p in ben_v2_store.rglob("*"):
        if p.is_file():
            fs.pipe_file(f"/ddp-stream.store/{p.relative_to(ben_v2_store)}", p.read_bytes())
    try:
        local = StoreDataset(str(ben_v2_store), "train")
        for url in ("memory://ddp-stream.store", "simplecache::memory://ddp-stream.store"):
            remote = StoreDataset(url, "train")
            assert len(remote) == len(local)
            for i in (0, len(local) - 1):
                a, b = local[i], remote[i]
                assert a["meta"]["id"] == b["meta"]["id"]
                for k in ("s1", "s2", "label"):
                    assert torch.equal(a[k], b[k])
    finally:
        fs.rm("/ddp-stream.store", recursive=True)
