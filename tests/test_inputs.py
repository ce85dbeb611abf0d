"""The input specification the datamodule and the model share."""

from __future__ import annotations

import pytest
import torch

from rsfuse.errors import ConfigError, DataError
from rsfuse.inputs import InputSpec


def test_channels_are_s2_bands_then_vv_vh() -> None:
    spec = InputSpec.create(["s2", "s1"], ["B08", "B04"], "L2A")
    assert spec.modalities == ("s1", "s2")
    assert spec.channels == ("B08", "B04", "VV", "VH")
    assert spec.channels_of("s2") == 2 and spec.channels_of("s1") == 2
    assert InputSpec.create(["s1"]).channels == ("VV", "VH")
    assert InputSpec.create(["s1"]).s2_bands == ()


def test_named_subsets_resolve_and_bad_names_are_refused() -> None:
    assert InputSpec.create(["s2"], "rgb").s2_bands == ("B04", "B03", "B02")
    for modalities, bands, product in (
        (["s3"], "all", "L2A"),
        (["s2"], ["B99"], "L2A"),
        (["s2"], ["B02", "B02"], "L2A"),
        (["s2"], "all", "L3"),
    ):
        with pytest.raises(ConfigError):
            InputSpec.create(modalities, bands, product)  # fmt: skip


def test_band_order_is_part_of_the_check() -> None:
    data = InputSpec.create(["s1", "s2"], ["B02", "B03", "B04"])
    model = InputSpec.create(["s2"], ["B04", "B03", "B02"])
    with pytest.raises(ConfigError, match="order"):
        data.check_feeds(model)
    data.check_feeds(InputSpec.create(["s2"], ["B02", "B03", "B04"]))  # a subset of sensors
    with pytest.raises(ConfigError, match="s1"):
        InputSpec.create(["s2"], "rgb").check_feeds(InputSpec.create(["s1", "s2"], "rgb"))


def test_batch_check_names_the_sensor_and_counts() -> None:
    spec = InputSpec.create(["s1", "s2"], "rgb")
    ok = {"s1": torch.zeros(2, 2, 8, 8), "s2": torch.zeros(2, 3, 8, 8)}
    spec.check_batch(ok)
    with pytest.raises(ConfigError, match=r"3 s2 bands .* 4 S2 bands"):
        spec.check_batch({**ok, "s2": torch.zeros(2, 4, 8, 8)})
    with pytest.raises(ConfigError, match="2 s1 bands"):
        spec.check_batch({**ok, "s1": torch.zeros(2, 1, 8, 8)})
    with pytest.raises(DataError, match="s1"):
        spec.check_batch({"s2": ok["s2"]})


def test_dict_round_trip_and_select() -> None:
    spec = InputSpec.create(["s1", "s2"], ["B11", "B02"], "L1C")
    assert InputSpec.from_dict(spec.to_dict()) == spec
    assert spec.select(["s2"]) == InputSpec.create(["s2"], ["B11", "B02"], "L1C")
    assert spec.select(["s1"]).s2_bands == ()
    with pytest.raises(ConfigError):
        InputSpec.create(["s2"]).select(["s1"])
    with pytest.raises(ConfigError, match="modalities"):
        InputSpec.from_dict({"s2_bands": []})
