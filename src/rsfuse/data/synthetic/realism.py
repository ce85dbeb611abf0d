"""Realism statistics: the synthetic world beside real Sentinel patches and published figures.

Every statistic is computed per patch from the arrays a BigEarthNet v1/v2 patch holds on
disk: the 12 Sentinel-2 L2A bands at their native sizes (120², 60², 20² pixels) and the
Sentinel-1 VV, VH backscatter in dB (120²). For the world these are exactly the arrays its
writers store (:func:`world_patch`); for the six real patches of ``bigearthnet-common``
(:mod:`rsfuse.data.synthetic.examples`) they are read from the GeoTIFFs (:func:`read_patch`).

Per-patch statistics (:func:`patch_statistics`), keys ``<kind>/<band>``:

``mean``, ``std``, ``p5``, ``p50``, ``p95``
    of the pixel values of a band (S2: reflectance x 10000; S1: dB).
``acl``
    spatial autocorrelation length in metres: the lag at which the isotropic (radially
    averaged) autocorrelation of the band, mean removed, first falls to 1/e (Eq. 1 below),
    for ``B02``, ``B04``, ``B08`` (10 m), ``B11`` (20 m), ``VV``, ``VH``.
``corr``
    Pearson correlation between the pixels of two bands on a common grid
    (:data:`CORRELATION_PAIRS`: visible–visible, red–NIR, NIR–SWIR, SWIR–SWIR, VV–VH and
    the cross-sensor VH–NIR).

The autocorrelation at lag ``h`` (pixels) of a band ``x`` [H, W] is

    r(h) = Σ_{|d| ≈ h} Σ_p x'(p) x'(p + d) / Σ_{|d| ≈ h} n(d) / var(x)          (1)

with ``x' = x − mean(x)``, ``n(d)`` the number of pixel pairs at offset ``d`` (computed
with zero-padded FFTs) and ``|d| ≈ h`` the offsets in the ring ``h ± 0.5``; the length is
the linear interpolation of the first crossing of ``1/e``, capped at half the patch side.

:func:`compare` puts them side by side: the median (and 10th–90th percentile) of the world's
per-patch values against the range (min–max) of the six real patches, and the world's
pooled per-band mean and standard deviation against the published dataset statistics
(:data:`rsfuse.bands.STATS`, BigEarthNet v1 and v2). A row is *within* when the world's
median lies inside the real range, or, for the pooled rows, when the mean is within
:data:`MEAN_TOLERANCE` published standard deviations of the published mean and the standard
deviation within a factor :data:`STD_RATIO` of the published one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rsfuse.bands import BANDS, S1_ORDER, S2_L2A_ORDER, STATS
from rsfuse.data import bigearthnet_layout as layout
from rsfuse.data.classes import ben43_to_19
from rsfuse.errors import DataError
from rsfuse.io.geotiff import read_band

#: Per-band distribution statistics (every S2 L2A band, VV and VH).
DISTRIBUTION_STATS: tuple[str, ...] = ("mean", "std", "p5", "p50", "p95")
#: Bands whose autocorrelation length is measured.
ACL_BANDS: tuple[str, ...] = ("B02", "B04", "B08", "B11", "VV", "VH")
#: Band pairs whose pixel correlation is measured (on the grid of the coarser band).
CORRELATION_PAIRS: tuple[tuple[str, str], ...] = (
    ("B02", "B04"), ("B04", "B08"), ("B8A", "B11"), ("B11", "B12"), ("VV", "VH"), ("VH", "B08"),
)  # fmt: skip
#: Pooled rows: the world's mean must lie within this many published stds of the published
#: mean, and its std within a factor STD_RATIO of the published std.
MEAN_TOLERANCE = 0.25
STD_RATIO = 1.33
#: Published statistics the pooled rows are compared with.
PUBLISHED: tuple[str, ...] = ("bigearthnet-v2", "bigearthnet-v1")


# ---------------------------------------------------------------------------------------
# patches


@dataclass
class Patch:
    """One patch's arrays as stored on disk.

    Attributes:
        name: patch name (real) or ``world-<index>``.
        s2: band → float64 [n, n] at native size (n = 120, 60 or 20), S2_L2A_ORDER.
        s1: float64 [2, 120, 120] VV, VH in dB.
        labels: 19-class indices.
        season: 0–3 (winter … autumn), when known.
        clear: neither cloud, shadow nor snow (world: the location's flags; real: set by
            the caller).
    """

    name: str
    s2: dict[str, np.ndarray]
    s1: np.ndarray
    labels: tuple[int, ...] = ()
    season: int | None = None
    clear: bool = True


def read_patch(root: str | Path, s2_name: str, s1_name: str) -> Patch:
    """Read a BigEarthNet v1 patch pair at native resolution (all 12 S2 bands, VV, VH) and
    its 19-class labels.

    Raises:
        DataError: a missing or malformed band or label file.
    """
    s2 = {}
    for b in S2_L2A_ORDER:
        n = layout.native_size(BANDS[b].resolution)
        arr, _ = read_band(layout.v1_s2_band(Path(root), s2_name, b), expected_shape=(n, n))
        s2[b] = arr.astype(np.float64)
    s1 = np.stack([
        read_band(layout.v1_s1_band(Path(root), s1_name, b), expected_shape=(120, 120))[0]
        for b in S1_ORDER
    ]).astype(np.float64)  # fmt: skip
    month = int(s2_name.split("_")[2][4:6])
    meta = layout.v1_s2_metadata(Path(root), s2_name)
    try:
        names = json.loads(meta.read_text())["labels"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"cannot read the patch's labels: {e}", path=meta) from e
    labels = tuple(ben43_to_19(names, source=str(meta)))
    return Patch(s2_name, s2, s1, labels, season=(month % 12) // 3)


def world_patch(world: Any, index: int) -> Patch:
    """Location ``index`` of a :class:`~rsfuse.data.synthetic.world.SyntheticWorld` as its
    BigEarthNet writers store it (uint16 S2 at native sizes, float32 S1)."""
    from rsfuse.data.synthetic.bigearthnet import s2_native

    loc = world.location(index, size=layout.PATCH_SIZE_10M)
    s2 = {b: x.astype(np.float64) for b, x in s2_native(loc.s2).items()}
    clear = not (loc.has_cloud or loc.has_snow)
    return Patch(f"world-{index}", s2, loc.s1.astype(np.float64), loc.labels, loc.season, clear)


def _band(p: Patch, band: str) -> np.ndarray:
    return p.s1[S1_ORDER.index(band)] if band in S1_ORDER else p.s2[band]


def _resolution(band: str) -> int:
    return BANDS[band].resolution


# ---------------------------------------------------------------------------------------
# statistics


def autocorrelation_length(x: np.ndarray) -> float:
    """Lag (pixels) where the radially averaged autocorrelation first falls to 1/e (Eq. 1).

    Returns:
        The interpolated lag, ``min(H, W) / 2`` when it never falls that far, NaN for a
        constant image.
    """
    x = np.asarray(x, np.float64)
    H, W = x.shape
    x = x - x.mean()
    var = float((x**2).mean())
    if var <= 0:
        return math.nan
    shape = (2 * H, 2 * W)
    f = np.fft.rfft2(x, s=shape)
    num = np.fft.irfft2(f * np.conj(f), s=shape)  # Σ_p x'(p) x'(p + d)
    one = np.fft.rfft2(np.ones_like(x), s=shape)
    cnt = np.fft.irfft2(one * np.conj(one), s=shape)  # n(d)
    dy = np.fft.fftfreq(2 * H) * 2 * H
    dx = np.fft.fftfreq(2 * W) * 2 * W
    r = np.rint(np.hypot(dy[:, None], dx[None, :])).astype(np.int64)
    hmax = min(H, W) // 2
    sel = r <= hmax
    sums = np.bincount(r[sel], weights=num[sel], minlength=hmax + 1)
    counts = np.bincount(r[sel], weights=cnt[sel], minlength=hmax + 1)
    prof = sums / np.maximum(counts, 1.0) / var  # r(h), h = 0 … hmax
    below = np.flatnonzero(prof < math.exp(-1))
    if below.size == 0:
        return float(hmax)
    k = int(below[0])
    a, b = prof[k - 1], prof[k]
    return float(k - 1 + (a - math.exp(-1)) / (a - b))


def _common_grid(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both bands on the coarser band's grid (block means of the finer one)."""
    n = min(a.shape[0], b.shape[0])

    def down(x: np.ndarray) -> np.ndarray:
        f = x.shape[0] // n
        return x if f == 1 else x.reshape(n, f, n, f).mean(axis=(1, 3))

    return down(a), down(b)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two bands' pixels on the coarser grid (NaN if one is flat)."""
    a, b = _common_grid(np.asarray(a, np.float64), np.asarray(b, np.float64))
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    den = math.sqrt(float((a**2).sum() * (b**2).sum()))
    return float((a * b).sum() / den) if den > 0 else math.nan


def patch_statistics(p: Patch) -> dict[str, float]:
    """Every per-patch statistic of the module docstring, as ``{"<kind>/<band>": value}``."""
    out: dict[str, float] = {}
    for band in (*S2_L2A_ORDER, *S1_ORDER):
        x = _band(p, band)
        q = np.percentile(x, (5, 50, 95))
        out[f"mean/{band}"] = float(x.mean())
        out[f"std/{band}"] = float(x.std())
        out[f"p5/{band}"], out[f"p50/{band}"], out[f"p95/{band}"] = (float(v) for v in q)
    for band in ACL_BANDS:
        out[f"acl/{band}"] = autocorrelation_length(_band(p, band)) * _resolution(band)
    for a, b in CORRELATION_PAIRS:
        out[f"corr/{a}-{b}"] = correlation(_band(p, a), _band(p, b))
    return out


def pooled_statistics(patches: Iterable[Patch]) -> dict[str, tuple[float, float]]:
    """Mean and std of every band's pixels pooled over ``patches`` (native sizes).

    Returns:
        ``{band: (mean, std)}`` for the 12 S2 bands, VV and VH.
    """
    s = {b: np.zeros(3) for b in (*S2_L2A_ORDER, *S1_ORDER)}
    for p in patches:
        for b in s:
            x = _band(p, b)
            s[b] += (x.size, x.sum(), (x**2).sum())
    out = {}
    for b, (n, t, t2) in s.items():
        mean = t / n
        out[b] = (float(mean), float(math.sqrt(max(t2 / n - mean**2, 0.0))))
    return out


# ---------------------------------------------------------------------------------------
# comparison


@dataclass
class Row:
    """One line of the realism table.

    Attributes:
        statistic: ``<kind>/<band>``, or ``pooled mean/<band>`` / ``pooled std/<band>``.
        world: world median (per-patch rows) or pooled value.
        world_p10, world_p90: 10th / 90th percentile of the world's per-patch values.
        real_min, real_max: range over the real patches (pooled rows: their pooled value).
        real: the real patches' values, in patch order (pooled rows: their pooled value).
        published: {dataset: value} (pooled rows).
        reference: what ``within`` was judged against: ``real`` or a published dataset.
        within: the world lies in the reference range.
    """

    statistic: str
    world: float
    world_p10: float = math.nan
    world_p90: float = math.nan
    real_min: float = math.nan
    real_max: float = math.nan
    real: list[float] = field(default_factory=list)
    published: dict[str, float] = field(default_factory=dict)
    reference: str = "real"
    within: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(
    world: Sequence[dict[str, float]],
    real: Sequence[dict[str, float]],
    world_pooled: dict[str, tuple[float, float]],
    published: Sequence[str] = PUBLISHED,
    real_pooled: dict[str, tuple[float, float]] | None = None,
) -> list[Row]:
    """The realism table: per-patch rows (world median vs the real range) and pooled rows
    (world vs published mean / std).

    Args:
        world: :func:`patch_statistics` of the world's patches.
        real: the same of the real patches.
        world_pooled: :func:`pooled_statistics` of the world's patches.
        published: names in :data:`rsfuse.bands.STATS`; the first one judges ``within``.
        real_pooled: :func:`pooled_statistics` of the real patches, shown beside the pooled
            rows for scale (``real``); it does not judge ``within``.
    """
    rows = []
    for key in world[0]:
        w = np.array([s[key] for s in world], np.float64)
        w = w[np.isfinite(w)]
        r = [s[key] for s in real]
        rf = np.array([v for v in r if math.isfinite(v)])
        med = float(np.median(w)) if w.size else math.nan
        lo, hi = (float(rf.min()), float(rf.max())) if rf.size else (math.nan, math.nan)
        rows.append(
            Row(
                key, med,
                float(np.percentile(w, 10)) if w.size else math.nan,
                float(np.percentile(w, 90)) if w.size else math.nan,
                lo, hi, [float(v) for v in r], within=bool(lo <= med <= hi),
            )
        )  # fmt: skip
    for band, (mean, std) in world_pooled.items():
        pub_mean = {d: STATS[d].mean[band] for d in published if band in STATS[d].mean}
        pub_std = {d: STATS[d].std[band] for d in published if band in STATS[d].std}
        ref = next(iter(pub_mean), "")
        ok_mean = bool(ref) and abs(mean - pub_mean[ref]) <= MEAN_TOLERANCE * pub_std[ref]
        ok_std = bool(ref) and 1 / STD_RATIO <= std / pub_std[ref] <= STD_RATIO
        rp = (real_pooled or {}).get(band)
        for kind, value, pub, ok, r in (
            ("mean", mean, pub_mean, ok_mean, rp[0] if rp else None),
            ("std", std, pub_std, ok_std, rp[1] if rp else None),
        ):
            rows.append(Row(
                f"pooled {kind}/{band}", value,
                real_min=math.nan if r is None else r, real_max=math.nan if r is None else r,
                real=[] if r is None else [r], published=pub, reference=ref, within=ok,
            ))  # fmt: skip
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """The realism table as fixed-width text (one line per row)."""
    head = (
        f"{'statistic':<20} {'world median':>13} {'world p10–p90':>21} {'real min–max':>21} "
        f"{'published':>21}  within"
    )
    lines = [head, "-" * len(head)]

    def f(v: float) -> str:
        if not math.isfinite(v):
            return "-"
        return f"{v:.0f}" if abs(v) >= 100 else f"{v:.2f}"

    for r in rows:
        spread = f"{f(r.world_p10)} – {f(r.world_p90)}" if math.isfinite(r.world_p10) else ""
        real = f"{f(r.real_min)} – {f(r.real_max)}" if r.real else ""
        if r.real and r.statistic.startswith("pooled"):  # the real patches' pooled value
            real = f"({f(r.real[0])})"
        pub = " / ".join(f(v) for v in r.published.values())
        mark = "yes" if r.within else "NO"
        lines.append(
            f"{r.statistic:<20} {f(r.world):>13} {spread:>21} {real:>21} {pub:>21}  {mark}"
        )
    return "\n".join(lines)


__all__ = [
    "ACL_BANDS",
    "CORRELATION_PAIRS",
    "DISTRIBUTION_STATS",
    "Patch",
    "Row",
    "autocorrelation_length",
    "compare",
    "correlation",
    "format_table",
    "patch_statistics",
    "pooled_statistics",
    "read_patch",
    "world_patch",
]
