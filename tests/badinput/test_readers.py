# ruff: noqa: E501  (case tables: one case per line)
"""Bad input to the dataset readers: each row damages one file of a fresh synthetic copy and
expects a project error naming that file (issue 19, cases 3 and 5 and the reader part of 7).

Add a case with one line in :data:`CASES`: ``Case(id, layout, mutate, run, error, match)``.
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb
import numpy as np
import pandas as pd
import pytest

from rsfuse.data.bigearthnet import BigEarthNetV1, BigEarthNetV2
from rsfuse.data.dfc2020 import DFC2020Dataset
from rsfuse.data.noldo import NOL_LMDB, SSL4EOS12DW, NoLDOS12
from rsfuse.data.ssl4eo import SSL4EOS12, SSL4EOS12Zarr
from rsfuse.errors import DataError

from .conftest import Case, check_case, deadline, first, isolated, rewrite_tif, truncate


# ----------------------------------------------------------------------------- running
def read_all(make: Callable[..., Any], splits: tuple[str | None, ...] = (None,), **kw: Any):
    """``run(root)``: build the reader for every split and read every sample."""

    def run(root: Path) -> None:
        for split in splits:
            args = {} if split is None else {"split": split}
            try:
                ds = make(root, **args, **kw)
            except DataError as e:
                if "has no samples" in str(e):
                    continue
                raise
            for i in range(len(ds)):
                ds[i]

    return run


BEN = {"include_snow": True, "include_cloudy": True}
SPLITS = ("train", "val", "test")
V1 = read_all(BigEarthNetV1, SPLITS, **BEN)
V2 = read_all(BigEarthNetV2, SPLITS, **BEN)
SSL = read_all(SSL4EOS12, season="all", patch_size=24)
SSL11 = read_all(SSL4EOS12Zarr, season="all")
NOL_LMDB_ALL = isolated(read_all(NoLDOS12, format="lmdb", season="all"))
NOL_TIF = read_all(NoLDOS12, format="geotiff", season="all", patch_size=24)
DW_TIF = read_all(SSL4EOS12DW, ("train", "test"), format="geotiff")
DFC = read_all(DFC2020Dataset, ("validation", "test"), patch_size=16)


# ----------------------------------------------------------------------------- damage
def tif(pattern: str, **how: Any) -> Callable[[Path], Path]:
    """Rewrite the first file matching ``pattern`` (see :func:`rewrite_tif`)."""
    return lambda root: rewrite_tif(first(root, pattern), **how)


def float_label(pattern: str, value: float) -> Callable[[Path], Path]:
    """A label file stored as float32 with one pixel set to a non-integer ``value``."""

    def put(a: np.ndarray) -> np.ndarray:
        a = a.astype("float32")
        a[0, 0, 0] = value
        return a

    return tif(pattern, values=put)


def v2_metadata(edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], Path]:
    def mutate(root: Path) -> Path:
        path = root / "metadata.parquet"
        edit(pd.read_parquet(path)).to_parquet(path, index=False)
        return path

    return mutate


def duplicate_first_row(df: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([df, df.iloc[[0]]], ignore_index=True)


def nested_labels(df: pd.DataFrame) -> pd.DataFrame:
    df["labels"] = df["labels"].map(lambda names: [[n] for n in names])
    return df


def v1_label_json(root: Path) -> Path:
    path = first(root, "BigEarthNet-v1.0/*/*_labels_metadata.json")
    meta = json.loads(path.read_text())
    meta["labels"] = [[n] for n in meta["labels"]]  # lists where names belong
    path.write_text(json.dumps(meta))
    return path


def duplicate_line(name: str, skip_header: bool = False) -> Callable[[Path], Path]:
    def mutate(root: Path) -> Path:
        path = root / name
        lines = path.read_text().splitlines()
        path.write_text("\n".join([*lines, lines[1 if skip_header else 0]]) + "\n")
        return path

    return mutate


def binary(name: str) -> Callable[[Path], Path]:
    def mutate(root: Path) -> Path:
        (root / name).write_bytes(bytes(range(256)) * 4)
        return root / name

    return mutate


def remove(pattern: str) -> Callable[[Path], Path]:
    def mutate(root: Path) -> Path:
        path = first(root, pattern)
        if path.is_dir():
            import shutil

            shutil.rmtree(path)
        else:
            path.unlink()
        return path

    return mutate


def lmdb_value(db: str, key: str, raw: bytes) -> Callable[[Path], Path]:
    """Replace the value of ``key`` in one of the NoLDO LMDBs with ``raw`` pickle bytes."""

    def mutate(root: Path) -> Path:
        path = root / db
        env = lmdb.open(str(path), map_size=256 << 20)
        with env.begin(write=True) as txn:
            txn.put(key.encode(), raw)
        env.close()
        return path

    return mutate


def shared_tuple_bomb(fanout: int = 200, depth: int = 8) -> bytes:
    """A ~3 KB pickle of nested tuples whose every level references the level below
    ``fanout`` times through the memo: 200**8 leaves once expanded."""
    out = bytearray(b"\x80\x02)q\x00")  # PROTO 2, EMPTY_TUPLE, BINPUT 0
    for level in range(1, depth + 1):
        out += b"(" + (b"h" + bytes([level - 1])) * fanout + b"tq" + bytes([level])
    return bytes(out + b".")


def v11_variable(pattern: str, name: str, value: np.ndarray) -> Callable[[Path], Path]:
    """Rewrite one variable in every v1.1 zarr.zip matching ``pattern`` (the other
    variables copied as they are); returns the first file."""
    import zarr
    from zarr.storage import ZipStore

    from rsfuse.data.synthetic.segmentation import _write_zarr_zip

    def mutate(root: Path) -> Path:
        paths = sorted(root.glob(pattern))
        for path in paths:
            store = ZipStore(path, mode="r")
            g = zarr.open_group(store, mode="r")
            variables = {
                k: (value if k == name else np.asarray(g[k][...]), g[k].attrs["_ARRAY_DIMENSIONS"])
                for k in g.array_keys()
            }
            store.close()
            _write_zarr_zip(path, variables)
        return paths[0]

    return mutate


def half_size_s1(root: Path) -> Path:
    """S1 of v1.1 at half the S2 size (132² beside 264² in the published terms)."""
    import shutil

    from rsfuse.data.synthetic import synthesize

    half = root.parent / "half"
    synthesize("ssl4eo-s12-v1.1", half, n=2, seed=11, workers=1, progress=False, patch_size=12,
               samples_per_file=1)  # fmt: skip
    shutil.rmtree(root / "train" / "S1GRD")
    shutil.copytree(half / "train" / "S1GRD", root / "train" / "S1GRD")
    return root / "train" / "S1GRD"


def s1_location(root: Path) -> Path:
    """Remove the S1 folder of one SSL4EO-S12 location (its S2 stays)."""
    return remove("s1/0000001")(root)


# ----------------------------------------------------------------------------- cases
B2V2 = "BigEarthNet-S2/*/*/*_B02.tif"
VV2 = "BigEarthNet-S1/*/*/*_VV.tif"
B2V1 = "BigEarthNet-v1.0/*/*_B02.tif"
VV1 = "BigEarthNet-S1-v1.0/*/*_VV.tif"
SSL_B2 = "s2c/*/*/B2.tif"
SSL_VV = "s1/*/*/VV.tif"
NOL_LABEL = "dw_noisy_labels/*/*/label.tif"
DFC_LABEL = "ROIs*/dfc_*/*.tif"
TUPLE_ID = pickle.dumps((bytes(4), (2, 2), ((1, 2), (3,))))
HUGE = pickle.dumps((b"", (2**40, 2**40, 2**40), 0))
NEGATIVE = pickle.dumps((b"", (4, -4), 0))

CASES = [
    # BigEarthNet v2 (reBEN)
    Case("v2-multiband-s2", "bigearthnet-v2", tif(B2V2, bands=2), V2, DataError, "has 2 bands, expected 1"),
    Case("v2-multiband-s1", "bigearthnet-v2", tif(VV2, bands=2), V2, DataError, "has 2 bands, expected 1"),
    Case("v2-uint8-s2", "bigearthnet-v2", tif(B2V2, dtype="uint8"), V2, DataError, "stored as uint8.*uint16"),
    Case("v2-float64-s1", "bigearthnet-v2", tif(VV2, dtype="float64"), V2, DataError, "stored as float64"),
    Case("v2-png-named-tif", "bigearthnet-v2", tif(B2V2, driver="PNG"), V2, DataError, "is a PNG file, not a GeoTIFF"),
    Case("v2-s1-crs-differs", "bigearthnet-v2", tif(VV2, crs="EPSG:32601"), V2, DataError, "CRS mismatch"),
    Case("v2-s1-without-crs", "bigearthnet-v2", tif(VV2, crs=None), V2, DataError, "CRS mismatch.*without a CRS"),
    Case("v2-duplicate-patch-id", "bigearthnet-v2", v2_metadata(duplicate_first_row), V2, DataError, "listed 2 times"),
    Case("v2-unhashable-labels", "bigearthnet-v2", v2_metadata(nested_labels), V2, DataError, "not class names"),
    # BigEarthNet v1 (BigEarthNet-MM)
    Case("v1-multiband-s2", "bigearthnet-v1", tif(B2V1, bands=3), V1, DataError, "has 3 bands, expected 1"),
    Case("v1-uint8-s2", "bigearthnet-v1", tif(B2V1, dtype="uint8"), V1, DataError, "stored as uint8"),
    Case("v1-s1-crs-differs", "bigearthnet-v1", tif(VV1, crs="EPSG:32601"), V1, DataError, "CRS mismatch"),
    Case("v1-duplicate-s2-name", "bigearthnet-v1", duplicate_line("train.csv"), V1, DataError, "listed 2 times"),
    Case("v1-unhashable-json-labels", "bigearthnet-v1", v1_label_json, V1, DataError, "is a list, not a name"),
    Case("v1-binary-split-csv", "bigearthnet-v1", binary("train.csv"), V1, DataError, "cannot read split file"),
    # SSL4EO-S12 v1.0
    Case("ssl-multiband-s2", "ssl4eo-s12", tif(SSL_B2, bands=2), SSL, DataError, "has 2 bands, expected 1"),
    Case("ssl-uint8-s2", "ssl4eo-s12", tif(SSL_B2, dtype="uint8"), SSL, DataError, "stored as uint8"),
    Case("ssl-png-named-tif", "ssl4eo-s12", tif(SSL_B2, driver="PNG"), SSL, DataError, "is a PNG file"),
    Case("ssl-s1-crs-differs", "ssl4eo-s12", tif(SSL_VV, crs="EPSG:32601"), SSL, DataError, "CRS mismatch"),
    Case("ssl-missing-s1-location", "ssl4eo-s12", s1_location, SSL, DataError, "location folder not found"),
    # SSL4EO-S12 v1.1
    Case("v11-s1-half-size-all-seasons", "ssl4eo-s12-v1.1", half_size_s1, SSL11, DataError, r"shapes differ.*\(4, 2, 12, 12\).*S1GRD"),
    Case("v11-string-crs", "ssl4eo-s12-v1.1", v11_variable("train/S2L1C/*", "crs", np.array(["UTM 33", "UTM 33"])), SSL11, DataError, "'crs' holds 'UTM 33', not an EPSG code"),
    Case("v11-file-missing-for-s1", "ssl4eo-s12-v1.1", remove("train/S1GRD/*.zarr.zip"), SSL11, DataError, "missing here"),
    # NoLDO-S12 (LMDB form: the authors' pickled arrays)
    Case("nol-truncated-data-mdb", "noldo-s12", truncate(f"{NOL_LMDB['s2']}/data.mdb"), NOL_LMDB_ALL, DataError, "LMDB data file is truncated"),
    Case("nol-not-an-lmdb", "noldo-s12", binary(f"{NOL_LMDB['mask']}/data.mdb"), NOL_LMDB_ALL, DataError, "not an LMDB data file"),
    Case("nol-shared-tuple-bomb", "noldo-s12", lmdb_value(NOL_LMDB["mask"], "0", shared_tuple_bomb()), NOL_LMDB_ALL, DataError, "expands to more than|nested deeper"),
    Case("nol-shape-overflows-int64", "noldo-s12", lmdb_value(NOL_LMDB["mask"], "0", HUGE), NOL_LMDB_ALL, DataError, "more than .* elements"),
    Case("nol-negative-shape", "noldo-s12", lmdb_value(NOL_LMDB["mask"], "0", NEGATIVE), NOL_LMDB_ALL, DataError, "has a dimension -4"),
    Case("nol-tuple-id", "noldo-s12", lmdb_value(NOL_LMDB["mask"], "0", TUPLE_ID), NOL_LMDB_ALL, DataError, "id is a tuple"),
    # NoLDO-S12 (GeoTIFF form) and SSL4EO-S12@DW
    Case("nol-float-label-2.7", "noldo-s12", float_label(NOL_LABEL, 2.7), NOL_TIF, DataError, r"not integers"),
    Case("nol-binary-id-csv", "noldo-s12", binary("dw_complete_ids.csv"), NOL_TIF, DataError, "cannot read id list"),
    Case("nol-duplicate-id", "noldo-s12", duplicate_line("dw_complete_ids.csv", skip_header=True), NOL_TIF, DataError, "listed 2 times"),
    Case("dw-float-label-2.5", "noldo-s12", float_label("dw_train/label_dw/*.tif", 2.5), DW_TIF, DataError, "not integers"),
    Case("dw-uint8-s2", "noldo-s12", tif("dw_train/image_s2/*.tif", dtype="uint8"), DW_TIF, DataError, "stored as uint8"),
    Case("dw-s1-crs-differs", "noldo-s12", tif("dw_train/image_s1/*.tif", crs="EPSG:32601"), DW_TIF, DataError, "CRS mismatch"),
    # DFC2020
    Case("dfc-float-label-2.5", "dfc2020", float_label(DFC_LABEL, 2.5), DFC, DataError, "not integers"),
    Case("dfc-uint8-s2", "dfc2020", tif("ROIs*/s2_*/*.tif", dtype="uint8"), DFC, DataError, "stored as uint8"),
    Case("dfc-s1-crs-differs", "dfc2020", tif("ROIs*/s1_*/*.tif", crs="EPSG:32601"), DFC, DataError, "CRS mismatch"),
    Case("dfc-png-label", "dfc2020", tif(DFC_LABEL, driver="PNG"), DFC, DataError, "is a PNG file"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_raises_a_project_error_naming_the_file(case: Case, fresh) -> None:
    with deadline(60):
        check_case(case, fresh(case.layout))


def test_the_unchanged_bases_read_without_error(fresh) -> None:
    """The damage, not the fixtures, is what the cases detect."""
    for layout, run in (("bigearthnet-v2", V2), ("bigearthnet-v1", V1), ("ssl4eo-s12", SSL),
                        ("ssl4eo-s12-v1.1", SSL11), ("noldo-s12", NOL_LMDB_ALL),
                        ("noldo-s12", NOL_TIF), ("noldo-s12", DW_TIF), ("dfc2020", DFC)):  # fmt: skip
        run(fresh(layout))


def test_a_string_epsg_crs_is_read_as_its_code(fresh) -> None:
    """Adaptation: a ``crs`` variable holding "EPSG:32633" strings is as good as the ints."""
    root = fresh("ssl4eo-s12-v1.1")
    v11_variable("train/*/*.zarr.zip", "crs", np.array(["EPSG:32633", "32633"]))(root)
    ds = SSL4EOS12Zarr(root, season=0)
    assert [ds[i]["meta"]["crs"] for i in range(len(ds))] == ["EPSG:32633", "EPSG:32633"]


def test_the_tuple_bomb_is_refused_in_milliseconds() -> None:
    """Bounded work: the memoised walk refuses the 200**8-leaf value without expanding it."""
    from rsfuse.io.safe_pickle import safe_loads

    bomb = shared_tuple_bomb()
    assert len(bomb) < 4096
    t0 = time.perf_counter()
    with deadline(10), pytest.raises(DataError, match="key '7'"):
        safe_loads(bomb, "x.lmdb", "7")
    assert time.perf_counter() - t0 < 1.0
    # a legitimate value with shared references still loads
    shape = (4, 13)
    assert safe_loads(pickle.dumps((b"ab", shape, (shape, shape)))) == (
        b"ab",
        shape,
        (shape, shape),
    )


def test_a_missing_s1_location_is_not_dropped(fresh) -> None:
    """The location stays in the index (as many samples as S2 locations)."""
    root = fresh("ssl4eo-s12")
    s1_location(root)
    ds = SSL4EOS12(root, season=0, patch_size=24)
    assert ds.sample_ids == sorted(p.name for p in (root / "s2c").iterdir())
