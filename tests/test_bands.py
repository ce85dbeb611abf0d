"""Tests of the band registry: order, subsets, statistics, early-fusion layout."""

from __future__ import annotations

import pytest

from rsfuse import bands
from rsfuse.errors import ConfigError


def test_sensor_orders() -> None:
    assert bands.S1_ORDER == ("VV", "VH")
    assert len(bands.S2_L1C_ORDER) == 13 and len(bands.S2_L2A_ORDER) == 12
    assert "B10" in bands.S2_L1C_ORDER and "B10" not in bands.S2_L2A_ORDER
    # B8A sits between B08 and B09, as in ESA's numbering
    i = bands.S2_L2A_ORDER.index("B8A")
    assert bands.S2_L2A_ORDER[i - 1 : i + 2] == ("B08", "B8A", "B09")


@pytest.mark.parametrize(
    ("name", "resolution", "wavelength"),
    [("B02", 10, 492.4), ("B05", 20, 704.1), ("B01", 60, 442.7), ("B12", 20, 2202.4)],
)
def test_band_facts(name: str, resolution: int, wavelength: float) -> None:
    b = bands.BANDS[name]
    assert b.resolution == resolution and b.wavelength_nm == wavelength and b.sensor == "s2"


def test_named_subsets() -> None:
    assert bands.s2_bands("hr9") == ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12")
    assert bands.s2_bands("rgb") == ("B04", "B03", "B02")
    assert bands.s2_bands("all", "L1C") == bands.S2_L1C_ORDER
    assert bands.s2_bands("all", "L2A") == bands.S2_L2A_ORDER
    assert bands.s2_bands(["B08", "B04"]) == ("B08", "B04")


@pytest.mark.parametrize(
    ("subset", "product"),
    [("nope", "L2A"), (["B10"], "L2A"), (["B02", "B02"], "L2A"), ("all", "L3")],
)
def test_bad_subsets(subset, product: str) -> None:
    with pytest.raises(ConfigError):
        bands.s2_bands(subset, product)


def test_statistics_select_in_requested_order() -> None:
    mean, std = bands.stats("bigearthnet-v2").select(["VH", "VV", "B02"])
    assert mean == pytest.approx([-19.352558, -12.643864, 438.37207])
    assert std == pytest.approx([5.590506, 5.133494, 607.026855])
    with pytest.raises(ConfigError, match="B10"):
        bands.stats("bigearthnet-v1").select(["B10"])
    with pytest.raises(ConfigError, match="no statistics"):
        bands.stats("imagenet")


def test_every_dataset_has_stats_for_its_bands() -> None:
    for name, st in bands.STATS.items():
        assert set(bands.S1_ORDER) <= set(st.mean), name
        assert all(s > 0 for s in st.std.values()), name


def test_early_fusion_layout_is_s2_then_vv_vh() -> None:
    ch = bands.early_fusion_channels(["s2", "s1"], bands.s2_bands("rgb"))
    assert ch == ("B04", "B03", "B02", "VV", "VH")
    assert bands.early_fusion_channels(["s1"]) == ("VV", "VH")
    with pytest.raises(ConfigError):
        bands.check_modalities(["s3"])
    with pytest.raises(ConfigError):
        bands.check_modalities([])
