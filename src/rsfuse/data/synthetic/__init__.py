"""The synthetic Sentinel world and writers that put it in the real datasets' on-disk layouts.

>>> from rsfuse.data.synthetic import synthesize
>>> synthesize("bigearthnet-v2", "data/ben-v2", n=1000, seed=0, workers=2)  # doctest: +SKIP

See :mod:`rsfuse.data.synthetic.world` for what the world holds (and which classes only SAR
or only optical data can tell apart), :mod:`rsfuse.data.synthetic.landscape` for what each
class looks like inside, :mod:`rsfuse.data.synthetic.materials` and
:mod:`rsfuse.data.synthetic.acquisition` for spectra and acquisition effects,
:mod:`rsfuse.data.synthetic.realism` and :mod:`rsfuse.data.synthetic.examples` for the
comparison with six real BigEarthNet patches (``docs/world.md``),
:mod:`rsfuse.data.synthetic.bigearthnet` for the BigEarthNet v1 / v2 writers,
:mod:`rsfuse.data.synthetic.segmentation` for SSL4EO-S12, NoLDO-S12 and DFC2020,
:mod:`rsfuse.data.synthetic.scene` for whole scenes (large co-registered S1 + S2 GeoTIFFs
with reference maps), and :mod:`rsfuse.data.synthetic.noisy_labels` for the
Dynamic-World-like label noise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rsfuse.data.synthetic.bigearthnet import (
    CLC_CODES,
    assign_splits,
    s1_name,
    v1_s2_name,
    v2_patch_id,
    write_bigearthnet_v1,
    write_bigearthnet_v2,
)
from rsfuse.data.synthetic.fields import smooth_fields
from rsfuse.data.synthetic.scene import write_scene
from rsfuse.data.synthetic.segmentation import (
    write_dfc2020,
    write_noldo_s12,
    write_ssl4eo_s12,
    write_ssl4eo_s12_zarr,
)
from rsfuse.data.synthetic.world import (
    CLOUDY_PROBABILITY,
    LABEL_MIN_FRACTION,
    OPTICAL_ONLY_PAIRS,
    SAR_ONLY_PAIRS,
    SEASONS,
    GeoInfo,
    Location,
    SyntheticWorld,
)
from rsfuse.errors import ConfigError

#: Layout name → writer ``(root, n, seed, workers=, progress=) -> Path``.
LAYOUTS: dict[str, Callable[..., Path]] = {
    "bigearthnet-v1": write_bigearthnet_v1,
    "bigearthnet-v2": write_bigearthnet_v2,
    "ssl4eo-s12": write_ssl4eo_s12,
    "ssl4eo-s12-v1.1": write_ssl4eo_s12_zarr,
    "noldo-s12": write_noldo_s12,
    "dfc2020": write_dfc2020,
    "scene": write_scene,
}


def synthesize(
    layout: str,
    root: str | Path,
    n: int,
    seed: int,
    workers: int = 1,
    progress: bool = True,
    **kwargs: Any,
) -> Path:
    """Write ``n`` locations of the synthetic world with ``seed`` in a dataset layout.

    Args:
        layout: one of :data:`LAYOUTS` (``bigearthnet-v1``, ``bigearthnet-v2``,
            ``ssl4eo-s12``, ``ssl4eo-s12-v1.1``, ``noldo-s12``, ``dfc2020``, ``scene``).
        root: output folder.
        n: number of locations.
        seed: world seed.
        workers: parallel processes.
        progress: show a progress bar.
        **kwargs: layout-specific options, e.g. ``patch_size`` for the segmentation layouts
            (:mod:`rsfuse.data.synthetic.segmentation`), ``size``, ``product``,
            ``per_band``, ``season``, ``cloud_cover`` for ``scene``
            (:mod:`rsfuse.data.synthetic.scene`).

    Returns:
        ``root`` as a Path.

    Raises:
        ConfigError: unknown layout (key ``layout``) or bad ``n``/``seed``/``workers``.
    """
    if layout not in LAYOUTS:
        raise ConfigError(
            f"unknown synthetic layout {layout!r}; expected one of {sorted(LAYOUTS)}",
            key="layout",
        )
    return LAYOUTS[layout](root, n, seed, workers=workers, progress=progress, **kwargs)


__all__ = [
    "CLC_CODES",
    "CLOUDY_PROBABILITY",
    "LABEL_MIN_FRACTION",
    "LAYOUTS",
    "OPTICAL_ONLY_PAIRS",
    "SAR_ONLY_PAIRS",
    "SEASONS",
    "GeoInfo",
    "Location",
    "SyntheticWorld",
    "assign_splits",
    "s1_name",
    "smooth_fields",
    "synthesize",
    "v1_s2_name",
    "v2_patch_id",
    "write_bigearthnet_v1",
    "write_bigearthnet_v2",
    "write_dfc2020",
    "write_noldo_s12",
    "write_scene",
    "write_ssl4eo_s12",
    "write_ssl4eo_s12_zarr",
]
