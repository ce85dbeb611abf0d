# ruff: noqa: E501  (case tables: one case per line)
"""Bad input to ``rsfuse convert`` and the converted store (issue 19, cases 2, 3, 6 and 7):
a conversion never writes onto, into or around its source; a store whose metadata is
damaged raises a project error naming the file; a conversion killed between its writes
resumes.

Add a case with one line in :data:`CASES` (``Case(id, layout, mutate, run, error, match)``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from rsfuse.data import store as st
from rsfuse.data.convert import convert, main
from rsfuse.data.noldo import NOL_LMDB
from rsfuse.errors import ConfigError, DataError

from .conftest import Case, check_case, dead_pid, isolated, truncate

DATASET = "bigearthnet-v2"


def digest(root: Path) -> str:
    """A hash of every file's path and bytes under ``root`` (the source must not change)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def convert_to(where: str, *flags: str, dataset: str = DATASET):
    """``run(root)``: ``rsfuse convert --root root --out <where>`` (``{root}`` substituted)."""

    def run(root: Path) -> None:
        out = where.format(root=root)
        main(["--dataset", dataset, "--root", str(root), "--out", out, *flags])

    return run


def nothing(root: Path) -> Path:
    return root


def a_file_named(name: str):
    def mutate(root: Path) -> Path:
        path = root.parent / name
        path.write_text("not a folder\n")
        return path

    return mutate


def converted(edit):
    """Convert ``root`` into ``root.parent/s.store``, then ``edit(store)``."""

    def mutate(root: Path) -> Path:
        out = root.parent / "s.store"
        convert(DATASET, root, out, shard_size=4)
        return edit(out)

    return mutate


def array_shape(shape: list[Any]):
    def edit(out: Path) -> Path:
        path = out / "s2" / "zarr.json"
        meta = json.loads(path.read_text())
        meta["shape"] = shape
        path.write_text(json.dumps(meta))
        return path

    return edit


def read_store(root: Path) -> None:
    ds = st.StoreDataset(root.parent / "s.store", split="train", include_snow=True,
                         include_cloudy=True)  # fmt: skip
    ds[0]


CASES = [
    Case("convert-out-is-root", DATASET, nothing, convert_to("{root}"), ConfigError, "is an input of this command"),
    Case("convert-out-is-root-overwrite", DATASET, nothing, convert_to("{root}", "--overwrite"), ConfigError, "is an input"),
    Case("convert-out-parent-of-root", DATASET, nothing, convert_to("{root}/..", "--overwrite"), ConfigError, "holds the input"),
    Case("convert-out-inside-root", DATASET, nothing, convert_to("{root}/BigEarthNet-S2/store"), ConfigError, "lies inside the input"),
    Case("convert-out-is-a-file", DATASET, a_file_named("out.store"), convert_to("{root}/../out.store"), ConfigError, "exists and is a file"),
    Case("convert-out-under-a-file", DATASET, a_file_named("f"), convert_to("{root}/../f/out.store"), ConfigError, "is a file, not a folder"),
    Case("convert-truncated-lmdb", "noldo-s12", truncate(f"{NOL_LMDB['s2']}/data.mdb"), isolated(convert_to("{root}/../s.store", dataset="noldo-s12")), DataError, "LMDB data file is truncated"),
    Case("store-shape-overflows-int64", DATASET, converted(array_shape([2**62, 2**62, 12, 120, 120])), read_store, DataError, "more than .* elements"),
    Case("store-negative-shape", DATASET, converted(array_shape([48, 12, -120, 120])), read_store, DataError, "has a dimension -120"),
    Case("store-float-shape", DATASET, converted(array_shape([48, 12, 120.5, 120])), read_store, DataError, "dimension <float>"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_conversions_and_stores_raise_project_errors(case: Case, fresh) -> None:
    root = fresh(case.layout)
    before: list[str] = []
    check_case(case, root, damaged=lambda r: before.append(digest(r)))
    assert digest(root) == before[0], "the source dataset was changed"


# --------------------------------------------------------------------------- resume (case 6)
def _half_written(out: Path, k: int) -> None:
    """What an older rsfuse left when killed between shard k's marker and its metadata."""
    (out / st.MANIFEST).unlink()
    (out / st.INDEX).unlink()
    (out / st.DONE_DIR / f"meta-{k}.json").unlink()


def _unreadable_meta(out: Path, k: int) -> None:
    (out / st.MANIFEST).unlink()
    (out / st.DONE_DIR / f"meta-{k}.json").write_text('[{"s1_id": ')


def _stale_temp(out: Path, k: int) -> None:
    (out / st.MANIFEST).unlink()
    (out / st.DONE_DIR / f".{k}.tmp-{dead_pid()}").write_text("{}")


@pytest.mark.parametrize("damage", [_half_written, _unreadable_meta, _stale_temp])
def test_a_conversion_killed_between_its_writes_resumes(damage, fresh) -> None:
    root = fresh(DATASET)
    out = root.parent / "s.store"
    convert(DATASET, root, out, shard_size=2)
    want = st.StoreDataset(out, split="train", include_snow=True, include_cloudy=True)
    expected = [want[i] for i in range(len(want))]
    damage(out, 1)
    convert(DATASET, root, out, shard_size=2)  # resumes: redoes shard 1 only
    got = st.StoreDataset(out, split="train", include_snow=True, include_cloudy=True)
    assert len(got) == len(expected)
    for a, b in zip(expected, (got[i] for i in range(len(got)))):
        assert a["meta"] == b["meta"] and torch.equal(a["s2"], b["s2"])
    assert not [p for p in (out / st.DONE_DIR).iterdir() if ".tmp-" in p.name]


def test_markers_are_written_after_the_shard_metadata(fresh, monkeypatch) -> None:
    """Every ``.done/<k>`` marker is written after ``.done/meta-<k>.json``."""
    root = fresh(DATASET)
    order: list[str] = []
    real = st.write_json

    def spy(path: Path, obj: Any) -> None:
        order.append(path.name)
        real(path, obj)

    monkeypatch.setattr(st, "write_json", spy)
    convert(DATASET, root, root.parent / "s.store", shard_size=2)
    markers = [n for n in order if n.isdigit()]
    assert markers
    for k in markers:
        assert order.index(f"meta-{k}.json") < order.index(k)
