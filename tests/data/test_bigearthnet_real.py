"""The BigEarthNet v1 reader on real files: the six patch pairs shipped by ``bigearthnet-common``
(extracted at test time, never committed), compared with the raw GeoTIFFs and JSON files."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from rsfuse.bands import S2_L2A_ORDER
from rsfuse.data import bigearthnet_layout as layout
from rsfuse.data.bigearthnet import BigEarthNetV1
from rsfuse.data.classes import BEN19
from rsfuse.data.synthetic import examples
from rsfuse.errors import DataError

#: Labels of the six patches (19 classes), read by hand from their JSON files.
EXPECTED_LABELS = {
    "S2A_MSIL2A_20170613T101031_87_48": ["Arable land", "Land principally occupied by "
                                         "agriculture, with significant areas of natural "
                                         "vegetation"],
    "S2A_MSIL2A_20170617T113321_36_85": ["Arable land", "Pastures"],
    "S2A_MSIL2A_20170617T113321_4_55": ["Pastures"],
    "S2A_MSIL2A_20171221T112501_56_35": ["Complex cultivation patterns", "Land principally "
                                         "occupied by agriculture, with significant areas of "
                                         "natural vegetation", "Broad-leaved forest",
                                         "Transitional woodland, shrub"],
    "S2B_MSIL2A_20170924T93020_69_24": ["Coniferous forest", "Mixed forest", "Transitional "
                                        "woodland, shrub", "Inland wetlands", "Inland waters"],
    "S2B_MSIL2A_20180204T94161_57_38": ["Arable land", "Coniferous forest", "Mixed forest"],
}  # fmt: skip


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return examples.extract_examples(tmp_path_factory.mktemp("ben-examples") / "root")


def _raw(path: Path) -> tuple[np.ndarray, rasterio.Affine, str]:
    with rasterio.open(path) as src:
        return src.read(1), src.transform, src.crs.to_string()


def test_layout(root: Path) -> None:
    pairs = examples.pairs(root)
    assert len(pairs) == examples.NUM_EXAMPLES == 6
    lines = (root / "train.csv").read_text().splitlines()
    assert lines == [f"{s2},{s1}" for s2, s1 in pairs]
    assert {s2 for s2, _ in pairs} == set(EXPECTED_LABELS)
    assert not list(root.rglob(".tmp*"))


def test_reader_on_real_files(root: Path) -> None:
    ds = BigEarthNetV1(root, split="train", include_snow=True, include_cloudy=True,
                       resampling="nearest")  # fmt: skip
    assert len(ds) == 6 and ds.scan() == []
    for i in range(len(ds)):
        s = ds[i]
        s2n, s1n = s["meta"]["s2_id"], s["meta"]["s1_id"]
        assert s["s2"].shape == (12, 120, 120) and s["s1"].shape == (2, 120, 120)
        names = [BEN19[j] for j in torch.nonzero(s["label"]).flatten().tolist()]
        assert names == EXPECTED_LABELS[s2n], s2n
        # S2 in registry order: 10 m bands exactly, 20 / 60 m bands repeated (nearest)
        for c, band in enumerate(S2_L2A_ORDER):
            raw, _, crs = _raw(layout.v1_s2_band(root, s2n, band))
            f = 120 // raw.shape[0]
            expect = np.repeat(np.repeat(raw, f, 0), f, 1).astype(np.float32)
            np.testing.assert_array_equal(s["s2"][c].numpy(), expect, err_msg=f"{s2n} {band}")
        # S1: VV then VH, the float32 dB values of the files
        for c, band in enumerate(("VV", "VH")):
            raw, _, crs = _raw(layout.v1_s1_band(root, s1n, band))
            np.testing.assert_array_equal(s["s1"][c].numpy(), raw)
        # georeference: the 10 m grid of the metadata's upper-left corner
        meta = json.loads(layout.v1_s2_metadata(root, s2n).read_text())
        assert s["meta"]["crs"] == crs and crs.startswith("EPSG:326")
        assert s["meta"]["transform"] == (10.0, 0.0, meta["coordinates"]["ulx"], 0.0, -10.0,
                                          meta["coordinates"]["uly"])  # fmt: skip


def test_real_values_are_physical(root: Path) -> None:
    ds = BigEarthNetV1(root, split="train", include_snow=True, include_cloudy=True)
    s1 = torch.stack([ds[i]["s1"] for i in range(len(ds))])  # [6, 2, 120, 120]
    assert (s1[:, 0].mean((1, 2)) > s1[:, 1].mean((1, 2))).all()  # VV above VH
    assert -25 < float(s1.mean()) < -5
    s2 = torch.stack([ds[i]["s2"] for i in range(len(ds))])
    nir, red = S2_L2A_ORDER.index("B08"), S2_L2A_ORDER.index("B04")
    ireland = next(i for i in range(6) if ds.sample_id(i).endswith("_4_55"))  # June pasture
    assert s2[ireland, nir].mean() > 5 * s2[ireland, red].mean()


def test_s1_only_reads_labels_from_s1_metadata(root: Path) -> None:
    ds = BigEarthNetV1(root, split="train", modalities=("s1",), include_snow=True,
                       include_cloudy=True)  # fmt: skip
    for i in range(len(ds)):
        s = ds[i]
        assert "s2" not in s
        names = [BEN19[j] for j in torch.nonzero(s["label"]).flatten().tolist()]
        assert names == EXPECTED_LABELS[s["meta"]["s2_id"]]


def test_extract_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(DataError, match="not empty"):
        examples.extract_examples(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_missing_package_is_a_data_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def missing(name: str) -> None:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(examples.metadata, "files", missing)
    with pytest.raises(DataError, match="bigearthnet-common"):
        examples.extract_examples(tmp_path / "x")
    assert not (tmp_path / "x").exists()
