"""Channel mapping (permute / adapt / refuse) and reading pickles without running them."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import torch

from rsfuse import bands
from rsfuse.errors import CheckpointError, ConfigError
from rsfuse.weights import import_weights
from rsfuse.weights.channels import ChannelPlan, canonical_band, rsfuse_order
from rsfuse.weights.checkpoint_io import ForeignObject, read_checkpoint
from tests.weights import fakes
from tests.weights.helpers import assert_same, encoder_json, load_as_classification_encoder

L1C, L2A = bands.S2_L1C_ORDER, bands.S2_L2A_ORDER


def test_band_names_of_torchgeo_and_the_authors_are_understood() -> None:
    assert [canonical_band(n) for n in ("B1", "B8a", "B8A", "b12", "vh")] == [
        "B01", "B8A", "B8A", "B12", "VH",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="B13"):
        canonical_band("B13")
    assert rsfuse_order(("VH", "VV", "B12", "B01")) == ("B01", "B12", "VV", "VH")
    assert rsfuse_order(("B04", "B03", "B02")) == ("B04", "B03", "B02")  # RGB display order


def test_plan_permutes_exactly_and_refuses_other_band_sets() -> None:
    plan = ChannelPlan(("VH", "VV"), ("VV", "VH"))
    w = torch.randn(4, 2, 3, 3)
    assert torch.equal(plan.remap(w)[:, 0], w[:, 1]) and plan.exact
    with pytest.raises(ConfigError, match="adapt"):
        ChannelPlan(L1C, L2A)
    with pytest.raises(CheckpointError, match="input channels"):
        plan.remap(torch.randn(4, 3, 3, 3))


def test_l1c_weights_fed_l2a_data_equal_the_source_with_b10_zero(tmp_path: Path) -> None:
    """--adapt to L2A: B10 dropped = the source network with B10 fed as 0 (normalised)."""
    fake = fakes.mae_vit(13)
    src = fakes.save(fake.ckpt, tmp_path / "mae.pth")
    with pytest.raises(ConfigError, match="B10"):
        import_weights(src, tmp_path / "l2a", bands=list(L2A))
    [path] = import_weights(src, tmp_path / "l2a", bands=list(L2A), adapt=True)
    meta = encoder_json(path)
    assert meta["bands"] == list(L2A) and meta["s2_product"] == "L2A"
    assert meta["channel_mapping"]["dropped"] == ["B10"]
    assert meta["channel_mapping"]["exact"] is False
    x = torch.randn(2, 12, 32, 32)
    plan = ChannelPlan(L1C, L2A, adapt=True)
    with torch.no_grad():
        assert_same(load_as_classification_encoder(path)(x), fake.features(plan.feed(x)))


def test_extra_bands_get_zero_weights_and_change_nothing(tmp_path: Path) -> None:
    """CromSS 9-band weights fed all 13 L1C bands: the 4 extra bands are ignored (exact)."""
    ckpt, branches = fakes.cromss("single", s2_chans=9)
    src = fakes.save(ckpt, tmp_path / "cromss9.ckpt")
    [path] = import_weights(src, tmp_path / "c13", bands=list(L1C), adapt=True)
    meta = encoder_json(path)
    assert meta["channel_mapping"]["added_zero_weight"] == ["B01", "B8A", "B09", "B10"]
    assert meta["channel_mapping"]["exact"] is True
    x = torch.randn(2, 13, 64, 64)
    hr9 = [L1C.index(b) for b in bands.S2_SUBSETS["hr9"]]
    with torch.no_grad():
        want = branches["s2"].encoder(x[:, hr9])[-1].mean((2, 3))
        assert_same(load_as_classification_encoder(path)(x), want)
        y = x.clone()
        y[:, [0, 8, 9, 10]] = torch.randn(2, 4, 64, 64)  # the extra bands do not matter
        assert_same(load_as_classification_encoder(path)(y), want)


def test_reordered_bands_are_an_exact_permutation(tmp_path: Path) -> None:
    fake = fakes.dino_vit(13)
    src = fakes.save(fake.ckpt, tmp_path / "dino.pth")
    order = list(reversed(L1C))
    [path] = import_weights(src, tmp_path / "rev", bands=order)
    assert encoder_json(path)["bands"] == order
    x = torch.randn(2, 13, 32, 32)
    with torch.no_grad():
        ours = load_as_classification_encoder(path)(x[:, [L1C.index(b) for b in order]])
        assert_same(ours, fake.features(x))


class _Payload:
    """Pickles as a call of ``os.system``: loading it naively would run a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Sneaky:
    """A class whose construction and state-setting have a side effect (writes a file)."""

    def __init__(self, marker: str) -> None:
        Path(marker).touch()
        self.marker = marker

    def __setstate__(self, state: dict) -> None:
        Path(state["marker"]).touch()

    def __reduce__(self):
        return (_Sneaky, (self.marker,), {"marker": self.marker})


def test_reading_never_runs_code_from_the_file(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "x": _Payload(marker)}, evil)
    with pytest.raises(CheckpointError, match=r"evil\.pth"):  # torch blocks os.system
        read_checkpoint(evil)
    assert not marker.exists()
    sneaky = tmp_path / "sneaky.pth"
    obj = _Sneaky(str(marker))
    marker.unlink()
    torch.save({"state_dict": {"w": torch.ones(1)}, "x": obj}, sneaky)
    out = read_checkpoint(sneaky)  # the class is named but replaced by an inert stand-in
    assert not marker.exists()
    assert isinstance(out["x"], ForeignObject) and out["x"].qualname.endswith("_Sneaky")
    assert torch.equal(out["state_dict"]["w"], torch.ones(1))


def test_training_args_and_legacy_files_are_read(tmp_path: Path) -> None:
    ckpt = {"args": argparse.Namespace(lr=0.1, arch="vit_small"), "teacher": {"w": torch.ones(2)}}
    for legacy in (False, True):
        path = tmp_path / f"c{legacy}.pth"
        torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
        out = read_checkpoint(path)
        assert out["args"].state == {"lr": 0.1, "arch": "vit_small"}
        assert torch.equal(out["teacher"]["w"], torch.ones(2))
