# ruff: noqa: E501  (case tables: one case per line)
"""Bad input to ``rsfuse predict`` (issue 19, cases 2, 5 and 7): outputs never replace or
land inside an input; scenes whose band names are ambiguous or contradict each other, or
files that are not what their name says, are refused before any work, naming the file.

Add a case with one line in :data:`CASES`: ``(id, build, error, match)`` where
``build(d, a)`` writes what it needs under ``d`` (``a``: the scene arrays) and returns the
keyword arguments of :func:`~rsfuse.inference.predict.predict_scene` (see :func:`with_`);
``match`` names the file. Inputs must be unchanged afterwards and no output written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rsfuse import bands
from rsfuse.errors import ConfigError, DataError
from rsfuse.inference import export_bundle
from rsfuse.inference.predict import Options, predict_scene

from ..inference.conftest import fake_checkpoint, scene_arrays, write_raster
from .conftest import rewrite_tif, tiny_task

L1C = list(bands.S2_L1C_ORDER)
H, W = 40, 48


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bundle")
    ckpt = fake_checkpoint(tiny_task(), d / "t.ckpt", 32, "ssl4eo-s12-l1c")
    return export_bundle(ckpt, d / "bundle")


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    return scene_arrays(H, W)


def scene(d: Path, a: dict[str, np.ndarray]) -> dict[str, Any]:
    """The plain inputs: s2.tif (13 named bands), s1.tif (VV, VH), cloud.tif."""
    return {
        "s2": write_raster(d / "s2.tif", a["s2"], L1C),
        "s1": write_raster(d / "s1.tif", a["s1"], ["VV", "VH"]),
        "clouds": str(write_raster(d / "cloud.tif", a["cloud"][None])),
        "out": d / "out" / "map.tif",
    }


def band_folder(d: Path, a: dict[str, np.ndarray], extra: dict[str, int] | None = None) -> Path:
    """S2 as a folder of per-band files ``T32_<band>.tif`` (``extra``: more files, name →
    the band index they copy)."""
    folder = d / "s2_bands"
    folder.mkdir()
    for i, b in enumerate(L1C):
        write_raster(folder / f"T32_{b}.tif", a["s2"][i : i + 1])
    for name, i in (extra or {}).items():
        write_raster(folder / name, a["s2"][i : i + 1])
    return folder


def with_(**changes: Any) -> Callable[[Path, dict[str, np.ndarray]], dict[str, Any]]:
    """The plain scene with ``changes``; a callable value is called as ``f(d, a, kw)``."""

    def build(d: Path, a: dict[str, np.ndarray]) -> dict[str, Any]:
        kw = scene(d, a)
        for k, v in changes.items():
            kw[k] = v(d, a, kw) if callable(v) else v
        return kw

    return build


def s2_named(names: list[str]):
    return lambda d, a, kw: write_raster(d / "s2_named.tif", a["s2"], names)


#: (id, build, error, message)
CASES = [
    ("out-is-the-s2-input", with_(out=lambda d, a, kw: kw["s2"]), ConfigError, "s2.tif is an input of this command"),
    ("out-is-the-s1-input", with_(out=lambda d, a, kw: d / "s1.tif"), ConfigError, "is an input of this command"),
    ("out-is-the-cloud-mask", with_(out=lambda d, a, kw: d / "cloud.tif"), ConfigError, "is an input of this command"),
    ("out-inside-the-s2-folder", with_(s2=lambda d, a, kw: band_folder(d, a), out=lambda d, a, kw: d / "s2_bands" / "map.tif"), ConfigError, "lies inside the input"),
    ("out-folder-is-the-s2-folder", with_(s2=lambda d, a, kw: band_folder(d, a), out=lambda d, a, kw: d / "s2_bands"), ConfigError, "lies inside the input"),
    ("out-inside-the-bundle", with_(out="BUNDLE/map.tif"), ConfigError, "lies inside the input"),
    ("out-under-a-file", with_(out=lambda d, a, kw: d / "s1.tif" / "map.tif"), ConfigError, "is a file, not a folder"),
    ("two-bands-described-b02", with_(s2=s2_named(["B01", "B02", "B02", *L1C[3:]])), DataError, "bands 2 and 3 are both named 'B02'"),
    ("s2-bands-contradict-descriptions", with_(s2_band_names=L1C[::-1]), DataError, "--s2-bands gives the order"),
    ("s2-bands-twice-the-same", with_(s2=lambda d, a, kw: write_raster(d / "u.tif", a["s2"]), s2_band_names=[L1C[0], *L1C[:-1]]), DataError, "--s2-bands: bands 1 and 2 are both named"),
    ("s1-described-vv-twice", with_(s1=lambda d, a, kw: write_raster(d / "s1vv.tif", a["s1"], ["VV", "VV"])), DataError, "both named 'VV'"),
    ("two-files-for-b02", with_(s2=lambda d, a, kw: band_folder(d, a, {"T32_B02_copy.tif": 1})), DataError, "two files for band B02"),
    ("png-named-tif", with_(clouds=lambda d, a, kw: str(rewrite_tif(Path(kw["clouds"]), driver="PNG"))), DataError, "cloud.tif.*is named .tif but is a PNG file"),
    ("s1-in-another-crs", with_(s1=lambda d, a, kw: write_raster(d / "s1u.tif", a["s1"], ["VV", "VH"], crs="EPSG:32633")), DataError, "CRS mismatch"),
]  # fmt: skip


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "out" not in p.relative_to(folder).parts
    }


@pytest.mark.parametrize("build, error, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_predictions_are_refused_before_any_work(
    build, error: type[Exception], match: str, bundle: Path, arrays, tmp_path: Path
) -> None:
    kw = build(tmp_path, arrays)
    if kw["out"] == "BUNDLE/map.tif":
        kw["out"] = bundle / "map.tif"
    before = digest(tmp_path) | {f"bundle/{k}": v for k, v in digest(bundle).items()}
    with pytest.raises(error, match=match):
        predict_scene(
            bundle, kw["out"], s2=kw["s2"], s1=kw["s1"], clouds=kw["clouds"],
            s2_band_names=kw.get("s2_band_names"), options=Options(progress=False),
        )  # fmt: skip
    after = digest(tmp_path) | {f"bundle/{k}": v for k, v in digest(bundle).items()}
    assert after == before, "an input was changed"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_plain_scene_predicts(bundle: Path, arrays, tmp_path: Path) -> None:
    """The fixtures are fine: the damage is what the cases detect."""
    kw = scene(tmp_path, arrays)
    rep = predict_scene(bundle, kw["out"], s2=kw["s2"], s1=kw["s1"], clouds=kw["clouds"],
                        options=Options(progress=False))  # fmt: skip
    assert Path(rep["outputs"]["main"]).is_file()
