"""Whole-scene inference: pixels per second and peak memory of ``rsfuse predict``.

For each scene size (default 2048² and 8192², synthesised once with ``rsfuse synth
--layout scene`` into ``--data``), one fresh process loads a bundle and runs
:func:`~rsfuse.inference.predict.predict_scene` over the scene (S1 + S2, the built-in
cloud test routing cloudy pixels to the S1-only path, COG outputs). Each process reports

* wall time of the prediction (reading, forwards, blending, writing the COGs) and
  pixels / s, windows / s;
* its peak resident memory (``ru_maxrss``) and its resident memory just before predicting
  (interpreter, torch, model): the difference is what inference itself holds, which must
  not grow with the scene's area (strips are as wide as the scene, so it may grow with its
  width);
* the time a full Sentinel-2 tile (10980²) would take: the number of windows the same
  window / overlap gives on 10980² divided by the measured windows per second.

The model is a randomly initialised segmentation bundle of the chosen size (weights do not
change the speed): ``tiny`` = the demo's PSPNet on ResNet-18 (3 stages), ``resnet50`` = the
paper-size U-Net on ResNet-50, both on S1 + S2 L1C (15 channels, 8 DFC2020 classes).

Run::

    python benchmarks/scene_inference.py --data /root/.cache/rsfuse-bench/scenes \
        --sizes 2048 8192
    rsfuse benchmark scene --sizes 512 --model tiny    # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TILE_SIDE = 10980
MODELS: dict[str, dict[str, Any]] = {
    "tiny": {
        "architecture": "pspnet",
        "encoder": "resnet18",
        "decoder_kwargs": {"encoder_depth": 3},
    },
    "resnet50": {"architecture": "unet", "encoder": "resnet50"},
}


def _rss_mb() -> float:
    """Current resident memory of this process (MB), from /proc."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def make_bundle(out: Path, model: str) -> Path:
    """A randomly initialised S1+S2 segmentation bundle (patch 256) for timing."""
    import torch

    from rsfuse import bands
    from rsfuse.data.classes import DFC2020
    from rsfuse.data.transforms import Normalize
    from rsfuse.inference import export_bundle
    from rsfuse.tasks.segmentation import SegmentationTask

    torch.manual_seed(0)
    task = SegmentationTask(
        modalities=["s1", "s2"], num_classes=len(DFC2020), class_names=list(DFC2020),
        **MODELS[model],
    )  # fmt: skip
    norm = Normalize.from_stats("ssl4eo-s12-l1c", bands.s2_bands("all", "L1C"))
    ckpt = out.parent / f"{out.name}.ckpt"
    torch.save(
        {
            "state_dict": {"model." + k: v for k, v in task.model.state_dict().items()},
            "hyper_parameters": dict(task.hparams),
            "SegmentationDataModule": {"normalization": norm.describe(), "patch_size": 256},
        },
        ckpt,
    )
    export_bundle(ckpt, out)
    ckpt.unlink()
    return out


def ensure_scene(data: Path, size: int) -> Path:
    """The synthetic scene of side ``size`` under ``data`` (written once)."""
    from rsfuse.data.synthetic import synthesize

    root = data / f"scene-{size}"
    scene = root / "scene_000"
    if not (scene / "scene.json").is_file():
        print(f"[bench] synthesising a {size}² scene into {root}", flush=True)
        synthesize("scene", root, n=1, seed=0, workers=2, progress=True, size=size)
    return scene


def check_cog(path: Path, reference: Path) -> dict[str, bool]:
    """Check the class map with rasterio: a COG with the input's CRS, transform and size,
    and a colour table."""
    import rasterio

    with rasterio.open(path) as m, rasterio.open(reference) as r:
        try:
            cmap = m.colormap(1)
        except ValueError:
            cmap = {}
        return {
            "layout_cog": m.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG",
            "crs": m.crs == r.crs,
            "transform": m.transform == r.transform,
            "size": (m.height, m.width) == (r.height, r.width),
            "colour_table": len(cmap) > 0,
            # GDAL's COG driver adds overviews down to one 512 px block
            "overviews": len(m.overviews(1)) > 0 or max(m.height, m.width) <= 512,
        }


def _child(args: argparse.Namespace) -> None:
    """One measurement, in its own process: prints a JSON line."""
    import torch

    from rsfuse.inference import load_bundle
    from rsfuse.inference.predict import Options, predict_scene
    from rsfuse.inference.windows import window_starts

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    bundle = load_bundle(args.bundle)
    scene = Path(args.scene)
    rss_ready = _rss_mb()
    opts = Options(
        window=args.window, overlap=args.overlap, batch_size=args.batch_size,
        device=args.device, progress=False,
    )  # fmt: skip
    t0 = time.perf_counter()
    rep = predict_scene(
        bundle, Path(args.out) / "map.tif", s2=scene / "s2.tif", s1=scene / "s1.tif",
        clouds="spectral", options=opts,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # kB → MB
    h, w = rep["size"]
    stride = rep["stride"]
    tile_windows = len(window_starts(TILE_SIDE, rep["window"], stride)) ** 2
    cuda = torch.cuda.is_available() and rep["device"].startswith("cuda")
    check = check_cog(Path(rep["outputs"]["main"]), scene / "s2.tif")
    out = {
        "size": h,
        "pixels": h * w,
        "seconds": seconds,
        "pixels_per_s": h * w / seconds,
        "windows": rep["windows"],
        "window_forwards": rep["window_forwards"],
        "windows_per_s": rep["windows"] / seconds,
        "tile_windows": tile_windows,
        "tile_seconds_extrapolated": tile_windows / (rep["windows"] / seconds),
        "rss_ready_mb": rss_ready,
        "rss_peak_mb": peak,
        "rss_inference_mb": peak - rss_ready,
        "gpu_peak_mb": torch.cuda.max_memory_allocated() / 1e6 if cuda else None,
        "path_fractions": rep["path_fractions"],
        "window": rep["window"],
        "stride": stride,
        "device": rep["device"],
        "precision": rep["precision"],
        "output_bytes": sum(Path(p).stat().st_size for p in rep["outputs"].values()),
        "cog_check": check,
    }
    print("RESULT " + json.dumps(out), flush=True)


def device_name(device: str) -> str:
    import torch

    if device != "cpu" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{os.cpu_count()}-core CPU ({platform.machine()})"


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    bundle = make_bundle(data / f"bundle-{args.model}", args.model)
    results = []
    for size in args.sizes:
        scene = ensure_scene(data, size)
        out = data / f"out-{size}"
        cmd = [
            sys.executable, "-m", "rsfuse.benchmarks.scene_inference", "--child",
            "--bundle", str(bundle), "--scene", str(scene), "--out", str(out),
            "--batch-size", str(args.batch_size), "--device", args.device,
        ]  # fmt: skip
        for k in ("window", "overlap", "threads"):
            if getattr(args, k) is not None:
                cmd += [f"--{k}", str(getattr(args, k))]
        print(f"[bench] predicting the {size}² scene", flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise SystemExit(f"measurement failed for {size}²:\n{proc.stderr[-3000:]}")
        results.append(json.loads(lines[-1][len("RESULT ") :]))
    return {
        "machine": device_name(args.device),
        "python": platform.python_version(),
        "model": args.model,
        "load_average_after": os.getloadavg()[0],
        "results": results,
    }


def table(res: dict[str, Any]) -> str:
    lines = [
        f"machine: {res['machine']}, model {res['model']}, "
        f"load average (1 min) after {res['load_average_after']:.2f}",
        f"{'scene':>7s} {'Mpx/s':>7s} {'win/s':>7s} {'seconds':>8s} {'RSS ready':>10s} "
        f"{'RSS peak':>9s} {'inference':>10s} {'10980² (extrap.)':>17s}",
    ]
    for r in res["results"]:
        lines.append(
            f"{r['size']:>6d}² {r['pixels_per_s'] / 1e6:7.2f} {r['windows_per_s']:7.1f} "
            f"{r['seconds']:8.1f} {r['rss_ready_mb']:8.0f}MB {r['rss_peak_mb']:7.0f}MB "
            f"{r['rss_inference_mb']:8.0f}MB {r['tile_seconds_extrapolated'] / 60:13.1f} min"
        )
    for r in res["results"]:
        c = r["cog_check"]
        bad = [k for k, ok in c.items() if not ok]
        lines.append(
            f"{r['size']}² map.tif checked with rasterio: "
            + ("COG, CRS, transform, size, colour table, overviews: all OK" if not bad
               else f"FAILED {bad}")
        )  # fmt: skip
    r0 = res["results"][0]
    lines.append(
        f"window {r0['window']} px, stride {r0['stride']} px, device {r0['device']}, "
        f"precision {r0['precision']}; 'inference' = peak − resident before predicting"
    )
    if len(res["results"]) > 1:
        a, b = res["results"][0], res["results"][-1]
        lines.append(
            f"area x{b['pixels'] / a['pixels']:.0f}: inference memory "
            f"x{b['rss_inference_mb'] / max(a['rss_inference_mb'], 1e-9):.2f}, peak "
            f"x{b['rss_peak_mb'] / a['rss_peak_mb']:.2f}"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rsfuse benchmark scene",
        description="Pixels/s and peak memory of rsfuse predict over synthetic whole scenes; "
        "extrapolates a full 10980² Sentinel-2 tile; prints a table, saves JSON.",
    )
    p.add_argument(
        "--data",
        default=str(Path.home() / ".cache/rsfuse-bench/scenes"),
        help="cache folder for the synthetic scenes and outputs",
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192], help="scene sides")
    p.add_argument("--model", choices=sorted(MODELS), default="tiny", help="model size")
    p.add_argument("--window", type=int, help="window side (default: rsfuse predict's)")
    p.add_argument("--overlap", type=int, help="window overlap (default: window / 4)")
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    p.add_argument("--json", default="scene_inference.json", help="where to save the results")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--bundle", help=argparse.SUPPRESS)
    p.add_argument("--scene", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.child:
        _child(args)
        return
    res = run(args)
    print(table(res))
    Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    print(f"saved {args.json}")


if __name__ == "__main__":
    main()
