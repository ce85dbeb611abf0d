"""``rsfuse predict``: a trained model over whole georeferenced scenes, streaming.

Segmentation bundles: windows of the bundle's patch size (``--window``) with overlap
(``--overlap``) slide over the scene strip by strip; their logits are blended with the
smooth taper of :mod:`rsfuse.inference.windows` (no seams) and each finished strip of rows
is written straight into the outputs, so memory is bounded by one strip of windows (the
scene's width × the window's height), never by the scene's area. Outputs, all with the
input's CRS and transform:

* ``OUT.tif``: a Cloud-Optimised GeoTIFF class map (uint8, 255 = no data) with an
  embedded colour table and the class names (``CLASS_NAMES`` tag, JSON);
* ``OUT_path.tif``: the inference path of every pixel (0 no data, 1 S1+S2, 2 S1 only,
  3 S2 only), a COG with its own colour table;
* ``OUT_probabilities.tif`` (``--probabilities``): per-class softmax probabilities × 255
  (uint8, one band per class);
* ``OUT_report.json``: timing, pixels per second, path and class fractions.

Multi-label classification bundles: a grid of patch-size cells (the last row / column
shifted to end at the scene's edge); ``OUT.geojson`` has one polygon per cell in the
input CRS with its scores, labels above the threshold, path and cloud fraction;
``OUT.csv`` the same as a table.

``--quicklook`` adds ``OUT_quicklook.png`` for both kinds (:mod:`rsfuse.plots.scene`): the
scene in true colour beside the class map or the cells' top labels, in the colours of the
class map's colour table.

Before any work the scene is compared with the model's training data
(:mod:`rsfuse.inference.compatibility`): S2 product level (L1C / L2A), band units and pixel
size. A disagreement is a warning (``InputMismatchWarning``; the command prints it, the
report lists it under ``input_warnings``), or a :class:`~rsfuse.errors.DataError` with
``--strict``.

Cloud-aware routing (models that take S1 and S2), the same as in training and evaluation
(:mod:`rsfuse.data.clouds`): for a model trained with S2 validity (a ``clouds`` rule in its
bundle) every window carries its validity (``valid`` = not under cloud, ``--clouds``, and S2
has data), so the model zeroes S2 where it is invalid, as in training; a model trained
without one reads S2 as it is;
pixels under cloud or without S2 data go through the model's S1-only path (S2 marked
absent: GMU presence flags, zeroed early-fusion channels, exactly as ``RandomSensorDrop``
trains it), pixels without S1 data through the S2-only path. A window holding several
paths is run once per path and each pixel takes the logits of its own path, so the path
raster says exactly which input every pixel's prediction came from. Classification cells
switch to S1 only when more than ``--cloud-threshold`` of the cell is cloudy (default: the
``max_cloud_fraction`` the model was trained with, from the bundle;
:func:`rsfuse.data.clouds.s2_usable`). A model that takes S2 only cannot route: cloudy
pixels are predicted from S2 as they are (the report says so).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from tqdm.auto import tqdm

from rsfuse.data.clouds import DEFAULT_MAX_CLOUD_FRACTION, CloudSpec, s2_usable
from rsfuse.errors import ConfigError, DataError
from rsfuse.inference.bundle import Bundle, load_bundle
from rsfuse.inference.compatibility import InputMismatchWarning, scene_mismatches
from rsfuse.inference.outputs import (
    NODATA_CLASS,
    PATH_CODES,
    PATH_COLORS,
    PATH_NAMES,
    RasterSink,
    cell_polygon,
    class_colormap,
    write_cells,
)
from rsfuse.inference.scene import SceneInputs, Strip
from rsfuse.inference.windows import StripAccumulator, blend_weights, window_starts
from rsfuse.io.atomic import write_atomic
from rsfuse.io.paths import check_not_input, check_output_file

BOTH, S1_ONLY, S2_ONLY = PATH_CODES["s1+s2"], PATH_CODES["s1"], PATH_CODES["s2"]
#: Smallest default window of convolutional segmentation models, in pixels.
CNN_WINDOW = 256
#: GDAL's block cache while predicting (MB): reading, writing and the COG copy stay bounded
#: (GDAL's default is 5 % of the machine's memory).
GDAL_CACHE_MB = 256


@dataclass
class Options:
    """Inference options (see ``rsfuse predict --help``)."""

    window: int | None = None
    overlap: int | None = None
    batch_size: int = 8
    device: str = "auto"
    precision: str = "auto"
    probabilities: bool = False
    cloud_threshold: float | None = None
    progress: bool = True
    quicklook: bool = False
    strict: bool = False
    #: a reference class raster on the scene's grid, drawn beside the segmentation
    #: quick-look's prediction (Python API; e.g. the synthetic scene's reference map)
    quicklook_reference: Path | None = None


#: Device types ``--device`` accepts.
DEVICE_TYPES: tuple[str, ...] = ("cpu", "cuda", "mps")


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; else ``cpu``, ``cuda[:N]`` or ``mps``.

    Raises:
        ConfigError: an unknown device, or one that is not available here.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ConfigError(
            f"unknown device {name!r}; expected auto, cpu, cuda, cuda:N or mps ({e})", "device"
        ) from e
    if dev.type not in DEVICE_TYPES:
        raise ConfigError(
            f"device {name!r} is not supported; expected auto, cpu, cuda, cuda:N or mps", "device"
        )
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but CUDA is not available", "device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r} asked for, but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)",
                key="device",
            )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} asked for, but MPS is not available", "device")
    return dev


def path_map(
    modalities: Sequence[str], s1_valid: np.ndarray, s2_valid: np.ndarray, cloud: np.ndarray
) -> np.ndarray:
    """Per-pixel inference path (:data:`~rsfuse.inference.outputs.PATH_CODES`).

    Args:
        modalities: the model's sensors.
        s1_valid, s2_valid, cloud: bool [h, W].

    Returns:
        uint8 [h, W]: 1 S1+S2, 2 S1 only (cloud or no S2 data), 3 S2 only (no S1 data),
        0 no usable input. An S2-only model ignores ``cloud`` (it cannot route).
    """
    mods = set(modalities)
    out = np.zeros(s1_valid.shape, np.uint8)
    if mods == {"s1", "s2"}:
        s2_ok = s2_valid & ~cloud
        out[s1_valid & s2_ok] = BOTH
        out[s1_valid & ~s2_ok] = S1_ONLY
        out[~s1_valid & s2_ok] = S2_ONLY
    elif mods == {"s2"}:
        out[s2_valid] = S2_ONLY
    else:
        out[s1_valid] = S1_ONLY
    return out


#: ``--cloud-threshold`` of a bundle without a recorded S2 validity rule (exported before
#: rsfuse recorded one): the earlier default of ``rsfuse predict``.
LEGACY_CLOUD_THRESHOLD = 0.1


def trained_with_validity(bundle: Bundle) -> bool:
    """Whether the bundle's model was trained on samples carrying S2 validity (a ``clouds``
    rule other than ``none`` in its data config): only then does it see invalid S2 pixels
    zeroed at inference (:func:`rsfuse.models.fusion.sensor_input`)."""
    rule = bundle.config.get("clouds") or {}
    return str(rule.get("source", "none")) != "none"


class WindowModel:
    """Runs a bundle's model on windows of raw inputs with given paths.

    Args:
        bundle: the loaded bundle.
        device: torch device.
        precision: ``32`` or ``bf16`` (autocast on CUDA).
    """

    def __init__(self, bundle: Bundle, device: torch.device, precision: str) -> None:
        self.bundle = bundle
        self.device = device
        self.model = bundle.model.to(device).eval()
        self.normalize = bundle.normalize.to(device)
        self.autocast = precision == "bf16" and device.type == "cuda"
        self.mods = bundle.modalities
        #: the model was trained with S2 validity (zeroed invalid S2 pixels): windows pass
        #: theirs; otherwise S2 goes in as it is, as in the model's training and evaluation
        self.uses_validity = trained_with_validity(bundle)

    @torch.inference_mode()
    def __call__(
        self,
        s2: np.ndarray | None,
        s1: np.ndarray | None,
        paths: Sequence[int],
        valid: np.ndarray | None = None,
    ) -> np.ndarray:
        """Logits of a batch of windows.

        Args:
            s2: float32 [B, C, h, w] digital numbers, or None.
            s1: float32 [B, 2, h, w] dB, or None.
            paths: path code per window (which sensors are present).
            valid: bool [B, h, w] S2 validity (not cloud, has data), or None.

        Returns:
            float32 logits [B, K, h, w] (segmentation) or [B, K] (classification).
        """
        batch: dict[str, Any] = {"present": {}}
        if "s2" in self.mods:
            assert s2 is not None
            batch["s2"] = torch.from_numpy(s2).to(self.device, non_blocking=True)
            flags = [p in (BOTH, S2_ONLY) for p in paths]
            batch["present"]["s2"] = torch.tensor(flags, device=self.device)
            if valid is not None and self.uses_validity:
                batch["valid"] = torch.from_numpy(valid).to(self.device, non_blocking=True)
        if "s1" in self.mods:
            assert s1 is not None
            batch["s1"] = torch.from_numpy(s1).to(self.device, non_blocking=True)
            flags = [p in (BOTH, S1_ONLY) for p in paths]
            batch["present"]["s1"] = torch.tensor(flags, device=self.device)
        batch = self.normalize(batch)  # absent sensors come out exactly zero
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits = self.model(batch)
        return logits.float().cpu().numpy()


def _pad_to(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Edge-pad [..., a, b] at the bottom/right to [..., h, w] (scenes smaller than a window)."""
    ph, pw = h - x.shape[-2], w - x.shape[-1]
    if ph <= 0 and pw <= 0:
        return x
    pad = [(0, 0)] * (x.ndim - 2) + [(0, max(ph, 0)), (0, max(pw, 0))]
    return np.pad(x, pad, mode="edge")


def _out_paths(out: Path, task: str) -> dict[str, Path]:
    suffix = ".tif" if task == "segmentation" else ".geojson"
    if out.is_dir() or out.suffix == "":
        out = out / ("map" + suffix if task == "segmentation" else "cells" + suffix)
    if task == "segmentation" and out.suffix.lower() not in (".tif", ".tiff"):
        raise ConfigError(f"a segmentation map is a GeoTIFF: --out must end in .tif, got {out}")
    if task == "classification" and out.suffix.lower() not in (".geojson", ".json"):
        raise ConfigError(f"classification cells are GeoJSON: --out must end in .geojson: {out}")
    stem = out.with_suffix("")
    paths = {"main": out, "report": Path(f"{stem}_report.json")}
    paths["quicklook"] = Path(f"{stem}_quicklook.png")
    if task == "segmentation":
        paths["path"] = Path(f"{stem}_path.tif")
        paths["probabilities"] = Path(f"{stem}_probabilities.tif")
    else:
        paths["csv"] = out.with_suffix(".csv")
    return paths


def _window_geometry(bundle: Bundle, opts: Options, height: int, width: int) -> tuple[int, int]:
    """Window side and stride.

    Default window: the patch size for classification cells and fixed-size models (ViTs);
    at least :data:`CNN_WINDOW` px for convolutional segmentation models, which take any
    size (fewer, larger windows: less overlap and per-window overhead, more context).
    """
    size = opts.window
    if size is None:
        size = bundle.patch_size
        if bundle.task == "segmentation" and not bundle.fixed_size:
            size = max(size, CNN_WINDOW)
    size = int(size)
    if bundle.fixed_size and size != bundle.patch_size:
        raise ConfigError(
            f"this model takes {bundle.patch_size} px inputs only (ViT position embeddings); "
            f"--window {size} cannot be used",
            key="window",
        )
    if bundle.task == "classification":
        return size, size
    overlap = size // 4 if opts.overlap is None else int(opts.overlap)
    if not 0 <= overlap < size:
        raise ConfigError(f"--overlap must lie in [0, {size}), got {overlap}", key="overlap")
    return size, size - overlap


def predict_scene(
    bundle: Bundle | str | Path,
    out: str | Path,
    *,
    s2: str | Path | None = None,
    s1: str | Path | None = None,
    clouds: str | None = "auto",
    s2_band_names: Sequence[str] | None = None,
    options: Options | None = None,
) -> dict[str, Any]:
    """Run a bundle over a whole scene and write its outputs (see the module docstring).

    Args:
        bundle: a loaded :class:`Bundle` or a bundle folder.
        out: output file (``.tif`` for segmentation, ``.geojson`` for classification) or
            folder.
        s2, s1: inputs (files or folders of band files).
        clouds: ``auto``, ``none``, ``band:NAME`` or a mask file.
        s2_band_names: band names of an S2 file without band descriptions.
        options: :class:`Options`.

    Returns:
        The report (also written to ``OUT_report.json``).

    Raises:
        DataError: missing / unreadable input, missing bands, grid mismatches (before any
            work).
        ConfigError: bad options.
        CheckpointError: an invalid bundle.
    """
    opts = options or Options()
    if opts.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {opts.batch_size}", key="batch_size")
    if opts.cloud_threshold is not None and not 0.0 <= opts.cloud_threshold <= 1.0:
        raise ConfigError("--cloud-threshold must lie in [0, 1]", key="cloud_threshold")
    device = resolve_device(opts.device)
    precision = opts.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "32"
    if precision not in ("32", "bf16"):
        raise ConfigError(f"--precision must be 32, bf16 or auto, got {precision}", "precision")
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle)
    paths = _out_paths(Path(out), bundle.task)
    # no output may replace an input or land inside an input folder (band-file folders,
    # the bundle): refused before any work
    for p in paths.values():
        check_output_file(p, key="out")
    cloud_file = CloudSpec.parse(clouds).path if clouds else None
    check_not_input(paths.values(), [s2, s1, cloud_file, bundle.path], key="out")
    with (
        rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB),
        SceneInputs(
            s2,
            s1,
            bundle.s2_bands,
            "s1" in bundle.modalities,
            clouds=clouds,
            s2_band_names=s2_band_names,
            s2_product=str(bundle.config.get("s2_product") or "L2A"),
        ) as scene,
    ):
        size, stride = _window_geometry(bundle, opts, scene.height, scene.width)
        mismatches = scene_mismatches(bundle, scene)
        if mismatches and opts.strict:
            raise DataError(
                "the scene differs from the model's training data (--strict): "
                + "; ".join(mismatches),
                path=s2 if s2 is not None else s1,
            )
        for m in mismatches:
            warnings.warn(m, InputMismatchWarning, stacklevel=2)
        paths["main"].parent.mkdir(parents=True, exist_ok=True)
        model = WindowModel(bundle, device, precision)
        t0 = time.perf_counter()
        if bundle.task == "segmentation":
            report = _segment(bundle, scene, model, paths, size, stride, opts)
        else:
            report = _classify(bundle, scene, model, paths, size, opts)
        seconds = time.perf_counter() - t0
        cells = report.pop("_cells", None)
        if opts.quicklook:
            from rsfuse.plots.scene import plot_cells_quicklook, plot_scene_quicklook

            if bundle.task == "segmentation":
                look = plot_scene_quicklook(
                    scene, paths["main"], paths["path"], bundle.class_names, paths["quicklook"],
                    reference=opts.quicklook_reference,
                )  # fmt: skip
            else:
                look = plot_cells_quicklook(scene, cells, bundle.class_names, paths["quicklook"])
            report["outputs"]["quicklook"] = str(look)
    pixels = scene.width * scene.height
    report.update(
        {
            "bundle": str(bundle.path),
            "task": bundle.task,
            "inputs": {"s2": str(s2) if s2 else None, "s1": str(s1) if s1 else None},
            "clouds": clouds,
            "size": [scene.height, scene.width],
            "crs": scene.grid.crs.to_string() if scene.grid.crs else None,
            "window": size,
            "stride": stride,
            "device": str(device),
            "precision": precision,
            "seconds": round(seconds, 3),
            "pixels_per_second": pixels / seconds if seconds > 0 else None,
            "input_warnings": mismatches,
        }
    )
    write_atomic(paths["report"], json.dumps(report, indent=2) + "\n")
    return report


def _segment(
    bundle: Bundle,
    scene: SceneInputs,
    model: WindowModel,
    paths: dict[str, Path],
    size: int,
    stride: int,
    opts: Options,
) -> dict[str, Any]:
    H, W, K = scene.height, scene.width, bundle.num_classes
    wh, ww = min(size, H), min(size, W)  # window extent inside the scene
    in_h, in_w = (size, size) if bundle.fixed_size else (wh, ww)  # what the model sees
    ys, xs = window_starts(H, size, stride), window_starts(W, size, stride)
    weights = blend_weights(size)[:wh, :ww]
    geo = {"crs": scene.grid.crs, "transform": scene.grid.transform, "width": W, "height": H}
    names = json.dumps(bundle.class_names)
    sinks = {
        "main": RasterSink(
            paths["main"], **geo, count=1, dtype="uint8", nodata=NODATA_CLASS,
            descriptions=["class"], colormap=class_colormap(bundle.class_names),
            tags={"CLASS_NAMES": names, "RSFUSE_BUNDLE": str(bundle.path)},
            band_tags={"CLASS_NAMES": names},
        ),
        "path": RasterSink(
            paths["path"], **geo, count=1, dtype="uint8", nodata=None,
            descriptions=["inference path"], colormap=PATH_COLORS,
            tags={"PATH_CODES": json.dumps(PATH_NAMES)},
        ),
    }  # fmt: skip
    if opts.probabilities:
        sinks["probabilities"] = RasterSink(
            paths["probabilities"], **geo, count=K, dtype="uint8", nodata=None,
            descriptions=bundle.class_names, tags={"SCALE": "1/255", "CLASS_NAMES": names},
            overview_resampling="AVERAGE",
        )  # fmt: skip
    path_counts = np.zeros(len(PATH_CODES), np.int64)
    class_counts = np.zeros(K, np.int64)

    def emit(row0: int, values: np.ndarray, weight: np.ndarray, tag: np.ndarray) -> None:
        cls = values.argmax(axis=0).astype(np.uint8)  # [rows, W]
        nodata = weight <= 0
        cls[nodata] = NODATA_CLASS
        tag = np.where(nodata, 0, tag).astype(np.uint8)
        sinks["main"].write_rows(row0, cls[None])
        sinks["path"].write_rows(row0, tag[None])
        path_counts[:] += np.bincount(tag.ravel(), minlength=len(PATH_CODES))
        class_counts[:] += np.bincount(cls[~nodata].ravel(), minlength=K)[:K]
        if "probabilities" in sinks:
            e = np.exp(values - values.max(axis=0, keepdims=True))
            p = e / e.sum(axis=0, keepdims=True)
            p = np.where(nodata[None], 0.0, np.rint(p * 255.0)).astype(np.uint8)
            sinks["probabilities"].write_rows(row0, p)

    acc = StripAccumulator(K, W, H, wh, emit)
    n_windows = len(ys) * len(xs)
    forwards = 0
    bar = tqdm(total=n_windows, desc="predict", unit="win", disable=not opts.progress)
    try:
        for y0 in ys:
            acc.advance(y0)
            strip = scene.read(y0, wh)
            pmap = path_map(bundle.modalities, strip.s1_valid, strip.s2_valid, strip.cloud)
            # windows in groups of batch_size; a window holding several paths is one item
            # (forward) per path, so memory holds at most 3 x batch_size windows of logits
            for g in range(0, len(xs), opts.batch_size):
                group = xs[g : g + opts.batch_size]
                items = [
                    (x0, int(code))
                    for x0 in group
                    for code in np.unique(pmap[:, x0 : x0 + ww])
                    if code != 0
                ]
                logits_of: dict[tuple[int, int], np.ndarray] = {}
                for b in range(0, len(items), opts.batch_size):
                    chunk = items[b : b + opts.batch_size]
                    s2b, s1b, vb = _stack(strip, [x0 for x0, _ in chunk], ww, in_h, in_w)
                    out = model(s2b, s1b, [c for _, c in chunk], vb)[..., :wh, :ww]
                    forwards += len(chunk)
                    for item, lg in zip(chunk, out):
                        logits_of[item] = lg
                for x0 in group:
                    pw = pmap[:, x0 : x0 + ww]  # [wh, ww]
                    combined = np.zeros((K, wh, ww), np.float32)
                    for code in np.unique(pw):
                        if code != 0:
                            combined += np.where(pw == code, logits_of[(x0, int(code))], 0.0)
                    acc.add(y0, x0, combined, weights * (pw != 0), pw)
                bar.update(len(group))
        acc.finish()
        bar.close()
        written = {k: str(s.finish()) for k, s in sinks.items()}
    except BaseException:
        bar.close()
        for s in sinks.values():
            s.abort()
        raise
    total = max(1, int(path_counts.sum()))
    valid = max(1, int(class_counts.sum()))
    return {
        "outputs": written,
        "windows": n_windows,
        "window_forwards": forwards,
        "path_fractions": {PATH_NAMES[i]: float(c) / total for i, c in enumerate(path_counts)},
        "class_fractions": {n: float(c) / valid for n, c in zip(bundle.class_names, class_counts)},
        "routing": _routing_note(bundle, scene),
    }


def _routing_note(bundle: Bundle, scene: SceneInputs) -> str:
    if scene.cloud_spec.kind == "none":
        return scene.cloud_note or "no cloud mask"
    if set(bundle.modalities) == {"s1", "s2"}:
        return f"clouds ({scene.cloud_spec.kind}) routed to the S1-only path"
    return f"the model takes {'+'.join(bundle.modalities)} only: no routing under clouds"


def _stack(
    strip: Strip, x0s: Sequence[int], ww: int, in_h: int, in_w: int
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Windows at columns ``x0s`` of a strip as [B, C, in_h, in_w] arrays (edge-padded), and
    their S2 validity [B, in_h, in_w] (S2 has data and is not under cloud; None without S2)."""
    valid = None if strip.s2 is None else (strip.s2_valid & ~strip.cloud)[None]  # [1, h, W]
    out: list[np.ndarray | None] = []
    for arr in (strip.s2, strip.s1, valid):
        if arr is None:
            out.append(None)
            continue
        wins = [_pad_to(arr[:, :, x0 : x0 + ww], in_h, in_w) for x0 in x0s]
        out.append(np.ascontiguousarray(np.stack(wins)))
    v = out[2][:, 0] if out[2] is not None else None
    return out[0], out[1], v


def _classify(
    bundle: Bundle,
    scene: SceneInputs,
    model: WindowModel,
    paths: dict[str, Path],
    size: int,
    opts: Options,
) -> dict[str, Any]:
    H, W = scene.height, scene.width
    ch, cw = min(size, H), min(size, W)
    ys, xs = window_starts(H, size, size), window_starts(W, size, size)
    threshold = float(bundle.config.get("threshold") or 0.5)
    max_cloud = opts.cloud_threshold
    if max_cloud is None:
        rule = bundle.config.get("clouds")
        # bundles exported before the S2 validity rule was recorded keep their old default
        max_cloud = (
            LEGACY_CLOUD_THRESHOLD
            if rule is None
            else float(rule.get("max_cloud_fraction", DEFAULT_MAX_CLOUD_FRACTION))
        )
    mods = set(bundle.modalities)
    cells: list[dict[str, Any]] = []
    counts = dict.fromkeys(PATH_CODES, 0)
    bar = tqdm(total=len(ys) * len(xs), desc="predict", unit="cell", disable=not opts.progress)
    for r, y0 in enumerate(ys):
        strip = scene.read(y0, ch)
        row_cells = []
        for c, x0 in enumerate(xs):
            sl = (slice(None), slice(x0, x0 + cw))
            cloud_frac = float(np.mean(strip.cloud[sl] | ~strip.s2_valid[sl]))
            s1_ok = float(np.mean(strip.s1_valid[sl])) >= 0.5
            s2_ok = s2_usable(cloud_frac, max_cloud)
            if mods == {"s2"}:
                s2_ok = float(np.mean(strip.s2_valid[sl])) >= 0.5
            code = 0
            if mods == {"s1", "s2"}:
                code = BOTH if s1_ok and s2_ok else S1_ONLY if s1_ok else S2_ONLY if s2_ok else 0
            elif mods == {"s2"}:
                code = S2_ONLY if s2_ok else 0
            else:
                code = S1_ONLY if s1_ok else 0
            t = scene.grid.transform
            minx, maxy = t @ (x0, y0)
            maxx, miny = t @ (x0 + cw, y0 + ch)
            row_cells.append(
                {
                    "id": f"r{r:04d}c{c:04d}", "row": r, "col": c, "x0": x0, "y0": y0,
                    "h": ch, "w": cw, "path_code": code,
                    "path": PATH_NAMES[code], "cloud_fraction": cloud_frac,
                    "bounds": (min(minx, maxx), min(miny, maxy), max(minx, maxx), max(miny, maxy)),
                    "polygon": cell_polygon(t, y0, x0, ch, cw), "scores": None, "labels": [],
                }
            )  # fmt: skip
            counts[PATH_NAMES[code]] += 1
        todo = [cell for cell in row_cells if cell["path_code"] != 0]
        in_h, in_w = (size, size) if bundle.fixed_size else (ch, cw)
        for b in range(0, len(todo), opts.batch_size):
            chunk = todo[b : b + opts.batch_size]
            s2b, s1b, vb = _stack(strip, [cell["x0"] for cell in chunk], cw, in_h, in_w)
            logits = model(s2b, s1b, [cell["path_code"] for cell in chunk], vb)
            scores = 1.0 / (1.0 + np.exp(-logits))
            for cell, s in zip(chunk, scores):
                cell["scores"] = [float(v) for v in s]
                cell["labels"] = [n for n, v in zip(bundle.class_names, s) if v >= threshold]
        cells.extend(row_cells)
        bar.update(len(xs))
    bar.close()
    write_cells(paths["main"], paths["csv"], cells, bundle.class_names, scene.grid.crs)
    n = max(1, len(cells))
    return {
        "outputs": {"geojson": str(paths["main"]), "csv": str(paths["csv"])},
        "cells": len(cells),
        "path_fractions": {k: v / n for k, v in counts.items()},
        "routing": _routing_note(bundle, scene),
        "_cells": cells,
        "max_cloud_fraction": max_cloud,
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rsfuse predict",
        description=(
            "Run a model bundle (rsfuse export) over a whole co-registered S1/S2 scene of "
            "any size, streaming windows so memory stays bounded. Segmentation: a "
            "Cloud-Optimised GeoTIFF class map (colour table, class names), the per-pixel "
            "inference path and optional class probabilities. Multi-label classification: "
            "a GeoJSON grid of patch-size cells with label scores, and a CSV. Under clouds "
            "a model that takes S1 and S2 uses its S1-only path."
        ),
    )
    p.add_argument("--bundle", required=True, type=Path, help="bundle folder (rsfuse export)")
    p.add_argument(
        "--s2",
        type=Path,
        help="S2 multi-band GeoTIFF (band descriptions B02 …) or folder of per-band files "
        "(*_B02*.tif / .jp2; 20/60 m bands are resampled to 10 m); digital numbers",
    )
    p.add_argument(
        "--s1", type=Path, help="S1 2-band GeoTIFF (VV, VH in dB) or folder with *VV* / *VH*"
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output: map.tif (segmentation) or cells.geojson (classification), or a folder",
    )
    p.add_argument(
        "--clouds",
        default="auto",
        help="cloud mask: auto (default: s2cloudless on L1C with its bands, else the "
        "built-in S2 test), spectral (the built-in test: fast), none, band:NAME (a band of "
        "the S2 file, e.g. band:SCL) or a mask raster on the same grid (non-zero = cloud)",
    )
    p.add_argument(
        "--s2-bands", help="comma-separated names of the S2 file's bands if it has no descriptions"
    )
    p.add_argument(
        "--window",
        type=int,
        help="window side in pixels (default: the patch size; at least 256 for CNN "
        "segmentation models, which take any size; classification: the cell size)",
    )
    p.add_argument(
        "--overlap", type=int, help="overlap of neighbouring windows (default: window / 4)"
    )
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward (default 8)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1 …")
    p.add_argument(
        "--precision", default="auto", help="32 or bf16 (default: bf16 on CUDA, else 32)"
    )
    p.add_argument(
        "--probabilities", action="store_true", help="also write per-class probabilities"
    )
    p.add_argument(
        "--cloud-threshold",
        type=float,
        default=None,
        help="classification: a cell more cloudy than this uses S1 only (default: the "
        f"max_cloud_fraction the model was trained with, else {DEFAULT_MAX_CLOUD_FRACTION})",
    )
    p.add_argument(
        "--quicklook",
        action="store_true",
        help="also write OUT_quicklook.png: S2 true colour (S1 false colour without S2) beside "
        "the class map (classification: the highest-scoring label of every cell) and, when "
        "more than one occurs, the inference path",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse a scene that differs from the model's training data (S2 product level "
        "L1C / L2A, band units, pixel size) instead of warning",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv: Sequence[str]) -> None:
    """``rsfuse predict``."""
    a = build_parser().parse_args(list(argv))
    opts = Options(
        window=a.window,
        overlap=a.overlap,
        batch_size=a.batch_size,
        device=a.device,
        precision=a.precision,
        probabilities=a.probabilities,
        cloud_threshold=a.cloud_threshold,
        progress=not a.no_progress,
        quicklook=a.quicklook,
        strict=a.strict,
    )
    names = [b for b in a.s2_bands.split(",") if b] if a.s2_bands else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InputMismatchWarning)
        report = predict_scene(
            a.bundle, a.out, s2=a.s2, s1=a.s1, clouds=a.clouds, s2_band_names=names, options=opts
        )
    for w in caught:
        if issubclass(w.category, InputMismatchWarning):
            print(
                f"rsfuse predict: warning: {w.message} (--strict refuses such a scene)",
                file=sys.stderr,
            )
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    h, w = report["size"]
    print(
        f"{report['task']}: {h} x {w} px in {report['seconds']:.1f} s "
        f"({report['pixels_per_second'] / 1e6:.2f} Mpx/s on {report['device']})"
    )
    fr = ", ".join(f"{k} {100 * v:.1f} %" for k, v in report["path_fractions"].items())
    print(f"paths: {fr} ({report['routing']})")
    for k, v in report["outputs"].items():
        print(f"  {k}: {v}")


__all__ = ["Options", "path_map", "predict_scene"]
