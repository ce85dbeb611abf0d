"""Colour composites for display: Sentinel-2 true colour and Sentinel-1 false colour.

**S2 true colour** (:func:`true_colour`): R = B04, G = B03, B = B02 with **one** linear
stretch shared by the three channels: the ``lo`` and ``hi`` percentiles (2 and 98 %) of
the pooled values of all three bands over the *clear* pixels only (no data, clouds and
other very bright pixels left out; :func:`clear_pixels`), then ``(x − a) / (b − a)``
clipped to [0, 1]. A shared offset and gain keeps every pixel's hue (HSV hue depends on
channel differences divided by their range, which a common offset and gain leave
unchanged): a field is drawn with the hue its reflectances have, and clouds, which are
left out of the percentiles, saturate white instead of darkening the land. A
per-channel stretch would instead balance each band on its own and shift hues (green
fields drawn magenta).

**S1 false colour** (:func:`s1_false_colour`): R = VV, G = VH, B = VV − VH (all in dB),
each scaled linearly over a fixed range — VV −25…0 dB, VH −30…−5 dB, VV − VH 0…15 dB
(:data:`S1_RANGES_DB`) — so colours compare across samples and figures: open water is
dark (low backscatter), forests green-yellow (strong VH volume scattering), bare soil and
towns red-magenta (high VV and a large VV − VH ratio).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "S1_RANGES_DB",
    "clear_pixels",
    "panel_figure",
    "s1_false_colour",
    "sample_composites",
    "stretch_joint",
    "true_colour",
]

#: Display range (dB) of R = VV, G = VH and B = VV − VH in :func:`s1_false_colour`.
S1_RANGES_DB: tuple[tuple[float, float], ...] = ((-25.0, 0.0), (-30.0, -5.0), (0.0, 15.0))
#: Visible reflectance × 10000 above which all of B02, B03, B04 mark a pixel as cloud-like
#: (the built-in cloud test's threshold, :data:`rsfuse.data.clouds.BRIGHT_VISIBLE_DN`).
BRIGHT_DN = 3000.0


def clear_pixels(rgb: np.ndarray, nodata: float | None = 0.0) -> np.ndarray:
    """Pixels that should set a true-colour stretch.

    Args:
        rgb: [H, W, 3] B04, B03, B02 as digital numbers (reflectance × 10000).
        nodata: value of pixels without data (all three channels equal to it), or None.

    Returns:
        bool [H, W]: finite, not no-data, and not bright in all three visible bands
        (clouds, snow).
    """
    x = np.asarray(rgb, dtype=np.float64)
    ok = np.all(np.isfinite(x), axis=-1)
    if nodata is not None:
        ok &= ~np.all(x == nodata, axis=-1)
    ok &= ~np.all(x > BRIGHT_DN, axis=-1)
    return ok


def stretch_joint(
    img: np.ndarray, valid: np.ndarray | None = None, lo: float = 2.0, hi: float = 98.0
) -> np.ndarray:
    """One linear stretch for all channels of [H, W, C]: the ``lo`` / ``hi`` percentiles of
    the pooled values of ``valid`` pixels map to 0 / 1 (clipped; non-finite → 0).

    Args:
        img: [H, W, C] values.
        valid: bool [H, W] pixels the percentiles are computed on (None: all finite ones;
            none valid: all finite ones too).
        lo, hi: percentiles.

    Returns:
        float64 [H, W, C] in [0, 1].
    """
    x = np.asarray(img, dtype=np.float64)
    finite = np.all(np.isfinite(x), axis=-1)
    use = finite if valid is None else (finite & valid)
    if not use.any():
        use = finite
    if not use.any():
        return np.zeros_like(x)
    a, b = np.percentile(x[use], [lo, hi])
    scale = b - a if b > a else 1.0
    out = np.clip((x - a) / scale, 0.0, 1.0)
    return np.where(np.isfinite(out), out, 0.0)


def true_colour(
    rgb: np.ndarray,
    valid: np.ndarray | None = None,
    nodata: float | None = 0.0,
    lo: float = 2.0,
    hi: float = 98.0,
) -> np.ndarray:
    """S2 true colour with one joint stretch over the clear pixels (see the module docstring).

    Args:
        rgb: B04, B03, B02 digital numbers, [H, W, 3] (or [3, H, W]).
        valid: bool [H, W] known clear pixels (e.g. the inverse of a cloud mask); combined
            with :func:`clear_pixels`.
        nodata: no-data value of the digital numbers, or None.
        lo, hi: percentiles of the stretch.

    Returns:
        float64 [H, W, 3] in [0, 1].
    """
    x = np.asarray(rgb, dtype=np.float64)
    if x.ndim == 3 and x.shape[0] == 3 and x.shape[-1] != 3:
        x = np.moveaxis(x, 0, -1)
    clear = clear_pixels(x, nodata)
    if valid is not None:
        clear &= np.asarray(valid, dtype=bool)
    return stretch_joint(x, clear, lo, hi)


def s1_false_colour(s1: np.ndarray) -> np.ndarray:
    """S1 [2, H, W] (VV, VH in dB) → [H, W, 3]: R = VV, G = VH, B = VV − VH, each over its
    fixed range of :data:`S1_RANGES_DB` (non-finite → 0)."""
    x = np.asarray(s1, dtype=np.float64)
    vv, vh = x[0], x[1]
    out = np.empty((*vv.shape, 3), dtype=np.float64)
    for c, (v, (a, b)) in enumerate(zip((vv, vh, vv - vh), S1_RANGES_DB)):
        out[..., c] = np.clip((v - a) / (b - a), 0.0, 1.0)
    return np.where(np.isfinite(out), out, 0.0)


def sample_composites(
    s2: np.ndarray | None,
    s2_bands: tuple[str, ...] | list[str],
    s1: np.ndarray | None,
    cloud: np.ndarray | None = None,
) -> list[tuple[str, np.ndarray]]:
    """The display panels of one sample: (title, image) for S2 and S1.

    S2 is :func:`true_colour` when B04, B03, B02 are among ``s2_bands`` (clouds of
    ``cloud`` left out of the stretch), else its first band in grey with the same kind of
    stretch; S1 is :func:`s1_false_colour`.

    Args:
        s2: [C, H, W] digital numbers, or None.
        s2_bands: names of the C channels.
        s1: [2, H, W] VV, VH in dB, or None.
        cloud: [H, W] non-zero where cloud / shadow (e.g. a sample's ``cloud_mask``).
    """
    panels: list[tuple[str, np.ndarray]] = []
    valid = None if cloud is None else np.asarray(cloud) == 0
    if s2 is not None:
        names = list(s2_bands)
        x = np.asarray(s2, dtype=np.float64)
        if len(names) == x.shape[0] and all(b in names for b in ("B04", "B03", "B02")):
            rgb = np.stack([x[names.index(b)] for b in ("B04", "B03", "B02")], axis=-1)
            panels.append(("Sentinel-2 true colour (B04, B03, B02)", true_colour(rgb, valid)))
        else:
            band = names[0] if names else "band 0"
            grey = stretch_joint(x[0][..., None], valid)[..., 0]
            panels.append((f"Sentinel-2 {band}", np.repeat(grey[..., None], 3, axis=-1)))
    if s1 is not None:
        panels.append(("Sentinel-1 false colour (R VV, G VH, B VV − VH)", s1_false_colour(s1)))
    return panels


def panel_figure(
    panels: list[tuple[str, np.ndarray]],
    panel_width: float,
    legend_width: float,
    show_titles: bool,
) -> Figure:
    """A one-row matplotlib ``Figure`` of ``(title, RGB [H, W, 3])`` panels, each
    ``panel_width`` inches wide, with ``legend_width`` inches to its right for a legend."""
    from matplotlib.figure import Figure

    n = max(1, len(panels))
    fig = Figure(figsize=(panel_width * n + legend_width, 3.9), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (title, img) in zip(axes, panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_axis_off()
        if show_titles:
            ax.set_title(title, fontsize=9, wrap=True)
    return fig
