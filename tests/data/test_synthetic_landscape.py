"""Building blocks of the synthetic world: hashed structures (seamless, deterministic),
parcels with straight edges, crop calendars, speckle, acquisition effects, region geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rsfuse.bands import S2_L1C_ORDER
from rsfuse.data.synthetic import SyntheticWorld
from rsfuse.data.synthetic import acquisition as acq
from rsfuse.data.synthetic import landscape as ls
from rsfuse.data.synthetic.materials import MATERIALS, SPECTRA_ARRAY, location_spectra
from rsfuse.data.synthetic.world import WATER_CLASSES


def _grid(h: int, w: int, y0: int = 0, x0: int = 0) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[y0 : y0 + h, x0 : x0 + w]
    return yy.ravel().astype(float), xx.ravel().astype(float)


def test_hash_is_deterministic_uniform_and_keyed() -> None:
    i, j = np.meshgrid(np.arange(-50, 50), np.arange(-50, 50))
    a = ls.hash_uniform(7, 3, i, j)
    np.testing.assert_array_equal(a, ls.hash_uniform(7, 3, i, j))
    assert a.min() >= 0 and a.max() < 1 and abs(a.mean() - 0.5) < 0.01
    assert abs(np.corrcoef(a[:, :-1].ravel(), a[:, 1:].ravel())[0, 1]) < 0.03  # no lattice echo
    assert not np.array_equal(a, ls.hash_uniform(8, 3, i, j))
    assert not np.array_equal(a, ls.hash_uniform(7, 4, i, j))


def test_parcels_are_seamless_and_convex() -> None:
    """The same parcels whether computed on a block or on its two halves (scene blocks)."""
    yy, xx = _grid(60, 80, 1000, 2000)
    cu, cv, edge = ls.voronoi(11, 5, yy, xx, 15.0, 2.0, 0.4)
    half = len(yy) // 2
    a = ls.voronoi(11, 5, yy[:half], xx[:half], 15.0, 2.0, 0.4)
    b = ls.voronoi(11, 5, yy[half:], xx[half:], 15.0, 2.0, 0.4)
    np.testing.assert_array_equal(cu, np.concatenate([a[0], b[0]]))
    np.testing.assert_array_equal(cv, np.concatenate([a[1], b[1]]))
    ids = (cu * 1000 + cv).reshape(60, 80)
    n = len(np.unique(ids))
    assert 60 * 80 / (15.0**2) / 2 < n < 60 * 80 / (15.0**2) * 2  # about one parcel per cell
    # Voronoi cells of an affine lattice are convex: the midpoint of two pixels of a parcel
    # belongs to the same parcel
    rng = np.random.default_rng(0)
    flat_ids = ids.ravel()
    for pid in np.unique(ids)[:20]:
        pix = np.flatnonzero(flat_ids == pid)
        p, q = rng.choice(pix, 2)
        my, mx = (yy[p] + yy[q]) / 2, (xx[p] + xx[q]) / 2
        mu, mv, _ = ls.voronoi(11, 5, np.array([my]), np.array([mx]), 15.0, 2.0, 0.4)
        assert mu[0] * 1000 + mv[0] == pid
    # boundary pixels: a thin fraction of the area, where neighbouring pixels change parcel
    thin = edge.reshape(60, 80) < 0.55
    assert 0.03 < thin.mean() < 0.25
    change = np.zeros_like(thin)
    change[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    assert thin[change].mean() > 0.8


def test_value_noise_is_seamless_and_unit_variance() -> None:
    ys, xs = np.arange(100, 400), np.arange(0, 300)
    v = ls.value_noise(3, 9, ys, xs, 20.0)
    np.testing.assert_allclose(v[:150], ls.value_noise(3, 9, ys[:150], xs, 20.0), atol=1e-6)
    assert 0.6 < v.std() < 1.4 and abs(v.mean()) < 0.3
    assert abs(np.corrcoef(v[:, :-1].ravel(), v[:, 1:].ravel())[0, 1]) > 0.9  # smooth


def test_street_grid() -> None:
    yy, xx = _grid(40, 40)
    bi, bj, dist, _ = ls.street_grid(yy, xx, 0.0, 8.0, 10.0, 0.0)
    assert dist.max() <= 5.0 and (dist < 0.6).mean() > 0.1
    assert len(np.unique(bi)) == 5 and len(np.unique(bj)) >= 4


def test_crops_follow_their_calendar_in_fixed_parcels() -> None:
    """Arable parcels keep their shape across seasons while their crops green up and are
    harvested: winter cereal green in spring, summer crops green in summer."""
    world = SyntheticWorld(0)
    lc = np.full((96, 96), 2)
    key, fields = world.structure(np.random.default_rng(4), lc.shape)
    params = ls.LocationParams.from_key(key)
    green = []
    for season in range(4):
        ctx = ls.Context(key, season, np.arange(96), np.arange(96), lc, fields, params)
        frac, _, _ = ls.compose(ctx)
        green.append(frac[MATERIALS.index("green")])
    green = np.stack(green)  # [4, H, W]
    assert np.abs(green[2] - green[0]).mean() > 0.2  # parcels change between seasons
    yy, xx = _grid(96, 96)
    cu, cv, edge = ls.voronoi(key, 100, yy, xx, params.arable_size, params.field_elongation,
                              params.field_angle)  # fmt: skip
    inner = edge > 2.0
    ids = (cu * 100000 + cv)[inner]
    for s in range(4):
        g = green[s].ravel()[inner]
        # within a parcel the cover is almost uniform, between parcels it differs
        within = np.mean([g[ids == k].std() for k in np.unique(ids)])
        assert within < 0.08 and g.std() > 2 * within


def test_speckle_has_the_looks_and_spatial_correlation() -> None:
    x = acq.speckle(np.random.default_rng(0), (300, 300))
    assert x.shape == (2, 300, 300) and x.dtype == np.float32
    assert abs(x.mean() - 1) < 0.01 and abs(x.var() - 1 / acq.LOOKS) < 0.02
    r1 = np.corrcoef(x[0, :, :-1].ravel(), x[0, :, 1:].ravel())[0, 1]
    r4 = np.corrcoef(x[0, :, :-4].ravel(), x[0, :, 4:].ravel())[0, 1]
    assert r1 > 0.3 and abs(r4) < 0.05
    assert abs(np.corrcoef(x[0].ravel(), x[1].ravel())[0, 1]) < 0.02  # VV, VH independent


def test_shift_image() -> None:
    x = np.arange(20.0).reshape(1, 4, 5)
    y = acq.shift_image(x, (1, -1))
    np.testing.assert_array_equal(y[0, 1:, :-1], x[0, :-1, 1:])
    np.testing.assert_array_equal(y[0, 0, :-1], x[0, 0, 1:])  # edge replicated
    assert acq.shift_image(x, (0, 0)) is x


def test_terrain_shading_and_radar_geometry() -> None:
    flat = np.zeros((4, 4), np.float32)
    s2 = acq.S2Acquisition(np.ones(13, np.float32), np.zeros(13, np.float32), 40.0, 180.0)
    np.testing.assert_allclose(acq.shading(flat, flat, s2), 1.0, atol=1e-6)
    rising_north = np.full((4, 4), 0.3, np.float32)  # a slope facing south, towards the sun
    assert (acq.shading(flat, rising_north, s2) > 1.1).all()
    assert (acq.shading(flat, -rising_north, s2) < 0.9).all()
    asc = acq.S1Acquisition(38.0, True, math.radians(80.0), 0.0, (0, 0))
    east = np.full((4, 4), 0.2, np.float32)  # rising eastward: faces a radar west of it
    assert (acq.radar_terrain(east, flat, asc) > 2).all()
    desc = acq.S1Acquisition(38.0, False, math.radians(280.0), 0.0, (0, 0))
    assert (acq.radar_terrain(east, flat, desc) < -2).all()


def test_acquisition_draws_are_in_range() -> None:
    rng = np.random.default_rng(1)
    for season in range(4):
        a = acq.draw_s2(rng, 48.0, season)
        assert 6 <= a.sun_elevation <= 75 and (a.haze >= 0).all()
        assert 0.7 < float(a.gain.mean()) < 1.4
    winter, summer = acq.draw_s2(rng, 60.0, 0), acq.draw_s2(rng, 60.0, 2)
    assert winter.sun_elevation < summer.sun_elevation and winter.shadow > summer.shadow
    b = acq.draw_s1(rng)
    assert 30 <= b.incidence <= 46 and set(b.shift) <= {-1, 0, 1}


def test_location_spectra_vary_but_keep_physics() -> None:
    rng = np.random.default_rng(2)
    nir, red, b11 = (S2_L1C_ORDER.index(b) for b in ("B08", "B04", "B11"))
    soils = []
    for _ in range(50):
        e = location_spectra(rng, SPECTRA_ARRAY)
        green, water = e[:, MATERIALS.index("green")], e[:, MATERIALS.index("water")]
        assert green[nir] > 4 * green[red] and water[nir] < 300 and water[b11] < 100
        soils.append(e[red, MATERIALS.index("soil")])
    assert max(soils) > 1.5 * min(soils)  # soil brightness differs between locations


def test_region_geometry_rivers_lakes_coasts() -> None:
    """Water classes come as thin rivers, blobs or half-planes; managed land in blocks with
    straight edges."""
    world = SyntheticWorld(0)
    widths = []
    for i in range(200):
        lc = world.land_cover(world.streams(i)["land_cover"], 120)
        for c in WATER_CLASSES:
            m = lc == c
            if 0 < m.mean() < 1:
                # width of a water body ≈ area / half its boundary length
                edges = (m[:, 1:] != m[:, :-1]).sum() + (m[1:] != m[:-1]).sum()
                widths.append(m.sum() / max(edges / 2, 1))
    widths = np.array(widths)
    assert len(widths) > 12
    assert (widths < 12).mean() > 0.2 and (widths > 20).mean() > 0.2  # rivers and big water


def test_fine_fields_have_their_scales() -> None:
    f = ls.fine_fields(np.random.default_rng(0), (200, 200))
    assert set(f) == set(ls.FINE_SCALES)
    lag1 = {k: np.corrcoef(v[:, :-1].ravel(), v[:, 1:].ravel())[0, 1] for k, v in f.items()}
    assert lag1["f07"] < lag1["f15"] < lag1["f3"] < lag1["f6"]
    assert all(0.8 < v.std() < 1.2 for v in f.values())


@pytest.mark.parametrize("cls", range(19))
def test_every_recipe_gives_valid_fractions(cls: int) -> None:
    world = SyntheticWorld(1)
    lc = np.full((36, 36), cls)
    lc[:4] = 17 if cls != 17 else 2  # water nearby (coastal gradient) or land
    key, fields = world.structure(np.random.default_rng(cls), lc.shape)
    ctx = ls.Context(key, cls % 4, np.arange(36), np.arange(36), lc, fields,
                     ls.LocationParams.from_key(key))  # fmt: skip
    frac, bright, radar = ls.compose(ctx)
    assert frac.shape == (len(MATERIALS), 36, 36)
    assert frac.min() >= 0 and np.allclose(frac.sum(0), 1, atol=1e-5)
    assert np.isfinite(bright).all() and bright.min() > 0 and np.isfinite(radar).all()
