"""Tests of the synthetic Sentinel world and its BigEarthNet v1 / v2 writers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from rsfuse.bands import S2_L1C_ORDER, S2_L2A_ORDER
from rsfuse.data import bigearthnet_layout as layout
from rsfuse.data.classes import BEN19, BEN43, BEN43_TO_19, ben19_indices, ben43_to_19
from rsfuse.data.synthetic import (
    CLC_CODES,
    LABEL_MIN_FRACTION,
    OPTICAL_ONLY_PAIRS,
    SAR_ONLY_PAIRS,
    SyntheticWorld,
    assign_splits,
    s1_name,
    synthesize,
    v1_s2_name,
    v2_patch_id,
    write_bigearthnet_v1,
)
from rsfuse.data.synthetic import acquisition as acq
from rsfuse.data.synthetic import world as world_module
from rsfuse.data.synthetic.landscape import RECIPES
from rsfuse.errors import ConfigError

SEED = 7
N_WRITTEN = 14


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return SyntheticWorld(SEED)


@pytest.fixture(scope="module")
def locations(world: SyntheticWorld) -> list:
    """300 small (60 px) locations: enough for rates and a learnability check."""
    return [world.location(i, size=60) for i in range(300)]


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same world written as v1 (one process) and v2 (two processes)."""
    v1 = synthesize(
        "bigearthnet-v1", tmp_path_factory.mktemp("v1"), N_WRITTEN, SEED, workers=1, progress=False
    )
    v2 = synthesize(
        "bigearthnet-v2", tmp_path_factory.mktemp("v2"), N_WRITTEN, SEED, workers=2, progress=False
    )
    return {"v1": v1, "v2": v2}


def _read(path: Path) -> tuple[np.ndarray, rasterio.profiles.Profile]:
    with rasterio.open(path) as src:
        return src.read(1), src.profile


# ---------------------------------------------------------------------------------------
# the world


def test_determinism(world: SyntheticWorld) -> None:
    a = world.location(5)
    _ = world.location(4)  # other locations in between change nothing
    b = SyntheticWorld(SEED).location(5)
    for key in ("land_cover", "s2", "s2_clear", "s1", "cloud", "shadow", "snow"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    assert (a.labels, a.season, a.geo) == (b.labels, b.season, b.geo)
    c = SyntheticWorld(SEED + 1).location(5)
    assert not np.array_equal(a.s1, c.s1)
    assert not np.array_equal(a.s2, c.s2)
    assert not np.array_equal(a.s1, world.location(6).s1)


def test_location_contract(world: SyntheticWorld) -> None:
    loc = world.location(3)
    assert loc.land_cover.shape == (120, 120) and loc.land_cover.dtype == np.int64
    assert loc.s2.shape == (13, 120, 120) and loc.s2.dtype == np.float32
    assert loc.s1.shape == (2, 120, 120) and loc.s1.dtype == np.float32
    assert loc.s2.min() >= 0 and loc.s2.max() <= 10000
    assert np.isfinite(loc.s1).all()
    assert loc.s1[0].mean() > loc.s1[1].mean()  # VV above VH
    assert loc.season in (0, 1, 2, 3)
    assert loc.geo.crs.startswith("EPSG:326")
    t = loc.geo.transform(20)
    assert (t.a, t.e, t.c, t.f) == (20, -20, loc.geo.ulx, loc.geo.uly)
    # a forced season keeps the land cover and changes the spectra
    other = world.location(3, season=(loc.season + 2) % 4)
    np.testing.assert_array_equal(other.land_cover, loc.land_cover)
    assert not np.allclose(other.s2_clear.mean(), loc.s2_clear.mean())


def test_labels_match_land_cover(locations: list) -> None:
    for loc in locations[:60]:
        counts = np.bincount(loc.land_cover.ravel(), minlength=len(BEN19))
        assert list(loc.labels) == sorted(np.flatnonzero(counts).tolist())
        frac = counts[list(loc.labels)] / loc.land_cover.size
        assert (frac >= LABEL_MIN_FRACTION).all(), (loc.index, frac)
    n_labels = [len(loc.labels) for loc in locations]
    # BigEarthNet-19 has 2.85 labels per patch; small (60 px) patches lose a few more classes
    assert min(n_labels) >= 1 and max(n_labels) <= 5 and 2.2 < np.mean(n_labels) < 3.2


def test_class_imbalance(locations: list) -> None:
    freq = np.zeros(len(BEN19))
    for loc in locations:
        freq[list(loc.labels)] += 1
    common = freq[[BEN19.index("Arable land"), BEN19.index("Mixed forest")]]
    rare = freq[[BEN19.index("Beaches, dunes, sands"), BEN19.index("Coastal wetlands")]]
    assert common.min() > 5 * rare.max()


def test_pair_tables(world: SyntheticWorld) -> None:
    """SAR-only pairs share their optical recipe and differ in radar; optical-only pairs
    share their radar means and differ in their optical recipe."""
    s1 = world.s1_means  # [4, 19, 2]
    for a, b in SAR_ONLY_PAIRS:
        assert RECIPES[a] is RECIPES[b], (a, b)
        assert np.abs(s1[:, a] - s1[:, b]).max(axis=-1).min() >= 3.0, (a, b)  # dB, each season
    for a, b in OPTICAL_ONLY_PAIRS:
        np.testing.assert_allclose(s1[:, a], s1[:, b], atol=1e-6)
        np.testing.assert_array_equal(world.s1_slope[a], world.s1_slope[b])
        assert RECIPES[a] is not RECIPES[b], (a, b)


def _pure(world: SyntheticWorld, rng: np.random.Generator, c: int, season: int,
          size: int = 48) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """S2 [13, size, size] and S1 [2, size, size] of a patch of class ``c`` only."""
    lc = np.full((size, size), c)
    key, fields = world.structure(rng, lc.shape)
    s2_acq, s1_acq = acq.draw_s2(rng, 50.0, season), acq.draw_s1(rng)
    return world.render(lc, season, key, fields, s2_acq, s1_acq, rng, rng)


def test_seasonal_physics(world: SyntheticWorld) -> None:
    rng = np.random.default_rng(0)
    b04, b08, b11 = (S2_L1C_ORDER.index(b) for b in ("B04", "B08", "B11"))
    winter, summer = 0, 2

    def mean(c: int, season: int) -> np.ndarray:
        return np.mean([_pure(world, rng, c, season)[0].mean((1, 2)) for _ in range(6)], 0)

    broad_w, broad_s = mean(8, winter), mean(8, summer)
    assert broad_s[b08] > 1.4 * broad_w[b08]  # leaves out in summer
    assert broad_s[b08] > 4 * broad_s[b04]  # red edge
    water = mean(17, summer)
    assert water[b08] < 400 and water[b11] < 200  # water dark
    conifer_w, conifer_s = mean(9, winter), mean(9, summer)
    assert conifer_s[b08] < 1.3 * conifer_w[b08]  # evergreen
    assert world.s1_means[:, 17, 0].max() < world.s1_means[:, 0, 0].min() - 10


def _ncm_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    """Nearest-class-mean accuracy, fitted on a random half of the rows, tested on the rest."""
    perm = np.random.default_rng(0).permutation(len(y))
    tr, te = perm[: len(y) // 2], perm[len(y) // 2 :]
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
    x = (x - mu) / sd
    classes = np.unique(y[tr])
    means = np.stack([x[tr][y[tr] == c].mean(0) for c in classes])  # [K, F]
    pred = classes[np.argmin(((x[te][:, None] - means[None]) ** 2).sum(-1), axis=1)]
    return float((pred == y[te]).mean())


def _gradient(x: np.ndarray) -> float:
    """Mean absolute neighbour difference of an image, relative to its mean level."""
    d = np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean()
    return float(d / (np.abs(x).mean() + 1e-6))


def _features(s2: np.ndarray, s1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-patch features of each sensor: means, spreads and a texture measure."""
    f2 = np.concatenate([np.log1p(s2.mean((1, 2))), np.log1p(s2.std((1, 2))),
                         [_gradient(s2[i]) for i in (3, 7, 11)]])  # fmt: skip
    lin = 10 ** (s1 / 10)
    f1 = np.concatenate([s1.mean((1, 2)), s1.std((1, 2)), [_gradient(lin[0]), _gradient(lin[1])]])
    return f2, f1


@pytest.mark.parametrize(
    ("pairs", "separating"), [(SAR_ONLY_PAIRS, "s1"), (OPTICAL_ONLY_PAIRS, "s2")]
)
def test_fusion_matters(world: SyntheticWorld, pairs: tuple, separating: str) -> None:
    """Pure patches of a pair: only the separating sensor tells the two classes apart, even
    with texture features; the other sensor's statistics are the same for both."""
    rng = np.random.default_rng(0)
    for a, b in pairs:
        feats: dict[str, list] = {"s2": [], "s1": []}
        y = []
        for i in range(80):
            c = (a, b)[i % 2]
            # S1 is told apart in any season; S2 compared in summer (leaf-on)
            season = int(rng.integers(4)) if separating == "s1" else 2
            f2, f1 = _features(*_pure(world, rng, c, season))
            feats["s2"].append(f2)
            feats["s1"].append(f1)
            y.append(c)
        acc = {k: _ncm_accuracy(np.array(v), np.array(y)) for k, v in feats.items()}
        other = "s2" if separating == "s1" else "s1"
        assert acc[separating] >= 0.75, (a, b, acc)
        assert acc[other] <= 0.65, (a, b, acc)


def test_classes_overlap_pixel_by_pixel(world: SyntheticWorld) -> None:
    """Arable land and pastures in summer: single pixels are often indistinguishable (a green
    crop is grass), the arrangement of a patch is not (parcels of different crops)."""
    rng = np.random.default_rng(1)
    pixels, pixel_y, texture, y = [], [], [], []
    for i in range(60):
        c = (2, 4)[i % 2]
        s2, _ = _pure(world, rng, c, 2)
        px = np.log1p(s2.reshape(13, -1).T)
        pixels.append(px[np.random.default_rng(i).choice(len(px), 40, replace=False)])
        pixel_y += [c] * 40
        ndvi = (s2[7] - s2[3]) / (s2[7] + s2[3] + 1e-6)
        texture.append([ndvi.std(), _gradient(s2[3]), _gradient(s2[11])])
        y.append(c)
    by_pixel = _ncm_accuracy(np.concatenate(pixels), np.array(pixel_y))
    by_texture = _ncm_accuracy(np.array(texture), np.array(y))
    assert by_pixel < 0.8 and by_texture >= 0.8 and by_texture > by_pixel + 0.1


def test_clouds_change_s2_not_s1(
    world: SyntheticWorld, locations: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloudy = [loc for loc in locations if loc.has_cloud]
    assert 0.04 <= len(cloudy) / len(locations) <= 0.2
    loc = cloudy[0]
    assert loc.cloud_fraction >= 0.01
    thick = loc.cloud > 0.8
    assert thick.any()
    assert (loc.s2[1][thick] > loc.s2_clear[1][thick] + 1000).all()  # blue brightens
    if loc.shadow.any():
        assert (loc.s2[:, loc.shadow] <= loc.s2_clear[:, loc.shadow]).all()
    # without clouds the same location has exactly the same S1 and the clear S2
    monkeypatch.setattr(world_module, "CLOUDY_PROBABILITY", 0.0)
    again = world.location(loc.index, size=60)
    assert not again.has_cloud
    np.testing.assert_array_equal(again.s1, loc.s1)
    np.testing.assert_array_equal(again.s2_clear, loc.s2_clear)
    # and applying clouds never touches an S1 input
    opacity, shadow = world.clouds(np.random.default_rng(1), 60)
    assert opacity.dtype == np.float32 and opacity.min() >= 0 and opacity.max() <= 1
    assert not (shadow & (opacity > 0)).any()
    clear = next(loc for loc in locations if not loc.has_cloud and not loc.has_snow)
    np.testing.assert_array_equal(clear.s2, clear.s2_clear)


def test_snow_is_wintry_at_bigearthnet_rate(locations: list) -> None:
    snowy = [loc for loc in locations if loc.has_snow]
    assert 0.05 <= len(snowy) / len(locations) <= 0.16  # BigEarthNet: 10.5 %
    assert all(loc.season == 0 for loc in snowy)


def test_acquisitions_vary_between_seasons(world: SyntheticWorld) -> None:
    """The same place in two seasons: another sun, haze, incidence angle and orbit."""
    locs = [world.location(2, size=48, season=s) for s in range(4)]
    assert len({loc.s1_acquisition.incidence for loc in locs}) == 4
    elevations = [loc.s2_acquisition.sun_elevation for loc in locs]
    assert elevations[0] < elevations[2]  # low winter sun
    shifts = {world.location(i, size=24).s1_acquisition.shift for i in range(40)}
    assert (0, 0) in shifts and len(shifts) > 2  # small S1 / S2 misregistration


# ---------------------------------------------------------------------------------------
# writers


def test_v1_files(roots: dict[str, Path], world: SyntheticWorld) -> None:
    root = roots["v1"]
    for i in (0, 1, 9):
        loc = world.location(i)
        s2n, s1n = v1_s2_name(loc.geo), s1_name(loc.geo)
        assert s1n.endswith(f"_{loc.geo.tile}_{loc.geo.row}_{loc.geo.col}")
        for band, size in (("B02", 120), ("B05", 60), ("B01", 20), ("B12", 60)):
            arr, prof = _read(layout.v1_s2_band(root, s2n, band))
            res = 1200 // size
            assert arr.shape == (size, size) and arr.dtype == np.uint16
            assert prof["crs"].to_epsg() == loc.geo.epsg
            t = prof["transform"]
            assert (t.a, t.e, t.c, t.f) == (res, -res, loc.geo.ulx, loc.geo.uly)
            f = res // 10
            field = loc.s2[S2_L1C_ORDER.index(band)]
            expect = field.reshape(size, f, size, f).mean(axis=(1, 3))
            assert np.abs(arr - expect).max() <= 0.51
        assert not layout.v1_s2_band(root, s2n, "B10").exists()
        for k, band in enumerate(("VV", "VH")):
            arr, prof = _read(layout.v1_s1_band(root, s1n, band))
            assert arr.dtype == np.float32 and arr.shape == (120, 120)
            assert prof["crs"].to_epsg() == loc.geo.epsg
            np.testing.assert_array_equal(arr, loc.s1[k])
        meta = json.loads(layout.v1_s2_metadata(root, s2n).read_text())
        assert set(meta) == {
            "labels",
            "coordinates",
            "projection",
            "tile_source",
            "acquisition_date",
        }
        assert ben43_to_19(meta["labels"]) == list(loc.labels)
        assert meta["coordinates"]["ulx"] == loc.geo.ulx
        assert meta["coordinates"]["lry"] == loc.geo.uly - 1200
        s1_meta = json.loads(layout.v1_s1_metadata(root, s1n).read_text())
        assert s1_meta["corresponding_s2_patch"] == s2n
        assert s1_meta["labels"] == meta["labels"]


def test_v1_lists(roots: dict[str, Path], world: SyntheticWorld) -> None:
    root = roots["v1"]
    rows = {}
    for key, count in (("train", 8), ("val", 3), ("test", 3)):
        lines = (root / layout.V1_SPLIT_FILES[key][0]).read_text().splitlines()
        assert len(lines) == count, key
        for line in lines:
            s2n, s1n = line.split(",")
            rows[s2n] = s1n
    locs = [world.location(i) for i in range(N_WRITTEN)]
    assert rows == {v1_s2_name(loc.geo): s1_name(loc.geo) for loc in locs}
    snow = set((root / layout.V1_SNOW_FILE).read_text().split())
    cloud = set((root / layout.V1_CLOUD_FILE).read_text().split())
    assert snow == {v1_s2_name(loc.geo) for loc in locs if loc.has_snow}
    assert cloud == {v1_s2_name(loc.geo) for loc in locs if loc.has_cloud}


def test_dropped_43_class_names_appear(tmp_path: Path) -> None:
    """≈5 % of v1 label lists carry a name that the 43 → 19 mapping drops."""
    from rsfuse.data.synthetic.bigearthnet import DROPPED_43, _labels_43

    world = SyntheticWorld(0)
    dropped = 0
    for i in range(200):
        loc = world.location(i, size=12)
        _, names = _labels_43(world.streams(i)["layout"], loc)
        dropped += any(BEN43.index(n) in DROPPED_43 for n in names)
        assert ben43_to_19(names) == list(loc.labels)
    assert 2 <= dropped <= 25


def test_v2_metadata_and_maps(roots: dict[str, Path], world: SyntheticWorld) -> None:
    root = roots["v2"]
    clean = pd.read_parquet(root / layout.V2_METADATA)
    flagged = pd.read_parquet(root / layout.V2_FLAGGED_METADATA)  # as reBEN: a second file
    flags = ["contains_seasonal_snow", "contains_cloud_or_shadow"]
    assert not clean[flags].any(axis=None) and flagged[flags].any(axis=1).all()
    assert list(flagged.columns) == list(clean.columns)
    index = {v2_patch_id(world.location(i).geo): i for i in range(N_WRITTEN)}
    df = pd.concat([clean, flagged])
    df.index = [index[p] for p in df["patch_id"]]
    df = df.sort_index()
    assert list(df.columns) == [
        "patch_id",
        "labels",
        "split",
        "country",
        "s1_name",
        "s2v1_name",
        "contains_seasonal_snow",
        "contains_cloud_or_shadow",
    ]
    assert len(df) == N_WRITTEN
    assert df["split"].value_counts().to_dict() == {"train": 8, "validation": 3, "test": 3}
    code_to_19 = np.full(1000, -1)
    for i, j in BEN43_TO_19.items():
        code_to_19[CLC_CODES[i]] = j
    for i, row in df.iterrows():
        loc = world.location(int(i))
        assert row["patch_id"] == v2_patch_id(loc.geo)
        assert row["s1_name"] == s1_name(loc.geo)
        assert row["s2v1_name"] == v1_s2_name(loc.geo)
        assert ben19_indices(list(row["labels"])) == list(loc.labels)
        assert bool(row["contains_cloud_or_shadow"]) == loc.has_cloud
        assert bool(row["contains_seasonal_snow"]) == loc.has_snow
        ref, prof = _read(layout.v2_reference_map(root, row["patch_id"]))
        assert ref.dtype == np.uint16 and ref.shape == (120, 120)
        np.testing.assert_array_equal(code_to_19[ref], loc.land_cover)
        arr, prof = _read(layout.v2_s2_band(root, row["patch_id"], "B8A"))
        assert arr.shape == (60, 60) and prof["transform"].a == 20
        assert layout.v2_s1_band(root, row["s1_name"], "VH").is_file()
    # splits agree with v1 (same seed, same n)
    v1_train = (roots["v1"] / "train.csv").read_text().split()
    assert sorted(s.split(",")[0] for s in v1_train) == sorted(
        df.loc[df["split"] == "train", "s2v1_name"]
    )


def test_same_pixels_in_v1_and_v2(roots: dict[str, Path], world: SyntheticWorld) -> None:
    """Location i: identical bytes in both layouts (v1 written by 1 process, v2 by 2)."""
    for i in (2, 13):
        geo = world.location(i).geo
        for band in S2_L2A_ORDER:
            a, _ = _read(layout.v1_s2_band(roots["v1"], v1_s2_name(geo), band))
            b, _ = _read(layout.v2_s2_band(roots["v2"], v2_patch_id(geo), band))
            np.testing.assert_array_equal(a, b, err_msg=band)
        a, _ = _read(layout.v1_s1_band(roots["v1"], s1_name(geo), "VV"))
        b, _ = _read(layout.v2_s1_band(roots["v2"], s1_name(geo), "VV"))
        np.testing.assert_array_equal(a, b)


def test_no_temporary_files_left(roots: dict[str, Path]) -> None:
    for root in roots.values():
        assert not [p for p in root.rglob("*") if ".tmp-" in p.name]


def test_assign_splits() -> None:
    s = assign_splits(20, 3, (0.5, 0.25, 0.25))
    assert (s.count("train"), s.count("val"), s.count("test")) == (10, 5, 5)
    assert s == assign_splits(20, 3, (0.5, 0.25, 0.25))
    assert s != assign_splits(20, 4, (0.5, 0.25, 0.25))
    assert assign_splits(1, 0) == ["train"]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"layout": "bigearthnet-v3"}, "layout"),
        ({"n": 0}, "n"),
        ({"n": 2.5}, "n"),
        ({"seed": -1}, "seed"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, key: str) -> None:
    args = {"layout": "bigearthnet-v1", "root": tmp_path, "n": 3, "seed": 0, "progress": False}
    with pytest.raises(ConfigError) as e:
        synthesize(**{**args, **kwargs})
    assert e.value.key == key
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("splits", [(0.5, 0.5, 0.5), (0.6, 0.4), (1.2, -0.1, -0.1), "abc"])
def test_bad_splits(tmp_path: Path, splits: object) -> None:
    with pytest.raises(ConfigError) as e:
        write_bigearthnet_v1(tmp_path, 3, 0, splits=splits, progress=False)  # type: ignore[arg-type]
    assert e.value.key == "splits"


def test_bad_world_inputs(world: SyntheticWorld) -> None:
    with pytest.raises(ConfigError):
        SyntheticWorld(-3)
    with pytest.raises(ConfigError):
        world.location(-1)
    with pytest.raises(ConfigError):
        world.location(0, season=4)
