# ruff: noqa: E501  (case tables: one case per line)
"""Bad input to ``rsfuse export`` and :func:`rsfuse.load_bundle` (issue 19, cases 1, 5, 7):
a bundle holds one coherent band order with its statistics, never NaN statistics.

Add a case with one line: :data:`EXPORT_CASES` edit the checkpoint before export,
:data:`LOAD_CASES` edit ``bundle.json`` before loading.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from rsfuse import bands, load_bundle
from rsfuse.errors import CheckpointError
from rsfuse.inference import export_bundle
from rsfuse.inference.bundle import CONFIG_NAME

from ..inference.conftest import fake_checkpoint
from .conftest import tiny_task

L1C = list(bands.S2_L1C_ORDER)


@pytest.fixture(scope="module")
def good_ckpt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A checkpoint dict of a tiny S1+S2 U-Net whose datamodule records its band order."""
    path = tmp_path_factory.mktemp("ckpt") / "good.ckpt"
    fake_checkpoint(tiny_task(), path, 32, "ssl4eo-s12-l1c")
    ckpt = torch.load(path, weights_only=True)
    ckpt["SegmentationDataModule"]["bands"] = {"s2": L1C, "s1": ["VV", "VH"]}
    return ckpt


def dm(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """Edit the datamodule state of the checkpoint."""
    return lambda ckpt: edit(ckpt["SegmentationDataModule"])


def norm(key: str, index: int, value: float) -> Callable[[dict[str, Any]], None]:
    def edit(state: dict[str, Any]) -> None:
        state["normalization"][key][index] = value

    return dm(edit)


def data_bands(s2: list[str] | None = None, s1: list[str] | None = None):
    def edit(state: dict[str, Any]) -> None:
        state["bands"] = {"s2": s2 if s2 is not None else L1C, "s1": s1 or ["VV", "VH"]}

    return dm(edit)


#: (id, edit of the checkpoint dict, message)
EXPORT_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("nan-mean", norm("s2_mean", 3, math.nan), r"s2_mean is not finite at channel\(s\) \[3\]"),
    ("inf-std", norm("s1_std", 1, math.inf), "s1_std is not finite"),
    ("zero-std", norm("s2_std", 0, 0.0), "s2_std has values <= 0"),
    ("reversed-band-order", data_bands(s2=L1C[::-1]), "band order, not only count"),
    ("two-bands-swapped", data_bands(s2=[L1C[1], L1C[0], *L1C[2:]]), "band order"),
    ("other-bands-same-count", data_bands(s2=[*L1C[:-1], "B8A"]), "the data's S2 band order"),
    ("s1-swapped", data_bands(s1=["VH", "VV"]), "S1 bands are"),
    ("bands-not-a-dict", dm(lambda s: s.update(bands=["B02"])), "'bands' is not a dict"),
    ("normalization-not-a-dict", dm(lambda s: s.update(normalization=[1, 2])), "not a description"),
]


@pytest.mark.parametrize(
    "edit, match", [c[1:] for c in EXPORT_CASES], ids=[c[0] for c in EXPORT_CASES]
)
def test_export_refuses_an_incoherent_checkpoint(
    edit, match: str, good_ckpt: dict[str, Any], tmp_path: Path
) -> None:  # fmt: skip
    ckpt = copy.deepcopy(good_ckpt)
    edit(ckpt)
    path = tmp_path / "bad.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=match) as e:
        export_bundle(path, tmp_path / "bundle")
    assert str(path) in str(e.value)
    assert not (tmp_path / "bundle" / CONFIG_NAME).exists()


def test_the_good_checkpoint_exports_its_band_order(
    good_ckpt: dict[str, Any], tmp_path: Path
) -> None:
    torch.save(good_ckpt, tmp_path / "good.ckpt")
    b = load_bundle(export_bundle(tmp_path / "good.ckpt", tmp_path / "bundle"))
    assert list(b.s2_bands) == L1C == b.config["normalization"]["s2_bands"]


# ------------------------------------------------------------------------ bundle.json
@pytest.fixture(scope="module")
def good_bundle(good_ckpt: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bundle")
    torch.save(good_ckpt, d / "good.ckpt")
    return export_bundle(d / "good.ckpt", d / "bundle")


def cfg(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(bundle: Path) -> None:
        path = bundle / CONFIG_NAME
        config = json.loads(path.read_text())
        edit(config)
        path.write_text(json.dumps(config))  # NaN is written as the bare token NaN

    return apply


def set_stat(key: str, index: int, value: float) -> Callable[[Path], None]:
    return cfg(lambda c: c["normalization"][key].__setitem__(index, value))


#: (id, edit of the exported bundle folder, message)
LOAD_CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("nan-mean-in-json", set_stat("s2_mean", 0, math.nan), "NaN is not a number a bundle may hold"),
    ("negative-std-in-json", set_stat("s1_std", 0, -1.0), "s1_std has values <= 0"),
    ("stats-order-differs", cfg(lambda c: c["normalization"].update(s2_bands=L1C[::-1])), "the statistics' band order"),
    ("both-orders-differ-from-model", cfg(lambda c: (c.update(s2_bands=L1C[::-1]), c["normalization"].update(s2_bands=L1C[::-1]))), "the model takes S2 bands"),
    ("duplicate-band", cfg(lambda c: c.update(s2_bands=[L1C[0], *L1C[:-1]])), "lists a band twice"),
    ("stats-one-band-short", cfg(lambda c: (c["normalization"]["s2_mean"].pop(), c["normalization"]["s2_std"].pop())), "statistics have 12 S2 bands but s2_bands lists 13"),
]  # fmt: skip


@pytest.mark.parametrize("edit, match", [c[1:] for c in LOAD_CASES], ids=[c[0] for c in LOAD_CASES])
def test_load_refuses_an_incoherent_bundle(
    edit, match: str, good_bundle: Path, tmp_path: Path
) -> None:
    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(good_bundle, bundle)
    edit(bundle)
    with pytest.raises(CheckpointError, match=match) as e:
        load_bundle(bundle)
    assert str(bundle) in str(e.value)
